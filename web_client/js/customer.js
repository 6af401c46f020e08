// The customer page: join a queue, wait with live position and chat, talk, hang up.
// Speaks only the protocol in docs/protocol.md.

import { carryIntoCall, checkDevices, mediaStarted, onAnswer, startMedia, stopMedia } from "./customer-call.js";
import {
  GREETER_STORE,
  KEY_STORE,
  PROFILE_STORE,
  TICKET_STORE,
  fillForm,
  forgetTicket,
  load,
  profileFromForm,
  save,
  savedProfile,
} from "./customer-store.js";
import { showCallState, showConnection, showEndReason, showPeerStatus, showScreenShare, showStartError } from "./customer-status.js";
import { hideChoice, showChoice, showQueueStatus, showRequeued, wireWaitingView } from "./customer-waiting.js";
import { CLOSE, ProtocolClient, closedFor } from "./protocol.js";
import { useIceServers } from "./session.js";
import {
  $,
  announce,
  appendChat,
  clearNotice,
  notice,
  renderChat,
  showView,
  wireChatForm,
} from "./ui.js";

const page = {
  client: null,
  mode: "idle", // idle | joining | waiting | call | ended
  queueState: null, // the state of the last queue_status
  lastStatus: null, // the last queue_status itself (the server sends one only when it changes)
  chosenAgent: null, // the agent a returning customer chose to wait for
  position: null,
  agentName: null,
  connection: "closed",
  greeter: false, // the server greets this conversation's wait: media starts while waiting
  greetAfresh: false, // a rejoin while waiting: offer the greeting's media again
};

const form = document.getElementById("start-form");
const chatSection = document.getElementById("chat");
const chatLog = $("chat-log");
const chatInput = $("chat-input");

// ------------------------------------------------------------------ state

function setMode(mode, view = mode) {
  page.mode = mode;
  if (view === "idle") view = "start";
  if (view === "joining") view = "waiting";
  showView(view);
  chatSection.hidden = !(mode === "waiting" || mode === "call" || mode === "joining");
  showCallState(page);
}

function setConnection(state, code) {
  // A reloaded tab's first connection is a reconnection, as far as its user can tell.
  if (state === "connecting" && load("session", TICKET_STORE)) state = "reconnecting";
  page.connection = state;
  if (state === "reconnecting" && (code === CLOSE.GOING_AWAY || code === CLOSE.RESTART)) page.sawRestart = true;
  showConnection(page);
  const closed = closedFor(state, code);
  if (closed === "replaced") {
    page.client = null;
    setMode("idle");
    notice("This conversation continued in another tab.", "info");
  } else if (closed === "refused") {
    page.client = null;
    setMode("idle");
    notice("The server closed the connection. Please try again.", "error");
  }
  showCallState(page);
}

// ------------------------------------------------------------------ connection

function hello(client) {
  const ticket = load("session", TICKET_STORE);
  if (ticket) {
    client.send("rejoin", { ticket });
    return;
  }
  const profile = savedProfile() || profileFromForm();
  const message = { name: profile.name, topic: profile.topic, language: profile.language };
  if (profile.skill) message.skill = profile.skill;
  const key = load("local", KEY_STORE);
  if (key) message.customer_key = key;
  client.send("join", message);
}

function start() {
  stop();
  const client = new ProtocolClient({ hello });
  page.client = client;
  client.onState(setConnection);
  client.on("welcome", useIceServers); // before onWelcome, which may offer media at once
  client.on("welcome", onWelcome);
  client.on("transcript", (m) => renderChat(chatLog, m.messages || [], "customer"));
  client.on("queue_status", onQueueStatus);
  client.on("choice", onChoice);
  client.on("call_started", onCallStarted);
  client.on("chat", (m) => appendChat(chatLog, m, "customer"));
  client.on("call_ended", onCallEnded);
  client.on("left", onLeft);
  client.on("webrtc_answer", onAnswer);
  client.on("layout", (m) => ($("media").dataset.layout = m.layout));
  client.on("screen_share", showScreenShare);
  client.on("peer_status", (m) => showPeerStatus(m, page.agentName));
  client.on("error", onError);
  client.connect();
}

function stop() {
  stopMedia();
  if (page.client) {
    page.client.close();
    page.client = null;
  }
}

// ------------------------------------------------------------------ server messages

function onWelcome(message) {
  save("session", TICKET_STORE, message.ticket);
  if (message.customer_key) save("local", KEY_STORE, message.customer_key);
  // `greeter` comes with a join's welcome; a rejoin's keeps what this tab was told.
  if (typeof message.greeter === "boolean") save("session", GREETER_STORE, message.greeter ? "1" : null);
  page.greeter = load("session", GREETER_STORE) === "1";
  page.sawRestart = false;
  if (message.rejoined) {
    clearNotice();
    // call_started or queue_status follows and says where we are; a queue_status means
    // we are still waiting, and a greeted wait offers its media again.
    page.greetAfresh = page.greeter;
    if (page.mode !== "call") setMode("waiting");
    announce("Reconnected.");
    return;
  }
  chatLog.replaceChildren();
  page.position = null;
  page.queueState = null;
  page.lastStatus = null;
  page.chosenAgent = null;
  setMode("waiting");
  announce("You are in the queue.");
  if (page.greeter) greet();
}

/** The server greets the wait: offer media now, as in a call (docs/protocol.md, "Greeting while waiting"). */
function greet() {
  page.greetAfresh = false;
  const client = page.client;
  startMedia((type, fields) => client.send(type, fields), { greeting: true }).catch((error) => {
    console.error("media could not start while waiting", error);
  });
}

