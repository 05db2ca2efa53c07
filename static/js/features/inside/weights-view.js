// Heatmaps of the weights: the first hidden layer as one mosaic of 28x28 tiles (one tile per
// neuron) on a canvas, and the output layer with its biases (a Plotly heatmap). Views: they
// draw what they are given.
import { float16 } from "../../lib/bytes.js";
import { fixed } from "../../lib/format.js";
import { signedLegend } from "../../lib/legend.js";
import { DIVERGING, plot } from "../../lib/plot.js";
import { latestOnly } from "../../lib/latest.js";
import { CELL, TILE, mosaicSize, paintMosaic } from "./mosaic.js";

// The mosaic is painted in a worker when the browser can (OffscreenCanvas), else right here.
function createPainter() {
  let worker = null;
  try {
    if (typeof OffscreenCanvas === "function") {
      worker = new Worker(new URL("./mosaic-worker.js", import.meta.url), { type: "module" });
    }
  } catch {
    worker = null;
  }
  const waiting = new Map();
  let nextId = 0;
  if (worker) {
    worker.onmessage = ({ data }) => {
      const job = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.error) job.reject(new Error(data.error)); else job.resolve(data.bitmap);
    };
  }
  return (job) => {
    if (worker) {
      return new Promise((resolve, reject) => {
        const id = (nextId += 1);
        waiting.set(id, { resolve, reject });
        worker.postMessage({ ...job, id });
      });
    }
    const { width, height } = mosaicSize(job.n, job.columns);
    const image = new ImageData(width, height);
    paintMosaic(image.data, job);
    return Promise.resolve(image);
  };
}

