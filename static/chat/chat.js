// The chat page: model picker, composer, and the conversation socket (docs/websocket.md).
// Data from the server comes from <script type="application/json" id="page-data"> and
// data-* attributes (the CSP forbids inline scripts). All text reaches the page through
// textContent or the Markdown → DOMPurify path in markdown.js.

import { enableCopyButtons } from "./markdown.js";
import { MessageView, onRendered } from "./messages.js";
import { loadModels } from "./models.js";
import { addConversation, touchCurrent } from "./sidebar.js";
import { ChatSocket, socketUrl } from "./socket.js";

const page = JSON.parse(document.getElementById("page-data").textContent);
const csrfToken = document.body.dataset.csrf;

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

const canChat = !form.hasAttribute("data-disabled");
const maxChars = Number(page.maxMessageChars) || Infinity;
const SNAPSHOT_WAIT_MS = 3000; // then ask for a streaming message with `sync`
const SEND_TIMEOUT_MS = 20000; // no answer to a send by then: give the button back
const MAX_BUFFERED_DELTAS = 1000;

const state = {
  conversation: page.conversation || null,
  views: new Map(), // message id → MessageView
  streaming: null, // the MessageView being written, if any
  buffered: [], // deltas that arrived while the streaming message's seq is unknown
  syncing: new Set(), // ids with a sync in flight
  awaitingSnapshot: new Set(), // streaming ids shown before the connect's snapshot
  snapshotTimer: 0,
  pending: null, // {clientId, content, timer} of a send not yet confirmed
  queued: null, // a send frame waiting for the socket to open
  socket: null,
  stickToBottom: true,
  stopping: false,
};

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

onRendered(() => {
  if (state.stickToBottom) scrollToBottom();
});

// --- messages -------------------------------------------------------------------------

function addView(view) {
  $("#messages-empty")?.remove();
  list.append(view.el);
  state.views.set(view.id, view);
  return view;
}

function setStreaming(view) {
  state.streaming = view;
  state.stopping = false;
  stopButton.hidden = view === null;
  stopButton.disabled = false;
  stopButton.textContent = "Stop";
}

function sync(id) {
  if (state.syncing.has(id)) return;
  if (state.socket?.send({ type: "sync", id })) state.syncing.add(id);
}

/** Apply deltas held back while the streaming message's position was unknown. */
function drainBuffered() {
  const view = state.streaming;
  if (!view || view.seq === null) return;
  const deltas = state.buffered.sort((a, b) => a.seq - b.seq);
  state.buffered = [];
  for (const delta of deltas) applyDelta(delta);
}

function applyDelta(frame) {
  const view = state.streaming;
  if (!view || view.seq === null || state.syncing.has(view.id)) {
    // Wait for the snapshot that tells where the text stands.
    if (state.buffered.length < MAX_BUFFERED_DELTAS) state.buffered.push(frame);
    return;
  }
  if (frame.seq <= view.seq) return; // already part of what is shown
  if (frame.seq !== view.seq + 1) {
    // Something was missed: ask for the whole text, keep what comes meanwhile.
    state.buffered.push(frame);
    sync(view.id);
    return;
  }
  view.seq = frame.seq;
  view.append(frame.content, frame.thinking);
}

function onSnapshot(message) {
  if (message === null) {
    // Nothing is being written: whatever the page shows as streaming has ended.
    for (const id of state.awaitingSnapshot) sync(id);
    state.awaitingSnapshot.clear();
    if (state.streaming && !state.syncing.has(state.streaming.id)) sync(state.streaming.id);
    return;
  }
  state.awaitingSnapshot.delete(message.id);
  state.syncing.delete(message.id);
  let view = state.views.get(message.id);
  if (!view) {
    view = addView(
      MessageView.create({ id: message.id, role: message.role, status: message.status, model: message.model }),
    );
  }
  view.setModel(message.model);
  view.replace(message.content, message.thinking);
  if (message.status === "streaming") {
    view.setStatus("streaming");
    view.seq = Number.isInteger(message.seq) ? message.seq : 0;
    setStreaming(view);
    drainBuffered();
  } else {
    view.finish(message.status, message.error, message.stats);
    if (state.streaming === view) {
      setStreaming(null);
      state.buffered = [];
    }
  }
}

function onUserMessage(frame) {
  const message = frame.message;
  if (!state.views.has(message.id)) {
    const view = addView(MessageView.create({ id: message.id, role: message.role || "user" }));
    view.replace(message.content, "");
  }
  if (frame.client_id && state.pending && frame.client_id === state.pending.clientId) {
    // Saved: only now may the text box be emptied (unless more was typed meanwhile).
    if (prompt.value === state.pending.content) prompt.value = "";
    finishPending();
    clearNotice();
    updateCounter();
    touchCurrent(sidebar, frame.conversation?.title);
  }
  state.stickToBottom = true;
}

function onStart(message) {
  let view = state.views.get(message.id);
  if (!view) {
    view = addView(
      MessageView.create({ id: message.id, role: "assistant", status: "streaming", model: message.model }),
    );
  }
  view.setStatus("streaming");
  view.replace(message.content, message.thinking);
  view.seq = Number.isInteger(message.seq) ? message.seq : 0;
  state.buffered = state.buffered.filter((delta) => delta.seq > view.seq);
  setStreaming(view);
  drainBuffered();
}

