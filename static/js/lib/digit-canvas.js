// The one painter of 28x28 pictures (any square, in fact): "ink" pictures (digits, the input
// as the network sees it: 0 = paper, 1 = ink, drawn dark on white) and "signed" pictures
// (weights, x·w terms) on the diverging palette, scaled to ±limit (by default the largest
// magnitude). Returns the limit used, for the picture's legend.
import { LOOKUP, colourIndex } from "./palette.js";

export function paintPicture(canvas, values, { signed = false, limit = null, max = 1 } = {}) {
  const side = Math.round(Math.sqrt(values.length));
  if (side * side !== values.length) throw new RangeError(`not a square picture: ${values.length} values`);
  if (canvas.width !== side) canvas.width = side;
  if (canvas.height !== side) canvas.height = side;
  const context = canvas.getContext("2d");
  const image = context.createImageData(side, side);
  const pixels = image.data;
  let scale = limit;
  if (signed && scale == null) {
    scale = 0;
    for (let i = 0; i < values.length; i += 1) scale = Math.max(scale, Math.abs(values[i]) || 0);
  }
  for (let i = 0; i < values.length; i += 1) {
    const out = i * 4;
    if (signed) {
      const c = colourIndex(values[i], scale) * 4;
      pixels[out] = LOOKUP[c]; pixels[out + 1] = LOOKUP[c + 1]; pixels[out + 2] = LOOKUP[c + 2];
    } else {
      const v = 255 - Math.round(255 * Math.min(1, Math.max(0, values[i] / max)));
      pixels[out] = v; pixels[out + 1] = v; pixels[out + 2] = v;
    }
    pixels[out + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return signed ? scale : max;
}

// A new canvas with a picture on it, labelled for assistive technology.
export function pictureCanvas(values, label, options = {}) {
  const canvas = document.createElement("canvas");
  canvas.className = options.className || "digit";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  canvas.dataset.limit = String(paintPicture(canvas, values, options));
  return canvas;
}
