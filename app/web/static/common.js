// Shared by both pages: the reconnecting socket and small DOM helpers.
// A WebSocket that comes back by itself: reconnects with capped, jittered backoff, at once when
// the browser says it is online again, and after a silent (dead) connection. The page decides
// what a close means (onClose returns false to stop) and what to send on (re)connect (onOpen).

const PING_EVERY_MS = 10000; // the volunteer socket counts any frame as a heartbeat (30 s timeout)
const DEAD_AFTER_MS = 35000; // nothing at all heard for this long: the connection is gone

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class Link {
  constructor(path, { onOpen, onFrame, onClose, onState }) {
    this.path = path;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onClose = onClose || (() => true);
    this.onState = onState || (() => {});
    this.ws = null;
    this.failures = 0;
    this.stopped = true;
    this.timer = null;
    this.pinger = null;
    this.lastHeard = 0;
    this.retryAt = 0;
    this.retryDelayMs = null; // set by the page for a server-given retry_after_s
    window.addEventListener("online", () => {
      if (!this.stopped && !this.ws) this.connectNow();
    });
  }

  start() {
    this.stopped = false;
    this.connectNow();
  }

  stop(code = 1000) {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      try { ws.close(code); } catch { /* already closed */ }
    }
    this.onState("stopped", 0);
  }

  /** The server answered (session / ready): the next drop starts the backoff from scratch. */
  established() {
    this.failures = 0;
    this.onState("open", 0);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connectNow() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.onState("connecting", 0);
    let ws;
    try {
      ws = new WebSocket(socketUrl(this.path));
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.keepAlive(), PING_EVERY_MS);
      this.onOpen();
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === "string") this.onFrame(frame);
    };
    ws.onclose = (event) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (this.onClose(event.code) === false) {
        this.stopped = true;
        this.onState("stopped", 0);
        return;
      }
      // 1012: that instance is shutting down and another one answers: come back at once.
      this.retry(event.code === 1012 && this.failures === 0 ? 150 : null);
    };
  }

  keepAlive() {
    if (!this.open) return;
    if (Date.now() - this.lastHeard > DEAD_AFTER_MS) {
      // No pong, no frame: a half-open connection (a laptop lid, a lost network). Start over.
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      try { ws.close(); } catch { /* ignore */ }
      this.retry();
      return;
    }
    this.send({ type: "ping" });
  }

  retry(first = null) {
    this.failures += 1;
    let delay = first ?? Math.min(10000, 500 * 2 ** Math.min(this.failures - 1, 5));
    delay = delay * (0.7 + Math.random() * 0.6);
    if (this.retryDelayMs !== null) {
      delay = Math.max(delay, this.retryDelayMs);
      this.retryDelayMs = null;
    }
    this.retryAt = Date.now() + delay;
    this.onState("offline", delay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectNow(), delay);
  }
}

/** A client_msg_id: random, 32 hex characters. */
export function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Create an element with attributes and children (text is always text, never HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** "+1 (555) 010-0" -> "+15550100"; null when it is not something a phone can dial. */
export function diallable(text) {
  const compact = text.replace(/[\s().-]/g, "");
  return /^\+?[0-9]{2,15}$/.test(compact) ? compact : null;
}

/** Text with every phone number in it as a tel: link (for safety messages). */
export function withPhoneLinks(text) {
  const out = [];
  const pattern = /\+?\d[\d ()-]{1,18}\d/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    const tel = diallable(match[0]);
    if (!tel) continue;
    out.push(text.slice(last, match.index));
    out.push(h("a", { href: `tel:${tel}`, class: "tel" }, match[0]));
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}
