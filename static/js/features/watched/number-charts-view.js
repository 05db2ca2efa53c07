// The other named numbers a watched script sends with its steps (run.step(lr=..., grad_norm=...)),
// one small chart each under the loss and accuracy, by the same x axis (its steps, or the epoch it
// says). Each chart is a focusable figure: its label says what it holds in words, and the arrow
// keys (Home, End) walk its points, read out below it. Renders only.
import { element } from "../../lib/dom.js";
import { COLORS, plot, purge } from "../../lib/plot.js";
import { thousands } from "../../lib/format.js";

// Plotly reads trace names and titles as a little HTML: a name is shown as text, never markup.
const asText = (name) => name.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const value = (v) => (v == null ? "none" : Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(3)
  : Number(v.toPrecision(4)).toString());

function pointsOf(history, name) {
  const points = [];
  for (const p of history) {
    const v = p.numbers?.[name];
    if (v != null && Number.isFinite(v)) points.push({ x: p.epoch, step: p.step, v });
  }
  return points;
}

function summary(name, points, by) {
  if (!points.length) return `${name} by ${by}: no values yet.`;
  const values = points.map((p) => p.v);
  const last = points[points.length - 1];
  return `${name} by ${by}: ${thousands(points.length)} points from ${by} ${value(points[0].x)} to ${value(last.x)}; `
    + `last ${value(last.v)}, lowest ${value(Math.min(...values))}, highest ${value(Math.max(...values))}. `
    + "Arrow keys read each point.";
}

export function createNumberCharts(container) {
  const charts = new Map(); // name -> {figure, plotElement, readout, points, cursor}
  const leftOutNote = element("p", { className: "hint", "data-testid": "numbers-left-out", hidden: true });
  container.append(leftOutNote);

  function chartFor(name) {
    let chart = charts.get(name);
    if (chart) return chart;
    const plotElement = element("div", { className: "chart number-chart", "aria-hidden": "true" });
    const readout = element("p", { className: "number-readout", "aria-live": "polite" });
    const figure = element("figure", { className: "number-figure", tabindex: "0", role: "group",
      "data-name": name, "data-testid": "number-chart" },
    element("figcaption", { className: "number-name" }, element("code", { text: name })), plotElement, readout);
    chart = { name, figure, plotElement, readout, points: [], cursor: null, by: "step" };
    figure.addEventListener("keydown", (event) => move(chart, event));
    charts.set(name, chart);
    return chart;
  }

  function readPoint(chart) {
    const p = chart.points[chart.cursor];
    chart.readout.textContent = p ? `${chart.by} ${value(p.x)}: ${chart.name} = ${value(p.v)}` : "";
    chart.figure.dataset.cursor = chart.cursor == null ? "" : String(chart.cursor);
    if (chart.plotElement.layout) {
      Plotly.relayout(chart.plotElement, { shapes: p ? [{ type: "line", xref: "x", yref: "paper", x0: p.x, x1: p.x,
        y0: 0, y1: 1, line: { color: "#545d70", width: 1, dash: "dot" } }] : [] });
    }
  }

  function move(chart, event) {
    const n = chart.points.length;
    if (!n) return;
    const at = chart.cursor ?? n;
    const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: n - 1, PageUp: at - 10, PageDown: at + 10 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    chart.cursor = Math.max(0, Math.min(n - 1, next));
    readPoint(chart);
  }

  async function draw(chart) {
    await plot(chart.plotElement, [{ name: asText(chart.name), x: chart.points.map((p) => p.x),
      y: chart.points.map((p) => p.v), mode: "lines", line: { color: COLORS.train, width: 1.5 },
      hovertemplate: `${asText(chart.name)} %{y:.4g} at ${chart.by} %{x}<extra></extra>` }],
    { margin: { l: 48, r: 8, t: 6, b: 24 }, showlegend: false, xaxis: { zeroline: false }, yaxis: { zeroline: false } });
  }

  return {
    // names: the run's named numbers to chart (in the order they came); history: its curve
    // points ({epoch, step, numbers}); by: "step" or "epoch"; leftOut: names past the bound.
    async show(names, history, by, leftOut = 0) {
      container.hidden = names.length === 0 && !leftOut;
      for (const [name, chart] of charts) {
        if (!names.includes(name)) { purge(chart.plotElement); chart.figure.remove(); charts.delete(name); }
      }
      // Figures stay in place once shown (moving a node would drop the keyboard focus on it).
      for (const name of names) {
        const chart = chartFor(name);
        if (chart.figure.parentNode !== container) container.insertBefore(chart.figure, leftOutNote);
      }
      leftOutNote.hidden = !leftOut;
      leftOutNote.textContent = leftOut ? `${thousands(leftOut)} more named ${leftOut === 1 ? "number is" : "numbers are"} `
        + `not charted: a run keeps the first ${names.length}.` : "";
      for (const name of names) {
        const chart = charts.get(name);
        chart.by = by;
        chart.points = pointsOf(history, name);
        if (chart.cursor != null) chart.cursor = Math.min(chart.cursor, chart.points.length - 1);
        chart.figure.setAttribute("aria-label", summary(name, chart.points, by));
        chart.figure.dataset.points = String(chart.points.length);
        await draw(chart);
        if (chart.cursor != null) readPoint(chart);
      }
    },
  };
}
