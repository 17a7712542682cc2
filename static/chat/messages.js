// One message on the page: its DOM (the same structure templates/chat/_message.html renders)
// and its text, re-rendered as Markdown at most once per animation frame.
//
//   article.msg[data-role][data-status][data-id][data-model]
//     div.msg-meta > span.msg-author
//     div.msg-images > a.msg-image > img                          (when images were sent)
//     details.thinking > summary + div.thinking-body.markdown     (assistant, when any)
//     div.msg-body.markdown
//     p.msg-error                                                 (failed/stopped/interrupted)
//     p.msg-stats > span.stat…                                    (finished, with stats)
//     p.msg-note                                                  (done_reason "length")
//     p.msg-note[data-testid=answer-note]…                        (the server's notes: context overflow)
//     div.msg-actions > span.alternates + button[data-action]…    (templates/chat/_message_actions.html)

import { renderMarkdown } from "./markdown.js";

const DEFAULT_ERRORS = {
  stopped: "Stopped",
  interrupted: "Interrupted: the server stopped while this answer was being written.",
  failed: "The answer failed.",
};

function tenths(value) {
  return (Math.round(value * 10) / 10).toFixed(1);
}

/** The stats line's parts, as the server renders them. */
export function statParts(model, stats) {
  const parts = [];
  if (!stats) return parts;
  if (model) parts.push(model);
  if (stats.eval_count && stats.eval_duration) {
    parts.push(`${tenths((stats.eval_count / stats.eval_duration) * 1e9)} tokens/s`);
  }
  if (stats.prompt_eval_count != null) parts.push(`${stats.prompt_eval_count} prompt tokens`);
  if (stats.eval_count != null) parts.push(`${stats.eval_count} answer tokens`);
  if (stats.total_duration) parts.push(`${tenths(stats.total_duration / 1e9)} s`);
  return parts;
}

/** The URL of an attached image (chat:attachment). */
export function imageUrl(conversationId, imageId) {
  return `/c/${encodeURIComponent(conversationId)}/attachments/${encodeURIComponent(imageId)}/`;
}

function button(action, label, { testid = action, title = "", className = "msg-action" } = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.dataset.action = action;
  element.dataset.testid = testid;
  element.textContent = label;
  if (title) element.title = title;
  return element;
}

/** The row under a message, as _message_actions.html renders it. */
function buildActions(role) {
  const row = document.createElement("div");
  row.className = "msg-actions";
  const alternates = document.createElement("span");
  alternates.className = "alternates";
  alternates.hidden = true;
  const prev = button("alternate", "‹", { testid: "alternate-prev", className: "icon-button" });
  prev.setAttribute("aria-label", "Previous version");
  const count = document.createElement("span");
  count.className = "alternate-count";
  count.dataset.testid = "alternate-count";
  const next = button("alternate", "›", { testid: "alternate-next", className: "icon-button" });
  next.setAttribute("aria-label", "Next version");
  alternates.append(prev, count, next);
  row.append(alternates, button("copy", "Copy", { testid: "copy-message", title: "Copy as Markdown" }));
  if (role === "user") {
    row.append(button("edit", "Edit", { title: "Edit and send again" }));
  } else {
    row.append(
      button("regenerate", "Regenerate", { title: "Write a new answer (this one is kept)" }),
      button("continue", "Continue", { title: "Continue this answer where it stopped" }),
    );
  }
  return row;
}

// --- rendering once per frame --------------------------------------------------------

const dirty = new Set();
let frame = 0;
let afterRender = () => {};

/** Called after each batch of renders (the page uses it to keep the view scrolled). */
export function onRendered(callback) {
  afterRender = callback;
}

function schedule(view) {
  dirty.add(view);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const views = [...dirty];
  dirty.clear();
  for (const view of views) view.render();
  afterRender();
}

// --- one message ---------------------------------------------------------------------

export class MessageView {
  /** Wrap a server-rendered article: its text is the escaped source in the markdown divs. */
  static fromElement(el) {
    const view = new MessageView(el);
    view.content = el.querySelector(".msg-body")?.textContent ?? "";
    view.thinking = el.querySelector(".thinking-body")?.textContent ?? "";
    return view; // rendered on invalidate(), when the page wants it
  }

  /** Render at the next animation frame (at most once per frame, however often called). */
  invalidate() {
    schedule(this);
  }

