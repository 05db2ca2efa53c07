// The one diverging palette of the page: every signed picture and chart (weights, x·w terms,
// connections) is blue below zero, white at zero and red above it. Red raises what the value
// feeds (a pre-activation, a logit), blue lowers it.
export const DIVERGING = [
  [0, "#1f4e9c"], [0.2, "#4a8ad4"], [0.4, "#bcd6f0"], [0.5, "#f8f8f8"],
  [0.6, "#f5c2b0"], [0.8, "#d8604a"], [1, "#a11a1f"],
];
export const POSITIVE = "#c23b2e"; // lines and bars of a positive value
export const NEGATIVE = "#2f6cc0"; // and of a negative one

const parse = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

// 256 RGBA colours along the scale: index 128 is zero, 1 is -limit and 255 is +limit (the
// live views' uint8 weight codes use the same mapping).
function makeLookup(colorscale) {
  const table = new Uint8Array(256 * 4);
  for (let k = 0; k < 256; k += 1) {
    const t = k / 255;
    let s = 1;
    while (s < colorscale.length - 1 && colorscale[s][0] < t) s += 1;
    const [t0, c0] = colorscale[s - 1];
    const [t1, c1] = colorscale[s];
    const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
    const a = parse(c0);
    const b = parse(c1);
    for (let ch = 0; ch < 3; ch += 1) table[k * 4 + ch] = Math.round(a[ch] + f * (b[ch] - a[ch]));
    table[k * 4 + 3] = 255;
  }
  return table;
}
export const LOOKUP = makeLookup(DIVERGING);

// The lookup index of `value` on a scale of ±limit (clamped).
export function colourIndex(value, limit) {
  const t = Math.max(-1, Math.min(1, value / Math.max(limit, 1e-12)));
  return Math.round(128 + 127 * t);
}

// A CSS gradient of the scale, for legends.
export const CSS_GRADIENT = `linear-gradient(to right, ${DIVERGING.map(([t, c]) => `${c} ${t * 100}%`).join(", ")})`;
