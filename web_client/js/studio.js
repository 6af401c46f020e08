// The operator studio (/studio): log in with an operator token, start the brand's avatar host,
// drive it with your own face and voice, and steer it with script commands, expressions,
// gestures and captions. Speaks only the protocol in docs/protocol.md ("Avatar host").

import { attach } from "./media.js";
import { CLOSE, ProtocolClient } from "./protocol.js";
import { logEvent } from "./studio-events.js";
import { guardrails } from "./studio-looks.js";
import { LevelMeter, openOperatorDevices, showDevices } from "./studio-media.js";
import { onShortcut, pressExpression, showPads } from "./studio-pads.js";
import { pollHostStatus, stopPollingHostStatus } from "./studio-poll.js";
import { els, setBadge, showStudio, showTalking } from "./studio-view.js";
import { MediaSession, useIceServers } from "./session.js";
import { $, announce, clearNotice, notice, session, showView, takeToken } from "./ui.js";

const TOKEN_STORE = "telepresence.operator_token";
const DRIVE_STORE = "telepresence.studio_drives"; // the host id this tab drives (kept over a reload)

const page = {
  client: null,
  token: null,
  name: null,
  connection: "closed",
  host: "stopped", // stopped | starting | running | stopping (what we know of the server's host)
  hostId: null,
  look: null, // the running host's look, from host_status
  viewers: 0,
  devices: null, // Promise of openOperatorDevices() for this run of the host
  tracks: { mic: null, camera: null },
  lastSent: null, // the type of the last host message: errors are not tied to messages
  handedOver: false,
  mediaPending: false, // an offer is being prepared
  drive: false, // this tab drives the host with its camera and microphone
  foreignHost: false, // host_start was refused because a host already runs: offer to stop it
};

const meter = new LevelMeter($("mic-level"));
// The operator's mic and camera go out; the live avatar comes back on the camera's section.
// No stats: an operator's media_stats is refused (docs/protocol.md).
const media = new MediaSession({
  role: "operator",
  send: (type, fields) => send(type, fields),
  onState: onMediaState,
  stats: false,
});

// ------------------------------------------------------------------ session

function send(type, fields = {}) {
  if (!page.client?.send(type, fields)) {
    notice("Not connected to the server: try again in a moment.", "error");
    return false;
  }
  if (type.startsWith("host_")) page.lastSent = type;
  return true;
}

function login(token) {
  page.token = token;
  page.client?.close();
  const client = new ProtocolClient({ hello: (c) => c.send("login", { token: page.token }) });
  page.client = client;
  client.on("logged_in", useIceServers); // before onLoggedIn, which may offer media at once
  client.on("logged_in", onLoggedIn);
  client.on("host_status", onHostStatus);
  client.on("host_event", onHostEvent);
  client.on("webrtc_answer", (m) => onAnswer(m));
  client.on("error", onError);
  client.onState(onConnection);
  client.connect();
  pollHostStatus(page, { onHostStatus, render });
}

function logout(message) {
  stopPollingHostStatus();
  page.client?.close();
  page.client = null;
  session()?.removeItem(TOKEN_STORE);
  releaseMedia();
  setHost("stopped");
  page.name = null;
  setBadge("logged_out", "Logged out");
  showView("login");
  const error = $("login-error");
  error.textContent = message;
  error.hidden = !message;
  $("token-input").focus();
}

// ------------------------------------------------------------ server messages

function onLoggedIn(message) {
  if (message.role !== "operator") {
    logout(
      `This is an ${message.role} token: the studio needs an operator token ` +
        "(telepresence token NAME --role operator).",
    );
    return;
  }
  page.name = message.name;
  $("operator-name").textContent = `· ${message.name}`;
  $("login-error").hidden = true;
  if (document.body.dataset.screen !== "studio") {
    showView("studio");
    announce(`Logged in as ${message.name}. Choose a look and start the host.`);
  }
  // A host_status follows (docs/protocol.md): it says whether the host still runs.
  render();
}

