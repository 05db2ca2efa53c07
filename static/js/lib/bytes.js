// Binary payloads (Socket.IO attachments arrive as ArrayBuffer) as typed arrays.
export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError("expected binary data");
}

// Little-endian float32 (the server writes '<f4'); copied so the view is aligned.
export function float32(data) {
  return new Float32Array(toBytes(data).slice().buffer);
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
  const halves = new Uint16Array(toBytes(data).slice().buffer);
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i += 1) out[i] = halfTable[halves[i]];
  return out;
}

// The n-th 28x28 digit of a blob of digits (n x 784 bytes, as the server packs them).
export function nthDigit(pixels, n) {
  return toBytes(pixels).subarray(n * 784, (n + 1) * 784);
}
