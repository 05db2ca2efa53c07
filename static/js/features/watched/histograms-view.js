// The histograms a watched script's hooks took at its last snapshot, beside each Linear layer
// of the structure view: its outputs (activations) and its weight's gradient, as small bars.
// Renders only.
import { element } from "../../lib/dom.js";

const WIDTH = 96;
const HEIGHT = 22;
const number = (x) => (Math.abs(x) >= 100 || (x !== 0 && Math.abs(x) < 0.01) ? x.toExponential(1) : x.toFixed(2));

// Also the weights' histogram of a layer's picture (layer-picture-view.js).
export function histogramBars(histogram, what, colour) {
  const canvas = element("canvas", { width: WIDTH, height: HEIGHT, className: "layer-histogram", role: "img",
    "aria-label": `${what}: ${histogram.counts.reduce((a, b) => a + b, 0).toLocaleString("en-US")} values `
      + `from ${number(histogram.lo)} to ${number(histogram.hi)}`,
    title: `${what} from ${number(histogram.lo)} to ${number(histogram.hi)}` });
  const context = canvas.getContext("2d");
  const most = Math.max(1, ...histogram.counts);
  const width = WIDTH / histogram.counts.length;
  context.fillStyle = colour;
  histogram.counts.forEach((count, i) => {
    const height = Math.max(count ? 1 : 0, (count / most) * HEIGHT);
    context.fillRect(i * width, HEIGHT - height, Math.max(1, width - 0.5), height);
  });
  return canvas;
}

// `container`: the structure view; `histograms`: {layer path: {activations, grads}} (or null).
export function renderHistograms(container, histograms, step) {
  for (const row of container.querySelectorAll('li[data-linear="yes"]')) {
    const kept = histograms?.[row.dataset.path];
    let slot = row.querySelector(".layer-histograms");
    if (!kept || (!kept.activations && !kept.grads)) { slot?.remove(); continue; }
    if (!slot) { slot = element("span", { className: "layer-histograms" }); row.append(slot); }
    slot.replaceChildren(
      kept.activations ? histogramBars(kept.activations, `outputs at step ${step}`, "#3b6fb6") : "",
      kept.grads ? histogramBars(kept.grads, `weight gradients at step ${step}`, "#b5533c") : "");
  }
}
