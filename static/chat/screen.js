// The messages on screen: the branch shown (thread.js), the answer being written
// (stream.js), scrolling, and changes of branch. The page shows one branch of the
// conversation's message tree (regenerated answers and edited questions are alternates,
// "< 2/3 >"). A `message` or `start` frame names its parent: when that is not the last
// message shown, the branch changed, and what followed the parent leaves the screen (it
// is still there as alternates).

import { updateContextGauge } from "./context_gauge.js";
import { errorText, requestJson } from "./http.js";
import { onRendered } from "./messages.js";
import { showNotice, state, ui } from "./page.js";
import { Stream } from "./stream.js";
import { Thread } from "./thread.js";

export const thread = new Thread(ui.list);

// The answer being written; it shows and hides the Stop button.
export const stream = new Stream({
  thread,
  send: (frame) => state.socket?.send(frame) ?? false,
  place: placeInBranch,
  reloadBranch,
  conversation: () => state.conversation,
  onChange(view) {
    state.stopping = false;
    ui.stopButton.hidden = view === null;
    ui.stopButton.disabled = false;
    ui.stopButton.textContent = "Stop";
  },
});

export function updateGauge() {
  updateContextGauge(ui.contextGauge, ui.list);
}

// --- scrolling ------------------------------------------------------------------------

function nearBottom() {
  const list = ui.list;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 48;
}

export function scrollToBottom() {
  ui.list.scrollTop = ui.list.scrollHeight;
}

ui.list.addEventListener("scroll", () => {
  state.stickToBottom = nearBottom();
});

// A long conversation opens with its last messages; older ones load on demand.
ui.list.addEventListener("click", async (event) => {
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

// --- branches -------------------------------------------------------------------------

/** Show another branch (server-rendered); a live answer in it is synced afresh. */
export function showBranch(html) {
  thread.replace(html);
  stream.branchReplaced();
  updateGauge();
}

/** Fetch the branch the server shows (another tab switched or extended it). */
export async function reloadBranch() {
  if (!state.conversation) return;
  const load = ++state.branchLoad;
  const result = await requestJson(`/c/${state.conversation}/messages/`);
  if (load !== state.branchLoad) return;
  if (result.ok && typeof result.data.html === "string") showBranch(result.data.html);
  else showNotice(errorText(result, "Loading the conversation"));
}

/** Make room for a `message`/`start` payload after its parent; false: fetching instead. */
export function placeInBranch(message) {
  if (!thread.place(message)) {
    reloadBranch();
    return false;
  }
  stream.pruned();
  return true;
}
