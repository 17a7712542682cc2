"""Which Ollama host writes an answer, and what happens when one can't.

* Before the first token, a host that can't be reached is skipped for the next one that
  has the model; a host that answers 503 "server busy" everywhere puts the answer in
  line (`relay.waiting_line`): only the first in line tries Ollama, and each one that
  gets through wakes the next, so answers start in the order they arrived, across
  processes when they share Redis.
* After the answer began, a stream that breaks off (a dropped connection, an `{"error"}`
  line, a host that went down) goes on on another host that has the model, from where
  it stopped: the stream's `resumed()` request (for a chat, the partial answer as the
  assistant's last message, as Continue does: ollama-api.md §1, Ollama continues a
  final assistant message), and the new deltas append to the text every tab already
  shows. The answer's stats record each move under `failover` (in words:
  `relay.notes`). With no other host that has the model it fails as before.

`Failover` is a mixin of `relay.engine.Answer`: it uses the answer's text, its stream of
one host (`_relay_from`) and its frames.
"""

import asyncio
import logging

from django.conf import settings

from ollama_layer import failures, hosts
from ollama_layer.client import OllamaError, OllamaUnavailable
from relay import live, waiting_line
from relay.streams import Stream

log = logging.getLogger(__name__)


class Failover:
    """The answer's way through the hosts. Expects from the Answer: `target`, `channel`,
    `layer`, `text`, `stats`, `failovers` (a list, recorded in the stats), `_received`,
    `_stream_began`, `_relay_from()`, `_publish()`, `_publish_pending()`."""

    _in_line = False
    _turn: asyncio.Event | None = None  # set when this answer became first in line
    _leaving: asyncio.Task | None = None

    async def _relay(self, stream: Stream) -> None:
        """Stream the answer from the best host until it is done (see the module)."""
        self._turn = asyncio.Event()
        try:
            await self._relay_in_turn(stream)
        finally:
            if self._leaving is not None:
                await asyncio.shield(self._leaving)
            elif self._in_line:
                await asyncio.shield(self._leave_line())

    # --- the line ---------------------------------------------------------------------

    async def _relay_in_turn(self, stream: Stream) -> None:
        loop = asyncio.get_running_loop()
        # Others already waiting go first: a new answer joins behind them.
        position = await waiting_line.join(self.channel, only_if_waiting=True)
        self._in_line = position > 0
        waited_since = loop.time() if self._in_line else None
        shown, busy = 0, None
        while True:
            if position <= 1:  # nobody ahead: try the hosts
                busy = await self._try_hosts(stream)
                if busy is None:
                    return
                self._turn.clear()
                position = await waiting_line.join(self.channel)
                self._in_line = True
            waited_since = waited_since or loop.time()
            if loop.time() - waited_since > settings.QUEUE_TIMEOUT_SECONDS:
                raise busy or failures.StillBusy(settings.QUEUE_TIMEOUT_SECONDS)
            if position != shown:  # tell the user their place in line when it changes
                await self._publish({"type": "queued", "position": position})
                shown = position
            await self._wait_turn(settings.QUEUE_RETRY_SECONDS)
            # Cleared before asking: a wake that comes after the answer is counted.
            self._turn.clear()
            position = await waiting_line.join(self.channel)

    async def _wait_turn(self, seconds: float) -> None:
        """Sleep until the next retry, or until the answer before this one got through
        (since its place was last asked)."""
        try:
            await asyncio.wait_for(self._turn.wait(), seconds)
        except TimeoutError:
            pass

    def _your_turn(self) -> None:
        """The answer before this one left the line (`relay.live.wake`)."""
        if self._turn is not None:
            self._turn.set()

    def _through(self) -> None:
        """Ollama began answering: leave the line, so the next one may try (in the
        background: the first token must not wait for Redis)."""
        if self._in_line and self._leaving is None:
            self._leaving = asyncio.create_task(self._leave_line())

    async def _leave_line(self) -> None:
        self._in_line = False
        try:
            first = await waiting_line.leave(self.channel)
            if first:
                await live.wake(first, self.layer)
        except Exception as exc:  # the next one tries at its next retry anyway
            log.warning("could not hand the line on: %s", exc)

    # --- the hosts --------------------------------------------------------------------

    async def _try_hosts(self, stream: Stream) -> OllamaError | None:
        """One try on each host that may answer, best first. None once the answer is
        written; the 503 when every host was busy. Raises the failure to report."""
        pool = hosts.pool()
        busy = last = None
        model = stream.model
        tried = await pool.candidates(model)
        for host in tried:
            try:
                await self._stream(host, stream)
                return None
            except OllamaUnavailable as exc:
                host.mark_down(str(exc))
                if self._received:
                    await self._fail_over(host, exc, stream)
                    return None
                if len(pool.hosts) == 1:
                    raise
                last = exc
            except OllamaError as exc:
                if self._received:  # an error line: the host is up, its runner failed
                    await self._fail_over(host, exc, stream)
                    return None
                if exc.status == 404:
                    if unreachable := failures.out_of_reach(model, exc):
                        raise unreachable from exc
                if exc.status != 503:
                    raise
                busy = last = exc
        if busy is None:
            raise failures.out_of_reach(model, last, tried) or last
        return busy

    async def _stream(self, host: hosts.Host, stream: Stream, *, resume: bool = False) -> None:
        pool = hosts.pool()
        await pool.begin(host, self.channel)
        try:
            await self._relay_from(host.url, stream, resume=resume)
        finally:
            await asyncio.shield(pool.end(host, self.channel))

    async def _fail_over(self, failed: hosts.Host, exc: Exception, stream: Stream) -> None:
        """Go on with the answer on another host that has the model after `failed` broke
        off with `exc`; raises `exc` (or the last break) when no host can."""
        pool = hosts.pool()
        used = [failed]
        while True:
            others = await pool.others_with(stream.model, used)
            if not others:
                raise exc
            # What every tab shows is what the next host continues from: no text lost,
            # none doubled, and a pending `replace` reaches the tabs first.
            await asyncio.shield(self._publish_pending())
            content, thinking = self.text.content(), self.text.thinking()
            resumed = stream.resumed(content, thinking)
            move = {"from": pool.hosts.index(failed), "at": len(content), "reason": _reason(exc)}
            if thinking:
                move["thinking_at"] = len(thinking)
            log.warning("answer %s goes on on another host: %s", self.target.id, move["reason"])
            for host in others:
                try:
                    await self._stream(host, resumed, resume=True)
                    return
                except (OllamaUnavailable, OllamaError) as next_exc:
                    used.append(host)
                    if isinstance(next_exc, OllamaUnavailable):
                        host.mark_down(str(next_exc))
                    if self._stream_began:  # it took over, then broke off too
                        failed, exc = host, next_exc
                        break
                    # It could not take over (down, busy, refused): the next one may.
                finally:
                    if self._stream_began:
                        self._record_move(move, pool.hosts.index(host))
            else:
                raise exc

    def _record_move(self, move: dict, to: int) -> None:
        if move.get("to") is None:
            move["to"] = to
            self.failovers.append(move)
            self.stats["failover"] = self.failovers


def _reason(exc: Exception) -> str:
    """Why a host broke off, for people: never its address (OllamaUnavailable's str)."""
    return exc.message if isinstance(exc, OllamaError) else str(exc)
