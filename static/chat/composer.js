// The composer and the actions under the messages: send, stop, edit, regenerate,
// continue and switching alternates. Each checks first what the server would refuse
// (no model, too long, an answer still being written) and says so in the notice line.

import { ensureConversation } from "./connection.js";
import { errorText, requestJson } from "./http.js";
import { canChat, clearNotice, maxChars, showNotice, state, ui, updateCounter } from "./page.js";
import { beginPending, finishPending, sendConfirmed, sendNow } from "./pending.js";
import { showBranch, stream, thread } from "./screen.js";

function hasModel() {
  if (ui.modelSelect.value) return true;
  showNotice("Pick a model before sending.");
  return false;
}

function checkText(text) {
  if (text.length > maxChars) {
    showNotice(`The message is too long (${text.length.toLocaleString()} characters; the limit is ${maxChars.toLocaleString()}).`);
    return false;
  }
  return hasModel();
}

function answerBeingWritten() {
  if (!stream.view) return false;
  showNotice("An answer is still being written. Stop it or wait.");
  return true;
}

export async function send() {
  const attachments = state.attachments;
  if (!canChat || state.pending) return;
  const content = ui.prompt.value;
  const images = attachments.ids;
  if (attachments.blocked) {
    showNotice(attachments.blocked);
    return;
  }
  if (!content.trim() && !images.length) return; // an image may go alone
  if (!checkText(content)) return;
  const frame = { type: "send", content, model: ui.modelSelect.value, images };
  frame.client_id = beginPending({
    onConfirmed() {
      if (ui.prompt.value === content) ui.prompt.value = ""; // unless more was typed meanwhile
      attachments.sent(images);
      updateCounter();
    },
    onRefused() {
      ui.prompt.focus();
    },
  });
  try {
    await ensureConversation();
  } catch (error) {
    finishPending();
    showNotice(error.message);
    return;
  }
  sendConfirmed(frame);
}

export function stop() {
  if (!stream.view || state.stopping) return;
  if (state.socket?.send({ type: "stop" })) {
    state.stopping = true;
    ui.stopButton.disabled = true;
    ui.stopButton.textContent = "Stopping…";
  }
}

/** What the buttons under the messages do (actions.js). */
export const messageActions = {
  viewFor: (id) => thread.get(id),

  onEdit(view, text, editor) {
    if (!canChat || state.pending || answerBeingWritten()) return;
    if (!text.trim()) {
      showNotice("The message is empty.");
      return;
    }
    if (!checkText(text)) return;
    editor.setBusy(true);
    const clientId = beginPending({
      onConfirmed: () => editor.close(), // the edited copy replaces it on screen
      onRefused: () => editor.setBusy(false),
    });
    const model = ui.modelSelect.value;
    sendConfirmed({ type: "edit", id: view.id, content: text, model, client_id: clientId });
  },

  onRegenerate(view) {
    if (!canChat || answerBeingWritten() || !hasModel()) return;
    // With the model picked now: trying another model on the same question is the point.
    if (sendNow({ type: "regenerate", id: view.id, model: ui.modelSelect.value })) clearNotice();
  },

  onContinue(view) {
    if (!canChat || answerBeingWritten()) return;
    if (sendNow({ type: "continue", id: view.id })) clearNotice();
  },

  async onAlternate(target) {
    if (!state.conversation || answerBeingWritten()) return;
    state.branchLoad += 1; // a branch fetch in flight would show the old choice
    const result = await requestJson(`/c/${state.conversation}/alternates/${target}/`, { method: "POST" });
    if (result.ok && typeof result.data.html === "string") {
      clearNotice();
      showBranch(result.data.html);
    } else {
      showNotice(errorText(result, "Switching versions"));
    }
  },
};
