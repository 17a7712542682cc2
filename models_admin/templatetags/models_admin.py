"""Numbers as people read them, the same way static/models_admin/format.js writes them."""

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

# Decimal units, as `ollama list` and `ollama ps` show sizes.
_UNITS = ("B", "KB", "MB", "GB", "TB")


@register.filter
def human_bytes(value) -> str:
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    if unit == 0:
        return f"{int(size)} B"
    return f"{size:.1f} {_UNITS[unit]}"


@register.filter
def thousands(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""


@register.filter
def countdown(seconds) -> str:
    """Time left before a model is unloaded: "forever", "4 min 59 s", "2 h 5 min"."""
    if seconds is None:
        return "forever"
    seconds = max(0, int(seconds))
    if seconds == 0:
        return "unloading"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def ago(value) -> str:
    """ "4 weeks ago", "just now": one unit is enough in a table."""
    if not value:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"
