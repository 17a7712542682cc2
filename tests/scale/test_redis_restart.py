"""Redis restarts under two Daphne processes (on a Redis of this module's own, so that it
can be stopped): no socket stays broken, no answer is lost or left `streaming`, and no
conversation stays busy."""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from threading import Event

import psycopg
import pytest
import websockets

from tests.fake_ollama import Reply
from tests.redis_server import PrivateRedis
from tests.scale.conftest import (
    Account,
    Cluster,
    assert_settled,
    cluster_env,
)
from tests.scale.tabs import Tab

pytestmark = pytest.mark.scale

TOKENS = [f" r{i}" for i in range(200)]
CLOSE_RECONNECT = 4503  # docs/websocket.md: "come back now"
ANSWERS = 20
RECOVERY_SECONDS = 5.0  # item 2: every socket works again within 5 s of Redis coming back


@pytest.fixture(scope="module")
def private_redis(redis_server_binary, tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def restartable(cluster, private_redis, hosts, database_url, tmp_path_factory):
    """Two more Daphne processes, on the private Redis (and the package's database, which
    `cluster` has migrated)."""
    tmp = tmp_path_factory.mktemp("restartable")
    running = Cluster(cluster_env(database_url, hosts, tmp, private_redis.url), tmp)
    running.start(0)
    running.start(1)
    yield running
    running.stop_all()


@pytest.fixture
def pair(restartable, private_redis, ollama):
    if private_redis.process.poll() is not None:
        private_redis.start()
    for index in (0, 1):
        if not restartable.alive(index):
            restartable.start(index)
    return restartable


def saved_answers(cluster, conversation: str) -> list[tuple]:
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(
            "SELECT m.uuid::text, m.status, m.content, m.error FROM chat_message m "
            "JOIN chat_conversation c ON c.id = m.conversation_id "
            "WHERE c.uuid = %s AND m.role = 'assistant' ORDER BY m.id",
            (conversation,),
        ).fetchall()


async def close_code_of_a_new_socket(cluster, index, account, conversation) -> int | None:
    """Open a socket and wait for it to work (None: it did) or be closed (its code)."""
    try:
        async with websockets.connect(
            f"{cluster.ws(index)}/ws/conversations/{conversation}/",
            additional_headers={"Cookie": account.cookie, "Origin": cluster.url(index)},
        ) as ws:
            async with asyncio.timeout(5):
                frame = json.loads(await ws.recv())
            assert frame["type"] == "snapshot", frame
            return None
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


def question_saved(tab: Tab, content: str) -> bool:
    with psycopg.connect(tab.cluster.env["DATABASE_URL"]) as connection:
        return (
            connection.execute(
                "SELECT count(*) FROM chat_message m JOIN chat_conversation c "
                "ON c.id = m.conversation_id WHERE c.uuid = %s AND m.role = 'user' "
                "AND m.content = %s",
                (tab.conversation, content),
            ).fetchone()[0]
            > 0
        )


async def send_until_saved(tab: Tab, content: str, timeout: float = 20.0) -> None:
    """Send as a person would: when the page says the connection dropped before the
    message was confirmed, look (the page shows it once it reconnects) and send it again
    only if it is not there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client_id = uuid.uuid4().hex[:12]
        frame = {"type": "send", "content": content, "model": "llama3.2", "client_id": client_id}
        if await tab.send(frame):
            until = time.monotonic() + 5
            while time.monotonic() < until:
                if client_id in tab.questions:
                    return
                refused = [e for e in tab.errors if e.get("client_id") == client_id]
                assert not refused, refused  # e.g. "busy": the conversation was left streaming
                if not tab.connected:
                    break
                await asyncio.sleep(0.05)
        if question_saved(tab, content):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"never sent: {content!r}; closes {tab.close_codes}")


def length(i: int) -> int:
    """Tokens of answer i: from 1.2 s to 6 s long, so that some end while Redis is away
    (their `done` frames are lost) and some after."""
    return 40 + 8 * i


def finished_at(cluster, conversation: str) -> datetime:
    with psycopg.connect(cluster.env["DATABASE_URL"]) as connection:
        return connection.execute(
            "SELECT m.heartbeat FROM chat_message m JOIN chat_conversation c "
            "ON c.id = m.conversation_id WHERE c.uuid = %s AND m.role = 'assistant'",
            (conversation,),
        ).fetchone()[0]


async def test_a_redis_restart_during_twenty_answers_loses_no_answer_and_no_socket(
    pair, private_redis, ollama
):
    people = [Account(pair.url(0)), Account(pair.url(1))]
    conversations = [(people[i % 2], people[i % 2].new_conversation()) for i in range(ANSWERS)]
    writers = [
        await Tab(pair, i % 2, person, conversation).open()
        for i, (person, conversation) in enumerate(conversations)
    ]
    watchers = [
        await Tab(pair, 1 - i % 2, person, conversation).open()
        for i, (person, conversation) in enumerate(conversations)
    ]
    # A tab open before the outage that sends while Redis is away.
    late_person, late_conversation = people[0], people[0].new_conversation()
    late = await Tab(pair, 0, late_person, late_conversation).open()

    for i, writer in enumerate(writers):
        for host in ollama:  # whichever host the answer goes to
            host.push_reply(Reply(content=TOKENS[: length(i)], delay=0.03))
        assert await writer.send({"type": "send", "content": "Count", "model": "llama3.2"})
        await writer.wait_for(lambda w=writer: w.latest() is not None)
    for watcher in watchers:  # every answer is live in both processes' tabs
        await watcher.wait_for(lambda w=watcher: w.latest() and w.latest().content, timeout=20)
    for host in ollama:
        host.reset()  # the replies the other host did not use
        host.default_reply = Reply(content=TOKENS, delay=0.01)
    tabs = [*writers, *watchers, late]
    opened = [tab.opened for tab in tabs]

    private_redis.stop()
    away = datetime.now(UTC)
    await asyncio.sleep(0.5)
    # Connecting now gets a close the page retries at once, never 1011.
    for index in (0, 1):
        code = await close_code_of_a_new_socket(pair, index, late_person, late_conversation)
        assert code == CLOSE_RECONNECT, code
    sending = asyncio.create_task(send_until_saved(late, "Sent while Redis was away"))
    await asyncio.sleep(1.5)
    private_redis.start()
    back, back_at = time.monotonic(), datetime.now(UTC)

    # Sockets opened right after the restart work, on both processes.
    fresh = [
        await Tab(pair, index, late_person, late_person.new_conversation()).open(
            timeout=RECOVERY_SECONDS
        )
        for index in (0, 1)
    ]
    await sending
    # Every tab that was open was closed with 4503 and is back within 5 s.
    for tab, before in zip(tabs, opened, strict=True):
        await tab.wait_for(lambda t=tab, n=before: t.connected and t.opened > n, timeout=5)
        assert CLOSE_RECONNECT in tab.close_codes
    assert time.monotonic() - back < RECOVERY_SECONDS

    # Every answer ends in one final state with all its text, and every tab shows it.
    for i, (_, conversation) in enumerate(conversations):
        [(answer_id, *_)] = saved_answers(pair, conversation)
        for tab in (writers[i], watchers[i]):
            await tab.wait_for(lambda t=tab, a=answer_id: t.settled(a), timeout=30)
        rows = saved_answers(pair, conversation)
        [(answer_id, status, content, _)] = rows
        assert status == "complete", rows
        # Each host takes the replies in the order pushed to it, whichever answer it gets.
        assert content in {"".join(TOKENS[: length(j)]) for j in range(ANSWERS)}, content
        for tab in (writers[i], watchers[i]):
            assert tab.answers[answer_id].status == "complete"
            assert tab.answers[answer_id].content == content
    # Some answers ended while Redis was away (their `done` never reached any tab).
    ends = [finished_at(pair, conversation) for _, conversation in conversations]
    assert any(away < end < back_at for end in ends), (away, back_at, ends)
    # The message sent during the outage was answered in full (or failed, saying why).
    late_rows = saved_answers(pair, late_conversation)
    assert late_rows and question_saved(late, "Sent while Redis was away")
    for answer_id, *_ in late_rows:
        await late.wait_for(lambda a=answer_id: late.settled(a), timeout=20)
    for _, status, content, error in saved_answers(pair, late_conversation):
        assert (status, content) == ("complete", "".join(TOKENS)) or (
            status == "failed" and error
        ), (status, content, error)

    # No conversation is busy: each takes a new message at once.
    for host in ollama:
        host.default_reply = Reply(content="Fine.")
    for writer in writers[:4]:
        await send_until_saved(writer, "Still there?", timeout=5)
    # A socket opened after the restart works end to end.
    await send_until_saved(fresh[1], "Hello")

    # Stop from the other process works again.
    for host in ollama:
        host.default_reply = Reply(content=TOKENS * 5, delay=0.03)
    await send_until_saved(writers[0], "A long one")
    await watchers[0].wait_for(
        lambda: watchers[0].latest().status == "streaming" and watchers[0].latest().content
    )
    stopped_id = watchers[0].latest().id
    assert await watchers[0].send({"type": "stop"})
    await writers[0].wait_for(lambda: writers[0].settled(stopped_id), timeout=5)
    assert writers[0].answers[stopped_id].status == "stopped"

    for tab in [*tabs, *fresh]:
        assert 1011 not in tab.close_codes, tab.close_codes
        await tab.close()
    assert_settled(pair.env["DATABASE_URL"], within=RECOVERY_SECONDS)


async def test_after_a_quiet_redis_restart_the_first_message_and_stop_work_at_once(
    pair, private_redis, ollama
):
    """A restart while nothing happens: each process's connections to Redis are dead
    without knowing it; the first message, the first stop and new sockets must work."""
    person = Account(pair.url(0))
    conversation = person.new_conversation()
    writer = await Tab(pair, 0, person, conversation).open()
    watcher = await Tab(pair, 1, person, conversation).open()
    private_redis.stop()
    private_redis.start()
    back = time.monotonic()

    for host in ollama:
        host.default_reply = Reply(content=TOKENS * 3, delay=0.02)
    # The first message after the restart: saved, answered, shown in both tabs.
    await send_until_saved(writer, "First after the restart", timeout=RECOVERY_SECONDS)
    await watcher.wait_for(lambda: watcher.latest() and watcher.latest().content, timeout=10)
    answer_id = watcher.latest().id
    # Stop pressed in the tab on the other process reaches the answer.
    assert await watcher.send({"type": "stop"})
    for tab in (writer, watcher):
        await tab.wait_for(lambda t=tab: t.settled(answer_id), timeout=10)
    assert time.monotonic() - back < RECOVERY_SECONDS + 5
    [(_, status, content, error)] = saved_answers(pair, conversation)
    assert status == "stopped" and 0 < len(content) < len("".join(TOKENS * 3))
    for tab in (writer, watcher):
        assert tab.answers[answer_id].status == "stopped"
        assert tab.answers[answer_id].content == content
    # A socket opened now works, on either process.
    for index in (0, 1):
        assert await close_code_of_a_new_socket(pair, index, person, conversation) is None

    for tab in (writer, watcher):
        assert 1011 not in tab.close_codes, tab.close_codes
        await tab.close()
    assert_settled(pair.env["DATABASE_URL"], within=RECOVERY_SECONDS)


async def test_a_process_killed_after_a_redis_restart_still_loses_no_text_shown(
    pair, private_redis, ollama
):
    """Redis restarted empty mid-answer (the answer's log was lost with it), then the
    writing process is killed: the log was started afresh from the whole text, so the
    saved text is still all that the tabs showed; and the log stays short."""
    import redis

    person = Account(pair.url(0))
    conversation = person.new_conversation()
    for host in ollama:
        # Long, and held before its end: however many tokens a loaded machine packs into
        # each frame, the answer is still being written when its process is killed.
        host.default_reply = Reply(
            content=TOKENS * 20, delay=0.02, hold_after=len(TOKENS) * 20 - 1, resume=Event()
        )
    writer = await Tab(pair, 0, person, conversation).open()
    watcher = await Tab(pair, 1, person, conversation).open()
    await send_until_saved(writer, "Count")
    await watcher.wait_for(lambda: watcher.latest() and watcher.latest().content)
    answer_id = watcher.latest().id
    private_redis.stop()
    await asyncio.sleep(0.5)
    private_redis.start()
    # Both tabs come back and follow the answer again; more than BASE_EVERY frames go by.
    for tab in (writer, watcher):
        await tab.wait_for(lambda t=tab: t.answers[answer_id].shown_seq > 250, timeout=15)
    log = redis.Redis.from_url(private_redis.url).xrange(f"chat:answer:{answer_id}")
    assert log and b"b" in log[0][1] and len(log) <= 201  # a base first; compacted
    pair.kill(0)

    shown = watcher.answers[answer_id]
    await watcher.wait_for(lambda: shown.status == "interrupted", timeout=15)
    [(_, status, content, _)] = saved_answers(pair, conversation)
    furthest = max((writer.answers[answer_id], shown), key=lambda answer: answer.shown_seq)
    assert status == "interrupted" and content == furthest.content == shown.content
    assert not redis.Redis.from_url(private_redis.url).exists(f"chat:answer:{answer_id}")
    for tab in (writer, watcher):
        await tab.close()
    assert_settled(pair.env["DATABASE_URL"], within=RECOVERY_SECONDS)
