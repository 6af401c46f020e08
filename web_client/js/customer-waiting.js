// The customer page's waiting view: the place in the queue, the expected wait, and a
// returning customer's choice between their last agent and the next available one.
// customer.js owns the protocol flow and the page's state; this file only shows them.
// (The greeter's video, when the server greets the wait, is customer-call.js's.)

import { formatWait } from "./protocol.js";
import { $, announce } from "./ui.js";

/**
 * Show a `queue_status`. `chosenAgent` is the agent a returning customer chose to wait for,
 * `previousPosition` the place shown before (a new place is announced).
 */
export function showQueueStatus(message, { chosenAgent = null, previousPosition = null } = {}) {
  const position = $("queue-position");
  const wait = $("expected-wait");
  const detail = $("queue-detail");
  if (message.state === "offered") {
    position.textContent = "Next";
    wait.textContent = "any moment now";
    detail.textContent = "An agent is about to join you…";
  } else {
    position.textContent = message.position ?? "–";
    wait.textContent = formatWait(message.expected_wait_s);
    if (message.state === "waiting_for_agent") {
      detail.textContent = `You are waiting for ${chosenAgent || "your agent"}, who will take you as soon as they are free.`;
    } else if (message.capacity) {
      detail.textContent = "We are at capacity right now: you keep your place, and the next free agent takes you as soon as a call ends.";
    } else if (message.expected_wait_s === null) {
      detail.textContent = "Nobody who can help is available right now; you keep your place until someone is.";
    } else {
      detail.textContent = "Keep this tab open: your place is kept if the connection drops.";
    }
  }
  if (message.state !== "choosing") hideChoice();
  if (message.position !== previousPosition && message.position) {
    announce(`You are number ${message.position} in the queue. Expected wait ${formatWait(message.expected_wait_s)}.`);
  } else if (message.state === "offered") {
    announce("An agent is about to join you.");
  }
}

/** A returning customer's last agent is busy: wait for them, or take the next available? */
export function showChoice(message) {
  const name = message.agent_name;
  $("choice-text").textContent =
    `Last time you talked with ${name}, who is busy right now. ` +
    `Would you like to wait for ${name}, or talk to the next available person?`;
  $("choose-agent").textContent = `Wait for ${name} (${formatWait(message.agent_wait_s)})`;
  $("choose-any").textContent = `Next available (${formatWait(message.any_wait_s)})`;
  $("choice").hidden = false;
  announce(`Would you like to wait for ${name}, or talk to the next available person?`);
}

export function hideChoice() {
  $("choice").hidden = true;
}

/** The agent dropped out of the call: the customer is back at the front of the queue. */
export function showRequeued(shown) {
  $("requeued").hidden = !shown;
}

/** Wire the waiting view's buttons; `send(type, fields)` sends a protocol message. */
export function wireWaitingView(send) {
  $("keep-waiting").addEventListener("click", () => {
    showRequeued(false);
    announce("You are waiting for the next agent, at the front of the queue.");
  });
  $("choose-agent").addEventListener("click", () => {
    send("choose", { wait_for: "agent" });
    hideChoice();
  });
  $("choose-any").addEventListener("click", () => {
    send("choose", { wait_for: "any" });
    hideChoice();
  });
}
