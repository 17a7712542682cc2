"""Text and JSON that come from people: socket frames, forms, imported files. The one
place that decides which characters may come in and how deep JSON may nest, so that
every entry point refuses the same things with the same words (docs/input.md).

- JSON is parsed by `loads_json`: at most JSON_MAX_DEPTH levels, no NaN or Infinity,
  and (by default) no NUL or lone surrogate in any string or key.
- NUL (U+0000) is refused: PostgreSQL stores neither it in text nor `\\u0000` in jsonb
  (the insert fails: a 500, a dead socket). SQLite would keep it, so both databases
  behave alike only if it never gets in.
- Lone surrogates (U+D800-U+DFFF) are refused: a JSON escape such as `\\ud800` decodes
  to one, but it is no character and cannot be encoded as UTF-8 (SQLite's driver, the
  socket's send and PostgreSQL's jsonb all fail on it). A browser makes one by cutting
  an emoji in half.
- Multi-line text (messages, system prompt, stop sequences) keeps everything else:
  newlines, tabs, and the bidi marks right-to-left writing needs (`check_text`).
- Single-line names (conversation titles) are cleaned instead (`clean_line`): control
  characters (NUL included) and the bidi embedding, override and isolate controls
  (U+202A-U+202E, U+2066-U+2069) are removed, since they can make a title in the list
  look like something else, and runs of whitespace become one space.
"""

import json
import math
import re
import unicodedata
from typing import Any

from django.core.exceptions import ValidationError

# Deeper than any real export (7 levels), frame (2) or JSON schema for Ollama's `format`
# (a dozen for very nested objects). Everything that later walks a value recursively
# (jsonschema, json.dumps, copy.deepcopy, the database's JSON functions) stays far from
# Python's recursion limit (1000), whatever the caller's own stack depth.
JSON_MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
# Bidi embedding/override (U+202A-U+202E) and isolate (U+2066-U+2069) controls.
_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 and C1 control characters (NUL, escape, ...), DEL, the bidi controls, and lone
# surrogates: none belongs in a one-line name. Whitespace is folded to spaces first.
_NOT_IN_A_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}\ud800-\udfff]")

NUL_MESSAGE = "holds a NUL character (U+0000), which can't be stored"
SURROGATE_MESSAGE = (
    "holds a lone surrogate (such as \\ud800: half of an emoji or other character), "
    "which is not text"
)


class BadText(ValueError):
    """Text or JSON that can't be accepted; `message` says why, for people, and can be
    prefixed with what the text is ("The message " + message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def problem(text: str) -> str | None:
    """What is wrong with `text` ("holds a NUL character ..."), or None when it is fine."""
    if "\x00" in text:
        return NUL_MESSAGE
    if not text.isascii() and _SURROGATE.search(text):
        return SURROGATE_MESSAGE
    return None


def check_text(text: str) -> str:
    """`text` unchanged, or BadText when it holds NUL or a lone surrogate. For multi-line
    text: newlines, tabs and bidi marks are kept."""
    found = problem(text)
    if found:
        raise BadText(found)
    return text


def validate_text(value: str) -> None:
    """`check_text` as a Django form validator, for lone surrogates: every forms.CharField
    already refuses NUL ("Null characters are not allowed."), and one error is enough."""
    if not value.isascii() and _SURROGATE.search(value):
        raise ValidationError(f"This text {SURROGATE_MESSAGE}.", code="bad_text")


def clean_line(text: str) -> str:
    """A one-line name (a title): whitespace folded to single spaces, control characters,
    bidi embedding/override/isolate controls and lone surrogates removed, ends stripped.
    A name of invisible characters only (zero-width spaces and joiners, soft hyphens:
    Unicode's "format" category) would look blank, so it is "" too; inside a visible
    name they stay (emoji sequences and some scripts need joiners). Never raises."""
    line = " ".join(_NOT_IN_A_LINE.sub("", " ".join(text.split())).split())
    if all(unicodedata.category(c) == "Cf" or c.isspace() for c in line):
        return ""
    return line


def printable(text: str, limit: int = 40) -> str:
    """Untrusted text to quote inside an error message: at most `limit` characters, with
    anything that could not be sent or shown (NUL, surrogates, controls) escaped."""
    shown = text[:limit] + ("…" if len(text) > limit else "")
    return _NOT_IN_A_LINE.sub(lambda m: m.group().encode("unicode_escape").decode(), shown)


# --- JSON -----------------------------------------------------------------------------


def _no_constant(name: str) -> float:
    raise BadText(f"is not valid JSON ({name} is not a number JSON allows)")


# Integers in JSON from people: far beyond any count or option, and Python's own limit
# (4,300 digits) would otherwise answer in words about sys.set_int_max_str_digits().
MAX_INT_DIGITS = 100


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadText(f"is not valid JSON (a number with more than {MAX_INT_DIGITS} digits)")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to infinity, which JSON can't write back
        raise BadText(f"is not valid JSON ({printable(text, 20)} is too large a number)")
    return value


def loads_json(text: str, *, max_depth: int = JSON_MAX_DEPTH, strings: bool = True) -> Any:
    """Parse JSON from a person, or raise BadText ("is not valid JSON (...)", "nests
    deeper than 64 levels", "holds a NUL character ... at messages[2].content").

    Arrays and objects count one level each; a bare string or number is depth 0. NaN,
    Infinity and numbers too large for a float are refused: they can't be written back
    as JSON (PostgreSQL's jsonb refuses them). With `strings` (the default) every string
    and key is checked by `problem`; callers that check their fields one by one, to say
    which one is wrong, pass False. Nesting is measured without recursion; JSON nested
    so deep that the parser itself gives up (RecursionError) gets the same answer.
    """
    try:
        value = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, parse_int=_integer
        )
    except RecursionError:
        raise BadText(f"nests deeper than {max_depth} levels") from None
    except BadText:
        raise
    except ValueError as exc:  # JSONDecodeError, too many digits for an int
        raise BadText(f"is not valid JSON ({exc})") from None
    _walk(value, max_depth, strings)
    return value


def _walk(value: Any, max_depth: int, strings: bool) -> None:
    """Check nesting (and strings) with an explicit stack: each entry is (value, depth,
    key, parent entry), the chain of parents giving the path for an error message."""
    stack: list[tuple] = [(value, 0, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        if isinstance(item, str):
            if strings and (found := problem(item)):
                raise BadText(f"{found}{_where(entry)}")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise BadText(f"nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if strings and (found := problem(key)):
                        raise BadText(f"{found}{_where((key, depth + 1, key, entry))}")
                    stack.append((child, depth + 1, key, entry))
            else:
                stack.extend((child, depth + 1, index, entry) for index, child in enumerate(item))


def _where(entry: tuple) -> str:
    """ " (at conversations[2].title)" for the entry's path, "" at the top."""
    parts: list[str] = []
    while entry is not None and entry[3] is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{printable(key, 30)}")
        entry = entry[3]
    path = "".join(reversed(parts)).lstrip(".")
    return f" (at {path})" if path else ""