function onHostStatus(message) {
  page.foreignHost = false;
  if (!message.running) {
    const wasRunning = page.host === "running" || page.host === "stopping";
    releaseMedia();
    setHost("stopped");
    if (wasRunning) announce("The host has stopped.");
    return;
  }
  const fresh = page.host !== "running" || message.host_id !== page.hostId;
  page.hostId = message.host_id ?? page.hostId;
  page.viewers = message.viewers ?? page.viewers;
  if (message.spec && message.spec !== page.look) {
    page.look = message.spec;
    if ([...els.look.options].some((o) => o.value === message.spec)) els.look.value = message.spec;
    renderPads(message.spec, message);
    if (!fresh) announce(`The avatar now wears the ${guardrails(message.spec).name} look.`);
  }
  setHost("running");
  if (fresh) {
    page.handedOver = false;
    announce(`The host is live as ${guardrails(page.look).name}.`);
  }
  // The tab that started the host drives it (again, after a reload or a dropped connection).
  // A host started elsewhere is only driven from here when the operator asks (host-drive):
  // the server takes one studio connection per host, so a new one replaces the old.
  if (session()?.getItem(DRIVE_STORE) === page.hostId) page.drive = true;
  const connection = media.pc?.connectionState;
  if (page.drive && (fresh || !media.active || connection === "failed" || connection === "closed")) connectMedia();
  render();
}

function onHostEvent(message) {
  showTalking(message);
  logEvent(els.events, message);
}

async function onAnswer(message) {
  if (message.host_id && page.hostId && message.host_id !== page.hostId) return; // an older host
  await media.answer(message.sdp);
  attach(els.preview, media.receiver("camera"));
}

function onError(message) {
  const { code } = message;
  const text = message.message || code;
  if (code === "auth_failed") {
    logout(`The server refused this token: ${text}`);
    return;
  }
  if (code === "invalid_command") {
    els.commandError.textContent = `The avatar did not do that: ${text}`;
    els.commandError.hidden = false;
    logEvent(els.events, { kind: "error", text });
    return;
  }
  if (code === "invalid_spec") {
    if (page.look) els.look.value = page.look; // the old look stays
    if (page.host === "starting") setHost("stopped");
    notice(`That look cannot be used: ${text}`, "error");
    return;
  }
  if (code === "out_of_order") {
    if (page.host === "starting") {
      // Most likely a host already runs (another tab or operator): offer to stop it.
      releaseMedia();
      page.foreignHost = true;
      setHost("stopped");
    } else if (page.host === "running" && /no host/i.test(text)) {
      releaseMedia();
      setHost("stopped");
    }
  }
  if (["bad_sdp", "no_video", "unsupported_codec"].includes(code)) {
    notice(`The studio's camera and preview could not connect: ${text}`, "error");
    return;
  }
  if (code === "rate_limited") {
    notice("Too many commands at once: that one was dropped. Slow down a little.", "error");
    return;
  }
  notice(text, "error");
  logEvent(els.events, { kind: "error", text });
}

function onConnection(state, code) {
  page.connection = state;
  const banner = $("connection-banner");
  banner.hidden = state !== "reconnecting";
  if (state === "reconnecting") $("connection-text").textContent = "Connection lost: reconnecting…";
  if (state === "closed" && code === CLOSE.REPLACED) {
    logout("The studio was opened in another tab, which took over.");
  }
  render();
}

// ------------------------------------------------------------------ media

async function connectMedia() {
  if (page.mediaPending) return;
  page.mediaPending = true;
  try {
    await offerMedia();
  } finally {
    page.mediaPending = false;
  }
}

async function offerMedia() {
  if (page.hostId) session()?.setItem(DRIVE_STORE, page.hostId);
  if (!page.devices) page.devices = openOperatorDevices();
  const devices = await page.devices;
  if (page.host !== "running") return;
  page.tracks = { mic: devices.mic, camera: devices.camera };
  showDevices(els, devices);
  attach(els.camera, devices.camera);
  els.camera.closest("figure").dataset.live = String(Boolean(devices.camera));
  meter.start(devices.mic);
  await media.negotiate({ mic: devices.mic, camera: devices.camera });
  attach(els.preview, media.receiver("camera"));
}

