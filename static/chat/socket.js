// The conversation socket (docs/websocket.md): connect, reconnect with backoff, and
// give up only on the close codes that mean "this will never work".

export const FATAL_CLOSES = {
  4401: "You are logged out. Log in again to keep chatting.",
  4403: "Waiting for approval: your account can't chat until an administrator approves it.",
  4404: "Conversation not found. It may have been deleted.",
};

const BACKOFF_MS = [1000, 2000, 4000, 8000, 10000];
// 4503: the server is up but lost Redis for a moment (or is still without it): every page
// comes back at once, spread over a second so that they don't all arrive together, and
// keeps trying every ~2 s, so it is back within seconds of Redis.
export const CLOSE_RECONNECT = 4503;
const RECONNECT_BACKOFF_MS = [500, 1000, 2000];

/** How long to wait before reconnecting attempt number `attempt` after `code`. */
export function reconnectDelay(code, attempt) {
  const steps = code === CLOSE_RECONNECT ? RECONNECT_BACKOFF_MS : BACKOFF_MS;
  const base = steps[Math.min(attempt, steps.length - 1)];
  return code === CLOSE_RECONNECT ? Math.round(base * (0.5 + Math.random())) : base;
}

export function socketUrl(conversationId) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return `${scheme}${location.host}/ws/conversations/${encodeURIComponent(conversationId)}/`;
}

export class ChatSocket {
  /**
   * handlers: onOpen(reconnected), onFrame(frame), onFatal(code, text),
   * onReconnecting(delayMs), and onClose() for any close.
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.closedForGood = false;
    this.suspended = false;
    this.everOpened = false;
    this.ready = false; // the current socket has heard from the server
    this.onOnline = () => {
      if (this.timer) this.retryNow();
    };
    window.addEventListener("online", this.onOnline);
    // Leaving the page closes the socket quietly (no "Reconnecting…"); coming back to it
    // from the back/forward cache opens a new one, which starts with a fresh snapshot.
    window.addEventListener("pagehide", () => this.suspend());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && this.suspended) {
        this.suspended = false;
        this.attempt = 0;
        this.connect();
      }
    });
  }

  /** Open and heard from: the server speaks first (a snapshot) once it can serve us. */
  get isOpen() {
    return this.ws !== null && this.ready && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.closedForGood || this.suspended) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.ready = false;
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        console.warn("ignoring a frame that is not JSON");
        return;
      }
      // The server always speaks first (a snapshot): from here the link is healthy. Not
      // before: a server without Redis accepts, then closes at once (4503), and a frame
      // sent in between would be lost.
      this.attempt = 0;
      if (!this.ready && this.ws === ws) {
        this.ready = true;
        const reconnected = this.everOpened;
        this.everOpened = true;
        this.handlers.onOpen?.(reconnected);
      }
      if (frame && typeof frame.type === "string") this.handlers.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.onClose?.();
      if (this.closedForGood || this.suspended) return;
      if (FATAL_CLOSES[event.code]) {
        this.closedForGood = true;
        this.handlers.onFatal?.(event.code, FATAL_CLOSES[event.code]);
        return;
      }
      const delay = reconnectDelay(event.code, this.attempt);
      this.attempt += 1;
      this.handlers.onReconnecting?.(delay);
      this.timer = setTimeout(() => {
        this.timer = 0;
        this.connect();
      }, delay);
    });
  }

  retryNow() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.connect();
  }

  /** Send a frame now; false when the socket is not open (nothing is queued). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  suspend() {
    if (this.closedForGood) return;
    this.suspended = true;
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  close() {
    this.closedForGood = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.onOnline);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }
}
