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

export default function initWhoseRun({ store, connection, request, ask, notify, $ }) {
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

  // A run of this viewer's put away while it was gone (its owner left for the grace period, or
  // the teacher put it away) comes back from its record: the same key, weights, curve and step.
  async function getBack(key) {
    let record;
    try {
      const list = await request("runs:list");
      record = list.ok ? list.runs.find((run) => run.run_key === key) : null;
    } catch { record = null; }
    if (!record) return false;
    const back = await ask("run:create", { record: record.id });
    if (!back.ok) return false;
    showRun(back);
    notify(`Your run is back from its record (run #${record.id}), paused at step ${back.state.step}: `
      + "press Resume to go on.", "info");
    return true;
  }

  const watch = (key) => switching(async () => {
    const mine = key === ownRun();
    const answer = mine ? await request("run:watch", { run: key }).catch((err) => ({ ok: false, error: err.message }))
      : await ask("run:watch", { run: key });
    if (answer.ok) showRun(answer);
    else if (mine && !(await getBack(key))) {
      rememberOwnRun(null); // gone: nothing to go back to
      notify(answer.error, "error");
    }
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
  connection.on("run:unavailable", async ({ reason }) => {
    const key = runInAddress();
    backToShared();
    if (key !== SHARED && key === ownRun() && await getBack(key)) return;
    notify(`The run of this link cannot be shown: ${reason}.`, "error");
  });
  connection.on("run:closed", ({ run: key, reason, record }) => {
    if (key !== store.get().run.key) return;
    const mine = store.get().run.owner === "you";
    if (mine && record == null) rememberOwnRun(null); // nothing kept: nothing to get back
    backToShared(); // the server has moved the page; the shared run's state follows
    const back = mine ? " \"Back to my own run\" gets it back." : "";
    const kept = record != null ? ` It is run #${record} in Runs, with its weights.${back}` : "";
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
