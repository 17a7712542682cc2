"""The chat socket: /ws/conversations/<uuid>/."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from chat import generation, protocol, services
from chat.models import Message

# Close codes (docs/websocket.md): the browser shows a matching message, never data.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _open_conversation(user, conversation_uuid):
    """(conversation, may chat, task channel of its live answer or "")."""
    conversation = services.get_conversation_for_user(user, conversation_uuid)
    services.recover_stale_answers(conversation=conversation)
    live = (
        conversation.messages.filter(status=Message.Status.STREAMING)
        .values_list("task_channel", flat=True)
        .first()
    )
    return conversation, services.can_chat(user), live or ""


@database_sync_to_async
def _live_answer(user, conversation_uuid, message_uuid=None) -> Message | None:
    conversation = services.get_conversation_for_user(user, conversation_uuid)
    # A task that died cannot answer a snapshot request: fall back to the saved text.
    services.recover_stale_answers(conversation=conversation)
    messages = conversation.messages.filter(role=Message.Role.ASSISTANT)
    if message_uuid is None:
        return messages.filter(status=Message.Status.STREAMING).first()
    try:
        return messages.get(uuid=message_uuid)
    except (Message.DoesNotExist, ValueError):
        return None


class ChatConsumer(AsyncWebsocketConsumer):
    """Frames in: `send`, `stop`, `sync`. Frames out: `snapshot`, `message`, `start`,
    `delta`, `done`, `error` (all in docs/websocket.md). Everything that happens in a
    conversation reaches every socket open on it through its group."""

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
            conversation, may_chat, live_channel = await _open_conversation(
                self.user, self.conversation_uuid
            )
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not may_chat:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = generation.group_name(conversation.uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Joined first, then asked: whatever the answer publishes after the snapshot
        # reaches this socket too, and sequence numbers drop what both carry.
        if live_channel:
            await generation.request_snapshot(live_channel, self.channel_name)
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
            elif isinstance(frame, protocol.Stop):
                await self._on_stop()
            elif isinstance(frame, protocol.Sync):
                await self._on_sync(frame)
        except Http404:
            # The conversation was deleted meanwhile, or was never the user's.
            await self.close(code=CLOSE_NOT_FOUND)

    async def _on_send(self, frame: protocol.Send) -> None:
        answer = generation.Generation(self.conversation_uuid, self.channel_layer)
        task_channel = await answer.open()
        try:
            started = await database_sync_to_async(services.start_answer)(
                self.user, self.conversation_uuid, frame.content, frame.model, task_channel
            )
        except services.AnswerRefused as exc:
            answer.discard()
            await self._send_frame(protocol.error_frame(exc.code, exc.message, frame.client_id))
            return
        except BaseException:
            answer.discard()
            raise
        question = protocol.message_payload(started.question)
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "chat.frame",
                "text": generation.encode(
                    {
                        "type": "message",
                        "message": question,
                        "client_id": frame.client_id,
                        # The sidebar shows the title the server chose.
                        "conversation": {"title": started.conversation.title},
                    }
                ),
            },
        )
        answer.start(started.answer, started.history, services.ollama_request(started.conversation))

    async def _on_stop(self) -> None:
        message = await _live_answer(self.user, self.conversation_uuid)
        if message is not None and message.task_channel:
            await generation.request_stop(message.task_channel)

    async def _on_sync(self, frame: protocol.Sync) -> None:
        message = await _live_answer(self.user, self.conversation_uuid, frame.message_id)
        if message is None:
            error = protocol.error_frame("not_found", "No such message.")
            await self._send_frame({**error, "id": frame.message_id})
        elif message.status == Message.Status.STREAMING and message.task_channel:
            await generation.request_snapshot(message.task_channel, self.channel_name)
        else:
            payload = protocol.message_payload(message)
            await self._send_frame({"type": "snapshot", "message": payload})

    # --- group events -----------------------------------------------------------------

    async def chat_frame(self, event):
        # Frames arrive encoded once by their sender, whatever the number of sockets.
        await self.send(text_data=event["text"])

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=generation.encode(frame))
