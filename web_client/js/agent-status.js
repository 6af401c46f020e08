// The agent console's status: the call-state badge, the Available and Away buttons, the
// auto-answer box, the status line, the wrap-up countdown and the camera-source note.
// agent.js owns the page's state; this file only shows it.

import { $, announce, setCallState } from "./ui.js";

/** The call-state badge for `page` (view, connection, offers, status). */
export function showCallState(page) {
  if (page.connection === "reconnecting" && page.view !== "login") {
    setCallState("reconnecting", "Reconnecting…");
    return;
  }
  if (page.view === "login") {
    setCallState("logged_out", "Logged out");
  } else if (page.view === "call") {
    setCallState("in_call", "In a call");
  } else if (page.view === "wrapup") {
    setCallState("wrap_up", "Wrap-up");
  } else if (page.offers.size) {
    setCallState("incoming", "Incoming customer");
  } else {
    const words = { available: "Available", busy: "Busy", away: "Away", wrap_up: "Wrap-up" };
    setCallState(page.status, words[page.status] || page.status);
  }
}

/** The status controls and line for `page`, and the badge. */
export function showStatus(page) {
  const available = page.status === "available" || page.status === "busy";
  $("go-available").setAttribute("aria-pressed", String(available));
  $("go-away").setAttribute("aria-pressed", String(!available && page.status !== "wrap_up"));
  $("auto-answer").checked = page.prefs.autoAnswer;
  const text = {
    available: "You are available: waiting for the next customer.",
    busy: "You are busy with a customer.",
    away: "You are away: you will not get customers.",
    wrap_up: "Finishing the last call.",
  };
  $("status-text").textContent = page.offers.size ? "A customer is waiting for you." : text[page.status] || "";
  showCallState(page);
}

/** The wrap-up countdown, while `wrapUp` ({until}) runs. */
export function showWrapUpTimer(wrapUp) {
  if (!wrapUp) return;
  const left = Math.max(0, Math.round((wrapUp.until - Date.now()) / 1000));
  $("wrap-up-timer").textContent = left > 0 ? `Wrap-up ends by itself in ${left} s.` : "Wrap-up is ending…";
}

/** The agent publishes over WHIP (an encoder's picture in their calls), or no longer does. */
export function showCameraSource(message) {
  const note = $("camera-source");
  if (note.dataset.source === message.source) return;
  note.dataset.source = message.source;
  note.hidden = message.source !== "whip";
  announce(message.source === "whip" ? "Camera from WHIP." : "Your browser's camera is back in your calls.");
}
