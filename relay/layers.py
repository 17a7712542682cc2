"""The in-memory channel layer (one process), made cheaper per message."""

import time

from channels.layers import InMemoryChannelLayer as BaseInMemoryChannelLayer

CLEAN_EVERY = 1.0  # seconds


class InMemoryChannelLayer(BaseInMemoryChannelLayer):
    # Channels walks every channel and group for expired messages on every send and
    # receive: at hundreds of streams that was 14% of the server's time (docs/benchmarks.md).
    # Expiry is counted in tens of seconds, so once a second is as good.
    _last_clean = 0.0

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._last_clean >= CLEAN_EVERY:
            self._last_clean = now
            super()._clean_expired()
