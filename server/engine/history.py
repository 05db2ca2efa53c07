"""What a run remembers of itself over time: the curve points (evenly thinned as it grows) and
its speed. Plain Python; the page's twin of the thinning is static/js/history.js (pinned by
tests/browser/test_browser_history.py)."""
from __future__ import annotations

from typing import Optional

HISTORY_LIMIT = 2000  # curve points kept; older points are thinned, the first is always kept


def thin_history(points: list, limit: Optional[int] = None) -> list:
    """Over the limit, keep every other point of the whole run: the first and the newest stay.
    (Thinning only the older half, again at every overflow, left a long run's start as a
    handful of points.) The history then records points half as often, so the run stays
    evenly covered."""
    if len(points) <= (HISTORY_LIMIT if limit is None else limit):
        return points
    kept = points[::2]
    if len(points) % 2 == 0:
        kept.append(points[-1])
    return kept


class CurveHistory:
    """The curve points of one run: every stride-th point is kept, and always the newest (a
    late joiner sees the curve up to now); when more than `limit` are held the whole run is
    thinned and the stride doubles."""

    def __init__(self, limit: Optional[int] = None):
        self.limit = limit
        self.points: list[dict] = []
        self._stride = 1
        self._count = 0
        self._tail_extra = False  # the newest point is shown but not due to be kept

    def add(self, point: dict) -> None:
        if self._tail_extra:
            self.points[-1] = point
        else:
            self.points.append(point)
        self._count += 1
        self._tail_extra = self._count % self._stride != 0
        if len(self.points) > (HISTORY_LIMIT if self.limit is None else self.limit):
            self.points = thin_history(self.points, self.limit)
            self._stride *= 2

    def extend_restored(self, points: list[dict]) -> None:
        """Start from a recorded run's curve (a run resumed after an engine restart)."""
        for point in points:
            self.add(point)

    def __len__(self) -> int:
        return len(self.points)

    def copy(self) -> list[dict]:
        return list(self.points)
