// Parity of every WGSL kernel with the float32 CPU reference (src/engine/cpu/ops.ts), on random inputs.
// Metric: max |gpu - cpu| / max |cpu| (relErr). Weights in f16/bf16 are rounded first, and the reference uses the
// rounded values, so every format is held to the same tolerance.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gpu, type GpuWeight } from '../../src/engine/gpu/device';
import { CommandList, gemmKernel, type Act } from '../../src/engine/gpu/ops';
import * as cpu from '../../src/engine/cpu/ops';
import * as griffin from '../../src/engine/cpu/griffin';
import { f16ToF32, f32ToF16, type DType } from '../../src/engine/safetensors';
import { withEnv } from './helpers';
import { rng } from '../../src/engine/sampling';

const TOL = 1e-4;
let gpu: Gpu;

before(async () => {
  gpu = await Gpu.create();
});
after(() => gpu?.destroy());

// ---------------------------------------------------------------------------------------------------------
// Helpers

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
}
function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * rand() - 1) * scale;
  return a;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const toF16 = f32ToF16;
const fromF16 = f16ToF32;
function toBF16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBF16(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** Uploads values in a format; returns the weight and the values it really holds (after rounding). */
function weight(values: Float32Array, shape: number[], dtype: DType, maxPartBytes?: number): { w: GpuWeight; ref: Float32Array } {
  if (dtype === 'F32') return { w: gpu.uploadWeight('w', new Uint8Array(values.buffer.slice(0)), dtype, shape, { maxPartBytes }), ref: values };
  const enc = dtype === 'F16' ? toF16 : toBF16;
  const dec = dtype === 'F16' ? fromF16 : fromBF16;
  const h = new Uint16Array(values.length);
  const ref = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    h[i] = enc(values[i]);
    ref[i] = dec(h[i]);
  }
  return { w: gpu.uploadWeight('w', new Uint8Array(h.buffer), dtype, shape, { maxPartBytes }), ref };
}

function buf(data: Float32Array | Uint32Array | number, label = 'act'): GPUBuffer {
  const bytes = typeof data === 'number' ? 4 * data : data.byteLength;
  const b = gpu.buffer(bytes, label);
  if (typeof data !== 'number') gpu.write(b, data);
  return b;
}

async function readF32(b: GPUBuffer, n: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await gpu.read(b, 4 * n, 4 * offset));
}