function onQueueStatus(message) {
  if (page.mode !== "waiting") setMode("waiting", "waiting");
  page.lastStatus = message;
  page.queueState = message.state;
  showQueueStatus(message, { chosenAgent: page.chosenAgent, previousPosition: page.position });
  page.position = message.position;
  showCallState(page);
  if (page.greetAfresh) greet();
}

function onChoice(message) {
  page.chosenAgent = message.agent_name;
  showChoice(message);
}

function onCallStarted(message) {
  page.agentName = message.agent?.name || "an agent";
  page.greetAfresh = false;
  $("connected-with").textContent = `Connected with ${page.agentName}`;
  hideChoice();
  clearNotice();
  showRequeued(false);
  const resumed = page.mode === "call";
  setMode("call", "call");
  if (!resumed) announce(`${page.agentName} has joined. You are connected.`);
  if (!message.rejoined && mediaStarted()) {
    // Offered while waiting: the server carries that connection into the call. No new offer.
    carryIntoCall();
    return;
  }
  // A new call, or the same call after a rejoin: either way, offer media afresh.
  const client = page.client;
  startMedia((type, fields) => client.send(type, fields)).catch((error) => {
    console.error("media could not start", error);
    notice("Video could not start. You can still use the chat.", "error");
  });
}

function onCallEnded(message) {
  if (message.requeued) {
    // The agent dropped: back to the head of the queue, keeping the place and the chat.
    stopMedia();
    page.agentName = null;
    setMode("waiting");
    showRequeued(true);
    // The server pushes queue_status only when it differs from the last one it sent, so
    // the last one received before the call stands until a new one arrives.
    if (page.lastStatus) onQueueStatus(page.lastStatus);
    announce("Your agent was disconnected. You are back at the front of the queue.");
    // The server closed the call's media: a greeted wait offers again.
    if (page.greeter) greet();
    return;
  }
  forgetTicket();
  stop();
  stopMedia({ release: true });
  showEndReason(message.reason);
  setMode("ended");
  announce("The call has ended.");
}

function onLeft() {
  forgetTicket();
  stop();
  stopMedia({ release: true });
  setMode("idle", "start");
  notice("You left the queue.", "info");
  announce("You left the queue.");
}

function onError(message) {
  switch (message.code) {
    case "unknown_ticket": {
      const lost = page.mode === "call" ? "Your call" : "Your place in the queue";
      const why = page.sawRestart ? "was lost when the server restarted" : "has expired";
      forgetTicket();
      stop();
      stopMedia({ release: true });
      setMode("idle", "start");
      notice(`${lost} ${why}. Sorry! Please start again.`, "error");
      page.sawRestart = false;
      return;
    }
    case "already_queued":
      stop();
      setMode("idle", "start");
      notice("You are already in the queue in another tab.", "error");
      return;
    case "unknown_queue":
      // The widget or link names a queue this centre does not serve: nothing to retry.
      stop();
      setMode("idle", "start");
      showStartError(`Sorry, we cannot take this request here: ${message.message}.`);
      return;
    case "invalid":
    case "not_joined":
      if (page.mode === "joining") {
        stop();
        setMode("idle", "start");
        showStartError(`Please check the form: ${message.message}`);
        return;
      }
      break;
    case "rate_limited":
      notice("Slow down a little: a message was not sent.", "error");
      return;
    case "shutting_down":
      notice("The server is restarting. We will reconnect you.", "info");
      return;
    default:
      break;
  }
  notice(message.message || "Something went wrong.", "error");
}

// ------------------------------------------------------------------ controls

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const profile = profileFromForm();
  if (!profile.name) {
    showStartError("Please tell us your name.");
    $("name-input").focus();
    return;
  }
  showStartError("");
  clearNotice();
  save("session", PROFILE_STORE, JSON.stringify(profile));
  forgetTicket();
  chatLog.replaceChildren();
  page.position = null;
  setMode("joining");
  start();
  // Ask for the devices now, while the click counts as the user's gesture.
  checkDevices({ camera: profile.camera });
});

$("leave-queue").addEventListener("click", () => {
  if (!page.client?.send("leave")) onLeft();
});

$("hang-up").addEventListener("click", () => {
  if (!page.client?.send("end_call")) notice("Not connected: we are trying to reconnect.", "error");
});

wireWaitingView((type, fields) => page.client?.send(type, fields));

$("new-call").addEventListener("click", () => {
  clearNotice();
  setMode("idle", "start");
  $("name-input").focus();
});

wireChatForm(document.getElementById("chat-form"), chatInput, (text) => {
  if (page.client?.send("chat", { text })) return true;
  notice("Not connected: your message was not sent.", "error");
  return false;
});

// ------------------------------------------------------------------ boot

if (new URLSearchParams(location.search).get("embed") === "overlay" && window.parent !== window) {
  // Inside the site widget's dialog: Escape hides the dialog (the page keeps its place).
  document.body.classList.add("embedded");
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") window.parent.postMessage({ type: "telepresence:close" }, "*");
  });
}

fillForm(savedProfile());
if (load("session", TICKET_STORE)) {
  // A reloaded tab: rejoin the same place (or call) with this tab's ticket.
  page.connection = "reconnecting";
  setMode("joining");
  $("connection-banner").hidden = false;
  $("connection-text").textContent = "Reconnecting to your place in the queue…";
  start();
  checkDevices({ camera: savedProfile()?.camera !== false });
} else {
  setMode("idle", "start");
}
