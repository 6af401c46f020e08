// WebRTC for both pages, as docs/protocol.md ("WebRTC") asks: media flows between each
// browser and the server, which mixes one composite for the customer.
//
// - The transceivers are created in the documented order, before the offer; the server
//   maps them by position. Screen transceivers exist from the start: sharing is a
//   `replaceTrack` plus a `screen_share` message, never a renegotiation.
// - aiortc has no trickle ICE: the offer goes out once ICE gathering is complete.
// - A reconnect (or a reload) into a live call simply offers again: the server replaces
//   that side's connection.

import { announce } from "./ui.js";

const ICE_GATHER_MS = 4000; // send what we have after this, rather than never
const STATS_MS = 2000; // quality indicator refresh
const REPORT_EVERY = 3; // media_stats every third stats round (6 s)

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
 * `replaceTrack` on section 3 plus a `screen_share` message, never a renegotiation.
 */
export function screenSharing(state, render) {
  function stop({ tell }) {
    if (!state.screen) return;
    const track = state.screen;
    state.screen = null;
    track.stop();
    state.media?.replace(2, null);
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
    await state.media.replace(2, track);
    state.send?.("screen_share", { active: true });
    render();
    announce("You are sharing your screen.");
  }

  return { toggle, stop };
}

/** Show `track` (or nothing) in a <video> or <audio> element, and start it playing. */
export function attach(element, track) {
  const current = element.srcObject?.getTracks?.()[0] || null;
  if (current !== track) element.srcObject = track ? new MediaStream([track]) : null;
  if (track) element.play().catch(() => {}); // muted videos always may; audio may need a click
}

/**
 * One side's peer connection to the server.
 *
 *   const media = new MediaSession({ role: "customer", send, onState, onStats });
 *   await media.negotiate({ mic, camera });   // builds the transceivers, sends webrtc_offer
 *   client.on("webrtc_answer", (m) => media.answer(m.sdp));
 *   media.receiver(1)                         // the composite (customer) / preview (agent)
 */
export class MediaSession {
  /**
   * @param {object} options
   * @param {"agent"|"customer"} options.role
   * @param {(type: string, fields: object) => boolean} options.send  sends a protocol message
   * @param {(state: string) => void} [options.onState]  the peer connection's state
   * @param {(stats: object) => void} [options.onStats]  quality figures every few seconds
   */
  constructor({ role, send, onState = () => {}, onStats = () => {} }) {
    this.role = role;
    this.send = send;
    this.onState = onState;
    this.onStats = onStats;
    this.pc = null;
    this.transceivers = [];
    this.generation = 0;
    this.hasCameraSection = false;
    this._statsTimer = null;
    this._previous = null;
    this._rounds = 0;
  }

