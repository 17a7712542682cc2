from django.urls import path

from chat.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/conversations/<uuid:conversation_uuid>/", ChatConsumer.as_asgi()),
]
