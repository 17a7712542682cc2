"""The chat socket: /ws/conversations/<uuid>/."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from chat import answers, lifecycle, protocol, services, vision
from chat.models import Message
from relay import live
from relay.redis_layer import LAYER_ERRORS, ClosesOnLayerFaults

log = logging.getLogger(__name__)

# Close codes (docs/websocket.md): the browser shows a matching message, never data.
# 4403 (an account waiting for approval) is sent before any consumer runs: chat.access.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _open_conversation(user, conversation_uuid):
    """(conversation, task channel of its live answer or "")."""
    conversation = services.get_conversation_for_user(user, conversation_uuid)
    services.recover_stale_answers(conversation=conversation)
    live = (
        conversation.messages.filter(status=Message.Status.STREAMING)
        .values_list("task_channel", flat=True)
        .first()
    )
    return conversation, live or ""


@database_sync_to_async
def _streaming_channel(user, conversation_uuid) -> str:
    """The task channel of the answer being written in this conversation, or ""."""
    conversation = services.get_conversation_for_user(user, conversation_uuid)
    found = conversation.messages.filter(status=Message.Status.STREAMING).first()
    return found.task_channel if found else ""


@database_sync_to_async
def _sync_state(user, conversation_uuid, message_uuid) -> tuple[str, dict] | None:
    """(task channel if still streaming, saved payload) of one answer, or None."""
    conversation = services.get_conversation_for_user(user, conversation_uuid)
    # A task that died cannot answer a snapshot request: fall back to the saved text.
    services.recover_stale_answers(conversation=conversation)
    try:
        message = conversation.messages.select_related("parent").get(
            uuid=message_uuid, role=Message.Role.ASSISTANT
        )
    except (Message.DoesNotExist, ValueError):
        return None
    return message.task_channel, protocol.message_payload(message)


class ChatConsumer(ClosesOnLayerFaults, AsyncWebsocketConsumer):
    """Frames in: `send`, `regenerate`, `edit`, `continue`, `stop`, `sync`. Frames out: `snapshot`, `message`, `start`,
    `delta`, `done`, `error` (all in docs/websocket.md). Everything that happens in a
    conversation reaches every socket open on it through its group. While Redis is away,
    or when it lost frames meant for this socket, the socket closes with 4503 and the
    page comes back (relay/redis_layer.py)."""

    async def connect(self):
        # Set first: disconnect() runs even when connect() refuses (Channels pitfall 3).
        self.group = None
        self.user = self.scope.get("user")
        self.conversation_uuid = self.scope["url_route"]["kwargs"]["conversation_uuid"]
        # Accept before refusing so that the close code reaches the browser; a refusal
        # during the handshake would only show as a failed connection.
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            conversation, live_channel = await _open_conversation(self.user, self.conversation_uuid)
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        lifecycle.ensure_sweeper()
        self.group = protocol.group_name(conversation.uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Joined first, then asked: whatever the answer publishes after the snapshot
        # reaches this socket too, and sequence numbers drop what both carry.
        if live_channel:
            await live.request_snapshot(live_channel, self.channel_name)
        else:
            await self._send_frame({"type": "snapshot", "message": None})

    async def disconnect(self, code):
        # The answer goes on without us: only the group membership ends.
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # --- socket events ----------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.group is None:
            return
        try:
            frame = protocol.parse(text_data, bytes_data)
        except protocol.ProtocolError as exc:
            await self._send_frame(protocol.error_frame(exc.code, exc.message, exc.client_id))
            return
        try:
            if isinstance(frame, protocol.Send):
                await self._on_send(frame)
            elif isinstance(frame, protocol.Regenerate):
                await self._on_regenerate(frame)
            elif isinstance(frame, protocol.Edit):
                await self._on_edit(frame)
            elif isinstance(frame, protocol.Continue):
                await self._on_continue(frame)
            elif isinstance(frame, protocol.Stop):
                await self._on_stop()
            elif isinstance(frame, protocol.Sync):
                await self._on_sync(frame)
        except Http404:
            # The conversation was deleted meanwhile, or was never the user's.
            await self.close(code=CLOSE_NOT_FOUND)

    async def _on_send(self, frame: protocol.Send) -> None:
        if frame.images and not await self._model_sees(frame.model, frame.client_id):
            return
        await self._start_answer(
            services.start_answer,
            frame.client_id,
            content=frame.content,
            model=frame.model,
            images=frame.images,
        )

    async def _start_answer(self, service, client_id: str = "", **arguments) -> None:
        """Run one of the services that start an answer, then the relay for it."""
        answer = answers.new_answer(
            self.conversation_uuid, self.channel_layer, staff=self.user.is_staff
        )
        task_channel = await answer.open()
        try:
            started = await database_sync_to_async(service)(
                self.user, self.conversation_uuid, task_channel=task_channel, **arguments
            )
        except services.AnswerRefused as exc:
            answer.discard()
            await self._send_frame(protocol.error_frame(exc.code, exc.message, client_id))
            return
        except BaseException:
            answer.discard()
            raise
        # The rows are saved: from here the answer starts, or ends `failed` at once with
        # words, never left `streaming` (which would keep the conversation busy).
        try:
            if started.question_payload is not None:
                await self._publish_quietly(
                    {
                        "type": "message",
                        "message": started.question_payload,
                        "client_id": client_id,
                        # The sidebar shows the title the server chose.
                        "conversation": {"title": started.conversation.title},
                    }
                )
        finally:
            # Even when this socket is being torn down: the answer belongs to no socket.
            try:
                answers.start(answer, started)
            except Exception:
                log.exception("answer %s could not start", started.answer.uuid)
                await asyncio.shield(answers.fail_unstarted(answer, started))

    async def _model_sees(self, model: str, client_id: str) -> bool:
        """Refuse images for a model without the vision capability, before sending."""
        capabilities = await vision.capabilities(model)
        if capabilities is None or "vision" in capabilities:
            return True  # unknown (Ollama down, model missing): the answer will say why
        await self._send_frame(
            protocol.error_frame(
                "no_vision",
                f"“{model}” can't see images. Pick a model with vision (such as llava) "
                "or remove the images.",
                client_id,
            )
        )
        return False

    async def _on_regenerate(self, frame: protocol.Regenerate) -> None:
        await self._start_answer(
            services.regenerate_answer, message_uuid=frame.message_id, model=frame.model
        )

    async def _on_edit(self, frame: protocol.Edit) -> None:
        await self._start_answer(
            services.edit_question,
            frame.client_id,
            message_uuid=frame.message_id,
            content=frame.content,
            model=frame.model,
        )

    async def _on_continue(self, frame: protocol.Continue) -> None:
        await self._start_answer(services.continue_answer, message_uuid=frame.message_id)

    async def _on_stop(self) -> None:
        task_channel = await _streaming_channel(self.user, self.conversation_uuid)
        if task_channel:
            await live.request_stop(task_channel)

    async def _on_sync(self, frame: protocol.Sync) -> None:
        state = await _sync_state(self.user, self.conversation_uuid, frame.message_id)
        if state is None:
            error = protocol.error_frame("not_found", "No such message.")
            await self._send_frame({**error, "id": frame.message_id})
        elif state[0]:  # still streaming: the task has the live text
            await live.request_snapshot(state[0], self.channel_name)
        else:
            await self._send_frame({"type": "snapshot", "message": state[1]})

    # --- group events -----------------------------------------------------------------

    async def dispatch(self, message):
        # The frames of an answer go straight to the socket. Channels' own dispatch first
        # closes stale database connections through its single database thread, for every
        # message: at hundreds of streams each frame then waits behind the database work
        # of answers being started (docs/benchmarks.md). Frames touch no database.
        if message["type"] == "chat.frame":
            await self.send(text_data=message["text"])
        else:
            await super().dispatch(message)

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=live.encode(frame))

    async def _publish_quietly(self, frame: dict) -> None:
        """To every socket on this conversation, this one included. While Redis is away
        the frame is lost: the sockets reconnect when it is back and catch up."""
        try:
            await self.channel_layer.group_send(
                self.group, {"type": "chat.frame", "text": live.encode(frame)}
            )
        except LAYER_ERRORS as exc:
            log.warning("could not publish to %s: %s", self.group, exc)