function stepBuffer(pos0: number, nTokens: number, seedValue = 0): GPUBuffer {
  const b = gpu.buffer(16, 'step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  gpu.write(b, new Uint32Array([pos0, nTokens, seedValue, 0]));
  return b;
}

/** max |got - want| / max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, 'length');
  let ref = 0;
  let diff = 0;
  for (let i = 0; i < want.length; i++) {
    ref = Math.max(ref, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / (ref || 1);
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = TOL): void {
  const e = relErr(got, want);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

/** Rows [T, cols] laid out at `offset` with `stride`, the rest filled with noise. */
function strided(rows: Float32Array, T: number, cols: number, offset: number, stride: number): Float32Array {
  const a = randn(offset + (T - 1) * stride + cols + 3, 9);
  for (let t = 0; t < T; t++) a.set(rows.subarray(t * cols, (t + 1) * cols), offset + t * stride);
  return a;
}
function unstride(a: Float32Array, T: number, cols: number, offset: number, stride: number): Float32Array {
  const out = new Float32Array(T * cols);
  for (let t = 0; t < T; t++) out.set(a.subarray(offset + t * stride, offset + t * stride + cols), t * cols);
  return out;
}

const DTYPES: DType[] = ['F32', 'F16', 'BF16'];

// ---------------------------------------------------------------------------------------------------------
// Tests

test('device: weight upload keeps raw bytes, splits by rows, pads odd 16-bit tensors', async () => {
  const v = randn(7 * 5);
  const { w } = weight(v, [7, 5], 'F16', 4 * 5 * 2); // 4 rows per part
  assert.deepEqual(
    w.parts.map((p) => [p.rowStart, p.rows]),
    [
      [0, 4],
      [4, 3],
    ],
  );
  const raw = new Uint16Array(await gpu.read(w.parts[1].buffer, 3 * 5 * 2));
  for (let i = 0; i < 15; i++) assert.equal(raw[i], toF16(v[20 + i]));
  const before = gpu.bytesAllocated();
  const b = gpu.buffer(1000, 'gauge');
  assert.equal(gpu.bytesAllocated(), before + 1000);
  b.destroy();
  b.destroy();
  assert.equal(gpu.bytesAllocated(), before);
});

test('embedding (all formats, table split in parts, strided out)', async () => {
  const V = 50;
  const D = 24;
  const ids = [3, 0, 49, 17, 17, 25, 12];
  const T = ids.length;
  for (const dt of DTYPES) {
    const { w, ref } = weight(randn(V * D), [V, D], dt, 11 * D * 4); // parts of <= 11 rows
    assert.ok(w.parts.length >= 3);
    const out = buf(5 + (T - 1) * 30 + D);
    const list = new CommandList(gpu);
    list.embedding(buf(new Uint32Array(ids)), w, { buffer: out, offset: 5, stride: 30 }, T, D, 1.5);
    await list.run();
    const got = unstride(await readF32(out, 5 + (T - 1) * 30 + D), T, D, 5, 30);
    close(got, cpu.embed(ref, ids, D, 1.5), `embedding ${dt}`, 1e-6);
    list.destroy();
  }
});

test('rmsNorm (odd D, f16 weight, strided input)', async () => {
  const T = 5;
  const D = 73;
  const x = randn(T * D, 3);
  const { w, ref } = weight(randn(D), [D], 'F16');
  const out = buf(T * D);
  const list = new CommandList(gpu);
  list.rmsNorm({ buffer: buf(strided(x, T, D, 3, 80)), offset: 3, stride: 80 }, w, { buffer: out }, T, D, 1e-5);
  await list.run();
  close(await readF32(out, T * D), cpu.rmsNorm(x, ref, D, 1e-5), 'rmsNorm', 1e-5);
});

test('gatedRmsNorm (groups, z a column slice)', async () => {
  const T = 3;
  const D = 64;
  const G = 16;
  const y = randn(T * D, 2);
  const z = randn(T * D, 3);
  const { w, ref } = weight(randn(D), [D], 'BF16');
  const out = buf(T * D);
  const list = new CommandList(gpu);
  list.gatedRmsNorm({ buffer: buf(y) }, { buffer: buf(strided(z, T, D, 10, 100)), offset: 10, stride: 100 }, w, { buffer: out }, T, D, G, 1e-6);
  await list.run();
  close(await readF32(out, T * D), cpu.gatedRmsNorm(y, z, ref, D, G, 1e-6), 'gatedRmsNorm', 1e-5);
});

test('linear: GEMV and GEMM, every format, bias, alpha, accumulate, odd sizes', async () => {
  const cases = [
    { T: 1, K: 72, N: 130 },
    { T: 3, K: 72, N: 130 },
    { T: 4, K: 37, N: 19 }, // scalar GEMV (K not a multiple of 8)
    { T: 37, K: 72, N: 130 },
    { T: 70, K: 37, N: 65 }, // generic GEMM
    { T: 150, K: 48, N: 140 }, // several tiles
    { T: 37, K: 64, N: 130 }, // K % 32 == 0: kernels/gemmCpu.wgsl on a CPU adapter (16-bit weights)
    { T: 100, K: 96, N: 21 },
  ];
  // Each GEMM as the adapter picks it, and forced to gemmCpu and to gemm.wgsl main where the shape allows; the
  // GEMVs (T <= 4) in the CPU shape, and in the GPU shape with main.
  for (const kernel of ['', 'cpu', 'main'])
  for (const { T, K, N } of cases) {
    for (const dt of DTYPES) {
      const x = randn(T * K);
      const { w, ref } = weight(randn(N * K, 0.5), [N, K], dt);
      const { w: b, ref: bRef } = weight(randn(N), [N], dt);
      const init = randn(T * N);
      const out = buf(init);
      const list = new CommandList(gpu);
      const out2 = buf(T * N);
      const list2 = new CommandList(gpu);
      await withEnv({ SIDEWINDER_GEMM_KERNEL: kernel, SIDEWINDER_GEMV_CPU: kernel === 'main' ? '0' : '' }, async () => {
        list.linear({ buffer: buf(x) }, w, { buffer: out }, T, K, N, { bias: b, alpha: 0.7, accumulate: true });
        await list.run();
        // Plain form, x a column slice of a wider buffer.
        list2.linear({ buffer: buf(strided(x, T, K, 8, K + 12)), offset: 8, stride: K + 12 }, w, { buffer: out2 }, T, K, N);
        await list2.run();
      });
      const y = cpu.linear(x, ref, K, N, bRef);
      const want = init.map((v, i) => v + 0.7 * y[i]);
      close(await readF32(out, T * N), want, `linear T=${T} K=${K} N=${N} ${dt} ${kernel || 'default'} kernel`);
      close(await readF32(out2, T * N), cpu.linear(x, ref, K, N), `linear (slice) T=${T} K=${K} N=${N} ${dt} ${kernel || 'default'} kernel`);
      list.destroy();
      list2.destroy();
    }
  }
});

test('gemmKernel: gemmCpu on a CPU adapter where K % 32 == 0 and the weights are 16-bit or quantized', () => {
  assert.equal(gemmKernel('q4', 256, 0, 256, true), 'cpu');
  assert.equal(gemmKernel('bf16', 640, 8, 1280, true), 'cpu');
  assert.equal(gemmKernel('f32', 256, 0, 256, true), 'main');
  assert.equal(gemmKernel('q4', 256, 0, 256, false), 'main');
  assert.equal(gemmKernel('q8', 72, 0, 72, true), 'main');
  assert.equal(gemmKernel('q8', 256, 2, 256, true), 'generic');
  assert.equal(gemmKernel('f16', 37, 0, 37, true), 'generic');
});

test('linear with the weight split in parts (GEMV and GEMM)', async () => {
  const K = 64;
  const N = 100;
  for (const dt of ['F16', 'F32'] as DType[]) {
    const { w, ref } = weight(randn(N * K), [N, K], dt, 30 * K * (dt === 'F32' ? 4 : 2)); // <= 30 rows per part
    assert.ok(w.parts.length >= 4, `${w.parts.length} parts`);
    for (const T of [1, 20]) {
      const x = randn(T * K);
      const out = buf(T * N);
      const list = new CommandList(gpu);
      list.linear({ buffer: buf(x) }, w, { buffer: out }, T, K, N, { alpha: 0.5 });
      await list.run();
      close(await readF32(out, T * N), cpu.linear(x, ref, K, N).map((v) => 0.5 * v), `parts T=${T} ${dt}`);
    }
  }
});

test('linear with the input RMS-normalised, SwiGLU-gated or gated-RMS-normalised on the fly', async () => {
  // Both GEMV shapes: a lane per row (CPU adapters) and TPR lanes per row (GPUs; SIDEWINDER_GEMV_CPU=0).
  for (const shape of ['', '0']) {
    await withEnv({ SIDEWINDER_GEMV_CPU: shape }, async () => {
      const N = 70;
      const cases: { T: number; K: number; wt: DType; nt: DType }[] = [
        { T: 1, K: 64, wt: 'BF16', nt: 'F32' },
        { T: 3, K: 64, wt: 'F16', nt: 'BF16' },
        { T: 2, K: 64, wt: 'F32', nt: 'F16' },
        { T: 1, K: 37, wt: 'BF16', nt: 'BF16' }, // scalar GEMV
        { T: 9, K: 64, wt: 'BF16', nt: 'F32' }, // GEMM after a separate transform
      ];
      for (const { T, K, wt, nt } of cases) {
        const { w, ref } = weight(randn(N * K, 0.5), [N, K], wt);
        const { w: b, ref: bRef } = weight(randn(N), [N], 'F32');
        // RMSNorm input.
        const x = randn(T * K, 3);
        const { w: nw, ref: nwRef } = weight(randn(K), [K], nt);
        const out = buf(T * N);
        const list = new CommandList(gpu);
        list.linear({ buffer: buf(x) }, w, { buffer: out }, T, K, N, { bias: b, inputNorm: { w: nw, eps: 1e-5 } });
        await list.run();
        close(await readF32(out, T * N), cpu.linear(cpu.rmsNorm(x, nwRef, K, 1e-5), ref, K, N, bRef), `norm + linear T=${T} K=${K} ${wt}/${nt}`);
        // SwiGLU input: x2 = [T, 2K].
        const x2 = randn(T * 2 * K, 2);
        const out2 = buf(T * N);
        const list2 = new CommandList(gpu);
        list2.linear({ buffer: buf(x2) }, w, { buffer: out2 }, T, K, N, { inputSwiglu: true, alpha: 0.5 });
        await list2.run();
        close(await readF32(out2, T * N), cpu.linear(cpu.swiglu(x2, K), ref, K, N).map((v) => 0.5 * v), `swiglu + linear T=${T} K=${K} ${wt}`);
        // Gated norm input (groups of 16, or 37: one group), z a column slice.
        const G = K % 16 === 0 ? 16 : K;
        const z = randn(T * K, 2);
        const init = randn(T * N);
        const out3 = buf(init);
        const list3 = new CommandList(gpu);
        list3.linear({ buffer: buf(x) }, w, { buffer: out3 }, T, K, N, { inputGatedNorm: { z: { buffer: buf(strided(z, T, K, 4, K + 8)), offset: 4, stride: K + 8 }, w: nw, groupSize: G, eps: 1e-6 }, alpha: 0.3, accumulate: true });
        await list3.run();
        const y3 = cpu.linear(cpu.gatedRmsNorm(x, z, nwRef, K, G, 1e-6), ref, K, N);
        close(await readF32(out3, T * N), init.map((v, i) => v + 0.3 * y3[i]), `gated norm + linear T=${T} K=${K} ${wt}/${nt}`);
      }
    });
  }
});

test('causalConv1d continues from a state, T = 1, 5 and 19', async () => {
  const C = 20;
  const K = 4;
  for (const T of [1, 5, 19]) {
    const { w, ref } = weight(randn(C * K), [C, 1, K], 'F16');
    const { w: b, ref: bRef } = weight(randn(C), [C], 'F32');
    const state0 = randn(C * (K - 1));
    const x = randn(T * C, 2);
    const state = buf(state0);
    const out = buf(T * C);
    const list = new CommandList(gpu);
    list.causalConv1d({ buffer: buf(strided(x, T, C, 4, 50)), offset: 4, stride: 50 }, w, b, state, { buffer: out }, T, C, K);
    await list.run();
    const cpuState = state0.slice();
    const want = cpu.causalConv1d(x, ref, bRef, cpuState, C, K);
    close(await readF32(out, T * C), want, `conv T=${T}`, 1e-5);
    close(await readF32(state, C * (K - 1)), cpuState, `conv state T=${T}`, 1e-6);
  }
});

// Mamba-2 scan inputs at small sizes: nh=4, hd=8, N=16, ng=2.
function ssmCase(T: number, hd = 8, N = 16) {
  const nh = 4;
  const ng = 2;
  const p = {
    nh,
    hd,
    N,
    ng,
    aLog: randn(nh).map((v) => Math.log(1 + 8 * Math.abs(v))),
    dtBias: randn(nh).map((v) => v - 1),
    D: randn(nh),
    dtMin: 0.001,
    dtMax: Infinity,
  };
  return { p, x: randn(T * nh * hd), dt: randn(T * nh, 2), B: randn(T * ng * N), C: randn(T * ng * N), state: randn(nh * hd * N, 0.5) };
}

async function gpuScan(c: ReturnType<typeof ssmCase>, T: number, chunk: number, method?: 'step' | 'chunked'): Promise<{ y: Float32Array; state: Float32Array }> {
  const { p } = c;
  // x, B, C as column slices of one [T, convDim] buffer, as in the model.
  const I = p.nh * p.hd;
  const G = p.ng * p.N;
  const conv = I + 2 * G;
  const xbc = new Float32Array(T * conv);
  for (let t = 0; t < T; t++) {
    xbc.set(c.x.subarray(t * I, (t + 1) * I), t * conv);
    xbc.set(c.B.subarray(t * G, (t + 1) * G), t * conv + I);
    xbc.set(c.C.subarray(t * G, (t + 1) * G), t * conv + I + G);
  }
  const xb = buf(xbc);
  const state = buf(c.state);
  const out = buf(T * I);
  const list = new CommandList(gpu);
  list.ssmScan(
    { buffer: xb, stride: conv },
    { buffer: buf(c.dt) },
    { buffer: xb, offset: I, stride: conv },
    { buffer: xb, offset: I + G, stride: conv },
    weight(p.aLog, [p.nh], 'F32').w,
    weight(p.dtBias, [p.nh], 'F32').w,
    weight(p.D, [p.nh], 'F32').w,
    state,
    { buffer: out },
    { T, nh: p.nh, hd: p.hd, N: p.N, ng: p.ng, chunk, dtMin: p.dtMin, dtMax: p.dtMax, method },
  );
  await list.run();
  list.destroy();
  return { y: await readF32(out, T * I), state: await readF32(state, p.nh * p.hd * p.N) };
}

test('ssmScan: chunked SSD (chunks of 16 and 64, partial last chunk) and token by token match the CPU scan', async () => {
  for (const { T, hd, chunk, N } of [
    { T: 40, hd: 8, chunk: 16 },
    { T: 100, hd: 40, chunk: 256 }, // runs with 64: two p-blocks of 32
    { T: 130, hd: 12, chunk: 64 }, // rows of a head not a multiple of 8 (chunkStateCpu's blocks)
    { T: 70, hd: 72, chunk: 32 }, // two blocks of 64 rows in outputMainCpu
    { T: 40, hd: 16, chunk: 16, N: 128 }, // a wide state: several column tiles, a step row wider than one SIMD batch
  ] as { T: number; hd: number; chunk: number; N?: number }[]) {
    const c = ssmCase(T, hd, N);
    const cpuState = c.state.slice();
    const want = cpu.ssmScan(c.x, c.dt, c.B, c.C, cpuState, c.p);
    for (const method of ['chunked', 'step'] as const) {
      // The CPU adapter's shapes (chunkStateCpu, outputMainCpu; a step's row in one SIMD batch) and the GPU's
      // (SIDEWINDER_SSD_CPU=0).
      for (const ssdCpu of ['', '0']) {
        const got = await withEnv({ SIDEWINDER_SSD_CPU: ssdCpu }, () => gpuScan(c, T, chunk, method));
        close(got.y, want, `ssm y (T=${T} chunk ${chunk}, ${method}${ssdCpu ? ', GPU tiles' : ''})`);
        close(got.state, cpuState, `ssm state (T=${T} chunk ${chunk}, ${method}${ssdCpu ? ', GPU tiles' : ''})`);
      }
    }
  }
});

test('ssmScan: prefill then decode steps (one recorded list resubmitted) equals one shot', async () => {
  const T = 26;
  const P = 23;
  const c = ssmCase(T);
  const { p } = c;
  const I = p.nh * p.hd;
  const G = p.ng * p.N;
  const cpuState = c.state.slice();
  const want = cpu.ssmScan(c.x, c.dt, c.B, c.C, cpuState, p);
  const aLog = weight(p.aLog, [p.nh], 'F32').w;
  const dtBias = weight(p.dtBias, [p.nh], 'F32').w;
  const D = weight(p.D, [p.nh], 'F32').w;
  const state = buf(c.state);
  const record = (n: number, x: GPUBuffer, dt: GPUBuffer, B: GPUBuffer, C: GPUBuffer, out: GPUBuffer) => {
    const list = new CommandList(gpu);
    list.ssmScan({ buffer: x }, { buffer: dt }, { buffer: B }, { buffer: C }, aLog, dtBias, D, state, { buffer: out }, { T: n, nh: p.nh, hd: p.hd, N: p.N, ng: p.ng, chunk: 8, dtMin: p.dtMin, dtMax: p.dtMax });
    return list;
  };
  const out = buf(P * I);
  const prefill = record(P, buf(c.x.slice(0, P * I)), buf(c.dt.slice(0, P * p.nh)), buf(c.B.slice(0, P * G)), buf(c.C.slice(0, P * G)), out);
  await prefill.run();
  const got = new Float32Array(T * I);
  got.set(await readF32(out, P * I));
  const x1 = buf(I);
  const dt1 = buf(p.nh);
  const B1 = buf(G);
  const C1 = buf(G);
  const out1 = buf(I);
  const step = record(1, x1, dt1, B1, C1, out1);
  for (let t = P; t < T; t++) {
    gpu.write(x1, c.x.subarray(t * I, (t + 1) * I));
    gpu.write(dt1, c.dt.subarray(t * p.nh, (t + 1) * p.nh));
    gpu.write(B1, c.B.subarray(t * G, (t + 1) * G));
    gpu.write(C1, c.C.subarray(t * G, (t + 1) * G));
    await step.run();
    got.set(await readF32(out1, I), t * I);
  }
  close(got, want, 'prefill + steps y');
  close(await readF32(state, p.nh * p.hd * p.N), cpuState, 'prefill + steps state');
});

test('rope in place, positions from the step buffer', async () => {
  const T = 5;
  const heads = 3;
  const dim = 16;
  const pos0 = 7;
  const x = randn(T * heads * dim);
  const xb = buf(strided(x, T, heads * dim, 2, heads * dim + 6));
  const list = new CommandList(gpu);
  list.rope({ buffer: xb, offset: 2, stride: heads * dim + 6 }, T, heads, dim, 10000, stepBuffer(pos0, T));
  await list.run();
  const want = x.slice();
  cpu.rope(want, heads, dim, pos0, 10000);
  const got = unstride(await readF32(xb, 2 + (T - 1) * (heads * dim + 6) + heads * dim), T, heads * dim, 2, heads * dim + 6);
  close(got, want, 'rope', 1e-5);
  // Far positions: the range reduction keeps cos/sin accurate (angles in f32, as in transformers).
  const far = randn(heads * dim);
  const fb = buf(far);
  const list2 = new CommandList(gpu);
  list2.rope({ buffer: fb }, 1, heads, dim, 10000, stepBuffer(30000, 1));
  await list2.run();
  const wantFar = far.slice();
  cpu.rope(wantFar, heads, dim, 30000, 10000);
  close(await readF32(fb, heads * dim), wantFar, 'rope at 30000', 1e-2);
});

test('kvWrite appends rows at pos0', async () => {
  const rowLen = 12;
  const cache = buf(new Float32Array(10 * rowLen).fill(-1));
  const src = randn(3 * rowLen);
  const list = new CommandList(gpu);
  list.kvWrite({ buffer: buf(src) }, cache, 3, rowLen, stepBuffer(4, 3));
  await list.run();
  const got = await readF32(cache, 10 * rowLen);
  const want = new Float32Array(10 * rowLen).fill(-1);
  want.set(src, 4 * rowLen);
  assert.deepEqual(Array.from(got), Array.from(want));
});

test('linear appending its rows to a KV cache at pos0 (GEMV, and GEMM + kvWrite)', async () => {
  const K = 32;
  const N = 24;
  const cap = 12;
  const { w, ref } = weight(randn(N * K), [N, K], 'BF16');
  for (const { T, pos0 } of [
    { T: 1, pos0: 5 },
    { T: 3, pos0: 10 }, // the last row falls past the capacity: dropped
    { T: 6, pos0: 2 },
  ]) {
    const x = randn(T * K);
    const cache = buf(new Float32Array(cap * N).fill(-1));
    const list = new CommandList(gpu);
    list.linear({ buffer: buf(x) }, w, { buffer: cache }, T, K, N, { outAtStep: stepBuffer(pos0, T) });
    await list.run();
    const want = new Float32Array(cap * N).fill(-1);
    const y = cpu.linear(x, ref, K, N);
    for (let t = 0; t < T && pos0 + t < cap; t++) want.set(y.subarray(t * N, (t + 1) * N), (pos0 + t) * N);
    close(await readF32(cache, cap * N), want, `outAtStep T=${T} pos0=${pos0}`);
  }
});

/** Runs `fn` with these environment variables set (the kernel choices), removing them afterwards. */
async function attentionCase(T: number, pos0: number, nH: number, nKv: number, d: number, capacity: number): Promise<void> {
  const S = pos0 + T;
  const k = randn(S * nKv * d);
  const v = randn(S * nKv * d);
  const q = randn(T * nH * d);
  const scaling = 1 / Math.sqrt(d);
  const kc = buf(capacity * nKv * d);
  const vc = buf(capacity * nKv * d);
  gpu.write(kc, k);
  gpu.write(vc, v);
  const out = buf(T * nH * d);
  const list = new CommandList(gpu);
  list.attention({ buffer: buf(q) }, kc, vc, { buffer: out }, T, nH, nKv, d, scaling, stepBuffer(pos0, T));
  await list.run();
  close(await readF32(out, T * nH * d), cpu.attention(q, k, v, nH, nKv, d, scaling), `attention T=${T} pos0=${pos0} nH=${nH} nKv=${nKv} d=${d}`);
  list.destroy();
}

test('attention: GQA prefill over cached keys, decode, long decode over many splits', async () => {
  // Every prefill kernel: 'cpu' (CPU adapters, head dims up to 128), 'rows' (CPU adapters, wider heads) and
  // 'tiled' (GPUs).
  for (const kernel of ['cpu', 'rows', 'tiled']) {
    await withEnv({ SIDEWINDER_ATTN_KERNEL: kernel }, async () => {
      await attentionCase(9, 13, 4, 2, 32, 40); // prefill, T=9 over 13 cached
      await attentionCase(40, 30, 4, 2, 64, 80); // several query and key blocks
      await attentionCase(37, 5, 2, 1, 128, 64); // the largest head dim, a partial key tile
      await attentionCase(21, 40, 4, 2, 96, 64); // a head dim that is neither 64 nor 128
      await attentionCase(1100, 70, 4, 2, 16, 1200); // a long chunk, the last workgroup partial
    });
  }
  // Every split of a query's keys over 1, 2 or 4 invocations gives the same result.
  for (const split of ['1', '2', '4']) {
    await withEnv({ SIDEWINDER_ATTN_SPLIT: split, SIDEWINDER_ATTN_KERNEL: 'rows' }, async () => {
      await attentionCase(70, 45, 4, 2, 32, 120);
      await attentionCase(19, 3, 2, 2, 128, 24);
    });
  }
  await attentionCase(1, 21, 4, 2, 32, 40); // decode
  await attentionCase(1, 1000, 4, 2, 32, 1200); // decode, several 256-key tiles and splits
  await attentionCase(1, 300, 6, 2, 16, 600); // decode, 3 heads per KV head
  await attentionCase(1, 5000, 32, 4, 16, 5001); // decode, 8 heads per workgroup, splits of two 64-key tiles
});

// RecurrentGemma's local attention against src/engine/cpu/griffin.ts localAttention: decode (T = 1: the new row into
// the ring, then kernels/attnDecode.wgsl split over the ring's min(pos0 + 1, window) valid rows) and prefill chunks
// (kernels/localAttnPrefill.wgsl, then the ring written). The ring starts random (rows not yet valid included: they
// must be ignored), positions before, at and after the wrap.
async function localCase(window: number, pos0: number, T: number, nH: number, nKv: number, d: number): Promise<void> {
  const kd = nKv * d;
  const q = randn(T * nH * d);
  const k = randn(T * kd);
  const v = randn(T * kd);
  const kRing = randn(window * kd);
  const vRing = randn(window * kd);
  const a = { numHeads: nH, numKvHeads: nKv, headDim: d, scaling: 1 / Math.sqrt(d), bias: false, ropeTheta: null, rotaryDim: d };
  const kr = buf(kRing);
  const vr = buf(vRing);
  const out = buf(T * nH * d);
  const list = new CommandList(gpu);
  list.localAttention({ buffer: buf(q) }, { buffer: buf(k) }, { buffer: buf(v) }, kr, vr, { buffer: out }, T, nH, nKv, d, window, a.scaling, stepBuffer(pos0, T));
  await list.run();
  const want = griffin.localAttention(q, k, v, kRing, vRing, a, window, pos0); // updates kRing, vRing
  const what = `localAttention window=${window} pos0=${pos0} T=${T} nH=${nH} nKv=${nKv} d=${d}`;
  close(await readF32(out, T * nH * d), want, what);
  assert.deepEqual(await readF32(kr, window * kd), kRing, `${what}: k ring`);
  assert.deepEqual(await readF32(vr, window * kd), vRing, `${what}: v ring`);
  list.destroy();
}

test('localAttention: decode over the window ring (split, before and after the wrap), GQA and MQA', async () => {
  for (const window of [64, 300]) {
    for (const pos0 of [0, 5, window - 2, window - 1, window, window + 7, 3 * window + 11]) {
      await localCase(window, pos0, 1, 4, 2, 32); // GQA
      await localCase(window, pos0, 1, 4, 1, 64); // MQA
    }
  }
  await localCase(300, 1000, 1, 10, 1, 256); // recurrentgemma-2b's heads (10 query, 1 KV, 256 dims)
  await localCase(2048, 2100, 1, 10, 1, 256); // and its window
});

test('localAttention: prefill chunks shorter and longer than the window, before and after the wrap', async () => {
  for (const [window, pos0, T] of [[64, 0, 9], [64, 40, 30], [64, 100, 100], [300, 0, 17], [300, 290, 33], [300, 901, 350], [1500, 1400, 200]]) {
    await localCase(window, pos0, T, 4, 2, 32); // GQA
    await localCase(window, pos0, T, 4, 1, 96); // MQA, a head dim that does not divide the workgroup
  }
  await localCase(300, 350, 12, 10, 1, 256); // recurrentgemma-2b's heads
});

test('attention: head dims above 128 (Zamba2-2.7B 160, Zamba2-7B 224, Zamba-7B 464) in prefill and decode', async () => {
  // Prefill: 'rows' (kernels/attentionRowsWide.wgsl) and 'tiled' (kernels/attentionWide.wgsl, head dim in slices).
  for (const kernel of ['rows', 'tiled']) {
    await withEnv({ SIDEWINDER_ATTN_KERNEL: kernel }, async () => {
      await attentionCase(9, 13, 4, 2, 160, 40); // GQA, T=9 over 13 cached
      await attentionCase(21, 7, 2, 1, 224, 32); // several query blocks, a partial slice
      await attentionCase(5, 3, 2, 2, 464, 8); // no GQA, the last slice partial
      await attentionCase(18, 0, 2, 1, 512, 24); // the largest head dim
    });
  }
  for (const split of ['1', '2', '4']) {
    await withEnv({ SIDEWINDER_ATTN_SPLIT: split, SIDEWINDER_ATTN_KERNEL: 'rows' }, async () => {
      await attentionCase(19, 3, 4, 2, 160, 24);
      await attentionCase(7, 2, 2, 1, 464, 16);
    });
  }
  // Decode: workgroups of 256 up to head dim 256, of 512 above.
  await attentionCase(1, 21, 4, 2, 160, 40);
  await attentionCase(1, 600, 8, 2, 224, 700); // several splits, 4 heads per KV head
  await attentionCase(1, 300, 4, 2, 464, 400); // workgroups of 512
  await attentionCase(1, 37, 8, 1, 512, 64); // 8 heads per KV head, fewer per workgroup to fit workgroup memory
  await attentionCase(1, 2000, 4, 4, 464, 2001); // no GQA, many splits
});

test('swiglu, axpy, scale, copy', async () => {
  const T = 4;
  const m = 33;
  const gu = randn(T * 2 * m, 3);
  const out = buf(T * m);
  const list = new CommandList(gpu);
  list.swiglu({ buffer: buf(gu) }, { buffer: out }, T, m);
  const x = randn(T * m);
  const y0 = randn(T * m);
  const y = buf(y0);
  list.axpy({ buffer: buf(x) }, { buffer: y }, T, m, 0.25);
  list.scale({ buffer: y }, T, m, 2);
  const c = buf(T * m);
  list.copy({ buffer: y }, { buffer: c }, T, m);
  await list.run();
  close(await readF32(out, T * m), cpu.swiglu(gu, m), 'swiglu', 1e-6);
  close(await readF32(c, T * m), y0.map((v, i) => 2 * (v + 0.25 * x[i])), 'axpy + scale + copy', 1e-6);
});

test('geglu (GELU with erf, Zamba2\'s shared MLP) matches the CPU reference and torch\'s exact GELU', async () => {
  const T = 3;
  const m = 37;
  const gu = randn(T * 2 * m, 4);
  const out = buf(T * m);
  const list = new CommandList(gpu);
  list.geglu({ buffer: buf(gu) }, { buffer: out }, T, m);
  await list.run();
  close(await readF32(out, T * m), cpu.geglu(gu, m), 'geglu', 1e-6);
  // torch.nn.functional.gelu (exact) at a few points
  for (const [x, want] of [[-3, -0.0040496], [-1, -0.15865525], [0.5, 0.34573123], [2, 1.95449974]]) assert.ok(Math.abs(cpu.gelu(x) - want) < 1e-6, `gelu(${x}) = ${cpu.gelu(x)}`);
});

test("router top-k: Jamba's softmax over all experts, top-k kept unnormalised ('topKOfSoftmax')", async () => {
  const T = 5;
  const E = 6;
  const k = 2;
  const logits = randn(T * E, 2);
  logits[1 * E + 2] = logits[1 * E + 4] = 7; // a tie: the lower index wins
  const experts = buf(T * k);
  const weights = buf(T * k);
  const list = new CommandList(gpu);
  list.routerTopK({ buffer: buf(logits) }, experts, weights, T, E, k, 'topKOfSoftmax');
  await list.run();
  const route = cpu.topKRouting(logits, E, k, 'topKOfSoftmax');
  // The reference by hand: softmax over the row, the k largest probabilities as they are.
  for (let t = 0; t < T; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    const p = row.map((v) => Math.exp(v - m) / z);
    const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b).slice(0, k);
    assert.deepEqual(Array.from(route.experts.subarray(t * k, (t + 1) * k)), order);
    order.forEach((e, j) => assert.ok(Math.abs(route.weights[t * k + j] - p[e]) < 1e-6, `token ${t} slot ${j}`));
    const sum = route.weights[t * k] + route.weights[t * k + 1];
    assert.ok(sum < 1 - 1e-3, `token ${t}: the kept weights sum to ${sum}, not renormalised to 1`);
  }
  assert.deepEqual(Array.from(route.experts.subarray(k, 2 * k)), [2, 4]);
  // The same experts as Granite's mode, other weights.
  assert.deepEqual(Array.from(cpu.topKRouting(logits, E, k).experts), Array.from(route.experts));
  assert.deepEqual(Array.from(new Uint32Array(await gpu.read(experts, 4 * T * k))), Array.from(route.experts));
  close(await readF32(weights, T * k), route.weights, 'router weights (topKOfSoftmax)', 1e-6);
});

