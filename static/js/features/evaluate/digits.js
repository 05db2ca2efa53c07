// Small digit pictures (784 bytes, 255 = ink), painted by the page's one 28x28 painter.
import { nthDigit } from "../../lib/bytes.js";
import { pictureCanvas } from "../../lib/digit-canvas.js";
import { element } from "../../lib/dom.js";
import { percent } from "../../lib/format.js";

export { nthDigit };
export const DIGITS = [...Array(10).keys()];

// {digits: [...], pixels: blob} -> the digits, each with its own 784 pixels.
export function unpack(set) {
  return set.digits.map((digit, i) => ({ ...digit, pixels: nthDigit(set.pixels, i) }));
}

export const digitCanvas = (pixels, label) => pictureCanvas(pixels, label, { max: 255 });

// One validation digit with the network's probabilities: the picture, "7 → 1 (93%)" and ten bars.
export function digitCard(digit) {
  const probabilities = digit.probabilities;
  const said = percent(probabilities[digit.predicted], 0);
  const bars = element("div", { className: "bars", "aria-hidden": "true" }, probabilities.map((p, d) => {
    const bar = element("span", { className: [d === digit.predicted ? "said" : "", d === digit.label ? "truth" : ""].join(" ").trim() });
    bar.style.height = `${Math.max(1, Math.round((p || 0) * 100))}%`;
    return bar;
  }));
  return element("figure", {
    className: digit.label === digit.predicted ? "digit-card right" : "digit-card wrong", "data-index": String(digit.index),
    title: `validation digit #${digit.index}: true ${digit.label}, said ${digit.predicted}\n`
      + probabilities.map((p, d) => `${d}: ${p == null ? "?" : p.toFixed(3)}`).join("  "),
  },
  digitCanvas(digit.pixels, `a ${digit.label} the network read as ${digit.predicted}`),
  element("figcaption", { text: digit.label === digit.predicted ? `${digit.label} (${said})` : `${digit.label} → ${digit.predicted} (${said})` }),
  bars);
}
