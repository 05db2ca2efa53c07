// Decoding the binary parts of the live-view frames (Socket.IO attachments arrive as ArrayBuffer).

export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("expected binary data");
}

// Little-endian float32 (the server writes '<f4'); copied so the view is aligned.
export function float32(data) {
  const bytes = toBytes(data);
  return new Float32Array(bytes.slice().buffer);
}

// IEEE half floats -> Float32Array, through a 64 K lookup table built once.
let halfTable = null;
function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
export function float16(data) {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h += 1) halfTable[h] = halfToFloat(h);
  }
  const bytes = toBytes(data).slice();
  const halves = new Uint16Array(bytes.buffer);
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i += 1) out[i] = halfTable[halves[i]];
  return out;
}

// The hidden-weight tiles: uint8 codes with one scale per neuron (row).
// value = (code - zero) * scale / levels; per-tile view: (code - zero) / levels in -1..1.
export function decodeTiles(hidden) {
  const codes = toBytes(hidden.data);
  const scales = float32(hidden.row_scale);
  const bias = float32(hidden.bias);
  const { zero, levels } = hidden.encoding;
  return { codes, scales, bias, zero, levels, n: hidden.n_shown, inputs: hidden.inputs,
    weight(j, i) { return (codes[j * hidden.inputs + i] - zero) * scales[j] / levels; } };
}
