// Evaluate, compare and keep: confusion matrix and mistakes (refreshed each epoch), the dataset
// browser, the runs list (overlaid on the curves), checkpoints and the Python export.
import { createMatrixView, describeWhen } from "./evaluate/matrix.js";
import { createMistakesView } from "./evaluate/mistakes.js";
import { createDatasetView } from "./evaluate/dataset.js";
import { createRunsView } from "./evaluate/runs.js";
import { createCheckpointView } from "./evaluate/checkpoints.js";

export default function init(context) {
  const { store, connection, ask, notify, $ } = context;
  const panel = document.getElementById("evaluate-panel");
  panel.hidden = false;


  const matrix = createMatrixView({
    matrixElement: $("confusion-matrix"), perClassElement: $("per-class-accuracy"),
    cellBox: $("cell-digits"), cellTitle: $("cell-title"), cellGrid: $("cell-digit-grid"),
    picker: $("cell-picker"),
    onCell: async (actual, predicted) => {
      const answer = await ask("evaluate:cell", { actual, predicted });
      if (answer.ok) matrix.showCell(answer.cell);
    },
  });
  const mistakes = createMistakesView({ summaryElement: $("mistakes-summary"), galleryElement: $("mistakes") });
  let samplesOffset = 0;
  const dataset = createDatasetView({
    summaryElement: $("dataset-summary"), rowsElement: $("dataset-rows"), moreButton: $("dataset-more"),
    onMore: async () => {
      const answer = await ask("dataset:samples", { offset: samplesOffset + 10 });
      if (answer.ok) { samplesOffset = answer.offset; dataset.renderSamples(answer.samples); }
    },
  });
  const runs = createRunsView({ listElement: $("runs"), ask, notify });
  createCheckpointView({ fileInput: $("upload-checkpoint"), statusElement: $("checkpoint-status"), notify });

  // Views off screen are not redrawn (an epoch can end every second or two): the latest
  // data waits, and is drawn when the view scrolls into sight.
  const deferred = new Map(); // element -> draw()
  const onScreen = new Set();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) onScreen.add(entry.target); else onScreen.delete(entry.target);
      const draw = entry.isIntersecting && deferred.get(entry.target);
      if (draw) { deferred.delete(entry.target); draw(); }
    }
  });
  function drawWhenSeen(element, draw) {
    if (onScreen.has(element)) { deferred.delete(element); draw(); } else deferred.set(element, draw);
  }
  const evaluationCard = document.getElementById("evaluation-card");
  const mistakesCard = document.getElementById("mistakes-card");
  const runsCard = document.getElementById("runs-card");
  for (const card of [evaluationCard, mistakesCard, runsCard]) observer.observe(card);

  // The evaluation on screen belongs to one run; a new run clears it.
  let shown = null;
  function showEvaluation(evaluation) {
    const server = store.get().server;
    if (server && evaluation.run_id !== server.run_id) return; // an older run's: not this one
    shown = evaluation;
    drawWhenSeen(evaluationCard, () => {
      $("evaluation-when").textContent = describeWhen(evaluation);
      matrix.render(evaluation);
      $("confusion-matrix").dataset.step = String(evaluation.step);
    });
    drawWhenSeen(mistakesCard, () => mistakes.render(evaluation));
  }
  let asking = null; // one evaluate:get at a time; a request meanwhile asks once more after it
  async function refreshEvaluation() {
    if (asking) { asking.again = true; return; }
    asking = { again: false };
    const answer = await ask("evaluate:get");
    const again = asking.again;
    asking = null;
    if (answer.ok) showEvaluation(answer.evaluation);
    if (again) refreshEvaluation();
  }

  connection.on("evaluation", showEvaluation);
  connection.on("runs", (payload) => drawWhenSeen(runsCard, () => runs.render(payload)));
  connection.on("connect", async () => {
    const [data, list] = await Promise.all([ask("dataset:get"), ask("runs:list")]);
    if (data.ok) dataset.render(data.dataset);
    if (list.ok) drawWhenSeen(runsCard, () => runs.render(list));
    refreshEvaluation();
  });

  // A new run, or a run that stopped somewhere else than the evaluation on screen: ask again.
  let last = { run: null, status: null };
  store.subscribe((state, patch) => {
    if (!("server" in patch) || !state.server) return;
    const { run_id: run, status, step } = state.server;
    const newRun = run !== last.run;
    const stopped = status !== last.status && status !== "running";
    last = { run, status };
    if (newRun && shown && shown.run_id !== run) {
      shown = null;
      drawWhenSeen(mistakesCard, () => {
        $("evaluation-when").textContent = "";
        mistakes.clear("This run has no evaluation yet.");
      });
    }
    if ((newRun || stopped) && (!shown || shown.step !== step)) refreshEvaluation();
  });
}