test('MoE: router top-k, expert products, combine', async () => {
  const T = 3;
  const E = 4;
  const k = 2;
  const K = 24;
  const N = 16;
  const logits = randn(T * E, 2);
  logits[2 * E + 1] = logits[2 * E + 3] = 5; // a tie: the lower index wins
  const experts = buf(T * k);
  const weights = buf(T * k);
  const list = new CommandList(gpu);
  list.routerTopK({ buffer: buf(logits) }, experts, weights, T, E, k);
  const x = randn(T * K);
  const { w: wUp, ref: up } = weight(randn(E * N * K), [E, N, K], 'BF16', 2 * N * K * 2); // two experts per part
  const { w: wDown, ref: down } = weight(randn(E * K * N), [E, K, N], 'F16');
  const h = buf(T * k * N);
  const y = buf(T * k * K);
  const out0 = randn(T * K);
  const out = buf(out0);
  list.moeLinear({ buffer: buf(x) }, wUp, experts, { buffer: h }, T, k, K, N);
  list.moeLinear({ buffer: h }, wDown, experts, { buffer: y }, T, k, N, K, { perSlotInput: true });
  list.moeCombine({ buffer: y }, weights, { buffer: out }, T, k, K, 0.5, true);
  await list.run();
  const route = cpu.topKRouting(logits, E, k);
  assert.deepEqual(Array.from(new Uint32Array(await gpu.read(experts, 4 * T * k))), Array.from(route.experts));
  assert.equal(route.experts[2 * k], 1);
  close(await readF32(weights, T * k), route.weights, 'router weights', 1e-6);
  const want = out0.slice();
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const e = route.experts[t * k + j];
      const hj = cpu.linear(x.subarray(t * K, (t + 1) * K), up.subarray(e * N * K, (e + 1) * N * K), K, N);
      const yj = cpu.linear(hj, down.subarray(e * K * N, (e + 1) * K * N), N, K);
      for (let i = 0; i < K; i++) want[t * K + i] += 0.5 * route.weights[t * k + j] * yj[i];
    }
  }
  close(await readF32(out, T * K), want, 'moe output');
});

