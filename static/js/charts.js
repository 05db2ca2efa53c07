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
// Live points are drawn in batches, at most this often: every Plotly redraw lays out and measures
// the whole chart (~25 ms each on a busy machine), so one per metrics message (10/s, two charts)
// kept the page's main thread saturated.
const REDRAW_MS = 250;

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
  let pending = { points: [], records: [] }; // arrived, not drawn yet
  let flushTimer = null;
  const draw = () => {
    // live.history and live.epochs are the page's arrays, pending points included.
    pending = { points: [], records: [] };
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
    addPoint(point) {
      pending.points.push(point);
      scheduleFlush();
    },
    addEpoch(record) {
      pending.records.push(record);
      scheduleFlush();
    },
  };
  function scheduleFlush() {
    if (flushTimer === null) flushTimer = setTimeout(() => { flushTimer = null; flush(); }, REDRAW_MS);
  }
  // The live run's traces come first, so these indices hold whatever is overlaid.
  function flush() {
    const { points, records } = pending;
    pending = { points: [], records: [] };
    for (const chart of charts) {
      const update = { x: [], y: [] };
      const indices = [];
      if (points.length) {
        update.x.push(points.map((p) => p.epoch)); update.y.push(points.map((p) => p[chart.key]));
        indices.push(TRAIN);
      }
      if (records.length) {
        update.x.push(records.map((r) => r.epoch)); update.y.push(records.map((r) => r[`val_${chart.key}`]));
        indices.push(VALIDATION);
      }
      if (indices.length) Plotly.extendTraces(chart.element, update, indices);
    }
  }
  instances.add(instance);
  return instance;
}
