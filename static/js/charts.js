// Loss and accuracy curves (Plotly). Pure views: they draw what they are given.
// Recorded runs can be drawn over the live run (setCurveOverlays): dashed, one colour per run.
const TRAIN = 0;
const VALIDATION = 1;

const baseLayout = (title, yTitle, yRange) => ({
  title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left" },
  margin: { l: 48, r: 12, t: 32, b: 36 },
  xaxis: { title: { text: "epoch" }, rangemode: "tozero", zeroline: false },
  yaxis: { title: { text: yTitle }, range: yRange, zeroline: false },
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom", font: { size: 11 } },
  uirevision: "keep", // keep the user's zoom across updates
});

const CONFIG = { displaylogo: false, responsive: true };

export const OVERLAY_COLORS = ["#7b3fb8", "#16a085", "#d35400", "#2c3e50", "#b7950b", "#c0392b", "#27ae60", "#8e44ad"];

function traces(history, epochs, key) {
  return [
    { name: "train (running average)", x: history.map((p) => p.epoch), y: history.map((p) => p[key]),
      mode: "lines", line: { color: "#2f6fde", width: 1.5 } },
    { name: "validation (end of epoch)", x: epochs.map((e) => e.epoch), y: epochs.map((e) => e[`val_${key}`]),
      mode: "lines+markers", line: { color: "#e4572e", width: 2 } },
  ];
}

// A recorded run: its train curve dashed, its validation points dotted, one legend entry.
function overlayTraces(run, key) {
  const group = `run-${run.id}`;
  return [
    { name: run.label, legendgroup: group, x: run.history.map((p) => p.epoch), y: run.history.map((p) => p[key]),
      mode: "lines", line: { color: run.color, width: 1.2, dash: "dash" }, meta: { run: run.id, curve: "train" },
      hovertemplate: `${run.label}<br>train %{y:.4f} at epoch %{x:.2f}<extra></extra>` },
    { name: `${run.label} (validation)`, legendgroup: group, showlegend: false,
      x: run.epochs.map((e) => e.epoch), y: run.epochs.map((e) => e[`val_${key}`]),
      mode: "lines+markers", line: { color: run.color, width: 1.5, dash: "dot" }, marker: { size: 5 },
      meta: { run: run.id, curve: "validation" },
      hovertemplate: `${run.label}<br>validation %{y:.4f} after epoch %{x}<extra></extra>` },
  ];
}

const instances = new Set();
let overlays = []; // [{id, label, color, history, epochs}]

// Draw these recorded runs over every curves view (an empty list removes them).
export function setCurveOverlays(runs) {
  overlays = runs;
  for (const instance of instances) instance.redraw();
}

export function createCurves(lossElement, accuracyElement) {
  const charts = [
    { element: lossElement, key: "loss", layout: baseLayout("Loss (cross-entropy)", "loss") },
    { element: accuracyElement, key: "accuracy", layout: baseLayout("Accuracy", "accuracy", [0, 1]) },
  ];
  let live = { history: [], epochs: [] };
  const draw = () => {
    for (const chart of charts) {
      const data = traces(live.history, live.epochs, chart.key)
        .concat(overlays.flatMap((run) => overlayTraces(run, chart.key)));
      Plotly.react(chart.element, data, chart.layout, CONFIG);
    }
  };
  const instance = {
    // Redraw from the whole history (on connect and on every state change).
    render(history, epochs) {
      live = { history, epochs };
      draw();
    },
    redraw: draw,
    // The live run's traces come first, so these indices hold whatever is overlaid.
    addPoint(point) {
      for (const chart of charts) {
        Plotly.extendTraces(chart.element, { x: [[point.epoch]], y: [[point[chart.key]]] }, [TRAIN]);
      }
    },
    addEpoch(record) {
      for (const chart of charts) {
        Plotly.extendTraces(chart.element, { x: [[record.epoch]], y: [[record[`val_${chart.key}`]]] }, [VALIDATION]);
      }
    },
  };
  instances.add(instance);
  return instance;
}
