"""Ollama's replies (/api/tags, /api/ps, /api/show) shaped for the templates.

Everything Ollama sends is treated as optional: fields come and go between versions,
and a page must render whatever a server answers.
"""

import re
from datetime import UTC, datetime

# Ollama shows "forever" (keep_alive < 0) as an expiry centuries away.
FOREVER_AFTER = 10 * 365 * 86400

# The local list's columns that sort, with their headings.
SORT_COLUMNS = (
    ("name", "Name"),
    ("size", "Size"),
    ("family", "Family"),
    ("parameters", "Parameters"),
    ("quantization", "Quantisation"),
    ("modified", "Modified"),
)
SORT_KEYS = tuple(key for key, _ in SORT_COLUMNS)


def parse_time(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        # Go writes nanoseconds; Python 3.11+ reads them (keeping microseconds).
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def parameter_count(size: str) -> float:
    """ "3.2B" -> 3.2e9, for sorting; unknown sizes sort first."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", size or "", re.IGNORECASE)
    if not match:
        return 0.0
    try:
        number = float(match.group(1))
    except ValueError:
        return 0.0
    return number * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2).upper()]


def _details(entry: dict) -> dict:
    details = entry.get("details")
    return details if isinstance(details, dict) else {}


def local_models(tags: list[dict], running: list[dict], sort: str, descending: bool) -> list[dict]:
    loaded = {_str(entry.get("name") or entry.get("model")).lower() for entry in running}
    rows = []
    for entry in tags:
        if not isinstance(entry, dict):
            continue
        name = _str(entry.get("name") or entry.get("model"))
        if not name:
            continue
        details = _details(entry)
        rows.append(
            {
                "name": name,
                "size": _int(entry.get("size")),
                "family": _str(details.get("family")),
                "parameters": _str(details.get("parameter_size")),
                "quantization": _str(details.get("quantization_level")),
                "modified": parse_time(entry.get("modified_at")),
                "digest": _str(entry.get("digest"))[:12],
                "running": name.lower() in loaded,
            }
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    keys = {
        "name": lambda row: row["name"].lower(),
        "size": lambda row: row["size"],
        "family": lambda row: (row["family"].lower(), row["name"].lower()),
        "parameters": lambda row: parameter_count(row["parameters"]),
        "quantization": lambda row: (row["quantization"], row["name"].lower()),
        "modified": lambda row: row["modified"] or epoch,
    }
    rows.sort(key=keys.get(sort, keys["name"]), reverse=descending)
    return rows


def expires_in(entry: dict, now: datetime) -> int | None:
    """Seconds until Ollama unloads the model; None for "forever" (or unknown)."""
    expires = parse_time(entry.get("expires_at"))
    if expires is None:
        return None
    seconds = (expires - now).total_seconds()
    if seconds > FOREVER_AFTER:
        return None
    return max(0, round(seconds))


def running_models(entries: list[dict], now: datetime) -> list[dict]:
    rows = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = _str(entry.get("name") or entry.get("model"))
        if not name:
            continue
        size, vram = _int(entry.get("size")), _int(entry.get("size_vram"))
        on_cpu = size - vram if 0 <= vram < size else 0
        details = _details(entry)
        rows.append(
            {
                "name": name,
                "size": size,
                "vram": vram,
                "cpu": on_cpu,
                "cpu_percent": round(on_cpu * 100 / size) if size and on_cpu else 0,
                "context_length": _int(entry.get("context_length")),
                "expires_in": expires_in(entry, now),
                "expires_at": parse_time(entry.get("expires_at")),
                "parameters": _str(details.get("parameter_size")),
                "quantization": _str(details.get("quantization_level")),
            }
        )
    return rows


def fingerprint(entries: list[dict]) -> tuple:
    """What the running list shows, minus the ticking clock: equal means nothing to push."""
    items = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        expires = parse_time(entry.get("expires_at"))
        items.append(
            (
                _str(entry.get("name") or entry.get("model")),
                _int(entry.get("size")),
                _int(entry.get("size_vram")),
                _int(entry.get("context_length")),
                round(expires.timestamp()) if expires else None,
            )
        )
    return tuple(items)


def model_detail(name: str, show: dict) -> dict:
    details = _details(show)
    info = show.get("model_info") if isinstance(show.get("model_info"), dict) else {}
    arch = _str(info.get("general.architecture")) or _str(details.get("family"))
    capabilities = show.get("capabilities")
    return {
        "name": name,
        "capabilities": [c for c in capabilities if isinstance(c, str)]
        if isinstance(capabilities, list)
        else [],
        "context_length": _int(info.get(f"{arch}.context_length"))
        or _int(details.get("context_length")),
        "embedding_length": _int(info.get(f"{arch}.embedding_length")),
        "parameter_count": _int(info.get("general.parameter_count")),
        "family": _str(details.get("family")),
        "families": [f for f in details.get("families") or [] if isinstance(f, str)],
        "parameters_size": _str(details.get("parameter_size")),
        "quantization": _str(details.get("quantization_level")),
        "format": _str(details.get("format")),
        "parameters": _str(show.get("parameters")),
        "template": _str(show.get("template")),
        "system": _str(show.get("system")),
        "license": _str(show.get("license")),
        "license_title": next(
            (line.strip() for line in _str(show.get("license")).splitlines() if line.strip()),
            "",
        ),
        "modified": parse_time(show.get("modified_at")),
    }
