"""Password hashing that a crowd of sign-ups cannot turn against the chat.

Django's PBKDF2 costs about 0.5 s of CPU per password (1,000,000 iterations), and under
ASGI every HTTP request runs its sync code in a thread of its own. Two hundred people
signing up or logging in at once would be two hundred threads hashing in parallel: the
event loop and the one thread that serves the chat sockets' database work would get a
two-hundredth of the CPU each, sockets would miss Daphne's connect timeout and answers
would stall. So at most PASSWORD_HASH_CONCURRENCY hashes run at a time (by default one
core fewer than the machine has); the others wait, without using CPU, for their turn.

The hashers keep Django's algorithm names, so existing hashes verify as before and
Django's own hasher can read ours.
"""

import threading

from django.conf import settings
from django.contrib.auth import hashers

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _hash_slots() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(settings.PASSWORD_HASH_CONCURRENCY)
        return _slots


class _Bounded:
    """Mixin: `encode` and `verify` (the CPU-heavy steps) take a slot first."""

    def encode(self, password, salt, *args, **kwargs):
        with _hash_slots():
            return super().encode(password, salt, *args, **kwargs)

    def verify(self, password, encoded):
        with _hash_slots():
            return super().verify(password, encoded)

    def harden_runtime(self, password, encoded):
        # Django hashes dummy passwords to hide whether a user exists: bounded too.
        with _hash_slots():
            return super().harden_runtime(password, encoded)


class PBKDF2PasswordHasher(_Bounded, hashers.PBKDF2PasswordHasher):
    """Django's default hasher (`pbkdf2_sha256`), at most N at a time."""
