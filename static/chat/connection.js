// The conversation and its socket: created on the first send (or image, or settings
// save) on the home page, then one socket that reconnects by itself (socket.js).

import { onFrame } from "./frames.js";
import { errorText, requestJson } from "./http.js";
import { showConnection, showNotice, state, ui } from "./page.js";
import { finishPending } from "./pending.js";
import { stream } from "./screen.js";
import { addConversation } from "./sidebar.js";
import { ChatSocket, socketUrl } from "./socket.js";

export function openSocket() {
  state.socket = new ChatSocket(socketUrl(state.conversation), {
    onOpen(reconnected) {
      showConnection("");
      stream.connected();
      if (state.queued) {
        state.socket.send(state.queued);
        state.queued = null;
      }
      if (reconnected) console.info("chat socket reconnected");
    },
    onFrame,
    onClose() {
      // A send on the wire when the link dropped may or may not have been saved; give the
      // button back (the text is still in the box) rather than wait forever.
      if (state.pending && !state.queued) {
        const { onRefused } = state.pending;
        finishPending();
        onRefused();
        showNotice("The connection dropped while sending. If your message does not appear, send it again.");
      }
    },
    onReconnecting() {
      showConnection("Reconnecting…");
    },
    onFatal(code, text) {
      showConnection("");
      showNotice(text);
      state.queued = null;
      state.pending?.onRefused();
      finishPending();
      stream.setView(null);
    },
  });
  state.socket.connect();
}

async function createConversation(model) {
  const result = await requestJson("/c/new/", { method: "POST", body: new URLSearchParams({ model }) });
  if (!result.ok || !result.data.id) throw new Error(errorText(result, "Starting a conversation"));
  return result.data;
}

/**
 * The conversation's uuid, creating it first on the home page (the first send, image or
 * settings save does). Concurrent callers share one creation.
 */
export function ensureConversation() {
  if (state.conversation) return Promise.resolve(state.conversation);
  state.creating ??= createConversation(ui.modelSelect.value)
    .then((created) => {
      state.conversation = created.id;
      history.pushState({ conversation: created.id }, "", created.url);
      addConversation(ui.sidebar, created.id, created.url);
      openSocket();
      return created.id;
    })
    .finally(() => {
      state.creating = null;
    });
  return state.creating;
}
