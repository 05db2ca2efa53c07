// The network diagram: 784 inputs (the drawing as 28x28) -> hidden units -> 10 outputs. The
// current drawing's activations light the units; the strongest signals (|input x weight|)
// are drawn as connections, in the page's one palette: red raises what it feeds, blue lowers it.
import { float16 } from "../../lib/bytes.js";
import { COLORS, plot } from "../../lib/plot.js";
const MAX_UNITS = 256; // units drawn per hidden column
const INPUT_LINES = 60;
const OUTPUT_LINES = 40;

// The `count` largest |value|s of a flat Float32Array, as [{index, value}], largest first.
function strongest(values, length, count) {
  if (length === 0) return [];
  const magnitudes = new Float32Array(length);
  for (let k = 0; k < length; k += 1) magnitudes[k] = Math.abs(values[k]);
  const sorted = magnitudes.slice().sort();
  const threshold = sorted[Math.max(0, length - count)];
  const picked = [];
  for (let k = 0; k < length && picked.length < count; k += 1) {
    if (magnitudes[k] >= threshold) picked.push({ index: k, value: values[k] });
  }
  return picked.sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
}

// Lines in 3 widths x 2 signs: a handful of traces instead of one per line.
function lineTraces(lines, toXY) {
  if (!lines.length) return [];
  const largest = Math.abs(lines[0].value) || 1;
  const groups = new Map();
  for (const line of lines) {
    const strength = Math.abs(line.value) / largest;
    const width = strength > 0.66 ? 3 : strength > 0.33 ? 1.8 : 0.8;
    const key = `${line.value >= 0 ? "+" : "-"}${width}`;
    if (!groups.has(key)) groups.set(key, { x: [], y: [], width, positive: line.value >= 0 });
    const group = groups.get(key);
    const [[x0, y0], [x1, y1]] = toXY(line);
    group.x.push(x0, x1, null);
    group.y.push(y0, y1, null);
  }
  return [...groups.values()].map((g) => ({
    type: "scatter", mode: "lines", x: g.x, y: g.y, hoverinfo: "skip", showlegend: false,
    line: { width: g.width, color: g.positive ? COLORS.positive : COLORS.negative }, opacity: 0.6,
    meta: { sign: g.positive ? "positive" : "negative" },
  }));
}

