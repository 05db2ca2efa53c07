// The controller: wires the connection, the page state and the views together. Server events
// go into the store (store.js); views render from the store, only what is in view.
import { connect, TransportError } from "./connection.js";
import { createStore } from "./store.js";
import { thin } from "./history.js";
import { createCurves } from "./charts.js";
import { createDrawingCanvas } from "./canvas.js";
import { createPredictionViews, guessingNote } from "./prediction.js";
import { createControls, speedLabel } from "./controls.js";
import { createNotice } from "./notice.js";
import { byTestId as $ } from "./lib/dom.js";
import { formatDuration, describeArchitecture, describeTraining, describeDataset } from "./lib/format.js";
import { latestOnly } from "./lib/latest.js";
import { loadPlotly } from "./lib/plot.js";
import { createVisibility } from "./lib/visibility.js";
import { nthDigit } from "./lib/bytes.js";
import { embedded } from "./lib/embed.js";

import initInside from "./features/inside.js";
import initExplain from "./features/explain.js";
import initEvaluate from "./features/evaluate.js";
import initAccess from "./features/access.js";
import initLesson from "./features/lesson.js";
import initReplay from "./features/replay.js";
import initBenchmarks from "./features/benchmarks.js";
import initWhoseRun, { runFromAddress } from "./features/whose-run.js";
import { STATUS } from "./lib/status.js";
import initPrivateRuns from "./features/private-runs.js";
import initWatched from "./features/watched.js";

// Feature modules (whose run, "look inside", explainer, evaluation, access, the replay, the
// benchmarks, the lesson and its class polls); each gets the page context.
const FEATURES = [initWhoseRun, initInside, initExplain, initEvaluate, initAccess, initReplay, initBenchmarks, initLesson,
  initPrivateRuns, initWatched];

