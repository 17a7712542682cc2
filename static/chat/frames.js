// What each frame of the conversation socket does to the page (docs/websocket.md).

import { clearNotice, showConnection, showNotice, state, ui } from "./page.js";
import { finishPending, pendingFor } from "./pending.js";
import { placeInBranch, stream, thread, updateGauge } from "./screen.js";
import { setTitle, touchCurrent } from "./sidebar.js";

function onUserMessage(frame) {
  const message = frame.message;
  if (placeInBranch(message)) {
    const view = thread.get(message.id);
    if (!view) {
      thread.addMessage(message, message.role || "user", state.conversation).replace(message.content, "");
    }
    else if (message.alternates) view.setAlternates(message.alternates);
  }
  const pending = pendingFor(frame);
  if (pending) {
    // Saved: only now may the text box (or the editor) be emptied.
    finishPending();
    pending.onConfirmed();
    clearNotice();
    touchCurrent(ui.sidebar, frame.conversation?.title);
  }
  state.stickToBottom = true;
}

function onError(frame) {
  showNotice(frame.message || "Something went wrong.");
  const pending = pendingFor(frame);
  if (pending) {
    finishPending(); // refused: the text stays where it was typed
    pending.onRefused();
  }
}

/** Ollama is busy: the answer waits in line (a `queued` frame) until its first delta. */
function showQueued(position) {
  state.waiting = Number.isInteger(position);
  showConnection(state.waiting ? `Ollama is busy: your answer waits in line (number ${position}).` : "");
}

export function onFrame(frame) {
  if (state.waiting && (frame.type === "delta" || frame.type === "done")) showQueued(null);
  switch (frame.type) {
    case "snapshot":
      stream.snapshot(frame.message ?? null);
      updateGauge();
      break;
    case "message":
      if (frame.message) onUserMessage(frame);
      break;
    case "start":
      if (frame.message) stream.start(frame.message);
      break;
    case "delta":
      if (Number.isInteger(frame.seq)) stream.delta(frame);
      break;
    case "done":
      stream.done(frame);
      updateGauge();
      break;
    case "error":
      onError(frame);
      break;
    case "queued":
      showQueued(frame.position);
      break;
    case "title":
      setTitle(ui.sidebar, frame.title); // named by the model, or renamed in another tab
      break;
    default:
      console.warn("unknown frame", frame.type);
  }
}
