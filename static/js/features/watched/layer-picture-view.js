// One Linear layer of a watched network as a picture (watch:weights): a layer whose inputs are
// an image shows each neuron as a tile (grey on the page's diverging scale; colour: the weights
// of its three channels as red, green and blue), any other as rows, one row per neuron. The
// canvas holds one pixel per weight (CSS scales it up, pixelated), so what is drawn is exactly
// the codes the server sent. Arrow keys (and a click) pick a neuron, read out below. Renders only.
import { element } from "../../lib/dom.js";
import { LOOKUP } from "../../lib/palette.js";
import { signedLegend } from "../../lib/legend.js";
import { short, thousands } from "../../lib/format.js";
import { toBytes } from "../../lib/bytes.js";
import { histogramBars } from "./histograms-view.js";
import { plot, purge } from "../../lib/plot.js";

const GAP = 1; // pixels between tiles, in the canvas (the selected tile's outline is drawn there)
const GAP_COLOUR = [255, 255, 255];
const OUTLINE = "#f0a000";
const ROWS_ASPECT = 4; // rows: about this many times wider than tall, each row at least one pixel
const MAX_ROW_WIDTH = 4096; // pixels: a wider layer's rows are folded into lines this wide

// Where each neuron is drawn: tiles in a near-square grid, or rows.
function layout(picture) {
  const [channels, height, width] = picture.image ?? [0, 0, 0];
  const n = picture.neurons;
  if (picture.image) {
    const columns = Math.ceil(Math.sqrt(n * height / width));
    const rows = Math.ceil(n / columns);
    return { mode: channels === 3 ? "colour-tiles" : "grey-tiles", columns, rows, tileWidth: width, tileHeight: height,
      canvasWidth: columns * (width + GAP) - GAP, canvasHeight: rows * (height + GAP) - GAP };
  }
  // A very wide row is folded into lines of MAX_ROW_WIDTH (a canvas has a largest width).
  const rowWidth = Math.min(picture.in_features, MAX_ROW_WIDTH);
  const lines = Math.ceil(picture.in_features / rowWidth);
  const rowHeight = lines > 1 ? 1 : Math.max(1, Math.min(16, Math.round(picture.in_features / n / ROWS_ASPECT)));
  return { mode: "rows", columns: 1, rows: n, tileWidth: rowWidth, tileHeight: rowHeight * lines, lineHeight: rowHeight,
    canvasWidth: rowWidth, canvasHeight: n * rowHeight * lines };
}

function paint(context, picture, shape) {
  const codes = toBytes(picture.codes);
  const image = context.createImageData(shape.canvasWidth, shape.canvasHeight);
  const pixels = image.data;
  for (let i = 0; i < pixels.length; i += 4) {
    [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]] = [...GAP_COLOUR, 255];
  }
  const inputs = picture.in_features;
  for (let j = 0; j < picture.neurons; j += 1) {
    const row = codes.subarray(j * inputs, (j + 1) * inputs);
    if (shape.mode === "rows") {
      for (let i = 0; i < inputs; i += 1) {
        const x = i % shape.tileWidth;
        const top = j * shape.tileHeight + Math.floor(i / shape.tileWidth) * shape.lineHeight;
        const colour = row[i] * 4;
        for (let y = top; y < top + shape.lineHeight; y += 1) {
          const at = (y * shape.canvasWidth + x) * 4;
          pixels[at] = LOOKUP[colour]; pixels[at + 1] = LOOKUP[colour + 1]; pixels[at + 2] = LOOKUP[colour + 2];
        }
      }
      continue;
    }
    const left = (j % shape.columns) * (shape.tileWidth + GAP);
    const top = Math.floor(j / shape.columns) * (shape.tileHeight + GAP);
    const area = shape.tileWidth * shape.tileHeight;
    for (let y = 0; y < shape.tileHeight; y += 1) {
      for (let x = 0; x < shape.tileWidth; x += 1) {
        const at = ((top + y) * shape.canvasWidth + left + x) * 4;
        const p = y * shape.tileWidth + x;
        if (shape.mode === "colour-tiles") {
          // Channel-first, as torch flattens (3, H, W): red, green, blue are the three channels' codes.
          pixels[at] = row[p]; pixels[at + 1] = row[area + p]; pixels[at + 2] = row[2 * area + p];
        } else {
          const colour = row[p] * 4;
          pixels[at] = LOOKUP[colour]; pixels[at + 1] = LOOKUP[colour + 1]; pixels[at + 2] = LOOKUP[colour + 2];
        }
      }
    }
  }
  context.putImageData(image, 0, 0);
}

