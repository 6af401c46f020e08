// One peer connection to the server, for the customer page, the agent console and the studio.
// docs/protocol.md ("WebRTC"): media flows between each browser and the server, which maps a
// browser's m-sections by position.
//
// - The sections come from the server's own table (media/sections.py, served as
//   /static/js/sections.json): the transceivers are created in its order, with its
//   directions, before the offer. Pages name sections ("camera", "screen"...), never number them.
// - Every section exists from the start: a camera or a screen coming and going is a
//   `replaceTrack`, never a renegotiation.
// - aiortc has no trickle ICE: the offer goes out once ICE gathering is complete.
// - A reconnect (or a reload) into a live call simply offers again: the server replaces
//   that side's connection.

import SECTIONS from "./sections.json" with { type: "json" };
import { median, rateLink, reported, summarise } from "./call-quality.js";
import { canShareScreen } from "./media.js";

const LOST_AFTER_MS = 3000; // "disconnected" this long (a network change): connect afresh
const RECONNECT_MS = 1000; // the pause before the page connects afresh (the new network settles)
const ICE_GATHER_MS = 2500; // send what we have after this: a STUN/TURN server that never answers costs no more
const STATS_MS = 2000; // quality indicator refresh
const REPORT_EVERY = 3; // media_stats every third stats round (6 s)
// Each frame's capture time also rides in this RTP header extension (getSynchronizationSources'
// captureTimestamp). requestVideoFrameCallback's `captureTime` comes from the sender's reports
// and the round trip (RTCP XR), which the server answers: a true glass-to-glass figure.
const ABS_CAPTURE_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
const GLASS_SAMPLES = 300; // at most ten seconds of frames between two stats rounds

// What a section's `needs` asks of the browser (media/sections.py, NEEDS).
const ABILITIES = { screen_capture: canShareScreen };

const sends = (direction) => direction === "sendrecv" || direction === "sendonly";

// The STUN/TURN servers the server named in this socket's `welcome` or `logged_in`
// (docs/protocol.md): TURN credentials of this socket's own, and "relay" where only relayed
// paths may be used. Every connection made afterwards uses them.
let ice = { iceServers: [], iceTransportPolicy: "all" };

/**
 * Use the ICE servers of a `welcome` or `logged_in` message for the connections made from now
 * on (each new socket gets fresh credentials, so every `welcome` / `logged_in` replaces them).
 *   client.on("welcome", useIceServers);
 */
export function useIceServers(message) {
  if (!Array.isArray(message?.ice_servers)) return; // a server without the field: keep what we had
  ice = {
    iceServers: message.ice_servers,
    iceTransportPolicy: message.ice_transport_policy === "relay" ? "relay" : "all",
  };
}

/**
 * One side's peer connection to the server.
 *
 *   const media = new MediaSession({ role: "customer", send, onState, onStats });
 *   await media.negotiate({ mic, camera });   // builds the sections, sends webrtc_offer
 *   client.on("webrtc_answer", (m) => media.answer(m.sdp));
 *   media.receiver("camera")                  // what comes back on the camera's section
 *   await media.replace("screen", track)      // start (or, with null, stop) sending on a section
 *
 * Expected outcomes resolve to a boolean (sent, applied, replaced); only a browser that
 * cannot build a connection at all throws.
 */
export class MediaSession {
  /**
   * @param {object} options
   * @param {"agent"|"customer"|"operator"} options.role  picks the sections (docs/protocol.md)
   * @param {(type: string, fields: object) => boolean} options.send  sends a protocol message
   * @param {(state: string) => void} [options.onState]  the peer connection's state
   * @param {(stats: object) => void} [options.onStats]  quality figures every few seconds
   * @param {() => void} [options.onLost]  the connection failed, or stayed disconnected for
   *   LOST_AFTER_MS, or the browser came back online while not connected (Wi-Fi to mobile):
   *   the page negotiates afresh (the server keeps the call, replacing this side's connection)
   * @param {boolean} [options.stats]  measure, and report media_stats to the server (calls only:
   *   an operator's media_stats is refused)
   */
  constructor({ role, send, onState = () => {}, onStats = () => {}, onLost = null, stats = true }) {
    if (!SECTIONS[role]) throw new Error(`no media sections for role ${role}`);
    this.role = role;
    this.sections = SECTIONS[role];
    this.send = send;
    this.onState = onState;
    this.onStats = onStats;
    this.onLost = onLost;
    this.stats = stats;
    this._lostTimer = null;
    this._online = () => {
      // Back online with a connection that broke: connect afresh (never one still being made).
      if (["disconnected", "failed"].includes(this.pc?.connectionState)) this._lost();
    };
    if (onLost) window.addEventListener("online", this._online);
    this.pc = null;
    this.transceivers = new Map(); // section name -> RTCRtpTransceiver
    this.generation = 0;
    this._statsTimer = null;
    this._previous = null;
    this._rounds = 0;
    this._watched = null;
    this._watchLoop = 0; // the current frame loop's number: an older loop stops at its next frame
    this._ratesVideo = true; // false while the main incoming video is held (see ratesVideo)
    this._glass = [];
    this.limits = {}; // section name -> sender limits kept across negotiations (see limit())
  }

