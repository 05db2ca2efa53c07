// The runs list: every recorded run with its setup and scores; overlay runs on the learning
// curves, rename, delete, restore a run's weights, download them. A view of the store's `runs`;
// the overlays it picks go back through onOverlays (the store's `overlays`, drawn by charts.js).
import { element } from "../../lib/dom.js";
import { percent } from "../../lib/format.js";
import { OVERLAY_COLORS } from "../../lib/plot.js";
import { SHARED } from "../../lib/viewer.js";
import { STATUS } from "../../lib/status.js";
import { downloadFile } from "../../lib/http.js";

const STATUS_WORDS = {
  running: "running", paused: "paused", done: "finished", stopped: "stopped by a reset",
  interrupted: "interrupted (server stopped)", idle: "idle",
};

// The record of the run the page is on (marked live, on the curves already): the list's live_run
// is the shared run's; a private run's is its newest record (records carry their run's key).
const UNFINISHED = new Set([STATUS.running, STATUS.paused, STATUS.idle]);
export function liveRecordOf(payload, run) {
  if (!run || run.key === SHARED) return payload.live_run;
  const own = payload.runs.filter((record) => record.run_key === run.key && UNFINISHED.has(record.status));
  return own.length ? Math.max(...own.map((record) => record.id)) : null;
}

