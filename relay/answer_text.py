"""The text of one answer being written: what every tab has been sent (published) and
what has arrived from Ollama since (pending), turned into `delta` frames
(docs/websocket.md). Synchronous on purpose: taking a delta and publishing the pending
text never interleave on the event loop, so a snapshot always matches its `seq`.
"""

from relay.thinking import Split


class AnswerText:
    def __init__(self, content: str = "", thinking: str = "") -> None:
        """Start from a continued answer's saved text (or nothing)."""
        self._content = [content] if content else []  # published to the group
        self._thinking = [thinking] if thinking else []
        self._pending_content: list[str] = []  # received, not yet published
        self._pending_thinking: list[str] = []
        # A lone </think> showed that the answer published so far was reasoning: the next
        # frame replaces the text shown instead of appending to it.
        self._replace = False
        # Event-loop times of the first thinking and first answer token of this stream.
        self.first_thinking: float | None = None
        self.first_content: float | None = None

    def content(self) -> str:
        """The answer as published so far."""
        text = "".join(self._content)
        self._content = [text]
        return text

    def thinking(self) -> str:
        text = "".join(self._thinking)
        self._thinking = [text]
        return text

    def thinking_ms(self, now: float) -> int | None:
        """How long the model reasoned before answering, in milliseconds (None: it did
        not reason in this stream)."""
        if self.first_thinking is None:
            return None
        end = self.first_content if self.first_content is not None else now
        return round((end - self.first_thinking) * 1000)

    def take(self, split: Split, now: float) -> bool:
        """Queue what the splitter made of a delta; True if there is something to send."""
        if split.moved:
            self._answer_was_reasoning(split.thinking, now)
        elif split.thinking:
            self._pending_thinking.append(split.thinking)
            if self.first_thinking is None:
                self.first_thinking = now
        if split.content:
            self._pending_content.append(split.content)
            if self.first_content is None:
                self.first_content = now
        return bool(split.moved or split.thinking or split.content)

    def _answer_was_reasoning(self, before_tag: str, now: float) -> None:
        """A lone `</think>` (the template opened the block): the answer so far, then
        `before_tag`, was reasoning. What tabs already show moves with the next frame."""
        moved = "".join(self._pending_content) + before_tag
        self._pending_content.clear()
        if self.content():
            self._replace = True
        else:
            moved = moved.lstrip()
        if not moved and not self._replace:
            return
        self._pending_thinking.append(moved)
        # The reasoning began with the first token that was shown as the answer.
        self.first_thinking = self.first_content if self.first_content is not None else now
        self.first_content = None

    def publish(self) -> dict | None:
        """The pending text as a delta frame's fields (`content`, `thinking`, `replace`),
        now counted as published; None when nothing is pending."""
        content = "".join(self._pending_content)
        thinking = "".join(self._pending_thinking)
        replace, self._replace = self._replace, False
        self._pending_content.clear()
        self._pending_thinking.clear()
        if not content and not thinking and not replace:
            return None
        frame = {}
        if replace:
            # Every tab replaces both texts with these, so they agree with each other,
            # with snapshots and with the saved row.
            thinking = (self.thinking() + self.content() + thinking).strip()
            self._thinking, self._content = [thinking], [content]
            frame["replace"] = True
        else:
            self._content.append(content)
            self._thinking.append(thinking)
        if content:
            frame["content"] = content
        if thinking:
            frame["thinking"] = thinking
        return frame
