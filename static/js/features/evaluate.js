// Evaluate, compare and keep: confusion matrix and mistakes (refreshed each epoch), the dataset
// browser, the runs list (overlaid on the curves), checkpoints and the exports (Python, ONNX, Keras).
import { createMatrixView, describeWhen } from "./evaluate/matrix.js";
import { createMistakesView } from "./evaluate/mistakes.js";
import { createDatasetView } from "./evaluate/dataset.js";
import { createRunsView } from "./evaluate/runs.js";
import { createCheckpointView } from "./evaluate/checkpoints.js";
import { latestOnly } from "../lib/latest.js";
import { runPath } from "../lib/viewer.js";
import { runControl } from "../lib/run-control.js";
import { STATUS } from "../lib/status.js";

export default function init(context) {
  const { store, connection, ask, notify, notice, visibility, $ } = context;
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
  const runs = createRunsView({ listElement: $("runs"), ask, notify, onOverlays: (overlays) => store.set({ overlays }),
    pageRun: () => store.get().run, pageControl: () => runControl(store.get()), viewer: () => store.get().access });
  const checkpoints = createCheckpointView({ fileInput: $("upload-checkpoint"), statusElement: $("checkpoint-status"), notice,
    uploadPath: () => runPath("/api/checkpoint", store.get().run.key) });

  // Views off screen are not redrawn (an epoch can end every second or two): the latest
  // data waits, and is drawn when the view scrolls into sight.
  const drawWhenSeen = visibility.whenVisible;
  const evaluationCard = document.getElementById("evaluation-card");
  const mistakesCard = document.getElementById("mistakes-card");
  const runsCard = document.getElementById("runs-card");

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
  // One evaluate:get at a time; a request meanwhile asks once more after it.
  const refreshEvaluation = latestOnly(async () => {
    const run = store.get().run.key;
    const answer = await ask("evaluate:get");
    if (answer.ok && store.get().run.key === run) showEvaluation(answer.evaluation); // else: a run left behind
  });

  connection.on("evaluation", showEvaluation);
  const runsOf = ({ runs: list, live_run: liveRun, problems }) => ({ runs: list, live_run: liveRun, problems });
  connection.on("runs", (payload) => store.set({ runs: runsOf(payload) }));
  const refreshRuns = latestOnly(async () => {
    const list = await ask("runs:list");
    if (list.ok) store.set({ runs: runsOf(list) });
  });

  // Only what is in sight: the evaluation and runs broadcasts are taken while their cards are in
  // view (broadcasts:subscribe), and a card coming into view asks for the current ones.
  const takes = { evaluation: [evaluationCard, mistakesCard], runs: [runsCard] };
  let taken = null;
  const sendBroadcasts = latestOnly(async () => {
    if (store.get().connection !== "connected") return;
    const topics = Object.keys(takes).filter((topic) => takes[topic].some(visibility.isVisible));
    const key = topics.join(",");
    if (key === taken) return;
    const before = taken === null ? [] : taken.split(",");
    const answer = await ask("broadcasts:subscribe", { topics });
    if (!answer.ok) return;
    taken = key;
    panel.dataset.broadcasts = key;
    if (topics.includes("evaluation") && !before.includes("evaluation")) refreshEvaluation();
    if (topics.includes("runs") && !before.includes("runs")) refreshRuns();
  });
  for (const cards of Object.values(takes)) for (const card of cards) visibility.onChange(card, () => sendBroadcasts());

  // The dataset's sample digits (~87 kB) are asked for when the card first comes into view, not at
  // load: thirty pages opening at once share one link (docs/performance.md).
  const datasetCard = $("dataset");
  let datasetAsked = false;
  async function askDataset() {
    if (datasetAsked || store.get().connection !== "connected" || !visibility.isVisible(datasetCard)) return;
    datasetAsked = true;
    const data = await ask("dataset:get");
    if (data.ok) drawWhenSeen(datasetCard, () => dataset.render(data.dataset));
    else datasetAsked = false; // asked again when it next comes into view
  }
  visibility.onChange(datasetCard, () => askDataset());
  connection.on("connect", () => {
    taken = null;
    sendBroadcasts();
    refreshRuns(); // once: the curves' overlays and the softmax trap read the recorded runs
    askDataset();
  });

  // The checkpoint and export links, and the upload, are the page's run's (only its owner may
  // upload into a private run: the viewer secret goes with it, lib/http.js).
  function followRun({ key }) {
    $("download-checkpoint").href = runPath("/api/checkpoint", key);
    $("export-python").href = runPath("/api/export.py", key);
    $("export-onnx").href = runPath("/api/export.onnx", key);
    $("export-keras").href = runPath("/api/export.keras", key);
    checkpoints.setReadOnly(!runControl(store.get()).allowed);
  }
  followRun(store.get().run);

  // Another run (a switch, or a reset: runs number their resets alike, so the run's key and its
  // number together), or a run that stopped somewhere else than the evaluation on screen: ask again.
  let last = { run: null, status: null };
  store.subscribe((state, patch) => {
    if ("runs" in patch && state.runs) drawWhenSeen(runsCard, () => runs.render(state.runs));
    if ("run" in patch || "access" in patch) {
      followRun(state.run);
      if (state.runs) drawWhenSeen(runsCard, () => runs.render(state.runs)); // Restore acts on the page's run
    }
    if (!("server" in patch) || !state.server) return;
    const { status, step } = state.server;
    const run = `${state.run.key}/${state.server.run_id}`;
    const newRun = run !== last.run;
    const stopped = status !== last.status && status !== STATUS.running;
    last = { run, status };
    if (newRun && shown) {
      shown = null;
      drawWhenSeen(mistakesCard, () => {
        $("evaluation-when").textContent = "";
        mistakes.clear("This run has no evaluation yet.");
      });
    }
    // Out of view, nothing is asked for: the cards coming into view ask (sendBroadcasts above).
    const inView = takes.evaluation.some(visibility.isVisible);
    if ((newRun || stopped) && (!shown || shown.step !== step) && inView) refreshEvaluation();
  });
}
