// The quantized GEMV kernel (kernels/gemvQuant.wgsl, issue 17 groundwork) against the CPU reference of the same
// dequantized weights (src/engine/quant.ts), for q8 and q4, 1-4 rows of x, widths that are not a multiple of the
// group: within 1e-3 of the largest output (f32 sums in another order).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Gpu } from '../../src/engine/gpu/device';
import { dequantize, quantize, type QuantBits } from '../../src/engine/quant';
import { rng } from '../../src/engine/sampling';
import { relError } from './helpers';

describe('quantized GEMV on WebGPU', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  for (const bits of [8, 4] as QuantBits[]) {
    test(`q${bits}: gemvQuant equals x . dequantize(W) on the CPU`, async () => {
      const r = rng(40 + bits);
      for (const [N, K, T] of [
        [70, 100, 1],
        [33, 32, 2],
        [256, 768, 3],
        [9, 1000, 4],
      ]) {
        const w = Float32Array.from({ length: N * K }, () => (r() - 0.5) * 0.1);
        const q = quantize(w, N, K, bits);
        const x = Float32Array.from({ length: T * K }, () => r() * 2 - 1);
        const dq = dequantize(q);
        const want = new Float32Array(T * N);
        for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += x[t * K + k] * dq[n * K + k];
          want[t * N + n] = s;
        }
        const G = Math.ceil(K / 32);
        const params = gpu.buffer(32, 'params', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
        gpu.write(params, new Uint32Array([K, N, T, G, 0, K, N, 0]));
        const xb = gpu.buffer(4 * x.length, 'x');
        gpu.write(xb, x);
        const db = gpu.buffer(4 * q.data.length, 'data');
        gpu.write(db, q.data);
        const sb = gpu.buffer(4 * q.scales.length, 'scales');
        gpu.write(sb, q.scales);
        const ob = gpu.buffer(4 * T * N, 'out');
        const pipeline = gpu.pipeline('gemvQuant', { BITS: bits });
        const bind = gpu.device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [params, xb, db, sb, ob].map((buffer, binding) => ({ binding, resource: { buffer } })),
        });
        const enc = gpu.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(Math.ceil(N / 8));
        pass.end();
        gpu.device.queue.submit([enc.finish()]);
        const got = new Float32Array(await gpu.read(ob, 4 * T * N));
        await gpu.check();
        const err = relError(got, want);
        assert.ok(err < 1e-3, `q${bits} [${N}, ${K}] x ${T}: ${err}`);
        for (const b of [params, xb, db, sb, ob]) b.destroy();
      }
    });
  }
});
