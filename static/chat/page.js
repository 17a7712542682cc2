// What every module of the chat page shares: the data the server put in the page, its
// elements, the page's state, and the notice lines. The page's state lives here (one
// object, not module globals spread around) so that each module can read what the
// others did: which conversation is open, which send awaits confirmation, the socket.

export const page = JSON.parse(document.getElementById("page-data").textContent);

export const $ = (selector) => document.querySelector(selector);

export const ui = {
  list: $("#messages"),
  form: $("#composer"),
  prompt: $("textarea[name=prompt]"),
  modelSelect: $("select[name=model]"),
  sendButton: $("[data-testid=send]"),
  stopButton: $("[data-testid=stop]"),
  notice: $("[data-testid=notice]"),
  connection: $("#connection"),
  counter: $("#counter"),
  sidebar: $("#conversation-list"),
  contextGauge: $("[data-testid=context-gauge]"),
};

export const canChat = !ui.form.hasAttribute("data-disabled");
export const maxChars = Number(page.maxMessageChars) || Infinity;

export const state = {
  conversation: page.conversation || null,
  creating: null, // the POST /c/new/ in flight, shared by whoever needs the conversation
  pending: null, // {clientId, timer, onConfirmed, onRefused}: a send or edit not yet confirmed
  queued: null, // a send/edit frame waiting for the socket to open
  socket: null,
  stickToBottom: true,
  stopping: false,
  branchLoad: 0, // answers to older branch fetches are ignored
  waiting: false, // the connection line says the answer is queued
  attachments: null, // the composer's images (attachments.js), when the user may chat
};

// --- notices --------------------------------------------------------------------------

export function showNotice(text) {
  ui.notice.textContent = text;
}

export function clearNotice() {
  ui.notice.textContent = "";
}

export function showConnection(text) {
  ui.connection.textContent = text;
}

/** The characters counter, and whether Send may be pressed now. */
export function updateCounter() {
  const length = ui.prompt.value.length;
  const over = length > maxChars;
  ui.counter.textContent = length ? `${length.toLocaleString()} / ${maxChars.toLocaleString()}` : "";
  ui.counter.classList.toggle("over", over);
  ui.sendButton.disabled =
    !canChat || over || state.pending !== null || Boolean(state.attachments?.blocked);
}
