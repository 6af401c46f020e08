// The devices and elements of media, for every page: the camera and microphone, a shared
// screen, and <video>/<audio> elements. The peer connection that carries them to the
// server is session.js's MediaSession.

import { announce } from "./ui.js";

/** Why a device could not be used: "denied" | "missing" | "busy" | "unsupported" | "error". */
function deviceProblem(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "denied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "missing";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "busy";
    default:
      return "error";
  }
}

/**
 * Ask for the camera and the microphone (`video`, `audio`: constraints, or false for none).
 * Never throws: each device is "ok" or why not.
 * @returns {Promise<{mic: MediaStreamTrack|null, camera: MediaStreamTrack|null, micState: string, cameraState: string}>}
 */
export async function openDevices({ video = {}, audio = true } = {}) {
  const result = { mic: null, camera: null, micState: "off", cameraState: "off" };
  const devices = navigator.mediaDevices;
  if (!devices?.getUserMedia) {
    result.micState = result.cameraState = "unsupported";
    return result;
  }
  const take = async (constraints) => (await devices.getUserMedia(constraints)).getTracks()[0];
  if (audio && video) {
    try {
      const stream = await devices.getUserMedia({ audio, video });
      result.mic = stream.getAudioTracks()[0] || null;
      result.camera = stream.getVideoTracks()[0] || null;
      result.micState = result.mic ? "ok" : "missing";
      result.cameraState = result.camera ? "ok" : "missing";
      return result;
    } catch {
      // One of them is refused or missing: ask for each alone to tell which.
    }
  }
  if (audio) {
    try {
      result.mic = await take({ audio });
      result.micState = "ok";
    } catch (error) {
      result.micState = deviceProblem(error);
    }
  }
  if (video) {
    try {
      result.camera = await take({ video });
      result.cameraState = "ok";
    } catch (error) {
      result.cameraState = deviceProblem(error);
    }
  }
  return result;
}

/** Ask for a screen, window or tab to share; null when refused or unsupported. */
export async function openScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) return null;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    return stream.getVideoTracks()[0] || null;
  } catch {
    return null;
  }
}

export const canShareScreen = () => Boolean(navigator.mediaDevices?.getDisplayMedia);

/**
 * Screen sharing on a call page whose `state` holds {media, screen, send}: `toggle` for the
 * share button, `stop({tell})` also when the call ends or offers again. Sharing is a
 * `replaceTrack` on the "screen" section plus a `screen_share` message, never a renegotiation.
 */
export function screenSharing(state, render) {
  function stop({ tell }) {
    if (!state.screen) return;
    const track = state.screen;
    state.screen = null;
    track.stop();
    state.media?.replace("screen", null);
    if (tell) {
      state.send?.("screen_share", { active: false });
      announce("You stopped sharing your screen.");
    }
    render();
  }

  async function toggle() {
    if (!state.media) return;
    if (state.screen) {
      stop({ tell: true });
      return;
    }
    const track = await openScreen();
    if (!track || !state.media) {
      track?.stop();
      return;
    }
    state.screen = track;
    track.addEventListener("ended", () => stop({ tell: true }));
    await state.media.replace("screen", track);
    state.send?.("screen_share", { active: true });
    render();
    announce("You are sharing your screen.");
  }

  return { toggle, stop };
}

/**
 * A copy of a camera for a self-view tile, scaled to the tile where the camera can be (a real one
 * can; what is sent keeps its own size): a full-size picture scaled down on every frame costs the
 * page more.
 *   const selfView = new SelfView({ width: { max: 320 }, height: { max: 180 } });
 *   attach(video, selfView.of(camera));   // the same copy while `camera` is the same track
 */
export class SelfView {
  constructor(constraints) {
    this.constraints = constraints;
    this.source = null;
    this.track = null;
  }

  /** The copy of `source` (null: none, and the last copy is stopped). */
  of(source) {
    if (!source || source.readyState === "ended") {
      this.stop();
      return null;
    }
    if (this.source !== source || this.track.readyState === "ended") {
      this.track?.stop();
      this.track = source.clone();
      this.track.applyConstraints(this.constraints).catch(() => {}); // else as the camera is
      this.source = source;
    }
    return this.track;
  }

  stop() {
    this.track?.stop();
    this.source = this.track = null;
  }
}

/** Show `track` (or nothing) in a <video> or <audio> element, and start it playing. */
export function attach(element, track) {
  const current = element.srcObject?.getTracks?.()[0] || null;
  if (current !== track) element.srcObject = track ? new MediaStream([track]) : null;
  if (track) element.play().catch(() => {}); // muted videos always may; audio may need a click
}
