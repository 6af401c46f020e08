// The studio's media: the operator's camera and microphone go to the server (which turns them
// into the avatar's face and voice: the real face never reaches a customer), and the live
// avatar comes back on the same video section as a preview.
//
// docs/protocol.md ("Avatar host"): after host_start the studio offers, once ICE gathering is
// complete (aiortc has no trickle ICE), with bundlePolicy max-bundle and exactly two sections,
// in this order:
//   1. audio, sendrecv: the operator's microphone
//   2. video, sendrecv: the operator's camera; back: the live avatar preview

import { gathered, openDevices } from "./media.js";

const CAMERA = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
const MIC = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * Ask for the operator's camera and microphone. Never throws: each is a track, or why not.
 * @returns {Promise<{mic: MediaStreamTrack|null, camera: MediaStreamTrack|null, micState: string, cameraState: string}>}
 */
export const openOperatorDevices = () => openDevices({ audio: MIC, video: CAMERA });

/** The studio's one peer connection to the server. */
export class StudioMedia {
  /**
   * @param {object} options
   * @param {(type: string, fields: object) => boolean} options.send  sends a protocol message
   * @param {(state: string) => void} [options.onState]  the peer connection's state
   */
  constructor({ send, onState = () => {} }) {
    this.send = send;
    this.onState = onState;
    this.pc = null;
    this.transceivers = [];
    this.generation = 0;
  }

  get active() {
    return this.pc !== null;
  }

  /** Build a fresh connection (replacing any older one) and send its offer. */
  async negotiate({ mic = null, camera = null } = {}) {
    this._closePc();
    const generation = ++this.generation;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
    this.pc = pc;
    this.transceivers = [
      pc.addTransceiver(mic || "audio", { direction: "sendrecv" }), // 1: the operator's voice
      pc.addTransceiver(camera || "video", { direction: "sendrecv" }), // 2: face; back: the avatar
    ];
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc) this.onState(pc.connectionState);
    });
    this.onState("connecting");
    await pc.setLocalDescription();
    await gathered(pc);
    if (this.pc !== pc || generation !== this.generation) return false; // replaced meanwhile
    return this.send("webrtc_offer", { sdp: pc.localDescription.sdp });
  }

  /** Apply the server's answer to the latest offer (a stale one is ignored). */
  async answer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return false;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      return true;
    } catch (error) {
      console.error("the server's answer could not be applied", error);
      this.onState("failed");
      return false;
    }
  }

  /** The live avatar, as the server sends it back on the video section. */
  preview() {
    return this.transceivers[1]?.receiver.track || null;
  }

  /** Swap what goes out on a section (0: mic, 1: camera) without renegotiating. */
  async replace(index, track) {
    const transceiver = this.transceivers[index];
    if (!transceiver || !this.pc) return false;
    await transceiver.sender.replaceTrack(track);
    return true;
  }

  close() {
    this.generation += 1;
    this._closePc();
  }

  _closePc() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
    this.transceivers = [];
  }
}

/** A microphone level for a <meter>: RMS of the track, a few times a second. */
export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.context = null;
    this.timer = null;
  }

  start(track) {
    this.stop();
    if (!track || typeof AudioContext === "undefined") return;
    try {
      this.context = new AudioContext();
      const source = this.context.createMediaStreamSource(new MediaStream([track]));
      const analyser = this.context.createAnalyser();
      analyser.fftSize = 1024;
      source.connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      this.context.resume().catch(() => {});
      this.timer = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const s of samples) sum += s * s;
        const rms = Math.sqrt(sum / samples.length);
        const level = Math.min(1, rms * 4); // speech sits around 0.05..0.2 RMS
        this.meter.value = level;
        this.meter.textContent = level > 0.05 ? "speaking" : "silent";
      }, 100);
    } catch (error) {
      console.warn("no microphone level", error);
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.meter.value = 0;
    this.meter.textContent = "silent";
  }
}