export function createDiagram(element, captionElement) {
  let answer = null;
  let tiles = null; // decoded first-layer weights (from the weights frame)
  let output = null; // { shape, values, fromLayer }
  let shape = [784, 256, 10];

  function render() {
    const hiddenSizes = shape.slice(1, -1);
    const nLayers = hiddenSizes.length;
    // x units are about as wide as y units on screen, so the 28x28 input stays square.
    const columnX = hiddenSizes.map((_, i) => 38 + (i * 16) / Math.max(1, nLayers - 1 || 1));
    const outputX = 62;
    const drawn = hiddenSizes.map((n) => Math.min(n, MAX_UNITS));
    const unitY = (layer, j) => 28 * (1 - (j + 0.5) / drawn[layer]) - 0.5;
    const outputY = (k) => 27.5 - (k + 0.5) * 2.8;
    const traces = [];
    const pixels = answer ? answer.input : new Array(784).fill(0);

    const image = [];
    for (let r = 27; r >= 0; r -= 1) image.push(pixels.slice(r * 28, r * 28 + 28));
    traces.push({ type: "heatmap", z: image, x0: 0, dx: 1, y0: 0, dy: 1, colorscale: "Greys", reversescale: true, zmin: 0, zmax: 1,
      showscale: false, hovertemplate: "input pixel: %{z:.2f}<extra></extra>" });

    if (answer && tiles) {
      const first = answer.hidden_layers[0];
      const units = Math.min(tiles.n, drawn[0]);
      const inked = [];
      for (let i = 0; i < 784; i += 1) if (pixels[i] > 0) inked.push(i);
      const products = new Float32Array(inked.length * units); // pixel x weight, (inked, unit)
      for (let p = 0; p < inked.length; p += 1) {
        const i = inked[p];
        for (let j = 0; j < units; j += 1) products[p * units + j] = pixels[i] * tiles.weight(j, i);
      }
      const inputLines = strongest(products, products.length, INPUT_LINES).map(({ index, value }) => (
        { i: inked[Math.floor(index / units)], j: index % units, value }));
      traces.push(...lineTraces(inputLines, ({ i, j }) => [
        [i % 28 + 0.5, 27 - Math.floor(i / 28)], [columnX[0], unitY(0, j)]]));
      if (output && first) {
        const last = answer.hidden_layers[nLayers - 1] ?? first;
        const [rows, columns] = output.shape;
        const units = Math.min(columns, drawn[nLayers - 1]);
        const products = new Float32Array(rows * units); // activation x weight, (digit, unit)
        for (let k = 0; k < rows; k += 1) {
          for (let j = 0; j < units; j += 1) products[k * units + j] = last[j] * output.values[k * columns + j];
        }
        const outputLines = strongest(products, products.length, OUTPUT_LINES).map(({ index, value }) => (
          { k: Math.floor(index / units), j: index % units, value }));
        traces.push(...lineTraces(outputLines, ({ j, k }) => [
          [columnX[nLayers - 1], unitY(nLayers - 1, j)], [outputX, outputY(k)]]));
      }
    }

    hiddenSizes.forEach((n, layer) => {
      const values = answer ? answer.hidden_layers[layer] ?? null : null;
      const count = drawn[layer];
      const ys = [];
      for (let j = 0; j < count; j += 1) ys.push(unitY(layer, j));
      const shown = values ? values.slice(0, count) : new Array(count).fill(0);
      const top = Math.max(1e-9, ...shown.map(Math.abs));
      traces.push({
        type: "scatter", mode: "markers", x: new Array(count).fill(columnX[layer]), y: ys,
        marker: { size: count > 64 ? 4 : 7, color: shown.map((v) => Math.abs(v) / top), colorscale: "YlOrRd", cmin: 0, cmax: 1,
          line: { width: 0.3, color: "#999" } },
        customdata: shown, text: ys.map((_, j) => `hidden${layer ? layer + 1 : ""} unit ${j}`),
        hovertemplate: "%{text}: activation %{customdata:.3f}<extra></extra>", showlegend: false,
      });
    });

    const probabilities = answer ? answer.probabilities : new Array(10).fill(0);
    traces.push({
      type: "scatter", mode: "markers+text", x: new Array(10).fill(outputX), y: [...Array(10).keys()].map(outputY),
      marker: { size: probabilities.map((p) => 12 + 16 * p), color: probabilities, colorscale: "Blues", cmin: 0, cmax: 1,
        line: { width: 1, color: "#333" } },
      text: [...Array(10).keys()].map(String), textposition: "middle right", textfont: { size: 12 },
      customdata: probabilities, hovertemplate: "digit %{text}: p = %{customdata:.3f}<extra></extra>", showlegend: false,
    });

    const labels = [
      { x: 14, y: 29.4, text: "input<br>784 (28×28)" },
      ...hiddenSizes.map((n, i) => ({ x: columnX[i], y: 29.4,
        text: `${i === 0 ? "hidden" : `hidden${i + 1}`}<br>${n}${n > MAX_UNITS ? ` (${MAX_UNITS} drawn)` : ""}` })),
      { x: outputX, y: 29.4, text: "output<br>10" },
    ].map((a) => ({ ...a, showarrow: false, font: { size: 11 }, yanchor: "bottom" }));

    const plotted = plot(element, traces, {
      margin: { l: 4, r: 4, t: 28, b: 4 },
      xaxis: { visible: false, range: [-1, outputX + 5], fixedrange: true },
      yaxis: { visible: false, range: [-1, 32], fixedrange: true },
      annotations: labels, hovermode: "closest", plot_bgcolor: "#ffffff",
    });
    captionElement.textContent = answer
      ? `The ${INPUT_LINES} strongest input→hidden signals (pixel × weight) and the ${OUTPUT_LINES} strongest hidden→output ones (activation × weight) for your drawing${nLayers > 1 ? "; connections between hidden layers are not drawn" : ""}.`
      : "Draw a digit: its pixels light the inputs, the hidden units light up by activation, the strongest connections appear.";
    element.dataset.lit = answer ? "true" : "false";
    return plotted;
  }

  return {
    // Each returns whether the picture changed (and needs a render).
    setShape(next) { if (next && next.join() !== shape.join()) { shape = next; return true; } return false; },
    setWeights(frame, decodedTiles) {
      tiles = decodedTiles;
      output = { shape: frame.output.shape, values: frame.output.values ?? float16(frame.output.data) };
      return Boolean(answer);
    },
    setAnswer(next) { answer = next; return true; },
    render,
  };
}
