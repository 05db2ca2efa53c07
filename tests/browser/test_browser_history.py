"""The page keeps a long run's curve bounded, the same way the server does."""
import pytest

from server.engine.history import HISTORY_LIMIT, thin_history

pytestmark = pytest.mark.browser


def test_the_pages_curve_history_is_thinned_like_the_servers(live_server, page):
    page.goto(live_server.url)
    points = list(range(HISTORY_LIMIT + 1))
    thinned_in_page = page.evaluate(
        """async (points) => {
             const { thin, HISTORY_LIMIT } = await import('/static/js/history.js');
             const short = points.slice(0, HISTORY_LIMIT);
             const untouched = thin(short) === short;
             const copy = thin(points);
             return { untouched, thinned: copy !== points, copy, limit: HISTORY_LIMIT };
           }""", points)
    assert thinned_in_page["limit"] == HISTORY_LIMIT
    assert thinned_in_page["untouched"] is True  # nothing to thin: the same array
    assert thinned_in_page["thinned"] is True
    assert thinned_in_page["copy"] == thin_history(points)
    assert thinned_in_page["copy"][0] == 0 and thinned_in_page["copy"][-1] == HISTORY_LIMIT
    assert len(thinned_in_page["copy"]) <= HISTORY_LIMIT