  /** Build a new article for a message frame's payload. */
  static create({ id, role, status = "complete", model = "", alternates = null, images = null, conversation }) {
    const el = document.createElement("article");
    el.id = `m-${id}`; // the same anchor as server-rendered messages (search hits, links)
    el.className = `msg msg-${role}`;
    el.dataset.role = role;
    el.dataset.status = status;
    el.dataset.id = id;
    el.dataset.model = model || "";
    const meta = document.createElement("div");
    meta.className = "msg-meta";
    const author = document.createElement("span");
    author.className = "msg-author";
    author.textContent = role === "user" ? "You" : model || "Assistant";
    meta.append(author);
    const body = document.createElement("div");
    body.className = "msg-body markdown";
    body.dataset.markdown = "";
    el.append(meta, body, buildActions(role));
    const view = new MessageView(el);
    view.setStatus(status);
    if (alternates) view.setAlternates(alternates);
    if (images?.length && conversation) view.setImages(images, conversation);
    return view;
  }

  constructor(el) {
    this.el = el;
    this.id = el.dataset.id;
    this.role = el.dataset.role;
    this.model = el.dataset.model || "";
    this.content = "";
    this.thinking = "";
    this.seq = null; // last applied delta while streaming; null = unknown (wait for a snapshot)
    this.stats = null;
    this.thinkingTouched = false; // the person opened/closed the thinking box themselves
    this.watchingThinking = false;
    this.renderedContent = null;
    this.renderedThinking = null;
  }

  get status() {
    return this.el.dataset.status;
  }

  get streaming() {
    return this.status === "streaming";
  }

  setStatus(status) {
    this.el.dataset.status = status;
    if (status === "streaming") {
      this.el.setAttribute("aria-busy", "true");
      // A continued answer streams again: its old ending (error, stats) no longer holds.
      for (const old of this.el.querySelectorAll(".msg-error, .msg-stats, .msg-note")) old.remove();
    } else {
      this.el.removeAttribute("aria-busy");
    }
  }

  /** The "< 2/3 >" control: {index, count, previous, next} from a frame. */
  setAlternates(alternates) {
    const box = this.el.querySelector(".alternates");
    if (!box || !alternates) return;
    box.hidden = !(alternates.count > 1);
    box.querySelector("[data-testid=alternate-count]").textContent = `${alternates.index}/${alternates.count}`;
    for (const [testid, target] of [
      ["alternate-prev", alternates.previous],
      ["alternate-next", alternates.next],
    ]) {
      const control = box.querySelector(`[data-testid=${testid}]`);
      control.disabled = !target;
      if (target) control.dataset.target = target;
      else delete control.dataset.target;
    }
  }

  /** Thumbnails of the images sent with this message (attachment ids). */
  setImages(ids, conversationId) {
    this.el.querySelector(".msg-images")?.remove();
    if (!ids?.length) return;
    const box = document.createElement("div");
    box.className = "msg-images";
    ids.forEach((id, index) => {
      const url = imageUrl(conversationId, id);
      const link = document.createElement("a");
      link.className = "msg-image";
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      const img = document.createElement("img");
      img.src = url;
      img.alt = `Attached image ${index + 1}`;
      img.loading = "lazy";
      link.append(img);
      box.append(link);
    });
    this.el.querySelector(".msg-meta").after(box);
  }

  /** Render again even though the text did not change (KaTeX arrived, say). */
  refresh() {
    this.renderedContent = null;
    this.renderedThinking = null;
    schedule(this);
  }

  setModel(model) {
    if (!model || model === this.model) return;
    this.model = model;
    this.el.dataset.model = model;
    const author = this.el.querySelector(".msg-author");
    if (author && this.role === "assistant") author.textContent = model;
  }

  /** Replace the text (snapshot). */
  replace(content, thinking) {
    this.content = content || "";
    this.thinking = thinking || "";
    schedule(this);
  }

  /** Append a delta's text. */
  append(content, thinking) {
    if (thinking) this.thinking += thinking;
    if (content) this.content += content;
    if (content || thinking) schedule(this);
  }

