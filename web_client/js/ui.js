// Small DOM helpers shared by the customer page, the agent console and the studio.
// Everything that comes from the network is put into the page with textContent, never as HTML.

/** The element with data-testid `id` (or a CSS selector when it starts with "#" or "."). */
export function $(id, root = document) {
  const selector = /^[#.[]/.test(id) ? id : `[data-testid="${id}"]`;
  const element = root.querySelector(selector);
  if (!element) throw new Error(`missing element ${selector}`);
  return element;
}

/** Create an element: el("li", {class: "x", "data-testid": "y"}, "text", child, ...). */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Show exactly one of the `section[data-view]` sections; moves focus to its heading for keyboard users. */
export function showView(name, { focus = true } = {}) {
  let shown = null;
  for (const view of document.querySelectorAll("section[data-view]")) {
    const active = view.dataset.view === name;
    view.hidden = !active;
    if (active) shown = view;
  }
  document.body.dataset.screen = name;
  // Someone typing in the chat keeps their focus; otherwise focus follows the view.
  const typing = document.activeElement && document.activeElement.closest("#chat");
  if (focus && shown && !typing) {
    const heading = shown.querySelector("h2, h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

let announceTimer = null;

/** Tell screen-reader users about a change of state (the page's aria-live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  clearTimeout(announceTimer);
  // Clearing first makes a repeated message be read again.
  region.textContent = "";
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Set the call-state badge: a stable `data-state` for automation, words for people. */
export function setCallState(state, words) {
  const badge = $("call-state");
  badge.dataset.state = state;
  badge.textContent = words;
}

/** Show a dismissable notice (errors and explanations) in the page's notice area. */
export function notice(text, kind = "info") {
  const area = document.getElementById("notice");
  if (!area) return;
  area.textContent = text;
  area.dataset.kind = kind;
  area.hidden = !text;
}

export function clearNotice() {
  notice("");
}

function clock(at) {
  if (typeof at !== "number") return "";
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** One chat entry ({from, name, text, at}) as a list item. */
export function chatItem(entry, me) {
  const mine = entry.from === me;
  const item = el(
    "li",
    { class: `msg from-${entry.from === "agent" ? "agent" : "customer"}${mine ? " mine" : ""}` },
    el("span", { class: "who" }, mine ? "You" : entry.name || entry.from),
    el("time", {}, clock(entry.at)),
    el("p", { class: "text" }, entry.text),
  );
  return item;
}

/** Render a whole transcript into a list, replacing what was there. */
export function renderChat(list, entries, me) {
  list.replaceChildren(...entries.map((entry) => chatItem(entry, me)));
  list.scrollTop = list.scrollHeight;
}

export function appendChat(list, entry, me) {
  list.append(chatItem(entry, me));
  list.scrollTop = list.scrollHeight;
}

/** Wire a chat form: Enter or the send button sends, the input is cleared when it went out. */
export function wireChatForm(form, input, send) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (send(text)) {
      input.value = "";
    }
    input.focus();
  });
}

/** This tab's sessionStorage, or null when storage is disabled (the page still works). */
export function session() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** The token from `#token=...` (then removed from the address bar), or the one this tab kept under `key`. */
export function takeToken(key) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    session()?.setItem(key, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
    return fromLink;
  }
  return session()?.getItem(key) || null;
}
