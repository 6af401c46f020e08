// The studio's event log: what the avatar host reports (talking, state, queue empty) and the
// operator's own errors and handovers, newest last, the last hundred kept.

import { el } from "./ui.js";

const MAX_EVENTS = 100;

function clock() {
  return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

const EVENT_WORDS = {
  started_talking: "Talking",
  stopped_talking: "Stopped talking",
  state: "State",
  queue_empty: "Queue empty",
  error: "Error",
  handover: "Handed over",
};

/** Add `message` (a host_event, or an error or handover of our own) to the `list` (an <ol>). */
export function logEvent(list, message) {
  const kind = message.kind || "event";
  let detail = message.kind === "state" ? message.state || message.text : message.text;
  if (kind === "stopped_talking" && message.interrupted) detail = "interrupted";
  const item = el(
    "li",
    { class: `event kind-${kind}`, "data-kind": kind },
    el("time", {}, clock()),
    el("span", { class: "what" }, EVENT_WORDS[kind] || kind),
    message.source && message.source !== "script" ? el("span", { class: "source" }, `(${message.source})`) : null,
    detail ? el("span", { class: "detail" }, detail) : null,
  );
  // The voice driver talks in bursts: its events update one line rather than flood the log.
  const last = list.lastElementChild;
  if (message.source === "voice" && last?.dataset.source === "voice") last.remove();
  if (message.source) item.dataset.source = message.source;
  list.append(item);
  while (list.children.length > MAX_EVENTS) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}
