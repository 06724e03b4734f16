// K/V rows committed to the host stores with their block key summaries computed on the GPU
// (kernels/kvSummary.wgsl) give exactly the blocks and summaries of rows appended on the host: random data with
// ties and signed zeros, chunks of every phase against the 64-row blocks, row widths whose summary groups are
// not 256-byte aligned, a rollback in between, and host appends with summaries against a spill budget. Also the
// chunk's query range (kernels/kvScore.wgsl qpart + qrange, min/max over runs of tokens then over the runs).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Gpu } from '../../src/engine/gpu/device';
import { SparseKv } from '../../src/engine/gpu/kvPager';
import { BLOCK_ROWS, HostBudget, KvBlockStore, type KvBlockSource } from '../../src/engine/memory/kvBlocks';
import type { ModelConfig } from '../../src/engine/config';
import { rng } from '../../src/engine/sampling';

/**
 * Random rows [n / kd, kd] with ties and both zeros: in a third of the columns the values are >= 0 (the min is
 * often a zero of either sign), in a third <= 0 (the max is), the rest general with repeats.
 */
function randomRows(random: () => number, n: number, kd: number): Float32Array {
  const a = new Float32Array(n);
  const pick = (xs: number[]) => xs[Math.floor(random() * xs.length)];
  for (let i = 0; i < n; i++) {
    const c = i % kd;
    const u = random();
    if (c % 3 === 0) a[i] = u < 0.8 ? pick([0, -0, 0.5]) : random() * 4;
    else if (c % 3 === 1) a[i] = u < 0.8 ? pick([0, -0, -0.5]) : -random() * 4;
    else a[i] = u < 0.3 ? pick([0, -0, 0.25, -0.25]) : Math.round((random() * 2 - 1) * 1e6) / 1e5;
  }
  return a;
}

