/*
 * The site widget: one tag on any page adds a "Talk to a person" button.
 *
 *   <script src="https://support.example.com/widget.js" data-queue="billing" data-language="en"
 *           data-mode="overlay" data-label="Talk to a person" async></script>
 *
 * data-queue     the skill queue ("" or absent: the general queue)
 * data-language  the customer's language, preselected on the form (e.g. "en")
 * data-topic     an optional topic to prefill
 * data-mode      "overlay" (default: the customer page in a dialog over this page) or "tab"
 * data-label     the button's words
 *
 * A classic script (not a module), so that it can find its own tag and the server it came from.
 * It adds one button and, when opened, one dialog with an iframe of the customer page; closing
 * the dialog only hides it, so the customer keeps their place (or their call).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__telepresenceWidget) return;
  window.__telepresenceWidget = true;

  var data = script.dataset;
  var origin = new URL(script.src, location.href).origin;
  var label = data.label || "Talk to a person";
  var params = new URLSearchParams();
  if (data.queue) params.set("queue", data.queue);
  if (data.language) params.set("language", data.language);
  if (data.topic) params.set("topic", data.topic);
  params.set("embed", data.mode === "tab" ? "tab" : "overlay");
  var pageUrl = origin + "/?" + params.toString();

  var style = document.createElement("style");
  style.textContent =
    ".tp-widget-button{position:fixed;right:1.25rem;bottom:1.25rem;z-index:2147483000;" +
    "font:600 1rem/1.2 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;padding:.85rem 1.2rem;" +
    "min-height:2.75rem;border:0;border-radius:999px;background:#1f5fbf;color:#fff;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(16,24,40,.25)}" +
    ".tp-widget-button:hover{background:#174a94}" +
    ".tp-widget-button:focus-visible,.tp-widget-close:focus-visible{outline:3px solid #ffb000;outline-offset:2px}" +
    ".tp-widget-dialog{position:fixed;right:1.25rem;bottom:5rem;z-index:2147483001;width:min(26rem,calc(100vw - 2.5rem));" +
    "height:min(44rem,calc(100vh - 6.5rem));display:flex;flex-direction:column;background:#fff;border-radius:14px;" +
    "box-shadow:0 10px 40px rgba(16,24,40,.35);overflow:hidden}" +
    ".tp-widget-dialog[hidden]{display:none}" +
    ".tp-widget-bar{display:flex;justify-content:flex-end;padding:.25rem;background:#f4f6f9;border-bottom:1px solid #d7dde5}" +
    ".tp-widget-close{font:600 .95rem system-ui,sans-serif;min-height:2.5rem;padding:.4rem .9rem;border:1px solid #a9b4c2;" +
    "border-radius:8px;background:#fff;color:#1b2430;cursor:pointer}" +
    ".tp-widget-dialog iframe{flex:1;width:100%;border:0}" +
    "@media (max-width:30rem){.tp-widget-dialog{right:0;bottom:0;width:100vw;height:100vh;border-radius:0}}";
  document.head.appendChild(style);

  var button = document.createElement("button");
  button.type = "button";
  button.className = "tp-widget-button";
  button.textContent = label;
  button.setAttribute("data-testid", "widget-button");

  var dialog = null;

  function open() {
    if (data.mode === "tab") {
      window.open(pageUrl, "_blank", "noopener");
      return;
    }
    if (!dialog) {
      dialog = document.createElement("div");
      dialog.className = "tp-widget-dialog";
      dialog.setAttribute("role", "dialog");
      dialog.setAttribute("aria-label", label);
      dialog.setAttribute("data-testid", "widget-dialog");
      var bar = document.createElement("div");
      bar.className = "tp-widget-bar";
      var close = document.createElement("button");
      close.type = "button";
      close.className = "tp-widget-close";
      close.textContent = "Close";
      close.setAttribute("aria-label", "Close (you keep your place)");
      close.addEventListener("click", hide);
      bar.appendChild(close);
      var frame = document.createElement("iframe");
      frame.title = label;
      frame.src = pageUrl;
      // The customer page needs these inside the frame (the server's origin differs from this page's).
      frame.allow = "camera; microphone; display-capture; autoplay; fullscreen";
      dialog.appendChild(bar);
      dialog.appendChild(frame);
      dialog.addEventListener("keydown", function (event) {
        if (event.key === "Escape") hide();
      });
      document.body.appendChild(dialog);
    }
    dialog.hidden = false;
    button.setAttribute("aria-expanded", "true");
    dialog.querySelector("iframe").focus();
  }

  function hide() {
    if (!dialog) return;
    dialog.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  button.setAttribute("aria-haspopup", data.mode === "tab" ? "false" : "dialog");
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", function () {
    if (dialog && !dialog.hidden) hide();
    else open();
  });
  // Escape inside the frame: the customer page asks to be hidden.
  window.addEventListener("message", function (event) {
    if (event.origin === origin && event.data && event.data.type === "telepresence:close") hide();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && dialog && !dialog.hidden) hide();
  });

  function mount() {
    document.body.appendChild(button);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