// The mosaic: a canvas painted off the main thread (drawing it costs a millisecond), hover
// and clicks mapped to a tile and pixel, a keyboard focus that walks the tiles.
// exactRow(index, frame): the neuron's exact weights ({weights, bias, maxAbs}) for the frame on
// screen, or null while they are being asked for (the picture carries them quantised, so the
// readout's numbers come from the row itself, as the checkpoint has them); refreshReadout() is
// called again when they arrive.
export function createHiddenWeights(element, { onSelect, onRender, readout, legend, whenVisible = (draw) => draw(),
  exactRow = () => null }) {
  const canvas = element.querySelector('[data-role="mosaic"]');
  const context = canvas.getContext("2d");
  const focusBox = element.querySelector('[data-role="focus-box"]');
  const selectedBox = element.querySelector('[data-role="selected-box"]');
  const paint = createPainter();
  let latest = null; // { tiles, meta, step, runId }: the newest frame received
  let shown = null; // the frame on screen (hover and clicks read this one)
  let mode = "shared";
  let selected = null;
  let focused = null;

  function place(box, index) {
    if (index == null || !shown || index >= shown.tiles.n) { box.hidden = true; return; }
    const { width, height } = mosaicSize(shown.tiles.n, shown.meta.columns);
    const columns = shown.meta.columns;
    Object.assign(box.style, {
      left: `${(100 * (index % columns) * CELL) / width}%`, top: `${(100 * Math.floor(index / columns) * CELL) / height}%`,
      width: `${(100 * TILE) / width}%`, height: `${(100 * TILE) / height}%`,
    });
    box.hidden = false;
  }

  // The picture is painted off the main thread; by the time it is ready the tiles may have
  // left the window, so it goes on the canvas when they are in view (whenVisible), the newest
  // picture replacing one that waits.
  let waitingPicture = null;
  const drop = (picture) => { if (picture && typeof picture.close === "function") picture.close(); };
  const render = latestOnly(async () => {
    const frame = latest;
    const jobMode = mode;
    const started = performance.now();
    const { tiles, meta } = frame;
    const picture = await paint({ codes: tiles.codes, scales: tiles.scales, n: tiles.n, columns: meta.columns,
      zero: tiles.zero, levels: tiles.levels, mode: jobMode, maxAbs: meta.max_abs });
    if (waitingPicture) drop(waitingPicture);
    waitingPicture = picture;
    whenVisible(() => {
      if (waitingPicture !== picture) return;
      waitingPicture = null;
      blit({ frame, jobMode, picture, started });
    });
  });

  function blit({ frame, jobMode, picture, started }) {
    const { tiles, meta } = frame;
    const mainStarted = performance.now();
    const { width, height } = mosaicSize(tiles.n, meta.columns);
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    if (picture instanceof ImageData) context.putImageData(picture, 0, 0);
    else { context.drawImage(picture, 0, 0); drop(picture); }
    shown = frame;
    const limit = jobMode === "per-tile" ? 1 : Math.max(meta.max_abs, 1e-9);
    legend.replaceChildren(signedLegend(limit, jobMode === "per-tile"
      ? "the neuron's pre-activation (each tile on its own scale, ±its largest |w|)" : "the neuron's pre-activation"));
    place(selectedBox, selected);
    place(focusBox, focused);
    Object.assign(element.dataset, { step: String(frame.step), runId: String(frame.runId),
      neurons: String(meta.n_shown), mode: jobMode, limit: String(limit) });
    performance.measure("inside:hidden-weights-render-sync", { start: mainStarted, duration: performance.now() - mainStarted });
    performance.measure("inside:hidden-weights-render", { start: started, duration: performance.now() - started });
    onRender?.();
  }

  function tileAt(event) {
    if (!shown) return null;
    const box = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - box.left) * canvas.width) / box.width);
    const y = Math.floor(((event.clientY - box.top) * canvas.height) / box.height);
    const { tiles, meta } = shown;
    const column = Math.floor(x / CELL);
    const row = Math.floor(y / CELL);
    if (x < 0 || y < 0 || x % CELL >= TILE || y % CELL >= TILE || column >= meta.columns) return null;
    const index = row * meta.columns + column;
    return index < tiles.n ? { index, pixel: (y % CELL) * TILE + (x % CELL), tiles } : null;
  }

  // What the readout says: a tile (focus, click) or a pixel of it (hover). Its numbers are the
  // row's exact ones; until they are here, the picture's, marked ≈ and to 2 decimals.
  let said = null; // {index} or {index, pixel}
  function describeTile(index) {
    const { tiles, meta } = shown;
    const columns = meta.columns;
    const row = exactRow(index, shown);
    const numbers = row ? `bias ${fixed(row.bias)}, weights from ${fixed(row.min)} to ${fixed(row.max)}`
      : `bias ≈${fixed(tiles.bias[index], 2)}, largest |w| ≈${fixed(tiles.largest[index], 2)}`;
    // One numbering: the neuron's (as the inspector and hidden.weight[j] count), not a tile count from 1.
    return `Neuron ${index}'s tile (row ${Math.floor(index / columns) + 1}, column ${index % columns + 1} of ${columns}): `
      + `${numbers}. ` + (selected === index ? "Open in the inspector." : "Enter opens it in the inspector.");
  }
  function describePixel(index, pixel) {
    const row = exactRow(index, shown);
    const where = `neuron ${index}: weight from pixel (row ${Math.floor(pixel / TILE)}, col ${pixel % TILE})`;
    return row ? `${where} = ${fixed(row.weights[pixel])}, bias ${fixed(row.bias)}`
      : `${where} ≈ ${fixed(shown.tiles.weight(index, pixel), 2)}, bias ≈ ${fixed(shown.tiles.bias[index], 2)}`;
  }
  function say(what) {
    said = what;
    if (!readout || !shown || !what) return;
    readout.textContent = what.pixel == null ? describeTile(what.index) : describePixel(what.index, what.pixel);
  }

  // A pointer press picks its tile before the focus event (which would otherwise say tile 1).
  canvas.addEventListener("pointerdown", (event) => {
    const hit = tileAt(event);
    if (hit) focused = hit.index;
  });
  canvas.addEventListener("click", (event) => {
    const hit = tileAt(event);
    if (hit) { focused = hit.index; place(focusBox, null); onSelect(hit.index); say({ index: hit.index }); }
  });
  canvas.addEventListener("pointermove", (event) => {
    if (event.pointerType === "touch") return; // a finger's drag is a scroll, not a hover
    const hit = tileAt(event);
    if (hit) say({ index: hit.index, pixel: hit.pixel });
  });

  // The keyboard path: focus the mosaic, walk the tiles with the arrows, Enter or Space opens
  // the focused one (with a tile open, the inspector follows the focus).
  element.addEventListener("keydown", (event) => {
    if (!shown) return;
    const columns = shown.meta.columns;
    const n = shown.tiles.n;
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -n, End: n };
    if (event.key in steps) {
      event.preventDefault();
      const from = focused ?? selected ?? 0;
      focused = focused == null && selected == null ? 0 : Math.min(n - 1, Math.max(0, from + steps[event.key]));
      place(focusBox, focused);
      if (selected != null) onSelect(focused);
      say({ index: focused });
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.stopPropagation();
      focused = focused ?? selected ?? 0;
      place(focusBox, focused);
      onSelect(focused, { focusInspector: true });
      say({ index: focused });
    }
  });
  element.addEventListener("focus", () => {
    if (!shown) return;
    focused = focused ?? selected ?? 0;
    place(focusBox, focused);
    say({ index: focused });
  });
  element.addEventListener("blur", () => place(focusBox, null));

  return {
    show(frame, tiles) {
      latest = { tiles, meta: frame.hidden, step: frame.step, runId: frame.run_id };
      render();
    },
    setMode(next) { mode = next; if (latest) render(); },
    select(index) {
      selected = index;
      if (index != null) focused = index;
      place(selectedBox, selected);
      if (document.activeElement === element) place(focusBox, focused);
    },
    focus() { element.focus({ preventScroll: false }); },
    refreshReadout() { say(said); },
    meta: () => latest?.meta ?? null,
  };
}