function outline(context, shape, index) {
  if (index == null || shape.mode === "rows") return;
  const left = (index % shape.columns) * (shape.tileWidth + GAP);
  const top = Math.floor(index / shape.columns) * (shape.tileHeight + GAP);
  context.strokeStyle = OUTLINE;
  context.lineWidth = 1;
  context.strokeRect(left - 0.5, top - 0.5, shape.tileWidth + 1, shape.tileHeight + 1);
}

function describe(picture, shape) {
  const [channels, height, width] = picture.image ?? [];
  const weight = `${picture.path || "model"}.weight is (${thousands(picture.out_features)}, ${thousands(picture.in_features)})`;
  const what = shape.mode === "colour-tiles"
    ? `row j, shown as ${height}×${width} in colour (its ${channels} input channels as red, green and blue), is what neuron j looks for`
    : shape.mode === "grey-tiles" ? `row j, shown as ${height}×${width}, is what neuron j looks for`
      : `row j is neuron j's ${thousands(picture.in_features)} weights, left to right (its inputs are no image the page knows: `
        + "watch(..., image_shape=...) says how they read as one)"
        + (shape.tileWidth < picture.in_features ? `, each folded into lines of ${thousands(shape.tileWidth)}` : "");
  const capped = picture.neurons < picture.out_features
    ? ` Showing the first ${thousands(picture.neurons)} of ${thousands(picture.out_features)} neurons.` : "";
  return `${weight}: ${what}. Step ${thousands(picture.step)}.${capped}`;
}

// The layer's weights over training: bands between its quantiles at each snapshot (min to max,
// 5% to 95%, the middle half) and the median line.
const BANDS = [[0, 6, "rgba(107, 91, 181, 0.15)", "min to max"], [1, 5, "rgba(107, 91, 181, 0.3)", "5% to 95%"],
  [2, 4, "rgba(107, 91, 181, 0.5)", "middle half"]];

