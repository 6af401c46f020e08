// The agent console: log in with a token, go available, take offers, chat, end and wrap up.
// Speaks only the protocol in docs/protocol.md (and reads /api/status for the queue table).

import {
  onAnswer,
  onLayout,
  onMediaStatus,
  onReceipt,
  onScreenShare,
  onSenderLimits,
  onSupervisor,
  startMedia,
  stopMedia,
} from "./agent-call.js";
import { ProtocolClient, closedFor } from "./protocol.js";
import { useIceServers } from "./session.js";
import {
  $,
  announce,
  appendChat,
  chatItem,
  clearNotice,
  el,
  notice,
  renderChat,
  session,
  setCallState,
  showView,
  takeToken,
  wireChatForm,
} from "./ui.js";

const TOKEN_STORE = "telepresence.agent_token";
const PREFS_STORE = "telepresence.agent_prefs";
const QUEUE_POLL_MS = 5000;

const page = {
  client: null,
  name: null,
  role: null,
  status: "away", // what the server says: available | busy | away | wrap_up
  connection: "closed",
  view: "login",
  prefs: loadPrefs(), // what the agent asked for: restored after a reconnect
  offers: new Map(), // offer id -> {card, timer, expiresAt}
  call: null, // {call_id, customer}
  wrapUp: null, // {call_id, until, timer}
  queueTimer: null,
};

const chatLog = $("chat-log", $("#main"));
const chatInput = $("chat-input");

// ------------------------------------------------------------------ storage

function loadPrefs() {
  try {
    return { wantAvailable: false, autoAnswer: false, ...JSON.parse(session()?.getItem(PREFS_STORE) || "{}") };
  } catch {
    return { wantAvailable: false, autoAnswer: false };
  }
}

function savePrefs() {
  session()?.setItem(PREFS_STORE, JSON.stringify(page.prefs));
}

// ------------------------------------------------------------------ rendering

function setView(view) {
  page.view = view;
  showView(view);
  renderState();
}

function renderState() {
  if (page.connection === "reconnecting" && page.view !== "login") {
    setCallState("reconnecting", "Reconnecting…");
    return;
  }
  if (page.view === "login") {
    setCallState("logged_out", "Logged out");
  } else if (page.view === "call") {
    setCallState("in_call", "In a call");
  } else if (page.view === "wrapup") {
    setCallState("wrap_up", "Wrap-up");
  } else if (page.offers.size) {
    setCallState("incoming", "Incoming customer");
  } else {
    const words = { available: "Available", busy: "Busy", away: "Away", wrap_up: "Wrap-up" };
    setCallState(page.status, words[page.status] || page.status);
  }
}

function renderStatus() {
  const available = page.status === "available" || page.status === "busy";
  $("go-available").setAttribute("aria-pressed", String(available));
  $("go-away").setAttribute("aria-pressed", String(!available && page.status !== "wrap_up"));
  $("auto-answer").checked = page.prefs.autoAnswer;
  const text = {
    available: "You are available: waiting for the next customer.",
    busy: "You are busy with a customer.",
    away: "You are away: you will not get customers.",
    wrap_up: "Finishing the last call.",
  };
  $("status-text").textContent = page.offers.size ? "A customer is waiting for you." : text[page.status] || "";
  renderState();
}

// ------------------------------------------------------------------ connection

function hello(client, { reconnect }) {
  if (reconnect) {
    // The server withdrew our offers when the socket dropped; a live call waits for us
    // (agent_grace_s) and comes back in logged_in.calls, where we offer media again.
    dropOffers();
    page.droppedCall = page.call;
    stopMedia();
    page.call = null;
    clearWrapUp();
  }
  client.send("login", { token: page.token });
}

function start(token) {
  stop();
  page.token = token;
  const client = new ProtocolClient({ hello });
  page.client = client;
  client.onState(onConnection);
  client.on("logged_in", useIceServers); // before onLoggedIn, which may offer media at once
  client.on("logged_in", onLoggedIn);
  client.on("agent_status", onAgentStatus);
  client.on("auto_answer", (m) => {
    page.prefs.autoAnswer = m.enabled;
    savePrefs();
    renderStatus();
  });
  client.on("offer", onOffer);
  client.on("offer_withdrawn", onOfferWithdrawn);
  client.on("call_started", onCallStarted);
  client.on("chat", onChat);
  client.on("peer_status", onPeerStatus);
  client.on("call_ended", onCallEnded);
  client.on("error", onError);
  client.on("webrtc_answer", onAnswer);
  client.on("layout", onLayout);
  client.on("screen_share", onScreenShare);
  client.on("media_status", onMediaStatus);
  client.on("sender_limits", onSenderLimits);
  client.on("camera_source", onCameraSource);
  client.on("supervisor", (m) => {
    if (page.call && m.call_id === page.call.call_id) onSupervisor(m); // not a late word on the last call
  });
  client.on("receipt", (m) => {
    if (page.call && m.call_id === page.call.call_id) onReceipt(m);
  });
  client.connect();
}

