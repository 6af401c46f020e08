// What only the studio does with media: the operator's devices (asked for as a face and a voice
// to drive the avatar, not as a call's), what they drive, and a microphone level meter. The connection that
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

const PROBLEMS = {
  denied: "was refused",
  missing: "was not found",
  busy: "is in use by another program",
  unsupported: "is not available in this browser",
  error: "could not be opened",
};

/** Say which of the operator's devices drive the avatar, and why one does not. */
export function showDevices({ deviceMessage, deviceStatus }, { micState, cameraState }) {
  const problems = [];
  if (cameraState !== "ok") {
    problems.push(
      `Your camera ${PROBLEMS[cameraState] || PROBLEMS.error}, so the avatar cannot follow your face ` +
        "(it still blinks, speaks and follows the buttons).",
    );
  }
  if (micState !== "ok") {
    problems.push(`Your microphone ${PROBLEMS[micState] || PROBLEMS.error}, so the mouth will not follow your voice.`);
  }
  const denied = cameraState === "denied" || micState === "denied";
  if (denied) problems.push("Allow the camera and microphone for this site (the icon in the address bar), then stop and start the host.");
  deviceMessage.textContent = problems.join(" ");
  deviceMessage.hidden = problems.length === 0;
  deviceMessage.dataset.kind = problems.length ? "error" : "";
  const drives = [cameraState === "ok" && "face", micState === "ok" && "voice"].filter(Boolean);
  deviceStatus.textContent = drives.length
    ? `Your ${drives.join(" and ")} drive${drives.length === 1 ? "s" : ""} the avatar.`
    : "Only the buttons and the script drive the avatar.";
  deviceStatus.dataset.drives = drives.join(" ") || "none";
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