  /**
   * Measure glass-to-glass latency on `video` (the element showing the main incoming video):
   * each presented frame's display time minus its capture time, where the sender said it.
   * The median since the last stats round goes into the figures as `glass_to_glass_ms`.
   */
  watch(video) {
    if (this._watched === video) return; // already watched: one loop per element
    this._watched = video;
    const loop = ++this._watchLoop;
    if (!video?.requestVideoFrameCallback) return;
    const tick = (_now, metadata) => {
      if (this._watchLoop !== loop) return; // another element (or none, or this one anew) is watched now
      if (Number.isFinite(metadata.captureTime) && this._glass.length < GLASS_SAMPLES) {
        this._glass.push(metadata.expectedDisplayTime - metadata.captureTime);
      }
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  /** Whether a connection exists (being offered, live or failed, but not closed). */
  get active() {
    return this.pc !== null;
  }

  /**
   * Build a fresh connection with the role's sections and offer it (replacing any older one).
   * @param {Object<string, MediaStreamTrack|null>} tracks  what to send, by section name
   * @returns {Promise<boolean>} whether the offer went out (false: replaced meanwhile, or not sent)
   */
  async negotiate(tracks = {}) {
    this._closePc();
    const generation = ++this.generation;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", ...ice });
    this.pc = pc;
    this.transceivers = new Map();
    for (const section of this.sections) {
      // The server maps by position, so only a tail may be left out: stop at the first.
      if (section.needs && !ABILITIES[section.needs]?.()) break;
      const track = tracks[section.name] || null;
      const direction = track ? section.direction : section.direction_without_track || section.direction;
      const sent = sends(direction) ? track : null;
      const transceiver = pc.addTransceiver(sent || section.kind, { direction });
      askForCaptureTime(transceiver);
      this.transceivers.set(section.name, transceiver);
    }
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc !== pc) return;
      this.onState(pc.connectionState);
      this._watchLoss(pc.connectionState);
    });
    this.onState("connecting");
    const gathering = gathered(pc, ice); // listening before the first candidate can come
    await pc.setLocalDescription();
    await gathering;
    if (this.pc !== pc || generation !== this.generation) return false; // replaced meanwhile
    const sent = Boolean(this.send("webrtc_offer", { sdp: pc.localDescription.sdp }));
    if (this.stats) this._startStats();
    return sent;
  }

  /** A connection that fails, or stays disconnected, is lost: the page connects afresh. */
  _watchLoss(state) {
    clearTimeout(this._lostTimer);
    this._lostTimer = null;
    if (state === "failed") this._lost();
    else if (state === "disconnected") this._lostTimer = setTimeout(() => this._lost(), LOST_AFTER_MS);
  }

  _lost() {
    clearTimeout(this._lostTimer);
    this._lostTimer = null;
    const onLost = this.onLost;
    this.onLost = null; // once per session: the page's fresh session watches the next connection
    window.removeEventListener("online", this._online);
    if (onLost) setTimeout(onLost, RECONNECT_MS); // the page checks its call is still on
  }

  /**
   * Apply the server's answer to the latest offer.
   * @returns {Promise<boolean>} whether it was applied (false: stale, or refused, which fails the connection)
   */
  async answer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return false;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      for (const name of Object.keys(this.limits)) this._applyLimits(name);
      return true;
    } catch (error) {
      console.error("the server's answer could not be applied", error);
      if (this.pc === pc) this.onState("failed");
      return false;
    }
  }

  /** The track received on the section called `name` (null when there is none). */
  receiver(name) {
    return this.transceivers.get(name)?.receiver.track || null;
  }

  /** Whether the section called `name` was offered with a sending direction (a track can be set on it). */
  canSend(name) {
    const transceiver = this.transceivers.get(name);
    return Boolean(transceiver) && sends(transceiver.direction);
  }

  /**
   * Send `track` (or nothing) on the section called `name`, without renegotiating.
   * @returns {Promise<boolean>} whether it was set (false: no connection, or no such section)
   */
  async replace(name, track) {
    const transceiver = this.transceivers.get(name);
    if (!transceiver || !this.pc) return false;
    await transceiver.sender.replaceTrack(track);
    return true;
  }

  /**
   * Hold the sender of the section called `name` to `limits`: `maxFramerate` (null: no cap) and
   * `scaleResolutionDownBy` (1: full size). Kept, and applied again after each negotiation
   * (the server asks with `sender_limits` when its CPU is short).
   * @returns {Promise<boolean>} whether it was applied now (false: not negotiated yet, or refused)
   */
  async limit(name, limits) {
    this.limits[name] = limits;
    return this._applyLimits(name);
  }

  async _applyLimits(name) {
    const sender = this.transceivers.get(name)?.sender;
    const limits = this.limits[name];
    if (!sender || !limits) return false;
    try {
      const params = sender.getParameters();
      if (!params.encodings?.length) return false; // before the answer: applied then
      for (const encoding of params.encodings) {
        if (limits.maxFramerate) encoding.maxFramerate = limits.maxFramerate;
        else delete encoding.maxFramerate;
        encoding.scaleResolutionDownBy = limits.scaleResolutionDownBy || 1;
      }
      await sender.setParameters(params);
      return true;
    } catch (error) {
      console.warn(`sender limits on ${name} not applied`, error);
      return false;
    }
  }

  close() {
    this.generation += 1;
    clearTimeout(this._lostTimer);
    this.onLost = null;
    window.removeEventListener("online", this._online);
    this._closePc();
    this.transceivers = new Map();
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

  /**
   * Whether the main incoming video is rated (the call's quality, the figures sent to the
   * server). Not while the server holds it (the agent's preview, while the customer's picture
   * is their own camera): its stalled figures would read "poor"; the round trip rates the link.
   */
  rateVideo(on) {
    if (on !== this._ratesVideo) this._previous = null; // the next round must not span the hold
    this._ratesVideo = on;
  }

  /** Figures of the main incoming video: the first video section that receives (the composite, or its preview). */
  async _collect() {
    const pc = this.pc;
    if (!pc || pc.connectionState === "closed") return;
    const report = await pc.getStats();
    const watched = this.sections.find((s) => s.kind === "video" && s.receives);
    const main = watched ? this.receiver(watched.name) : null;
    let inbound = null;
    let rtt = null;
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "video" && entry.trackIdentifier === main?.id) inbound = entry;
      if (entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded" && entry.currentRoundTripTime !== undefined) {
        rtt = entry.currentRoundTripTime;
      }
    });
    if (!this._ratesVideo) {
      this._glass.length = 0;
      this.onStats(rateLink(rtt));
      return;
    }
    if (!inbound) {
      report.forEach((entry) => {
        if (!inbound && entry.type === "inbound-rtp" && entry.kind === "video") inbound = entry;
      });
    }
    const figures = summarise(inbound, this._previous, rtt);
    figures.glass_to_glass_ms = median(this._glass.splice(0));
    this._previous = inbound ? { ...inbound } : null;
    this.onStats(figures);
    this._rounds += 1;
    if (this._rounds % REPORT_EVERY === 0 && figures.frames > 0) {
      const stats = reported(figures);
      if (Object.keys(stats).length) this.send("media_stats", { stats });
    }
  }
}

