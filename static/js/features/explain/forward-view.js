// The forward pass of the current drawing, step by step, with one neuron's weighted sum written
// out term by term and the softmax in its three steps. A view: explain.js asks explain:forward
// and hands it the answer; picking a neuron is reported through onPick.
import { element, code } from "../../lib/dom.js";
import { ACTIVATION_CODE, fixed, term } from "../../lib/format.js";
import { pictureCanvas } from "../../lib/digit-canvas.js";
import { signedLegend } from "../../lib/legend.js";
import { COLORS, plot } from "../../lib/plot.js";

const ACTIVATION_FORMULA = {
  sigmoid: (z) => `1 / (1 + e^${term(-z)})`,
  relu: (z) => `max(0, ${fixed(z)})`,
  tanh: (z) => `tanh(${fixed(z)})`,
  leaky_relu: (z) => (z >= 0 ? fixed(z) : `0.01 × ${term(z)}`),
};

// A square picture with its caption (and, signed, its scale in the page's one legend); null
// when the values are not a square (a deeper layer's inputs).
function picture(values, caption, { signed = false, target = "" } = {}) {
  const side = Math.round(Math.sqrt(values.length));
  if (side * side !== values.length) return null;
  const canvas = pictureCanvas(values, caption, { signed, className: "square" });
  return element("figure", { className: "explain-picture" }, element("figcaption", { text: caption }), canvas,
    signed ? signedLegend(Number(canvas.dataset.limit), target) : null);
}

function where(i, n) {
  const side = Math.round(Math.sqrt(n));
  return side * side === n ? `pixel row ${Math.floor(i / side)}, column ${i % side}` : "";
}

