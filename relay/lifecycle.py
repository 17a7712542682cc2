"""A process's life around its live answers and jobs: what each app does before the
server stops (SIGTERM), registered by the app itself in its `AppConfig.ready()`
(`on_shutdown`), so that no app calls into another; `config/asgi.py` installs it all
under Daphne (`install_shutdown_hook`).

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

ShutdownHook = Callable[[float], Awaitable[None]]
_shutdown_hooks: list[ShutdownHook] = []


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


def install_shutdown_hook() -> None:
    """Under Daphne (Twisted), run `shutdown()` before the reactor stops."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not Daphne (tests, other servers)
    from twisted.internet import defer, reactor

    def before_shutdown():
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
