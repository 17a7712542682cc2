"""A chat answer on the relay: what the chat adds on top of `relay.engine.Answer`.

The relay writes any answer into any row; here the row is an assistant `Message`
(`MessageTarget`: its checkpoints and final state through `chat.services`, the notes
under it, a title for a new conversation once it is complete), the stream is /api/chat
with the conversation's history (built by `chat.services`), and the group is the
conversation's (`chat.protocol.group_name`).
"""

from channels.db import database_sync_to_async

from chat import protocol, services, titles
from chat.models import Message
from relay.engine import Answer
from relay.streams import ChatStream
from relay.target import Status


class MessageTarget:
    """`relay.target.Target` for an assistant message being written."""

    def __init__(self, message: Message):
        self.message = message
        self.id = str(message.uuid)
        self.model = message.model
        self.content = message.content
        self.thinking = message.thinking

    def fields(self) -> dict:
        return {"id": self.id, "role": Message.Role.ASSISTANT, "model": self.model}

    async def checkpoint(self, content: str, thinking: str) -> bool:
        return await database_sync_to_async(services.checkpoint_answer)(
            self.message.id, content, thinking
        )

    async def finish(
        self, status: Status, content: str, thinking: str, stats: dict, error: str
    ) -> None:
        await database_sync_to_async(services.finish_answer)(
            self.message.id, status, content, thinking, stats, error
        )

    def notes(self, stats: dict) -> list[str]:
        return protocol.answer_notes(stats)

    def finished(self, status: Status) -> None:
        if status == Status.COMPLETE:
            titles.after_answer(self.message)  # in the background; never blocks


def new_answer(conversation_uuid, layer=None, *, staff: bool = False) -> Answer:
    """An answer in the conversation, to `open()` before its rows are saved. `staff`: the
    conversation's owner is staff, so errors may name the Ollama host."""
    return Answer(protocol.group_name(conversation_uuid), layer, staff=staff)


def start(answer: Answer, started: services.StartedAnswer) -> None:
    """Begin writing the answer whose rows `started` saved, from the conversation's
    history, with its settings (model options, keep_alive, think, format)."""
    message = started.answer
    stream = ChatStream(
        message.model, started.history, services.ollama_request(started.conversation)
    )
    answer.start(MessageTarget(message), stream, started.answer_extra)


async def fail_unstarted(answer: Answer, started: services.StartedAnswer) -> None:
    """The rows `started` saved, but `start` failed: the answer ends `failed` at once,
    saying so, rather than stay `streaming` (its conversation busy)."""
    await answer.fail_unstarted(MessageTarget(started.answer))
