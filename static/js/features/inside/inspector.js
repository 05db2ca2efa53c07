// The neuron inspector: one first-layer neuron large. Its 28x28 weights, bias, what it does with
// the current drawing (pre-activation, activation, pixel-by-pixel contributions), its weight
// histogram and the validation digits that excite it most. A view: inside.js asks the server
// (`inside:neuron`) and hands it the answer.
import { float32, nthDigit } from "../../lib/bytes.js";
import { element } from "../../lib/dom.js";
import { paintPicture, pictureCanvas } from "../../lib/digit-canvas.js";
import { fixed } from "../../lib/format.js";
import { signedLegend } from "../../lib/legend.js";
import { COLORS, plot } from "../../lib/plot.js";

export function createInspector(root, { onMove, onClose, columns, count }) {
  const part = (role) => root.querySelector(`[data-role="${role}"]`);
  let index = null;
  let nNeurons = 0;
  let neuronKey = ""; // which neuron, at which step, the neuron-only views show

  function show(detail) {
    if (detail.index !== index) return;
    nNeurons = detail.n_neurons;
    const name = detail.layer;
    part("title").textContent = `Neuron ${detail.index} of ${detail.n_neurons} (${name}, step ${detail.step})`;
    const f = detail.activation;
    const lines = [`bias b[${detail.index}] = ${fixed(detail.bias)}; weights ${name}.weight[${detail.index}] from ${fixed(detail.min)} to ${fixed(detail.max)} (784 values, as 28×28; the picture's scale is ±${fixed(detail.max_abs)}).`];
    if (detail.pre_activation != null) {
      lines.push(`For your drawing: z = Σ xᵢ·W[${detail.index}, i] + b = ${fixed(detail.contribution_sum)} + ${fixed(detail.bias)} = ${fixed(detail.pre_activation)}; ${f}(z) = ${fixed(detail.activation_value)}.`);
    } else {
      lines.push("Draw a digit to see this neuron's pre-activation z, its activation and each pixel's contribution.");
    }
    part("readout").replaceChildren(...lines.map((text) => element("p", { text })));
    root.dataset.neuron = String(detail.index);

    // The neuron's own views change only with the neuron or the weights; the drawing's
    // arithmetic (above and below) changes with every stroke.
    const key = `${detail.run_id}:${detail.step}:${detail.index}`;
    const neuronChanged = key !== neuronKey;
    neuronKey = key;
    if (neuronChanged) {
      const limit = paintPicture(part("weights"), float32(detail.weights), { signed: true, limit: Math.max(detail.max_abs, 1e-9) });
      part("weights").dataset.limit = String(limit);
      part("weights-legend").replaceChildren(signedLegend(limit, `z of neuron ${detail.index} where there is ink`));
    }
    if (detail.contributions) {
      const limit = paintPicture(part("contributions"), float32(detail.contributions), { signed: true });
      part("contributions").dataset.limit = String(limit);
      part("contributions-legend").replaceChildren(signedLegend(Math.max(limit, 1e-9), `z of neuron ${detail.index}`));
    } else {
      part("contributions").getContext("2d").clearRect(0, 0, part("contributions").width, part("contributions").height);
      part("contributions-legend").replaceChildren(element("p", { className: "hint", text: "Draw a digit to see each pixel's part." }));
    }
    if (!neuronChanged) return;

    const { edges, counts } = detail.histogram;
    const centres = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
    plot(part("histogram"), [{ type: "bar", x: centres, y: counts,
      marker: { color: centres.map((c) => (c < 0 ? COLORS.negative : COLORS.positive)) },
      width: edges[1] - edges[0], hovertemplate: "weights near %{x:.3f}: %{y}<extra></extra>" }], {
      title: { text: "its 784 weights, histogram", font: { size: 12 }, x: 0.02, xanchor: "left" },
      margin: { l: 36, r: 6, t: 26, b: 28 }, bargap: 0.05,
    });

    const top = detail.top_digits;
    if (top) {
      part("top-digits").replaceChildren(
        element("p", { className: "inside-caption", text: `Validation digits that excite it most (label · activation, of ${top.out_of}, step ${top.step}):` }),
        element("div", { className: "top-digit-row" }, top.labels.map((label, d) => element("figure", { className: "top-digit" },
          pictureCanvas(nthDigit(top.images, d), `a validation ${label}, activation ${fixed(top.activations[d], 2)}`, { max: 255 }),
          element("figcaption", { text: `${label} · ${fixed(top.activations[d], 2)}` })))));
    }
  }

  function open(next) {
    index = next;
    root.dataset.open = "true";
    part("hint").hidden = true;
    part("detail").hidden = false;
  }

  function move(delta) {
    if (index == null) return;
    const limit = nNeurons || count() || 1;
    const next = Math.min(limit - 1, Math.max(0, index + delta));
    if (next !== index) onMove(next);
  }

  function close() {
    index = null;
    root.dataset.open = "false";
    delete root.dataset.neuron;
    part("hint").hidden = false;
    part("detail").hidden = true;
    part("title").textContent = "Neuron inspector";
    onClose();
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

  return {
    open, show, close,
    showError(text) { part("readout").replaceChildren(element("p", { className: "error", text })); },
    index: () => index,
  };
}
