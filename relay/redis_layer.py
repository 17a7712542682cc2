"""The Redis channel layer (several processes): channels_redis's pub/sub layer, made to
come through a Redis restart.

Pub/sub keeps nothing for a subscriber that is away: whatever was published while a
process had lost Redis never reaches its sockets. So every socket of a process that lost
Redis is told so (a `layer.reconnected` message on its own channel, when the connection
breaks and again once redis-py has subscribed it anew) and closes with
CLOSE_RECONNECT (ClosesOnLayerFaults); the page reconnects at once and catches up from
the snapshot (docs/websocket.md). A socket that opens, or does anything needing Redis,
while Redis is away is closed the same way, never with 1011. Answers go on meanwhile and are saved; their deltas are logged again
from a full copy once Redis is back (relay/answer_log.py).

The classes below reach into channels_redis 4.3 (pinned): the shard connection's receive
loop, which in 4.3 dies for good on a timeout and logs a traceback every second while
Redis is away, and its `_subscribed_to` set.
"""

import asyncio
import logging
from collections.abc import Callable

import redis
import redis.asyncio
from channels.exceptions import StopConsumer
from channels_redis import pubsub
from channels_redis.utils import _wrap_close, decode_hosts
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

log = logging.getLogger(__name__)

# The socket missed messages or cannot be served now: the page reconnects at once
# (docs/websocket.md). Like HTTP 503; RFC 6455's own 1012 "service restart" is one that
# Daphne (autobahn) refuses to send.
CLOSE_RECONNECT = 4503
# What a channel gets when messages for it may have been lost (consumers close on it).
RECONNECTED = {"type": "layer.reconnected"}
# What the layer raises while Redis is away (redis-py's errors, sockets, our timeouts).
LAYER_ERRORS = (RedisError, OSError, TimeoutError)

HOST_DEFAULTS = {
    # After a restart the first command on each pooled connection finds it closed: try
    # once more, at once, on a new one before calling Redis away. Without this the first
    # message sent after a restart was saved but its answer never started, and the first
    # stop was lost.
    "retry": AsyncRetry(NoBackoff(), 1),
    # Never wait for the operating system's minutes-long connect timeout.
    "socket_connect_timeout": 2,
    "socket_keepalive": True,
}
RECEIVE_RETRY_SECONDS = 0.25  # while Redis is away, how often the receiver tries again

# Our own connections (answer logs, process liveness), with the same retry and timeouts.
_sync_client: redis.Redis | None = None
_async_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}


def sync_client() -> redis.Redis:
    """A client for REDIS_URL, for synchronous code (the database thread). The layer has
    that one host too (config/settings.py), so the answer logs it writes are there."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(
            settings.REDIS_URL,
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=2,
            socket_timeout=5,
        )
    return _sync_client


def async_client() -> redis.asyncio.Redis:
    """A client for REDIS_URL bound to the running event loop (Channels pitfall 9)."""
    loop = asyncio.get_running_loop()
    if loop not in _async_clients:
        _async_clients[loop] = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, **HOST_DEFAULTS, socket_timeout=5
        )
    return _async_clients[loop]


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer with the restart handling above, and
    `group_send_with` for logging a frame in the same round trip as its publish."""

    def __init__(self, *args, hosts=None, **kwargs):
        hosts = [{**HOST_DEFAULTS, **host} for host in decode_hosts(hosts)]
        super().__init__(*args, hosts=hosts, **kwargs)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return self._layers[loop]

    async def group_send_with(self, group: str, message: dict, commands: Callable) -> list:
        """`group_send(group, message)`, and the commands `commands(pipeline)` queues,
        in one round trip (a pipeline, not a transaction); returns their results (after
        the PUBLISH's). Raises one of LAYER_ERRORS when Redis is away (then any of them
        may or may not have run)."""
        return await self._get_layer().group_send_with(group, message, commands)


class _LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, hosts=None, **kwargs):
        super().__init__(hosts, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]

    async def _subscribe_to_channel(self, channel):
        try:
            await super()._subscribe_to_channel(channel)
        except BaseException:
            self.channels.pop(channel, None)  # Redis is away: no channel after all
            raise

    def tell(self, channels) -> None:
        """Put `RECONNECTED` in the queue of each of `channels` still open here."""
        data = self.channel_layer.serialize(RECONNECTED)
        for channel in channels:
            if channel in self.channels:
                self.channels[channel].put_nowait(data)

    async def group_send_with(self, group: str, message: dict, commands: Callable) -> list:
        group_channel = self._get_group_channel_name(group)
        shard = self._get_shard(group_channel)
        data = self.channel_layer.serialize(message)
        return await shard.publish_with(group_channel, data, commands)