export function createOutputWeights(element, legend) {
  const layout = (shape, fromLayer) => ({
    margin: { l: 44, r: 8, t: 8, b: 36 },
    grid: { rows: 1, columns: 2 },
    xaxis: { domain: [0, 0.92], title: { text: `${fromLayer} neuron j (${shape[1]})` }, zeroline: false },
    yaxis: { title: { text: "digit k" }, tickvals: [...Array(10).keys()], autorange: "reversed", zeroline: false },
    xaxis2: { domain: [0.94, 1], tickvals: [0], ticktext: ["bias"], zeroline: false },
    yaxis2: { anchor: "x2", tickvals: [...Array(10).keys()], autorange: "reversed", showticklabels: false },
  });
  return {
    show(frame) {
      const output = frame.output;
      const [rows, columns] = output.shape;
      const values = output.values ?? float16(output.data); // a weights-delta frame: values rebuilt
      const z = [];
      for (let k = 0; k < rows; k += 1) z.push(Array.from(values.subarray(k * columns, (k + 1) * columns)));
      const limit = Math.max(output.max_abs, 1e-9);
      const biasLimit = Math.max(...output.bias.map(Math.abs), 1e-9);
      plot(element, [
        { type: "heatmap", z, zmin: -limit, zmax: limit, zmid: 0, colorscale: DIVERGING, zsmooth: false, showscale: false,
          // The picture's weights are 16-bit floats (the checkpoint's are 32-bit): said as near, to 3 places.
          hovertemplate: `weight from ${output.from_layer} neuron %{x} to digit %{y}: ≈%{z:.3f}<extra></extra>` },
        { type: "heatmap", z: output.bias.map((b) => [b]), xaxis: "x2", yaxis: "y2", zmin: -biasLimit, zmax: biasLimit,
          zmid: 0, colorscale: DIVERGING, showscale: false,
          hovertemplate: "bias of digit %{y}: %{z:.4f}<extra></extra>" },
      ], layout(output.shape, output.from_layer));
      legend.replaceChildren(signedLegend(limit, "the digit's logit (the biases have their own scale)"));
      element.dataset.step = String(frame.step);
      element.dataset.limit = String(limit);
    },
  };
}
