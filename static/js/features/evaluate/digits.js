// Small digit pictures: 784 bytes (255 = ink) -> a 28x28 canvas, dark ink on paper.
export const DIGITS = [...Array(10).keys()];

export function toBytes(pixels) {
  return pixels instanceof Uint8Array ? pixels : new Uint8Array(pixels);
}

// The n-th 28x28 digit of a blob of digits (n x 784 bytes, as the server packs them).
export function nthDigit(pixels, n) {
  return toBytes(pixels).subarray(n * 784, (n + 1) * 784);
}

// {digits: [...], pixels: blob} -> the digits, each with its own 784 pixels.
export function unpack(set) {
  return set.digits.map((digit, i) => ({ ...digit, pixels: nthDigit(set.pixels, i) }));
}

export function digitCanvas(pixels, label) {
  const canvas = document.createElement("canvas");
  canvas.width = 28;
  canvas.height = 28;
  canvas.className = "digit";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  const bytes = toBytes(pixels);
  for (let i = 0; i < 784; i += 1) {
    const v = 255 - bytes[i];
    image.data[i * 4] = v;
    image.data[i * 4 + 1] = v;
    image.data[i * 4 + 2] = v;
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

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