/** The agent publishes over WHIP (an encoder's picture in their calls), or no longer does. */
function onCameraSource(message) {
  const note = $("camera-source");
  if (note.dataset.source === message.source) return;
  note.dataset.source = message.source;
  note.hidden = message.source !== "whip";
  announce(message.source === "whip" ? "Camera from WHIP." : "Your browser's camera is back in your calls.");
}

function stop() {
  stopMedia();
  page.client?.close();
  page.client = null;
}

function onConnection(state, code) {
  page.connection = state;
  const reconnecting = state === "reconnecting" && page.view !== "login";
  $("connection-banner").hidden = !reconnecting;
  $("chat-send").disabled = state !== "open";
  const closed = closedFor(state, code);
  if (closed === "replaced") {
    page.client = null;
    dropOffers();
    setView("login");
    notice("This console was opened in another tab, which took over.", "info");
  } else if (closed === "refused") {
    page.client = null;
    setView("login");
    notice("The server closed the connection. Please log in again.", "error");
  }
  renderState();
}

// ------------------------------------------------------------------ server messages

function onLoggedIn(message) {
  page.name = message.name;
  page.role = message.role;
  page.status = message.status;
  $("agent-name").textContent = `· ${message.name}`;
  clearNotice();
  if (message.role !== "agent") {
    notice(`You are logged in as ${message.role}; the operator console is not here yet.`, "info");
  }
  const calls = message.calls || [];
  if (page.droppedCall && !calls.length) {
    notice("The connection dropped for too long: your customer was returned to the front of the queue.", "error");
  }
  page.droppedCall = null;
  if (calls.length) {
    // Another tab of ours handed its call over to this one.
    const call = calls[calls.length - 1];
    enterCall({ call_id: call.call_id, customer: call.customer, transcript: call.transcript || [] });
  } else if (!page.wrapUp) {
    setView("console");
  }
  // Restore what the agent had asked for before a reconnect.
  if (page.prefs.autoAnswer) page.client.send("auto_answer", { enabled: true });
  if (page.prefs.wantAvailable && message.status === "away") page.client.send("set_status", { status: "available" });
  renderStatus();
  pollQueues();
  announce(`Logged in as ${message.name}.`);
}

function onAgentStatus(message) {
  const was = page.status;
  page.status = message.status;
  if (message.reason === "missed_offers") {
    page.prefs.wantAvailable = false;
    savePrefs();
    notice("You were set away after missing offers. Click Available when you are back.", "error");
    announce("You were set away after missing offers.");
  } else if (was !== message.status) {
    announce(`You are now ${message.status.replace("_", "-")}.`);
  }
  if (page.view === "wrapup" && message.status !== "wrap_up") {
    // Wrap-up is over (Done, or its time ran out).
    clearWrapUp();
    setView("console");
  }
  renderStatus();
}

function describeHistory(history) {
  if (!history || !history.returning) return "First contact.";
  const calls = `${history.calls} earlier call${history.calls === 1 ? "" : "s"}`;
  const last = history.last_agent ? `, last with ${history.last_agent}` : "";
  const topic = history.last_topic ? ` about “${history.last_topic}”` : "";
  return `Returning customer: ${calls}${last}${topic}.`;
}

function fill(card, field, value) {
  card.querySelector(`[data-field="${field}"]`).textContent = value;
}

