// The agent console: log in with a token, go available, take offers, chat, end and wrap up.
// Speaks only the protocol in docs/protocol.md (and reads /api/status for the queue table).

import {
  onAnswer,
  onLayout,
  onMediaStatus,
  onPreview,
  onReceipt,
  onScreenShare,
  onSenderLimits,
  onSupervisor,
  startMedia,
  stopMedia,
} from "./agent-call.js";
import { WITHDRAWN, answered, closeOffer, offerCard } from "./agent-offers.js";
import { pollQueues } from "./agent-queues.js";
import { TOKEN_STORE, forgetToken, keepToken, loadPrefs, savePrefs } from "./agent-store.js";
import { showCallState, showCameraSource, showStatus, showWrapUpTimer } from "./agent-status.js";
import { ProtocolClient, closedFor } from "./protocol.js";
import { useIceServers } from "./session.js";
import {
  $,
  announce,
  appendChat,
  clearNotice,
  notice,
  renderChat,
  showView,
  takeToken,
  wireChatForm,
} from "./ui.js";

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
};

const chatLog = $("chat-log", $("#main"));
const chatInput = $("chat-input");

// ------------------------------------------------------------------ rendering

function renderState() {
  showCallState(page);
}

function renderStatus() {
  showStatus(page);
}

function setView(view) {
  page.view = view;
  showView(view);
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
    savePrefs(page.prefs);
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
  client.on("preview", (m) => {
    if (page.call && m.call_id === page.call.call_id) onPreview(m); // not a late word on the last call
  });
  client.on("camera_source", showCameraSource);
  client.on("supervisor", (m) => {
    if (page.call && m.call_id === page.call.call_id) onSupervisor(m); // not a late word on the last call
  });
  client.on("receipt", (m) => {
    if (page.call && m.call_id === page.call.call_id) onReceipt(m);
  });
  client.connect();
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
  pollQueues(() => page.client);
  announce(`Logged in as ${message.name}.`);
}

function onAgentStatus(message) {
  const was = page.status;
  page.status = message.status;
  if (message.reason === "missed_offers") {
    page.prefs.wantAvailable = false;
    savePrefs(page.prefs);
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

function onOffer(message) {
  const customer = message.customer || {};
  const offer = offerCard(message, (type, fields) => page.client?.send(type, fields));
  page.offers.set(message.offer_id, offer);
  $("offers").append(offer.card);
  renderStatus();
  announce(`Incoming customer: ${customer.name}${customer.topic ? `, about ${customer.topic}` : ""}.`);
  $("accept", offer.card).focus({ preventScroll: false });
}

function removeOffer(offerId) {
  const offer = page.offers.get(offerId);
  if (!offer) return;
  closeOffer(offer);
  page.offers.delete(offerId);
  renderStatus();
}

function dropOffers() {
  for (const offerId of [...page.offers.keys()]) removeOffer(offerId);
}

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
  showWrapUpTimer(page.wrapUp);
}

function clearWrapUp() {
  if (page.wrapUp) clearInterval(page.wrapUp.timer);
  page.wrapUp = null;
}

function onError(message) {
  switch (message.code) {
    case "auth_failed":
      forgetToken();
      stop();
      setView("login");
      showLoginError(`Log-in failed: ${message.message}`);
      return;
    case "no_such_offer":
      // It expired or was withdrawn just before the click.
      for (const [offerId, offer] of page.offers) {
        if (answered(offer)) removeOffer(offerId);
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

// ------------------------------------------------------------------ controls

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) {
    showLoginError("Please paste your token.");
    return;
  }
  showLoginError("");
  keepToken(token);
  $("token-input").value = "";
  start(token);
});

$("go-available").addEventListener("click", () => {
  page.prefs.wantAvailable = true;
  savePrefs(page.prefs);
  page.client?.send("set_status", { status: "available" });
});

$("go-away").addEventListener("click", () => {
  page.prefs.wantAvailable = false;
  savePrefs(page.prefs);
  page.client?.send("set_status", { status: "away" });
});

$("auto-answer").addEventListener("change", (event) => {
  page.prefs.autoAnswer = event.target.checked;
  savePrefs(page.prefs);
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