/** Offer abs-capture-time on the transceiver where the browser can (Chromium keeps it stopped by default). */
function askForCaptureTime(transceiver) {
  if (!transceiver.getHeaderExtensionsToNegotiate) return;
  const extensions = transceiver.getHeaderExtensionsToNegotiate();
  const wanted = extensions.find((e) => e.uri === ABS_CAPTURE_TIME);
  if (!wanted || wanted.direction !== "stopped") return;
  wanted.direction = "sendrecv";
  try {
    transceiver.setHeaderExtensionsToNegotiate(extensions);
  } catch (error) {
    console.warn("abs-capture-time could not be offered", error);
  }
}

/**
 * Resolves when `pc` has gathered enough ICE candidates to send the offer (aiortc has no trickle
 * ICE: what is not in the offer is never used): when gathering completes; or, with a TURN
 * server, at the first relay candidate (a path no NAT or firewall blocks), with only STUN at the
 * first server-reflexive one; or after ICE_GATHER_MS whatever came.
 */
function gathered(pc, config) {
  const urls = config.iceServers.flatMap((server) => [].concat(server.urls));
  const enoughType = urls.some((url) => /^turns?:/.test(url)) ? "relay" : urls.some((url) => url.startsWith("stun:")) ? "srflx" : null;
  return new Promise((resolve) => {
    const finish = () => {
      pc.removeEventListener("icegatheringstatechange", onState);
      pc.removeEventListener("icecandidate", onCandidate);
      clearTimeout(timer);
      resolve();
    };
    const onState = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const onCandidate = (event) => {
      if (!event.candidate || (enoughType && event.candidate.type === enoughType)) finish();
    };
    const timer = setTimeout(finish, ICE_GATHER_MS);
    pc.addEventListener("icegatheringstatechange", onState);
    pc.addEventListener("icecandidate", onCandidate);
  });
}