function releaseMedia() {
  media.close();
  meter.stop();
  for (const track of [page.tracks.mic, page.tracks.camera]) track?.stop();
  page.tracks = { mic: null, camera: null };
  const pending = page.devices;
  page.devices = null;
  // Devices still being asked for: stop them when they arrive.
  pending?.then((d) => {
    if (page.devices !== pending) [d.mic, d.camera].forEach((t) => t?.stop());
  });
  attach(els.preview, null);
  attach(els.camera, null);
  els.camera.closest("figure").dataset.live = "false";
  els.previewTile.dataset.live = "false";
  els.caption.hidden = true;
}

function onMediaState(state) {
  els.previewTile.dataset.connection = state;
  if ((state === "failed" || state === "closed") && page.host === "running") {
    notice(
      "Your camera, microphone and preview lost their connection to the server (another studio may have " +
        "taken over driving). Press “Drive from here” to connect again.",
      "error",
    );
    media.close();
    render();
  }
}

// ------------------------------------------------------------------ state

function render() {
  showStudio(page, media.active || page.mediaPending);
}

function setHost(state) {
  page.host = state;
  if (state === "stopped") {
    page.drive = false;
    session()?.removeItem(DRIVE_STORE);
    page.hostId = null;
    page.look = null;
    page.viewers = 0;
    renderPads(els.look.value);
  }
  render();
}


// ------------------------------------------------------------------ pads

function renderPads(look, status = {}) {
  showPads(els, look, status, (kind, name) => (kind === "expression" ? expression(name) : gesture(name)));
  render();
}

// ------------------------------------------------------------------ commands

function command(line) {
  els.commandError.hidden = true;
  return send("host_command", { command: line });
}

function expression(name) {
  if (!command(`expression ${name}`)) return;
  pressExpression(els.expressions, name);
}

function gesture(name) {
  command(`gesture ${name}`);
}

function interrupt() {
  if (page.host !== "running") return;
  if (send("host_interrupt")) {
    els.caption.hidden = true;
    announce("Interrupted: speech stopped and the queue cleared.");
  }
}

function handover() {
  if (send("host_handover")) {
    page.handedOver = true;
    announce("Handed over: customers now see their human agent.");
    logEvent(els.events, { kind: "handover", text: "calls handed over to their agents" });
  }
}

// ------------------------------------------------------------------ wiring

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  session()?.setItem(TOKEN_STORE, token);
  $("token-input").value = "";
  login(token);
});

els.start.addEventListener("click", () => {
  clearNotice();
  if (!send("host_start", { spec: els.look.value })) return;
  setHost("starting");
  page.drive = true;
  page.devices = openOperatorDevices(); // ask while the server starts the host
});

els.stop.addEventListener("click", () => {
  clearNotice();
  if (!send("host_stop")) return;
  if (page.host === "running") setHost("stopping");
});

els.look.addEventListener("change", () => {
  clearNotice();
  if (page.host === "running") send("host_look", { spec: els.look.value });
  else renderPads(els.look.value);
});

els.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.say.value.trim().replace(/\s+/g, " ");
  if (!text) return;
  if (command(`say ${text}`)) els.say.value = "";
  els.say.focus();
});

els.scriptForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.script.value.trim();
  if (!text) return;
  els.commandError.hidden = true;
  send("host_script", { text });
});

els.drive.addEventListener("click", () => {
  clearNotice();
  page.drive = true;
  connectMedia().then(render);
  render();
});
els.interrupt.addEventListener("click", interrupt);
els.handover.addEventListener("click", handover);
els.preview.addEventListener("loadeddata", () => (els.previewTile.dataset.live = "true"));
document.addEventListener("keydown", (event) =>
  onShortcut(event, {
    live: page.host === "running" && document.body.dataset.screen === "studio",
    interruptButton: els.interrupt,
    interrupt,
  }),
);
window.addEventListener("pagehide", () => releaseMedia());

renderPads(els.look.value);
const token = takeToken(TOKEN_STORE);
if (token) {
  login(token);
} else {
  showView("login", { focus: false });
  $("token-input").focus();
}
