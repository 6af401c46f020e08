// The agent's side of a call's media: camera and microphone, the preview of exactly what the
// customer sees (the composite, back on the camera's section), the customer's camera, screen
// and voice, screen sharing, the layout and the live latency receipt.
// agent.js owns the protocol flow and calls in here.

import { QUALITY_WORDS } from "./call-quality.js";
import { SelfView, attach, canShareScreen, openDevices, screenSharing } from "./media.js";
import { MediaSession } from "./session.js";
import { $, announce, el, notice } from "./ui.js";

const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

const state = {
  mic: null,
  camera: null,
  screen: null,
  media: null,
  send: null,
  muted: false,
  layout: "agent",
  limits: null, // the server's sender_limits for our screen (its CPU is short), if any
  ownCamera: false, // the customer's picture is our camera as it came: the preview shows it here
};

const { toggle: toggleShare, stop: stopShare } = screenSharing(state, renderControls);
// Our camera in the preview tile while the customer's picture is that camera as it came: scaled
// to the tile (a full 1280x720 picture scaled down on every frame costs the machine more).
const selfView = new SelfView({ width: { max: 640 }, height: { max: 360 } });

const DEVICE_WORDS = {
  denied: "not allowed",
  missing: "not found",
  busy: "in use by another app",
  unsupported: "not supported here",
  error: "could not start",
};

async function devices() {
  if (state.mic || state.camera) return;
  const result = await openDevices({ audio: true, video: CAMERA });
  state.mic = result.mic;
  state.camera = result.camera;
  const box = $("device-message");
  box.dataset.camera = result.cameraState;
  box.dataset.mic = result.micState;
  const problems = [];
  if (result.cameraState !== "ok") {
    problems.push(`Camera ${DEVICE_WORDS[result.cameraState]}: the customer sees a tile with your initials.`);
  }
  if (result.micState !== "ok") problems.push(`Microphone ${DEVICE_WORDS[result.micState]}: the customer cannot hear you.`);
  box.textContent = problems.join(" ");
  box.hidden = !problems.length;
}

/** A call started (or was taken over by this tab): offer our media to the server. */
export async function startMedia(send) {
  state.send = send;
  await devices();
  if (state.send !== send) return; // the call ended meanwhile
  stopShare({ tell: false });
  state.media?.close();
  const media = new MediaSession({
    role: "agent",
    send,
    onState: onPeerState,
    onStats: showQuality,
    // A network change: connect afresh; the call goes on meanwhile.
    onLost: () => state.send === send && startMedia(send).catch(console.error),
  });
  state.media = media;
  if (state.limits) media.limit("screen", state.limits); // applied once negotiated
  if (state.mic) state.mic.enabled = !state.muted;
  await media.negotiate({ mic: state.mic, camera: state.camera });
  if (state.media !== media) return;
  showPreview();
  attach($("remote-video"), media.receiver("customer_camera"));
  attach($("customer-screen"), media.receiver("customer_screen"));
  watch(media.receiver("customer_camera"), $("remote-video"));
  watch(media.receiver("customer_screen"), $("customer-screen"));
  attach($("remote-audio"), media.receiver("mic"));
  $("remote-audio").play().then(
    () => ($("enable-sound").hidden = true),
    () => ($("enable-sound").hidden = false),
  );
  renderControls();
}

/** Mark a tile live while its track receives media (the customer's camera may be off or refused). */
function watch(track, video) {
  const tile = video.closest(".tile");
  tile.dataset.live = String(Boolean(track) && !track.muted);
  if (!track) return;
  track.onmute = () => (tile.dataset.live = "false");
  track.onunmute = () => (tile.dataset.live = "true");
}

export function onAnswer(message) {
  state.media?.answer(message.sdp);
}

/** The call is over: close the connection and free the camera and microphone. */
/** A supervisor listens to the call, or whispers (docs/protocol.md, `supervisor`): the documented
 * indicator; the customer is not told. */
