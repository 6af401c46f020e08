// The customer page's status: the call-state badge, the connection banner, the agent's
// connection and screen-share notes, why the call ended, and the start form's error.
// customer.js owns the page's state; this file only shows it.

import { $, announce, notice, setCallState } from "./ui.js";

/** The call-state badge for `page` (mode, connection, queue state, agent). */
export function showCallState(page) {
  if (page.connection === "reconnecting" && page.mode !== "idle" && page.mode !== "ended") {
    setCallState("reconnecting", "Reconnecting…");
    return;
  }
  switch (page.mode) {
    case "joining":
      setCallState("joining", "Joining the queue…");
      break;
    case "waiting":
      if (page.queueState === "offered") setCallState("offered", "An agent is about to join…");
      else if (page.queueState === "choosing") setCallState("choosing", "Waiting for your choice");
      else if (page.queueState === "waiting_for_agent") setCallState("waiting_for_agent", `Waiting for ${page.chosenAgent || "your agent"}`);
      else setCallState("waiting", "Waiting in the queue");
      break;
    case "call":
      setCallState("in_call", page.agentName ? `Talking with ${page.agentName}` : "In a call");
      break;
    case "ended":
      setCallState("ended", "Call ended");
      break;
    default:
      setCallState("idle", "Not connected");
  }
}

/** The connection banner and the chat's send button for `page` (connection, mode, sawRestart). */
export function showConnection(page) {
  const banner = $("connection-banner");
  const reconnecting = page.connection === "reconnecting" && page.mode !== "idle" && page.mode !== "ended";
  banner.hidden = !reconnecting;
  $("chat-send").disabled = page.connection !== "open";
  if (reconnecting) {
    const restarting = page.sawRestart;
    $("connection-text").textContent = restarting
      ? "The server is restarting. Reconnecting… your place is kept."
      : page.mode === "call"
        ? "Connection lost. Reconnecting to your call…"
        : "Connection lost. Reconnecting… your place is kept.";
  }
}

export function showScreenShare(message) {
  // The agent's screen arrives inside the composite; the layout message does the rest.
  if (message.from === "agent") announce(message.active ? "The agent is sharing their screen." : "The agent stopped sharing their screen.");
}

/** The agent's connection dropped or came back (`peer_status`). */
export function showPeerStatus(message, agentName) {
  const text =
    message.status === "reconnecting"
      ? `${agentName || "Your agent"}'s connection dropped. Please wait a moment…`
      : `${agentName || "Your agent"} is back.`;
  notice(text, message.status === "reconnecting" ? "error" : "info");
  announce(text);
}

const END_REASONS = {
  agent_hung_up: "The agent ended the call.",
  customer_hung_up: "You ended the call.",
  customer_left: "The call ended because this page was away too long.",
  media_failed: "The call ended because the video connection failed.",
};

/** Why the call ended, on the ended view (`call_ended`'s reason). */
export function showEndReason(reason) {
  $("ended-reason").textContent = END_REASONS[reason] || "Thank you for talking to us.";
}

export function showStartError(text) {
  const error = document.getElementById("start-error");
  error.textContent = text;
  error.hidden = !text;
}
