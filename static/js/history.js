// The page's copy of the train curve stays bounded, as on the server (server/session.py
// thin_history): over the limit, every other point goes; the first and the newest stay.
export const HISTORY_LIMIT = 2000;

// Thins `points` in place (the curves hold this same array); true when it did.
export function thinInPlace(points, limit = HISTORY_LIMIT) {
  if (points.length <= limit) return false;
  const kept = points.filter((_, i) => i % 2 === 0 || i === points.length - 1);
  points.length = 0;
  points.push(...kept);
  return true;
}