class _Shard(pubsub.RedisSingleShardConnection):
    """One Redis connection set. While Redis is known to be away, publishing and
    unsubscribing fail or finish at once rather than hold the shard's lock for a
    connection attempt each: dozens of sockets closing together would otherwise keep new
    ones waiting for seconds."""

    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        self._hooked = None  # the pub/sub connection that tells us of its reconnects
        self._away = False
        # The channels that have missed messages since the pub/sub connection broke, or
        # None while it is not known to be broken.
        self._deaf: set[str] | None = None

    async def subscribe(self, channel):
        # Tried even while Redis is away: a subscription may be what finds it back.
        try:
            await super().subscribe(channel)
        except LAYER_ERRORS as exc:
            self._lost(exc, but=channel)
            raise
        connection = self._pubsub.connection
        if connection is not None and connection is not self._hooked:
            # redis-py calls its own callback first (it subscribes everything again), then
            # this one; the first connect, before this registration, calls neither.
            connection.register_connect_callback(self._reconnected)
            self._hooked = connection

    def _reconnected(self, connection) -> None:
        # The channels that were there when the connection broke missed what was
        # published since; when the receiver did not see it break (a restart quicker
        # than its retry), every channel may have.
        deaf, self._deaf, self._away = self._deaf, None, False
        log.warning("Redis connection is back; asking this process's sockets to reconnect")
        self.channel_layer.tell(set(self.channel_layer.channels) if deaf is None else deaf)

    async def publish(self, channel, message):
        self._fail_while_away()
        await super().publish(channel, message)

    async def unsubscribe(self, channel):
        if not self._away:
            try:
                await super().unsubscribe(channel)
                return
            except LAYER_ERRORS:
                pass
        # Redis is away: forget the subscription here and in redis-py, which would
        # otherwise renew it when it reconnects.
        self._subscribed_to.discard(channel)
        if self._pubsub is not None:
            for key in (channel, channel.encode()):
                self._pubsub.channels.pop(key, None)

    async def publish_with(self, channel: str, data: bytes, commands: Callable) -> list:
        self._fail_while_away()
        async with self._lock:
            self._ensure_redis()
            pipeline = self._redis.pipeline(transaction=False)
            pipeline.publish(channel, data)
            commands(pipeline)
            return (await pipeline.execute())[1:]

    def _fail_while_away(self) -> None:
        if self._away:
            raise redis.ConnectionError("Redis is away; reconnecting")

    async def _do_receiving(self):
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1
                    )
                    self._receive_message(message)
                elif self._away:
                    # Every subscription ended while Redis was away: nothing reconnects
                    # the pub/sub connection, so see for ourselves when it is back.
                    await self._redis.ping()
                    self._away = False
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                self._lost(exc)
                await asyncio.sleep(RECEIVE_RETRY_SECONDS)

    def _lost(self, exc: Exception, but: str = "") -> None:
        """The connection broke: every channel here (but the one failing to subscribe)
        misses messages from now until it is back."""
        if not self._away:
            log.warning("lost the Redis connection (%s); sockets will reconnect", exc)
            self._away = True
            deaf = set(self.channel_layer.channels) - {but}
            self._deaf = deaf if self._deaf is None else self._deaf | deaf
            self.channel_layer.tell(deaf)


class ClosesOnLayerFaults:
    """Consumer mixin: when the channel layer is away or lost messages for this socket,
    close it with CLOSE_RECONNECT (the page comes back and catches up) rather than fail
    with 1011 or stay open without hearing anything."""

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS as exc:
            if hasattr(self, "channel_name"):
                raise  # after new_channel(), dispatch() handles them
            # Before the handshake (new_channel): accept, so that the code reaches the page.
            log.info("socket refused while Redis is away: %s", exc)
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_RECONNECT})

    async def dispatch(self, message):
        try:
            await super().dispatch(message)
        except LAYER_ERRORS as exc:
            if message["type"] == "websocket.disconnect":
                raise StopConsumer() from exc  # gone anyway; the layer forgets it
            log.info("closing a socket while Redis is away: %s", exc)
            await self.close(code=CLOSE_RECONNECT)

    async def layer_reconnected(self, message):
        await self.close(code=CLOSE_RECONNECT)
