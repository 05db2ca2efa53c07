// "Look inside": the live views of the network (the hidden-weight tiles, the inspector, output
// weights, activations, distributions, the diagram). Only what a viewer looks at: the page
// subscribes (inside:subscribe) to the streams whose views are in view, and a view scrolled
// into view draws the stream's current frame at once. Frames arrive per stream; each is drawn
// at the next animation frame and acknowledged then, so the server sends the next (always the
// newest) frame only when this page has caught up. A frame of a stream nobody on this page
// looks at is acknowledged on arrival and kept for when its view comes into sight.
import { createHiddenWeights, createOutputWeights } from "./inside/weights-view.js";
import { createInspector } from "./inside/inspector.js";
import { createActivationHistogram } from "./inside/activations-view.js";
import { createDistributions } from "./inside/distributions-view.js";
import { createDiagram } from "./inside/diagram.js";
import { decodeTiles } from "./inside/decode.js";
import { createDistributionsChain, createWeightsChain, inOrder } from "./inside/chains.js";
import { throttled } from "./inside/throttle.js";
import { latestOnly } from "../lib/latest.js";
import { float32 } from "../lib/bytes.js";

// The page takes the small streams (a key frame, then what changed: chains.js) for the weights
// and distributions; a chain's every frame is applied as it arrives, then drawn latest-wins.
const STREAMS = {
  weights: { name: "weights-delta", event: "inside:weights-delta", chain: () => inOrder(createWeightsChain()) },
  activations: { name: "activations", event: "inside:activations" },
  distributions: { name: "distributions-delta", event: "inside:distributions-delta",
    chain: () => inOrder(createDistributionsChain()) },
};
const MAX_MEASURES = 500; // render timings kept for benchmarks (performance.getEntriesByName)

