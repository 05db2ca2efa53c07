// Small digit pictures (784 bytes, 255 = ink), painted by the page's one 28x28 painter.
import { nthDigit } from "../../lib/bytes.js";
import { pictureCanvas } from "../../lib/digit-canvas.js";

export { nthDigit };
export const DIGITS = [...Array(10).keys()];

// {digits: [...], pixels: blob} -> the digits, each with its own 784 pixels.
export function unpack(set) {
  return set.digits.map((digit, i) => ({ ...digit, pixels: nthDigit(set.pixels, i) }));
}

export const digitCanvas = (pixels, label) => pictureCanvas(pixels, label, { max: 255 });

const percent = (p) => (p == null ? "?" : `${Math.round(p * 100)}%`);

// One validation digit with the network's probabilities: the picture, "7 → 1 (93%)" and ten bars.
export function digitCard(digit) {
  const figure = document.createElement("figure");
  figure.className = digit.label === digit.predicted ? "digit-card right" : "digit-card wrong";
  figure.dataset.index = String(digit.index);
  const probabilities = digit.probabilities;
  const said = probabilities[digit.predicted];
  figure.append(digitCanvas(digit.pixels, `a ${digit.label} the network read as ${digit.predicted}`));
  const caption = document.createElement("figcaption");
  caption.textContent = digit.label === digit.predicted
    ? `${digit.label} (${percent(said)})` : `${digit.label} → ${digit.predicted} (${percent(said)})`;
  figure.append(caption);
  const bars = document.createElement("div");
  bars.className = "bars";
  bars.setAttribute("aria-hidden", "true");
  probabilities.forEach((p, d) => {
    const bar = document.createElement("span");
    bar.style.height = `${Math.max(1, Math.round((p || 0) * 100))}%`;
    if (d === digit.predicted) bar.className = "said";
    if (d === digit.label) bar.className = bar.className ? "said truth" : "truth";
    bars.append(bar);
  });
  figure.append(bars);
  figure.title = `validation digit #${digit.index}: true ${digit.label}, said ${digit.predicted}\n`
    + probabilities.map((p, d) => `${d}: ${p == null ? "?" : p.toFixed(3)}`).join("  ");
  return figure;
}
