"""The JavaScript the browser suite puts into its pages (``page.add_init_script``).

Every page gets :func:`init_script`: ``window.__bench`` records the page's peer connections
(``RTCPeerConnection`` is subclassed so a page's own connections can be read with getStats
without touching the page), and offers

- ``__bench.watchVideo(video)``: reads every presented frame (requestVideoFrameCallback):
  the stamp's 24 cell lumas, the flash area's mean luma, expectedDisplayTime as wall time;
- ``__bench.tapAudio(track)``: an AudioWorklet that reports each beep onset in the received
  audio, as the wall time the customer's AudioContext plays it (getOutputTimestamp);
- ``__bench.pollStats()``: getStats of the latest connection every 250 ms;
- ``__bench.collect()``: everything recorded, for Python to analyse.

The sending side's script (``source=True``) also replaces ``navigator.mediaDevices.getUserMedia``:
the camera is a 1280x720 30 fps canvas with the frame id stamped in big blocks and a white
flash every second; the microphone is a WebAudio oscillator that beeps with each flash. The
capture time of every frame (when it was drawn) and of every beep (when the AudioContext
rendered it into the track, read by the same worklet as the receiver's) is recorded.

Wall time is ``performance.timeOrigin + performance.now()`` (ms since the epoch); a worklet only
has ``Date.now()``, so its times are moved onto the same clock by the page's measured offset.
"""

from __future__ import annotations

import json

from benchmarks import browser_metrics as m

WORKLET = """
const THRESHOLD = 0.1;  // the beep's amplitude is 0.5; the received audio is silent in between
const QUIET = Math.round(sampleRate * 0.3);  // an onset needs this much silence before it
class BenchOnsets extends AudioWorkletProcessor {
  constructor() { super(); this.quiet = QUIET; }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      const now = Date.now();
      for (let i = 0; i < channel.length; i++) {
        if (Math.abs(channel[i]) > THRESHOLD) {
          if (this.quiet >= QUIET) this.port.postMessage({ now, frame: currentFrame + i, offset: i });
          this.quiet = 0;
        } else {
          this.quiet += 1;
        }
      }
    }
    return true;
  }
}
registerProcessor("bench-onsets", BenchOnsets);
"""

