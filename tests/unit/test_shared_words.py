"""The words both sides of the line spell are defined once, in server/link/names.py: the web tier
delivers the streams the engine makes, under the same events."""
from __future__ import annotations

from server.engine import live_views
from server.link.names import CHAINED, DEFAULT_STREAMS, STREAMS
from server.web import inside


def test_the_web_tier_delivers_the_streams_the_engine_makes_under_the_same_events():
    assert live_views.STREAMS is STREAMS and live_views.CHAINED is CHAINED
    assert inside.STREAMS is STREAMS and inside.CHAINED is CHAINED
    assert set(DEFAULT_STREAMS) <= set(STREAMS) and CHAINED <= set(STREAMS)