  /** Build a fresh connection with the documented sections and offer it (replacing any older one). */
  async negotiate({ mic = null, camera = null, screen = null, cameraSection = true } = {}) {
    this._closePc();
    const generation = ++this.generation;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
    this.pc = pc;
    const add = (trackOrKind, direction) => pc.addTransceiver(trackOrKind, { direction });
    if (this.role === "agent") {
      this.transceivers = [
        add(mic || "audio", "sendrecv"), // 1: mic; back: the customer's mic
        add(camera || "video", "sendrecv"), // 2: camera; back: the preview of the composite
        add(screen || "video", "sendonly"), // 3: screen, set with replaceTrack
        add("video", "recvonly"), // 4: the customer's camera
        add("video", "recvonly"), // 5: the customer's screen
      ];
    } else {
      this.hasCameraSection = cameraSection;
      this.transceivers = [
        add(mic || "audio", "sendrecv"), // 1: mic; back: the agent's mic
        add(camera || "video", cameraSection ? "sendrecv" : "recvonly"), // 2: back: the composite
      ];
      if (canShareScreen()) this.transceivers.push(add(screen || "video", "sendonly")); // 3: screen
    }
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc) this.onState(pc.connectionState);
    });
    this.onState("connecting");
    await pc.setLocalDescription();
    await gathered(pc);
    if (this.pc !== pc || generation !== this.generation) return false; // replaced meanwhile
    const sent = this.send("webrtc_offer", { sdp: pc.localDescription.sdp });
    this._startStats();
    return sent;
  }

  /** Apply the server's answer to the latest offer (a stale one is ignored). */
  async answer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      console.error("the server's answer could not be applied", error);
      this.onState("failed");
    }
  }

  /** The track received on section `index` (0-based, in the documented order). */
  receiver(index) {
    return this.transceivers[index]?.receiver.track || null;
  }

  /** Send `track` (or nothing) on section `index`, without renegotiating. */
  async replace(index, track) {
    const transceiver = this.transceivers[index];
    if (!transceiver || !this.pc) return false;
    await transceiver.sender.replaceTrack(track);
    return true;
  }

  close() {
    this.generation += 1;
    this._closePc();
    this.transceivers = [];
  }

  _closePc() {
    clearInterval(this._statsTimer);
    this._statsTimer = null;
    this._previous = null;
    this._rounds = 0;
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
  }

  // ---------------------------------------------------------------- statistics

  _startStats() {
    clearInterval(this._statsTimer);
    this._statsTimer = setInterval(() => this._collect().catch(() => {}), STATS_MS);
  }

  /** Figures of the main incoming video (the composite, or the agent's preview of it). */
  async _collect() {
    const pc = this.pc;
    if (!pc || pc.connectionState === "closed") return;
    const report = await pc.getStats();
    const main = this.receiver(1);
    let inbound = null;
    let rtt = null;
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "video" && entry.trackIdentifier === main?.id) inbound = entry;
      if (entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded" && entry.currentRoundTripTime !== undefined) {
        rtt = entry.currentRoundTripTime;
      }
    });
    if (!inbound) {
      report.forEach((entry) => {
        if (!inbound && entry.type === "inbound-rtp" && entry.kind === "video") inbound = entry;
      });
    }
    const figures = summarise(inbound, this._previous, rtt);
    this._previous = inbound ? { ...inbound } : null;
    this.onStats(figures);
    this._rounds += 1;
    if (this._rounds % REPORT_EVERY === 0 && figures.frames > 0) {
      const stats = {};
      for (const name of ["jitter_buffer_ms", "decode_ms", "frames_dropped", "freeze_count", "fps", "packets_lost", "jitter_ms", "rtt_ms"]) {
        const value = figures[name];
        if (Number.isFinite(value) && value >= 0) stats[name] = Math.round(value * 10) / 10;
      }
      if (Object.keys(stats).length) this.send("media_stats", { stats });
    }
  }
}

/** Resolves when `pc` has gathered its ICE candidates (or after ICE_GATHER_MS): aiortc has no trickle ICE. */
export function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, ICE_GATHER_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

/** getStats -> the figures the page shows and the server's receipt folds in. */
function summarise(now, before, rtt) {
  if (!now) return { frames: 0, quality: "connecting" };
  const delta = (name) => (now[name] ?? 0) - (before?.[name] ?? 0);
  const seconds = before ? (now.timestamp - before.timestamp) / 1000 : 0;
  const decoded = delta("framesDecoded");
  const emitted = delta("jitterBufferEmittedCount");
  const received = delta("packetsReceived");
  const lost = Math.max(0, delta("packetsLost"));
  const figures = {
    frames: now.framesDecoded ?? 0,
    fps: now.framesPerSecond ?? (seconds > 0 ? decoded / seconds : 0),
    width: now.frameWidth ?? 0,
    height: now.frameHeight ?? 0,
    jitter_buffer_ms: emitted > 0 ? (delta("jitterBufferDelay") / emitted) * 1000 : NaN,
    decode_ms: decoded > 0 ? (delta("totalDecodeTime") / decoded) * 1000 : NaN,
    frames_dropped: now.framesDropped ?? 0,
    freeze_count: now.freezeCount ?? 0,
    packets_lost: Math.max(0, now.packetsLost ?? 0),
    jitter_ms: (now.jitter ?? 0) * 1000,
    rtt_ms: rtt === null ? NaN : rtt * 1000,
    loss: received + lost > 0 ? lost / (received + lost) : 0,
    new_freezes: before ? delta("freezeCount") : 0,
  };
  figures.quality = rate(figures, seconds > 0 && decoded === 0);
  return figures;
}

function rate(f, stalled) {
  if (f.frames === 0) return "connecting";
  if (stalled || f.fps < 5 || f.loss > 0.1 || f.rtt_ms > 600) return "poor";
  if (f.fps < 15 || f.loss > 0.02 || f.rtt_ms > 250 || f.new_freezes > 0) return "fair";
  return "good";
}

export const QUALITY_WORDS = {
  connecting: "Connecting video…",
  good: "Good connection",
  fair: "Fair connection",
  poor: "Poor connection",
};
