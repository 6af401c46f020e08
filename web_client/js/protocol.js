// A small client for the signalling protocol (docs/protocol.md): one WebSocket per tab,
// JSON text frames, automatic reconnection with backoff.
//
// The page supplies `hello(client, {reconnect})`, called every time a socket opens: it
// sends `join` / `rejoin` / `login`, so a dropped socket picks up where it left off.
//
//   const client = new ProtocolClient({ hello: (c) => c.send("login", { token }) });
//   client.on("logged_in", (msg) => ...);
//   client.onState((state) => ...);   // "connecting" | "open" | "reconnecting" | "closed"
//   client.connect();

/** WebSocket close codes the server uses, and whether reconnecting makes sense. */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // the server is shutting down: come back with backoff
  POLICY: 1008, // flood: too many messages
  TOO_BIG: 1009, // a message over the size limit
  RESTART: 1012, // the server is restarting: come back with backoff
  TRY_AGAIN: 1013, // this socket read too slowly and its outbox backed up
  REPLACED: 4001, // the same customer or agent opened another tab
});

const NO_RECONNECT = new Set([CLOSE.POLICY, CLOSE.TOO_BIG, CLOSE.REPLACED]);

/**
 * Why a connection in `state` will not come back by itself: "replaced" (another tab took
 * over), "refused" (the server closed it for flooding or an oversized message), or null.
 */
export function closedFor(state, code) {
  if (state !== "closed") return null;
  if (code === CLOSE.REPLACED) return "replaced";
  if (code === CLOSE.POLICY || code === CLOSE.TOO_BIG) return "refused";
  return null;
}

const KEEPALIVE_MS = 25_000; // a ping this often keeps proxies from closing an idle socket
const DEAD_AFTER_MS = 15_000; // no answer to a ping this long: the socket is dead
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class ProtocolClient {
  /**
   * @param {object} options
   * @param {(client: ProtocolClient, info: {reconnect: boolean}) => void} options.hello
   * @param {string} [options.url]
   */
  constructor({ hello, url = defaultUrl() }) {
    this.url = url;
    this.hello = hello;
    this.state = "closed";
    this.closeCode = null;
    this._ws = null;
    this._handlers = new Map();
    this._stateHandlers = [];
    this._attempt = 0;
    this._opened = false; // has any socket of this client ever opened?
    this._stopped = true;
    this._retryTimer = null;
    this._keepalive = null;
    this._lastHeard = 0;
  }

  /** Call `handler(message)` for every server message of `type` ("*" for all). */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, []);
    this._handlers.get(type).push(handler);
    return this;
  }

  /** Call `handler(state, closeCode)` whenever the connection state changes. */
  onState(handler) {
    this._stateHandlers.push(handler);
    return this;
  }

  connect() {
    this._stopped = false;
    this._open();
  }

  /** Send one message; returns false (and sends nothing) while the socket is not open. */
  send(type, fields = {}) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
    this._ws.send(JSON.stringify({ ...fields, type }));
    return true;
  }

  /** Close for good: no reconnect. */
  close() {
    this._stopped = true;
    clearTimeout(this._retryTimer);
    this._stopKeepalive();
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      this._detach(ws);
      ws.close(CLOSE.NORMAL, "bye");
    }
    this._setState("closed");
  }

  // ------------------------------------------------------------- internals

  _open() {
    clearTimeout(this._retryTimer);
    this._setState(this._opened ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.error("cannot open the signalling socket", err);
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      const reconnect = this._opened;
      this._opened = true;
      this._attempt = 0;
      this._lastHeard = Date.now();
      this._startKeepalive();
      this._setState("open");
      this.hello(this, { reconnect });
    };
    ws.onmessage = (event) => {
      this._lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        console.warn("ignoring a frame that is not JSON");
        return;
      }
      this._dispatch(message);
    };
    ws.onclose = (event) => this._lost(ws, event.code);
    ws.onerror = () => {}; // onclose follows and decides what to do
  }

  _lost(ws, code) {
    if (ws !== this._ws) return;
    this._detach(ws);
    this._ws = null;
    this.closeCode = code;
    this._stopKeepalive();
    if (this._stopped) {
      this._setState("closed", code);
    } else if (NO_RECONNECT.has(code)) {
      this._stopped = true;
      this._setState("closed", code);
    } else {
      this._scheduleRetry(code);
    }
  }

  _scheduleRetry(code = null) {
    const base = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt += 1;
    const delay = base / 2 + Math.random() * (base / 2);
    this._setState("reconnecting", code);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  _startKeepalive() {
    this._stopKeepalive();
    this._keepalive = setInterval(() => {
      const ws = this._ws;
      if (!ws) return;
      if (Date.now() - this._lastHeard > KEEPALIVE_MS + DEAD_AFTER_MS) {
        // Nothing heard, not even a pong: give up on this socket and reconnect.
        this._lost(ws, 4999); // detaches it and schedules a reconnect
        ws.close();
        return;
      }
      this.send("ping");
    }, KEEPALIVE_MS);
  }

  _stopKeepalive() {
    clearInterval(this._keepalive);
    this._keepalive = null;
  }

  _setState(state, code = null) {
    if (state === this.state && state !== "reconnecting") return;
    this.state = state;
    for (const handler of this._stateHandlers) handler(state, code);
  }

  _dispatch(message) {
    const handlers = [...(this._handlers.get(message.type) || []), ...(this._handlers.get("*") || [])];
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (err) {
        console.error(`handler for ${message.type} failed`, err);
      }
    }
  }
}

/** "about 3 min", "about 40 s", "any moment now", or a message for an unknown wait. */
export function formatWait(seconds) {
  if (seconds === null || seconds === undefined) return "not known yet";
  if (seconds <= 5) return "any moment now";
  if (seconds < 60) return `about ${Math.round(seconds / 5) * 5} s`;
  const minutes = Math.round(seconds / 60);
  return `about ${minutes} min`;
}
