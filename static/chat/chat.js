// The chat page's entry point: wires the modules together (docs/frontend.md). Data from
// the server comes from <script type="application/json" id="page-data"> and data-*
// attributes (the CSP forbids inline scripts). All text reaches the page through
// textContent or the Markdown → DOMPurify path in markdown.js.
//
//   page.js        data, elements, state, notices         screen.js   messages on screen
//   pending.js     sends awaiting confirmation            frames.js   socket frames
//   connection.js  the conversation and its socket        composer.js send, stop, actions

import { enableMessageActions } from "./actions.js";
import { Attachments } from "./attachments.js";
import { messageActions, send, stop } from "./composer.js";
import { ensureConversation, openSocket } from "./connection.js";
import { enableCopyButtons, onMathReady } from "./markdown.js";
import { loadModels } from "./models.js";
import { $, canChat, page, showNotice, state, ui, updateCounter } from "./page.js";
import { setUpSettingsPanel } from "./panel.js";
import { scrollToBottom, stream, thread } from "./screen.js";

state.attachments = canChat
  ? new Attachments({
      input: $("input[type=file][name=image]"),
      button: $("[data-testid=attach]"),
      tray: $("#attachments"),
      dropZone: $("section.chat"),
      pasteTarget: ui.prompt,
      visionNotice: $("[data-testid=vision-notice]"),
      maxBytes: Number(page.maxImageBytes) || 10 * 1024 * 1024,
      maxCount: Number(page.maxImagesPerMessage) || 4,
      getModel: () => ui.modelSelect.value,
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
  modelSelect: ui.modelSelect,
  conversation: () => state.conversation,
  ensureConversation,
});

thread.adopt();
stream.setView(thread.streamingView());
enableCopyButtons(ui.list);
enableMessageActions(ui.list, messageActions);
// KaTeX loads on the first formula; messages that showed formulas as source render again.
onMathReady(() => {
  for (const view of thread.views.values()) if (view.el.querySelector(".math-pending")) view.refresh();
});
scrollToBottom();

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});

ui.prompt.addEventListener("keydown", (event) => {
  // keyCode 229: some IMEs report their Enter this way instead of setting isComposing.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  send();
});

ui.prompt.addEventListener("input", updateCounter);

ui.modelSelect.addEventListener("change", () => state.attachments?.checkVision());

ui.stopButton.addEventListener("click", stop);

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
  loadModels(ui.modelSelect, page.model, showNotice);
  if (state.conversation) openSocket();
  // Not on touch screens: focusing would pop the keyboard over the conversation.
  if (window.matchMedia("(pointer: fine)").matches) ui.prompt.focus();
}
