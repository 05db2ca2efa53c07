// The neuron inspector: one first-layer neuron large. Its 28x28 weights, bias, what it does with
// the current drawing (pre-activation, activation, pixel-by-pixel contributions), its weight
// histogram and the validation digits that excite it most. Data from `inside:neuron`.
import { float32, toBytes } from "./decode.js";
import { DIVERGING } from "./weights-view.js";
import { throttled } from "./throttle.js";

const CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
const SIDE = 28;
const fmt = (v, digits = 4) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

function grid(values) {
  const z = [];
  for (let y = 0; y < SIDE; y += 1) z.push(Array.from(values.subarray(y * SIDE, (y + 1) * SIDE)));
  return z;
}

const squareLayout = (title) => ({
  title: { text: title, font: { size: 12 }, x: 0.02, xanchor: "left" },
  margin: { l: 4, r: 4, t: 26, b: 4 },
  xaxis: { visible: false, fixedrange: true, constrain: "domain" },
  yaxis: { visible: false, autorange: "reversed", scaleanchor: "x", fixedrange: true, constrain: "domain" },
});

export function createInspector(root, { request, getAnswer, onSelect, columns, count }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  const plots = { weights: part("weights"), contributions: part("contributions"),
    histogram: part("histogram"), digits: part("top-digits") };
  let index = null;
  let nNeurons = 0;
  let inFlight = false;
  let again = false;
  let neuronKey = ""; // which neuron, at which step, the neuron-only plots show

  function pixels() {
    const answer = getAnswer();
    return answer ? answer.input.map((v) => Math.min(1, Math.max(0, v))) : null;
  }

  async function load() {
    if (index == null) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const answer = await request("inside:neuron", { index, ...(getAnswer() ? { pixels: pixels() } : {}) });
      if (answer.ok && answer.index === index) show(answer);
      else if (!answer.ok) part("readout").textContent = answer.error;
    } catch (err) {
      part("readout").textContent = err.message;
    } finally {
      inFlight = false;
      if (again) { again = false; load(); }
    }
  }

  function show(detail) {
    nNeurons = detail.n_neurons;
    const weights = float32(detail.weights);
    const name = `${detail.layer}`;
    part("title").textContent = `Neuron ${detail.index} of ${detail.n_neurons} (${name}, step ${detail.step})`;
    const f = detail.activation;
    part("readout").innerHTML = "";
    const lines = [`bias b[${detail.index}] = ${fmt(detail.bias)}; weights ${name}.weight[${detail.index}] from ${fmt(-detail.max_abs, 3)} to ${fmt(detail.max_abs, 3)} (784 values, as 28×28).`];
    if (detail.pre_activation != null) {
      lines.push(`For your drawing: z = Σ xᵢ·W[${detail.index}, i] + b = ${fmt(detail.contribution_sum)} + ${fmt(detail.bias)} = ${fmt(detail.pre_activation)}; ${f}(z) = ${fmt(detail.activation_value)}.`);
    } else {
      lines.push("Draw a digit to see this neuron's pre-activation z, its activation and each pixel's contribution.");
    }
    for (const text of lines) {
      const p = document.createElement("p");
      p.textContent = text;
      part("readout").append(p);
    }
    root.dataset.neuron = String(detail.index);

    // The neuron's own plots change only with the neuron or the weights; the drawing's
    // arithmetic (above and below) changes with every stroke.
    const key = `${detail.run_id}:${detail.step}:${detail.index}`;
    const neuronChanged = key !== neuronKey;
    neuronKey = key;
    if (neuronChanged) Plotly.react(plots.weights, [{ type: "heatmap", z: grid(weights), zmin: -detail.max_abs, zmax: detail.max_abs, zmid: 0,
      colorscale: DIVERGING, showscale: false, hovertemplate: "pixel (row %{y}, col %{x}): weight %{z:.4f}<extra></extra>" }],
    squareLayout("weights W[j] as 28×28"), CONFIG);

    if (detail.contributions) {
      const parts = float32(detail.contributions);
      const limit = Math.max(...parts.map(Math.abs), 1e-9);
      Plotly.react(plots.contributions, [{ type: "heatmap", z: grid(parts), zmin: -limit, zmax: limit, zmid: 0,
        colorscale: DIVERGING, showscale: false,
        hovertemplate: "pixel (row %{y}, col %{x}): x·w = %{z:.4f}<extra></extra>" }],
      squareLayout("contributions xᵢ·W[j, i]"), CONFIG);
    } else {
      Plotly.react(plots.contributions, [], { ...squareLayout("contributions xᵢ·W[j, i]"),
        annotations: [{ text: "draw a digit", showarrow: false, x: 0.5, y: 0.5, xref: "paper", yref: "paper" }] }, CONFIG);
    }

    if (!neuronChanged) return;
    const { edges, counts } = detail.histogram;
    const centres = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
    Plotly.react(plots.histogram, [{ type: "bar", x: centres, y: counts, marker: { color: centres.map((c) => (c < 0 ? "#4a8ad4" : "#d8604a")) },
      width: edges[1] - edges[0], hovertemplate: "weights near %{x:.3f}: %{y}<extra></extra>" }], {
      title: { text: "its 784 weights, histogram", font: { size: 12 }, x: 0.02, xanchor: "left" },
      margin: { l: 36, r: 6, t: 26, b: 28 }, bargap: 0.05, yaxis: { fixedrange: true }, xaxis: { fixedrange: true },
    }, CONFIG);

    const top = detail.top_digits;
    if (top) {
      const images = toBytes(top.images);
      const gap = 2;
      const width = top.count * (SIDE + gap) - gap;
      const z = [];
      for (let y = 0; y < SIDE; y += 1) {
        const row = new Array(width).fill(null);
        for (let d = 0; d < top.count; d += 1) {
          for (let x = 0; x < SIDE; x += 1) row[d * (SIDE + gap) + x] = images[d * 784 + y * SIDE + x];
        }
        z.push(row);
      }
      const annotations = top.labels.map((label, d) => ({
        x: d * (SIDE + gap) + SIDE / 2, y: SIDE + 1, yanchor: "top", showarrow: false, font: { size: 11 },
        text: `${label} · ${fmt(top.activations[d], 2)}`,
      }));
      Plotly.react(plots.digits, [{ type: "heatmap", z, colorscale: "Greys", reversescale: true, zmin: 0, zmax: 255, showscale: false,
        hoverongaps: false, hoverinfo: "skip" }], {
        title: { text: `validation digits that excite it most (label · activation, of ${top.out_of}, step ${top.step})`,
          font: { size: 12 }, x: 0.02, xanchor: "left" },
        margin: { l: 4, r: 4, t: 26, b: 22 },
        xaxis: { visible: false, fixedrange: true, constrain: "domain" },
        yaxis: { visible: false, autorange: "reversed", scaleanchor: "x", fixedrange: true, range: [SIDE + 6, -0.5] },
        annotations,
      }, CONFIG);
    }
  }

  function open(next) {
    index = next;
    root.dataset.open = "true";
    part("hint").hidden = true;
    part("detail").hidden = false;
    load();
  }

  function move(delta) {
    if (index == null) return;
    const limit = nNeurons || count() || 1;
    const next = Math.min(limit - 1, Math.max(0, index + delta));
    if (next !== index) onSelect(next);
  }

  function close() {
    index = null;
    root.dataset.open = "false";
    delete root.dataset.neuron;
    part("hint").hidden = false;
    part("detail").hidden = true;
    part("title").textContent = "Neuron inspector";
    onSelect(null);
  }

  function onKey(event) {
    if (index == null || event.target.closest("input, select, textarea")) return;
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
    if (event.key in steps) { event.preventDefault(); move(steps[event.key]); }
    else if (event.key === "Escape") { event.preventDefault(); close(); }
  }
  root.addEventListener("keydown", onKey);
  part("prev").addEventListener("click", () => move(-1));
  part("next").addEventListener("click", () => move(1));
  part("close").addEventListener("click", close);

  const refreshSoon = throttled(() => { if (index != null) load(); }, 200);
  return {
    open,
    onKey,
    refresh: refreshSoon,
    selected: () => index,
  };
}
