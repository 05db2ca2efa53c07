// The teacher's view of the private runs: every one in every engine (whose, its setup, its
// memory), and "Put away" to free a place (docs/protocol.md, runs:private and run:put_away).
// Shown to whoever may control the shared run; the store's `privateRuns` holds the last list.
import { createPrivateRunsView } from "./private-runs/list-view.js";

const REFRESH_MS = 10000; // while the card is in sight: owners leave, runs train on

export default function initPrivateRuns({ store, connection, ask, notify, visibility, $ }) {
  const card = document.getElementById("private-runs-card");
  const busy = new Set();
  const view = createPrivateRunsView({
    listElement: $("private-runs"), summaryElement: $("private-runs-summary"),
    onPutAway: async (key) => {
      busy.add(key);
      render();
      const answer = await ask("run:put_away", { run: key });
      busy.delete(key);
      if (answer.ok) notify(`Put away: ${answer.record != null ? `it is run #${answer.record} in Runs` : "it had not trained yet"}.`, "info");
      await refresh();
    },
  });

  const teacher = () => Boolean(store.get().access?.control);
  let asking = false;
  async function refresh() {
    if (!teacher() || asking || store.get().connection !== "connected") return;
    asking = true;
    try {
      const answer = await ask("runs:private");
      if (answer.ok) store.set({ privateRuns: { runs: answer.runs, memory_bytes: answer.memory_bytes } });
    } finally { asking = false; }
  }
  const render = () => view.render(store.get().privateRuns ?? null, busy);

  $("private-runs-refresh").addEventListener("click", () => refresh());
  store.subscribe((state, patch) => {
    if ("access" in patch) {
      card.hidden = !teacher();
      refresh();
    }
    if ("runs" in patch) refresh(); // a run recorded, put away, renamed: the list may have changed
    if ("privateRuns" in patch) render();
  });
  connection.on("run:closed", () => refresh());
  visibility.onChange(card, (seen) => { if (seen) refresh(); });
  setInterval(() => { if (!card.hidden && visibility.isVisible(card)) refresh(); }, REFRESH_MS);
  render();
}
