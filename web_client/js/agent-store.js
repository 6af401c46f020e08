// What the agent console keeps in this tab (sessionStorage): the agent's token, and what they
// asked for (available, auto-answer), restored after a reconnect or a reload.

import { session } from "./ui.js";

export const TOKEN_STORE = "telepresence.agent_token";
const PREFS_STORE = "telepresence.agent_prefs";

export function loadPrefs() {
  try {
    return { wantAvailable: false, autoAnswer: false, ...JSON.parse(session()?.getItem(PREFS_STORE) || "{}") };
  } catch {
    return { wantAvailable: false, autoAnswer: false };
  }
}

export function savePrefs(prefs) {
  session()?.setItem(PREFS_STORE, JSON.stringify(prefs));
}

export function keepToken(token) {
  session()?.setItem(TOKEN_STORE, token);
}

export function forgetToken() {
  session()?.removeItem(TOKEN_STORE);
}
