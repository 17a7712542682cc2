// The row under each message: Copy (the Markdown source), Edit (a user message, in
// place), Regenerate and Continue (an answer), and "< 2/3 >" between alternates.
// One delegated listener serves server-rendered and live messages alike; what each
// action does with the socket or the server is the page's business (callbacks).

import { flash, writeClipboard } from "./markdown.js";

/**
 * handlers: viewFor(id) → MessageView, onEdit(view, text, editor), onRegenerate(view),
 * onContinue(view), onAlternate(targetId).
 */
export function enableMessageActions(list, handlers) {
  list.addEventListener("click", (event) => {
    const control = event.target.closest?.("button[data-action]");
    if (!control || control.disabled || !list.contains(control)) return;
    const view = handlers.viewFor(control.closest("article.msg")?.dataset.id);
    if (!view) return;
    switch (control.dataset.action) {
      case "copy":
        // The source as written, not the rendered text: it pastes back as Markdown.
        writeClipboard(view.content).then(
          () => flash(control, "Copied"),
          () => flash(control, "Copy failed"),
        );
        break;
      case "edit":
        openEditor(view, handlers.onEdit);
        break;
      case "regenerate":
        handlers.onRegenerate(view);
        break;
      case "continue":
        handlers.onContinue(view);
        break;
      case "alternate":
        if (control.dataset.target) handlers.onAlternate(control.dataset.target);
        break;
      default:
        break;
    }
  });
}

/**
 * Edit a user message in place. The editor stays, text and all, until the server
 * confirms the edited copy (the branch then changes and this message leaves the screen)
 * or the person cancels: what they typed is never thrown away by a refusal.
 * Returns {close(), setBusy(busy)}; onSubmit(view, text, editor) sends.
 */
export function openEditor(view, onSubmit) {
  const existing = view.el.querySelector(".edit-form textarea");
  if (existing) {
    existing.focus();
    return null;
  }
  const form = document.createElement("form");
  form.className = "edit-form";
  const area = document.createElement("textarea");
  area.name = "edit";
  area.value = view.content;
  area.rows = Math.min(12, Math.max(2, view.content.split("\n").length));
  area.setAttribute("aria-label", "Edit your message");
  const bar = document.createElement("div");
  bar.className = "edit-bar";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "button";
  cancel.dataset.testid = "edit-cancel";
  cancel.textContent = "Cancel";
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "button primary";
  save.dataset.testid = "edit-send";
  save.textContent = "Send";
  bar.append(cancel, save);
  form.append(area, bar);

  const editor = {
    close() {
      form.remove();
      view.el.classList.remove("editing");
    },
    setBusy(busy) {
      save.disabled = busy;
      save.textContent = busy ? "Sending…" : "Send";
    },
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!save.disabled) onSubmit(view, area.value, editor);
  });
  cancel.addEventListener("click", () => editor.close());
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation(); // Esc here cancels the edit, not the answer being written
      editor.close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  view.el.classList.add("editing");
  view.el.querySelector(".msg-body").after(form);
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  return editor;
}
