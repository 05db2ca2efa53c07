// Ask, then show: while a lesson step (or a class poll on it) waits for an answer, the views
// that hold that answer are veiled: their content hidden (not rendered, so no text of theirs is
// on screen), a plain note in their place saying why and until when. A view: it veils exactly
// the views it is given.
const VEILED = "lesson-veiled";

export function createVeil(find) {
  let veiled = new Map(); // data-testid -> element

  return {
    // testids: the views to veil now; why: the note shown in their place.
    show(testids, why) {
      const next = new Map();
      for (const testid of testids) {
        const view = find(testid);
        if (!view) continue;
        next.set(testid, view);
        view.classList.add(VEILED);
        view.dataset.veil = why;
        view.setAttribute("aria-hidden", "true"); // screen readers too: the answer is not read out
      }
      for (const [testid, view] of veiled) {
        if (next.has(testid)) continue;
        view.classList.remove(VEILED);
        delete view.dataset.veil;
        view.removeAttribute("aria-hidden");
      }
      veiled = next;
    },
    has: (testid) => veiled.has(testid),
  };
}