/** Bitwise equality (so -0 and +0 differ). */
function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} is ${a[i]} (0x${x[i].toString(16)}), not ${b[i]} (0x${y[i].toString(16)})`);
}

function sameStore(got: KvBlockSource, want: KvBlockSource, what: string): void {
  assert.equal(got.length, want.length, `${what}: rows`);
  for (let b = 0; b * BLOCK_ROWS < want.length; b++) {
    bitsEqual(got.summary(b).min, want.summary(b).min, `${what}: block ${b} min`);
    bitsEqual(got.summary(b).max, want.summary(b).max, `${what}: block ${b} max`);
    bitsEqual(got.block(b).k, want.block(b).k, `${what}: block ${b} keys`);
    bitsEqual(got.block(b).v, want.block(b).v, `${what}: block ${b} values`);
  }
}

describe('K/V block summaries on the GPU', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  for (const [numKvHeads, headDim] of [
    [2, 32],
    [3, 16],
  ]) {
    test(`kd = ${numKvHeads} x ${headDim}: committed rows and GPU summaries equal host appends`, async () => {
      const kd = numKvHeads * headDim;
      const cfg = { attention: { numHeads: 2 * numKvHeads, numKvHeads, headDim } } as unknown as ModelConfig;
      const layers = 2;
      const maxChunk = 200;
      const kv = new SparseKv(gpu, cfg, { gpuBudgetBytes: 64 << 20, maxContextTokens: 4096 }, maxChunk, layers);
      const capacity = 2048;
      const work = Array.from({ length: layers }, (_, j) => ({ k: gpu.buffer(4 * capacity * kd, `k${j}`), v: gpu.buffer(4 * capacity * kd, `v${j}`) }));
      const budget = new HostBudget(Infinity);
      const ref = Array.from({ length: layers }, () => new KvBlockStore(kd, budget, null));
      const random = rng(11 + kd);
      let pos = 0;
      // Chunks that start at every kind of phase: aligned, mid-block, one row, whole blocks, several blocks.
      const sizes = [1, 37, 64, 100, 5, 200, 63, 64, 128, 1, 1, 130, 27, 199];
      for (const [c, T] of sizes.entries()) {
        if (c === 9) {
          // A rollback to mid-block: the next commit continues from there.
          pos -= 45;
          kv.truncate(pos);
          for (const r of ref) r.truncate(pos);
        }
        for (let j = 0; j < layers; j++) {
          const k = randomRows(random, T * kd, kd);
          const v = randomRows(random, T * kd, kd);
          gpu.write(work[j].k, k, 4 * pos * kd);
          gpu.write(work[j].v, v, 4 * pos * kd);
          ref[j].append(k, v);
        }
        kv.commit(T, pos, work, false);
        await kv.settle();
        pos += T;
        for (let j = 0; j < layers; j++) sameStore(kv.source(j), ref[j], `chunk ${c} (${T} rows), layer ${j}`);
      }
      await gpu.check();
      kv.destroy();
      for (const w of work) {
        w.k.destroy();
        w.v.destroy();
      }
    });
  }

  test('query range over runs of tokens equals the min/max over the whole chunk', async () => {
    const [nH, nKv, d, qOff] = [6, 2, 24, 5];
    const qStride = nH * d + 7;
    const random = rng(9);
    for (const T of [1, 5, 64, 100, 1000]) {
      const slices = Math.min(T, 64);
      const q = randomRows(random, qOff + T * qStride, qStride);
      const want = new Float32Array(nKv * 2 * d);
      const rep = nH / nKv;
      for (let g = 0; g < nKv; g++) {
        for (let i = 0; i < d; i++) {
          let lo = Infinity;
          let hi = -Infinity;
          for (let t = 0; t < T; t++) {
            for (let r = 0; r < rep; r++) {
              const x = q[qOff + t * qStride + (g * rep + r) * d + i];
              lo = Math.min(lo, x);
              hi = Math.max(hi, x);
            }
          }
          want[g * 2 * d + i] = lo;
          want[g * 2 * d + d + i] = hi;
        }
      }
      const params = gpu.buffer(32, 'params', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      gpu.write(params, new Uint32Array([T, nH, nKv, d, qOff, qStride, 0, slices]));
      const qb = gpu.buffer(4 * q.length, 'q');
      gpu.write(qb, q);
      const qr = gpu.buffer(4 * nKv * 2 * d, 'qr');
      const qp = gpu.buffer(4 * nKv * slices * 2 * d, 'qp');
      const enc = gpu.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      for (const [entry, bind, groups] of [
        ['qpart', { 0: params, 1: qb, 5: qp }, [nKv, slices]],
        ['qrange', { 0: params, 2: qr, 5: qp }, [nKv, 1]],
      ] as const) {
        const pipeline = gpu.pipeline('kvScore', {}, entry);
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: Object.entries(bind).map(([b, buffer]) => ({ binding: Number(b), resource: { buffer } })) }));
        pass.dispatchWorkgroups(groups[0], groups[1]);
      }
      pass.end();
      gpu.device.queue.submit([enc.finish()]);
      const got = new Float32Array(await gpu.read(qr, 4 * nKv * 2 * d));
      await gpu.check();
      // Values equal (min/max of equal zeros may keep either sign: it does not change a score).
      for (let i = 0; i < want.length; i++) assert.ok(got[i] === want[i], `T = ${T}: element ${i} is ${got[i]}, not ${want[i]}`);
      for (const b of [params, qb, qr, qp]) b.destroy();
    }
  });

  test('host appends with given summaries equal appends without, across a spill budget', () => {
    const kd = 16;
    const random = rng(3);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-kvsum-'));
    try {
      const blockBytes = 2 * BLOCK_ROWS * kd * 4;
      const plain = new KvBlockStore(kd, new HostBudget(5 * blockBytes), path.join(dir, 'a.bin'));
      const given = new KvBlockStore(kd, new HostBudget(5 * blockBytes), path.join(dir, 'b.bin'));
      for (const T of [3, 61, 64, 300, 1, 129, 64, 500, 17]) {
        const k = randomRows(random, T * kd, kd);
        const v = randomRows(random, T * kd, kd);
        // Per-block min/max from the store's current phase, as the kernel groups them.
        const phase = given.length % BLOCK_ROWS;
        const groups = Math.ceil((phase + T) / BLOCK_ROWS);
        const sums = new Float32Array(groups * 2 * kd);
        for (let g = 0; g < groups; g++) {
          const r0 = Math.max(g * BLOCK_ROWS, phase) - phase;
          const r1 = Math.min((g + 1) * BLOCK_ROWS - phase, T);
          for (let i = 0; i < kd; i++) {
            let lo = k[r0 * kd + i];
            let hi = lo;
            for (let r = r0 + 1; r < r1; r++) {
              const x = k[r * kd + i];
              if (x < lo) lo = x;
              if (x > hi) hi = x;
            }
            sums[g * 2 * kd + i] = lo;
            sums[g * 2 * kd + kd + i] = hi;
          }
        }
        plain.append(k, v);
        given.append(k, v, sums);
        sameStore(given, plain, `after ${T} rows`);
        assert.deepEqual(given.bytes(), plain.bytes());
      }
      assert.ok(plain.bytes().disk > 0, 'the budget made blocks spill');
      plain.truncate(700);
      given.truncate(700);
      sameStore(given, plain, 'after a truncation');
      plain.close();
      given.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
