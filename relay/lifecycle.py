"""A process's life around its live answers and jobs: what each app does once the server
runs (`on_start`: the chat's stale-answer sweeper) and before it stops (`on_shutdown`,
SIGTERM: the pulls of models_admin), each registered by the app itself in its
`AppConfig.ready()`, so that no app calls into another; `config/asgi.py` installs it
all under Daphne (`install_process_hooks`).

On shutdown the relay cancels every live answer of the process first: each saves its
text and ends `interrupted` (`relay.engine.Answer._run`, shielded), whatever surface
started it.
"""

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from relay import live

log = logging.getLogger(__name__)

StartHook = Callable[[], None]
ShutdownHook = Callable[[float], Awaitable[None]]
_start_hooks: list[StartHook] = []
_shutdown_hooks: list[ShutdownHook] = []


def on_start(hook: StartHook) -> None:
    """Call `hook()` inside the event loop as soon as the server runs (Daphne only; it
    must return at once: start a task for anything that lasts). Registering the same
    hook twice calls it once."""
    if hook not in _start_hooks:
        _start_hooks.append(hook)


def on_shutdown(hook: ShutdownHook) -> None:
    """Run `hook(timeout)` (seconds it may take) when the process is asked to stop,
    alongside the relay's own answers. Registering the same hook twice runs it once."""
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)


async def shutdown(timeout: float = 5.0) -> None:
    """Stop every answer of this process as `interrupted`, keeping all its text, and run
    every registered hook (e.g. the pulls of models_admin), all at once."""
    tasks = [answer.task for answer in live.answers() if answer.task]
    for task in tasks:
        task.cancel()  # Answer._run saves the text and the final state (shielded)
    waits = [hook(timeout) for hook in _shutdown_hooks]
    if tasks:
        waits.append(asyncio.wait(tasks, timeout=timeout))
    await asyncio.gather(*waits)
    if tasks:
        log.info("saved %d running answer(s) before stopping", len(tasks))


def _start() -> None:
    for hook in _start_hooks:
        try:
            hook()
        except Exception:
            log.exception("start hook %s failed", hook)


def install_process_hooks() -> None:
    """Under Daphne (Twisted): run the start hooks as soon as the server runs, and
    `shutdown()` before the reactor stops (SIGTERM)."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not Daphne (tests, other servers)
    from twisted.internet import defer, reactor

    def before_shutdown():
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.callLater(0, _start)  # runs inside the event loop, once it runs
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