function main() {
  if (embedded()) document.documentElement.classList.add("embed"); // framed: the compact read-only view
  const store = createStore({ connection: "connecting", server: null, run: runFromAddress(), answer: null, runs: null,
    overlays: [], replay: null, poll: null, access: null, privateRuns: null });
  const notice = createNotice($("notice"));
  const notify = (text, kind = "info") => notice.show(text, kind);
  const visibility = createVisibility();

  const connection = connect({ onStatus: (status) => store.set({ connection: status }) });
  const request = (event, payload) => connection.request(event, payload);
  // A request whose refusal or transport failure is shown as a notice; resolves with the answer
  // ({ok: false, error} on failure) so callers only branch on answer.ok.
  async function ask(event, payload) {
    try {
      const answer = await request(event, payload);
      if (!answer.ok) notify(answer.error, "error");
      return answer;
    } catch (err) {
      notify(err.message, err instanceof TransportError ? "connection" : "error");
      return { ok: false, error: err.message };
    }
  }

  const curves = createCurves({ panel: document.getElementById("curves-panel"),
    lossElement: $("loss-chart"), accuracyElement: $("accuracy-chart"), visibility });
  // The prediction's views (digit, preview, bars) draw when their row is in sight (not the whole
  // panel: the real digits below it can be in sight while the row is not).
  const drawPanel = document.querySelector("#draw-panel .draw-row");
  const predictionViews = createPredictionViews({
    digitElement: $("prediction"), barsElement: $("probabilities"), previewCanvas: $("preview") });
  const controls = createControls(document, { store, request, ask, notice });

  // Predictions: one request in flight; the newest drawing waits its turn, older ones are dropped.
  const predict = latestOnly(async (image) => {
    try {
      const answer = await request("predict", { image });
      if (answer.ok && canvas.hasInk()) store.set({ answer });
      else if (!answer.ok) notify(answer.error, "error");
    } catch (err) {
      notify(err.message, err instanceof TransportError ? "connection" : "error");
    }
  });
  const canvas = createDrawingCanvas($("canvas"), {
    onInk: predict,
    onClear: () => { predict.cancel(); $("real-digit-caption").textContent = ""; store.set({ answer: null }); },
  });
  $("clear").addEventListener("click", () => canvas.clear());
  document.addEventListener("keydown", (event) => {
    if (event.key.toLowerCase() === "c" && !event.target.closest("input, select, textarea")
        && !event.ctrlKey && !event.metaKey && !event.altKey) canvas.clear();
  });
  predictionViews.clear();

  // The alternative to drawing: a real MNIST training digit of the chosen class on the canvas.
  const realDigitOffset = new Array(10).fill(0);
  $("real-digit").addEventListener("click", async () => {
    const digit = Number($("real-digit-choice").value);
    const answer = await ask("dataset:samples", { offset: realDigitOffset[digit] });
    if (!answer.ok) return;
    realDigitOffset[digit] = answer.offset + 1;
    const { classes, pixels } = answer.samples;
    let position = 0;
    for (let d = 0; d < digit; d += 1) position += classes[d].indices.length;
    if (!classes[digit].indices.length) { notify(`No training ${digit} to show.`, "error"); return; }
    canvas.putDigit(nthDigit(pixels, position));
    $("real-digit-caption").textContent = `A real MNIST ${digit}: training digit #${classes[digit].indices[0]}.`;
    $("real-digit-caption").dataset.index = String(classes[digit].indices[0]);
  });

  function renderProgress(server) {
    const { config } = server;
    // A private run waiting for a free place to train says so (features/whose-run.js says where in line).
    $("status").textContent = server.queue_position != null ? "waiting" : server.status;
    $("epoch").textContent = server.status === STATUS.done || server.status === STATUS.idle
      ? `epoch ${server.epoch} / ${config.epochs}` : `epoch ${Math.min(server.epoch + 1, config.epochs)} / ${config.epochs}`;
    $("step-count").textContent = server.total_steps == null ? `step ${server.step}` : `step ${server.step} / ${server.total_steps}`;
    if (server.watched) $("epoch").textContent = ""; // its epochs are its script's (the panel says whose)
    const percent = server.progress == null ? 0 : Math.round(server.progress * 1000) / 10;
    $("progress").setAttribute("aria-valuenow", String(percent));
    $("progress").setAttribute("aria-valuetext", `${percent}% of the run`);
    $("progress").querySelector(".progress-fill").style.width = `${percent}%`;
    const rate = server.samples_per_second ? `${Math.round(server.samples_per_second).toLocaleString()} samples/s` : "";
    $("speed-readout").textContent = server.status === STATUS.running ? rate : "";
    $("eta").textContent = server.status === STATUS.running && server.eta_seconds != null
      ? `· about ${formatDuration(server.eta_seconds)} left at ${speedLabel(config.steps_per_second)}` : "";
  }

  function renderNetwork(server) {
    $("architecture").textContent = describeArchitecture(server.config);
    const { trains, predicts } = describeTraining(server.config);
    const objective = $("training-objective");
    objective.querySelector('[data-role="trains"]').textContent = trains;
    objective.querySelector('[data-role="predicts"]').textContent = predicts;
    objective.dataset.output = server.config.output;
    $("dataset-info").textContent = describeDataset(server.dataset, server.device)
      + (server.weights_origin ? ` Weights: ${server.weights_origin}.` : "");
  }

  connection.on("state", (server) => store.set({ server }));
  connection.on("metrics", (metrics) => {
    const server = store.get().server;
    if (!server || metrics.run_id !== server.run_id) return;
    const point = { step: metrics.step, epoch: metrics.epoch, loss: metrics.loss, accuracy: metrics.accuracy };
    if (metrics.numbers) point.numbers = metrics.numbers; // a watched script's other numbers (features/watched.js)
    store.set({ server: { ...server, history: thin(server.history.concat([point])),
      step: metrics.step, progress: metrics.progress, eta_seconds: metrics.eta_seconds,
      samples_per_second: metrics.samples_per_second, total_steps: metrics.total_steps,
      epoch: Math.floor(metrics.epoch) } });
  });
  connection.on("epoch", (record) => {
    const server = store.get().server;
    if (!server || (record.run_id != null && record.run_id !== server.run_id)) return;
    store.set({ server: { ...server, epochs: server.epochs.concat([record]) } });
    canvas.resend(); // the network changed: show what it says about the drawing now
  });

  let serverNotice = null; // the server's notice on show (why the run paused, say)
  let rendered = {}; // what the controls and the network line were last drawn from
  let runShown = store.get().run.key; // the run the drawing was last predicted on
  store.subscribe((state, patch) => {
    if ("run" in patch || "access" in patch) {
      if (state.server && state.connection === "connected") controls.render(state.server); // read-only or not
      if ("run" in patch && state.run.key !== runShown) {
        runShown = state.run.key;
        canvas.resend(); // another run's network: what it says about the drawing
      }
    }
    if ("server" in patch && state.server) {
      const server = state.server;
      renderProgress(server);
      // Metrics (10 a second) change only the progress and the curves: the controls and the
      // network line are drawn again when the state itself changes.
      if (server.config !== rendered.config || server.status !== rendered.status || server.notice !== rendered.notice
          || server.weights_origin !== rendered.weights_origin || server.queue_position !== rendered.queue_position) {
        if (state.connection === "connected") controls.render(server);
        renderNetwork(server);
        rendered = { config: server.config, status: server.status, notice: server.notice, weights_origin: server.weights_origin,
          queue_position: server.queue_position };
      }
      curves.show(server, state.overlays, state.run.key);
      // The server's notice stays while it stands and goes with it (a Reset clears it).
      if (server.notice && server.notice !== serverNotice) notify(server.notice, "error");
      else if (!server.notice && serverNotice) notice.clear(serverNotice);
      serverNotice = server.notice;
    }
    if ("overlays" in patch && state.server) curves.show(state.server, state.overlays, state.run.key);
    if ("answer" in patch || "replay" in patch) {
      // While replaying, the drawing is answered by the replayed step's weights.
      visibility.whenVisible(drawPanel, () => {
        const { answer, replay } = store.get();
        const shown = replay ? replay.answer : answer;
        if (shown && answer) predictionViews.show(shown); else predictionViews.clear();
        const by = $("prediction-by");
        by.textContent = replay && answer ? (replay.answer ? `by the weights of step ${replay.answer.step} (replay)` : "replaying…") : "";
      });
    }
    if ("answer" in patch || "server" in patch || "replay" in patch) {
      // An untrained network's answer is a guess: said under it, while it is one.
      const { answer, replay, server } = store.get();
      const note = answer && !replay ? guessingNote(server) : null;
      const guessing = $("prediction-guessing");
      if (guessing.textContent !== (note?.short ?? "")) {
        guessing.textContent = note?.short ?? "";
        guessing.title = note?.full ?? ""; // the whole sentence, on hover and for screen readers
        if (note) guessing.setAttribute("aria-label", note.full); else guessing.removeAttribute("aria-label");
      }
    }
    if ("replay" in patch) curves.mark(state.replay ? state.replay.frame.epoch : null);
    if ("connection" in patch) {
      const element = $("connection");
      element.dataset.state = state.connection;
      element.textContent = state.connection === "connected" ? "connected"
        : state.connection === "disconnected" ? "disconnected: reconnecting…" : "connecting…";
      if (state.connection === "connected") {
        if (notice.kind === "connection") notice.clear();
        if (state.server) controls.render(state.server);
      } else {
        controls.renderOffline(state.server);
        if (state.connection === "disconnected") notify("Lost the connection to the server; trying again…", "connection");
      }
    }
  });

  // Features subscribe to the store, never to each other.
  const context = { store, connection, request, ask, notify, notice, canvas, visibility, $ };
  for (const feature of FEATURES) feature(context);
  // Plotly (an async script, run by now or soon) is waited for here only to say if it failed.
  loadPlotly().catch((err) => notify(err.message, "error"));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
