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

// Plotly's address is the one index.html names (data-plotly: a built file, named by its
// content, preloaded); its script is added here, after the page has been set up, unless the
// page has one already. Another page gets the vendored copy.
const NAMED = document.querySelector("[data-plotly]");
const PLOTLY_SRC = NAMED ? NAMED.getAttribute("href") || NAMED.getAttribute("src") : "/vendor/plotly.min.js";
const NOT_LOADED = new Error(`the charts could not be loaded (${PLOTLY_SRC} did not load): reload the page`);
let loading = null;

// Whether the script's request has already failed: its error event may have fired before any
// module ran to listen for it.
function alreadyFailed(script) {
  const entry = performance.getEntriesByName(script.src, "resource")[0];
  return Boolean(entry && entry.responseStatus >= 400);
}

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
      } else if (alreadyFailed(script)) {
        reject(NOT_LOADED);
        return;
      }
      script.addEventListener("load", () => (window.Plotly ? resolve(window.Plotly) : reject(NOT_LOADED)));
      script.addEventListener("error", () => reject(NOT_LOADED));
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