  /**
   * The answer ended: status, the reason in words, Ollama's numbers, and the server's
   * notes about it (sentences, e.g. that the conversation overflowed the context window).
   */
  finish(status, error, stats, notes = []) {
    this.setStatus(status);
    this.stats = stats || null;
    this.setContextUsage(stats);
    for (const old of this.el.querySelectorAll(".msg-error, .msg-stats, .msg-note")) old.remove();
    if (status !== "complete" && DEFAULT_ERRORS[status]) {
      const p = document.createElement("p");
      p.className = `msg-error msg-error-${status}`;
      p.textContent = error || DEFAULT_ERRORS[status];
      this.addLine(p);
    }
    const parts = statParts(this.model, stats);
    if (stats && Object.keys(stats).length && parts.length) {
      const line = document.createElement("p");
      line.className = "msg-stats";
      parts.forEach((part, index) => {
        const span = document.createElement("span");
        span.className = "stat";
        span.textContent = part;
        // A space between parts, as in the template; CSS adds the "·".
        if (index) line.append(" ");
        line.append(span);
      });
      this.addLine(line);
      if (stats.done_reason === "length") {
        const note = document.createElement("p");
        note.className = "msg-note";
        note.textContent = "Cut short: the answer reached num_predict or the context length.";
        this.addLine(note);
      }
    }
    for (const text of Array.isArray(notes) ? notes : []) {
      const note = document.createElement("p");
      note.className = "msg-note";
      note.dataset.testid = "answer-note";
      note.textContent = String(text);
      this.addLine(note);
    }
    schedule(this);
  }

  /**
   * Record how much of the context window this answer used (data-context-used/-window,
   * as _message.html renders them; the composer's gauge reads them): its prompt and its
   * own tokens, against stats.context_window.
   */
  setContextUsage(stats) {
    const window = stats?.context_window;
    const prompt = stats?.prompt_eval_count;
    if (Number.isInteger(window) && window > 0 && Number.isInteger(prompt)) {
      const answer = Number.isInteger(stats.eval_count) ? stats.eval_count : 0;
      this.el.dataset.contextUsed = String(prompt + answer);
      this.el.dataset.contextWindow = String(window);
    } else {
      delete this.el.dataset.contextUsed;
      delete this.el.dataset.contextWindow;
    }
  }

  // --- DOM --------------------------------------------------------------------------

  /** Add a line about the answer (error, stats, note) above the actions row. */
  addLine(node) {
    const actions = this.el.querySelector(".msg-actions");
    if (actions) actions.before(node);
    else this.el.append(node);
  }

  thinkingBox() {
    let details = this.el.querySelector("details.thinking");
    if (!details) {
      details = document.createElement("details");
      details.className = "thinking";
      const summary = document.createElement("summary");
      const body = document.createElement("div");
      body.className = "thinking-body markdown";
      details.append(summary, body);
      this.el.querySelector(".msg-body").before(details);
    }
    if (!this.watchingThinking) {
      this.watchingThinking = true;
      // A click on the summary (mouse or keyboard) is the person's choice: from then on
      // the box stays as they left it.
      details.querySelector("summary")?.addEventListener("click", () => {
        this.thinkingTouched = true;
      });
    }
    return details;
  }

  setThinkingOpen(details, open) {
    if (!this.thinkingTouched && details.open !== open) details.open = open;
  }

  thinkingLabel() {
    if (this.streaming) return this.content ? "Thinking" : "Thinking…";
    const ms = this.stats?.thinking_ms;
    return ms ? `Thought for ${tenths(ms / 1000)} s` : "Thinking";
  }

  render() {
    if (this.thinking) {
      const details = this.thinkingBox();
      if (this.thinking !== this.renderedThinking) {
        renderMarkdown(details.querySelector(".thinking-body"), this.thinking);
        this.renderedThinking = this.thinking;
      }
      const summary = details.querySelector("summary");
      const label = this.thinkingLabel();
      // Server-rendered finished messages keep their label unless new stats arrived.
      if (this.streaming || this.stats || !summary.textContent.trim()) {
        if (summary.textContent !== label) summary.textContent = label;
      }
      // Open while only thinking streams; closed once the answer starts or at the end.
      if (this.streaming && !this.content) this.setThinkingOpen(details, true);
      else if (this.content || !this.streaming) this.setThinkingOpen(details, false);
    }
    if (this.content !== this.renderedContent) {
      renderMarkdown(this.el.querySelector(".msg-body"), this.content, {
        breaks: this.role === "user",
      });
      this.renderedContent = this.content;
    }
    this.el.classList.add("rendered");
  }
}
