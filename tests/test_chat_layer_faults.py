"""The chat socket when its channel layer fails as the Redis one does while Redis is away
(a restart, a network cut): each socket event closes the socket with 4503, which the
page answers by coming back at once (docs/websocket.md), never with 1011; nothing is
saved that could not be answered; a socket told that it missed frames closes the same
way. The layer itself, on a real Redis, is in tests/scale/test_redis_restart.py."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.layers import InMemoryChannelLayer
from relay.redis_layer import CLOSE_RECONNECT, RECONNECTED
from tests.conftest import connect, receive, receive_until
from tests.fake_ollama import Reply

pytestmark = pytest.mark.django_db(transaction=True)


class RedisAway(InMemoryChannelLayer):
    """The in-memory layer, failing as redis-py does while `away` (and for group frames
    of the types in `lost`)."""

    away = False
    lost: tuple[str, ...] = ()

    def _check(self):
        if RedisAway.away:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    async def new_channel(self, prefix="specific."):
        self._check()
        return await super().new_channel(prefix)

    async def send(self, channel, message):
        self._check()
        await super().send(channel, message)

    async def group_add(self, group, channel):
        self._check()
        await super().group_add(group, channel)

    async def group_send(self, group, message):
        self._check()
        if any(f'"type":"{kind}"' in message.get("text", "") for kind in RedisAway.lost):
            raise RedisConnectionError("Connection closed by server.")
        await super().group_send(group, message)


@pytest.fixture(autouse=True)
def layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.RedisAway"}}
    channel_layers.backends.clear()
    RedisAway.away, RedisAway.lost = False, ()
    yield
    RedisAway.away, RedisAway.lost = False, ()
    channel_layers.backends.clear()


async def closed_with(ws) -> int:
    output = await ws.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


@database_sync_to_async
def messages(conversation):
    return list(conversation.messages.values_list("role", "status"))


async def test_a_socket_opened_while_redis_is_away_is_closed_with_4503(user, conversation):
    RedisAway.away = True
    ws = await connect(conversation.uuid, user)  # accepted, so that the code arrives
    assert await closed_with(ws) == CLOSE_RECONNECT


async def test_a_message_sent_while_redis_is_away_closes_the_socket_and_saves_nothing(
    fake, user, conversation
):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    RedisAway.away = True
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    assert await closed_with(ws) == CLOSE_RECONNECT
    # Nothing saved: the page still has the text and sends it once it is back.
    assert await messages(conversation) == []
    assert fake.chat_requests() == []


@pytest.mark.parametrize("frame", [{"type": "stop"}, {"type": "sync", "id": "x"}])
async def test_stop_and_sync_while_redis_is_away_close_the_socket(fake, user, conversation, frame):
    fake.push_reply(Reply(content=[f" t{i}" for i in range(100)], delay=0.02))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    start = await receive_until(ws, "start")
    RedisAway.away = True
    if frame["type"] == "sync":
        frame = {**frame, "id": start[-1]["message"]["id"]}
    await ws.send_json_to(frame)
    assert await closed_with(ws) == CLOSE_RECONNECT
    RedisAway.away = False
    # The answer went on meanwhile, belonging to no socket, and is saved whole.
    again = await connect(conversation.uuid, user)
    frames = await receive_until(again, "done")
    assert frames[-1]["status"] == "complete"
    assert await messages(conversation) == [("user", "complete"), ("assistant", "complete")]


async def test_an_answer_starts_even_when_its_question_could_not_be_shown(fake, user, conversation):
    """Redis went away between saving the question and showing it: the answer still
    starts and is saved; the tabs catch up when they reconnect."""
    fake.push_reply(Reply(content=" Fine.", first_delay=0.3))
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    RedisAway.lost = ("message",)
    await ws.send_json_to({"type": "send", "content": "Hi", "model": "llama3.2"})
    frames = await receive_until(ws, "done")
    assert frames[0]["type"] == "start" and frames[-1]["status"] == "complete"
    assert await messages(conversation) == [("user", "complete"), ("assistant", "complete")]


async def test_a_socket_told_it_missed_frames_closes_with_4503(user, conversation):
    ws = await connect(conversation.uuid, user)
    await receive(ws)
    layer = get_channel_layer()
    # As relay.redis_layer does for every socket of a process once Redis is back.
    for channel in list(layer.channels):
        await layer.send(channel, dict(RECONNECTED))
    assert await closed_with(ws) == CLOSE_RECONNECT
