// The agent console's offer cards: who is waiting for this agent, their history and chat so
// far, a countdown to the offer's expiry, and the Accept and Decline buttons.
// agent.js owns the protocol flow and the page's state (its map of offers); this file only
// shows an offer and says what a withdrawal means.

import { $, chatItem, el } from "./ui.js";

export const WITHDRAWN = {
  declined: "You declined the customer; they go to the next agent.",
  timeout: "The offer timed out and went to the next agent.",
  agent_away: "The offer was withdrawn because you went away.",
  agent_left: "The offer was withdrawn.",
  customer_left: "The customer left before the call started.",
};

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

/**
 * A card for an `offer` message, its countdown running: `{card, expiresAt, timer}`. Its
 * buttons call `send("accept" | "decline", {offer_id})`. The caller adds the card to the page
 * and closes it with `closeOffer`.
 */
export function offerCard(message, send) {
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
    send("accept", { offer_id: message.offer_id });
  });
  $("decline", card).addEventListener("click", () => {
    for (const button of card.querySelectorAll("button")) button.disabled = true;
    send("decline", { offer_id: message.offer_id });
  });
  return offer;
}

/** Stop an offer's countdown and take its card off the page. */
export function closeOffer(offer) {
  clearInterval(offer.timer);
  offer.card.remove();
}

/** Whether the agent already clicked Accept or Decline on this offer. */
export function answered(offer) {
  return [...offer.card.querySelectorAll("button")].every((b) => b.disabled);
}
