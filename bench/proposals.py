"""Apply the optimisation proposals of docs/benchmarks.md to a *scratch copy* of the
tree, to measure them with the same benchmark (never to this tree: chat/ and config/
belong to their owners, who decide):

    mkdir /tmp/benchcopy && tar --exclude=.venv --exclude=node_modules -cf - . | tar -xf - -C /tmp/benchcopy
    .venv/bin/python -m bench.proposals /tmp/benchcopy 1,2,3,4
    cd /tmp/benchcopy && /path/to/this/.venv/bin/python -m bench.run

Each proposal is a literal text replacement; it stops with a message when the code it
expects has changed.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYER = '''"""channels' in-memory layer, cleaning expired messages at most once a second."""

import time

from channels.layers import InMemoryChannelLayer as _InMemoryChannelLayer


class InMemoryChannelLayer(_InMemoryChannelLayer):
    _cleaned_at = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._cleaned_at >= 1.0:
            self._cleaned_at = now
            super()._clean_expired()
'''

DISPATCH = """
    async def dispatch(self, message):
        # Channels runs close_old_connections() in the database thread before every
        # handler; a frame going out touches no database.
        if message["type"] == "chat.frame":
            await self.send(text_data=message["text"])
        else:
            await super().dispatch(message)

    async def chat_frame(self, event):"""

# number -> [(file, old text, new text)]
PROPOSALS = {
    "1": [("chat/consumers.py", "\n    async def chat_frame(self, event):", DISPATCH)],
    "2": [
        (
            "chat/services/branches.py",
            'messages.only("id", "parent_id", *fields)',
            'messages.only("id", "parent_id", "conversation_id", *fields)',
        )
    ],
    "3": [
        ("chat/layers.py", None, LAYER),
        (
            "config/settings.py",
            '"BACKEND": "channels.layers.InMemoryChannelLayer"',
            '"BACKEND": "chat.layers.InMemoryChannelLayer"',
        ),
    ],
    "4": [
        (
            "config/settings.py",
            '"BACKEND": "channels_redis.core.RedisChannelLayer"',
            '"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"',
        ),
        (
            "config/settings.py",
            '                "capacity": 1000,\n                "expiry": 30,\n',
            "",
        ),
    ],
}


def apply(target: Path, numbers: list[str]) -> None:
    if target.resolve() == ROOT:
        raise SystemExit("Refusing to change this tree: give a scratch copy.")
    for number in numbers:
        for name, old, new in PROPOSALS[number]:
            path = target / name
            if old is None:
                path.write_text(new)
                continue
            text = path.read_text()
            if old not in text:
                raise SystemExit(f"proposal {number}: {name} no longer has {old[:60]!r}")
            path.write_text(text.replace(old, new, 1))
        print(f"applied proposal {number}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit(__doc__)
    apply(Path(args[0]), (args[1] if len(args) > 1 else "1,2,3,4").split(","))


if __name__ == "__main__":
    main()
