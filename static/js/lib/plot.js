// Plotly, set up once for the whole page: no toolbar (nobody needs one here, and its buttons
// were invisible tab stops), no zoom or pan on drag (a finger scrolling the page must not zoom a
// chart), hover kept. Every chart goes through plot().
import { DIVERGING, NEGATIVE, POSITIVE } from "./palette.js";

export const PLOT_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true, scrollZoom: false,
  doubleClick: false, showTips: false };
export const COLORS = { train: "#2f6fde", validation: "#d9480f", muted: "#aab4c8", accent: "#2f6fde",
  positive: POSITIVE, negative: NEGATIVE };
export { DIVERGING };
export const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1d2330" };

function fixAxes(layout) {
  for (const key of Object.keys(layout)) {
    if (/^[xy]axis\d*$/.test(key)) layout[key] = { fixedrange: true, ...layout[key] };
  }
  if (!layout.xaxis) layout.xaxis = { fixedrange: true };
  if (!layout.yaxis) layout.yaxis = { fixedrange: true };
  return layout;
}

// Plotly (4.8 MB) loads after the page's own code, so the canvas, the controls and the
// connection are live before it is parsed; charts draw once it is there.
let loading = null;
export function loadPlotly() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const script = document.createElement("script");
      script.src = "/vendor/plotly.min.js";
      script.async = true;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error("the charts could not be loaded (/vendor/plotly.min.js did not load)"));
      document.head.append(script);
    });
  }
  return loading;
}

// Draws (or redraws) a chart; resolves once it is drawn.
export async function plot(element, data, layout = {}) {
  if (!window.Plotly) await loadPlotly();
  return Plotly.react(element, data, fixAxes({ dragmode: false, font: FONT, ...layout }), PLOT_CONFIG);
}

export function purge(element) {
  if (window.Plotly) Plotly.purge(element);
}

// Recorded runs drawn over the learning curves, one colour each.
export const OVERLAY_COLORS = ["#7b3fb8", "#16a085", "#d35400", "#2c3e50", "#b7950b", "#c0392b", "#27ae60", "#8e44ad"];
