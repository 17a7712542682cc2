"""What several processes share through Redis: the line for a busy Ollama and the answers
in flight per host. Against a real Redis on 127.0.0.1:6379 (a private database and key
prefix); two `SharedInFlight` (or `SharedLine`) objects stand for two processes. Without Redis these tests
are skipped on a developer's machine and fail in CI (CI=true)."""

import asyncio
import os
import uuid

import pytest
import redis

from ollama_layer import hosts, in_flight, shared
from relay import waiting_line
from tests.conftest import connect, receive, receive_until, text_of
from tests.fake_ollama import FakeOllama

REDIS_URL = "redis://127.0.0.1:6379/13"  # no other test uses this database


@pytest.fixture(scope="module")
def redis_up():
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start redis-server."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def prefix(redis_up, monkeypatch):
    """Keys of this test only (several test runs may share the Redis)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(shared, "PREFIX", name)
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)


@pytest.fixture
def two_processes(prefix):
    return in_flight.SharedInFlight(REDIS_URL), in_flight.SharedInFlight(REDIS_URL)


@pytest.fixture
def two_lines(prefix):
    return waiting_line.SharedLine(REDIS_URL), waiting_line.SharedLine(REDIS_URL)


# --- answers in flight --------------------------------------------------------------------


async def test_answers_in_flight_are_counted_across_processes(two_processes):
    one, two = two_processes
    await one.begin("gpu1", "answer-1")
    await one.begin("gpu1", "answer-2")
    await two.begin("gpu2", "answer-3")
    assert await two.in_flight(["gpu1", "gpu2", "gpu3"]) == [2, 1, 0]
    assert await one.in_flight(["gpu1", "gpu2", "gpu3"]) == [2, 1, 0]
    await one.end("gpu1", "answer-1")
    await one.end("gpu1", "answer-1")  # twice: still one fewer, never below
    assert await two.in_flight(["gpu1", "gpu2"]) == [1, 1]
    for state in two_processes:
        await state.close()


async def test_a_dead_process_answers_stop_counting_and_a_live_ones_do_not(prefix, monkeypatch):
    monkeypatch.setattr(in_flight, "REFRESH_SECONDS", 0.1)
    live = in_flight.SharedInFlight(REDIS_URL, entry_seconds=0.5)
    dead = in_flight.SharedInFlight(REDIS_URL, entry_seconds=0.5)
    await live.begin("gpu1", "live-answer")
    await dead.begin("gpu1", "dead-answer")
    assert await live.in_flight(["gpu1"]) == [2]
    dead._refresher.cancel()  # the process is gone: nothing refreshes its entries
    await asyncio.sleep(1.0)
    # Never a count that leaks forever; the live answer is still counted.
    assert await live.in_flight(["gpu1"]) == [1]
    await live.end("gpu1", "live-answer")
    assert await live.in_flight(["gpu1"]) == [0]
    await asyncio.sleep(0.2)
    assert live._refresher.done()  # nothing left to refresh
    await live.close()
    await dead.close()


async def test_a_redis_that_is_away_gives_no_numbers_instead_of_failing(prefix):
    away = in_flight.SharedInFlight("redis://127.0.0.1:9/0")
    away_line = waiting_line.SharedLine("redis://127.0.0.1:9/0")
    assert await away.in_flight(["gpu1"]) is None
    assert await away_line.join("answer-1") is None
    await away.begin("gpu1", "answer-1")  # no error: the answer goes on
    await away.end("gpu1", "answer-1")
    await away.close()
    await away_line.close()


# --- the line -----------------------------------------------------------------------------


async def test_places_in_line_are_true_across_processes(two_lines, settings):
    one, two = two_lines
    assert await one.join("a1", only_if_waiting=True) == 0  # nobody waits: go ahead
    assert await one.join("a1") == 1
    assert await two.join("b1") == 2
    assert await one.join("a2") == 3
    assert await two.join("b2", only_if_waiting=True) == 4  # others wait: behind them
    assert await two.join("a1") == 1  # asking again keeps the place
    # The first leaving hands the line on to the next, wherever it waits.
    assert await one.leave("a1") == "b1"
    assert await one.leave("a2") is None  # not first: nobody to wake
    assert [await two.join("b1"), await two.join("b2")] == [1, 2]
    for state in two_lines:
        await state.close()


async def test_a_dead_process_leaves_the_line_by_itself(prefix, settings):
    settings.QUEUE_RETRY_SECONDS = 0.1
    live = waiting_line.SharedLine(REDIS_URL, entry_seconds=0.5)
    dead = waiting_line.SharedLine(REDIS_URL, entry_seconds=0.5)
    assert await dead.join("dead-answer") == 1
    assert await live.join("live-answer") == 2
    await asyncio.sleep(0.3)
    assert await live.join("live-answer") == 2  # refreshed by asking
    await asyncio.sleep(0.4)  # the dead one's entry was never refreshed
    assert await live.join("live-answer") == 1
    await live.close()
    await dead.close()


# --- routing and the socket, with Redis configured ----------------------------------------


@pytest.fixture
def with_redis(prefix, settings):
    settings.REDIS_URL = REDIS_URL  # the channel layer stays in memory: one process here
    hosts._pools.clear()
    yield
    hosts._pools.clear()


@pytest.fixture
def a_b(settings):
    a, b = FakeOllama().start(), FakeOllama().start()
    settings.OLLAMA_URLS = [a.url, b.url]
    yield a, b
    a.stop()
    b.stop()


async def test_without_redis_routing_counts_this_process_answers(a_b, settings):
    a, b = a_b
    settings.REDIS_URL = ""
    hosts._pools.clear()
    pool = hosts.pool()
    await pool.begin(pool.hosts[0], "here-1")
    assert [h.url for h in await pool.candidates("llama3.2")] == [b.url, a.url]
    await pool.end(pool.hosts[0], "here-1")
    assert [h.url for h in await pool.candidates("llama3.2")] == [a.url, b.url]
    hosts._pools.clear()


async def test_routing_avoids_the_host_busy_with_another_process_answers(with_redis, a_b):
    a, b = a_b
    pool = hosts.pool()
    # Both have the model, neither has it loaded: this process alone would pick A.
    assert [h.url for h in await pool.candidates("llama3.2")] == [a.url, b.url]
    other = in_flight.SharedInFlight(REDIS_URL)  # another process, streaming two from A
    await other.begin(in_flight.host_id(a.url), "elsewhere-1")
    await other.begin(in_flight.host_id(a.url), "elsewhere-2")
    assert [h.url for h in await pool.candidates("llama3.2")] == [b.url, a.url]
    await other.end(in_flight.host_id(a.url), "elsewhere-1")
    await other.end(in_flight.host_id(a.url), "elsewhere-2")
    assert [h.url for h in await pool.candidates("llama3.2")] == [a.url, b.url]
    await other.close()


@pytest.mark.django_db(transaction=True)
async def test_an_answer_waits_behind_one_waiting_in_another_process(
    with_redis, fake, user, conversation, settings
):
    settings.QUEUE_RETRY_SECONDS = 0.1
    other = waiting_line.SharedLine(REDIS_URL)  # another process's answer waits already
    assert await other.join("elsewhere") == 1
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    frames = await receive_until(ws, "queued")
    assert frames[-1]["position"] == 2
    # Ollama has room, but the other answer came first: this one does not pass it.
    await asyncio.sleep(0.5)
    assert fake.chat_requests() == []
    assert await other.leave("elsewhere")  # ours is first now
    frames = await receive_until(ws, "done")
    assert frames[-1]["status"] == "complete"
    assert text_of(frames) == "Hello! How can I help you today?"
    assert await other.join("probe", only_if_waiting=True) == 0  # it left the line
    await ws.disconnect()
    await other.close()


@pytest.mark.django_db(transaction=True)
async def test_an_answer_that_never_reaches_the_front_fails_in_words(
    with_redis, fake, user, conversation, settings
):
    settings.QUEUE_RETRY_SECONDS = 0.05
    settings.QUEUE_TIMEOUT_SECONDS = 0.3
    other = waiting_line.SharedLine(REDIS_URL)
    assert await other.join("elsewhere") == 1  # first, and it stays first
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    frames = await receive_until(ws, "done")
    assert [f["position"] for f in frames if f["type"] == "queued"] == [2]
    assert frames[-1]["status"] == "failed"
    assert frames[-1]["error"] == (
        "Ollama is busy right now (every Ollama server stayed busy for 0.3 s). Try again shortly."
    )
    assert fake.chat_requests() == []  # it never passed the one before it
    assert await other.leave("elsewhere") is None  # and it left the line
    await ws.disconnect()
    await other.close()