export default function init({ store, connection, request, visibility, $ }) {
  const panel = document.getElementById("inside-panel");
  panel.hidden = false;
  const tilesPanel = document.getElementById("tiles-panel");
  const el = (role, root = panel) => root.querySelector(`[data-role="${role}"]`);
  const card = (testid) => $(testid).closest(".inside-card, .panel");
  // A screen without hover (a phone, a tablet): the tiles are tapped, and the hint says so.
  if (matchMedia("(hover: none)").matches) el("tiles-hover", tilesPanel).textContent = "Tap a tile to read its weights.";

  const weights = createHiddenWeights($("hidden-weights"), {
    onSelect: (index, options) => select(index, options),
    readout: el("tiles-hover", tilesPanel),
    legend: el("tiles-legend", tilesPanel),
    whenVisible: (draw) => visibility.whenVisible($("hidden-weights"), draw),
    exactRow: (index, frame) => {
      if (exact && exact.index === index && exact.runId === frame.runId && exact.step === frame.step) return exact;
      const key = `${index}/${frame.runId}/${frame.step}`;
      if (key !== askedRow) { askedRow = key; fetchRow(index); } // once per neuron and frame: no loop while training
      return null;
    },
    onRender: () => {
      if (performance.getEntriesByName("inside:hidden-weights-render").length > MAX_MEASURES) {
        performance.clearMeasures("inside:hidden-weights-render");
        performance.clearMeasures("inside:hidden-weights-render-sync");
      }
    },
  });
  // The exact row of the neuron the tile readout speaks of (inside:neuron, without a drawing):
  // one neuron at a time, asked again when the tiles show another step.
  let exact = null; // {index, runId, step, weights: Float32Array, bias, min, max}
  let askedRow = null;
  const fetchRow = latestOnly(async (index) => {
    const answer = await request("inside:neuron", { index }).catch(() => null);
    if (!answer?.ok) return;
    exact = { index, runId: answer.run_id, step: answer.step, weights: float32(answer.weights), bias: answer.bias,
      min: answer.min, max: answer.max };
    weights.refreshReadout();
  });
  const outputWeights = createOutputWeights($("output-weights"), el("output-legend"));
  const histogram = createActivationHistogram($("activation-histogram"), el("saturation"), el("layer-select"));
  const distributions = createDistributions($("distributions"), el("distributions-caption"));
  const diagram = createDiagram($("network-diagram"), el("diagram-caption"));
  const inspectorElement = $("neuron-inspector");
  const inspector = createInspector(inspectorElement, {
    onMove: (index) => select(index),
    onClose: () => { weights.select(null); updateSubscription(); $("hidden-weights").focus({ preventScroll: true }); },
    columns: () => weights.meta()?.columns ?? 16,
    count: () => weights.meta()?.n_neurons ?? 0,
  });

  // Which views show which stream; a stream is wanted while any of its views is in view.
  const views = {
    weights: [tilesPanel, card("output-weights"), card("network-diagram"), inspectorElement],
    activations: [card("activation-histogram")],
    distributions: [card("distributions")],
  };
  const inspectorOpen = () => inspector.index() != null;
  const shows = (stream) => views[stream].some((view) =>
    visibility.isVisible(view) && (view !== inspectorElement || inspectorOpen()));

  // ---- the inspector: the feature asks, the view renders -----------------------------------
  const pixels = () => {
    const answer = store.get().answer;
    return answer ? answer.input.map((v) => Math.min(1, Math.max(0, v))) : null;
  };
  const loadNeuron = latestOnly(async () => {
    const index = inspector.index();
    if (index == null) return;
    const drawing = pixels();
    try {
      const answer = await request("inside:neuron", { index, ...(drawing ? { pixels: drawing } : {}) });
      // The answer may come back after the inspector left the window: drawn when it is back.
      if (answer.ok) visibility.whenVisible(inspectorElement, () => inspector.show(answer));
      else inspector.showError(answer.error);
    } catch (err) {
      inspector.showError(err.message);
    }
  });
  const refreshNeuron = throttled(() => visibility.whenVisible(inspectorElement, loadNeuron), 200);

  function select(index, { focusInspector = false } = {}) {
    weights.select(index);
    if (index == null) return;
    inspector.open(index);
    updateSubscription();
    visibility.whenVisible(inspectorElement, loadNeuron);
    // The inspector sits below the tiles: bring it into sight; keys go to it from a tile's Enter.
    inspectorElement.scrollIntoView({ block: "nearest" });
    if (focusInspector || document.activeElement !== $("hidden-weights")) inspectorElement.focus({ preventScroll: true });
  }
  // Arrow keys on the inspector move its neuron; the tiles follow (weights.select). Esc on the
  // tiles closes it too.
  $("hidden-weights").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && inspectorOpen()) { event.preventDefault(); inspector.close(); }
  });

  // The neuron picker: the inspector by number (a phone's tiles are too small to tap one). A
  // number outside the layer is said in words and opens nothing.
  const picker = $("tile-picker");
  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    const n = weights.meta()?.n_neurons ?? 0;
    const text = picker.elements.neuron.value.trim();
    const index = Number(text);
    const error = el("picker-error", picker);
    if (text === "" || !Number.isInteger(index) || index < 0 || (n && index >= n)) {
      error.textContent = `Give a whole number from 0 to ${Math.max(n - 1, 0)}.`;
      return;
    }
    error.textContent = "";
    select(index, { focusInspector: true });
  });

  for (const input of tilesPanel.querySelectorAll('input[name="tile-scale"]')) {
    input.addEventListener("change", () => { if (input.checked) weights.setMode(input.value); });
  }

  function describeFrame(frame) {
    const hidden = frame.hidden;
    const capped = hidden.n_shown < hidden.n_neurons
      ? ` Showing the first ${hidden.n_shown} of ${hidden.n_neurons} neurons (the inspector reaches all of them with the arrow keys).` : "";
    el("tiles-caption", tilesPanel).textContent =
      `${hidden.layer}.weight is (${hidden.n_neurons}, 784): row j, shown as 28×28, is what neuron j looks for. Step ${frame.step}.${capped}`;
    el("status").textContent = frame.status === "replay"
      ? `Replay: the weights as they were at step ${frame.step} (epoch ${frame.epoch.toFixed(2)}); press Live to come back.`
      : `Live from the ${frame.status} run at step ${frame.step} (epoch ${frame.epoch.toFixed(2)}); ` +
        `heatmaps refresh every ${frame.interval_s.toFixed(1)} s while training, while they are in view.`;
  }

  // Every view hands its draw to the visibility: now if in view, else when it comes into view.
  const renderDiagram = throttled(() => visibility.whenVisible(card("network-diagram"), diagram.render), 300);
  // The big Plotly heatmaps cost 50-250 ms a draw on a busy machine: at most about once a
  // second (their pictures change slowly; the tiles above show every frame).
  const latestFrame = {};
  const renderOutput = throttled(() => visibility.whenVisible(card("output-weights"),
    () => outputWeights.show(latestFrame.weights)), 800);
  const renderDistributions = throttled(() => visibility.whenVisible(card("distributions"),
    () => distributions.show(latestFrame.distributions)), 1000);
  const renderHistogram = throttled(() => visibility.whenVisible(card("activation-histogram"), histogram.render), 150);
  // While the replay shows an earlier step, the live frames are kept, not drawn.
  const replaying = () => Boolean(store.get().replay);
  const draw = {
    weights(frame) {
      if (replaying()) { latestFrame.weights = frame; latestFrame.weightsStale = true; return; }
      const tiles = decodeTiles(frame.hidden);
      visibility.whenVisible(tilesPanel, () => { weights.show(frame, tiles); describeFrame(frame); });
      latestFrame.weights = frame;
      renderOutput();
      if (diagram.setWeights(frame, tiles)) renderDiagram();
      if (inspectorOpen()) refreshNeuron();
    },
    activations(frame) { histogram.setStats(frame); renderHistogram(); },
    distributions(frame) { latestFrame.distributions = frame; if (!replaying()) renderDistributions(); },
  };
  function showReplay(frame) {
    const weightsFrame = frame.weights;
    const tiles = decodeTiles(weightsFrame.hidden);
    visibility.whenVisible(tilesPanel, () => { weights.show(weightsFrame, tiles); describeFrame(weightsFrame); });
    visibility.whenVisible(card("output-weights"), () => outputWeights.show(weightsFrame));
    visibility.whenVisible(card("distributions"), () => distributions.show(frame.distributions));
  }
  function showLive() {
    const frame = latestFrame.weights;
    latestFrame.weightsStale = false;
    if (frame) draw.weights(frame);
    if (latestFrame.distributions) renderDistributions();
  }

  // Latest wins on this side too: a frame waiting to be drawn is replaced by a newer one.
  const waiting = new Map();
  let scheduled = false;
  function drawWaiting() {
    scheduled = false;
    for (const [stream, { frame, ack }] of [...waiting]) {
      waiting.delete(stream);
      if (typeof ack === "function") ack();
      setTimeout(() => draw[stream](frame), 0); // each stream in its own task: no long frame of all of them
    }
  }
  function arrived(stream, frame, ack) {
    if (!shows(stream)) { // nobody here looks at it: ready for the next at once
      if (typeof ack === "function") ack();
      draw[stream](frame); // the views keep it for when they come into view
      return;
    }
    const previous = waiting.get(stream);
    if (previous && typeof previous.ack === "function") previous.ack();
    waiting.set(stream, { frame, ack });
    if (!scheduled) { scheduled = true; requestAnimationFrame(drawWaiting); }
  }
  for (const [stream, { event, chain }] of Object.entries(STREAMS)) {
    if (!chain) { connection.on(event, (frame, ack) => arrived(stream, frame, ack)); continue; }
    // One chain per stream for the page's life, its frames applied strictly in arrival order. A
    // new connection, or another run (run:create, run:watch), starts with a key frame, which
    // starts the chain over: the server sends it as the switch happens, often before the answer,
    // so the chain is not reset by the answer (that dropped the new run's key frame, or let the
    // old run's frames still inflating be drawn over it).
    const apply = chain();
    connection.on(event, async (frame, ack) => {
      const whole = await apply(frame); // every frame of a chain, in order
      if (whole) arrived(stream, whole, ack);
      else if (typeof ack === "function") ack();
    });
  }

  // ---- only what a viewer looks at -------------------------------------------------------------
  let subscribed = null; // the streams the server was last told, as "a,b"
  const sendSubscription = latestOnly(async () => {
    if (store.get().connection !== "connected") return;
    const streams = Object.keys(STREAMS).filter(shows).map((stream) => STREAMS[stream].name);
    const key = streams.join(",");
    if (key === subscribed) return;
    try {
      const answer = await request("inside:subscribe", { streams });
      if (answer.ok) subscribed = key;
      panel.dataset.subscribed = answer.ok ? key : panel.dataset.subscribed;
    } catch {
      subscribed = null; // not delivered: asked again on the next change or reconnect
    }
  });
  function updateSubscription() { sendSubscription(); }
  for (const stream of Object.keys(views)) {
    for (const view of views[stream]) visibility.onChange(view, updateSubscription);
  }
  // A new connection takes no stream (connect auth, connection.js): say at once which ones
  // this page shows.
  connection.on("connect", () => { subscribed = null; updateSubscription(); });

  let runShown = store.get().run.key;
  store.subscribe((state, patch) => {
    if ("replay" in patch) { if (state.replay) showReplay(state.replay.frame); else showLive(); }
    if ("run" in patch && state.run.key !== runShown) {
      runShown = state.run.key;
      if (inspectorOpen()) refreshNeuron(); // the neuron of the run on screen now
    }
    if ("answer" in patch) {
      histogram.setAnswer(state.answer);
      renderHistogram();
      if (diagram.setAnswer(state.answer)) renderDiagram();
      if (inspectorOpen()) refreshNeuron();
    }
    if ("server" in patch && state.server && diagram.setShape(state.server.model?.shape)) renderDiagram();
  });
  renderDiagram();
}
