"""Reading a conversations file (the format chat.exports writes) before anything is saved.

The file is untrusted: it may be malformed, huge, or written to hurt. Everything is
checked here, and the first problem refuses the whole file with a message saying where
it is; only a file that passes entirely reaches `services.import_conversations`. Ids in
the file are only references between its own messages (and, for a conversation, the
mark that recognises it when the same file is imported again): the database gives new
ones, and nothing in the file names an owner or a file path. Images come as bytes
(base64), checked like uploads (chat.import_images) and stored again by the service.
"""

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.utils.dateparse import parse_datetime

from chat import text
from chat.import_images import BadImage, ImportedImage, parse_images
from chat.models import Conversation, Message
from chat.settings_form import SettingsForm, as_settings
from ollama_layer.names import is_valid_model_name
from relay.target import STAT_FIELDS

FORMAT = "ollama-chat"
VERSION = 1
# An answer is not bound by what a person may type; this only stops absurd fields (the
# file size limit already bounds the total).
MAX_ANSWER_CHARS = 1_000_000
MAX_ERROR_CHARS = 2_000
MAX_REF_CHARS = 64
# The file's own levels above a conversation's settings (the file, its list, the
# conversation): a JSON schema as deep as the settings panel allows still imports.
FILE_LEVELS = 3
TITLE_MAX = Conversation._meta.get_field("title").max_length
MODEL_MAX = Conversation._meta.get_field("model").max_length
ROLES = set(Message.Role.values)
STATUSES = set(Message.Status.values)
TITLE_SOURCES = set(Conversation.TitleSource.values)
INTERRUPTED_ERROR = "This answer was still being written when it was exported."
# Ollama's numbers and ours; other keys are dropped.
STAT_NUMBERS = (
    *(f for f in STAT_FIELDS if f != "done_reason"),
    "thinking_ms",
    "wall_ms",
    "context_window",
)
DEFAULT_SETTINGS = {
    "system_prompt": "",
    "options": {},
    "keep_alive": "",
    "think": "",
    "format": None,
}


