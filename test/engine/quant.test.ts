// Group-wise quantized weights (src/engine/quant.ts): the f16 scale conversion is round-to-nearest-even against
// every f16 value; quantize -> dequantize stays within half a step of every weight; the packing is the documented
// layout (bytes and nibbles in order, scales two per word); sizes as the format says.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { QUANT_GROUP, dequantize, groupWords, quantize, quantizedBytes, type QuantBits } from '../../src/engine/quant';
import { f16ToF32, f32ToF16 } from '../../src/engine/safetensors';
import { rng } from '../../src/engine/sampling';

describe('quantized weights (q8, q4)', () => {
  test('f32 -> f16 rounds to the nearest f16, ties to even, over normals, subnormals, overflow and specials', () => {
    const finite: { v: number; h: number }[] = [];
    for (let h = 0; h < 0x7c00; h++) finite.push({ v: f16ToF32(h), h });
    const nearest = (x: number): number => {
      const a = Math.abs(x);
      if (a >= 65520) return 0x7c00; // past the largest f16 plus half a step: infinity
      let lo = 0;
      let hi = finite.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (finite[mid].v <= a) lo = mid;
        else hi = mid;
      }
      const dl = a - finite[lo].v;
      const dh = finite[hi].v - a;
      return dl < dh ? finite[lo].h : dh < dl ? finite[hi].h : finite[lo].h % 2 === 0 ? finite[lo].h : finite[hi].h;
    };
    const r = rng(3);
    const xs: number[] = [0, -0, 1, -1, 65504, 65519, 65520, 1e9, 5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11];
    for (let i = 0; i < 20000; i++) xs.push((r() - 0.5) * 2 ** (Math.floor(r() * 44) - 28));
    for (const x of xs) {
      const got = f32ToF16(x) & 0x7fff;
      const want = nearest(Math.fround(x));
      assert.equal(got, want, `${x}: 0x${got.toString(16)} vs 0x${want.toString(16)}`);
      if (x < 0 || Object.is(x, -0)) assert.equal(f32ToF16(x) & 0x8000, 0x8000, `sign of ${x}`);
    }
    assert.equal(f32ToF16(Infinity), 0x7c00);
    assert.ok((f32ToF16(NaN) & 0x7c00) === 0x7c00 && (f32ToF16(NaN) & 0x3ff) !== 0);
  });

  for (const bits of [8, 4] as QuantBits[]) {
    test(`q${bits}: quantize -> dequantize within half a step of every weight; sizes; odd widths; zero and outlier groups`, () => {
      const r = rng(bits);
      const qmax = bits === 8 ? 127 : 7;
      for (const [rows, cols] of [
        [3, 32],
        [5, 100],
        [17, 768],
        [2, 1],
      ]) {
        const w = new Float32Array(rows * cols);
        for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * 0.2;
        if (cols >= 64) {
          w.fill(0, 0, 32); // a group of zeros
          w[40] = 3.5; // an outlier
        }
        const q = quantize(w, rows, cols, bits);
        const gpr = Math.ceil(cols / QUANT_GROUP);
        assert.equal(q.data.length, rows * gpr * groupWords(bits));
        assert.equal(4 * (q.data.length + q.scales.length), quantizedBytes(bits, rows, cols));
        const back = dequantize(q);
        let worstSteps = 0;
        for (let row = 0; row < rows; row++) {
          for (let g = 0; g < gpr; g++) {
            const gi = row * gpr + g;
            const d = f16ToF32((q.scales[gi >>> 1] >>> ((gi & 1) * 16)) & 0xffff);
            for (let k = g * QUANT_GROUP; k < Math.min(cols, (g + 1) * QUANT_GROUP); k++) {
              const i = row * cols + k;
              const err = Math.abs(back[i] - w[i]);
              // half a step, and the f16 rounding of the scale (at most qmax * d * 2^-11) where the clamp bites
              const bound = 0.5 * d + qmax * d * 2 ** -11 + 1e-12;
              assert.ok(err <= bound, `[${row}, ${k}] = ${w[i]} came back ${back[i]} (d ${d}, error ${err} > ${bound})`);
              if (d > 0) worstSteps = Math.max(worstSteps, err / d);
            }
          }
        }
        if (cols >= 64) {
          for (let k = 0; k < 32; k++) assert.equal(back[k], 0, 'a group of zeros is exact');
          assert.ok(Math.abs(back[40] - 3.5) <= (3.5 / qmax) * 0.01, 'the group maximum is (nearly) exact');
        }
        assert.ok(worstSteps <= 0.5 + 1e-3, `worst error ${worstSteps} steps`);
      }
    });
  }

  test('the packing is the documented layout', () => {
    // One row of 32: weights k * d for k = -7..7 (q4) or q = k for a scale of 1/127 * max (q8).
    const w = Float32Array.from({ length: 32 }, (_, j) => (j % 15) - 7);
    const q4 = quantize(w, 1, 32, 4);
    assert.equal(f16ToF32(q4.scales[0] & 0xffff), 1, 'd = max / 7 = 1');
    for (let j = 0; j < 32; j++) assert.equal((q4.data[j >> 3] >>> ((j & 7) * 4)) & 15, (j % 15) - 7 + 8, `nibble ${j}`);
    const w8 = Float32Array.from({ length: 32 }, (_, j) => j - 16 + (j === 31 ? 112 : 0)); // max 127
    const q8 = quantize(w8, 1, 32, 8);
    assert.equal(f16ToF32(q8.scales[0] & 0xffff), 1);
    for (let j = 0; j < 32; j++) assert.equal(((q8.data[j >> 2] >>> ((j & 3) * 8)) << 24) >> 24, w8[j], `byte ${j}`);
    assert.throws(() => quantize(Float32Array.of(NaN), 1, 1, 8), RangeError);
  });
});
