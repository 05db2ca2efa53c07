// The hidden-weight tiles of a frame: codes with a scale per neuron (row),
// value = (code - zero) * scale / levels; per-tile view: (code - zero) / levels in -1..1.
// An inside:weights frame: uint8 codes, zero 128, levels 127, the row's largest |w| as scale.
// A weights-delta frame rebuilt by chains.js: int8 codes, zero 0, levels 31, 2 ** exponent.
import { float32, toBytes } from "../../lib/bytes.js";

export function decodeTiles(hidden) {
  const bias = float32(hidden.bias);
  const n = hidden.n_shown;
  const inputs = hidden.inputs;
  const { codes, scales, largest, zero, levels } = hidden.tiles ?? {
    codes: toBytes(hidden.data), scales: float32(hidden.row_scale), largest: null, ...hidden.encoding };
  return { codes, scales, largest: largest ?? scales, bias, zero, levels, n, inputs,
    weight(j, i) { return (codes[j * inputs + i] - zero) * scales[j] / levels; } };
}
