// What is in view: nothing on the page renders out of view. A view hands its draw to
// whenVisible(); it runs now if the view is on screen (or within MARGIN of it), else when the
// view scrolls into sight, with the latest state (a newer draw replaces a waiting one).
const MARGIN = "150px";

// A view drawn late can grow above the keyboard focus and push it out of the window: bring the
// focused element back into sight when that happens (only when something has the focus).
function keepingFocus(draw) {
  const focused = document.activeElement;
  if (!focused || focused === document.body) return draw();
  const before = focused.getBoundingClientRect();
  const result = draw();
  const after = focused.getBoundingClientRect();
  const wasInView = before.bottom > 0 && before.top < innerHeight;
  const isInView = after.bottom > 0 && after.top < innerHeight;
  if (wasInView && !isInView) focused.scrollIntoView({ block: "nearest" });
  return result;
}

const MARGIN_PX = 150; // MARGIN, for the box check

function nearWindow(element) {
  const box = element.getBoundingClientRect();
  return box.bottom > -MARGIN_PX && box.top < innerHeight + MARGIN_PX;
}

export function createVisibility() {
  const visible = new Set();
  const waiting = new Map(); // element -> the latest draw that waits for it
  const listeners = new Map(); // element -> [onChange(visible)]
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const target = entry.target;
      const was = visible.has(target);
      if (entry.isIntersecting) visible.add(target); else visible.delete(target);
      if (was === entry.isIntersecting) continue;
      for (const listener of listeners.get(target) || []) listener(entry.isIntersecting);
      const draw = entry.isIntersecting && waiting.get(target);
      if (draw) { waiting.delete(target); keepingFocus(draw); }
    }
  }, { rootMargin: `${MARGIN} 0px` });
  const watched = new Set();
  function watch(element) {
    if (!watched.has(element)) { watched.add(element); observer.observe(element); }
  }
  return {
    watch,
    isVisible: (element) => visible.has(element),
    // onChange(visible) whenever the element comes into view or leaves it.
    onChange(element, onChange) {
      watch(element);
      if (!listeners.has(element)) listeners.set(element, []);
      listeners.get(element).push(onChange);
    },
    whenVisible(element, draw) {
      watch(element);
      // The observer hears of a scroll a frame late: the element's box now decides too.
      if (visible.has(element) && nearWindow(element)) { waiting.delete(element); keepingFocus(draw); }
      else waiting.set(element, draw);
    },
  };
}
