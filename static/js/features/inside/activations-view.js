// Activation histograms: the hidden layer's values for the current drawing, beside their
// distribution over a fixed validation batch (live during training), with the share of
// saturated units in words.
import { element } from "../../lib/dom.js";
import { COLORS, plot } from "../../lib/plot.js";
import { percent as share } from "../../lib/format.js";

const percent = (x) => share(x, x < 0.1 ? 1 : 0);

function binned(values, edges) {
  const n = edges.length - 1;
  const counts = new Array(n).fill(0);
  const lo = edges[0];
  const width = (edges[n] - lo) / n;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    counts[Math.min(n - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1;
  }
  return counts;
}

// Same rule as server/snapshots.py saturation(): where the slope is small.
export function saturationOf(activation, values) {
  let low = 0;
  let high = 0;
  for (const v of values) {
    if (activation === "sigmoid") { if (v < 0.05) low += 1; else if (v > 0.95) high += 1; }
    else if (activation === "tanh") { if (v < -0.95) low += 1; else if (v > 0.95) high += 1; }
    else if (activation === "relu") { if (v <= 0) low += 1; }
    else if (v < 0) low += 1;
  }
  const n = Math.max(1, values.length);
  return { low: low / n, high: high / n, share: (low + high) / n };
}

function describe(activation, s, who) {
  if (activation === "sigmoid" || activation === "tanh") {
    const [lo, hi] = activation === "sigmoid" ? ["0", "1"] : ["−1", "1"];
    return `${who}: ${percent(s.share)} saturated (${percent(s.low)} near ${lo}, ${percent(s.high)} near ${hi}), where the ${activation}'s slope is tiny and the unit learns slowly.`;
  }
  if (activation === "relu") return `${who}: ${percent(s.share)} of the values are 0 (inactive ReLU: no gradient flows through them).`;
  return `${who}: ${percent(s.share)} of the values are negative (leaky ReLU's slope 0.01 there).`;
}

export function createActivationHistogram(chart, wordsElement, layerSelect) {
  let stats = null; // latest inside:activations frame
  let answer = null;
  let layerIndex = 0;

  function render() {
    if (!stats) return null;
    const layers = stats.layers;
    layerIndex = Math.min(layerIndex, layers.length - 1);
    layerSelect.hidden = layers.length < 2;
    if (layerSelect.options.length !== layers.length) {
      layerSelect.replaceChildren(...layers.map((layer, i) => new Option(`${layer.name} (${layer.units} units)`, String(i))));
      layerSelect.value = String(layerIndex);
    }
    const layer = layers[layerIndex];
    const { edges } = layer;
    const centres = layer.counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
    const width = edges[1] - edges[0];
    const total = layer.counts.reduce((a, b) => a + b, 0) || 1;
    const traces = [{
      type: "bar", name: `validation: ${stats.n_digits} digits × ${layer.units} units`, x: centres,
      y: layer.counts.map((c) => (100 * c) / total), width, marker: { color: "rgba(120,130,150,0.45)" },
      hovertemplate: "%{y:.1f}% of validation values near %{x:.2f}<extra></extra>",
    }];
    const values = answer ? answer.hidden_layers[layerIndex] ?? null : null;
    const words = [describe(stats.activation, layer.saturation, `Validation batch at step ${stats.step}`)];
    if (values) {
      const counts = binned(values, edges);
      traces.push({
        type: "bar", name: `your drawing: ${values.length} units`, x: centres, y: counts.map((c) => (100 * c) / values.length),
        width: width * 0.55, marker: { color: COLORS.accent },
        hovertemplate: "%{y:.1f}% of your drawing's units near %{x:.2f}<extra></extra>",
      });
      words.unshift(describe(stats.activation, saturationOf(stats.activation, values), "Your drawing"));
      chart.dataset.drawing = counts.join(",");
    } else {
      words.push("Draw a digit to see its activations here.");
      chart.dataset.drawing = "";
    }
    const drawn = plot(chart, traces, {
      barmode: "overlay", bargap: 0,
      margin: { l: 44, r: 8, t: 30, b: 40 },
      xaxis: { title: { text: `${stats.activation} activation of ${layer.name}` }, range: [edges[0], edges[edges.length - 1]] },
      yaxis: { title: { text: "% of values" }, rangemode: "tozero" },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
    });
    wordsElement.replaceChildren(...words.map((text) => element("p", { text })));
    chart.dataset.step = String(stats.step);
    return drawn;
  }

  layerSelect.addEventListener("change", () => { layerIndex = Number(layerSelect.value); render(); });
  return {
    setStats(frame) { stats = frame; },
    setAnswer(next) { answer = next; },
    render,
  };
}