export function createForwardView(root, { onPick, notify }) {
  const $ = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const empty = $("forward-empty");
  const steps = root.querySelector(".explain-steps");
  const chart = $("hidden-chart");
  const layerSelect = $("neuron-layer");
  const neuronInput = $("neuron-index");
  let layer = "hidden"; // the layer of the bars drawn

  function renderInput(answer) {
    const { input } = answer;
    $("forward-input").replaceChildren(
      element("div", { className: "step-text" },
        element("strong", { text: "1. The input " }), code("x"), ": your drawing as the network sees it, shape ",
        code(`(1, ${input.values.length})`), `: 28×28 pixels in one row, `,
        element("span", { "data-testid": "input-nonzero", text: `${input.nonzero} with ink` }),
        ` (values 0 to 1, the rest 0).`),
      picture(input.values, "x as 28×28"));
  }

  function renderLayers(answer) {
    const act = ACTIVATION_CODE[answer.activation_name] || answer.activation_name;
    const lines = answer.layers.map((l, i) => element("p", {},
      element("strong", { text: i === 0 ? "2. The hidden layer " : `2${"abc"[i - 1]}. ` }),
      code(`z = self.${l.name}(x)`), " = ", code("x Wᵀ + b"), ": ",
      code(`(1, ${l.in_features}) @ (${l.in_features}, ${l.out_features}) + (${l.out_features},)`), " → ",
      code(`(1, ${l.out_features})`), `, then `, code(`${act}(z)`), `: ${l.out_features} activations, `,
      element("span", { text: `${l.activation.filter((a) => a > 0.5).length} of them above 0.5.` })));
    $("forward-hidden").querySelector(".step-text").replaceChildren(...lines);
    layer = answer.neuron.layer; // the bars show the picked neuron's layer
    const shown = layer === "output" ? { z: answer.logits, name: "output" } : answer.layers.find((l) => l.name === layer);
    const j = answer.neuron.index;
    plot(chart, [{
      type: "bar", x: shown.z.map((_, i) => i), y: shown.z,
      marker: { color: shown.z.map((_, i) => (i === j ? COLORS.validation : "#9db4e0")) },
      hovertemplate: `${shown.name} neuron %{x}: z = %{y:.4f}<extra>click to pick</extra>`,
    }], {
      margin: { l: 40, r: 8, t: 22, b: 28 }, bargap: 0.1,
      title: { text: `z of ${shown.name}, one bar per neuron (picked: ${j})`, font: { size: 12 }, x: 0.01, xanchor: "left" },
      xaxis: { title: { text: "" }, range: [-0.5, shown.z.length - 0.5] }, yaxis: { zeroline: true },
    }).then(() => {
      if (chart.dataset.clickable) return;
      chart.dataset.clickable = "yes";
      chart.on("plotly_click", (event) => onPick(layer, event.points[0].x));
    });
  }

  function renderNeuron(answer) {
    const n = answer.neuron;
    const j = n.index;
    const isOutput = n.layer === "output";
    const source = n.layer === "hidden" ? "x" : "a"; // the first layer reads the pixels
    const inputName = source === "x" ? "x" : "a (the previous layer's activations)";
    layerSelect.replaceChildren(...[...answer.layers.map((l) => l.name), "output"].map((name) =>
      element("option", { value: name, text: `self.${name}`, selected: name === n.layer })));
    neuronInput.max = String((isOutput ? answer.logits.length : answer.layers.find((l) => l.name === n.layer).z.length) - 1);
    if (document.activeElement !== neuronInput) neuronInput.value = String(j);
    const rows = n.top_terms.map((t, k) => element("tr", { "data-testid": "neuron-term" },
      element("td", { text: k === 0 ? "" : "+" }),
      element("td", {}, code(`${source}[${t.i}] · W[${j}, ${t.i}]`)),
      element("td", { text: `${fixed(t.x)} × ${term(t.w)}` }),
      element("td", { className: "num", text: `= ${fixed(t.term, 6)}` }),
      element("td", { className: "where", text: where(t.i, n.in_features) })));
    const sumRow = (label, formula, value, attributes = {}) => element("tr", attributes,
      element("td", { text: label }), element("td", {}, formula), element("td", {}),
      element("td", { className: "num", text: value }), element("td", {}));
    const difference = Math.abs(n.result - n.model_value);
    const agrees = difference <= 1e-4 * Math.max(1, Math.abs(n.model_value));
    $("neuron-sum").replaceChildren(
      element("p", {}, element("strong", { text: `3. One neuron: j = ${j} of self.${n.layer}. ` }),
        code(`z[j] = Σᵢ ${source}[i] · W[j, i] + b[j]`), `, a sum over all ${n.in_features} inputs of ${inputName}; `,
        source === "x" ? `only the ${n.nonzero_inputs} pixels with ink add anything. ` : "",
        "The largest terms first:"),
      element("table", { className: "explain-sum" }, element("tbody", {},
        rows,
        n.rest_count > 0 ? sumRow("+", `the other ${n.rest_count} terms`, `= ${fixed(n.rest_sum, 6)}`, { "data-testid": "neuron-rest" }) : null,
        sumRow("=", element("span", {}, "the sum ", code(`Σᵢ ${source}[i] · W[${j}, i]`)), `${fixed(n.sum, 6)}`, { className: "total", "data-testid": "neuron-total" }),
        sumRow("+", element("span", {}, "the bias ", code(`b[${j}]`)), `${fixed(n.bias, 6)}`, { "data-testid": "neuron-bias" }),
        sumRow("=", code(`z[${j}]`), `${fixed(n.result, 6)}`, { className: "total", "data-testid": "neuron-result", "data-value": String(n.result) }))),
      element("p", { className: agrees ? "agree" : "disagree", "data-testid": "neuron-check", "data-value": String(n.model_value) },
        agrees ? "✓ " : "✗ ", "The model computed ", code(`self.${n.layer}(${source === "x" ? "x" : "a"})[0, ${j}] = ${fixed(n.model_value, 6)}`),
        agrees ? `: the same, to float precision (they differ by ${difference.toExponential(1)}).` : `: they differ by ${difference}.`),
      isOutput
        ? element("p", {}, "This is logit ", code(String(j)), ": the softmax below turns the 10 logits into probabilities.")
        : element("p", { "data-testid": "neuron-activation" }, element("strong", { text: "Then the activation: " }),
          code(`${ACTIVATION_CODE[answer.activation_name]}(${fixed(n.model_value)}) = ${(ACTIVATION_FORMULA[answer.activation_name] || fixed)(n.model_value)} = ${fixed(n.activation)}`)));
    $("neuron-pictures").replaceChildren(...[
      picture(n.weights, `W[${j}]: the weights`, { signed: true, target: `z[${j}] where there is ink` }),
      picture(n.terms, `${source} · W[${j}]: each term`, { signed: true, target: `z[${j}]` }),
    ].filter(Boolean));
  }

  function renderOutput(answer) {
    const s = answer.softmax;
    const lastHidden = answer.layers[answer.layers.length - 1];
    $("forward-logits").replaceChildren(element("p", {},
      element("strong", { text: "4. The output layer " }), code("logits = self.output(a)"), ": ",
      code(`(1, ${lastHidden.out_features}) @ (${lastHidden.out_features}, 10) + (10,)`), " → ", code("(1, 10)"),
      ", one score per digit, no activation: ",
      element("span", { className: "logits", "data-testid": "logits" }, s.logits.map((z, d) => element("span", {}, code(`${d}: ${fixed(z, 3)}`))))));
    const best = answer.prediction;
    $("forward-softmax").replaceChildren(
      element("p", {}, element("strong", { text: "5. Softmax " }), code("F.softmax(logits, dim=1)"),
        ": subtract the largest logit (", code(fixed(s.max)), ") so that exp cannot overflow, exponentiate, divide by the sum (",
        code(fixed(s.sum)), "). The probabilities sum to 1."),
      element("table", { className: "explain-table softmax-table", "data-testid": "softmax-table" },
        element("thead", {}, element("tr", {}, ["digit", "logit z", "z − max", "exp(z − max)", "÷ sum = probability"].map((h) => element("th", { text: h })))),
        element("tbody", {}, s.logits.map((z, d) => element("tr", { className: d === best ? "best" : "" },
          element("td", { text: String(d) }), element("td", { text: fixed(z) }), element("td", { text: fixed(s.shifted[d]) }),
          element("td", { text: fixed(s.exp[d]) }), element("td", { text: fixed(s.probabilities[d]) })))),
        element("tfoot", {}, element("tr", {}, element("th", { text: "sum" }), element("td"), element("td"),
          element("td", { "data-testid": "softmax-sum", text: fixed(s.sum) }),
          element("td", { text: fixed(s.probabilities.reduce((a, b) => a + b, 0)) })))));
  }

  function render(answer) {
    empty.hidden = true;
    steps.hidden = false;
    renderInput(answer);
    renderLayers(answer);
    renderNeuron(answer);
    renderOutput(answer);
  }

  layerSelect.addEventListener("change", () => onPick(layerSelect.value, null));
  neuronInput.addEventListener("change", () => {
    const j = Number(neuronInput.value);
    const max = Number(neuronInput.max);
    if (Number.isInteger(j) && j >= 0 && (!Number.isFinite(max) || j <= max)) onPick(layerSelect.value || layer, j);
    else notify(`Pick a neuron from 0 to ${neuronInput.max}.`, "error");
  });
  $("neuron-most-active").addEventListener("click", () => onPick(layerSelect.value || layer, null));

  return {
    render,
    showEmpty() {
      empty.hidden = false;
      steps.hidden = true;
    },
  };
}