function onDone(frame) {
  const view = state.views.get(frame.id);
  if (!view) {
    sync(frame.id); // we never saw it start: fetch the saved message
    return;
  }
  if (state.streaming === view) drainBuffered();
  const missed = Number.isInteger(frame.seq) && (view.seq === null || frame.seq > view.seq);
  view.finish(frame.status, frame.error, frame.stats);
  if (state.streaming === view) {
    setStreaming(null);
    state.buffered = [];
  }
  if (missed) sync(view.id); // the saved message has the text we missed
}

function onError(frame) {
  showNotice(frame.message || "Something went wrong.");
  if (frame.client_id && state.pending && frame.client_id === state.pending.clientId) {
    finishPending(); // refused: the text stays in the box
    prompt.focus();
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "snapshot":
      onSnapshot(frame.message ?? null);
      break;
    case "message":
      if (frame.message) onUserMessage(frame);
      break;
    case "start":
      if (frame.message) onStart(frame.message);
      break;
    case "delta":
      if (Number.isInteger(frame.seq)) applyDelta(frame);
      break;
    case "done":
      onDone(frame);
      break;
    case "error":
      onError(frame);
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
      state.syncing.clear();
      state.buffered = [];
      // What the page shows as streaming must be confirmed by a snapshot; ask if none comes.
      state.awaitingSnapshot = new Set(
        [...state.views.values()].filter((view) => view.streaming).map((view) => view.id),
      );
      for (const view of state.views.values()) if (view.streaming) view.seq = null;
      clearTimeout(state.snapshotTimer);
      if (state.awaitingSnapshot.size) {
        state.snapshotTimer = setTimeout(() => {
          for (const id of state.awaitingSnapshot) sync(id);
          state.awaitingSnapshot.clear();
        }, SNAPSHOT_WAIT_MS);
      }
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
        finishPending();
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
      finishPending();
      setStreaming(null);
    },
  });
  state.socket.connect();
}

// --- sending --------------------------------------------------------------------------

function newClientId() {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function finishPending() {
  if (state.pending) clearTimeout(state.pending.timer);
  state.pending = null;
  state.queued = null;
  updateCounter();
}

function updateCounter() {
  const length = prompt.value.length;
  const over = length > maxChars;
  counter.textContent = length ? `${length.toLocaleString()} / ${maxChars.toLocaleString()}` : "";
  counter.classList.toggle("over", over);
  sendButton.disabled = !canChat || over || state.pending !== null;
}

async function createConversation(model) {
  let response;
  let data = {};
  try {
    response = await fetch("/c/new/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      body: new URLSearchParams({ model }),
    });
    data = await response.json().catch(() => ({}));
  } catch {
    throw new Error("Could not reach the server. Check your connection and try again.");
  }
  if (!response.ok || !data.id) {
    throw new Error(data.error || `Could not start a conversation (HTTP ${response.status}).`);
  }
  return data;
}

async function send() {
  if (!canChat || state.pending) return;
  const content = prompt.value;
  if (!content.trim()) return;
  if (content.length > maxChars) {
    showNotice(`The message is too long (${content.length.toLocaleString()} characters; the limit is ${maxChars.toLocaleString()}).`);
    return;
  }
  const model = modelSelect.value;
  if (!model) {
    showNotice("Pick a model before sending.");
    return;
  }
  const clientId = newClientId();
  state.pending = {
    clientId,
    content,
    timer: setTimeout(() => {
      if (state.pending?.clientId !== clientId) return;
      finishPending();
      showNotice("The server did not confirm your message. Check the connection and send it again.");
    }, SEND_TIMEOUT_MS),
  };
  updateCounter();
  const frame = { type: "send", content, model, client_id: clientId };

  if (!state.conversation) {
    let created;
    try {
      created = await createConversation(model);
    } catch (error) {
      finishPending();
      showNotice(error.message);
      return;
    }
    state.conversation = created.id;
    history.pushState({ conversation: created.id }, "", created.url);
    addConversation(sidebar, created.id, created.url);
    state.queued = frame;
    openSocket();
    return;
  }
  if (!state.socket?.send(frame)) {
    state.queued = frame; // sent as soon as the socket is back
    showConnection("Reconnecting… your message goes out when the connection is back.");
  }
}

function stop() {
  if (!state.streaming || state.stopping) return;
  if (state.socket?.send({ type: "stop" })) {
    state.stopping = true;
    stopButton.disabled = true;
    stopButton.textContent = "Stopping…";
  }
}

// --- wiring ---------------------------------------------------------------------------

// Server-rendered messages show their escaped source until rendered. The last ones are
// rendered at once; older ones when they come near the viewport, so a long conversation
// opens quickly.
const RENDER_AT_ONCE = 20;
const lazy =
  "IntersectionObserver" in window
    ? new IntersectionObserver(
        (entries) => {
          for (const entry of entries) {
            if (!entry.isIntersecting) continue;
            lazy.unobserve(entry.target);
            state.views.get(entry.target.dataset.id)?.invalidate();
          }
        },
        { root: list, rootMargin: "1500px 0px" },
      )
    : null;
const articles = [...list.querySelectorAll("article.msg[data-id]")];
articles.forEach((el, index) => {
  const view = MessageView.fromElement(el);
  state.views.set(view.id, view);
  if (!lazy || index >= articles.length - RENDER_AT_ONCE || view.streaming) view.invalidate();
  else lazy.observe(el);
});
const streamingView = [...state.views.values()].find((view) => view.streaming);
if (streamingView) setStreaming(streamingView);
enableCopyButtons(list);
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

stopButton.addEventListener("click", stop);

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.streaming && !event.isComposing) {
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
