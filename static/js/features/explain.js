// The nn.Linear explainer: the code of the network on screen tied to its views, the shapes,
// the forward pass of the drawing step by step, a Linear sandbox, Keras and the softmax trap.
// The feature asks the server; its views only render, and only while in view.
import { createCodeView } from "./explain/code-view.js";
import { createShapesView } from "./explain/shapes-view.js";
import { createForwardView } from "./explain/forward-view.js";
import { createSandbox } from "./explain/sandbox.js";
import { createTrapView } from "./explain/trap-view.js";
import { requestJSON } from "../lib/http.js";
import { latestOnly } from "../lib/latest.js";
import { runPath } from "../lib/viewer.js";
import { runControl } from "../lib/run-control.js";

const TRAP_REDRAW_MS = 1000;
const KERAS_REFRESH_MS = 2000; // the Keras code's live weights, while it is in view and the run moves

export default function init(context) {
  const { store, request, ask, notify, visibility, $ } = context;
  const panel = document.getElementById("explain-panel");
  const arithmetic = document.getElementById("arithmetic-panel");
  panel.hidden = false;
  arithmetic.hidden = false;

  const codeView = createCodeView({ list: $("model-code"), selection: $("code-selection") });
  const shapesView = createShapesView({ body: $("shapes-table").tBodies[0], total: $("parameter-total"), batch: $("batch-shapes") });

  // ---- the forward pass of the drawing, asked for only while its steps are in view ----------
  const pick = { layer: "hidden", neuron: null }; // neuron null: the server picks the most excited
  const forwardView = createForwardView(arithmetic, {
    notify,
    onPick: (layer, neuron) => { Object.assign(pick, { layer, neuron }); explainDrawing(); },
  });
  const forwardSteps = $("forward-steps");
  const loadForward = latestOnly(async () => {
    const answer = store.get().answer;
    if (!answer) { forwardView.showEmpty(); return; }
    try {
      const explained = await request("explain:forward", { pixels: answer.input, layer: pick.layer, neuron: pick.neuron, top: 8 });
      if (!store.get().answer) { forwardView.showEmpty(); return; }
      // The answer may come back after the steps left the window: drawn when they are back.
      if (explained.ok) visibility.whenVisible(forwardSteps, () => forwardView.render(explained));
      else notify(explained.error, "error");
    } catch (err) {
      notify(err.message, "error");
    }
  });
  const explainDrawing = () => visibility.whenVisible(forwardSteps, loadForward);

  // ---- the sandbox ---------------------------------------------------------------------------
  const sandbox = createSandbox($("linear-sandbox"), {
    defaults: () => requestJSON("GET", "/api/linear"),
    compute: (payload) => requestJSON("POST", "/api/linear", payload),
    random: (payload) => requestJSON("POST", "/api/linear/random", payload),
  });

  // ---- the softmax trap: the latest run of each way, live or recorded -------------------------
  let floor = null;
  const recorded = new Map(); // run id -> {steps, history}: curves fetched from the runs store
  const trapView = createTrapView(arithmetic, {
    onSwitch: async (output) => {
      const reset = await ask("train:reset", { config: { output } });
      if (reset.ok) await ask("train:start");
    },
  });
  function trapRuns() {
    const { server, runs } = store.get();
    const shown = {};
    if (!server) return shown;
    const live = server.config.output;
    if (server.history.length) shown[live] = { run_id: runs?.live_run ?? server.run_id, history: server.history, recorded: false };
    for (const run of runs?.runs ?? []) {
      const output = run.config.output;
      if (shown[output] || run.id === runs.live_run || !run.steps) continue;
      const curve = recorded.get(run.id);
      if (curve && curve.steps === run.steps) shown[output] = { run_id: run.id, history: curve.history, recorded: true };
      else { fetchRun(run); return shown; } // drawn again once it is here
    }
    return shown;
  }
  const fetchRun = latestOnly(async (run) => {
    const answer = await ask("runs:get", { id: run.id });
    if (!answer.ok) return;
    recorded.set(run.id, { steps: run.steps, history: answer.run.history });
    drawTrap();
  });
  let trapTimer = null;
  const trapChart = $("trap-chart");
  function drawTrap() {
    if (trapTimer) return;
    trapTimer = setTimeout(() => {
      trapTimer = null;
      visibility.whenVisible(trapChart, () => trapView.render(trapRuns(), floor));
    }, trapChart.dataset.outputs == null ? 0 : TRAP_REDRAW_MS);
  }

  // ---- the code and shapes follow the run and its setup: fetched again when either changes ----
  let shownConfig = null;
  const unfollowed = () => Boolean(store.get().server?.watched && !store.get().server.watched.shows_network);
  async function loadCode(config) {
    // Not before the server has said which run the page is on (a dead link's run has no code).
    if (store.get().run.owner == null) return;
    // A watched network the page cannot follow has no code here (its panel says why: watched.js).
    if (unfollowed()) { shownConfig = null; return; }
    const run = store.get().run.key;
    const key = `${run} ${JSON.stringify(config)}`;
    if (key === shownConfig) return;
    shownConfig = key;
    $("code-download").href = runPath("/api/code.py", run);
    const answer = await requestJSON("GET", runPath("/api/explain/code", run));
    if (!answer.ok) { notify(answer.body.error, "error"); shownConfig = null; return; }
    codeView.render(answer.body.lines);
    shapesView.render(answer.body.shapes);
    floor = answer.body.double_softmax_floor;
    trapView.setFloor(floor);
    trapView.renderKeras(answer.body);
    kerasStep = answer.body.keras_step;
    drawTrap();
  }

  // ---- Keras side by side: its comments show the live weights, so it follows the run while seen ----
  const kerasBlock = $("keras-side-by-side");
  let kerasStep = null;
  let kerasTimer = null;
  const refreshKeras = latestOnly(async () => {
    if (unfollowed()) return;
    const run = store.get().run.key;
    const answer = await requestJSON("GET", runPath("/api/explain/code", run));
    if (!answer.ok || store.get().run.key !== run) return; // a run left behind; the next step asks again
    trapView.renderKeras(answer.body);
    kerasStep = answer.body.keras_step;
  });
  function followKeras(step) {
    if (step === kerasStep || kerasTimer) return;
    kerasTimer = setTimeout(() => {
      kerasTimer = null;
      visibility.whenVisible(kerasBlock, refreshKeras);
    }, KERAS_REFRESH_MS);
  }

  let architecture = null;
  let config = null;
  let run = store.get().run;
  store.subscribe((state, patch) => {
    if ("run" in patch || "access" in patch) {
      const { allowed, reason } = runControl(state);
      trapView.setReadOnly(!allowed, reason);
    }
    if ("run" in patch && (state.run.key !== run.key || run.owner == null)) {
      const moved = state.run.key !== run.key;
      run = state.run;
      config = null; // the code and shapes of the run's setup, once its state is here
      if (moved) explainDrawing(); // the drawing through the new run's weights
      if (state.server && !("server" in patch)) patch = { ...patch, server: state.server }; // its state is here
    }
    if ("server" in patch && state.server) {
      const server = state.server;
      drawTrap();
      if (config && server.config === config) followKeras(server.step);
      if (server.config === config) return; // metrics: only the curve moved
      config = server.config;
      trapView.setCurrent(server.config.output);
      loadCode(server.config).catch((err) => { shownConfig = null; notify(err.message, "error"); });
      const shape = JSON.stringify(server.model.shape);
      if (architecture && shape !== architecture) Object.assign(pick, { layer: "hidden", neuron: null }); // it may be gone
      architecture = shape;
    }
    if ("runs" in patch) drawTrap();
    if ("answer" in patch) explainDrawing();
  });
  sandbox.start().catch((err) => notify(err.message, "error"));
}
