"""ASGI entry point: `daphne config.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Set up Django (apps, settings) before importing anything that uses models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.access import SocketsOnHoldRefused  # noqa: E402
from config.origin import SameOriginValidator  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from relay.lifecycle import install_process_hooks  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Only the site's own origins (scheme, host and port, as Django's CSRF check):
        # no other page, not even one on another port of this host, can open a socket
        # with our users' cookies (config/origin.py). Accounts on hold (waiting for
        # approval, deactivated): no socket at all.
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(SocketsOnHoldRefused(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# Each app's hooks (registered in its AppConfig.ready()): the chat's stale-answer sweeper
# from the start; on SIGTERM, running answers get a last checkpoint and their final
# state before exit, and pulls end the same way.
install_process_hooks()
