// The chat page: model picker, composer, and the conversation socket (docs/websocket.md).
// Data from the server comes from <script type="application/json" id="page-data"> and
// data-* attributes (the CSP forbids inline scripts). All text reaches the page through
// textContent or the Markdown → DOMPurify path in markdown.js.
//
// The page shows one branch of the conversation's message tree (regenerated answers and
// edited questions are alternates, "< 2/3 >"). A `message` or `start` frame names its
// parent: when that is not the last message shown, the branch changed, and what followed
// the parent leaves the screen (it is still there as alternates).

import { enableMessageActions } from "./actions.js";
import { Attachments } from "./attachments.js";
import { updateContextGauge } from "./context_gauge.js";
import { errorText, requestJson } from "./http.js";
import { enableCopyButtons, onMathReady } from "./markdown.js";
import { onRendered } from "./messages.js";
import { loadModels } from "./models.js";
import { setUpSettingsPanel } from "./panel.js";
import { addConversation, setTitle, touchCurrent } from "./sidebar.js";
import { ChatSocket, socketUrl } from "./socket.js";
import { Stream } from "./stream.js";
import { Thread } from "./thread.js";

const page = JSON.parse(document.getElementById("page-data").textContent);

const $ = (selector) => document.querySelector(selector);
const list = $("#messages");
const form = $("#composer");
const prompt = $("textarea[name=prompt]");
const modelSelect = $("select[name=model]");
const sendButton = $("[data-testid=send]");
const stopButton = $("[data-testid=stop]");
const notice = $("[data-testid=notice]");
const connection = $("#connection");
const counter = $("#counter");
const sidebar = $("#conversation-list");
const contextGauge = $("[data-testid=context-gauge]");

const canChat = !form.hasAttribute("data-disabled");
const maxChars = Number(page.maxMessageChars) || Infinity;
const SEND_TIMEOUT_MS = 20000; // no answer to a send by then: give the button back

const state = {
  conversation: page.conversation || null,
  creating: null, // the POST /c/new/ in flight, shared by whoever needs the conversation
  pending: null, // {clientId, timer, onConfirmed, onRefused}: a send or edit not yet confirmed
  queued: null, // a send/edit frame waiting for the socket to open
  socket: null,
  stickToBottom: true,
  stopping: false,
  branchLoad: 0, // answers to older branch fetches are ignored
  waiting: false, // the connection line says the answer is queued
};
let attachments = null; // the composer's images (attachments.js), when the user may chat
const thread = new Thread(list); // the messages on screen
// The answer being written (stream.js); it shows and hides the Stop button.
const stream = new Stream({
  thread,
  send: (frame) => state.socket?.send(frame) ?? false,
  place: placeInBranch,
  reloadBranch,
  conversation: () => state.conversation,
  onChange(view) {
    state.stopping = false;
    stopButton.hidden = view === null;
    stopButton.disabled = false;
    stopButton.textContent = "Stop";
  },
});

// --- notices --------------------------------------------------------------------------

function showNotice(text) {
  notice.textContent = text;
}

function clearNotice() {
  notice.textContent = "";
}

function showConnection(text) {
  connection.textContent = text;
}

// --- scrolling ------------------------------------------------------------------------

function nearBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 48;
}

function scrollToBottom() {
  list.scrollTop = list.scrollHeight;
}

list.addEventListener("scroll", () => {
  state.stickToBottom = nearBottom();
});

// A long conversation opens with its last messages; older ones load on demand.
list.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-testid=show-earlier]");
  if (!button || !state.conversation) return;
  button.disabled = true;
  const before = encodeURIComponent(button.dataset.before);
  const result = await requestJson(`/c/${state.conversation}/messages/?before=${before}`);
  if (!result.ok) {
    button.disabled = false;
    showNotice(errorText(result, "Loading earlier messages"));
    return;
  }
  thread.prepend(result.data.html, button);
});

onRendered(() => {
  if (state.stickToBottom) scrollToBottom();
});

// --- the messages on screen -----------------------------------------------------------

/** Show another branch (server-rendered); a live answer in it is synced afresh. */
function showBranch(html) {
  thread.replace(html);
  stream.branchReplaced();
  updateContextGauge(contextGauge, list);
}