function onOffer(message) {
  const card = $("#offer-template").content.firstElementChild.cloneNode(true);
  const customer = message.customer || {};
  card.dataset.offerId = message.offer_id;
  card.setAttribute("aria-label", `Incoming customer ${customer.name}`);
  fill(card, "name", customer.name);
  fill(card, "topic", customer.topic || "—");
  fill(card, "language", customer.language || "any");
  fill(card, "skill", customer.skill || "general");
  fill(card, "history", describeHistory(message.history));
  const notes = card.querySelector('[data-field="notes"]');
  for (const text of message.history?.notes || []) notes.append(el("li", {}, text));
  notes.hidden = !notes.children.length;
  const transcript = card.querySelector('[data-field="transcript"]');
  transcript.append(...(message.transcript || []).map((entry) => chatItem(entry, "agent")));
  const offer = { card, expiresAt: Date.now() + (message.expires_in_s || 0) * 1000, timer: null };
  const tick = () => {
    const left = Math.max(0, Math.round((offer.expiresAt - Date.now()) / 1000));
    fill(card, "expires", `Goes to the next agent in ${left} s.`);
  };
  tick();
  offer.timer = setInterval(tick, 1000);
  $("accept", card).addEventListener("click", () => {
    for (const button of card.querySelectorAll("button")) button.disabled = true;
    page.client?.send("accept", { offer_id: message.offer_id });
  });
  $("decline", card).addEventListener("click", () => {
    for (const button of card.querySelectorAll("button")) button.disabled = true;
    page.client?.send("decline", { offer_id: message.offer_id });
  });
  page.offers.set(message.offer_id, offer);
  $("offers").append(card);
  renderStatus();
  announce(`Incoming customer: ${customer.name}${customer.topic ? `, about ${customer.topic}` : ""}.`);
  $("accept", card).focus({ preventScroll: false });
}

function removeOffer(offerId) {
  const offer = page.offers.get(offerId);
  if (!offer) return;
  clearInterval(offer.timer);
  offer.card.remove();
  page.offers.delete(offerId);
  renderStatus();
}

function dropOffers() {
  for (const offerId of [...page.offers.keys()]) removeOffer(offerId);
}

const WITHDRAWN = {
  declined: "You declined the customer; they go to the next agent.",
  timeout: "The offer timed out and went to the next agent.",
  agent_away: "The offer was withdrawn because you went away.",
  agent_left: "The offer was withdrawn.",
  customer_left: "The customer left before the call started.",
};

function onOfferWithdrawn(message) {
  removeOffer(message.offer_id);
  const text = WITHDRAWN[message.reason] || "The offer was withdrawn.";
  if (message.reason !== "declined") notice(text, "info");
  announce(text);
}

function enterCall({ call_id, customer, transcript }) {
  // An agent takes one customer at a time (capacity 1), so any other card is stale now.
  dropOffers();
  clearWrapUp();
  page.call = { call_id, customer };
  const name = customer?.name || "the customer";
  $("call-customer").textContent = `In a call with ${name}`;
  const facts = [customer?.topic, customer?.language && `language: ${customer.language}`, customer?.skill && `queue: ${customer.skill}`];
  $("call-details").textContent = facts.filter(Boolean).join(" · ");
  $("peer-status").hidden = true;
  renderChat(chatLog, transcript || [], "agent");
  setView("call");
  announce(`Connected with ${name}.`);
  const client = page.client;
  startMedia((type, fields) => client.send(type, fields)).catch((error) => {
    console.error("media could not start", error);
    notice("Video could not start. You can still use the chat.", "error");
  });
}

function onCallStarted(message) {
  enterCall(message);
}

function onChat(message) {
  if (!page.call || (message.call_id && message.call_id !== page.call.call_id)) return;
  appendChat(chatLog, message, "agent");
}

function onPeerStatus(message) {
  const line = $("peer-status");
  line.hidden = false;
  line.dataset.status = message.status;
  line.textContent =
    message.status === "reconnecting"
      ? "The customer's connection dropped; they have a minute to come back."
      : "The customer is connected.";
  announce(line.textContent);
}

const ENDED = {
  agent_hung_up: "You ended the call.",
  customer_hung_up: "The customer ended the call.",
  customer_left: "The customer left.",
  agent_left: "The call was returned to the queue.",
  media_failed: "The call ended because the video connection failed.",
};

function onCallEnded(message) {
  const name = page.call?.customer?.name || "the customer";
  page.call = null;
  stopMedia();
  const reason = ENDED[message.reason] || "The call ended.";
  announce(reason);
  if (message.wrap_up_s > 0) {
    startWrapUp(message.call_id, message.wrap_up_s, `${reason} Add notes about your call with ${name}, then click Done.`);
  } else {
    notice(reason, "info");
    setView("console");
  }
  renderStatus();
}

