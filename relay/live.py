"""The answers live in this process, and how anyone reaches one: the registry, group
names, frame encoding, and the messages a socket sends to an answer's task channel.

In a module of its own, with no import of the engine, so that whoever recovers or stops
answers (`chat.services`) and the engine (`relay.engine`) do not import each other.
"""

import json

from channels.layers import InMemoryChannelLayer, get_channel_layer

# Live answers of this process by task channel (`relay.engine.Answer`). Holding them here
# also keeps their tasks referenced, so asyncio cannot collect one mid-answer (Channels
# pitfall 2).
running: dict = {}

# What a task channel receives (the type names predate the relay package: messages in
# flight across a rolling restart keep working).
STOP = "generation.stop"
SNAPSHOT = "generation.snapshot"
WAKE = "generation.wake"


def live_channels() -> list[str]:
    """The task channels of this process's live answers."""
    return list(running)


def answers() -> list:
    """This process's live answers (`relay.engine.Answer`)."""
    return list(running.values())


def single_process() -> bool:
    """With the in-memory layer no other process can share answers with this one."""
    return isinstance(get_channel_layer(), InMemoryChannelLayer)


def group_name(surface: str, key) -> str:
    """The channel group of one thing that streams (`surface` names its kind, `key` is
    its UUID): every socket open on it joins it, every frame of its answers goes to it.
    ("conversation", UUID('8f…')) -> "conversation.8f…"."""
    return f"{surface}.{key.hex}"


def encode(frame: dict) -> str:
    """A frame as the text sent on the socket: compact JSON, encoded once per frame
    whatever the number of sockets."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


async def request_stop(task_channel: str) -> None:
    """Stop the answer listening on `task_channel`, in whichever process it runs."""
    await get_channel_layer().send(task_channel, {"type": STOP})


async def request_snapshot(task_channel: str, reply_channel: str) -> None:
    """Ask the answer on `task_channel` to send a `snapshot` frame to `reply_channel`."""
    await get_channel_layer().send(task_channel, {"type": SNAPSHOT, "reply_channel": reply_channel})


async def wake(task_channel: str, layer=None) -> None:
    """Tell the answer on `task_channel` that it became first in the waiting line."""
    await (layer or get_channel_layer()).send(task_channel, {"type": WAKE})
