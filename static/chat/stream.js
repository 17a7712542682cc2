// The answer being written: applies the socket's snapshot, start, delta and done frames
// (docs/websocket.md) to the message on screen, in sequence order. A gap in sequence
// numbers, or a message whose text is unknown, is repaired with a `sync`; deltas that
// arrive meanwhile wait in a buffer and are applied once the text is known.

const SNAPSHOT_WAIT_MS = 3000; // after a (re)connect, then ask with `sync`
const MAX_BUFFERED_DELTAS = 1000;

export class Stream {
  /**
   * thread: the messages on screen (thread.js); send(frame) → false when the socket is
   * down; place(message) → false when the branch is being fetched instead;
   * reloadBranch(); conversation() → uuid; onChange(view | null): the Stop button.
   */
  constructor({ thread, send, place, reloadBranch, conversation, onChange }) {
    Object.assign(this, { thread, send, place, reloadBranch, conversation, onChange });
    this.view = null; // the MessageView being written, if any
    this.buffered = []; // deltas that arrived while the view's seq is unknown
    this.syncing = new Set(); // ids with a sync in flight
    this.awaitingSnapshot = new Set(); // streaming ids shown before the connect's snapshot
    this.snapshotTimer = 0;
  }

  setView(view) {
    this.view = view;
    this.onChange(view);
  }

  sync(id) {
    if (this.syncing.has(id)) return;
    if (this.send({ type: "sync", id })) this.syncing.add(id);
  }

  /** The socket (re)opened: what shows as streaming must be confirmed by a snapshot. */
  connected() {
    this.syncing.clear();
    this.buffered = [];
    const live = [...this.thread.views.values()].filter((view) => view.streaming);
    this.awaitingSnapshot = new Set(live.map((view) => view.id));
    for (const view of live) view.seq = null;
    clearTimeout(this.snapshotTimer);
    if (this.awaitingSnapshot.size) {
      this.snapshotTimer = setTimeout(() => {
        for (const id of this.awaitingSnapshot) this.sync(id);
        this.awaitingSnapshot.clear();
      }, SNAPSHOT_WAIT_MS);
    }
  }

  /** Another branch is on screen: follow its live answer, if any, from a fresh snapshot. */
  branchReplaced() {
    this.buffered = [];
    this.setView(this.thread.streamingView());
    if (this.view) {
      this.view.seq = null;
      this.sync(this.view.id);
    }
  }

  /** Messages left the screen: forget the live one if it was among them. */
  pruned() {
    if (this.view && !this.view.el.isConnected) this.setView(null);
  }

  // --- frames -------------------------------------------------------------------------

  /** Apply deltas held back while the streaming message's position was unknown. */
  drain() {
    if (!this.view || this.view.seq === null) return;
    const deltas = this.buffered.sort((a, b) => a.seq - b.seq);
    this.buffered = [];
    for (const delta of deltas) this.delta(delta);
  }

  delta(frame) {
    const view = this.view;
    if (!view || view.seq === null || this.syncing.has(view.id)) {
      // Wait for the snapshot that tells where the text stands.
      if (this.buffered.length < MAX_BUFFERED_DELTAS) this.buffered.push(frame);
      return;
    }
    if (frame.seq <= view.seq) return; // already part of what is shown
    if (frame.seq !== view.seq + 1) {
      // Something was missed: ask for the whole text, keep what comes meanwhile.
      this.buffered.push(frame);
      this.sync(view.id);
      return;
    }
    view.seq = frame.seq;
    // `replace`: what was shown as the answer was reasoning (a lone </think>); the frame
    // carries both texts whole.
    if (frame.replace) view.replace(frame.content, frame.thinking);
    else view.append(frame.content, frame.thinking);
  }

  snapshot(message) {
    if (message === null) {
      // Nothing is being written: whatever the page shows as streaming has ended.
      for (const id of this.awaitingSnapshot) this.sync(id);
      this.awaitingSnapshot.clear();
      if (this.view && !this.syncing.has(this.view.id)) this.sync(this.view.id);
      return;
    }
    this.awaitingSnapshot.delete(message.id);
    this.syncing.delete(message.id);
    const view = this.thread.get(message.id);
    if (!view) {
      // A live answer we never saw start (it began while we were offline): its question
      // is missing too, so fetch the branch. A finished one not shown is another branch's.
      if (message.status === "streaming") this.reloadBranch();
      return;
    }
    view.setModel(message.model);
    view.replace(message.content, message.thinking);
    if (message.status === "streaming") {
      view.setStatus("streaming");
      view.seq = Number.isInteger(message.seq) ? message.seq : 0;
      this.setView(view);
      this.drain();
    } else {
      view.finish(message.status, message.error, message.stats, message.notes);
      if (this.view === view) {
        this.setView(null);
        this.buffered = [];
      }
    }
  }

  start(message) {
    if (!this.place(message)) return; // the fetched branch will show it
    let view = this.thread.get(message.id);
    if (!view) view = this.thread.addMessage(message, "assistant", this.conversation());
    else if (message.alternates) view.setAlternates(message.alternates);
    view.setModel(message.model);
    view.setStatus("streaming");
    // A continued answer starts from its saved text; a new one from nothing.
    view.replace(message.content, message.thinking);
    view.seq = Number.isInteger(message.seq) ? message.seq : 0;
    this.buffered = this.buffered.filter((delta) => delta.seq > view.seq);
    this.setView(view);
    this.drain();
  }

  done(frame) {
    const view = this.thread.get(frame.id);
    if (!view) {
      this.reloadBranch(); // we never saw it start: the server has the branch with it
      return;
    }
    if (this.view === view) this.drain();
    const missed = Number.isInteger(frame.seq) && (view.seq === null || frame.seq > view.seq);
    view.finish(frame.status, frame.error, frame.stats, frame.notes);
    if (this.view === view) {
      this.setView(null);
      this.buffered = [];
    }
    if (missed) this.sync(view.id); // the saved message has the text we missed
  }
}
