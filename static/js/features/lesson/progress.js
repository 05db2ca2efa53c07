// The learner's progress through the lesson, kept in this browser (localStorage) so it
// survives a reload: the step on screen and, per step, what the learner answered and whether
// the network agreed. Storage refused (privacy mode): progress lasts until the tab closes.
const STORAGE_KEY = "playground.lesson.v1";

export function loadProgress() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (saved && typeof saved === "object" && saved.answers && typeof saved.answers === "object") {
      return { current: Number.isInteger(saved.current) ? saved.current : 1, answers: saved.answers };
    }
  } catch {
    // unreadable or refused: start afresh
  }
  return { current: 1, answers: {} };
}

export function saveProgress(progress) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(progress));
  } catch {
    // refused: kept in memory only
  }
}

// Did the learner's answer agree with the network's? Choices by index, numbers within the
// step's tolerance.
export function agrees(given, reveal) {
  if (given.choice != null) return given.choice === reveal.correct;
  const tolerance = Math.max(reveal.tolerance ?? 0, Math.abs(reveal.value) * 1e-9);
  return Math.abs(given.number - reveal.value) <= tolerance;
}

// ?lesson=N (counting from 1), or null.
export function linkedStep(search = window.location.search, count = Infinity) {
  const value = new URLSearchParams(search).get("lesson");
  if (value == null) return null;
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= count ? n : null;
}

export function writeStepToUrl(n) {
  const url = new URL(window.location.href);
  if (n == null) url.searchParams.delete("lesson"); else url.searchParams.set("lesson", String(n));
  if (url.href !== window.location.href) window.history.replaceState(window.history.state, "", url.href);
}
