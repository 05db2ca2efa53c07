// Painting the hidden-weight mosaic: uint8 codes -> RGBA pixels through a 256-colour lookup.
// Shared by the page and by the worker that paints off the main thread.

export const TILE = 28;
export const GAP = 1; // white pixels between tiles
export const CELL = TILE + GAP;

export const DIVERGING = [
  [0, "#1f4e9c"], [0.2, "#4a8ad4"], [0.4, "#bcd6f0"], [0.5, "#f8f8f8"],
  [0.6, "#f5c2b0"], [0.8, "#d8604a"], [1, "#a11a1f"],
];

// 256 colours of the diverging scale: code 0 = -limit, 128 = 0, 255 = +limit.
function makeLookup(colorscale) {
  const parse = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
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
const LOOKUP = makeLookup(DIVERGING);

export function mosaicSize(n, columns) {
  const rows = Math.ceil(n / columns);
  return { rows, width: columns * CELL - GAP, height: rows * CELL - GAP };
}

// Fills `pixels` (RGBA, width x height) from the codes. Shared scale: code -> weight -> colour
// index against `maxAbs`; per tile: the code is the colour index (each row has its own scale).
export function paintMosaic(pixels, { codes, scales, n, columns, zero, mode, maxAbs }) {
  const { width } = mosaicSize(n, columns);
  pixels.fill(255); // gaps and empty tiles stay white
  const limit = Math.max(maxAbs, 1e-12);
  for (let j = 0; j < n; j += 1) {
    const top = Math.floor(j / columns) * CELL;
    const left = (j % columns) * CELL;
    const factor = mode === "per-tile" ? 1 : scales[j] / limit;
    const base = j * TILE * TILE;
    for (let y = 0; y < TILE; y += 1) {
      let out = ((top + y) * width + left) * 4;
      const offset = base + y * TILE;
      for (let x = 0; x < TILE; x += 1, out += 4) {
        const code = codes[offset + x];
        const c = (factor === 1 ? code : Math.round(zero + (code - zero) * factor)) * 4;
        pixels[out] = LOOKUP[c]; pixels[out + 1] = LOOKUP[c + 1]; pixels[out + 2] = LOOKUP[c + 2];
      }
    }
  }
}