function startWrapUp(callId, seconds, summary) {
  clearWrapUp();
  const until = Date.now() + seconds * 1000;
  const timer = setInterval(() => renderWrapUpTimer(), 1000);
  page.wrapUp = { call_id: callId, until, timer };
  $("wrap-up-summary").textContent = summary;
  $("wrap-up-notes").value = "";
  renderWrapUpTimer();
  setView("wrapup");
}

function renderWrapUpTimer() {
  if (!page.wrapUp) return;
  const left = Math.max(0, Math.round((page.wrapUp.until - Date.now()) / 1000));
  $("wrap-up-timer").textContent = left > 0 ? `Wrap-up ends by itself in ${left} s.` : "Wrap-up is ending…";
}

function clearWrapUp() {
  if (page.wrapUp) clearInterval(page.wrapUp.timer);
  page.wrapUp = null;
}

function onError(message) {
  switch (message.code) {
    case "auth_failed":
      session()?.removeItem(TOKEN_STORE);
      stop();
      setView("login");
      showLoginError(`Log-in failed: ${message.message}`);
      return;
    case "no_such_offer":
      // It expired or was withdrawn just before the click.
      for (const [offerId, offer] of page.offers) {
        if ([...offer.card.querySelectorAll("button")].every((b) => b.disabled)) removeOffer(offerId);
      }
      notice("That offer is no longer available.", "info");
      return;
    case "out_of_order":
      if (page.view === "wrapup") {
        // The wrap-up already ended on the server.
        clearWrapUp();
        setView("console");
        return;
      }
      break;
    default:
      break;
  }
  notice(message.message || "Something went wrong.", "error");
}

function showLoginError(text) {
  const error = document.getElementById("login-error");
  error.textContent = text;
  error.hidden = !text;
}

// ------------------------------------------------------------------ queues (GET /api/status)

async function pollQueues() {
  clearTimeout(page.queueTimer);
  if (!page.client) return;
  if (!document.hidden) {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (response.ok) renderQueues(await response.json());
    } catch {
      // The table is a convenience: a failed poll leaves the last figures in place.
    }
  }
  page.queueTimer = setTimeout(pollQueues, QUEUE_POLL_MS);
}

function renderQueues(status) {
  const rows = (status.queues || []).map((queue) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, queue.queue),
      el("td", {}, queue.waiting),
      el("td", {}, queue.waiting ? `${Math.round(queue.longest_wait_s)} s` : "—"),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "muted" }, "Nobody is waiting.")));
  $("queues").querySelector("tbody").replaceChildren(...rows);
  // Customers the server's CPU budget holds back (docs/protocol.md, "Capacity").
  const admission = status.admission;
  const capacity = $("capacity");
  const held = admission?.waiting_for_capacity || 0;
  capacity.hidden = !admission || (admission.open && !held);
  if (!capacity.hidden) {
    const who = held === 1 ? "1 customer waits" : `${held} customers wait`;
    capacity.textContent = `The server is at capacity (CPU ${Math.round(admission.cpu_busy_pct ?? 0)} % of a ${Math.round(admission.cpu_budget_pct)} % budget): ${who} for a running call to end.`;
  }
}

// ------------------------------------------------------------------ controls

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) {
    showLoginError("Please paste your token.");
    return;
  }
  showLoginError("");
  session()?.setItem(TOKEN_STORE, token);
  $("token-input").value = "";
  start(token);
});

$("go-available").addEventListener("click", () => {
  page.prefs.wantAvailable = true;
  savePrefs();
  page.client?.send("set_status", { status: "available" });
});

$("go-away").addEventListener("click", () => {
  page.prefs.wantAvailable = false;
  savePrefs();
  page.client?.send("set_status", { status: "away" });
});

$("auto-answer").addEventListener("change", (event) => {
  page.prefs.autoAnswer = event.target.checked;
  savePrefs();
  page.client?.send("auto_answer", { enabled: event.target.checked });
});

$("end-call").addEventListener("click", () => {
  if (!page.client?.send("end_call")) notice("Not connected: we are trying to reconnect.", "error");
});

document.getElementById("wrapup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!page.wrapUp) return;
  const notes = $("wrap-up-notes").value.trim();
  page.client?.send("wrap_up", { call_id: page.wrapUp.call_id, notes });
});

wireChatForm(document.getElementById("chat-form"), chatInput, (text) => {
  if (page.client?.send("chat", { text })) return true;
  notice("Not connected: your message was not sent.", "error");
  return false;
});

// ------------------------------------------------------------------ boot

const token = takeToken(TOKEN_STORE);
if (token) {
  setView("console");
  start(token);
} else {
  setView("login");
}
