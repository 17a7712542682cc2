"""Split reasoning out of streamed content when Ollama does not do it itself (servers
before v0.9, `think` unset on old templates, or a template Ollama has no parser for), so
reasoning is shown apart whatever the server (see ollama-api.md §7).

Two shapes reach us in `message.content`:

* `<think>…</think>` at the start of the answer: the model opened the block itself.
* Only `…</think>`: the chat template opened the block in the prompt, so the stream
  starts inside it and the first sign of reasoning is the closing tag. Until that tag
  comes the text looks like an answer (and is shown as one); when it comes, everything
  before it turns out to have been reasoning: `Split.moved` says so, and the caller moves
  the answer shown so far into the thinking.

Tags may arrive cut across deltas (`</thi` + `nk>`), so the splitter holds back any tail
that could still become a tag (with the whitespace before it, which a tag swallows) and
releases it once it cannot. An answer that talks about the tags is left alone: a
`<think>` after the start, or a `</think>` right after a backtick (inline code), means
what follows is text, and nothing is reinterpreted any more.
"""

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
TAGS = (OPEN, CLOSE)
WHITESPACE = " \t\r\n"


@dataclass
class Split:
    """What one delta of content turned out to be. `moved`: the answer streamed before
    this delta was reasoning (a lone `</think>`); it goes to the thinking, before
    `thinking`, and the answer starts again with `content`."""

    content: str = ""
    thinking: str = ""
    moved: bool = False


def _held_back(text: str, tags: tuple[str, ...]) -> int:
    """Length of the end of `text` that may still be (whitespace and) one of `tags`."""
    end = len(text)
    start = text.rfind("<")
    if start >= 0 and any(tag.startswith(text[start:]) and tag != text[start:] for tag in tags):
        end = start
    while end and text[end - 1] in WHITESPACE:
        end -= 1
    return len(text) - end


class ThinkSplitter:
    """Feed it each content delta of one answer; call `flush()` once the stream ends."""

    _START = "start"  # only whitespace so far: a <think> may still open the answer
    _OPENED = "opened"  # right after <think>: whitespace there is not the reasoning's
    _INSIDE = "inside"  # in a <think> block
    _ANSWER = "answer"  # answer text with no block yet: a lone </think> may still come
    _AFTER = "after"  # right after a closing tag: whitespace there is not the answer's
    _PLAIN = "plain"  # decided: content is content from here on

    def __init__(self, before: str = "", reasoned: bool = False) -> None:
        """`before`: the answer's text before this stream (a continued answer);
        `reasoned`: it already has thinking, so no tag can make it reasoning now."""
        self._pending = ""
        self._last = before[-1:]  # the last character given out as content
        if reasoned or OPEN in before:
            self._state = self._PLAIN
        else:
            self._state = self._ANSWER if before.strip() else self._START

    def feed(self, delta: str, thinking: str = "") -> Split:
        """Take one chunk's content delta (and its `thinking`, when Ollama separates the
        reasoning itself); return what can be shown now."""
        if thinking:
            # Ollama does the splitting: its content is never reinterpreted. What was
            # held back goes where it belongs, before this chunk.
            out = self.flush() if self._state != self._PLAIN else Split()
            self._state = self._PLAIN
            out.thinking += thinking
            out.content += delta
            return out
        text = self._pending + delta
        self._pending = ""
        out = Split()
        while text:
            if self._state == self._PLAIN:
                out.content += text
                break
            if self._state in (self._OPENED, self._AFTER):
                text = text.lstrip(WHITESPACE)
                if text:
                    self._state = self._INSIDE if self._state == self._OPENED else self._PLAIN
                continue
            if self._state == self._START:
                stripped = text.lstrip()
                if stripped.startswith(OPEN):
                    text = stripped[len(OPEN) :]
                    self._state = self._OPENED
                    continue
                if any(tag.startswith(stripped) for tag in TAGS):  # "" and "</th" alike
                    self._pending = text
                    break
                self._state = self._ANSWER
                continue
            if self._state == self._INSIDE:
                end = text.find(CLOSE)
                if end >= 0:
                    out.thinking += text[:end].rstrip(WHITESPACE)
                    text = text[end + len(CLOSE) :]
                    self._state = self._AFTER
                    continue
                keep = _held_back(text, (CLOSE,))
                out.thinking += text[: len(text) - keep]
                self._pending = text[len(text) - keep :]
                break
            # _ANSWER: the first tag decides.
            opened, closed = text.find(OPEN), text.find(CLOSE)
            if opened >= 0 and (closed < 0 or opened < closed):
                self._state = self._PLAIN  # <think> mid-answer is text about tags
                continue
            if closed >= 0:
                quoted = (text[closed - 1] if closed else self._last) == "`"
                if quoted:
                    self._state = self._PLAIN
                    continue
                out.thinking += text[:closed].rstrip(WHITESPACE)
                out.moved = True
                text = text[closed + len(CLOSE) :]
                self._state = self._AFTER
                continue
            keep = _held_back(text, TAGS)
            shown = text[: len(text) - keep]
            out.content += shown
            self._last = shown[-1:] or self._last
            self._pending = text[len(text) - keep :]
            break
        return out

    def flush(self) -> Split:
        """At the end of the stream: whatever was held back, where it belongs."""
        pending, self._pending = self._pending, ""
        if self._state == self._INSIDE:
            return Split(thinking=pending.rstrip(WHITESPACE))
        if self._state in (self._OPENED, self._AFTER):
            return Split()
        return Split(content=pending)


def answer_of(reply: str) -> str:
    """The answer part of a whole reply (e.g. a title request's): reasoning removed,
    whether the model wrote a `<think>` block or only the closing tag."""
    splitter = ThinkSplitter()
    answer = ""
    for split in (splitter.feed(reply), splitter.flush()):
        answer = split.content if split.moved else answer + split.content
    return answer
