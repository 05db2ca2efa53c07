// Heatmaps of the weights: the first hidden layer as one mosaic of 28x28 tiles (one tile per
// neuron, all in one Plotly image trace), and the output layer with its biases (a heatmap).
import { decodeTiles, float16 } from "./decode.js";
import { CELL, DIVERGING, GAP, TILE, mosaicSize, paintMosaic } from "./mosaic.js";

export { DIVERGING };
const CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };

const fmt = (v, digits = 4) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

// The mosaic is painted in a worker when the browser can (OffscreenCanvas), else right here.
function createPainter() {
  let worker = null;
  try {
    if (typeof OffscreenCanvas === "function") {
      worker = new Worker(new URL("./mosaic-worker.js", import.meta.url), { type: "module" });
    }
  } catch (err) {
    worker = null;
  }
  const waiting = new Map();
  let nextId = 0;
  if (worker) {
    worker.onmessage = ({ data }) => {
      const job = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.error) job.reject(new Error(data.error)); else job.resolve(data.url);
    };
  }
  const canvas = document.createElement("canvas");
  return (job) => {
    if (worker) {
      return new Promise((resolve, reject) => {
        const id = (nextId += 1);
        waiting.set(id, { resolve, reject });
        worker.postMessage({ ...job, id });
      });
    }
    const { width, height } = mosaicSize(job.n, job.columns);
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    paintMosaic(image.data, job);
    context.putImageData(image, 0, 0);
    return Promise.resolve(canvas.toDataURL("image/png"));
  };
}

function selectionShape(index, columns) {
  const x0 = (index % columns) * CELL - 0.5;
  const y0 = Math.floor(index / columns) * CELL - 0.5;
  return { type: "rect", x0, x1: x0 + TILE, y0, y1: y0 + TILE, layer: "above", line: { color: "#111", width: 2.5 } };
}

// The mosaic is drawn as a Plotly image trace: the colours come from a 256-entry lookup of the
// uint8 codes (one pass over 200,704 bytes), so a frame costs a few milliseconds where a
// 448x448 heatmap trace spends tens of ms mapping each cell through its colour scale.
// A two-stage pipeline, newest state wins at each stage: (1) paint + PNG (worker), (2) the
// Plotly call. A new frame is painted while the previous one is being plotted.
export function createHiddenWeights(element, { onSelect, onRender, readout }) {
  let latest = null; // { tiles, meta, step, runId }: the newest frame received
  let shown = null; // the same for the picture on screen (hover and clicks read this one)
  let mode = "shared";
  let selected = null;
  const paint = createPainter();
  let paintWanted = false;
  let painting = false;
  let ready = null; // a painted picture waiting for stage 2
  let plotting = false;
  let lastPlotted = null;

  function labels({ tiles, meta }, rows, width) {
    // Hover names the neuron: one label array per row of tiles, shared by its pixel rows.
    const { n, bias, scales } = tiles;
    const columns = meta.columns;
    const perRow = [];
    for (let t = 0; t < rows; t += 1) {
      const row = new Array(width).fill("");
      for (let c = 0; c < width; c += 1) {
        const j = t * columns + Math.floor(c / CELL);
        if (c % CELL < TILE && j < n) row[c] = `neuron ${j} · bias ${fmt(bias[j])} · max |w| ${fmt(scales[j])}`;
      }
      perRow.push(row);
    }
    const gapRow = new Array(width).fill("");
    const text = [];
    for (let y = 0; y < rows * CELL - GAP; y += 1) text.push(y % CELL < TILE ? perRow[Math.floor(y / CELL)] : gapRow);
    return text;
  }

  // Stage 1: a PNG data: URI (Plotly's image trace takes no other source), off the main thread.
  async function runPaint() {
    painting = true;
    try {
      while (paintWanted) {
        paintWanted = false;
        const frame = latest;
        const started = performance.now();
        const { tiles, meta } = frame;
        const url = await paint({ codes: tiles.codes, scales: tiles.scales, n: tiles.n, columns: meta.columns,
          zero: tiles.zero, mode, maxAbs: meta.max_abs });
        ready = { frame, url, mode, started };
        if (!plotting) runPlot();
      }
    } finally {
      painting = false;
    }
  }

  // Stage 2: the Plotly call (also re-run alone when only the selection changes).
  async function runPlot() {
    plotting = true;
    try {
      while (ready) {
        const job = ready;
        ready = null;
        await plot(job);
        lastPlotted = job;
      }
    } finally {
      plotting = false;
    }
  }

  async function plot({ frame, url, mode: jobMode, started }) {
    const { tiles, meta } = frame;
    const mainStarted = performance.now();
    const columns = meta.columns;
    const { rows, width, height } = mosaicSize(tiles.n, columns);
    const limit = jobMode === "per-tile" ? 1 : Math.max(meta.max_abs, 1e-9);
    const traces = [
      { type: "image", source: url, x0: 0, y0: 0, dx: 1, dy: 1, hovertext: labels(frame, rows, width),
        hovertemplate: "%{hovertext}<extra></extra>", zsmooth: false,
        hoverlabel: { bgcolor: "#ffffff", bordercolor: "#333333", font: { color: "#111111" } } },
      // The colour bar: an image trace has none, so a one-cell heatmap off-screen carries it.
      { type: "heatmap", z: [[-limit, limit]], x: [-10, -9], y: [-10, -10], zmin: -limit, zmax: limit,
        colorscale: DIVERGING, hoverinfo: "skip",
        colorbar: { thickness: 10, len: 0.8, title: { text: jobMode === "per-tile" ? "w / max|w|" : "weight", side: "right" } } },
    ];
    const layout = {
      margin: { l: 4, r: 4, t: 4, b: 4 },
      xaxis: { visible: false, range: [-0.5, width - 0.5], fixedrange: true, constrain: "domain" },
      yaxis: { visible: false, range: [height - 0.5, -0.5], fixedrange: true, scaleanchor: "x", constrain: "domain" },
      shapes: selected != null && selected < tiles.n ? [selectionShape(selected, columns)] : [],
      plot_bgcolor: "#ffffff", paper_bgcolor: "#ffffff", hovermode: "closest",
    };
    const drawn = Plotly.react(element, traces, layout, CONFIG);
    // Main-thread time of the Plotly call (the hover labels included); then the whole render,
    // from the start of painting until Plotly has the image (other work of the page included).
    performance.measure("inside:hidden-weights-render-sync", { start: mainStarted, duration: performance.now() - mainStarted });
    await drawn;
    shown = frame;
    bindEvents();
    element.dataset.step = String(frame.step);
    element.dataset.runId = String(frame.runId);
    element.dataset.neurons = String(meta.n_shown);
    element.dataset.mode = jobMode;
    if (started != null) {
      const elapsed = performance.now() - started;
      performance.measure("inside:hidden-weights-render", { start: started, duration: elapsed });
      onRender?.(elapsed);
    }
  }

  function repaint() {
    paintWanted = true;
    if (!painting) runPaint();
  }

  function tileAt(point) {
    if (!shown) return null;
    const { tiles, meta } = shown;
    const column = Math.floor(point.x / CELL);
    const row = Math.floor(point.y / CELL);
    if (point.x % CELL >= TILE || point.y % CELL >= TILE || column >= meta.columns) return null;
    const index = row * meta.columns + column;
    return index < tiles.n ? { index, pixel: (point.y % CELL) * TILE + (point.x % CELL), tiles } : null;
  }

  // Plotly gives the element .on() at its first render; bind the events once after it.
  function bindEvents() {
    if (element.dataset.eventsBound) return;
    element.dataset.eventsBound = "1";
    element.on("plotly_click", (event) => {
      const hit = event.points?.[0] ? tileAt(event.points[0]) : null;
      if (hit) onSelect(hit.index);
    });
    element.on("plotly_hover", (event) => {
      const hit = event.points?.[0] ? tileAt(event.points[0]) : null;
      if (!hit || !readout) return;
      const row = Math.floor(hit.pixel / TILE);
      const col = hit.pixel % TILE;
      readout.textContent = `neuron ${hit.index}: weight from pixel (row ${row}, col ${col}) = ` +
        `${fmt(hit.tiles.weight(hit.index, hit.pixel))}, bias ${fmt(hit.tiles.bias[hit.index])}`;
    });
  }

  return {
    show(frame) {
      latest = { tiles: decodeTiles(frame.hidden), meta: frame.hidden, step: frame.step, runId: frame.run_id };
      repaint();
    },
    setMode(next) { mode = next; if (latest) repaint(); },
    select(index) {
      selected = index;
      if (lastPlotted && !ready) {
        ready = { ...lastPlotted, started: null }; // same picture, new selection box
        if (!plotting) runPlot();
      }
    },
    tiles: () => latest?.tiles ?? null,
    meta: () => latest?.meta ?? null,
  };
}

