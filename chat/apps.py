from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from chat import lifecycle as chat_lifecycle
        from relay import lifecycle

        # The stale-answer sweeper (with Redis, this process's liveness beats too) from the
        # start, rather than when the first socket connects.
        lifecycle.on_start(chat_lifecycle.ensure_sweeper)