/** Fetch the branch the server shows (another tab switched or extended it). */
async function reloadBranch() {
  if (!state.conversation) return;
  const load = ++state.branchLoad;
  const result = await requestJson(`/c/${state.conversation}/messages/`);
  if (load !== state.branchLoad) return;
  if (result.ok && typeof result.data.html === "string") showBranch(result.data.html);
  else showNotice(errorText(result, "Loading the conversation"));
}

/** Make room for a `message`/`start` payload after its parent; false: fetching instead. */
function placeInBranch(message) {
  if (!thread.place(message)) {
    reloadBranch();
    return false;
  }
  stream.pruned();
  return true;
}

// --- frames ---------------------------------------------------------------------------

function onUserMessage(frame) {
  const message = frame.message;
  if (placeInBranch(message)) {
    const view = thread.get(message.id);
    if (!view) {
      thread.addMessage(message, message.role || "user", state.conversation).replace(message.content, "");
    }
    else if (message.alternates) view.setAlternates(message.alternates);
  }
  if (frame.client_id && state.pending && frame.client_id === state.pending.clientId) {
    // Saved: only now may the text box (or the editor) be emptied.
    const { onConfirmed } = state.pending;
    finishPending();
    onConfirmed();
    clearNotice();
    touchCurrent(sidebar, frame.conversation?.title);
  }
  state.stickToBottom = true;
}

function onError(frame) {
  showNotice(frame.message || "Something went wrong.");
  if (frame.client_id && state.pending && frame.client_id === state.pending.clientId) {
    const { onRefused } = state.pending;
    finishPending(); // refused: the text stays where it was typed
    onRefused();
  }
}

/** Ollama is busy: the answer waits in line (a `queued` frame) until its first delta. */
function showQueued(position) {
  state.waiting = Number.isInteger(position);
  showConnection(state.waiting ? `Ollama is busy: your answer waits in line (number ${position}).` : "");
}

function onFrame(frame) {
  if (state.waiting && (frame.type === "delta" || frame.type === "done")) showQueued(null);
  switch (frame.type) {
    case "snapshot":
      stream.snapshot(frame.message ?? null);
      updateContextGauge(contextGauge, list);
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
      updateContextGauge(contextGauge, list);
      break;
    case "error":
      onError(frame);
      break;
    case "queued":
      showQueued(frame.position);
      break;
    case "title":
      setTitle(sidebar, frame.title); // named by the model, or renamed in another tab
      break;
    default:
      console.warn("unknown frame", frame.type);
  }
}

// --- the socket -----------------------------------------------------------------------

