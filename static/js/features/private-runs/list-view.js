// The teacher's list of every private run (whose, its setup, what it holds), with "Put away" on
// each: a view that only renders what it is given (features/private-runs.js asks the server).
import { element } from "../../lib/dom.js";
import { megabytes, plural } from "../../lib/format.js";

const STATUS_WORDS = { running: "training", paused: "paused", idle: "idle", done: "finished" };

// Whose a run is, in words: a short form of its owner id (the `access` event's `viewer`) and where
// its owner connects from now, or that it has no connection left (its place comes back soon).
function whose(run) {
  const who = `viewer ${run.owner.slice(0, 6)}`;
  if (!run.connections) return `${who} · left ${Math.round(run.owner_seen_s)} s ago`;
  const from = run.addresses.length ? ` from ${run.addresses.join(", ")}` : "";
  return `${who}${from} · ${plural(run.connections, "connection")}`;
}

export function createPrivateRunsView({ listElement, summaryElement, onPutAway }) {
  return {
    // listing: {runs, memory_bytes} (runs:private's answer), or null before the first; busy: keys being put away.
    render(listing, busy = new Set()) {
      const runs = listing?.runs ?? [];
      summaryElement.textContent = listing == null ? "Asking the server…"
        : runs.length ? `${plural(runs.length, "private run")}, holding ${megabytes(listing.memory_bytes)} of the engines' memory.`
          : "No private runs now: every place is free.";
      listElement.replaceChildren(...runs.map((run) => {
        const status = run.queue_position != null ? `waiting (${run.queue_position} in line)` : STATUS_WORDS[run.status] ?? run.status;
        const button = element("button", { type: "button", text: "Put away", "data-testid": `put-away-${run.run}`,
          title: "Pause it, record it in the runs list and free its place (its owner gets it back from its record)" });
        button.disabled = busy.has(run.run);
        button.addEventListener("click", () => onPutAway(run.run));
        return element("li", { "data-run": run.run, "data-testid": "private-run-row" },
          element("div", { className: "run-head" },
            element("span", { className: "run-whose", "data-testid": "private-run-whose", text: whose(run) }),
            element("span", { className: `run-status ${run.status}`, text: `${status} · step ${run.step}` })),
          element("div", { className: "run-meta", "data-testid": "private-run-setup",
            text: `${run.setup} · ${megabytes(run.memory_bytes)}${run.watchers ? ` · ${plural(run.watchers, "watcher")}` : ""}` }),
          element("div", { className: "run-actions" }, button));
      }));
    },
  };
}
