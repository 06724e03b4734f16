// Group-wise quantized weights (issue 17, groundwork): the format and its CPU reference. Not yet wired to a
// loader, a kernel or the CLI: the WGSL GEMV/GEMM that dequantize inside the product are the next step.
//
// A weight [N, K] is quantized row by row in groups of QUANT_GROUP (32) consecutive weights of a row, each group
// with one scale d (stored as f16): w ~= d * q, q a signed integer.
//   q8: q in [-127, 127], d = max|w| / 127; four q per u32 word (byte j of a word is weight 4i + j, two's complement)
//   q4: q in [-8, 7] as stored (nibble j of a word is weight 8i + j, stored as q + 8); quantized symmetrically,
//       d = max|w| / 7, so q in [-7, 7]
// Each weight is within d / 2 of d * q (plus the f16 rounding of d).
// Planes, so that a kernel reads each with whole, aligned words:
//   data:   [N, ceil(K / 32), words per group] u32 (8 words a group for q8, 4 for q4); a row's last group is padded
//           with zeros
//   scales: [N, ceil(K / 32)] f16, packed two per u32 (the low half first); an odd count ends in a zero half
// Per group that is 34 bytes for q8 (8.5 bits a weight) and 18 bytes for q4 (4.5 bits a weight).

import { f16ToF32, f32ToF16 } from './safetensors';

export const QUANT_GROUP = 32;
export type QuantBits = 4 | 8;

export interface QuantizedWeight {
  readonly bits: QuantBits;
  readonly rows: number; // N
  readonly cols: number; // K
  readonly data: Uint32Array;
  readonly scales: Uint32Array;
}

/** Words of packed values per group. */
export function groupWords(bits: QuantBits): number {
  return (QUANT_GROUP * bits) / 32;
}

/** Bytes a quantized [rows, cols] weight takes (data and scales). */
export function quantizedBytes(bits: QuantBits, rows: number, cols: number): number {
  const groups = rows * Math.ceil(cols / QUANT_GROUP);
  return 4 * groups * groupWords(bits) + 4 * Math.ceil(groups / 2);
}

/** Quantizes a row-major [rows, cols] f32 weight. */
export function quantize(w: Float32Array, rows: number, cols: number, bits: QuantBits): QuantizedWeight {
  if (w.length !== rows * cols) throw new RangeError(`quantize: ${w.length} weights are not [${rows}, ${cols}].`);
  const gpr = Math.ceil(cols / QUANT_GROUP);
  const words = groupWords(bits);
  const data = new Uint32Array(rows * gpr * words);
  const halves = new Uint16Array(2 * Math.ceil((rows * gpr) / 2));
  const qmax = bits === 8 ? 127 : 7;
  const qmin = bits === 8 ? -127 : -8;
  const perWord = 32 / bits;
  const mask = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < gpr; g++) {
      const k0 = g * QUANT_GROUP;
      const k1 = Math.min(cols, k0 + QUANT_GROUP);
      let amax = 0;
      for (let k = k0; k < k1; k++) {
        const a = Math.abs(w[r * cols + k]);
        if (!Number.isFinite(a)) throw new RangeError(`quantize: weight [${r}, ${k}] is ${w[r * cols + k]}.`);
        if (a > amax) amax = a;
      }
      const gi = r * gpr + g;
      const h = f32ToF16(amax / qmax);
      halves[gi] = h;
      const d = f16ToF32(h); // the scale as stored: the values are rounded against it
      const inv = d > 0 ? 1 / d : 0;
      for (let k = k0; k < k1; k++) {
        const q = Math.max(qmin, Math.min(qmax, Math.round(w[r * cols + k] * inv)));
        const j = k - k0;
        const word = gi * words + Math.floor(j / perWord);
        const shift = (j % perWord) * bits;
        const stored = bits === 8 ? q & 0xff : q + 8;
        data[word] = (data[word] | ((stored & mask) << shift)) >>> 0;
      }
    }
  }
  return { bits, rows, cols, data, scales: new Uint32Array(halves.buffer) };
}

/** The q values of row r, group g, times its scale, into out[0 .. QUANT_GROUP) (the reference every kernel follows). */
export function dequantizeGroup(q: QuantizedWeight, r: number, g: number, out: Float32Array): void {
  const gpr = Math.ceil(q.cols / QUANT_GROUP);
  const gi = r * gpr + g;
  const half = (q.scales[gi >>> 1] >>> ((gi & 1) * 16)) & 0xffff;
  const d = f16ToF32(half);
  const words = groupWords(q.bits);
  const perWord = 32 / q.bits;
  for (let j = 0; j < QUANT_GROUP; j++) {
    const word = q.data[gi * words + Math.floor(j / perWord)];
    const v = (word >>> ((j % perWord) * q.bits)) & ((1 << q.bits) - 1);
    const s = q.bits === 8 ? (v << 24) >> 24 : v - 8;
    out[j] = d * s;
  }
}

/** The whole weight back as f32 [rows, cols]. */
export function dequantize(q: QuantizedWeight): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  const g = new Float32Array(QUANT_GROUP);
  const gpr = Math.ceil(q.cols / QUANT_GROUP);
  for (let r = 0; r < q.rows; r++) {
    for (let gi = 0; gi < gpr; gi++) {
      dequantizeGroup(q, r, gi, g);
      const k0 = gi * QUANT_GROUP;
      out.set(g.subarray(0, Math.min(QUANT_GROUP, q.cols - k0)), r * q.cols + k0);
    }
  }
  return out;
}
