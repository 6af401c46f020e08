// What the customer page keeps in the browser, and the start form's profile.
//
// The key that makes this browser a returning customer lives as long as the browser keeps it
// (localStorage); the ticket that rejoins a place (or a call) lives only as long as this tab
// (sessionStorage), and so does whether the server greets this conversation while it waits
// (`welcome.greeter` comes only after `join`, so a reloaded tab remembers it here).

import { $ } from "./ui.js";

export const KEY_STORE = "telepresence.customer_key";
export const TICKET_STORE = "telepresence.ticket";
export const PROFILE_STORE = "telepresence.profile";
export const GREETER_STORE = "telepresence.greeter";

function storage(kind) {
  try {
    return kind === "local" ? window.localStorage : window.sessionStorage;
  } catch {
    return null; // storage disabled: the page still works, without rejoin
  }
}

export function load(kind, name) {
  return storage(kind)?.getItem(name) ?? null;
}

export function save(kind, name, value) {
  const store = storage(kind);
  if (!store) return;
  if (value === null || value === undefined) store.removeItem(name);
  else store.setItem(name, value);
}

/** Forget this tab's place: the server has forgotten it too. */
export function forgetTicket() {
  save("session", TICKET_STORE, null);
  save("session", GREETER_STORE, null);
}

export function profileFromForm() {
  const params = new URLSearchParams(location.search);
  return {
    name: $("name-input").value.trim(),
    topic: $("topic-input").value.trim(),
    language: $("language-select").value,
    skill: (params.get("skill") || params.get("queue") || "").trim(),
    camera: $("use-camera").checked,
  };
}

export function fillForm(profile) {
  const params = new URLSearchParams(location.search);
  $("name-input").value = profile?.name ?? params.get("name") ?? "";
  $("topic-input").value = profile?.topic ?? params.get("topic") ?? "";
  if (profile && profile.camera === false) $("use-camera").checked = false;
  const language = profile?.language ?? params.get("language") ?? "";
  const select = $("language-select");
  if ([...select.options].some((option) => option.value === language)) select.value = language;
}

export function savedProfile() {
  try {
    return JSON.parse(load("session", PROFILE_STORE) || "null");
  } catch {
    return null;
  }
}
