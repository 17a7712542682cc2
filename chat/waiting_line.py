"""The line of answers waiting for a busy Ollama (every host answered 503 "server busy"),
first come first served.

With Redis (REDIS_URL) there is one line for every process (`chat.shared_state`), so
each answer's place is its true place; without it, or while Redis is away, each process
keeps its own. Members are answers' task channels, so the answer that becomes first can
be woken at once, in whichever process it runs (`generation.wake`).
"""

from chat.shared_state import shared

_local: list[str] = []  # this process's line, when it has no shared one


async def join(member: str, *, only_if_waiting: bool = False) -> int:
    """`member`'s place in line (1 = first), joining at the end if it is not in it yet.
    With `only_if_waiting` it joins only when others already wait, and 0 says nobody
    does: a new answer then goes straight to Ollama instead of passing those waiting."""
    state = shared()
    if state is not None:
        found = await state.join(member, only_if_waiting=only_if_waiting)
        if found is not None:
            return found
    if member not in _local:
        if only_if_waiting and not _local:
            return 0
        _local.append(member)
    return _local.index(member) + 1


async def leave(member: str) -> str | None:
    """Take `member` out of line. Returns the new first in line when `member` was first
    (to be woken), else None."""
    state = shared()
    first = None
    if state is not None:
        first = await state.leave(member)
    if member in _local:
        was_first = _local[0] == member
        _local.remove(member)
        if was_first and _local and first is None:
            first = _local[0]
    return first
