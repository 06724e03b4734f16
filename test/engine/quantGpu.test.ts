// Group-wise quantized weights (q8, q4: src/engine/quant.ts) through the engine's ops on WebGPU: the GEMV (every
// input transform, 1-4 rows, the scalar form for widths that are not whole groups), the tiled and generic GEMM,
// the MoE expert products and the embedding, each against the CPU reference of the same dequantized weights
// (within 1e-3 of the largest output: f32 sums in another order), also with the weight split in parts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as cpu from '../../src/engine/cpu/ops';
import { Gpu, type GpuWeight } from '../../src/engine/gpu/device';
import { CommandList } from '../../src/engine/gpu/ops';
import { dequantize, quantize, quantizedBytes, type QuantBits } from '../../src/engine/quant';
import { f32ToF16, toF32 } from '../../src/engine/safetensors';
import { rng } from '../../src/engine/sampling';
import { relError, withEnv } from './helpers';

const TOL = 1e-3;

describe('quantized weights in the WebGPU ops', () => {
  let gpu: Gpu;
  const r = rng(17);
  const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
  const buf = (data: Float32Array | Uint32Array | number): GPUBuffer => {
    const b = gpu.buffer(typeof data === 'number' ? 4 * data : Math.max(16, data.byteLength), 'act');
    if (typeof data !== 'number') gpu.write(b, data);
    return b;
  };
  const read = async (b: GPUBuffer, n: number) => new Float32Array(await gpu.read(b, 4 * n));
  /** A quantized weight on the GPU and its dequantized f32 values (the reference). */
  const qweight = (shape: number[], bits: QuantBits, maxPartBytes?: number): { w: GpuWeight; ref: Float32Array } => {
    const K = shape[shape.length - 1];
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const q = quantize(randn(rows * K, 0.5), rows, K, bits);
    return { w: gpu.uploadQuantized('w', q, shape, { maxPartBytes }), ref: dequantize(q) };
  };
  const close = (got: Float32Array, want: Float32Array, what: string) => {
    const e = relError(got, want);
    assert.ok(e < TOL, `${what}: relative error ${e}`);
  };

  /** Row 4 of a [V, D] weight (tiny values) through the embedding, the GEMV and the tiled GEMM, against the CPU. */
  const subnormalRows = async (w: GpuWeight, ref: Float32Array, V: number, D: number, what: string) => {
    const ids = [4, 1, 4, 2];
    const out = buf(ids.length * D);
    const list = new CommandList(gpu);
    list.embedding(buf(new Uint32Array(ids)), w, { buffer: out }, ids.length, D, 1);
    const ys: [number, GPUBuffer, Float32Array][] = [1, 3, 37].map((T) => {
      const x = randn(T * D);
      const y = buf(T * V);
      list.linear({ buffer: buf(x) }, w, { buffer: y }, T, D, V); // a tied lm_head: GEMV 1-4 rows, GEMM
      return [T, y, cpu.linear(x, ref, D, V)];
    });
    await list.run();
    const got = await read(out, ids.length * D);
    const want = cpu.embed(ref, ids, D, 1);
    close(got.subarray(0, D), want.subarray(0, D), `${what} embedding of the tiny row`);
    close(got, want, `${what} embedding`);
    for (const [T, y, wantY] of ys) {
      const gotY = await read(y, T * V);
      const col = (a: Float32Array) => Float32Array.from({ length: T }, (_, t) => a[t * V + 4]);
      close(col(gotY), col(wantY), `${what} T=${T}: the outputs of the tiny row`);
      close(gotY, wantY, `${what} T=${T}`);
    }
    list.destroy();
  };

  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  for (const bits of [8, 4] as QuantBits[]) {
    const fmt = `q${bits}`;

    test(`${fmt}: upload keeps the planes, splits by rows, reports the real bytes`, async () => {
      const { w } = qweight([70, 96], bits, 30 * (96 / 32) * (bits * 4 + 2) + 16); // <= 30 rows a part (+ padding)
      assert.equal(w.format, fmt);
      assert.deepEqual(w.parts.map((p) => [p.rowStart, p.rows]), [[0, 30], [30, 30], [60, 10]]);
      assert.equal(w.bytes, quantizedBytes(bits, 70, 96));
      assert.equal(w.parts[0].scaleOffset, 30 * 3 * (bits === 8 ? 8 : 4));
    });

    test(`${fmt}: linear (GEMV 1-4 rows, scalar GEMV, tiled and generic GEMM), bias, alpha, accumulate, parts`, async () => {
      const cases = [
        { T: 1, K: 64, N: 130 },
        { T: 4, K: 96, N: 33 },
        { T: 2, K: 40, N: 19 }, // scalar GEMV (not whole groups)
        { T: 37, K: 64, N: 130 }, // tiled GEMM
        { T: 70, K: 40, N: 65 }, // tiled GEMM, a padded last group
        { T: 9, K: 37, N: 20 }, // generic GEMM
        { T: 100, K: 96, N: 21 }, // several rows of gemmCpu's workgroups, a last one part full
      ];
      // On a CPU adapter a GEMM with K % 32 == 0 runs kernels/gemmCpu.wgsl unless forced: both, and main.
      for (const kernel of ['', 'cpu', 'main'])
      for (const { T, K, N } of cases) {
        for (const split of [false, true]) {
          const G = Math.ceil(K / 32);
          const { w, ref } = qweight([N, K], bits, split ? 8 * G * (bits * 4 + 2) : undefined);
          if (split) assert.ok(w.parts.length > 1);
          const x = randn(T * K);
          const bias = gpu.uploadWeight('b', new Uint8Array(randn(N).buffer), 'F32', [N]);
          const bRef = new Float32Array(await gpu.read(bias.parts[0].buffer, 4 * N));
          const init = randn(T * N);
          const out = buf(init);
          const list = new CommandList(gpu);
          await withEnv({ SIDEWINDER_GEMM_KERNEL: kernel, SIDEWINDER_GEMV_CPU: kernel === 'main' ? '0' : '' }, async () => {
            list.linear({ buffer: buf(x) }, w, { buffer: out }, T, K, N, { bias, alpha: 0.7, accumulate: true });
            await list.run();
          });
          const y = cpu.linear(x, ref, K, N, bRef);
          close(await read(out, T * N), init.map((v, i) => v + 0.7 * y[i]), `${fmt} T=${T} K=${K} N=${N}${split ? ' parts' : ''} ${kernel || 'default'} kernel`);
          list.destroy();
        }
      }
    });

    test(`${fmt}: GEMV with the input RMS-normalised, SwiGLU-gated or gated-RMS-normalised on the fly`, async () => {
      // Both GEMV shapes: a lane per row (CPU adapters) and TPR lanes per row (GPUs; SIDEWINDER_GEMV_CPU=0).
      for (const shape of ['', '0']) {
        await withEnv({ SIDEWINDER_GEMV_CPU: shape }, async () => {
          const N = 50;
          for (const { T, K } of [{ T: 1, K: 64 }, { T: 3, K: 128 }, { T: 2, K: 40 }]) {
            const { w, ref } = qweight([N, K], bits);
            const nwv = randn(K);
            const nw = gpu.uploadWeight('nw', new Uint8Array(nwv.buffer), 'F32', [K]);
            const x = randn(T * K, 3);
            const out = buf(T * N);
            const list = new CommandList(gpu);
            list.linear({ buffer: buf(x) }, w, { buffer: out }, T, K, N, { inputNorm: { w: nw, eps: 1e-5 } });
            const x2 = randn(T * 2 * K, 2);
            const out2 = buf(T * N);
            list.linear({ buffer: buf(x2) }, w, { buffer: out2 }, T, K, N, { inputSwiglu: true });
            const G = K % 16 === 0 ? 16 : K;
            const z = randn(T * K, 2);
            const out3 = buf(T * N);
            list.linear({ buffer: buf(x) }, w, { buffer: out3 }, T, K, N, { inputGatedNorm: { z: { buffer: buf(z) }, w: nw, groupSize: G, eps: 1e-6 } });
            await list.run();
            close(await read(out, T * N), cpu.linear(cpu.rmsNorm(x, nwv, K, 1e-5), ref, K, N), `${fmt} norm T=${T} K=${K}`);
            close(await read(out2, T * N), cpu.linear(cpu.swiglu(x2, K), ref, K, N), `${fmt} swiglu T=${T} K=${K}`);
            close(await read(out3, T * N), cpu.linear(cpu.gatedRmsNorm(x, z, nwv, K, G, 1e-6), ref, K, N), `${fmt} gated norm T=${T} K=${K}`);
            list.destroy();
          }
        });
      }
    });

    test(`${fmt}: MoE expert products (up and down), experts split in parts`, async () => {
      const E = 6;
      const T = 3;
      const k = 2;
      const K = 64;
      const N = 48;
      const up = qweight([E, N, K], bits, 2 * N * 2 * (bits * 4 + 2) + 16); // 2 experts a part (+ padding)
      const down = qweight([E, K, N], bits);
      assert.ok(up.w.parts.length === 3);
      const ids = [0, 5, 3, 3, 2, 4];
      const experts = buf(new Uint32Array(ids));
      const x = randn(T * K);
      const h = buf(T * k * N);
      const y = buf(T * k * K);
      const list = new CommandList(gpu);
      list.moeLinear({ buffer: buf(x) }, up.w, experts, { buffer: h }, T, k, K, N);
      list.moeLinear({ buffer: h }, down.w, experts, { buffer: y }, T, k, N, K, { perSlotInput: true });
      await list.run();
      const wantH = new Float32Array(T * k * N);
      const wantY = new Float32Array(T * k * K);
      for (let s = 0; s < T * k; s++) {
        const e = ids[s];
        const t = Math.floor(s / k);
        wantH.set(cpu.linear(x.subarray(t * K, (t + 1) * K), up.ref.subarray(e * N * K, (e + 1) * N * K), K, N), s * N);
      }
      const gotH = await read(h, T * k * N);
      close(gotH, wantH, `${fmt} moe up`);
      for (let s = 0; s < T * k; s++) {
        const e = ids[s];
        wantY.set(cpu.linear(gotH.subarray(s * N, (s + 1) * N), down.ref.subarray(e * K * N, (e + 1) * K * N), N, K), s * K);
      }
      close(await read(y, T * k * K), wantY, `${fmt} moe down`);
      list.destroy();
      // The prefill form (slots grouped by expert, tiled GEMMs) on the same quantized parts, more tokens.
      const T2 = 40;
      const ids2 = Array.from({ length: T2 * k }, (_, s) => (s * 7 + (s >> 3)) % E);
      const experts2 = buf(new Uint32Array(ids2));
      const x2 = randn(T2 * K);
      const h2 = buf(T2 * k * N);
      const y2 = buf(T2 * k * K);
      const list2 = new CommandList(gpu);
      const g = list2.moeGroup(experts2, T2 * k, E);
      list2.moeGemm({ buffer: buf(x2) }, up.w, g, { buffer: h2 }, T2, k, K, N);
      list2.moeGemm({ buffer: h2 }, down.w, g, { buffer: y2 }, T2, k, N, K, { perSlotInput: true });
      await list2.run();
      const wantH2 = new Float32Array(T2 * k * N);
      for (let s = 0; s < T2 * k; s++) {
        const t = Math.floor(s / k);
        wantH2.set(cpu.linear(x2.subarray(t * K, (t + 1) * K), up.ref.subarray(ids2[s] * N * K, (ids2[s] + 1) * N * K), K, N), s * N);
      }
      const gotH2 = await read(h2, T2 * k * N);
      close(gotH2, wantH2, `${fmt} moeGemm up`);
      const wantY2 = new Float32Array(T2 * k * K);
      for (let s = 0; s < T2 * k; s++) wantY2.set(cpu.linear(gotH2.subarray(s * N, (s + 1) * N), down.ref.subarray(ids2[s] * K * N, (ids2[s] + 1) * K * N), N, K), s * K);
      close(await read(y2, T2 * k * K), wantY2, `${fmt} moeGemm down`);
      list2.destroy();
    });

    test(`${fmt}: embedding rows, table split in parts`, async () => {
      const V = 50;
      const D = 48;
      const { w, ref } = qweight([V, D], bits, 11 * 2 * (bits * 4 + 2));
      assert.ok(w.parts.length >= 4);
      const ids = [3, 0, 49, 17, 17, 25, 12];
      const out = buf(ids.length * D);
      const list = new CommandList(gpu);
      list.embedding(buf(new Uint32Array(ids)), w, { buffer: out }, ids.length, D, 1.5);
      await list.run();
      close(await read(out, ids.length * D), cpu.embed(ref, ids, D, 1.5), `${fmt} embedding`);
      list.destroy();
    });

    test(`${fmt}: subnormal f16 scales (a group's max |w| under 2^-14 * qmax) are not flushed to zero`, async () => {
      // A scale below 2^-14 is a subnormal f16. Widened through an f32 subnormal it read as 0 on GPUs that flush
      // f32 denormals (the H200's Vulkan driver; lavapipe keeps them): the padding token's embedding row of a
      // trained model, a few optimizer steps from zero, vanished on WebGPU while the CPU kept it, and the RMS
      // norm after the embedding made it count (WebGPU and CPU logits apart from the first pad token on).
      const V = 6;
      const D = 64;
      const w0 = randn(V * D, 0.5);
      for (let i = 4 * D; i < 5 * D; i++) w0[i] *= 1e-4; // row 4: scales ~7e-6 (q4) / ~4e-7 (q8), subnormal
      const q = quantize(w0, V, D, bits);
      const scales = new Uint16Array(q.scales.buffer);
      for (const g of [8, 9]) assert.ok(scales[g] > 0 && scales[g] < 0x400, `row 4's scales are subnormal: ${scales[g]}`);
      await subnormalRows(gpu.uploadQuantized('w', q, [V, D]), dequantize(q), V, D, fmt);
    });

    test(`${fmt}: ops that need full-precision weights refuse a quantized one`, async () => {
      const { w } = qweight([4, 32], bits);
      const list = new CommandList(gpu);
      assert.throws(() => list.rmsNorm({ buffer: buf(128) }, w, { buffer: buf(128) }, 1, 128, 1e-5), /quantized/);
      list.destroy();
    });
  }

  test('f16: subnormal f16 weights (below 2^-14) are not flushed to zero', async () => {
    const V = 6;
    const D = 64;
    const w0 = randn(V * D, 0.5);
    for (let i = 4 * D; i < 5 * D; i++) w0[i] *= 1e-4; // row 4: subnormal halves
    const h = new Uint16Array(V * D).map((_, i) => f32ToF16(w0[i]));
    assert.ok(h.subarray(4 * D, 5 * D).every((v) => (v & 0x7c00) === 0) && h.subarray(4 * D, 5 * D).some((v) => (v & 0x3ff) !== 0));
    const bytes = new Uint8Array(h.buffer);
    await subnormalRows(gpu.uploadWeight('w', bytes, 'F16', [V, D]), toF32(bytes, 'F16'), V, D, 'f16');
  });
});
