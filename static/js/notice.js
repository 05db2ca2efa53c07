// The page's notice: one message at a time, floating at the bottom of the window so it is seen
// wherever the person is on the page. kind: "info", "error", or "connection" (goes by itself
// when the connection is back). actions: [{label, testid, run}] buttons beside the words.
import { byTestId, element } from "./lib/dom.js";

export function createNotice(root) {
  const text = byTestId("notice-text", root);
  const actions = root.querySelector('[data-role="actions"]');
  let timer = null;
  const notice = {
    show(words, kind = "info", { actions: buttons = [], seconds = null } = {}) {
      clearTimeout(timer);
      text.textContent = words || "";
      root.dataset.kind = kind;
      root.hidden = !words;
      actions.replaceChildren(...buttons.map(({ label, testid, run }) => {
        const button = element("button", { type: "button", "data-testid": testid, text: label });
        button.addEventListener("click", () => { notice.clear(); run(); });
        return button;
      }));
      if (words && seconds) timer = setTimeout(() => notice.clear(words), seconds * 1000);
    },
    // Clears the notice; with `words`, only if it still says them.
    clear(words) {
      if (words != null && text.textContent !== words) return;
      notice.show("");
    },
    get kind() { return root.hidden ? null : root.dataset.kind; },
    get text() { return root.hidden ? "" : text.textContent; },
  };
  byTestId("notice-close", root).addEventListener("click", () => notice.clear());
  return notice;
}