COMMON = r"""
(() => {
  if (window.__bench || window !== window.top) return;
  const wall = () => performance.timeOrigin + performance.now();
  const bench = (window.__bench = {
    pcs: [], frames: [], flashes: [], beeps: [], presented: [], onsets: [], stats: [], errors: [],
  });
  bench.wall = wall;
  bench.skew = () => wall() - Date.now();

  const Native = window.RTCPeerConnection;
  class Watched extends Native {
    constructor(...args) {
      super(...args);
      const entry = { pc: this, created: wall(), connected: null };
      bench.pcs.push(entry);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected" && entry.connected === null) entry.connected = wall();
      });
    }
  }
  window.RTCPeerConnection = Watched;
  bench.current = () => {
    const open = bench.pcs.filter((entry) => entry.pc.connectionState !== "closed");
    return open.length ? open[open.length - 1] : null;
  };

  const workletUrl = URL.createObjectURL(new Blob([CFG.worklet], { type: "application/javascript" }));
  // An AudioWorklet node reporting beep onsets in `input` into `list` as [render wall, playout wall].
  bench.onsets_of = async (context, input, list) => {
    await context.audioWorklet.addModule(workletUrl);
    const node = new AudioWorkletNode(context, "bench-onsets");
    input.connect(node);
    const mute = new GainNode(context, { gain: 0 });  // pulled by the destination, heard by nobody
    node.connect(mute).connect(context.destination);
    node.port.onmessage = ({ data }) => {
      const out = context.getOutputTimestamp();
      const at = data.frame / context.sampleRate;
      const played = performance.timeOrigin + out.performanceTime + (at - out.contextTime) * 1000;
      const rendered = data.now + bench.skew() + (data.offset / context.sampleRate) * 1000;
      list.push([rendered, played]);
    };
    if (context.state !== "running") await context.resume();
    return node;
  };

  // Each presented frame, drawn ONCE at 1/8 scale: the stamp's 64-pixel blocks become 8x8 cells.
  // Every decoded frame is read as it comes from a clone of the track (MediaStreamTrackProcessor)
  // and kept by timestamp, so a callback that runs after a newer frame became current still
  // finds its own frame's pixels. Where that reader missed one, the frame on show is taken as
  // a VideoFrame and kept only if its timestamp is the callback's mediaTime (else "raced").
  bench.lookups = { hit: 0, miss: 0 };  // presented frames found among those read as decoded
  bench.watchVideo = (video) => {
    if (video.__benchWatched) return;
    video.__benchWatched = true;
    const px = 8, w = CFG.width / px, h = CFG.height / px;
    const small = new OffscreenCanvas(w, h).getContext("2d", { willReadFrequently: true });
    const origin = performance.timeOrigin;
    const read = (source) => {
      small.drawImage(source, 0, 0, w, h);
      const d = small.getImageData(0, 0, w, h).data;
      const luma = (x, y) => {
        const i = (y * w + x) * 4;
        return 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      };
      const cells = [];
      for (let r = 0; r < CFG.rows; r++) {
        for (let c = 0; c < CFG.cols; c++) {
          let sum = 0;  // the inner 4x4 of each cell: block edges ring after coding
          for (let y = r * px + 2; y < r * px + 6; y++) {
            for (let x = c * px + 2; x < c * px + 6; x++) sum += luma(x, y);
          }
          cells.push(Math.round(sum / 16));
        }
      }
      let flash = 0, count = 0;
      for (let y = CFG.flashTop / px; y < h; y += 2) {
        for (let x = 0; x < w; x += 2, count++) flash += luma(x, y);
      }
      return [cells, Math.round(flash / count)];
    };
    const decoded = new Map();  // VideoFrame timestamp (us) -> [cells, flash], the newest 90
    const track = video.srcObject?.getVideoTracks?.()[0];
    if (track && typeof MediaStreamTrackProcessor === "function") {
      const reader = new MediaStreamTrackProcessor({ track: track.clone() }).readable.getReader();
      (async () => {
        for (;;) {
          const { value: frame, done } = await reader.read();
          if (done) return;
          try {
            decoded.set(frame.timestamp, read(frame));
            if (decoded.size > 90) decoded.delete(decoded.keys().next().value);
          } finally {
            frame.close();
          }
        }
      })().catch((error) => bench.errors.length < 20 && bench.errors.push(String(error)));
    }
    // The clone's frames may count time from another origin than the element's mediaTime (on the
    // server path they do): the offset is learnt from a frame read both ways with equal pixels.
    let offset = 0;
    const readBefore = (mediaTime) => {
      const us = Math.round(mediaTime * 1e6) + offset;
      for (const key of [us, us - 1, us + 1]) if (decoded.has(key)) return decoded.get(key);
      return null;
    };
    const learnOffset = (mediaTime, cells) => {
      const seen = JSON.stringify(cells);
      const keys = [...decoded].filter(([, [c]]) => JSON.stringify(c) === seen).map(([key]) => key);
      if (keys.length === 1) offset = keys[0] - Math.round(mediaTime * 1e6);
    };
    const onFrame = (now, meta) => {
      let frame = null;
      try {
        if (video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA) return;
        let pixels = readBefore(meta.mediaTime), same = true;
        bench.lookups[pixels ? "hit" : "miss"] += 1;
        if (!pixels) {
          frame = new VideoFrame(video);
          same = Math.abs(frame.timestamp / 1e6 - meta.mediaTime) < 0.0005;
          pixels = read(frame);
          if (same) learnOffset(meta.mediaTime, pixels[0]);
        }
        const [cells, flash] = pixels;
        bench.presented.push([
          cells, flash, origin + meta.expectedDisplayTime, meta.width, meta.height,
          meta.receiveTime === undefined ? null : origin + meta.receiveTime, same,
          meta.captureTime === undefined ? null : origin + meta.captureTime, meta.presentedFrames,
          meta.mediaTime, meta.rtpTimestamp ?? null,
        ]);
      } catch (error) {
        if (bench.errors.length < 20) bench.errors.push(String(error));
      } finally {
        frame?.close();
        video.requestVideoFrameCallback(onFrame);
      }
    };
    video.requestVideoFrameCallback(onFrame);
  };

  bench.tapAudio = async (track) => {
    if (bench.tapped === track) return;
    bench.tapped = track;
    const context = new AudioContext({ latencyHint: "interactive" });
    const source = new MediaStreamAudioSourceNode(context, { mediaStream: new MediaStream([track]) });
    await bench.onsets_of(context, source, bench.onsets);
    bench.listener = { context, source };
  };

  const pick = (entry, names) => {
    const out = {};
    for (const [key, name] of Object.entries(names)) out[key] = entry[name] ?? null;
    return out;
  };
  const OUT = { w: "frameWidth", h: "frameHeight", fps: "framesPerSecond", frames: "framesEncoded",
    qlr: "qualityLimitationReason", target: "targetBitrate", bytes: "bytesSent" };
  const VIN = { w: "frameWidth", h: "frameHeight", frames: "framesDecoded", dropped: "framesDropped",
    freezes: "freezeCount", jbd: "jitterBufferDelay", jbe: "jitterBufferEmittedCount", lost: "packetsLost",
    jbt: "jitterBufferTargetDelay", jbm: "jitterBufferMinimumDelay", jitter: "jitter",
    proc: "totalProcessingDelay", decode: "totalDecodeTime" };
  const AIN = { jbd: "jitterBufferDelay", jbe: "jitterBufferEmittedCount", samples: "totalSamplesReceived",
    concealed: "concealedSamples", jbt: "jitterBufferTargetDelay", jbm: "jitterBufferMinimumDelay",
    jitter: "jitter" };
  const codecOf = (report, entry) => {
    const codec = entry.codecId && report.get(entry.codecId);
    return codec ? `${codec.mimeType} ${codec.sdpFmtpLine || ""}`.trim() : null;
  };
  bench.sample = async () => {
    const entry = bench.current();
    if (!entry) return;
    const report = await entry.pc.getStats();
    const s = { t: wall(), bwe: null, rtt: null, out: null, vin: null, ain: null };
    let pair = null;
    report.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) pair = r.selectedCandidatePairId;
    });
    // The busiest stream of each kind: the camera (not the empty screen section), the composite.
    const more = (value, kept, key) => (value || 0) > (kept ? kept[key] : -1);
    report.forEach((r) => {
      const video = r.kind === "video";
      const selected = r.id === pair || (!pair && r.nominated && r.state === "succeeded");
      if (r.type === "candidate-pair" && selected) {
        s.bwe = r.availableOutgoingBitrate ?? null;
        s.rtt = r.currentRoundTripTime ?? null;
      } else if (r.type === "outbound-rtp" && video && more(r.framesEncoded, s.out, "frames")) {
        s.out = { ...pick(r, OUT), codec: codecOf(report, r) };
      } else if (r.type === "inbound-rtp" && video && more(r.framesDecoded, s.vin, "frames")) {
        s.vin = { ...pick(r, VIN), codec: codecOf(report, r) };
      } else if (r.type === "inbound-rtp" && !video && more(r.totalSamplesReceived, s.ain, "samples")) {
        s.ain = { ...pick(r, AIN), codec: codecOf(report, r) };
      }
    });
    bench.stats.push(s);
  };
  bench.pollStats = () => {
    if (bench.statsTimer) return;
    bench.statsTimer = setInterval(() => bench.sample().catch((e) => bench.errors.push(String(e))), 250);
  };

  bench.collect = () => ({
    frames: bench.frames, flashes: bench.flashes, beeps: bench.beeps, presented: bench.presented,
    onsets: bench.onsets, stats: bench.stats, errors: bench.errors, lookups: bench.lookups,
    pcs: bench.pcs.map((e) => ({ created: e.created, connected: e.connected, state: e.pc.connectionState })),
    skew: bench.skew(),
    // "a=msid:<stream> <track>" of what this page receives: one stream for both lets Chromium sync them.
    msid: (bench.current()?.pc.remoteDescription?.sdp || "").match(/^a=msid:.*$/gm) || [],
  });
})();
"""