export function onSupervisor(message) {
  let line = document.querySelector('[data-testid="supervisor-indicator"]');
  if (!line) {
    line = el("p", { "data-testid": "supervisor-indicator", class: "peer", role: "status" });
    $("peer-status").after(line);
  }
  const { watching, whispering } = message;
  line.dataset.call = message.call_id;
  line.dataset.watching = String(watching);
  line.dataset.whispering = String(Boolean(whispering));
  line.hidden = watching < 1;
  const who = watching > 1 ? `${watching} supervisors are` : "A supervisor is";
  line.textContent = whispering
    ? `${who} listening. A supervisor is whispering to you: the customer cannot hear them.`
    : `${who} listening to this call (the customer is not told).`;
  if (watching > 0) announce(line.textContent);
}

export function stopMedia() {
  const supervisors = document.querySelector('[data-testid="supervisor-indicator"]');
  if (supervisors) supervisors.hidden = true;
  stopShare({ tell: false });
  state.media?.close();
  state.media = null;
  state.send = null;
  for (const name of ["preview-video", "remote-video", "customer-screen", "remote-audio"]) attach($(name), null);
  for (const tile of document.querySelectorAll(".agent-media .tile")) tile.dataset.live = "false";
  state.mic?.stop();
  state.camera?.stop();
  selfView.stop();
  state.mic = state.camera = null;
  state.muted = false;
  state.layout = "agent";
  state.ownCamera = false; // the server says it again for the next call's picture
  state.limits = null; // the server says them again at the next call if it still needs them
  delete $("media").dataset.screenLimit;
  $("customer-screen-tile").hidden = true;
  $("receipt").querySelector("tbody").replaceChildren();
  $("receipt-browsers").querySelector("tbody").replaceChildren();
  $("receipt-total").textContent = "waiting for media…";
  showQuality({ quality: "connecting" });
  renderControls();
}

/** The preview: what the customer sees as the server sends it back; or, while that picture is
 * our camera as it came (the server then holds that stream: decoding our own camera a second
 * time costs this machine CPU and adds nothing), the camera itself. */
function showPreview() {
  const own = state.ownCamera && state.camera?.enabled;
  attach($("preview-video"), own ? selfView.of(state.camera) : state.media?.receiver("camera") || null);
  $("preview-video").dataset.source = own ? "own_camera" : "program";
  // Glass to glass and the call's quality are the server's picture's, not our own camera's.
  state.media?.watch(own ? null : $("preview-video"));
  state.media?.rateVideo(!own);
}


export function onPreview(message) {
  state.ownCamera = message.source === "own_camera";
  if (state.media) showPreview();
}

export function onLayout(message) {
  state.layout = message.layout;
  $("layout-select").value = message.layout;
  $("media").dataset.layout = message.layout;
  announce(`Layout: ${$("layout-select").selectedOptions[0]?.textContent || message.layout}.`);
}

export function onScreenShare(message) {
  if (message.from !== "customer") return;
  $("customer-screen-tile").hidden = !message.active;
  announce(message.active ? "The customer is sharing their screen." : "The customer stopped sharing their screen.");
}

/**
 * The server's CPU is short (or no longer is): hold our screen sender to its limits, so the
 * server decodes and composes fewer screen pixels (docs/protocol.md, "Capacity"). Never the camera.
 */
export function onSenderLimits(message) {
  const screen = message.screen || {};
  state.limits = { maxFramerate: screen.max_fps ?? null, scaleResolutionDownBy: screen.scale_down_by || 1 };
  state.media?.limit("screen", state.limits);
  const media = $("media");
  if (media.dataset.screenLimit === message.step) return;
  media.dataset.screenLimit = message.step;
  announce(
    message.step === "full"
      ? "The server has room again: your screen share is sent in full."
      : "The server is busy: your screen share is sent at a lower frame rate or size for now.",
  );
}

export function onMediaStatus(message) {
  if (message.role === "customer") $("media").dataset.customer = message.state;
}

