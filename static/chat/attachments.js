// Images in the composer, for vision models: attached by button, paste or drag-and-drop,
// checked here first (type, size, count: the server checks again, by the bytes),
// uploaded at once, shown as removable thumbnails, and sent with the message as
// attachment ids. A model without the vision capability says so before sending.

import { errorText, requestJson } from "./http.js";
import { modelInfo } from "./models.js";

const TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

export class Attachments {
  /**
   * options: input (file input), button, tray (ul for thumbnails), dropZone, pasteTarget,
   * visionNotice, maxBytes, maxCount, getModel(), ensureConversation() → Promise<uuid>,
   * showNotice(text), onChange() (the send button's state may have changed).
   */
  constructor(options) {
    Object.assign(this, options);
    this.items = []; // {id, conversation, preview, el, uploading}
    this.visionProblem = "";
    this.visionCheck = 0; // answers of older checks are ignored
    this.dragDepth = 0;

    this.button.addEventListener("click", () => this.input.click());
    this.input.addEventListener("change", () => {
      this.add([...this.input.files]);
      this.input.value = ""; // choosing the same file again still fires "change"
    });
    this.pasteTarget.addEventListener("paste", (event) => this.onPaste(event));
    for (const type of ["dragenter", "dragover", "dragleave", "drop"]) {
      this.dropZone.addEventListener(type, (event) => this.onDrag(event));
    }
  }

  /** Ids of the uploaded images, for the send frame. */
  get ids() {
    return this.items.filter((item) => item.id).map((item) => item.id);
  }

  /** Why Send must wait, in words; "" when it need not. */
  get blocked() {
    if (this.items.some((item) => item.uploading)) return "Wait until the images are uploaded.";
    return this.visionProblem;
  }

  // --- adding ---------------------------------------------------------------------------

  onPaste(event) {
    const files = [...(event.clipboardData?.files || [])].filter((file) => file.type.startsWith("image/"));
    if (!files.length) return;
    // A screenshot pastes as an image only; copied rich text may carry both: keep the text.
    if (!event.clipboardData.types.includes("text/plain")) event.preventDefault();
    this.add(files);
  }

  onDrag(event) {
    if (!event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault(); // without it the browser opens the file instead
    if (event.type === "dragenter") this.dragDepth += 1;
    if (event.type === "dragleave") this.dragDepth -= 1;
    if (event.type === "drop") {
      this.dragDepth = 0;
      this.add([...event.dataTransfer.files]);
    }
    this.dropZone.classList.toggle("drop-target", this.dragDepth > 0);
  }

  add(files) {
    for (const file of files) {
      if (this.items.length >= this.maxCount) {
        this.showNotice(`At most ${this.maxCount} images go with one message.`);
        break;
      }
      if (!TYPES.has(file.type)) {
        this.showNotice(`“${file.name}” can't be attached: only PNG, JPEG, GIF and WebP images can.`);
        continue;
      }
      if (file.size > this.maxBytes) {
        this.showNotice(
          `“${file.name}” is too large (${megabytes(file.size)} MB; the limit is ${megabytes(this.maxBytes)} MB).`,
        );
        continue;
      }
      this.upload(file);
    }
  }

  async upload(file) {
    const preview = URL.createObjectURL(file); // shown at once, before the upload ends
    const item = { id: null, conversation: null, preview, el: null, uploading: true };
    item.el = this.thumbnail(item, file.name);
    this.items.push(item);
    this.tray.append(item.el);
    this.changed();
    this.checkVision();

    let conversation;
    try {
      conversation = await this.ensureConversation(); // the home page has none yet
    } catch (error) {
      this.forget(item);
      this.showNotice(error.message);
      return;
    }
    const body = new FormData();
    body.append("image", file, file.name || "image");
    const result = await requestJson(`/c/${conversation}/attachments/`, { method: "POST", body });
    if (!this.items.includes(item)) {
      // Removed while uploading: the server should not keep it either.
      if (result.ok) this.deleteOnServer(conversation, result.data.id);
      return;
    }
    if (!result.ok) {
      this.forget(item);
      this.showNotice(errorText(result, "The upload"));
      return;
    }
    item.id = result.data.id;
    item.conversation = conversation;
    item.uploading = false;
    item.el.classList.remove("uploading");
    item.el.dataset.id = item.id;
    this.changed();
  }

  thumbnail(item, name) {
    const li = document.createElement("li");
    li.className = "attachment uploading";
    const img = document.createElement("img");
    img.src = item.preview;
    img.alt = name ? `Attached: ${name}` : "Attached image";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon-button attachment-remove";
    remove.dataset.testid = "remove-image";
    remove.setAttribute("aria-label", name ? `Remove ${name}` : "Remove image");
    remove.textContent = "×";
    remove.addEventListener("click", () => this.remove(item));
    li.append(img, remove);
    return li;
  }

  // --- removing -------------------------------------------------------------------------

  remove(item) {
    if (item.id) this.deleteOnServer(item.conversation, item.id);
    this.forget(item);
  }

  async deleteOnServer(conversation, id) {
    const result = await requestJson(`/c/${conversation}/attachments/${id}/`, { method: "DELETE" });
    // 404: already gone. Anything else leaves an unsent image the server will not send.
    if (!result.ok && result.status !== 404) console.warn("could not delete attachment", id, result.status);
  }

  forget(item) {
    this.items = this.items.filter((other) => other !== item);
    item.el.remove();
    URL.revokeObjectURL(item.preview);
    this.changed();
    this.checkVision();
  }

  /** A message went out with these images (ids): they belong to it now. Images added
   * while it was on its way stay for the next one. */
  sent(ids) {
    for (const item of this.items.filter((other) => ids.includes(other.id))) this.forget(item);
  }

  // --- vision ---------------------------------------------------------------------------

  /** Ask whether the chosen model sees images (when any are attached). */
  async checkVision() {
    const check = ++this.visionCheck;
    const model = this.getModel();
    let problem = "";
    if (this.items.length && model) {
      const info = await modelInfo(model);
      if (check !== this.visionCheck) return; // the model or the images changed meanwhile
      // Unknown (Ollama down, model missing): let the server decide when sending.
      if (info && !info.capabilities.includes("vision")) {
        problem = `“${model}” can't see images. Pick a model with vision (such as llava) or remove the images.`;
      }
    }
    this.visionProblem = problem;
    this.visionNotice.textContent = problem;
    this.visionNotice.hidden = !problem;
    this.changed();
  }

  changed() {
    this.tray.hidden = this.items.length === 0;
    this.onChange();
  }
}