function drawSpread(element, picture) {
  const steps = picture.spread.map((p) => p.step);
  const q = (k) => picture.spread.map((p) => p.q[k]);
  const traces = BANDS.flatMap(([low, high, colour, name]) => [
    { x: steps, y: q(low), mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
    { x: steps, y: q(high), mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: colour, name, hoverinfo: "skip" },
  ]).concat([{ x: steps, y: q(3), mode: "lines+markers", marker: { size: 3 }, line: { color: "#3d2f8f", width: 1.5 },
    name: "median", hovertemplate: "median %{y:.3g} at step %{x}<extra></extra>" }]);
  const last = picture.spread[picture.spread.length - 1];
  element.setAttribute("aria-label", last ? `${picture.path || "model"}'s weights over training: ${picture.spread.length} `
    + `snapshots from step ${steps[0]} to ${last.step}; at step ${last.step} the median is ${short(last.q[3])}, 5% to 95% `
    + `from ${short(last.q[1])} to ${short(last.q[5])}, all from ${short(last.q[0])} to ${short(last.q[6])}.` : "No snapshots yet.");
  element.dataset.points = String(picture.spread.length);
  return plot(element, traces, { margin: { l: 44, r: 8, t: 6, b: 24 }, showlegend: true,
    legend: { orientation: "h", x: 0, y: -0.25, font: { size: 10 } }, xaxis: { title: { text: "step", standoff: 2 } } });
}

export function createLayerPicture({ canvas, caption, legend, readout, histogram, spread, onPick }) {
  const context = canvas.getContext("2d");
  let picture = null;
  let shape = null;
  let selected = null;

  function read(index) {
    if (!picture || index == null) { readout.textContent = ""; return; }
    const codes = toBytes(picture.codes).subarray(index * picture.in_features, (index + 1) * picture.in_features);
    let lo = 255;
    let hi = 0;
    for (const c of codes) { lo = Math.min(lo, c); hi = Math.max(hi, c); }
    const weight = (c) => short(((c - 128) / 127) * picture.limit);
    const bias = picture.bias ? `, bias ${short(picture.bias[index])}` : "";
    readout.textContent = `Neuron ${index} (row ${index} of ${picture.path || "model"}.weight): weights from ${weight(lo)} `
      + `to ${weight(hi)}${bias}.`;
  }

  function draw() {
    canvas.width = shape.canvasWidth;
    canvas.height = shape.canvasHeight;
    paint(context, picture, shape);
    outline(context, shape, selected);
    Object.assign(canvas.dataset, { step: String(picture.step), layer: String(picture.index), mode: shape.mode,
      columns: String(shape.columns), tileWidth: String(shape.tileWidth), tileHeight: String(shape.tileHeight),
      gap: String(shape.mode === "rows" ? 0 : GAP), lineHeight: String(shape.lineHeight ?? ""),
      neurons: String(picture.neurons), limit: String(picture.limit),
      selected: selected == null ? "" : String(selected) });
  }

  function pick(index) {
    if (!picture) return;
    selected = Math.max(0, Math.min(picture.neurons - 1, index));
    draw();
    read(selected);
    onPick?.(selected);
  }

  canvas.addEventListener("keydown", (event) => {
    if (!picture) return;
    const step = shape.mode === "rows" ? 1 : shape.columns;
    const at = selected ?? -1;
    const next = { ArrowLeft: at - 1, ArrowRight: at + 1, ArrowUp: at - step, ArrowDown: at + step, Home: 0,
      End: picture.neurons - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    pick(Math.max(0, next));
  });
  const under = (event) => {
    if (!picture) return null;
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * canvas.width;
    const y = ((event.clientY - box.top) / box.height) * canvas.height;
    if (shape.mode === "rows") return Math.min(picture.neurons - 1, Math.floor(y / shape.tileHeight));
    const index = Math.floor(y / (shape.tileHeight + GAP)) * shape.columns + Math.floor(x / (shape.tileWidth + GAP));
    return index < picture.neurons ? index : null;
  };
  canvas.addEventListener("click", (event) => { const index = under(event); if (index != null) pick(index); });
  canvas.addEventListener("mousemove", (event) => { const index = under(event); if (index != null) read(index); });
  canvas.addEventListener("mouseleave", () => read(selected));

  return {
    show(next) {
      const sameLayer = picture && picture.index === next.index && picture.path === next.path;
      picture = next;
      shape = layout(picture);
      if (!sameLayer || (selected != null && selected >= picture.neurons)) selected = null;
      draw();
      caption.textContent = describe(picture, shape);
      canvas.setAttribute("aria-label", `${picture.path || "model"}'s weights, ${shape.mode === "rows" ? "one row"
        : "one tile"} per neuron (${thousands(picture.neurons)}); arrow keys pick a neuron`);
      legend.replaceChildren(shape.mode === "colour-tiles"
        ? element("p", { className: "inside-caption", "data-testid": "colour-legend",
          text: `Each pixel's red, green and blue are its weights from the 3 channels: bright is positive, dark negative, `
            + `mid-grey 0 (the scale is ±${short(picture.limit)}).` })
        : signedLegend(picture.limit, "the neuron"));
      histogram.replaceChildren(histogramBars(picture.histogram,
        `${picture.path || "model"}'s weights at step ${picture.step}`,
        "#6b5bb5"));
      read(selected);
      if (picture.spread) drawSpread(spread, picture);
    },
    clear(words) {
      picture = null;
      canvas.width = 0;
      canvas.height = 0;
      delete canvas.dataset.step;
      caption.textContent = words;
      legend.replaceChildren();
      histogram.replaceChildren();
      readout.textContent = "";
      purge(spread);
      spread.setAttribute("aria-label", "No snapshots yet.");
      spread.dataset.points = "0";
    },
  };
}
