"""What every tab was shown of a live answer, kept in Redis while it is written (several
processes only), so that the answer of a process that died is saved with all the text
any tab showed, not just its last checkpoint (docs/deployment.md, "What happens when
things fail").

One Redis stream per answer, `chat:answer:<message uuid>`:

- a *base* entry `{b: 1, s: seq, c: content, t: thinking}`: the whole text as of the
  frame numbered `seq` (0: the `start` frame, with a continued answer's text);
- after it, one entry per `delta` frame `{s: seq, c, t, r}` (its content, thinking, and
  `r: 1` for a `replace` frame, docs/websocket.md), appended in the same round trip as
  the frame's publish (one pipeline, relay/redis_layer.py): one XADD per frame, never per
  token, and nothing per token in the database.

Every BASE_EVERY frames, and whenever an entry may be missing (a failed write, Redis
restarted and lost the stream), the stream is started afresh from a base, so it stays
short and always begins with one. Its expiry is renewed as it grows; it is deleted
when the answer ends or is recovered.
"""

from dataclasses import dataclass

# Named "chat:" from when this lived in the chat app, and kept: a process of the next
# version still recovers the answers of one of this version (rolling restart).
KEY_PREFIX = "chat:answer:"
BASE_EVERY = 200  # frames; also bounds the stream's length (about BASE_EVERY + 1 entries)
# A stream outlives the answer only when its process died and no other recovered it. Its
# expiry is renewed with each base and every EXPIRE_EVERY frames; an answer that stays
# quiet longer than this (a slow model load) just starts again from a base.
EXPIRE_SECONDS = 600
EXPIRE_EVERY = 50


def key(message_uuid) -> str:
    return f"{KEY_PREFIX}{message_uuid}"


@dataclass
class Rebuilt:
    """The text of an answer as its tabs were last shown it."""

    content: str
    thinking: str
    seq: int
    whole: bool  # False: an entry was missing; the text ends where it went missing


class Writer:
    """Queues the log entries of one answer, frame by frame, onto the pipelines that
    publish the frames."""

    def __init__(self, message_uuid):
        self.key = key(message_uuid)
        self.needs_base = True
        self._since_base = 0
        self._queued_delta = False

    def base_due(self) -> bool:
        """Whether the next entry is a base: then `queue` needs the whole text (taking it
        costs a copy of the text, so only then)."""
        return self.needs_base or self._since_base >= BASE_EVERY

    def queue(self, pipeline, seq: int, frame: dict | None, whole: tuple[str, str] | None):
        """Queue the entry for frame `seq`: `frame` is the delta's fields (None for the
        `start` frame), `whole` the (content, thinking) after it when `base_due()` was
        true as the frame was taken."""
        self._queued_delta = False
        if whole is not None:
            pipeline.delete(self.key)
            pipeline.xadd(self.key, {"b": 1, "s": seq, "c": whole[0], "t": whole[1]})
            pipeline.expire(self.key, EXPIRE_SECONDS)
            self._since_base = 0
        elif not self.needs_base:  # (else a frame in flight failed: the next is a base)
            entry = {"s": seq}
            if frame.get("content"):
                entry["c"] = frame["content"]
            if frame.get("thinking"):
                entry["t"] = frame["thinking"]
            if frame.get("replace"):
                entry["r"] = 1
            # NOMKSTREAM: a delta never starts a stream that lacks its base.
            pipeline.xadd(self.key, entry, nomkstream=True)
            self._since_base += 1
            if self._since_base % EXPIRE_EVERY == 0:
                pipeline.expire(self.key, EXPIRE_SECONDS)
            self._queued_delta = True

    def written(self, results: list) -> None:
        """The queued entry's round trip succeeded with these results (after the
        PUBLISH's). A delta that found no stream (Redis lost it) asks for a base."""
        if self._queued_delta:
            self.needs_base = results[0] is None
        elif results:
            self.needs_base = False  # a base went in

    def failed(self) -> None:
        """The round trip failed: the entry may be missing, so the next one is a base."""
        self.needs_base = True

    def forget(self, pipeline) -> None:
        pipeline.delete(self.key)


def rebuild(entries: list) -> Rebuilt | None:
    """The text shown after the last frame logged in `entries` (XRANGE's (id, fields)
    pairs, bytes), applied as a tab applies frames; None without a base entry."""
    text = None
    for _id, fields in entries:
        seq = int(fields[b"s"])
        if b"b" in fields:
            text = Rebuilt(
                fields.get(b"c", b"").decode(), fields.get(b"t", b"").decode(), seq, True
            )
            continue
        if text is None or seq <= text.seq:
            continue  # before any base, or written twice (a retried round trip)
        if seq != text.seq + 1:
            text.whole = False  # an entry is missing: what follows cannot be placed
            break
        content, thinking = fields.get(b"c", b"").decode(), fields.get(b"t", b"").decode()
        if b"r" in fields:  # both texts replaced, as the tabs did
            text.content, text.thinking = content, thinking
        else:
            text.content += content
            text.thinking += thinking
        text.seq = seq
    return text


def read(client, message_uuids: list) -> dict:
    """{message uuid: Rebuilt} of the answers whose log is in Redis (one round trip)."""
    if not message_uuids:
        return {}
    pipeline = client.pipeline(transaction=False)
    for message_uuid in message_uuids:
        pipeline.xrange(key(message_uuid))
    found = {}
    for message_uuid, entries in zip(message_uuids, pipeline.execute(), strict=True):
        rebuilt = rebuild(entries)
        if rebuilt is not None:
            found[message_uuid] = rebuilt
    return found


def delete(client, message_uuids: list) -> None:
    if message_uuids:
        client.delete(*(key(message_uuid) for message_uuid in message_uuids))
