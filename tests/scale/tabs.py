"""A browser tab's chat socket, as static/chat/socket.js and stream.js run it, for the
scale tests: it reconnects after any close that is not fatal, and catches up from the
snapshot and `sync` (docs/websocket.md) — so a test sees exactly the text a page would
show after faults on the server side."""

import asyncio
import json

import websockets

FATAL_CLOSES = {4401, 4403, 4404}  # socket.js gives up on these
RECONNECT_DELAY = 0.5  # seconds; socket.js waits 0.25-0.75 s after a 4503, 1 s after others
FINAL = {"complete", "stopped", "failed", "interrupted"}


class Answer:
    """What a tab shows of one assistant message."""

    def __init__(self, message: dict):
        self.id = message["id"]
        self.content = message.get("content") or ""
        self.thinking = message.get("thinking") or ""
        self.status = message.get("status", "streaming")
        self.error = message.get("error") or ""
        self.seq: int | None = message.get("seq", 0) if self.status == "streaming" else None
        self.shown_seq = self.seq or 0  # the last frame applied, never reset

    def show(self, content: str, thinking: str, seq: int | None = None) -> None:
        self.content, self.thinking = content, thinking
        if seq is not None:
            self.shown_seq = max(self.shown_seq, seq)


class Tab:
    """One page's socket on process `index` of a cluster, kept open until `close()`."""

    def __init__(self, cluster, index: int, account, conversation: str):
        self.cluster, self.conversation = cluster, conversation
        self.url = f"{cluster.ws(index)}/ws/conversations/{conversation}/"
        self.headers = {"Cookie": account.cookie, "Origin": cluster.url(index)}
        self.answers: dict[str, Answer] = {}
        self.frames: list[dict] = []
        self.close_codes: list[int] = []
        self.errors: list[dict] = []
        self.questions: dict[str, dict] = {}  # client_id -> confirmed `message` frame
        self.opened = 0  # connections that got their first frame
        self._ws = None
        self._first_frame = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    async def open(self, timeout: float = 10.0) -> "Tab":
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(timeout):
            await self._first_frame.wait()
        return self

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def send(self, frame: dict) -> bool:
        """Send now; False when the socket is down (the page keeps the text then)."""
        if self._ws is None:
            return False
        try:
            await self._ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def wait_for(self, condition, timeout: float = 15.0) -> None:
        """Until `condition()` holds; fails saying what the tab shows after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            shown = {
                id: (a.status, a.seq, a.shown_seq, len(a.content)) for id, a in self.answers.items()
            }
            raise AssertionError(
                f"{self.url}: not after {timeout} s; connected={self.connected}, "
                f"opened={self.opened}, closes={self.close_codes}, answers={shown}"
            ) from None

    def latest(self) -> Answer | None:
        return list(self.answers.values())[-1] if self.answers else None

    # --- the socket -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                async with websockets.connect(self.url, additional_headers=self.headers) as ws:
                    self._ws = ws
                    first = True
                    async for raw in ws:
                        frame = json.loads(raw)
                        self.frames.append(frame)
                        if first:
                            first = False
                            self.opened += 1
                            await self._connected()
                            self._first_frame.set()
                        await self._apply(frame)
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None:
                    self.close_codes.append(exc.rcvd.code)
            except (OSError, websockets.InvalidHandshake):
                self.close_codes.append(1006)  # the process is not there (killed)
            self._ws = None
            if self._closing or (self.close_codes and self.close_codes[-1] in FATAL_CLOSES):
                return
            await asyncio.sleep(RECONNECT_DELAY)

    async def _connected(self) -> None:
        # stream.js: what shows as streaming must be confirmed by a snapshot; the page
        # asks with `sync` when the snapshot does not cover it.
        for answer in self.answers.values():
            if answer.status == "streaming":
                answer.seq = None

    async def _sync(self, answer_id: str) -> None:
        await self.send({"type": "sync", "id": answer_id})

    async def _apply(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "snapshot":
            message = frame["message"]
            if message is None:
                for answer in self.answers.values():
                    if answer.status == "streaming" or answer.seq is None:
                        await self._sync(answer.id)
                return
            answer = self.answers.setdefault(message["id"], Answer(message))
            answer.show(
                message.get("content") or "", message.get("thinking") or "", message.get("seq")
            )
            answer.status = message["status"]
            answer.error = message.get("error") or ""
            # Final and saved: nothing left to wait for (-1).
            answer.seq = message.get("seq", 0) if answer.status == "streaming" else -1
        elif kind == "message":
            if frame.get("client_id"):
                self.questions[frame["client_id"]] = frame
        elif kind == "start":
            answer = Answer(frame["message"])
            self.answers[answer.id] = answer
        elif kind == "delta":
            answer = self._streaming()
            if answer is None or answer.seq is None or frame["seq"] <= answer.seq:
                return
            if frame["seq"] != answer.seq + 1:  # a gap: ask for the whole text
                answer.seq = None
                await self._sync(answer.id)
                return
            answer.seq = frame["seq"]
            if frame.get("replace"):
                answer.show(frame.get("content", ""), frame.get("thinking", ""), frame["seq"])
            else:
                answer.show(
                    answer.content + frame.get("content", ""),
                    answer.thinking + frame.get("thinking", ""),
                    frame["seq"],
                )
        elif kind == "done":
            answer = self.answers.get(frame["id"])
            if answer is None:
                answer = self.answers[frame["id"]] = Answer({"id": frame["id"], "seq": None})
            missed = isinstance(frame.get("seq"), int) and (
                answer.seq is None or frame["seq"] > answer.seq
            )
            answer.status, answer.error = frame["status"], frame.get("error") or ""
            if missed:
                answer.seq = None
                await self._sync(answer.id)
            else:
                answer.seq = -1
        elif kind == "error":
            self.errors.append(frame)

    def _streaming(self) -> Answer | None:
        for answer in reversed(self.answers.values()):
            if answer.status == "streaming":
                return answer
        return None

    def settled(self, answer_id: str) -> bool:
        """The tab shows the answer in a final state, with nothing left to catch up."""
        answer = self.answers.get(answer_id)
        return answer is not None and answer.status in FINAL and answer.seq == -1