class ImportRefused(Exception):
    """The file can't be imported; `message` says why, for people."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class ImportedMessage:
    ref: str
    parent: str | None
    role: str
    content: str
    thinking: str = ""
    model: str = ""
    status: str = Message.Status.COMPLETE
    error: str = ""
    stats: dict = field(default_factory=dict)
    created: datetime | None = None
    images: list[ImportedImage] = field(default_factory=list)
    images_missing: int = 0


@dataclass
class ImportedConversation:
    title: str
    title_source: str
    model: str
    settings: dict
    pinned: bool = False
    archived: bool = False
    created: datetime | None = None
    updated: datetime | None = None
    current_leaf: str | None = None
    messages: list[ImportedMessage] = field(default_factory=list)
    # The exported conversation's id ("" when the file has none): an import of the same
    # conversation again is recognised by it (Conversation.imported_from).
    source: str = ""
    # Images listed without their bytes (exports made before images were included).
    images_missing: int = 0


# A Markdown export (chat.exports.conversation_markdown) starts "# <title>" and lists
# "- Model: ..." a line below.
_MARKDOWN_EXPORT = re.compile(r"\A\ufeff?# [^\n]*\n\n- Model: ")
ONLY_JSON = (
    "Only JSON exports can be imported: use “Export JSON” in a conversation's menu, or "
    "“Export all”."
)


def parse_import(raw: bytes, name: str = "") -> list[ImportedConversation]:
    """The conversations of an export file, fully checked, or ImportRefused.

    `raw` is the whole file (at most MAX_IMPORT_BYTES), `name` the uploaded file's name,
    used only to recognise a Markdown export. JSON is read by chat.text.loads_json: at
    most text.JSON_MAX_DEPTH levels within a conversation's settings, no NUL or lone
    surrogate in any text.
    """
    if len(raw) > settings.MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"The file is too large ({len(raw) / 1e6:.1f} MB; the limit is "
            f"{settings.MAX_IMPORT_BYTES / 1e6:.1f} MB)."
        )
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(f"The file is not UTF-8 text. {ONLY_JSON}") from None
    if name.lower().endswith((".md", ".markdown")) or _MARKDOWN_EXPORT.match(source):
        raise ImportRefused(f"This is a Markdown export, made for reading. {ONLY_JSON}")
    try:
        data = text.loads_json(source, max_depth=text.JSON_MAX_DEPTH + FILE_LEVELS)
    except text.BadText as exc:
        if exc.message.startswith("is not valid JSON"):
            raise ImportRefused(f"The file {exc.message}. {ONLY_JSON}") from None
        if exc.message.startswith("nests deeper"):
            raise ImportRefused(
                f"The file nests too deeply to be an export (at most {text.JSON_MAX_DEPTH} "
                "levels inside a conversation's settings)."
            ) from None
        raise ImportRefused(f"The file {exc.message}.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportRefused(f'This is not an Ollama Chat export (expected "format": "{FORMAT}").')
    if data.get("version") != VERSION:
        raise ImportRefused(
            f"Export format version {data.get('version')!r} is not supported "
            f"(this server reads version {VERSION})."
        )
    items = data.get("conversations")
    if not isinstance(items, list):
        raise ImportRefused('"conversations" must be a list.')
    if not items:
        raise ImportRefused("The file holds no conversations.")
    checked: dict[str, dict] = {}
    return [
        _conversation(item, f"Conversation {number}", checked)
        for number, item in enumerate(items, 1)
    ]


# --- fields ---------------------------------------------------------------------------


def _string(item: dict, key: str, where: str, limit: int, default: str = "") -> str:
    value = item.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise ImportRefused(f"{where}: {key} must be text.")
    if len(value) > limit:
        raise ImportRefused(f"{where}: {key} is longer than {limit:,} characters.")
    found = text.problem(value)  # loads_json checked already: kept for other callers
    if found:
        raise ImportRefused(f"{where}: {key} {found}.")
    return value


def _bool(item: dict, key: str, where: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ImportRefused(f"{where}: {key} must be true or false.")
    return value


def _choice(item: dict, key: str, where: str, choices: set[str], default: str) -> str:
    value = item.get(key, default)
    if value not in choices:
        allowed = ", ".join(sorted(choices))
        raise ImportRefused(f"{where}: {key} must be one of {allowed} (not {value!r:.40}).")
    return value


def _time(item: dict, key: str, where: str) -> datetime | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) and len(value) < 40 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ImportRefused(f"{where}: {key} must be a date and time such as 2025-01-31T12:00:00Z.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ref(value, where: str, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REF_CHARS:
        raise ImportRefused(
            f"{where}: {key} must be a message id (text, 1 to {MAX_REF_CHARS} characters)."
        )
    return value


def _model(item: dict, key: str, where: str, required: bool) -> str:
    value = _string(item, key, where, MODEL_MAX)
    if (value or required) and not is_valid_model_name(value):
        raise ImportRefused(f"{where}: {value!r:.60} is not a valid Ollama model name.")
    return value


def _settings(item: dict, model: str, where: str, checked: dict[str, dict]) -> dict:
    """A conversation's settings, checked by the same form as the settings panel. Most
    conversations of a file share theirs (a user's defaults): `checked` remembers the
    ones already seen, so a big file is not slowed by one form per conversation."""
    values = {key: item.get(key, default) for key, default in DEFAULT_SETTINGS.items()}
    for key in ("system_prompt", "keep_alive", "think"):
        if values[key] is None:
            values[key] = ""
    if values["options"] is None:
        values["options"] = {}
    if values == DEFAULT_SETTINGS:
        return dict(DEFAULT_SETTINGS, options={})
    key = json.dumps(values, sort_keys=True)
    if key not in checked:
        checked[key] = _check_settings(values, model, where)
    return copy.deepcopy(checked[key])


def _check_settings(values: dict, model: str, where: str) -> dict:
    options, format_value = values["options"], values["format"]
    if not isinstance(options, dict):
        raise ImportRefused(f"{where}: options must be an object.")
    stop = options.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ImportRefused(f"{where}: options.stop must be a list of texts.")
    if not (format_value is None or format_value == "json" or isinstance(format_value, dict)):
        raise ImportRefused(f'{where}: format must be null, "json" or a JSON schema object.')
    for key in ("system_prompt", "keep_alive", "think"):
        if not isinstance(values[key], str):
            raise ImportRefused(f"{where}: {key} must be text.")
    shown = as_settings(values, model)
    data = {
        key: "\n".join(value) if key == "stop" else ("" if value is None else value)
        for key, value in shown.items()
    }
    form = SettingsForm(data)
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise ImportRefused(f"{where}: {name}: {' '.join(errors)}")
    cleaned = form.values()
    cleaned.pop("model", None)
    return cleaned


def _stats(item: dict, where: str) -> dict:
    stats = item.get("stats") or {}
    if not isinstance(stats, dict):
        raise ImportRefused(f"{where}: stats must be an object.")
    kept = {}
    for key in STAT_NUMBERS:
        value = stats.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ImportRefused(f"{where}: stats.{key} must be a whole number.")
        kept[key] = value
    reason = stats.get("done_reason")
    if reason is not None:
        if not isinstance(reason, str) or len(reason) > 20:
            raise ImportRefused(f"{where}: stats.done_reason must be a short text.")
        kept["done_reason"] = reason
    return kept


# --- records --------------------------------------------------------------------------


def _message(item, where: str) -> ImportedMessage:
    if not isinstance(item, dict):
        raise ImportRefused(f"{where} must be an object.")
    ref = _ref(item.get("id"), where, "id")
    if ref is None:
        raise ImportRefused(f"{where}: id is missing.")
    role = _choice(item, "role", where, ROLES, "")
    limit = MAX_ANSWER_CHARS if role == Message.Role.ASSISTANT else settings.MAX_MESSAGE_CHARS
    status = _choice(item, "status", where, STATUSES, Message.Status.COMPLETE)
    error = _string(item, "error", where, MAX_ERROR_CHARS)
    if status == Message.Status.STREAMING:
        # Nothing is writing it here: show it as cut off, to be continued or regenerated.
        status, error = Message.Status.INTERRUPTED, error or INTERRUPTED_ERROR
    try:
        images, missing = parse_images(item.get("images"), where)
    except BadImage as exc:
        raise ImportRefused(exc.message) from None
    return ImportedMessage(
        ref=ref,
        parent=_ref(item.get("parent"), where, "parent"),
        role=role,
        content=_string(item, "content", where, limit),
        thinking=_string(item, "thinking", where, MAX_ANSWER_CHARS),
        model=_model(item, "model", where, required=False),
        status=status,
        error=error,
        stats=_stats(item, where),
        created=_time(item, "created", where),
        images=images,
        images_missing=missing,
    )


def _check_tree(messages: list[ImportedMessage], where: str) -> None:
    """Parents must be messages of this same conversation, and no chain may loop."""
    by_ref: dict[str, ImportedMessage] = {}
    for number, message in enumerate(messages, 1):
        if message.ref in by_ref:
            raise ImportRefused(f"{where}, message {number}: the id {message.ref!r} is used twice.")
        by_ref[message.ref] = message
    for number, message in enumerate(messages, 1):
        if message.parent is not None and message.parent not in by_ref:
            raise ImportRefused(
                f"{where}, message {number}: its parent {message.parent!r} is not a message "
                "of this conversation."
            )
    done: set[str] = set()
    for message in messages:
        path: set[str] = set()
        ref: str | None = message.ref
        while ref is not None and ref not in done:
            if ref in path:
                raise ImportRefused(f"{where}: the messages' parents go round in a circle.")
            path.add(ref)
            ref = by_ref[ref].parent
        done |= path


def _conversation(item, where: str, checked: dict[str, dict]) -> ImportedConversation:
    if not isinstance(item, dict):
        raise ImportRefused(f"{where} must be an object.")
    model = _model(item, "model", where, required=True)
    messages = item.get("messages", [])
    if not isinstance(messages, list):
        raise ImportRefused(f"{where}: messages must be a list.")
    parsed = [_message(message, f"{where}, message {n}") for n, message in enumerate(messages, 1)]
    _check_tree(parsed, where)
    leaf = _ref(item.get("current_leaf"), where, "current_leaf")
    if leaf is not None and leaf not in {message.ref for message in parsed}:
        raise ImportRefused(f"{where}: current_leaf {leaf!r} is not one of its messages.")
    # Cleaned like every title (chat.text.clean_line): bidi and control characters go.
    title = text.clean_line(_string(item, "title", where, TITLE_MAX))
    return ImportedConversation(
        title=title,
        title_source=_choice(
            item, "title_source", where, TITLE_SOURCES, Conversation.TitleSource.MESSAGE
        ),
        model=model,
        settings=_settings(item, model, where, checked),
        pinned=_bool(item, "pinned", where),
        archived=_bool(item, "archived", where),
        created=_time(item, "created", where),
        updated=_time(item, "updated", where),
        current_leaf=leaf,
        messages=parsed,
        source=_ref(item.get("id"), where, "id") or "",
        images_missing=sum(message.images_missing for message in parsed),
    )
