// The supervisor page: live calls (GET /api/supervisor/calls), Watch (WHEP: POST /whep/call/ID,
// docs/protocol.md "Supervisors"), and Whisper, push-to-talk to the agent alone. The whisper rides
// on the watching session: its first audio section is sendrecv from the start, and holding the
// button puts the microphone on it (replaceTrack), releasing takes it off: no renegotiation.

import { attach } from "./media.js";
import { $, announce, el, notice, session as tabStorage, showView, takeToken } from "./ui.js";

const REFRESH_MS = 3000;
const TOKEN_KEY = "supervisor-token";

const page = { token: null, timer: null, watch: null, mic: null, held: false };

function headers(more = {}) {
  return { Authorization: `Bearer ${page.token}`, ...more };
}

function setState(state, words) {
  const box = $("watch-state");
  box.dataset.state = state;
  box.textContent = words;
}

async function refresh() {
  let response;
  try {
    response = await fetch("/api/supervisor/calls", { headers: headers(), cache: "no-store" });
  } catch {
    notice("The server cannot be reached; trying again.", "error");
    return;
  }
  if (response.status === 401 || response.status === 403) {
    logOut((await response.text()).trim());
    return;
  }
  if (!response.ok) {
    notice(`Live calls could not be listed (${response.status}).`, "error");
    return;
  }
  const { calls } = await response.json();
  render(calls);
  if (page.watch && !calls.some((c) => c.call_id === page.watch.callId)) stopWatching("The call ended.");
}

function render(calls) {
  const body = $("calls").querySelector("tbody");
  body.replaceChildren(
    ...calls.map((call) => {
      const button = el("button", { type: "button", "data-testid": "watch-button", disabled: !call.media }, "Watch");
      button.addEventListener("click", () => watch(call));
      return el(
        "tr",
        { "data-call": call.call_id },
        el("td", {}, call.agent),
        el("td", {}, call.customer),
        el("td", {}, `${Math.floor(call.seconds / 60)} min ${call.seconds % 60} s`),
        el("td", {}, String(call.watching)),
        el("td", {}, button),
      );
    }),
  );
  $("no-calls").hidden = calls.length > 0;
}

/** Watch a call: one WHEP session with video, the agent's voice (our whisper goes back on it) and
 * the customer's voice. */
async function watch(call) {
  await stopWatching();
  const pc = new RTCPeerConnection();
  const session = { callId: call.call_id, pc, location: null, whisper: null };
  page.watch = session;
  pc.addTransceiver("video", { direction: "recvonly" });
  session.whisper = pc.addTransceiver("audio", { direction: "sendrecv" }).sender; // the agent's voice, back
  pc.addTransceiver("audio", { direction: "recvonly" }); // the customer's voice
  const box = $("watch");
  pc.ontrack = ({ track }) => {
    if (track.kind === "video") {
      attach($("watch-video"), track);
      return;
    }
    const audio = el("audio", { autoplay: true, "data-testid": "watch-audio" });
    box.append(audio);
    attach(audio, track);
    audio.play().catch(() => ($("sound").hidden = false));
  };
  pc.onconnectionstatechange = () => {
    if (page.watch !== session) return;
    if (pc.connectionState === "connected") setState("watching", `Watching ${call.agent} with ${call.customer}`);
    if (["failed", "closed"].includes(pc.connectionState)) stopWatching("The call's picture stopped.");
  };
  setState("connecting", "Connecting…");
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc); // the server takes no trickled candidates
    const response = await fetch(`/whep/call/${encodeURIComponent(call.call_id)}`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/sdp" }),
      body: pc.localDescription.sdp,
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`${response.status}: ${text.trim()}`);
    if (page.watch !== session) return;
    session.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: text });
  } catch (error) {
    if (page.watch === session) await stopWatching(`Could not watch the call: ${error.message}`);
    return;
  }
  $("watch-call").textContent = `${call.agent} with ${call.customer}`;
  box.hidden = false;
  announce(`Watching ${call.agent}'s call. The agent sees that a supervisor is listening.`);
}

function gathered(pc) {
  return new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
  });
}

async function stopWatching(why = null) {
  const session = page.watch;
  if (!session) return;
  page.watch = null;
  whisper(false);
  page.mic?.stop(); // the microphone is on only while watching
  page.mic = null;
  if (session.location) {
    fetch(session.location, { method: "DELETE", headers: headers() }).catch(() => {});
  }
  session.pc.close();
  attach($("watch-video"), null);
  for (const audio of document.querySelectorAll('[data-testid="watch-audio"]')) audio.remove();
  $("watch").hidden = true;
  setState("idle", "Not watching");
  if (why) notice(why);
}

/** Push-to-talk: the microphone on the whisper section while held, off when let go. */
async function whisper(on) {
  const button = $("whisper");
  const session = page.watch;
  page.held = on && Boolean(session);
  if (on && session) {
    if (!page.mic) {
      let mic;
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        mic = stream.getAudioTracks()[0];
      } catch {
        notice("The microphone is not available: you cannot whisper.", "error");
        return;
      }
      if (page.watch !== session) {
        mic.stop(); // stopped watching meanwhile
        return;
      }
      page.mic = mic;
    }
    // Let go meanwhile (the permission prompt's click counts as letting go), or another call.
    if (!page.held || page.watch !== session) return;
    await session.whisper.replaceTrack(page.mic);
    if (!page.held || page.watch !== session) {
      await session.whisper.replaceTrack(null);
      return;
    }
    button.setAttribute("aria-pressed", "true");
    setState("whispering", "Whispering to the agent");
  } else {
    if (session) await session.whisper.replaceTrack(null);
    if (button.getAttribute("aria-pressed") === "true" && session) setState("watching", "Watching");
    button.setAttribute("aria-pressed", "false");
  }
}

function logOut(reason) {
  stopWatching();
  clearInterval(page.timer);
  page.timer = null;
  page.token = null;
  tabStorage()?.removeItem(TOKEN_KEY);
  setState("logged_out", "Logged out");
  showView("login");
  const error = $("#login-error");
  error.textContent = reason;
  error.hidden = !reason;
}

function logIn(token) {
  page.token = token;
  tabStorage()?.setItem(TOKEN_KEY, token);
  setState("idle", "Not watching");
  showView("calls");
  refresh();
  page.timer = setInterval(refresh, REFRESH_MS);
}

function wire() {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    logIn($("token-input").value.trim());
  });
  const button = $("whisper");
  button.addEventListener("pointerdown", () => whisper(true));
  for (const name of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(name, () => whisper(false));
  button.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) whisper(true);
  });
  button.addEventListener("keyup", (event) => (event.key === " " || event.key === "Enter") && whisper(false));
  $("stop-watching").addEventListener("click", () => stopWatching());
  $("sound").addEventListener("click", () => {
    for (const audio of document.querySelectorAll('[data-testid="watch-audio"]')) audio.play().catch(() => {});
    $("sound").hidden = true;
  });
  addEventListener("pagehide", () => stopWatching());
  const token = takeToken(TOKEN_KEY);
  if (token) logIn(token);
  else showView("login");
}

wire();