export function createOutputWeights(element) {
  const layout = (shape, fromLayer) => ({
    margin: { l: 40, r: 8, t: 8, b: 36 },
    grid: { rows: 1, columns: 2 },
    xaxis: { domain: [0, 0.9], title: { text: `${fromLayer} neuron j (${shape[1]})` }, zeroline: false },
    yaxis: { title: { text: "digit k" }, tickvals: [...Array(10).keys()], autorange: "reversed", zeroline: false },
    xaxis2: { domain: [0.93, 1], tickvals: [0], ticktext: ["bias"], zeroline: false },
    yaxis2: { anchor: "x2", tickvals: [...Array(10).keys()], autorange: "reversed", showticklabels: false },
  });
  return {
    show(frame) {
      const output = frame.output;
      const [rows, columns] = output.shape;
      const values = float16(output.data);
      const z = [];
      for (let k = 0; k < rows; k += 1) z.push(values.subarray(k * columns, (k + 1) * columns));
      const limit = Math.max(output.max_abs, 1e-9);
      const biasLimit = Math.max(...output.bias.map(Math.abs), 1e-9);
      const traces = [
        { type: "heatmap", z, zmin: -limit, zmax: limit, zmid: 0, colorscale: DIVERGING, zsmooth: false,
          colorbar: { thickness: 8, x: 1.01, len: 0.9, title: { text: "weight", side: "right" } },
          hovertemplate: `weight from ${output.from_layer} neuron %{x} to digit %{y}: %{z:.4f}<extra></extra>` },
        { type: "heatmap", z: output.bias.map((b) => [b]), xaxis: "x2", yaxis: "y2", zmin: -biasLimit, zmax: biasLimit,
          zmid: 0, colorscale: DIVERGING, showscale: false,
          hovertemplate: "bias of digit %{y}: %{z:.4f}<extra></extra>" },
      ];
      Plotly.react(element, traces, layout(output.shape, output.from_layer), CONFIG);
      element.dataset.step = String(frame.step);
    },
  };
}
