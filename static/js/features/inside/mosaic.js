// Painting the hidden-weight mosaic: uint8 codes -> RGBA pixels through the page's one
// diverging palette (lib/palette.js). Shared by the page and by the worker that paints off the
// main thread.
import { LOOKUP } from "../../lib/palette.js";

export const TILE = 28;
export const GAP = 1; // white pixels between tiles
export const CELL = TILE + GAP;

export function mosaicSize(n, columns) {
  const rows = Math.ceil(n / columns);
  return { rows, width: columns * CELL - GAP, height: rows * CELL - GAP };
}

// Fills `pixels` (RGBA, width x height) from the codes. Shared scale: code -> weight -> colour
// index against `maxAbs`; per tile: the code is the colour index (each row has its own scale).
export function paintMosaic(pixels, { codes, scales, n, columns, zero, levels, mode, maxAbs }) {
  const { width } = mosaicSize(n, columns);
  pixels.fill(255); // gaps and empty tiles stay white
  const limit = Math.max(maxAbs, 1e-12);
  for (let j = 0; j < n; j += 1) {
    const top = Math.floor(j / columns) * CELL;
    const left = (j % columns) * CELL;
    // The codes span ±scales[j] in `levels` steps; the palette's index spans ±limit in 127.
    const factor = mode === "per-tile" ? 127 / levels : (scales[j] / limit) * (127 / levels);
    const base = j * TILE * TILE;
    for (let y = 0; y < TILE; y += 1) {
      let out = ((top + y) * width + left) * 4;
      const offset = base + y * TILE;
      for (let x = 0; x < TILE; x += 1, out += 4) {
        const index = Math.max(1, Math.min(255, Math.round(128 + (codes[offset + x] - zero) * factor)));
        const c = index * 4;
        pixels[out] = LOOKUP[c]; pixels[out + 1] = LOOKUP[c + 1]; pixels[out + 2] = LOOKUP[c + 2];
      }
    }
  }
}