test('MoE prefill: slots grouped by expert (moeGroup) and the tiled expert GEMMs (moeGemm) equal the per-slot products', async () => {
  // 70 tokens, 5 experts, top-2: uneven groups (one expert never chosen), tiles padded, experts split in parts.
  const T = 70;
  const E = 5;
  const k = 2;
  const K = 24;
  const N = 40;
  const random = rng(11);
  // First choices among experts 0-2 (~47 slots each: a full tile and a partial one), second choices expert 3 (70
  // slots) or, for one token in ten, 1; expert 4 is never chosen.
  const ids = Array.from({ length: T * k }, (_, s) => (s % k === 0 ? Math.floor(random() * 3) : random() < 0.1 ? 1 : 3));
  const experts = buf(new Uint32Array(ids));
  for (const dt of ['BF16', 'F32'] as const) {
    const x = randn(T * K);
    const { w: wUp, ref: up } = weight(randn(E * N * K), [E, N, K], dt, 2 * N * K * (dt === 'F32' ? 4 : 2)); // two experts a part
    const { w: wDown, ref: down } = weight(randn(E * K * N), [E, K, N], dt);
    assert.ok(wUp.parts.length === 3);
    const h = buf(T * k * N);
    const y = buf(T * k * K);
    const list = new CommandList(gpu);
    const g = list.moeGroup(experts, T * k, E);
    list.moeGemm({ buffer: buf(x) }, wUp, g, { buffer: h }, T, k, K, N);
    list.moeGemm({ buffer: h }, wDown, g, { buffer: y }, T, k, N, K, { perSlotInput: true });
    await list.run();
    const wantH = new Float32Array(T * k * N);
    for (let s = 0; s < T * k; s++) {
      const t = Math.floor(s / k);
      wantH.set(cpu.linear(x.subarray(t * K, (t + 1) * K), up.subarray(ids[s] * N * K, (ids[s] + 1) * N * K), K, N), s * N);
    }
    const gotH = await readF32(h, T * k * N);
    close(gotH, wantH, `${dt} moeGemm up (x row per token)`);
    const wantY = new Float32Array(T * k * K);
    for (let s = 0; s < T * k; s++) wantY.set(cpu.linear(gotH.subarray(s * N, (s + 1) * N), down.subarray(ids[s] * K * N, (ids[s] + 1) * K * N), N, K), s * K);
    close(await readF32(y, T * k * K), wantY, `${dt} moeGemm down (x row per slot)`);
    // The grouping itself: every slot once, each expert's slots in tiles of its own.
    const rowMap = new Uint32Array(await gpu.read(g.rowMap, 4 * 64 * g.tiles));
    const tileExpert = new Uint32Array(await gpu.read(g.tileExpert, 4 * g.tiles));
    const seen = Array.from(rowMap).filter((v) => v !== 0xffffffff).sort((a, b) => a - b);
    assert.deepEqual(seen, Array.from({ length: T * k }, (_, s) => s));
    rowMap.forEach((slot, r) => {
      if (slot !== 0xffffffff) assert.equal(ids[slot], tileExpert[Math.floor(r / 64)], `row ${r}: slot ${slot} in a tile of expert ${tileExpert[Math.floor(r / 64)]}`);
    });
    list.destroy();
  }
});

