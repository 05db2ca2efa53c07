// The controller: wires the connection, the page state and the views together.
import { connect } from "./connection.js";
import { createStore } from "./store.js";
import { HISTORY_LIMIT, thinInPlace } from "./history.js";
import { createCurves } from "./charts.js";
import { createDrawingCanvas } from "./canvas.js";
import { createPredictionViews } from "./prediction.js";
import { createControls, speedLabel } from "./controls.js";
import { formatDuration, describeArchitecture, describeDataset } from "./format.js";

import initInside from "./features/inside.js";
import initExplain from "./features/explain.js";
import initEvaluate from "./features/evaluate.js";
import initAccess from "./access.js";

// Feature modules ("look inside", explainer, evaluation); each gets the page context.
const FEATURES = [initInside, initExplain, initEvaluate, initAccess];

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

function main() {
  const store = createStore({ connection: "connecting", server: null, drawing: null, answer: null });
  const notice = $("notice");
  const notify = (text, kind = "info") => {
    notice.textContent = text;
    notice.dataset.kind = kind;
    notice.hidden = !text;
  };

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
      notify(err.message, "error");
      return { ok: false, error: err.message };
    }
  }
  const curves = createCurves($("loss-chart"), $("accuracy-chart"));
  const predictionViews = createPredictionViews({
    digitElement: $("prediction"), barsElement: $("probabilities"), previewCanvas: $("preview") });
  const controls = createControls(document, { store, request, ask, notify });

  // Predictions: one request in flight; the newest drawing waits its turn, older ones are dropped.
  let inFlight = false;
  let queued = null;
  async function predict(image) {
    if (inFlight) { queued = image; return; }
    inFlight = true;
    try {
      const answer = await request("predict", { image });
      if (answer.ok && canvas.hasInk()) {
        store.set({ answer });
        predictionViews.show(answer);
      } else if (!answer.ok) notify(answer.error, "error");
    } catch (err) {
      notify(err.message, "error");
    } finally {
      inFlight = false;
      if (queued) { const next = queued; queued = null; predict(next); }
    }
  }
  const canvas = createDrawingCanvas($("canvas"), {
    onInk: predict,
    onClear: () => { queued = null; store.set({ answer: null }); predictionViews.clear(); },
  });
  $("clear").addEventListener("click", () => canvas.clear());
  document.addEventListener("keydown", (event) => {
    if (event.key.toLowerCase() === "c" && !event.target.closest("input, select, textarea")
        && !event.ctrlKey && !event.metaKey && !event.altKey) canvas.clear();
  });
  predictionViews.clear();

  function renderProgress(server) {
    const { config } = server;
    $("status").textContent = server.status;
    $("epoch").textContent = `epoch ${Math.min(server.epoch + 1, config.epochs)} / ${config.epochs}`;
    if (server.status === "done" || server.status === "idle") $("epoch").textContent = `epoch ${server.epoch} / ${config.epochs}`;
    $("step-count").textContent = `step ${server.step} / ${server.total_steps}`;
    const percent = Math.round(server.progress * 1000) / 10;
    $("progress").setAttribute("aria-valuenow", String(percent));
    $("progress").setAttribute("aria-valuetext", `${percent}% of the run`);
    $("progress").querySelector(".progress-fill").style.width = `${percent}%`;
    const rate = server.samples_per_second ? `${Math.round(server.samples_per_second).toLocaleString()} samples/s` : "";
    $("speed-readout").textContent = server.status === "running" ? rate : "";
    $("eta").textContent = server.status === "running" && server.eta_seconds != null
      ? `about ${formatDuration(server.eta_seconds)} left at ${speedLabel(config.steps_per_second)}` : "";
  }

  let serverNotice = null; // the server's notice on show (why the run paused, say)
  connection.on("state", (server) => {
    store.set({ server });
    $("architecture").textContent = describeArchitecture(server.config);
    $("dataset-info").textContent = describeDataset(server.dataset, server.device);
    controls.render(server);
    renderProgress(server);
    curves.render(server.history, server.epochs);
    // The server's notice stays while it stands and goes with it (a Reset clears it).
    if (server.notice) notify(server.notice, "error");
    else if (serverNotice && notice.textContent === serverNotice) notify("");
    serverNotice = server.notice;
  });
  connection.on("metrics", (metrics) => {
    const server = store.get().server;
    if (!server || metrics.run_id !== server.run_id) return;
    const point = { step: metrics.step, epoch: metrics.epoch, loss: metrics.loss, accuracy: metrics.accuracy };
    server.history.push(point);
    const thinned = thinInPlace(server.history, HISTORY_LIMIT);
    Object.assign(server, {
      step: metrics.step, progress: metrics.progress, eta_seconds: metrics.eta_seconds,
      samples_per_second: metrics.samples_per_second, total_steps: metrics.total_steps,
      epoch: Math.floor(metrics.epoch),
    });
    renderProgress(server);
    // Thinned: redraw from the shorter history (the charts' own traces only ever grow).
    if (thinned) curves.render(server.history, server.epochs);
    else curves.addPoint(point);
  });
  connection.on("epoch", (record) => {
    const server = store.get().server;
    if (!server) return;
    server.epochs.push(record);
    curves.addEpoch(record);
    canvas.resend(); // the network changed: show what it says about the drawing now
  });

  store.subscribe((state, patch) => {
    if (!("connection" in patch)) return;
    const element = $("connection");
    element.dataset.state = state.connection;
    element.textContent = state.connection === "connected" ? "connected"
      : state.connection === "disconnected" ? "disconnected — reconnecting…" : "connecting…";
    if (state.connection === "connected" && notice.dataset.kind === "connection") notify("");
    if (state.connection === "disconnected") notify("Lost the connection to the server; trying again…", "connection");
  });

  // store.answer holds the latest predict answer (null when the canvas is empty);
  // store.server the latest state. Features subscribe to the store, never to each other.
  const context = { store, connection, request, ask, notify, canvas, $ };
  for (const feature of FEATURES) feature(context);
}

// Plotly is a classic deferred script; modules run after it, but be explicit.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
