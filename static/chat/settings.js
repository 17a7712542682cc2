// The settings form: a conversation's (the side panel of the chat page) or the user's
// defaults for new chats (/settings/defaults/). Both post the same fields and get back
// either the saved settings or per-field errors, which are shown next to each field:
// the server is the one judge of what is valid, so the inputs carry no min/max.

import { requestJson } from "./http.js";
import { modelInfo } from "./models.js";

const FIELDS = [
  "model",
  "system_prompt",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "num_ctx",
  "num_predict",
  "repeat_penalty",
  "stop",
  "keep_alive",
  "think",
  "format",
  "format_schema",
];

export class SettingsForm {
  /**
   * url(): where to post (may be async: the chat page creates its conversation first).
   * beforeSave(form): fill anything the form takes from elsewhere (the composer's model).
   * onSaved(settings): after the server accepted them.
   */
  constructor(form, { url, beforeSave = () => {}, onSaved = () => {} }) {
    this.form = form;
    this.url = url;
    this.beforeSave = beforeSave;
    this.onSaved = onSaved;
    this.status = form.querySelector(".settings-status");
    this.formErrors = form.querySelector(".form-errors");
    this.dirty = false; // edited since filled: a refresh from the server must not clobber it
    this.saving = false;
    form.addEventListener("input", () => {
      this.dirty = true;
    });
    form.elements.namedItem("format")?.addEventListener("change", () => this.showSchemaField());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  /** Show `settings` (the JSON the server sends) in the fields. */
  fill(settings) {
    for (const name of FIELDS) {
      const field = this.form.elements.namedItem(name);
      if (!field || !(name in settings)) continue;
      let value = settings[name];
      if (name === "stop") value = (value || []).join("\n"); // one sequence per line
      field.value = value === null || value === undefined ? "" : String(value);
    }
    this.showSchemaField();
    this.dirty = false;
  }

  showSchemaField() {
    const schema = this.form.querySelector("[data-field=format_schema]");
    if (schema) schema.hidden = this.form.elements.namedItem("format")?.value !== "schema";
  }

  setStatus(text, kind = "") {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  async save() {
    if (this.saving) return;
    this.saving = true;
    this.clearErrors();
    this.setStatus("Saving…");
    try {
      let url;
      try {
        this.beforeSave(this.form);
        url = await this.url();
      } catch (error) {
        this.setStatus(error.message, "error");
        return;
      }
      const body = new URLSearchParams(new FormData(this.form));
      const result = await requestJson(url, { method: "POST", body });
      if (result.ok && result.data.settings) {
        this.fill(result.data.settings);
        this.setStatus("Saved. The next answer uses these settings.", "ok");
        this.onSaved(result.data.settings);
      } else if (result.data.errors) {
        this.showErrors(result.data.errors);
      } else {
        this.setStatus(result.data.error || `Not saved (HTTP ${result.status}).`, "error");
      }
    } finally {
      this.saving = false;
    }
  }

  // --- errors -------------------------------------------------------------------------

  clearErrors() {
    for (const box of this.form.querySelectorAll(".field.has-error")) box.classList.remove("has-error");
    for (const list of this.form.querySelectorAll(".field .errorlist")) list.remove();
    for (const field of this.form.querySelectorAll("[aria-invalid]")) {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-errormessage");
    }
    this.formErrors.replaceChildren();
    this.formErrors.hidden = true;
  }

  /** {field: [message, ...]} from a 400: each under its field, named in the status line. */
  showErrors(errors) {
    const named = [];
    let first = null;
    for (const [name, messages] of Object.entries(errors)) {
      const box = this.form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
      const label = box?.querySelector("label")?.textContent.trim() || name;
      if (!box || box.hidden) {
        // No visible field (the model comes from the composer; form-wide errors).
        for (const message of messages) {
          const p = document.createElement("p");
          p.textContent = name === "__all__" ? message : `${label}: ${message}`;
          this.formErrors.append(p);
        }
        this.formErrors.hidden = false;
        named.push(label);
        continue;
      }
      const list = document.createElement("ul");
      list.className = "errorlist";
      list.id = `${this.form.id}-${name}-errors`;
      for (const message of messages) {
        const item = document.createElement("li");
        item.textContent = message;
        list.append(item);
      }
      box.classList.add("has-error");
      box.append(list);
      const field = this.form.elements.namedItem(name);
      if (field instanceof Element) {
        field.setAttribute("aria-invalid", "true");
        field.setAttribute("aria-errormessage", list.id);
        first ??= field;
      }
      named.push(label);
    }
    this.setStatus(`Not saved: check ${named.join(", ")}.`, "error");
    first?.focus();
  }

  // --- hints --------------------------------------------------------------------------

  /** Say when the model does not think, next to the Think field. */
  async hintThinking(model) {
    const hint = this.form.querySelector("[data-hint=think]");
    if (!hint) return;
    const info = await modelInfo(model);
    const thinks = !info || info.capabilities.includes("thinking");
    hint.textContent = thinks ? "" : `${model} does not think: leave this on “Model default” or “Off”.`;
    hint.hidden = thinks;
  }
}
