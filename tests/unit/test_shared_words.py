"""The words both sides of the line spell are defined once, in server/link/names.py: the web tier
delivers the streams the engine makes, under the same events; the page spells a run's statuses as
the server says them."""
from __future__ import annotations

import re

from server.engine import live_views
from server.link.names import CHAINED, DEFAULT_STREAMS, STATUSES, STREAMS
from server.web import inside
from tests.support.helpers import REPO


def test_the_web_tier_delivers_the_streams_the_engine_makes_under_the_same_events():
    assert live_views.STREAMS is STREAMS and live_views.CHAINED is CHAINED
    assert inside.STREAMS is STREAMS and inside.CHAINED is CHAINED
    assert set(DEFAULT_STREAMS) <= set(STREAMS) and CHAINED <= set(STREAMS)


def test_the_page_spells_a_runs_statuses_as_the_server_says_them():
    """static/js/lib/status.js is the page's one spelling of STATUSES: the same words, no more."""
    source = (REPO / "static/js/lib/status.js").read_text()
    spelled = re.search(r"Object\.freeze\(\{(.*?)\}\)", source, re.S).group(1)
    pairs = dict(re.findall(r'(\w+):\s*"(\w+)"', spelled))
    assert all(key == word for key, word in pairs.items())
    assert tuple(pairs.values()) == STATUSES