/** The live latency receipt: server stages (p50/p95 ms) and the browsers' own figures. */
export function onReceipt(message) {
  const stages = message.stages || {};
  const ms = (value) => (Number.isFinite(value) ? value.toFixed(1) : "–");
  const server = Object.keys(stages)
    .filter((stage) => !/^(agent|customer)_/.test(stage))
    .sort();
  $("receipt").querySelector("tbody").replaceChildren(
    ...server.map((stage) => {
      const f = stages[stage];
      return el("tr", { "data-stage": stage }, el("th", { scope: "row" }, stage.replaceAll("_", " ")), el("td", {}, ms(f.p50)), el("td", {}, ms(f.p95)), el("td", {}, f.count ?? ""));
    }),
  );
  const figures = new Set(
    Object.keys(stages)
      .filter((stage) => /^(agent|customer)_/.test(stage))
      .map((stage) => stage.replace(/^(agent|customer)_/, "")),
  );
  const cell = (role, name) => {
    const f = stages[`${role}_${name}`];
    return el("td", { "data-stage": `${role}_${name}` }, f ? ms(f.p50) : "–");
  };
  $("receipt-browsers").querySelector("tbody").replaceChildren(
    ...[...figures].sort().map((name) => el("tr", {}, el("th", { scope: "row" }, name.replaceAll("_", " ")), cell("customer", name), cell("agent", name))),
  );
  // The server's share: the first packet of the agent's frame in -> the composite's last packet out.
  const serverShare = stages.server?.p50;
  const jitter = stages.customer_jitter_buffer_ms?.p50;
  const glass = stages.customer_glass_to_glass_ms?.p50;
  const missing = Object.entries(message.missing || {}).flatMap(([role, names]) => names.map((name) => `${role}: no ${name}`));
  $("receipt-total").textContent = [
    Number.isFinite(glass) ? `camera to customer's screen p50 ${glass.toFixed(0)} ms` : null,
    Number.isFinite(serverShare) ? `server p50 ${serverShare.toFixed(1)} ms` : "waiting for media…",
    Number.isFinite(jitter) ? `customer jitter buffer ${jitter.toFixed(1)} ms` : null,
    missing.length ? `missing: ${missing.join(", ")}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

function onPeerState(pcState) {
  $("media").dataset.connection = pcState;
  if (pcState === "failed") notice("The video connection was lost. Reconnecting…", "error");
}

function showQuality(figures) {
  const indicator = $("call-quality");
  const quality = figures.quality || "connecting";
  indicator.dataset.quality = quality;
  let words = QUALITY_WORDS[quality];
  if (figures.frames > 0) words += ` · ${Math.round(figures.fps)} fps`;
  $("call-quality-text").textContent = words;
}

// ------------------------------------------------------------------ controls

function renderControls() {
  const inCall = Boolean(state.media);
  const mute = $("mute");
  mute.disabled = !inCall || !state.mic;
  mute.setAttribute("aria-pressed", String(state.muted));
  const camera = $("camera-toggle");
  camera.disabled = !inCall || !state.camera;
  const off = Boolean(state.camera) && !state.camera.enabled;
  camera.textContent = off ? "Turn camera on" : "Turn camera off";
  const share = $("share-screen");
  share.disabled = !inCall || !canShareScreen();
  share.setAttribute("aria-pressed", String(Boolean(state.screen)));
  const layout = $("layout-select");
  layout.disabled = !inCall;
  layout.value = state.layout;
}

$("mute").addEventListener("click", () => {
  if (!state.mic) return;
  state.muted = !state.muted;
  state.mic.enabled = !state.muted;
  renderControls();
  announce(state.muted ? "Your microphone is muted." : "Your microphone is on.");
});

$("camera-toggle").addEventListener("click", async () => {
  if (!state.camera || !state.media) return;
  // Off: stop sending (the customer's tile freezes on the last frame, then the placeholder
  // shows once the server notices); on: send the same track again. No renegotiation.
  const on = !state.camera.enabled;
  state.camera.enabled = on;
  await state.media.replace("camera", on ? state.camera : null);
  showPreview();
  renderControls();
  announce(on ? "Your camera is on." : "Your camera is off.");
});

$("share-screen").addEventListener("click", toggleShare);

$("layout-select").addEventListener("change", (event) => {
  if (!state.send?.("set_layout", { layout: event.target.value })) {
    event.target.value = state.layout; // not sent: keep showing the layout in force
  }
});

$("enable-sound").addEventListener("click", () => {
  $("remote-audio").play().then(() => ($("enable-sound").hidden = true), () => {});
});

renderControls();
