// The studio page's elements, and what the studio shows of its state: the host badge, which
// controls are enabled, what the preview tile and the device line say, the viewer count, and
// the avatar's talking and caption. studio.js owns the state.

import { guardrails } from "./studio-looks.js";
import { $ } from "./ui.js";

export const els = {
  look: $("look-select"),
  start: $("host-start"),
  stop: $("host-stop"),
  drive: $("host-drive"),
  state: $("host-state"),
  viewers: $("viewers"),
  preview: $("avatar-preview"),
  previewTile: $("preview-tile"),
  caption: $("host-caption"),
  camera: $("operator-camera"),
  deviceStatus: $("device-status"),
  deviceMessage: $("device-message"),
  sayForm: $("#say-form"),
  say: $("say-input"),
  saySend: $("say-send"),
  commandError: $("command-error"),
  interrupt: $("interrupt"),
  handover: $("handover"),
  expressions: $("expressions"),
  gestures: $("gestures"),
  scriptForm: $("#script-form"),
  script: $("script-input"),
  scriptRun: $("script-run"),
  events: $("event-log"),
};

export function setBadge(state, words) {
  els.state.dataset.state = state;
  els.state.textContent = words;
}

/** The badge, the controls and the preview's words for `page`; `connected`: our media is up or coming. */
export function showStudio(page, connected) {
  const online = Boolean(page.connection === "open" && page.name);
  const running = page.host === "running";
  const busy = page.host === "starting" || page.host === "stopping";
  if (!page.name) {
    setBadge("logged_out", "Logged out");
  } else if (page.connection === "reconnecting") {
    setBadge("reconnecting", "Reconnecting…");
  } else {
    const words = {
      stopped: "Host off",
      starting: "Starting the host…",
      stopping: "Stopping the host…",
      running: `Live · ${guardrails(page.look).name}`,
    };
    setBadge(page.host, words[page.host]);
  }
  els.start.disabled = !online || running || busy;
  els.stop.disabled = !online || !(running || (page.host === "stopped" && page.foreignHost));
  els.look.disabled = !online || busy;
  els.drive.hidden = !(online && running && !connected);
  els.previewTile.dataset.empty = !running
    ? "Start the host to see the avatar"
    : connected
      ? "Connecting to the avatar…"
      : "The host is live, driven from another studio. “Drive from here” shows it here.";
  if (!connected) {
    els.deviceStatus.textContent = running
      ? "Another studio drives the host. Your camera and microphone are asked for if you drive it from here."
      : "Your camera and microphone are asked for when the host starts.";
    delete els.deviceStatus.dataset.drives;
  }
  for (const control of [els.say, els.saySend, els.interrupt, els.handover, els.script, els.scriptRun]) {
    control.disabled = !online || !running;
  }
  for (const button of document.querySelectorAll(".pad button")) button.disabled = !online || !running;
  els.viewers.textContent = running
    ? page.viewers === 1
      ? "1 viewer"
      : `${page.viewers} viewers`
    : "";
}

/** A host_event on the preview: talking, the scripted caption, the avatar's state. */
export function showTalking(message) {
  const { kind } = message;
  const scripted = (message.source || "script") === "script"; // captions come from `say`
  if (kind === "started_talking") {
    els.previewTile.dataset.talking = "true";
    if (scripted && message.text) {
      els.caption.textContent = message.text;
      els.caption.hidden = false;
    }
  } else if (kind === "stopped_talking") {
    els.previewTile.dataset.talking = "false";
    if (scripted) {
      els.caption.hidden = true;
      els.caption.textContent = "";
    }
  }
  if (kind === "state" && message.state) els.previewTile.dataset.avatar = message.state;
}
