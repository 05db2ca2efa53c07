// The hidden-weight tiles of an inside:weights frame: uint8 codes with one scale per neuron (row).
// value = (code - zero) * scale / levels; per-tile view: (code - zero) / levels in -1..1.
import { float32, toBytes } from "../../lib/bytes.js";

export function decodeTiles(hidden) {
  const codes = toBytes(hidden.data);
  const scales = float32(hidden.row_scale);
  const bias = float32(hidden.bias);
  const { zero, levels } = hidden.encoding;
  return { codes, scales, bias, zero, levels, n: hidden.n_shown, inputs: hidden.inputs,
    weight(j, i) { return (codes[j * hidden.inputs + i] - zero) * scales[j] / levels; } };
}
