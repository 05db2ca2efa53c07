// The softmax trap (training on probabilities applies softmax twice): which way the shared run
// trains, the two buttons, and the loss curves of the latest run of each way side by side; and
// the same network in Keras. A view: explain.js says what to show and does the switching.
import { element, code } from "../../lib/dom.js";
import { fixed } from "../../lib/format.js";
import { COLORS, plot } from "../../lib/plot.js";

const LABEL = { logits: "on logits (right)", softmax: "as written: softmax twice" };
const COLOR = { logits: COLORS.train, softmax: COLORS.validation };

export function createTrapView(root, { onSwitch }) {
  const $ = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const chart = $("trap-chart");
  let current = null;

  for (const button of root.querySelectorAll("[data-output]")) {
    button.addEventListener("click", () => onSwitch(button.dataset.output));
  }

  return {
    // Someone else's run: the buttons would reset it, so they are off, saying why.
    setReadOnly(readOnly, reason) {
      for (const button of root.querySelectorAll("[data-output]")) {
        button.disabled = readOnly;
        button.title = readOnly ? reason : "";
      }
    },
    setFloor(value) {
      $("trap-floor").textContent = fixed(value, 3);
      $("trap-best-probability").textContent = `e / (e + 9) = ${fixed(Math.E / (Math.E + 9), 3)}`;
    },
    setCurrent(output) {
      if (output === current) return;
      current = output;
      $("trap-current").replaceChildren(code(`output="${output}"`), ` (${LABEL[output]})`);
      for (const button of root.querySelectorAll("[data-output]")) button.setAttribute("aria-pressed", String(button.dataset.output === output));
    },
    // runs: {logits?: {run_id, history, recorded}, softmax?: ...}; floor: the softmax-twice floor.
    render(runs, floor) {
      const traces = Object.entries(runs).map(([output, run]) => ({
        name: `${run.recorded ? `run #${run.run_id}` : "this run"}, ${LABEL[output]}`, meta: { output },
        x: run.history.map((p) => p.epoch), y: run.history.map((p) => p.loss),
        mode: run.history.length < 30 ? "lines+markers" : "lines", line: { color: COLOR[output], width: 1.5 },
      }));
      const shapes = floor == null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: floor, y1: floor,
        line: { color: COLOR.softmax, dash: "dot", width: 1 } }];
      const annotations = floor == null ? [] : [{ xref: "paper", x: 1, xanchor: "right", y: floor, yanchor: "bottom",
        text: `floor of softmax twice: ${fixed(floor, 3)}`, showarrow: false, font: { size: 11, color: COLOR.softmax } }];
      chart.dataset.outputs = Object.keys(runs).sort().join(",");
      return plot(chart, traces, {
        margin: { l: 44, r: 10, t: 26, b: 34 + 18 }, title: { text: "training loss", font: { size: 12 }, x: 0.01, xanchor: "left" },
        xaxis: { title: { text: "epoch", standoff: 2 }, rangemode: "tozero" }, yaxis: { rangemode: "tozero" },
        legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } }, shapes, annotations,
      });
    },
    renderKeras(payload) {
      const lines = payload.code.split("\n");
      const start = lines.findIndex((l) => l.startsWith("class Network"));
      const end = lines.findIndex((l, i) => i > start && l.trim() === "return x");
      $("keras-pytorch-code").textContent = lines.slice(start, end + 1).join("\n");
      $("keras-code").textContent = payload.keras;
      $("keras-code").dataset.step = String(payload.keras_step ?? "");
    },
  };
}
