"""Websocket routes of every app."""

from chat.routing import websocket_urlpatterns as chat_routes
from models_admin.routing import websocket_urlpatterns as models_routes

websocket_urlpatterns = [*chat_routes, *models_routes]
