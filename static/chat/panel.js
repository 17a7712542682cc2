// The chat page's settings panel: opens beside the conversation (over it on a phone),
// holds the conversation's settings form (settings.js), and saves them on the
// conversation; on the home page saving first creates the conversation.

import { requestJson } from "./http.js";
import { SettingsForm } from "./settings.js";

/**
 * options: panel, toggle, closeButton, form, initial (page_data.settings), modelSelect,
 * conversation() → current uuid or null, ensureConversation() → Promise<uuid>.
 */
export function setUpSettingsPanel(options) {
  const { panel, toggle, closeButton, form, initial, modelSelect, conversation, ensureConversation } = options;
  const controller = new SettingsForm(form, {
    url: async () => `/c/${await ensureConversation()}/settings/`,
    // One model picker on the page, under the message box: saving records its choice.
    beforeSave(settingsForm) {
      settingsForm.elements.namedItem("model").value = modelSelect.value;
    },
  });
  controller.fill(initial || {});

  async function refresh() {
    // Another tab may have changed them; never overwrite what is being edited here.
    const id = conversation();
    if (!id || controller.dirty) return;
    const result = await requestJson(`/c/${id}/settings/`);
    if (result.ok && result.data.settings && !controller.dirty) controller.fill(result.data.settings);
  }

  function open() {
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    refresh();
    controller.hintThinking(modelSelect.value);
    form.querySelector("textarea, input:not([type=hidden]), select")?.focus();
  }

  function close() {
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    toggle.focus();
  }

  toggle.addEventListener("click", () => (panel.hidden ? open() : close()));
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing) return;
    event.stopPropagation(); // Esc in the panel closes it; it does not stop the answer
    close();
  });
  modelSelect.addEventListener("change", () => {
    if (!panel.hidden) controller.hintThinking(modelSelect.value);
  });
  return controller;
}