function openSocket() {
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

// --- the conversation ----------------------------------------------------------------

async function createConversation(model) {
  const result = await requestJson("/c/new/", { method: "POST", body: new URLSearchParams({ model }) });
  if (!result.ok || !result.data.id) throw new Error(errorText(result, "Starting a conversation"));
  return result.data;
}

/**
 * The conversation's uuid, creating it first on the home page (the first send, image or
 * settings save does). Concurrent callers share one creation.
 */
function ensureConversation() {
  if (state.conversation) return Promise.resolve(state.conversation);
  state.creating ??= createConversation(modelSelect.value)
    .then((created) => {
      state.conversation = created.id;
      history.pushState({ conversation: created.id }, "", created.url);
      addConversation(sidebar, created.id, created.url);
      openSocket();
      return created.id;
    })
    .finally(() => {
      state.creating = null;
    });
  return state.creating;
}

// --- sending --------------------------------------------------------------------------

function newClientId() {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Track a send or edit until the server confirms (or refuses) it; its client_id. */
function beginPending({ onConfirmed, onRefused }) {
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

function finishPending() {
  if (state.pending) clearTimeout(state.pending.timer);
  state.pending = null;
  state.queued = null;
  updateCounter();
}

/** Send a frame that waits for confirmation: queued until the socket is open. */
function sendConfirmed(frame) {
  if (state.socket?.send(frame)) return;
  state.queued = frame; // sent as soon as the socket is (back) up
  if (state.socket?.everOpened) {
    showConnection("Reconnecting… your message goes out when the connection is back.");
  }
}

/** Send a frame now, or say why not. */
function sendNow(frame) {
  if (state.socket?.send(frame)) return true;
  showNotice("Not connected to the server right now. Try again in a moment.");
  return false;
}

function hasModel() {
  if (modelSelect.value) return true;
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

function updateCounter() {
  const length = prompt.value.length;
  const over = length > maxChars;
  counter.textContent = length ? `${length.toLocaleString()} / ${maxChars.toLocaleString()}` : "";
  counter.classList.toggle("over", over);
  sendButton.disabled = !canChat || over || state.pending !== null || Boolean(attachments?.blocked);
}

async function send() {
  if (!canChat || state.pending) return;
  const content = prompt.value;
  const images = attachments.ids;
  if (attachments.blocked) {
    showNotice(attachments.blocked);
    return;
  }
  if (!content.trim() && !images.length) return; // an image may go alone
  if (!checkText(content)) return;
  const frame = { type: "send", content, model: modelSelect.value, images };
  frame.client_id = beginPending({
    onConfirmed() {
      if (prompt.value === content) prompt.value = ""; // unless more was typed meanwhile
      attachments.sent(images);
      updateCounter();
    },
    onRefused() {
      prompt.focus();
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

function stop() {
  if (!stream.view || state.stopping) return;
  if (state.socket?.send({ type: "stop" })) {
    state.stopping = true;
    stopButton.disabled = true;
    stopButton.textContent = "Stopping…";
  }
}

// --- actions under the messages -------------------------------------------------------

const messageActions = {
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
    const model = modelSelect.value;
    sendConfirmed({ type: "edit", id: view.id, content: text, model, client_id: clientId });
  },

  onRegenerate(view) {
    if (!canChat || answerBeingWritten() || !hasModel()) return;
    // With the model picked now: trying another model on the same question is the point.
    if (sendNow({ type: "regenerate", id: view.id, model: modelSelect.value })) clearNotice();
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

// --- wiring ---------------------------------------------------------------------------

attachments = canChat
  ? new Attachments({
      input: $("input[type=file][name=image]"),
      button: $("[data-testid=attach]"),
      tray: $("#attachments"),
      dropZone: $("section.chat"),
      pasteTarget: prompt,
      visionNotice: $("[data-testid=vision-notice]"),
      maxBytes: Number(page.maxImageBytes) || 10 * 1024 * 1024,
      maxCount: Number(page.maxImagesPerMessage) || 4,
      getModel: () => modelSelect.value,
      ensureConversation,
      showNotice,
      onChange: () => updateCounter(),
    })
  : null;

setUpSettingsPanel({
  panel: $("#settings-panel"),
  toggle: $("[data-testid=settings]"),
  closeButton: $("#settings-close"),
  form: $("#settings-form"),
  initial: page.settings,
  modelSelect,
  conversation: () => state.conversation,
  ensureConversation,
});

thread.adopt();
stream.setView(thread.streamingView());
enableCopyButtons(list);
enableMessageActions(list, messageActions);
// KaTeX loads on the first formula; messages that showed formulas as source render again.
onMathReady(() => {
  for (const view of thread.views.values()) if (view.el.querySelector(".math-pending")) view.refresh();
});
scrollToBottom();

form.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});

prompt.addEventListener("keydown", (event) => {
  // keyCode 229: some IMEs report their Enter this way instead of setting isComposing.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  send();
});

prompt.addEventListener("input", updateCounter);

modelSelect.addEventListener("change", () => attachments?.checkVision());

stopButton.addEventListener("click", stop);

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && stream.view && !event.isComposing) {
    event.preventDefault();
    stop();
  }
});

window.addEventListener("popstate", () => {
  // The page was built for one URL; after Back, show what the URL now says.
  location.reload();
});

updateCounter();
if (canChat) {
  loadModels(modelSelect, page.model, showNotice);
  if (state.conversation) openSocket();
  // Not on touch screens: focusing would pop the keyboard over the conversation.
  if (window.matchMedia("(pointer: fine)").matches) prompt.focus();
}
