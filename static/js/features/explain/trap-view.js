// The softmax trap (training on probabilities applies softmax twice) with a switch between the
// two ways to train and their loss curves side by side; and the same network in Keras.
import { element, code, fixed } from "./util.js";

const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
const LABEL = { logits: "on logits (right)", softmax: "as written: softmax twice" };
const COLOR = { logits: "#2f6fde", softmax: "#e4572e" };
const REDRAW_MS = 1000;

export function createTrapView(root, { request, notify }) {
  const $ = (testid) => root.querySelector(`[data-testid="${testid}"]`);
  const chart = $("trap-chart");
  const runs = {}; // output -> {run_id, history}: the latest run of each way seen on this page
  let floor = null;
  let timer = null;
  let current = null;

  function draw() {
    timer = null;
    const traces = Object.entries(runs).map(([output, run]) => ({
      name: `run ${run.run_id}, ${LABEL[output]}`, x: run.history.map((p) => p.epoch), y: run.history.map((p) => p.loss),
      mode: run.history.length < 30 ? "lines+markers" : "lines", line: { color: COLOR[output], width: 1.5 },
    }));
    const shapes = floor == null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: floor, y1: floor,
      line: { color: COLOR.softmax, dash: "dot", width: 1 } }];
    const annotations = floor == null ? [] : [{ xref: "paper", x: 1, xanchor: "right", y: floor, yanchor: "bottom",
      text: `floor of softmax twice: ${fixed(floor, 3)}`, showarrow: false, font: { size: 10, color: COLOR.softmax } }];
    Plotly.react(chart, traces, {
      margin: { l: 44, r: 10, t: 26, b: 34 }, title: { text: "training loss", font: { size: 12 }, x: 0.01, xanchor: "left" },
      xaxis: { title: { text: "epoch" }, rangemode: "tozero" }, yaxis: { rangemode: "tozero" },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom", font: { size: 10 } }, shapes, annotations,
    }, PLOT_CONFIG);
  }
  const schedule = () => { if (!timer) timer = setTimeout(draw, REDRAW_MS); };

  async function switchTo(output) {
    try {
      const reset = await request("train:reset", { config: { output } });
      if (!reset.ok) { notify(reset.error, "error"); return; }
      const start = await request("train:start");
      if (!start.ok) notify(start.error, "error");
    } catch (err) {
      notify(err.message, "error");
    }
  }
  for (const button of root.querySelectorAll("[data-output]")) {
    button.addEventListener("click", () => switchTo(button.dataset.output));
  }

  return {
    setFloor(value) {
      floor = value;
      $("trap-floor").textContent = fixed(value, 3);
      $("trap-best-probability").textContent = `e / (e + 9) = ${fixed(Math.E / (Math.E + 9), 3)}`;
      schedule();
    },
    // Every state and metrics message: remember the curve of the run, by the way it trains.
    update(server) {
      const output = server.config.output;
      if (output !== current) {
        current = output;
        $("trap-current").replaceChildren(code(`output="${output}"`), ` (${LABEL[output]})`);
        for (const button of root.querySelectorAll("[data-output]")) button.setAttribute("aria-pressed", String(button.dataset.output === output));
      }
      runs[output] = { run_id: server.run_id, history: server.history };
      schedule();
    },
    renderKeras(payload) {
      const lines = payload.code.split("\n");
      const start = lines.findIndex((l) => l.startsWith("class Network"));
      const end = lines.findIndex((l, i) => i > start && l.trim() === "return x");
      $("keras-pytorch-code").textContent = lines.slice(start, end + 1).join("\n");
      $("keras-code").textContent = payload.keras;
    },
  };
}
