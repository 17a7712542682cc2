"""Split `<think>...</think>` out of streamed content (Ollama before v0.9, or think unset
on old templates), so reasoning is shown apart whatever the server version.

Tags may arrive cut across deltas (`<thi` + `nk>`), so the splitter holds back any tail
that could still become a tag, and releases it once it cannot.
"""

OPEN, CLOSE = "<think>", "</think>"


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkSplitter:
    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._seen_content = False  # a <think> only counts at the start of an answer

    def feed(self, delta: str) -> tuple[str, str]:
        """Take a content delta; return (content, thinking) that can be shown now."""
        text = self._pending + delta
        self._pending = ""
        content, thinking = [], []
        while text:
            if self._inside:
                end = text.find(CLOSE)
                if end >= 0:
                    thinking.append(text[:end])
                    text = text[end + len(CLOSE) :].lstrip("\n")
                    self._inside = False
                    self._seen_content = True
                    continue
                keep = _partial_tag_suffix(text, CLOSE)
                thinking.append(text[: len(text) - keep])
                self._pending = text[len(text) - keep :]
                break
            if not self._seen_content:
                stripped = text.lstrip()
                if stripped.startswith(OPEN):
                    text = stripped[len(OPEN) :].lstrip("\n")
                    self._inside = True
                    continue
                if OPEN.startswith(stripped):  # could still become <think>
                    self._pending = text
                    break
                self._seen_content = True
            content.append(text)
            break
        return "".join(content), "".join(thinking)

    def flush(self) -> tuple[str, str]:
        """At the end of the stream: whatever was held back, where it belongs."""
        pending, self._pending = self._pending, ""
        return ("", pending) if self._inside else (pending, "")
