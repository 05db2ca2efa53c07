// Loss and accuracy curves (Plotly). A view: it draws the state it is shown (the live run and
// the recorded runs overlaid on it, dashed, one colour per run), only while it is in view.
import { COLORS, plot } from "./lib/plot.js";
import { latestOnly } from "./lib/latest.js";
import { SHARED } from "./lib/viewer.js";

const TRAIN = 0;
const VALIDATION = 1;
// Live points are drawn in batches, at most this often: every Plotly redraw lays out and measures
// the whole chart, so one per metrics message (10/s, two charts) kept the main thread busy.
const REDRAW_MS = 400;

// The replay's step on the curves: a dashed line at its epoch (null: none).
function markerShapes(epoch) {
  return epoch == null ? [] : [{ type: "line", xref: "x", yref: "paper", x0: epoch, x1: epoch, y0: 0, y1: 1,
    line: { color: "#545d70", width: 1.5, dash: "dot" } }];
}

function layout(title, yTitle, { empty, epochs, accuracy, legendRows, marker }) {
  return {
    shapes: markerShapes(marker),
    title: { text: title, font: { size: 13 }, x: 0.01, xanchor: "left", y: 0.98, yanchor: "top" },
    margin: { l: 44, r: 10, t: 24, b: 24 + 18 * legendRows },
    // An empty chart still shows the run's epochs and a sensible scale, never a negative loss.
    xaxis: { zeroline: false, ...(empty ? { range: [0, Math.max(1, epochs)] } : { rangemode: "tozero" }) },
    yaxis: { title: { text: yTitle, standoff: 2 }, zeroline: false,
      ...(accuracy ? { range: [0, 1] } : empty ? { range: [0, 2.5] } : { rangemode: "tozero" }) },
    // At the foot of the chart, under the tick labels: however many runs are overlaid, the
    // title and the curves stay clear.
    legend: { orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom", font: { size: 11 } },
    showlegend: true,
  };
}

function liveTraces(history, epochs, key) {
  return [
    { name: "train (running average)", x: history.map((p) => p.epoch), y: history.map((p) => p[key]),
      mode: "lines", line: { color: COLORS.train, width: 1.5 } },
    { name: "validation (end of epoch)", x: epochs.map((e) => e.epoch), y: epochs.map((e) => e[`val_${key}`]),
      mode: "lines+markers", line: { color: COLORS.validation, width: 2 } },
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

const runOf = (server, run) => `${run}/${server.run_id}`;

export function createCurves({ panel, lossElement, accuracyElement, visibility }) {
  const charts = [
    { element: lossElement, key: "loss", title: "Loss (cross-entropy) by epoch", yTitle: "loss" },
    { element: accuracyElement, key: "accuracy", title: "Accuracy by epoch", yTitle: "accuracy" },
  ];
  let wanted = null; // {server, overlays}: what should be on screen
  let drawn = null; // {run, history, epochs, overlays}: what is
  let timer = null;
  let marker = null; // the replay's epoch, or null

  // Each chart in its own task: the two together were one long task on a busy machine.
  const nextTask = () => new Promise((resolve) => { setTimeout(resolve, 0); });

  async function redrawAll({ server, overlays }) {
    const { history, epochs } = server;
    const empty = history.length === 0 && epochs.length === 0 && overlays.length === 0;
    const legendRows = Math.ceil((2 + overlays.length) / 3);
    // A script's own network counts its steps, unless it says its epochs (features/watched.js).
    const by = server.watched && !server.watched.numbers.includes("epoch") ? "step" : "epoch";
    for (const chart of charts) {
      const data = liveTraces(history, epochs, chart.key).concat(overlays.flatMap((run) => overlayTraces(run, chart.key)));
      await plot(chart.element, data, layout(chart.title.replace(/epoch$/, by), chart.yTitle,
        { empty, epochs: server.config.epochs, accuracy: chart.key === "accuracy", legendRows, marker }));
      await nextTask();
    }
  }

  // Only what arrived since the last draw, when it is a pure extension of it.
  function extension({ server, overlays, run }) {
    if (!drawn || drawn.run !== runOf(server, run) || drawn.overlays !== overlays) return null;
    const { history, epochs } = server;
    const n = drawn.history.length;
    const m = drawn.epochs.length;
    if (history.length < n || (n && history[n - 1] !== drawn.history[n - 1])) return null; // thinned
    if (epochs.length < m || (m && epochs[m - 1] !== drawn.epochs[m - 1])) return null;
    if (n === 0 && history.length && m === 0) return null; // the first points: rescale the axes
    return { points: history.slice(n), records: epochs.slice(m) };
  }

  // One draw at a time (the first waits for Plotly); a draw asked meanwhile runs after it.
  const draw = latestOnly(async () => {
    if (!wanted) return;
    const job = wanted;
    const added = extension(job);
    if (added) {
      for (const chart of charts) {
        const update = { x: [], y: [] };
        const indices = [];
        if (added.points.length) {
          update.x.push(added.points.map((p) => p.epoch)); update.y.push(added.points.map((p) => p[chart.key]));
          indices.push(TRAIN);
        }
        if (added.records.length) {
          update.x.push(added.records.map((r) => r.epoch)); update.y.push(added.records.map((r) => r[`val_${chart.key}`]));
          indices.push(VALIDATION);
        }
        if (indices.length) { Plotly.extendTraces(chart.element, update, indices); await nextTask(); }
      }
    } else {
      await redrawAll(job);
    }
    drawn = { run: runOf(job.server, job.run), history: job.server.history, epochs: job.server.epochs, overlays: job.overlays };
  });

  function schedule(now) {
    if (now) { clearTimeout(timer); timer = null; visibility.whenVisible(panel, draw); return; }
    if (timer === null) timer = setTimeout(() => { timer = null; visibility.whenVisible(panel, draw); }, REDRAW_MS);
  }

  return {
    // The replay's point on the curves (null: live, no marker).
    mark(epoch) {
      if (epoch === marker) return;
      marker = epoch;
      for (const chart of charts) {
        if (chart.element.layout) Plotly.relayout(chart.element, { shapes: markerShapes(marker) });
      }
      for (const chart of charts) chart.element.dataset.marker = marker == null ? "" : String(marker);
    },
    // The state to show: new points are drawn in batches, anything else at once.
    // run: the key of the run it belongs to (runs number their resets alike: "shared/2", "p-…/2").
    show(server, overlays, run = SHARED) {
      if (!server) return;
      wanted = { server, overlays, run };
      schedule(!extension(wanted));
    },
  };
}