test('argmax (ties to the lower index)', async () => {
  const V = 5000;
  const logits = randn(V);
  logits[1234] = 7;
  logits[4321] = 7;
  const id = buf(1);
  const list = new CommandList(gpu);
  list.argmax({ buffer: buf(logits) }, id, V);
  await list.run();
  assert.equal(new Uint32Array(await gpu.read(id, 4))[0], 1234);
  assert.equal(cpu.argmax(logits), 1234);
});

test('sample: temperature -> 0 and tiny top-p pick the argmax; frequencies follow softmax and the nucleus', async () => {
  const V = 3000;
  const logits = randn(V, 3);
  const best = cpu.argmax(logits);
  logits[best] += 0.05; // a clear winner: at temperature 1e-4 a gap below ~0.002 may legitimately lose
  const lb = buf(logits);
  for (const opts of [
    { temperature: 1e-4, topP: 1 },
    { temperature: 0, topP: 1 },
    { temperature: 1, topP: 1e-6 },
  ]) {
    const id = buf(1);
    const list = new CommandList(gpu);
    list.sample({ buffer: lb }, id, V, opts, stepBuffer(3, 1, 99));
    await list.run();
    assert.equal(new Uint32Array(await gpu.read(id, 4))[0], best, JSON.stringify(opts));
  }
  // A fixed 4-way distribution, in the last row of a [2, 4] logits buffer.
  const probs = [0.1, 0.2, 0.3, 0.4];
  const row = new Float32Array([0, 0, 0, 0, ...probs.map(Math.log)]);
  const n = 2000;
  for (const { topP, expect } of [
    { topP: 1, expect: probs },
    { topP: 0.65, expect: [0, 0, 3 / 7, 4 / 7] }, // nucleus: 0.4 + 0.3 >= 0.65
  ]) {
    const ring = buf(n);
    const step = gpu.buffer(16, 'step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const list = new CommandList(gpu);
    list.sample({ buffer: buf(row), offset: 4 }, buf(1), 4, { temperature: 1, topP, ring: { buffer: ring, capacity: n } }, step);
    for (let i = 0; i < n; i++) {
      gpu.write(step, new Uint32Array([i, 0, 1000 + i, 0]));
      list.submit();
    }
    const ids = new Uint32Array(await gpu.read(ring, 4 * n));
    const freq = [0, 0, 0, 0];
    for (const id of ids) freq[id] += 1 / n;
    expect.forEach((p, i) => assert.ok(Math.abs(freq[i] - p) < 0.035, `top_p ${topP}: token ${i} drawn ${freq[i].toFixed(3)}, p = ${p.toFixed(3)}`));
  }
});

test('errors: bad shapes and aliasing are reported by name', () => {
  const list = new CommandList(gpu);
  const a = buf(16);
  const { w } = weight(randn(16), [4, 4], 'F32');
  assert.throws(() => list.linear({ buffer: a }, w, { buffer: a }, 1, 4, 4), /linear: buffer .* both written and read/);
  assert.throws(() => list.linear({ buffer: a }, w, { buffer: buf(16) }, 1, 4, 5), /linear: w has shape \[4,4\]/);
  assert.throws(() => list.rmsNorm({ buffer: a }, w, { buffer: buf(4) }, 1, 16, 1e-5), /rmsNorm: out \[1, 16\]/);
});

test('pass timer: GPU time of labelled passes from timestamp queries', async (t) => {
  if (!gpu.startTimer()) return t.skip('no timestamp-query on this adapter');
  try {
    const T = 300;
    const q = buf(randn(T * 4 * 32));
    const kc = buf(randn(T * 2 * 32));
    const vc = buf(randn(T * 2 * 32));
    const list = new CommandList(gpu);
    list.attention({ buffer: q }, kc, vc, { buffer: buf(T * 4 * 32) }, T, 4, 2, 32, 0.2, stepBuffer(0, T));
    for (let i = 0; i < 3; i++) await list.run();
    await gpu.timer!.flush();
    const r = gpu.timer!.report();
    assert.equal(r.byLabel.list.passes, 3);
    assert.ok(r.byLabel.list.seconds > 0, JSON.stringify(r));
    assert.equal(r.busySeconds, r.byLabel.list.seconds);
    assert.equal(r.untimedPasses, 0);
    await gpu.timer!.flush(); // nothing new: the totals stay
    assert.deepEqual(gpu.timer!.report(), r);
    assert.deepEqual(await gpu.stopTimer(), r);
    assert.equal(gpu.timer, null);
  } finally {
    await gpu.stopTimer();
  }
});
