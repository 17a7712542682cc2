// A send or an edit is "pending" from the moment it leaves until the server confirms it
// (the `message` frame with its client_id) or refuses it. Until then the typed text stays
// in the box: it is emptied only on confirmation, so nothing typed is ever lost.

import { showConnection, showNotice, state, updateCounter } from "./page.js";

const SEND_TIMEOUT_MS = 20000; // no answer to a send by then: give the button back

function newClientId() {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Track a send or edit until the server confirms (or refuses) it; its client_id. */
export function beginPending({ onConfirmed, onRefused }) {
  const clientId = newClientId();
  state.pending = {
    clientId,
    onConfirmed,
    onRefused,
    timer: setTimeout(() => {
      if (state.pending?.clientId !== clientId) return;
      finishPending();
      onRefused();
      showNotice("The server did not confirm your message. Check the connection and send it again.");
    }, SEND_TIMEOUT_MS),
  };
  updateCounter();
  return clientId;
}

export function finishPending() {
  if (state.pending) clearTimeout(state.pending.timer);
  state.pending = null;
  state.queued = null;
  updateCounter();
}

/** The pending send or edit named by a frame's client_id, if it is the one waiting. */
export function pendingFor(frame) {
  return frame.client_id && state.pending?.clientId === frame.client_id ? state.pending : null;
}

/** Send a frame that waits for confirmation: queued until the socket is open. */
export function sendConfirmed(frame) {
  if (state.socket?.send(frame)) return;
  state.queued = frame; // sent as soon as the socket is (back) up
  if (state.socket?.everOpened) {
    showConnection("Reconnecting… your message goes out when the connection is back.");
  }
}

/** Send a frame now, or say why not. */
export function sendNow(frame) {
  if (state.socket?.send(frame)) return true;
  showNotice("Not connected to the server right now. Try again in a moment.");
  return false;
}
