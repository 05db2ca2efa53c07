// The run bar: whose run the page shows, its link to share, the buttons to get a run of one's
// own or go back to the shared run, why the controls are off, and a private run's place in the
// queue. A view: it renders what it is given and hands clicks back.
import { byTestId, element } from "../../lib/dom.js";
import { ordinal } from "../../lib/format.js";
import { SHARED } from "../../lib/viewer.js";

export const OWNER_WORDS = {
  shared: "The shared run",
  you: "Your own run",
  someone: "Someone's run (watching, read-only)",
};

// The top bar's word for a private run: on a phone the run bar is a scroll away.
const BADGE_WORDS = { you: "your own run", someone: "watching someone's run" };

export function createRunBar(root, { onOwnCopy, onShared, onMine, onCopyLink }) {
  const part = (testid) => byTestId(testid, root);
  const badge = element("span", { className: "run-badge", "data-testid": "run-badge", role: "status" });
  badge.hidden = true;
  document.querySelector(".topbar-badges")?.prepend(badge);
  const owner = part("run-owner");
  const share = part("run-share");
  const link = part("run-link");
  const readOnly = part("read-only-reason");
  const queue = part("queue-position");
  const buttons = { own: part("private-run"), shared: part("shared-run"), mine: part("my-run") };
  buttons.own.addEventListener("click", () => onOwnCopy());
  buttons.shared.addEventListener("click", () => onShared());
  buttons.mine.addEventListener("click", () => onMine());
  part("copy-run-link").addEventListener("click", () => onCopyLink(link.value));

  return {
    // run: {key, owner}; link: the run's address to share; queuePosition: null or 1, 2, ...;
    // mine: this viewer's own run (its key) when the page is elsewhere; busy: a switch under way;
    // readOnlyReason: why the controls are off, in words ("" when they are on).
    render({ run, link: address, queuePosition, mine, busy, readOnlyReason }) {
      root.dataset.owner = run.owner ?? "unknown";
      owner.textContent = OWNER_WORDS[run.owner] ?? "Opening the run of this link…";
      badge.hidden = !BADGE_WORDS[run.owner];
      badge.textContent = BADGE_WORDS[run.owner] ?? "";
      badge.dataset.owner = run.owner ?? "";
      share.hidden = run.key === SHARED;
      link.value = run.key === SHARED ? "" : address;
      readOnly.hidden = !readOnlyReason;
      readOnly.textContent = readOnlyReason;
      queue.hidden = queuePosition == null;
      queue.textContent = queuePosition == null ? "" : `Waiting for a free place: ${ordinal(queuePosition)} in line`;
      buttons.own.hidden = run.owner === "you";
      buttons.shared.hidden = run.key === SHARED;
      buttons.mine.hidden = !mine || mine === run.key;
      for (const button of Object.values(buttons)) button.disabled = busy;
    },
  };
}
