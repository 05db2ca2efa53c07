// Plotly, set up once for the whole page: no toolbar (nobody needs one here, and its buttons
// were invisible tab stops), no zoom or pan on drag (a finger scrolling the page must not zoom a
// chart), hover kept. Every chart goes through plot().
import { DIVERGING, NEGATIVE, POSITIVE } from "./palette.js";

export const PLOT_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true, scrollZoom: false,
  doubleClick: false, showTips: false };
export const COLORS = { train: "#2f6fde", validation: "#d9480f", muted: "#aab4c8", accent: "#2f6fde", ok: "#1f7a45",
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

// Plotly downloads while the page's own modules load (a preload in index.html) and runs after
// them, so the canvas, the controls and the connection never wait for it; charts draw once it
// is there.
const PLOTLY_SRC = "/vendor/plotly.min.js";
let loading = null;
export function loadPlotly() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      let script = document.querySelector(`script[src="${PLOTLY_SRC}"]`);
      if (!script) {
        script = document.createElement("script");
        script.src = PLOTLY_SRC;
        script.async = true;
        document.head.append(script);
      }
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => reject(new Error(`the charts could not be loaded (${PLOTLY_SRC} did not load)`)));
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
