"""The models socket: /ws/models/, for staff only."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from models_admin import frames, pulls, running, services
from relay.redis_layer import ClosesOnLayerFaults

# Close codes, as on the chat socket (docs/websocket.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _recent_pulls():
    recent = services.recent_pulls()
    return [frames.pull_payload(pull) for pull in recent], [
        pull.task_channel for pull in recent if pull.status == pull.Status.RUNNING
    ]


class ModelsConsumer(ClosesOnLayerFaults, AsyncWebsocketConsumer):
    """Frames out (docs/models-admin.md): `pulls` (the recent pulls, on connect), `pull`
    (one pull's progress or end), `server` (one host's reachability, version and running
    models, with their markup), `local` (a host's local model list changed: fetch it
    again), `error`.
    Nothing is accepted from the browser: actions are POSTs, so they work without
    JavaScript and carry CSRF protection. Closes with 4503 while Redis is away or when it
    lost frames meant for this socket; the page comes back (relay/redis_layer.py)."""

    async def connect(self):
        # Set first: disconnect() runs even when connect() refuses (Channels pitfall 3).
        self.joined = False
        self.server_states: dict[str, str] = {}  # host URL -> digest of the state sent
        user = self.scope.get("user")
        # Accept before refusing so that the close code reaches the browser.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not (user.is_active and user.is_staff):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(frames.GROUP, self.channel_name)
        self.joined = True
        # Joined first, then read: whatever changes after this reaches us as a frame.
        payloads, live = await _recent_pulls()
        await self._send_frame({"type": "pulls", "pulls": payloads})
        for task_channel in live:
            # The task knows more than its last checkpoint (speed, time left).
            await pulls.request_snapshot(task_channel, self.channel_name)
        for state in running.poller().join(self.channel_name):
            self.server_states[state.host.url] = state.digest()
            await self._send_frame(running.server_frame(state))
        # The hosts not read yet: the poller's first reading is on its way to the group.

    async def disconnect(self, code):
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(frames.GROUP, self.channel_name)
            await running.poller().leave(self.channel_name)

    # --- socket events ----------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.joined:
            message = "This socket only sends updates; use the buttons on the page."
            await self._send_frame({"type": "error", "code": "bad_frame", "message": message})

    # --- group events -----------------------------------------------------------------

    async def models_frame(self, event):
        state = event.get("state")
        if state is not None:
            host = event.get("host", "")
            if state == self.server_states.get(host):
                return  # this page shows that state of that host already
            self.server_states[host] = state
        # Frames arrive encoded once by their sender, whatever the number of sockets.
        await self.send(text_data=event["text"])

    async def _send_frame(self, frame: dict) -> None:
        await self.send(text_data=frames.encode(frame))
