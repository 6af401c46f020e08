// The customer's side of a call's media: the device check, the composite and the own-camera
// preview, mute, camera on/off, screen sharing and the call-quality indicator. When the server
// greets the wait, the same media starts while waiting: the composite (the avatar) shows in the
// waiting view's `greeter-video`, and when the call starts the same connection and stream move
// to the call view's `remote-video` (which always means the call's composite).
// customer.js owns the protocol flow and calls in here; this file knows the page's
// elements, `media.js` (devices) and `session.js` (the connection).

import { QUALITY_WORDS } from "./call-quality.js";
import { SelfView, attach, canShareScreen, openDevices, screenSharing } from "./media.js";
import { MediaSession } from "./session.js";
import { $, announce, notice } from "./ui.js";

const CAMERA = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } };
// The self-view tile is about a quarter of the stage's width: this is all it shows.
const selfView = new SelfView({ width: { max: 320 }, height: { max: 180 } });

const state = {
  devices: null, // promise of openDevices' result
  mic: null,
  camera: null,
  screen: null,
  media: null,
  send: null, // the protocol client's send, while media runs
  greeting: false, // the media runs for the wait (the greeter), not yet for a call
  muted: false,
};

const { toggle: toggleShare, stop: stopShare } = screenSharing(state, renderControls);

// ------------------------------------------------------------------ device check

const MESSAGES = {
  camera: {
    denied: "You did not allow the camera, so the agent will not see you. You can still see and hear them. To turn it on, allow the camera for this site in your browser, then press “Turn camera on”.",
    missing: "No camera was found, so the agent will not see you. You can still see and hear them.",
    busy: "Your camera is in use by another app, so the agent will not see you.",
    unsupported: "This browser cannot use a camera or microphone on this page. You can still use the chat.",
    error: "Your camera could not be started, so the agent will not see you.",
  },
  mic: {
    denied: "You did not allow the microphone, so the agent cannot hear you. You can still use the chat, or allow the microphone for this site in your browser and reload.",
    missing: "No microphone was found, so the agent cannot hear you. You can still use the chat.",
    busy: "Your microphone is in use by another app, so the agent cannot hear you. You can still use the chat.",
    unsupported: "",
    error: "Your microphone could not be started, so the agent cannot hear you. You can still use the chat.",
  },
};

/** Ask for the camera (when wanted) and the microphone; show what came of it. Runs once per conversation. */
export function checkDevices({ camera = true } = {}) {
  if (!state.devices) {
    state.devices = openDevices({ audio: true, video: camera ? CAMERA : false }).then((result) => {
      state.mic = result.mic;
      state.camera = result.camera;
      showDevices(result, camera);
      return result;
    });
  }
  return state.devices;
}

function showDevices(result, wanted) {
  const box = $("device-message");
  box.dataset.camera = wanted ? result.cameraState : "off";
  box.dataset.mic = result.micState;
  const lines = [];
  if (result.cameraState === "unsupported") {
    lines.push(MESSAGES.camera.unsupported);
  } else {
    if (wanted && result.cameraState !== "ok") lines.push(MESSAGES.camera[result.cameraState]);
    if (result.micState !== "ok") lines.push(MESSAGES.mic[result.micState]);
  }
  box.textContent = lines.filter(Boolean).join(" ");
  box.hidden = !box.textContent;
  box.dataset.kind = result.micState === "ok" ? "info" : "error";
  if (box.textContent) announce(box.textContent);
}

// ------------------------------------------------------------------ the call

/**
 * Offer our media to the server: the call started (or resumed after a rejoin), or, with
 * `greeting`, the server greets the wait. Any older connection is replaced.
 */
export async function startMedia(send, { greeting = false } = {}) {
  state.send = send;
  state.greeting = greeting;
  try {
    await negotiate(send);
  } catch (error) {
    if (state.send === send && !state.media) state.send = null; // nothing started after all
    throw error;
  }
}

async function negotiate(send) {
  await checkDevices();
  if (state.send !== send) return; // the call (or the wait) ended while we waited
  stopShare({ tell: false });
  state.media?.close();
  const media = new MediaSession({
    role: "customer",
    send,
    onState: onPeerState,
    onStats: showQuality,
    // A network change (Wi-Fi to mobile): connect afresh; the call goes on meanwhile.
    onLost: () => state.send === send && !state.greeting && negotiate(send).catch(console.error),
  });
  state.media = media;
  if (state.mic) state.mic.enabled = !state.muted;
  showRemote();
  // With no camera the camera section is receive-only (the sections table says so).
  await media.negotiate({ mic: state.mic, camera: state.camera });
  if (state.media !== media) return;
  showRemote();
}

/** Whether media started (or is starting) for this conversation: the call must not offer again. */
export function mediaStarted() {
  return Boolean(state.media) || Boolean(state.send);
}

/** The call started on the connection made while waiting: the same stream moves to the call view. */
export function carryIntoCall() {
  state.greeting = false;
  showRemote();
}