# The stamp's bits for a frame id, row by row (browser_metrics.stamp_bits, in JavaScript).
STAMP = """
function stampBits(id) {
  const value = id & 0xffff;
  const word = (value * 256 + CFG.crc[CFG.crc[value >> 8] ^ (value & 0xff)]) ^ CFG.mask;
  const bits = [];
  for (let bit = CFG.cols * CFG.rows - 1; bit >= 0; bit--) bits.push((word >> bit) & 1);
  return bits;
}
"""

SOURCE = r"""
(() => {
  const bench = window.__bench;
  if (!bench || bench.source !== undefined) return;
  bench.source = null;
  // The camera is drawn in a worker, as a real camera is captured off the page's main thread: the
  // agent console's own work (two <video>s, its UI) must not slow the source it is measured by.
  function camera() {
    const W = CFG.width, H = CFG.height, FPS = CFG.fps;
    // Soft moving blobs: a camera-like picture (not flat, not noise), cheap to draw.
    const texture = new OffscreenCanvas(160, 90);
    const tg = texture.getContext("2d");
    const image = tg.createImageData(160, 90);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < image.data.length; i += 4) {
      const v = 40 + random() * 70;
      image.data[i] = v; image.data[i + 1] = v * 0.9; image.data[i + 2] = v * 0.8; image.data[i + 3] = 255;
    }
    tg.putImageData(image, 0, 0);

    function draw(g, id) {
      if (id % CFG.flashEvery < CFG.flashFrames) {
        g.fillStyle = "#fff";
        g.fillRect(0, 0, W, H);
      } else {
        const shift = (id * 3) % W;
        g.imageSmoothingEnabled = true;
        g.drawImage(texture, -shift, 0, W, H);
        g.drawImage(texture, W - shift, 0, W, H);
        g.fillStyle = "#c86428";
        g.beginPath();
        g.arc(640 + 400 * Math.sin(id / 40), 420 + 150 * Math.cos(id / 25), 90, 0, 2 * Math.PI);
        g.fill();
      }
      const block = CFG.block;
      stampBits(id).forEach((on, bit) => {
        g.fillStyle = on ? "#fff" : "#000";
        g.fillRect((bit % CFG.cols) * block, Math.floor(bit / CFG.cols) * block, block, block);
      });
    }

    self.onmessage = ({ data: { writable } }) => {
      const writer = writable.getWriter();
      const canvas = new OffscreenCanvas(W, H);
      const g = canvas.getContext("2d", { alpha: false });
      let n = 0;
      const origin = performance.now();
      const tick = () => {
        const id = n++;
        draw(g, id);
        // Drawn = captured: the wall clock the pages share (see bench.wall).
        self.postMessage([id, performance.timeOrigin + performance.now()]);
        if (writer.desiredSize > 0) {
          const frame = new VideoFrame(canvas, { timestamp: Math.round(performance.now() * 1000) });
          writer.write(frame).catch(() => frame.close());
        } // else the track is behind: this frame is dropped, as a camera drops one (never sent, never shown)
        setTimeout(tick, Math.max(0, origin + (n * 1000) / FPS - performance.now()));
      };
      tick();
    };
  }

  async function start() {
    const generator = new MediaStreamTrackGenerator({ kind: "video" });
    const code = `const CFG = ${JSON.stringify(CFG)};\n${stampBits}\n(${camera})();`;
    const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    const context = new AudioContext({ latencyHint: "interactive" });
    const tone = new OscillatorNode(context, { frequency: 1000 });
    const gain = new GainNode(context, { gain: 0 });
    const microphone = new MediaStreamAudioDestinationNode(context, { channelCount: 1 });
    tone.connect(gain).connect(microphone);
    tone.start();
    await bench.onsets_of(context, gain, bench.beeps);
    worker.onmessage = ({ data: [id, t] }) => {
      bench.frames.push([id, t]);
      if (id % CFG.flashEvery === 0) {
        // The beep starts as the page hears of the flash; each is timed at its own source
        // (draw; the worklet's onset), so a late start moves neither latency.
        const at = context.currentTime;
        gain.gain.setValueAtTime(CFG.amplitude, at);
        gain.gain.setValueAtTime(0, at + CFG.beep);
        bench.flashes.push([id, t]);
      }
    };
    worker.postMessage({ writable: generator.writable }, [generator.writable]);
    bench.source = { video: generator, audio: microphone.stream.getAudioTracks()[0], context, worker };
    return bench.source;
  }

  let started = null;
  const devices = navigator.mediaDevices;
  devices.getUserMedia = async (constraints = {}) => {
    const source = await (started ||= start());
    const tracks = [];
    if (constraints.audio) tracks.push(source.audio.clone());
    if (constraints.video) tracks.push(source.video.clone());
    return new MediaStream(tracks);
  };
})();
"""


def config() -> dict:
    """The constants both the Python analysis and the page scripts use, from browser_metrics."""
    return {
        "width": m.WIDTH,
        "height": m.HEIGHT,
        "fps": m.FPS,
        "cols": m.STAMP_COLS,
        "rows": m.STAMP_ROWS,
        "block": m.STAMP_BLOCK,
        "flashEvery": m.FLASH_EVERY,
        "flashFrames": m.FLASH_FRAMES,
        "flashTop": m.FLASH_TOP,
        "beep": m.BEEP_S,
        "amplitude": 0.5,
        "crc": m.crc_table(),
        "mask": m.STAMP_MASK,
        "worklet": WORKLET,
    }


def init_script(*, source: bool) -> str:
    """The script for a page: the probes, and for the sending side the stamped camera and beeping mic."""
    body = COMMON + (STAMP + SOURCE if source else "")
    return f"(() => {{ const CFG = {json.dumps(config())};\n{body}\n}})();"
