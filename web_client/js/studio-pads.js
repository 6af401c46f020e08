// The studio's pads: a button for each expression and gesture the look allows, with its
// keyboard shortcut, and the keys that press them (Escape interrupts).

import { EXPRESSION_KEYS, GESTURE_KEYS, guardrails } from "./studio-looks.js";
import { el } from "./ui.js";

function label(name) {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

function padButton(kind, name, key, press) {
  const button = el(
    "button",
    { type: "button", "data-testid": `${kind}-${name}`, "data-name": name, "aria-keyshortcuts": key },
    el("span", {}, label(name)),
    key ? el("kbd", { "aria-hidden": "true" }, key) : null,
  );
  if (kind === "expression") button.setAttribute("aria-pressed", String(name === "neutral"));
  button.addEventListener("click", () => press(kind, name));
  return button;
}

/**
 * Buttons for the look's allowed expressions and gestures (the server's list when it gives one),
 * into the `expressions` and `gestures` pads; a click calls `press(kind, name)`.
 */
export function showPads({ expressions: expressionPad, gestures: gesturePad }, look, status, press) {
  const rails = guardrails(look);
  const expressions = Array.isArray(status.expressions) ? status.expressions : rails.expressions;
  const gestures = Array.isArray(status.gestures) ? status.gestures : rails.gestures;
  const focused = document.activeElement?.dataset?.testid;
  expressionPad.replaceChildren(...expressions.map((n) => padButton("expression", n, EXPRESSION_KEYS[n], press)));
  gesturePad.replaceChildren(...gestures.map((n) => padButton("gesture", n, GESTURE_KEYS[n], press)));
  if (focused) document.querySelector(`.pad [data-testid="${focused}"]`)?.focus();
}

/** Show `name` as the expression the avatar wears. */
export function pressExpression(expressionPad, name) {
  for (const button of expressionPad.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.name === name));
  }
}

function flash(button) {
  button.classList.add("fired");
  setTimeout(() => button.classList.remove("fired"), 350);
}

/**
 * A key press on the studio: Escape interrupts, a pad's letter presses it. `live`: the host runs
 * and the studio view is shown.
 */
export function onShortcut(event, { live, interruptButton, interrupt }) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!live) return;
  if (event.key === "Escape") {
    if (event.target.closest?.("select")) return;
    event.preventDefault();
    flash(interruptButton);
    interrupt();
    return;
  }
  if (event.repeat || event.target.closest?.("input, textarea, select, [contenteditable]")) return;
  const key = event.key.length === 1 ? event.key.toUpperCase() : null;
  if (!key) return;
  const button = [...document.querySelectorAll(".pad button")].find((b) => b.getAttribute("aria-keyshortcuts") === key);
  if (!button || button.disabled) return;
  event.preventDefault();
  flash(button);
  button.click();
}
