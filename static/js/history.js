// The page's copy of the train curve stays bounded, as on the server (server/session.py
// thin_history): over the limit, every other point goes; the first and the newest stay.
export const HISTORY_LIMIT = 2000;

// `points` thinned to at most `limit`, as a new array (the same array when nothing goes).
export function thin(points, limit = HISTORY_LIMIT) {
  if (points.length <= limit) return points;
  return points.filter((_, i) => i % 2 === 0 || i === points.length - 1);
}
