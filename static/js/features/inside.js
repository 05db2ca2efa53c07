// "Look inside": the live views of the network (weights, activations, distributions, the
// diagram, the neuron inspector). Frames arrive per stream; each is drawn at the next animation
// frame and acknowledged after drawing, so the server sends the next (always the newest) frame
// only when this page has caught up.
import { createHiddenWeights, createOutputWeights } from "./inside/weights-view.js";
import { createInspector } from "./inside/inspector.js";
import { createActivationHistogram } from "./inside/activations-view.js";
import { createDistributions } from "./inside/distributions-view.js";
import { createDiagram } from "./inside/diagram.js";

const EVENTS = { weights: "inside:weights", activations: "inside:activations", distributions: "inside:distributions" };
const MAX_MEASURES = 500; // render timings kept for benchmarks (performance.getEntriesByName)

export default function init({ store, connection, request, $ }) {
  const panel = document.getElementById("inside-panel");
  panel.hidden = false;
  const el = (role) => panel.querySelector(`[data-role="${role}"]`);

  const weights = createHiddenWeights($("hidden-weights"), {
    onSelect: (index) => select(index),
    readout: el("tiles-hover"),
    onRender: () => {
      if (performance.getEntriesByName("inside:hidden-weights-render").length > MAX_MEASURES) {
        performance.clearMeasures("inside:hidden-weights-render");
        performance.clearMeasures("inside:hidden-weights-render-sync");
      }
    },
  });
  const outputWeights = createOutputWeights($("output-weights"));
  const histogram = createActivationHistogram($("activation-histogram"), el("saturation"), el("layer-select"));
  const distributions = createDistributions($("distributions"), el("distributions-caption"));
  const diagram = createDiagram($("network-diagram"), el("diagram-caption"));
  const inspector = createInspector($("neuron-inspector"), {
    request,
    getAnswer: () => store.get().answer,
    onSelect: (index) => select(index),
    columns: () => weights.meta()?.columns ?? 16,
    count: () => weights.meta()?.n_neurons ?? 0,
  });

  function select(index) {
    weights.select(index);
    if (index == null) return;
    inspector.open(index);
    $("neuron-inspector").focus({ preventScroll: true });
  }
  // Arrow keys also work while the heatmap itself has focus.
  $("hidden-weights").addEventListener("keydown", (event) => inspector.onKey(event));

  for (const input of panel.querySelectorAll('input[name="tile-scale"]')) {
    input.addEventListener("change", () => { if (input.checked) weights.setMode(input.value); });
  }

  function describeFrame(frame) {
    const hidden = frame.hidden;
    const capped = hidden.n_shown < hidden.n_neurons
      ? ` Showing the first ${hidden.n_shown} of ${hidden.n_neurons} neurons (the inspector reaches all of them with the arrow keys).` : "";
    el("tiles-caption").textContent =
      `${hidden.layer}.weight is (${hidden.n_neurons}, 784): row j, shown as 28×28, is what neuron j looks for ` +
      `(red: ink there raises its pre-activation, blue: lowers it). Step ${frame.step}.${capped} Click a tile to inspect it.`;
    el("status").textContent = `Live from the ${frame.status} run at step ${frame.step} (epoch ${frame.epoch.toFixed(2)}); ` +
      `heatmaps refresh every ${frame.interval_s.toFixed(1)} s while training.`;
  }

  const draw = {
    weights(frame) {
      weights.show(frame); // painted off the main thread, plotted when ready
      outputWeights.show(frame);
      diagram.showWeights(frame, weights.tiles());
      describeFrame(frame);
      inspector.refresh();
    },
    activations(frame) { histogram.showStats(frame); },
    distributions(frame) { distributions.show(frame); },
  };

  // Latest wins on this side too: a frame waiting to be drawn is replaced by a newer one. A
  // frame is acknowledged when the page starts drawing it (at an animation frame, so a busy or
  // hidden page slows the stream down), and the next one travels while this one is drawn.
  const waiting = new Map();
  let scheduled = false;
  function drawWaiting() {
    scheduled = false;
    for (const [stream, { frame, ack }] of [...waiting]) {
      waiting.delete(stream);
      if (typeof ack === "function") ack();
      draw[stream](frame);
    }
  }
  for (const [stream, event] of Object.entries(EVENTS)) {
    connection.on(event, (frame, ack) => {
      const previous = waiting.get(stream);
      if (previous && typeof previous.ack === "function") previous.ack();
      waiting.set(stream, { frame, ack });
      if (!scheduled) { scheduled = true; requestAnimationFrame(drawWaiting); }
    });
  }

  store.subscribe((state, patch) => {
    if ("answer" in patch) {
      histogram.showAnswer(state.answer);
      diagram.showAnswer(state.answer);
      inspector.refresh();
    }
    if ("server" in patch && state.server) diagram.setShape(state.server.model?.shape);
  });
  diagram.render();
}