/** The composite to the waiting view's or the call view's video, and the sound on. */
function showRemote() {
  const media = state.media;
  const video = media?.receiver("camera") || null;
  attach($("greeter-video"), state.greeting ? video : null);
  attach($("remote-video"), state.greeting ? null : video);
  media?.watch($(state.greeting ? "greeter-video" : "remote-video"));
  $("greeter-media").hidden = !(state.greeting && media);
  if (attachAudio(media?.receiver("mic") || null)) {
    $("remote-audio").play().then(
      () => ($("enable-sound").hidden = true),
      () => ($("enable-sound").hidden = false),
    );
  }
  renderControls();
}

function attachAudio(track) {
  const audio = $("remote-audio");
  const current = audio.srcObject?.getTracks?.()[0] || null;
  if (current === track) return false;
  attach(audio, track);
  return Boolean(track);
}

export function onAnswer(message) {
  state.media?.answer(message.sdp);
}

/** The call is over (or the agent dropped): close the connection; `release` also frees the devices. */
export function stopMedia({ release = false } = {}) {
  stopShare({ tell: false });
  state.media?.close();
  state.media = null;
  state.send = null;
  state.greeting = false;
  attach($("remote-video"), null);
  attach($("greeter-video"), null);
  attach($("remote-audio"), null);
  $("greeter-media").hidden = true;
  showQuality({ quality: "connecting" });
  if (release) {
    state.mic?.stop();
    state.camera?.stop();
    selfView.stop();
    state.mic = state.camera = null;
    state.devices = null;
    state.muted = false;
  }
  renderControls();
}

function onPeerState(pcState) {
  $("media").dataset.connection = pcState;
  $("greeter-media").dataset.connection = pcState;
  if (pcState !== "failed") return;
  if (state.greeting) {
    // The greeter is a nicety: the wait goes on without it, and the call offers afresh.
    state.media?.close();
    state.media = null;
    state.send = null;
    showRemote();
    return;
  }
  notice("The video connection was lost. Reconnecting…", "error");
}

function showQuality(figures) {
  const indicator = $("call-quality");
  const quality = figures.quality || "connecting";
  const changed = indicator.dataset.quality !== quality;
  indicator.dataset.quality = quality;
  let words = QUALITY_WORDS[quality];
  if (figures.frames > 0) words += ` · ${Math.round(figures.fps)} fps`;
  // Camera to this screen, as the agent's capture time rode with each frame.
  if (Number.isFinite(figures.glass_to_glass_ms)) words += ` · ${Math.round(figures.glass_to_glass_ms)} ms delay`;
  $("call-quality-text").textContent = words;
  // Announced only when the level changes (the figures themselves change every few seconds).
  if (changed && quality === "poor") announce("The connection is poor: the video may freeze.");
  else if (figures.frames > 0 && state.media && !state.media.announced) {
    state.media.announced = true;
    announce("The video is playing.");
  }
}

// ------------------------------------------------------------------ controls

function renderControls() {
  const inCall = Boolean(state.media) && !state.greeting;
  // Toggle buttons keep their name and say their state with aria-pressed; the camera
  // button says what it will do instead (so it has no aria-pressed).
  for (const mute of [$("mute"), $("greeter-mute")]) {
    mute.disabled = !state.media || !state.mic;
    mute.setAttribute("aria-pressed", String(state.muted));
  }
  const camera = $("camera-toggle");
  const on = Boolean(state.camera);
  camera.disabled = !inCall;
  camera.textContent = on ? "Turn camera off" : "Turn camera on";
  attach($("local-video"), selfView.of(state.camera));
  $("local-video").hidden = !on;
  const share = $("share-screen");
  share.hidden = !canShareScreen();
  share.disabled = !inCall;
  share.setAttribute("aria-pressed", String(Boolean(state.screen)));
}

function toggleMute() {
  if (!state.mic) return;
  state.muted = !state.muted;
  state.mic.enabled = !state.muted;
  renderControls();
  announce(state.muted ? "Your microphone is muted." : "Your microphone is on.");
}

$("mute").addEventListener("click", toggleMute);
$("greeter-mute").addEventListener("click", toggleMute);

$("camera-toggle").addEventListener("click", async () => {
  if (!state.media) return;
  if (state.camera) {
    await state.media.replace("camera", null);
    state.camera.stop();
    state.camera = null;
    renderControls();
    announce("Your camera is off.");
    return;
  }
  const result = await openDevices({ audio: false, video: CAMERA });
  if (!result.camera) {
    showDevices({ ...result, micState: state.mic ? "ok" : "missing" }, true);
    return;
  }
  state.camera = result.camera;
  if (state.media.canSend("camera")) {
    await state.media.replace("camera", state.camera);
    renderControls();
  } else {
    await startMedia(state.send, { greeting: state.greeting }); // the camera section was receive-only: offer again
  }
  $("device-message").hidden = true;
  announce("Your camera is on.");
});

$("share-screen").addEventListener("click", toggleShare);

$("enable-sound").addEventListener("click", () => {
  $("remote-audio").play().then(() => ($("enable-sound").hidden = true), () => {});
});

renderControls();
