// The small live-view streams (docs/protocol.md, "Small streams"): inside:weights-delta and
// inside:distributions-delta come as a key frame, then deltas that each build on the frame
// before. A chain applies every frame, in order, and gives back whole frames in the shape the
// views draw (the first protocol's frames). The reference is server/engine/deltas.py's
// RowDeltasReader (pinned to this by tests/test_browser_live_views.py).
import { toBytes } from "../../lib/bytes.js";

async function inflate(data) {
  const stream = new Blob([toBytes(data)]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Int8Array(await new Response(stream).arrayBuffer());
}

// One matrix's rows as codes (-levels..levels) and a power-of-two exponent per row:
// w[j][i] = codes[j * cols + i] * 2 ** exponent[j] / levels.
export function createRows() {
  let codes = null;
  let exponents = null;
  return {
    async apply(part) {
      if (part.codes !== undefined) { // a key frame
        exponents = new Int8Array(toBytes(part.exponents).slice().buffer);
        codes = await inflate(part.codes);
        return;
      }
      if (!codes) throw new Error("a delta needs a key frame first");
      const shifts = toBytes(part.shifts);
      const changes = await inflate(part.changes);
      const cols = codes.length / exponents.length;
      for (let j = 0; j < shifts.length; j += 1) {
        const shift = shifts[j];
        if (!shift) continue;
        exponents[j] += shift;
        for (let i = j * cols; i < (j + 1) * cols; i += 1) codes[i] >>= shift; // arithmetic shift
      }
      for (let i = 0; i < codes.length; i += 1) codes[i] += changes[i];
    },
    codes: () => codes,
    exponents: () => exponents,
  };
}

// weights-delta -> an inside:weights-shaped frame: hidden tiles as codes with a scale per row
// (2 ** exponent: value = code * scale / levels, zero = 0), output weights as float32 values.
export function createWeightsChain() {
  let hidden = createRows();
  let output = createRows();
  let last = null; // seq of the frame applied last
  return {
    async apply(frame) {
      if (frame.kind === "key") {
        hidden = createRows();
        output = createRows();
      } else if (frame.base !== last) {
        return null; // a gap: wait for the next key frame
      }
      await hidden.apply(frame.hidden);
      await output.apply(frame.output);
      last = frame.seq;
      const levels = frame.levels;
      const scales = Float32Array.from(hidden.exponents(), (e) => 2 ** e);
      const codes = hidden.codes();
      const cols = frame.hidden.inputs;
      const largest = scales.map((scale, j) => {
        let most = 0;
        for (let i = j * cols; i < (j + 1) * cols; i += 1) most = Math.max(most, Math.abs(codes[i]));
        return most * scale / levels;
      });
      const outCodes = output.codes();
      const outExponents = output.exponents();
      const [rows, columns] = frame.output.shape;
      const values = new Float32Array(rows * columns);
      for (let k = 0; k < rows; k += 1) {
        const scale = 2 ** outExponents[k] / levels;
        for (let i = k * columns; i < (k + 1) * columns; i += 1) values[i] = outCodes[i] * scale;
      }
      return {
        ...frame,
        hidden: { ...frame.hidden, tiles: { codes, scales, largest, zero: 0, levels } },
        output: { ...frame.output, values },
      };
    },
  };
}

// distributions-delta -> an inside:distributions-shaped frame (every record of every tensor).
export function createDistributionsChain() {
  let tensors = new Map(); // "name kind" -> {meta, steps, outside, rows: [Uint8Array]}
  let last = null;
  return {
    async apply(frame) {
      if (frame.kind === "key") {
        tensors = new Map();
      } else if (frame.base !== last) {
        return null;
      }
      for (const part of frame.tensors) {
        const key = `${part.name} ${part.kind}`;
        const held = tensors.get(key) ?? { meta: part, steps: [], outside: [], rows: [] };
        const from = part.from ?? 0;
        const bins = held.meta.bins;
        const counts = toBytes(part.counts);
        held.steps.splice(from, Infinity, ...part.steps);
        held.outside.splice(from, Infinity, ...part.outside);
        const rows = [];
        for (let r = 0; r < part.steps.length; r += 1) rows.push(counts.slice(r * bins, (r + 1) * bins));
        held.rows.splice(from, Infinity, ...rows);
        tensors.set(key, held);
      }
      last = frame.seq;
      const whole = [...tensors.values()].map(({ meta, steps, outside, rows }) => {
        const counts = new Uint8Array(rows.length * meta.bins);
        rows.forEach((row, r) => counts.set(row, r * meta.bins));
        return { ...meta, steps: [...steps], outside: [...outside], counts };
      });
      return { ...frame, tensors: whole };
    },
  };
}

// One chain per stream, frames applied strictly in arrival order (inflating is asynchronous).
export function inOrder(chain) {
  let queue = Promise.resolve();
  return (frame) => (queue = queue.then(() => chain.apply(frame)).catch(() => null));
}

