// Whose run the page shows: the shared run, a run of this viewer's own, or someone else's
// watched through its link (?run=<key>). The feature switches the page's run (run:create,
// run:watch) and keeps the store's `run` ({key, owner, control}) and the address in step with
// the server's word (the run, run:unavailable and run:closed events); every panel follows the
// store. docs/protocol.md, "Private runs".
import { createRunBar } from "./whose-run/run-bar.js";
import { runControl } from "../lib/run-control.js";
import {
  SHARED, ownRun, rememberOwnRun, runInAddress, writeRunToAddress,
} from "../lib/viewer.js";

// The page's run before the server has said whose it is: the address's.
export function runFromAddress() {
  const key = runInAddress();
  return { key, owner: key === SHARED ? "shared" : null, control: key === SHARED };
}

const shareAddress = (key) => `${window.location.origin}${window.location.pathname}?run=${encodeURIComponent(key)}`;

export default function initWhoseRun({ store, connection, ask, notify, $ }) {
  let busy = false;

  // The server's word on the page's run (an answer or an event): the store and the address follow.
  function showRun({ run: key, owner, control, state }) {
    writeRunToAddress(key);
    if (owner === "you") rememberOwnRun(key);
    store.set({ run: { key, owner, control: Boolean(control) }, ...(state ? { server: state } : {}) });
  }
  const backToShared = () => showRun({ run: SHARED, owner: "shared", control: true });

  async function switching(work) {
    if (busy) return;
    busy = true;
    render();
    try { await work(); } finally { busy = false; render(); }
  }

  // "Train my own copy": the shared run's setup and weights now, in a run of this viewer's, training.
  const ownCopy = () => switching(async () => {
    const made = await ask("run:create", { weights: "shared" });
    if (!made.ok) return;
    showRun(made);
    notify("This is your own run now: a copy of the shared run's setup and weights. Nobody else's run changes; "
      + "send its link to let others watch.", "info");
    await ask("train:start");
  });

  const watch = (key) => switching(async () => {
    const answer = await ask("run:watch", { run: key });
    if (answer.ok) showRun(answer);
    else if (key === ownRun()) rememberOwnRun(null); // gone: nothing to go back to
  });

  const bar = createRunBar($("run-bar"), {
    onOwnCopy: ownCopy,
    onShared: () => watch(SHARED),
    onMine: () => watch(ownRun()),
    onCopyLink: async (link) => {
      try {
        await navigator.clipboard.writeText(link);
        notify("Run link copied: whoever opens it watches this run (only you can train it).", "info");
      } catch {
        notify(`Copy the run's link from the box: ${link}`, "info");
      }
    },
  });

  function render() {
    const state = store.get();
    const { run, server } = state;
    bar.render({ run, link: run.key === SHARED ? "" : shareAddress(run.key),
      queuePosition: server?.queue_position ?? null, mine: ownRun(), busy, readOnlyReason: runControl(state).reason });
  }

  connection.on("run", showRun); // at connect: the private run the address names
  // Reconnecting: whose run it is (and whether it is still there) is the server's to say again.
  connection.on("disconnect", () => {
    const { run } = store.get();
    if (run.key !== SHARED) store.set({ run: { ...run, owner: null, control: false } });
  });
  connection.on("run:unavailable", ({ reason }) => {
    backToShared();
    notify(`The run of this link cannot be shown: ${reason}.`, "error");
  });
  connection.on("run:closed", ({ run: key, reason, record }) => {
    if (key !== store.get().run.key) return;
    const mine = store.get().run.owner === "you";
    if (mine) rememberOwnRun(null);
    backToShared(); // the server has moved the page; the shared run's state follows
    const kept = record != null ? ` It is run #${record} in Runs, with its weights.` : "";
    notify(`${mine ? "Your run" : "The run you watched"} is closed: ${reason}.${kept} Showing the shared run.`, "info");
  });

  let shown = {};
  store.subscribe((state, patch) => {
    if (!("run" in patch) && !("server" in patch) && !("access" in patch)) return;
    const queuePosition = state.server?.queue_position ?? null;
    if (state.run === shown.run && state.access === shown.access && queuePosition === shown.queuePosition) return; // metrics
    shown = { run: state.run, access: state.access, queuePosition };
    render();
  });
  render();
}
