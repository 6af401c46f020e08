// What only the studio does with media: the operator's devices (asked for as a face and a voice
// to drive the avatar, not as a call's) and a microphone level meter. The connection that
// carries them to the server (which turns them into the avatar's face and voice: the real face
// never reaches a customer) is session.js's MediaSession, with the "operator" sections.

import { openDevices } from "./media.js";

const CAMERA = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
const MIC = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * Ask for the operator's camera and microphone. Never throws: each is a track, or why not.
 * @returns {Promise<{mic: MediaStreamTrack|null, camera: MediaStreamTrack|null, micState: string, cameraState: string}>}
 */
export const openOperatorDevices = () => openDevices({ audio: MIC, video: CAMERA });

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
