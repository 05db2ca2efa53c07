"""Feature module (placeholder until the feature lands): registers its events and routes."""
from __future__ import annotations


def init_app(app, socketio, session) -> None:
    """Register this feature's Socket.IO events and HTTP routes."""
