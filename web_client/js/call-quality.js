// The quality of a call's main incoming video, as the pages show it and the server's receipt
// folds it in: getStats -> figures, the word for them, and the figures reported in media_stats.
// Pure: session.js's MediaSession collects the stats and sends the report.

const REPORTED = ["jitter_buffer_ms", "decode_ms", "frames_dropped", "freeze_count", "fps", "packets_lost", "jitter_ms", "rtt_ms", "glass_to_glass_ms"];

/** The figures of `figures` that go to the server in `media_stats` (finite, non-negative, one decimal). */
export function reported(figures) {
  const stats = {};
  for (const name of REPORTED) {
    const value = figures[name];
    if (Number.isFinite(value) && value >= 0) stats[name] = Math.round(value * 10) / 10;
  }
  return stats;
}

export function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** getStats -> the figures the page shows and the server's receipt folds in. */
export function summarise(now, before, rtt) {
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

/** The figures while no incoming video is ours to rate (the agent's preview held: it shows their
 * own camera): the link's round trip alone. */
export function rateLink(rtt) {
  const rtt_ms = rtt === null ? NaN : rtt * 1000;
  const quality = rtt === null ? "connecting" : rtt_ms > 600 ? "poor" : rtt_ms > 250 ? "fair" : "good";
  return { frames: 0, rtt_ms, quality };
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