// pageRun(): the run the page is on ({key, owner}): Restore restarts that one, and is off where
// the page may not control it (pageControl(): {allowed, reason}, lib/run-control.js).
// viewer(): the server's word on this viewer ({control, viewer}, features/access.js): whose each
// record is, and whether it may rename or delete it (its own runs', or any with control).
export function createRunsView({ listElement, ask, notify, onOverlays, pageRun = () => ({ key: SHARED, owner: "shared" }),
  pageControl = () => ({ allowed: true, reason: "" }), viewer = () => null }) {
  let runs = [];
  let liveRun = null;
  const overlaid = new Map(); // run id -> colour
  const curves = new Map(); // run id -> {history, epochs}
  let deferred = null; // a list that arrived while a name was being edited

  // A legend label: a name someone gave, else only what sets this run apart from the other
  // overlaid runs ("#1 logits" vs "#2 softmax"), so the legend stays one short line.
  function label(run, others) {
    const MAX = 32;
    let text = run.name;
    if (run.name === run.setup && others.length) {
      const parts = run.setup.split(" · ");
      text = parts.filter((part) => others.some((other) => !other.setup.split(" · ").includes(part))).join(" · ");
    }
    return text ? `#${run.id} ${text.length > MAX ? `${text.slice(0, MAX - 1)}…` : text}` : `#${run.id}`;
  }

  function publishOverlays() {
    const shownRuns = [...overlaid.keys()].map((id) => runs.find((r) => r.id === id)).filter((r) => r && curves.has(r.id));
    const live = runs.find((r) => r.id === liveRun); // the run on the curves already
    onOverlays(shownRuns.map((run) => {
      const others = shownRuns.concat(live ? [live] : []).filter((other) => other !== run);
      const data = curves.get(run.id);
      return { id: run.id, label: label(run, others), color: overlaid.get(run.id), history: data.history, epochs: data.epochs };
    }));
  }

  async function overlay(id, on) {
    if (!on) {
      overlaid.delete(id);
      publishOverlays();
      render();
      return;
    }
    const used = new Set(overlaid.values());
    overlaid.set(id, OVERLAY_COLORS.find((c) => !used.has(c)) || OVERLAY_COLORS[overlaid.size % OVERLAY_COLORS.length]);
    const answer = await ask("runs:get", { id });
    if (!answer.ok) { overlaid.delete(id); render(); return; }
    curves.set(id, { history: answer.run.history, epochs: answer.run.epochs });
    publishOverlays();
    render();
  }

  function button(text, testid, handler, title) {
    const node = element("button", { type: "button", "data-testid": testid, title, text });
    node.addEventListener("click", handler);
    return node;
  }

  // Whose a record is, in words, and whether this viewer may rename or delete it (the server
  // checks the same: web/evaluate.py, engine runs_delete).
  function whoseRecord(run) {
    const me = viewer();
    const mine = run.owner != null && me?.viewer === run.owner;
    const words = run.owner == null ? "the shared run" : mine ? "yours" : "someone's";
    const mayChange = !me || me.control || mine;
    const why = run.owner == null ? "Only the teacher can rename or delete the shared run's records"
      : "Only its owner (or the teacher) can rename or delete this run";
    return { words, kind: run.owner == null ? "shared" : mine ? "you" : "someone", mayChange, why };
  }

  function runItem(run) {
    const isLive = run.id === liveRun;
    const whose = whoseRecord(run);
    const tick = element("input", { type: "checkbox", "data-testid": `run-overlay-${run.id}`,
      title: isLive ? "The run under way is on the curves already" : "Draw this run over the learning curves",
      "aria-label": `overlay run #${run.id} on the learning curves` });
    tick.checked = overlaid.has(run.id);
    tick.disabled = isLive;
    tick.addEventListener("change", () => overlay(run.id, tick.checked));
    const swatch = element("span", { className: "swatch", "aria-hidden": "true" });
    if (overlaid.has(run.id)) swatch.style.background = overlaid.get(run.id);

    const name = element("input", { className: "run-name", value: run.name, "data-testid": `run-name-${run.id}`,
      "aria-label": `name of run #${run.id}` });
    name.readOnly = !whose.mayChange;
    if (!whose.mayChange) name.title = whose.why;
    name.maxLength = 80;
    name.addEventListener("keydown", (event) => { if (event.key === "Enter") name.blur(); });
    name.addEventListener("change", async () => {
      const answer = await ask("runs:rename", { id: run.id, name: name.value });
      if (!answer.ok) name.value = run.name;
    });
    name.addEventListener("blur", () => { if (deferred) { const next = deferred; deferred = null; render(next); } });

    const words = STATUS_WORDS[run.status] || run.status;
    const head = element("div", { className: "run-head" }, tick, swatch,
      element("span", { className: "run-id", text: `#${run.id}` }),
      element("span", { className: `run-whose ${whose.kind}`, "data-testid": `run-whose-${run.id}`, text: whose.words }), name,
      element("span", { className: `run-status ${run.status}`, text: isLive ? `live · ${words}` : words }));

    const scores = run.epochs_done
      ? `${run.epochs_done} epoch${run.epochs_done === 1 ? "" : "s"}, step ${run.steps} · validation ${percent(run.val_accuracy)} (best ${percent(run.best_val_accuracy)}), loss ${run.val_loss == null ? "–" : run.val_loss.toFixed(3)}`
      : `step ${run.steps}, no full epoch yet`;
    const changes = run.config_changes.length ? ` · changed during the run: ${run.config_changes.map((c) => `${Object.entries(c.changes).map(([k, v]) => `${k}=${v}`).join(", ")} at step ${c.step}`).join("; ")}` : "";
    const setup = run.name === run.setup ? "" : `${run.setup} · `; // the default name is the setup
    const meta = element("div", { className: "run-meta", text: `${setup}${scores}${run.origin ? ` · ${run.origin}` : ""}${changes}` });

    const actions = element("div", { className: "run-actions" });
    // A private run's recorded weights are its owner's (and the teacher's): nobody else is offered them.
    const weightsOffered = whose.kind !== "someone" || Boolean(viewer()?.control);
    if (run.checkpoint_step != null && !weightsOffered) {
      actions.dataset.why = "Someone else's private run: only its owner (or the teacher) can take its weights";
    } else if (run.checkpoint_step != null) {
      const { owner } = pageRun();
      const { allowed, reason } = pageControl();
      // Restore restarts the run on this page: offered only where the page may control it.
      if (allowed) {
        actions.append(button("Restore", `run-restore-${run.id}`, async () => {
          const answer = await ask("runs:restore", { id: run.id });
          if (answer.ok) notify(answer.message, "info");
        }, owner === "you"
          ? `Restart your own run from this run's weights at step ${run.checkpoint_step} and its setup`
          : `Restart the shared run from this run's weights at step ${run.checkpoint_step} and its setup (everyone watching sees it)`));
      } else {
        actions.dataset.why = reason;
      }
      const download = element("a", { className: "button", href: `/api/runs/${run.id}/checkpoint`, download: "",
        text: "Download .pt", "data-testid": `run-download-${run.id}`,
        title: `Download run #${run.id}'s weights (step ${run.checkpoint_step})` });
      if (run.owner != null) { // a private run's: the server asks who wants them (the viewer secret)
        download.addEventListener("click", async (event) => {
          event.preventDefault();
          const fetched = await downloadFile(download.href);
          if (!fetched.ok) notify(fetched.error, "error");
        });
      }
      actions.append(download);
    }
    const remove = button("Delete", `run-delete-${run.id}`, async () => {
      if (!remove.dataset.armed) { // a second click confirms: no dialog to dismiss by mistake
        remove.dataset.armed = "1";
        remove.textContent = "Really delete?";
        setTimeout(() => { delete remove.dataset.armed; remove.textContent = "Delete"; }, 4000);
        return;
      }
      const answer = await ask("runs:delete", { id: run.id });
      if (answer.ok) { overlaid.delete(run.id); curves.delete(run.id); publishOverlays(); }
    }, "Delete this run's record and weights");
    if (whose.mayChange) actions.append(remove);

    return element("li", { className: isLive ? "live" : "", "data-run": String(run.id) }, head, meta, actions);
  }

  function render(payload) {
    if (payload) {
      if (listElement.contains(document.activeElement) && document.activeElement.classList.contains("run-name")) {
        deferred = payload; // don't pull the name field away while it is being typed in
        return;
      }
      runs = payload.runs;
      liveRun = liveRecordOf(payload, pageRun());
      const gone = [...overlaid.keys()].filter((id) => !runs.some((r) => r.id === id));
      for (const id of gone) { overlaid.delete(id); curves.delete(id); }
      if (gone.length) publishOverlays(); // redraw the curves only when what they show changed
    }
    if (!runs.length) {
      listElement.replaceChildren(element("li", { className: "hint", text: "No runs yet: press Start (or Step) and the run is recorded here." }));
      return;
    }
    listElement.replaceChildren(...runs.map(runItem));
  }

  return { render };
}
