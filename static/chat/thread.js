// The messages on screen: one branch of the conversation's message tree, first to last,
// each wrapped in a MessageView. Regenerated answers and edited questions are siblings
// in that tree; the page shows one of them at a time ("< 2/3 >"), and a new message
// whose parent is not the last one shown means the branch changed.

import { MessageView } from "./messages.js";

const RENDER_AT_ONCE = 20; // server-rendered messages rendered at load; older ones lazily

export class Thread {
  constructor(list) {
    this.list = list;
    this.views = new Map(); // message id → MessageView
    // Server-rendered messages show their escaped source until rendered: the last ones
    // at once, older ones when they come near the viewport, so a long conversation
    // opens fast.
    this.lazy =
      "IntersectionObserver" in window
        ? new IntersectionObserver(
            (entries) => {
              for (const entry of entries) {
                if (!entry.isIntersecting) continue;
                this.lazy.unobserve(entry.target);
                this.views.get(entry.target.dataset.id)?.invalidate();
              }
            },
            { root: list, rootMargin: "1500px 0px" },
          )
        : null;
  }

  get(id) {
    return this.views.get(id);
  }

  /** The message being written, if the branch shows one. */
  streamingView() {
    return [...this.views.values()].find((view) => view.streaming) ?? null;
  }

  /** Wrap the server-rendered articles (at load, and after a branch was fetched). */
  adopt() {
    const articles = [...this.list.querySelectorAll("article.msg[data-id]")];
    articles.forEach((el, index) => {
      const view = MessageView.fromElement(el);
      this.views.set(view.id, view);
      if (!this.lazy || index >= articles.length - RENDER_AT_ONCE || view.streaming) view.invalidate();
      else this.lazy.observe(el);
    });
  }

  /** Show another branch: `html` is the server's rendering of it (_messages.html). */
  replace(html) {
    // Our own server's template output, escaped by Django like the page itself; parsed
    // inert (scripts never run from a DOMParser document), then moved in.
    const parsed = new DOMParser().parseFromString(html, "text/html");
    this.lazy?.disconnect();
    this.views.clear();
    this.list.replaceChildren(...parsed.body.childNodes);
    this.adopt();
  }

  /**
   * Earlier messages (the server's _messages.html for ?before=): they go above the ones
   * shown, replacing the "Show earlier messages" button they answer, and the reading
   * position stays where it was.
   */
  prepend(html, button) {
    const parsed = new DOMParser().parseFromString(html, "text/html");
    const nodes = [...parsed.body.childNodes];
    const keep = this.list.scrollHeight - this.list.scrollTop;
    button.closest(".show-earlier")?.replaceWith(...nodes);
    for (const el of nodes) {
      if (!(el instanceof HTMLElement) || !el.matches("article.msg[data-id]")) continue;
      const view = MessageView.fromElement(el);
      this.views.set(view.id, view);
      view.invalidate();
    }
    this.list.scrollTop = this.list.scrollHeight - keep;
  }

  add(view) {
    this.list.querySelector("#messages-empty")?.remove();
    this.list.append(view.el);
    this.views.set(view.id, view);
    return view;
  }

  /** A new article for a frame's message payload, at the end. */
  addMessage(message, role, conversationId) {
    return this.add(
      MessageView.create({
        id: message.id,
        role,
        status: message.status || (role === "assistant" ? "streaming" : "complete"),
        model: message.model,
        alternates: message.alternates,
        images: message.images,
        conversation: conversationId,
      }),
    );
  }

  /**
   * Make room for `message` (a frame's payload) right after its parent: whatever else
   * followed the parent leaves the screen (it lives on as alternates). False when the
   * parent is not shown at all: the caller fetches the whole branch instead.
   */
  place(message) {
    if (!("parent" in message)) return true; // snapshots carry no parent: append
    const articles = [...this.list.querySelectorAll("article.msg[data-id]")];
    let keep = -1; // parent null: the message starts the conversation
    if (message.parent) {
      keep = articles.findIndex((el) => el.dataset.id === message.parent);
      if (keep === -1) return false;
    }
    if (articles[keep + 1]?.dataset.id === message.id) keep += 1; // already shown (continue)
    for (const el of articles.slice(keep + 1)) {
      this.lazy?.unobserve(el);
      this.views.delete(el.dataset.id);
      el.remove();
    }
    return true;
  }
}
