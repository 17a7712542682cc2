// The models socket (/ws/models/): reconnects with backoff, and gives up only on the
// close codes that mean "this will never work" (logged out, not staff).

import { reconnectDelay } from "../chat/socket.js";

const FATAL_CLOSES = {
  4401: "You are logged out: live updates stopped. Log in again.",
  4403: "Only staff see live updates of the models.",
};

/** handlers: onFrame(frame), onStatus(text) with "" once connected. */
export function openModelsSocket(handlers) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const url = `${scheme}${location.host}/ws/models/`;
  let ws = null;
  let attempt = 0;
  let timer = 0;
  let fatal = false;
  let suspended = false;

  function connect() {
    if (fatal || suspended) return;
    const socket = new WebSocket(url);
    ws = socket;
    let heard = false;
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      // Connected once the server speaks (it sends the pulls first): a server without
      // Redis accepts, then closes at once (4503).
      if (!heard) handlers.onStatus("");
      heard = true;
      attempt = 0;
      if (frame && typeof frame.type === "string") handlers.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (ws !== socket || suspended) return;
      ws = null;
      if (FATAL_CLOSES[event.code]) {
        fatal = true;
        handlers.onStatus(FATAL_CLOSES[event.code]);
        return;
      }
      const delay = reconnectDelay(event.code, attempt); // 4503: soon (Redis was away)
      attempt += 1;
      handlers.onStatus("Live updates interrupted; reconnecting…");
      timer = setTimeout(connect, delay);
    });
  }

  // Leaving the page closes the socket quietly; coming back from the back/forward cache
  // opens a new one, whose first frames bring the page up to date.
  window.addEventListener("pagehide", () => {
    suspended = true;
    clearTimeout(timer);
    if (ws) ws.close(1000);
    ws = null;
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && suspended) {
      suspended = false;
      attempt = 0;
      connect();
    }
  });
  connect();
}
