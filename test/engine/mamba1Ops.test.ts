// Mamba-1 selective-scan ops (issue 18): the CPU reference (src/engine/cpu/mamba1.ts) on hand-derived cases, and
// the WebGPU kernels (kernels/selectiveScan.wgsl, kernels/mamba1Norm.wgsl via src/engine/gpu/mamba1.ts) against
// it on seeded random inputs: max |gpu - cpu| / max |cpu| <= 1e-4; chunked prefill equals one-shot; decode steps
// after a prefill equal the prefill of the whole sequence. With and without subgroups.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gpu, type GpuWeight } from '../../src/engine/gpu/device';
import { CommandList, type Act } from '../../src/engine/gpu/ops';
import { scanLanes, selectiveScanConstants } from '../../src/engine/gpu/mamba1';
import * as m1 from '../../src/engine/cpu/mamba1';

const TOL = 1e-4;
let gpu: Gpu;
let gpuNoSg: Gpu;

before(async () => {
  gpu = await Gpu.create();
  gpuNoSg = await Gpu.create({ disableSubgroups: true });
});
after(() => {
  gpu?.destroy();
  gpuNoSg?.destroy();
});

// ---------------------------------------------------------------------------------------------------------
// Helpers

let seed = 4242;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
}
function uniform(n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}

/** max |got - want| / max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  }
  return maxDiff / maxRef;
}

function buf(g: Gpu, data: Float32Array | number, label = 'act'): GPUBuffer {
  const bytes = typeof data === 'number' ? 4 * data : data.byteLength;
  const b = g.buffer(bytes, label);
  if (typeof data !== 'number') g.write(b, data);
  return b;
}

async function readF32(g: Gpu, b: GPUBuffer, n: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await g.read(b, 4 * n, 4 * offset));
}

function weightF32(g: Gpu, v: Float32Array, shape: number[]): GpuWeight {
  return g.uploadWeight('w', new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)), 'F32', shape);
}

/** Rows [t0, t1) of a [T, w] array. */
function rows(a: Float32Array, w: number, t0: number, t1: number): Float32Array {
  return a.slice(t0 * w, t1 * w);
}

/** A random Mamba-1 layer's scan inputs: B and C as columns of an x_proj-like [T, R + 2N] array (strided). */
interface Case {
  T: number;
  I: number;
  N: number;
  R: number;
  x: Float32Array; // [T, I]
  dtRaw: Float32Array; // [T, I]
  xdbc: Float32Array; // [T, R + 2N]
  z: Float32Array; // [T, I]
  aLog: Float32Array; // [I, N]
  dtBias: Float32Array; // [I]
  D: Float32Array; // [I]
  h0: Float32Array; // [I, N]
}

function makeCase(T: number, I: number, N: number, R = 5): Case {
  const aLog = new Float32Array(I * N);
  // S4D-real init, log(1..N), jittered
  for (let i = 0; i < I; i++) for (let n = 0; n < N; n++) aLog[i * N + n] = Math.log(n + 1) + 0.3 * (rand() - 0.5);
  const dtBias = new Float32Array(I);
  // softplus^-1 of dt in [0.001, 0.5] (transformers' dt init range is [1e-3, 1e-1])
  for (let i = 0; i < I; i++) {
    const dt = Math.exp(Math.log(0.001) + rand() * (Math.log(0.5) - Math.log(0.001)));
    dtBias[i] = dt + Math.log(-Math.expm1(-dt));
  }
  return {
    T,
    I,
    N,
    R,
    x: uniform(T * I, -2, 2),
    dtRaw: uniform(T * I, -1.5, 1.5),
    xdbc: uniform(T * (R + 2 * N), -1.5, 1.5),
    z: uniform(T * I, -3, 3),
    aLog,
    dtBias,
    D: uniform(I, 0.5, 1.5),
    h0: uniform(I * N, -1, 1),
  };
}

/** The CPU reference on rows [t0, t1) of a case, from (and updating) `state`. */
function cpuScan(c: Case, state: Float32Array, gate: boolean, t0 = 0, t1 = c.T): Float32Array {
  const W = c.R + 2 * c.N;
  const sp = m1.splitXProj(rows(c.xdbc, W, t0, t1), t1 - t0, c.R, c.N);
  const dt = m1.dtSoftplus(rows(c.dtRaw, c.I, t0, t1), c.dtBias);
  return m1.selectiveScan(rows(c.x, c.I, t0, t1), dt, m1.aFromLog(c.aLog), sp.B, sp.C, c.D, state, { I: c.I, N: c.N }, gate ? rows(c.z, c.I, t0, t1) : null);
}

/** The case on a GPU: inputs uploaded whole (the scan reads rows t0.. by offset), constants made once. */
class GpuCase {
  readonly x: GPUBuffer;
  readonly dt: GPUBuffer;
  readonly xdbc: GPUBuffer;
  readonly z: GPUBuffer;
  readonly cp: GPUBuffer;
  readonly state: GPUBuffer;
  readonly out: GPUBuffer;
  constructor(
    readonly g: Gpu,
    readonly c: Case,
  ) {
    this.x = buf(g, c.x, 'x');
    this.dt = buf(g, c.dtRaw, 'dt');
    this.xdbc = buf(g, c.xdbc, 'xdbc');
    this.z = buf(g, c.z, 'z');
    this.cp = selectiveScanConstants(g, weightF32(g, c.aLog, [c.I, c.N]), weightF32(g, c.dtBias, [c.I]), weightF32(g, c.D, [c.I]), c.I, c.N);
    this.state = buf(g, c.h0.slice(), 'state');
    this.out = buf(g, c.T * c.I, 'out');
  }

  /** Scans rows [t0, t1), writing out rows [t0, t1). */
  async scan(t0: number, t1: number, opts: { gate?: boolean; tpr?: number } = {}): Promise<void> {
    const { I, N, R } = this.c;
    const W = R + 2 * N;
    const T = t1 - t0;
    const list = new CommandList(this.g);
    const at = (buffer: GPUBuffer, w: number, col = 0, stride = w): Act => ({ buffer, offset: t0 * stride + col, stride });
    list.selectiveScan(at(this.x, I), at(this.dt, I), at(this.xdbc, N, R, W), at(this.xdbc, N, R + N, W), this.cp, this.state, at(this.out, I), { T, I, N }, { z: opts.gate ? at(this.z, I) : undefined, tpr: opts.tpr });
    assert.equal(list.dispatchCount, 1);
    await list.run();
    list.destroy();
  }

  async result(): Promise<{ y: Float32Array; h: Float32Array }> {
    return { y: await readF32(this.g, this.out, this.c.T * this.c.I), h: await readF32(this.g, this.state, this.c.I * this.c.N) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// CPU reference, by hand

test('CPU selective scan: hand-computed I=1, N=2, T=2', () => {
  // A_log = (0, ln 2) -> A = (-1, -2); D = 0.5; h = (4, 8) before the first token.
  // dt raw (0, ln 2), dt_bias 0: dt_0 = softplus(0) = ln 2 =: L, dt_1 = softplus(ln 2) = ln(1 + 2) = ln 3 =: L3.
  // t = 0: x = 2, B = (1, -1), C = (1, 2): exp(dt A) = (1/2, 1/4)
  //   h = (4/2 + L*1*2, 8/4 + L*(-1)*2) = (2 + 2L, 2 - 2L) = (3.386294361, 0.613705639)
  //   y = (2 + 2L) + 2 (2 - 2L) + 0.5*2 = 7 - 2L = 5.613705639
  // t = 1: x = -1, B = (0.5, 3), C = (-1, 1): exp(dt A) = (1/3, 1/9)
  //   h = ((2 + 2L)/3 - L3/2, (2 - 2L)/9 - 3 L3) = (1.128764787 - 0.549306144, 0.068189515 - 3.295836866)
  //     = (0.579458643, -3.227647351)
  //   y = -h0 + h1 + 0.5*(-1) = -0.579458643 - 3.227647351 - 0.5 = -4.307105994
  const L = Math.LN2;
  const L3 = Math.log(3);
  const dt = m1.dtSoftplus(new Float32Array([0, L]), new Float32Array([0]));
  assert.ok(Math.abs(dt[0] - L) < 1e-7 && Math.abs(dt[1] - L3) < 1e-6, `dt ${dt}`);
  const A = m1.aFromLog(new Float32Array([0, L]));
  assert.ok(Math.abs(A[0] + 1) < 1e-7 && Math.abs(A[1] + 2) < 1e-6, `A ${A}`);
  const state = new Float32Array([4, 8]);
  const y = m1.selectiveScan(new Float32Array([2, -1]), dt, A, new Float32Array([1, -1, 0.5, 3]), new Float32Array([1, 2, -1, 1]), new Float32Array([0.5]), state, { I: 1, N: 2 });
  const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) < 2e-6, `${what}: ${got}, hand-derived ${want}`);
  close(y[0], 7 - 2 * L, 'y0');
  close(y[0], 5.613705639, 'y0 (decimal)');
  close(y[1], -4.307105994, 'y1');
  close(state[0], (2 + 2 * L) / 3 - L3 / 2, 'h0');
  close(state[1], (2 - 2 * L) / 9 - 3 * L3, 'h1');
  close(state[0], 0.579458643, 'h0 (decimal)');
  close(state[1], -3.227647351, 'h1 (decimal)');
  // The gate: y * silu(z); silu(0) = 0, silu(1) = 1 / (1 + 1/e) = 0.731058579.
  const s2 = new Float32Array([4, 8]);
  const yz = m1.selectiveScan(new Float32Array([2, -1]), dt, A, new Float32Array([1, -1, 0.5, 3]), new Float32Array([1, 2, -1, 1]), new Float32Array([0.5]), s2, { I: 1, N: 2 }, new Float32Array([0, 1]));
  close(yz[0], 0, 'gated y0');
  close(yz[1], -4.307105994 * 0.731058579, 'gated y1');
});

test('CPU x_proj split and FalconMamba norms: hand-derived', () => {
  // R = 2, N = 2: a row is (dt_low | B | C).
  const xdbc = new Float32Array([3, 4, 1, -1, 2, 0, /* row 2 */ 0.1, -0.1, 0.5, 0.5, 3, 4]);
  const plain = m1.splitXProj(xdbc, 2, 2, 2);
  assert.deepEqual([...plain.dtLow], [3, 4, 0.1, -0.1].map(Math.fround));
  assert.deepEqual([...plain.B], [1, -1, 0.5, 0.5]);
  assert.deepEqual([...plain.C], [2, 0, 3, 4]);
  // eps = 0.01 (large, so that where it enters shows):
  // row 1: dt_low mean square (9 + 16)/2 = 12.5 -> / sqrt(12.51) = 3.536948: (0.848189, 1.130919)
  //        B: mean square 1 -> / sqrt(1.01) = 1.004988: (0.995037, -0.995037)
  //        C: mean square 2 -> / sqrt(2.01) = 1.417745: (1.410691, 0)
  // row 2: dt_low mean square 0.01 -> / sqrt(0.02) = 0.141421: (0.707107, -0.707107)
  //        B: mean square 0.25 -> / sqrt(0.26) = 0.509902: (0.980581, 0.980581)
  //        C: mean square 12.5 -> / sqrt(12.51): (0.848189, 1.130919)
  const n = m1.splitXProj(xdbc, 2, 2, 2, 0.01);
  const want = {
    dtLow: [0.848189, 1.130919, 0.707107, -0.707107],
    B: [0.995037, -0.995037, 0.980581, 0.980581],
    C: [1.410691, 0, 0.848189, 1.130919],
  };
  for (const k of ['dtLow', 'B', 'C'] as const) {
    n[k].forEach((v, i) => assert.ok(Math.abs(v - want[k][i]) < 2e-6, `${k}[${i}] = ${v}, hand-derived ${want[k][i]}`));
  }
  // dt from dt_low: W = [[1, 0], [0.5, -0.5]] (I = 2, R = 2), bias (0, ln 2 - 1) on row 1 plain dt_low (3, 4):
  // raw = (3, -0.5) -> + bias = (3, ln 2 - 1.5) -> softplus = (ln(1 + e^3), ln(1 + 2/e^1.5)) = (ln 21.085537, ln 1.446260) = (3.048587, 0.368981)
  const dt = m1.dtFromLow(new Float32Array([3, 4]), new Float32Array([1, 0, 0.5, -0.5]), new Float32Array([0, Math.LN2 - 1]), 2);
  assert.ok(Math.abs(dt[0] - 3.048587) < 2e-6 && Math.abs(dt[1] - 0.368981) < 2e-6, `dt ${dt}`);
});

test('GPU selective scan matches the hand-computed I=1, N=2, T=2 case', async () => {
  for (const g of [gpu, gpuNoSg]) {
    const c: Case = {
      T: 2,
      I: 1,
      N: 2,
      R: 1,
      x: new Float32Array([2, -1]),
      dtRaw: new Float32Array([0, Math.LN2]),
      xdbc: new Float32Array([9, 1, -1, 1, 2, /* t = 1 */ 9, 0.5, 3, -1, 1]),
      z: new Float32Array(2),
      aLog: new Float32Array([0, Math.LN2]),
      dtBias: new Float32Array([0]),
      D: new Float32Array([0.5]),
      h0: new Float32Array([4, 8]),
    };
    const gc = new GpuCase(g, c);
    await gc.scan(0, 2);
    const { y, h } = await gc.result();
    const want = [5.613705639, -4.307105994, 0.579458643, -3.227647351];
    [...y, ...h].forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `subgroups ${g.hasSubgroups}: value ${i} = ${v}, hand-derived ${want[i]}`));
  }
});

// ---------------------------------------------------------------------------------------------------------
// WebGPU against the CPU reference

test('GPU selective scan matches the CPU reference (I 16/48/263, N 4/16, T 1/7/64/300; gated or not)', async (t) => {
  t.diagnostic(`subgroups: ${gpu.hasSubgroups} (size ${gpu.subgroupSize}); lanes per channel N=4: ${scanLanes(gpu, 4)}, N=16: ${scanLanes(gpu, 16)}`);
  let worst = 0;
  let k = 0;
  for (const I of [16, 48, 263]) {
    for (const N of [4, 16]) {
      for (const T of [1, 7, 64, 300]) {
        const gate = k++ % 2 === 1;
        const c = makeCase(T, I, N);
        const hRef = c.h0.slice();
        const yRef = cpuScan(c, hRef, gate);
        for (const g of [gpu, gpuNoSg]) {
          const gc = new GpuCase(g, c);
          await gc.scan(0, T, { gate });
          const { y, h } = await gc.result();
          const ey = relErr(y, yRef);
          const eh = relErr(h, hRef);
          worst = Math.max(worst, ey, eh);
          assert.ok(ey <= TOL && eh <= TOL, `I=${I} N=${N} T=${T} gate=${gate} subgroups=${g.hasSubgroups}: y err ${ey}, state err ${eh}`);
        }
      }
    }
  }
  t.diagnostic(`worst relative error ${worst.toExponential(2)}`);
});

test('GPU selective scan: one lane per channel, and N = 40 over several entries per lane', async () => {
  for (const [N, tpr] of [
    [16, 1],
    [16, 4],
    [40, 4],
    [40, undefined],
  ] as [number, number | undefined][]) {
    const c = makeCase(33, 37, N);
    const hRef = c.h0.slice();
    const yRef = cpuScan(c, hRef, true);
    for (const g of [gpu, gpuNoSg]) {
      const gc = new GpuCase(g, c);
      await gc.scan(0, c.T, { gate: true, tpr });
      const { y, h } = await gc.result();
      assert.ok(relErr(y, yRef) <= TOL && relErr(h, hRef) <= TOL, `N=${N} tpr=${tpr} subgroups=${g.hasSubgroups}: ${relErr(y, yRef)}, ${relErr(h, hRef)}`);
    }
  }
});

test('GPU selective scan: chunked prefill (128 + 128 + 44) equals one-shot (300)', async () => {
  for (const g of [gpu, gpuNoSg]) {
    const c = makeCase(300, 263, 16);
    const one = new GpuCase(g, c);
    await one.scan(0, 300, { gate: true });
    const a = await one.result();
    const chunked = new GpuCase(g, c);
    await chunked.scan(0, 128, { gate: true });
    await chunked.scan(128, 256, { gate: true });
    await chunked.scan(256, 300, { gate: true });
    const b = await chunked.result();
    assert.ok(relErr(b.y, a.y) <= 1e-6 && relErr(b.h, a.h) <= 1e-6, `subgroups=${g.hasSubgroups}: ${relErr(b.y, a.y)}, ${relErr(b.h, a.h)}`);
    // and the CPU reference in the same chunks
    const hRef = c.h0.slice();
    const yRef = new Float32Array(300 * 263);
    for (const [t0, t1] of [
      [0, 128],
      [128, 256],
      [256, 300],
    ]) {
      yRef.set(cpuScan(c, hRef, true, t0, t1), t0 * 263);
    }
    assert.ok(relErr(b.y, yRef) <= TOL && relErr(b.h, hRef) <= TOL);
  }
});

test('GPU selective scan: decode steps (T = 1) after a prefill equal the prefill of the whole sequence', async () => {
  for (const g of [gpu, gpuNoSg]) {
    for (const N of [4, 16]) {
      const c = makeCase(72, 48, N);
      const whole = new GpuCase(g, c);
      await whole.scan(0, 72);
      const a = await whole.result();
      const steps = new GpuCase(g, c);
      await steps.scan(0, 64);
      for (let t = 64; t < 72; t++) await steps.scan(t, t + 1);
      const b = await steps.result();
      assert.ok(relErr(b.y, a.y) <= 1e-6 && relErr(b.h, a.h) <= 1e-6, `N=${N} subgroups=${g.hasSubgroups}: ${relErr(b.y, a.y)}, ${relErr(b.h, a.h)}`);
      // the CPU one-step update after the CPU prefill
      const hRef = c.h0.slice();
      const yRef = new Float32Array(72 * 48);
      yRef.set(cpuScan(c, hRef, false, 0, 64), 0);
      const A = m1.aFromLog(c.aLog);
      const W = c.R + 2 * N;
      for (let t = 64; t < 72; t++) {
        const row = m1.splitXProj(rows(c.xdbc, W, t, t + 1), 1, c.R, N);
        const dt = m1.dtSoftplus(rows(c.dtRaw, 48, t, t + 1), c.dtBias);
        yRef.set(m1.selectiveStep(rows(c.x, 48, t, t + 1), dt, A, row.B, row.C, c.D, hRef, { I: 48, N }), t * 48);
      }
      assert.ok(relErr(b.y, yRef) <= TOL && relErr(b.h, hRef) <= TOL, `N=${N}: vs CPU step ${relErr(b.y, yRef)}, ${relErr(b.h, hRef)}`);
    }
  }
});

test('GPU FalconMamba norms (in place, strided) match the CPU reference', async () => {
  for (const [T, R, N] of [
    [1, 5, 4],
    [7, 48, 16],
    [64, 256, 16],
    [3, 300, 16],
  ]) {
    const W = R + 2 * N;
    const stride = W + 3;
    const data = uniform(2 + T * stride, -2, 2);
    const b = buf(gpu, data, 'xdbc');
    const list = new CommandList(gpu);
    list.falconNorms({ buffer: b, offset: 2, stride }, T, R, N, 1e-6);
    await list.run();
    list.destroy();
    const got = await readF32(gpu, b, data.length);
    const packed = new Float32Array(T * W);
    for (let t = 0; t < T; t++) packed.set(data.subarray(2 + t * stride, 2 + t * stride + W), t * W);
    const want = m1.splitXProj(packed, T, R, N, 1e-6);
    for (let t = 0; t < T; t++) {
      const o = 2 + t * stride;
      assert.ok(relErr(got.subarray(o, o + R), want.dtLow.subarray(t * R, (t + 1) * R)) <= TOL, `T=${T} R=${R} N=${N} dt_low row ${t}`);
      assert.ok(relErr(got.subarray(o + R, o + R + N), want.B.subarray(t * N, (t + 1) * N)) <= TOL, `B row ${t}`);
      assert.ok(relErr(got.subarray(o + R + N, o + W), want.C.subarray(t * N, (t + 1) * N)) <= TOL, `C row ${t}`);
      // the padding between rows is untouched
      for (let j = W; j < stride && o + j < data.length; j++) assert.equal(got[o + j], data[o + j]);
    }
    assert.equal(got[0], data[0]);
    assert.equal(got[1], data[1]);
  }
});

test("GPU selective scan in heads (Zamba): each head's channels read their own B and C", async () => {
  // 3 heads of 8 channels; each head's (dt_low | B | C) sits at columns h*W of a [T, 3W] row, as Zamba's per-head x_proj write it
  const T = 9;
  const nh = 3;
  const hd = 8;
  const I = nh * hd;
  const N = 16;
  const R = 2;
  const W = R + 2 * N;
  const x = uniform(T * I, -1, 1);
  const dtRaw = uniform(T * I, -2, 0.5);
  const z = uniform(T * I, -1, 1);
  const xdbc = uniform(T * nh * W, -1, 1);
  const aLog = uniform(I * N, -1, 1.5);
  const dtBias = uniform(I, -1, 0.5);
  const D = uniform(I, 0.5, 1.5);
  const h0 = uniform(I * N, -0.5, 0.5);
  const yRef = new Float32Array(T * I);
  const hRef = h0.slice();
  const A = m1.aFromLog(aLog);
  for (let h = 0; h < nh; h++) {
    const cols = (a: Float32Array, width: number, off: number, n: number) => {
      const o = new Float32Array(T * n);
      for (let t = 0; t < T; t++) o.set(a.subarray(t * width + off, t * width + off + n), t * n);
      return o;
    };
    const dt = m1.dtSoftplus(cols(dtRaw, I, h * hd, hd), dtBias.subarray(h * hd, (h + 1) * hd));
    const y = m1.selectiveScan(cols(x, I, h * hd, hd), dt, A.subarray(h * hd * N, (h + 1) * hd * N), cols(xdbc, nh * W, h * W + R, N), cols(xdbc, nh * W, h * W + R + N, N), D.subarray(h * hd, (h + 1) * hd), hRef.subarray(h * hd * N, (h + 1) * hd * N), { I: hd, N }, cols(z, I, h * hd, hd));
    for (let t = 0; t < T; t++) yRef.set(y.subarray(t * hd, (t + 1) * hd), t * I + h * hd);
  }
  for (const g of [gpu, gpuNoSg]) {
    const cp = selectiveScanConstants(g, weightF32(g, aLog, [I, N]), weightF32(g, dtBias, [I]), weightF32(g, D, [I]), I, N);
    const state = buf(g, h0.slice(), 'state');
    const out = buf(g, T * I);
    const xb = buf(g, xdbc);
    const list = new CommandList(g);
    list.selectiveScan({ buffer: buf(g, x) }, { buffer: buf(g, dtRaw) }, { buffer: xb, offset: R, stride: nh * W }, { buffer: xb, offset: R + N, stride: nh * W }, cp, state, { buffer: out }, { T, I, N }, { z: { buffer: buf(g, z) }, heads: { channels: hd, stride: W } });
    await list.run();
    const ey = relErr(await readF32(g, out, T * I), yRef);
    const eh = relErr(await readF32(g, state, I * N), hRef);
    assert.ok(ey <= TOL && eh <= TOL, `subgroups=${g.hasSubgroups}: y err ${ey}, state err ${eh}`);
    list.destroy();
  }
  assert.throws(() => new CommandList(gpu).selectiveScan({ buffer: buf(gpu, T * I) }, { buffer: buf(gpu, T * I) }, { buffer: buf(gpu, T * W) }, { buffer: buf(gpu, T * W) }, selectiveScanConstants(gpu, weightF32(gpu, aLog, [I, N]), weightF32(gpu, dtBias, [I]), weightF32(gpu, D, [I]), I, N), buf(gpu, I * N), { buffer: buf(gpu, T * I) }, { T, I, N }, { heads: { channels: 5, stride: W } }), /do not divide I/);
});

test('selectiveScan checks its inputs', async () => {
  const list = new CommandList(gpu);
  const b = buf(gpu, 64);
  const cp = buf(gpu, 64);
  assert.throws(() => list.selectiveScan({ buffer: b }, { buffer: b }, { buffer: b }, { buffer: b }, cp, b, { buffer: buf(gpu, 64) }, { T: 1, I: 4, N: 2 }), /both written and read/);
  assert.throws(() => list.selectiveScan({ buffer: b }, { buffer: b }, { buffer: b }, { buffer: b }, cp, buf(gpu, 64), { buffer: buf(gpu, 64) }, { T: 100, I: 4, N: 2 }), /past its/);
  assert.throws(() => list.selectiveScan({ buffer: b }, { buffer: b }, { buffer: b }, { buffer: b }, cp, buf(gpu, 64), { buffer: buf(gpu, 64) }, { T: 1, I: 4, N: 2 }, { tpr: 3 }), /power of two/);
  list.destroy();
});

// ---------------------------------------------------------------------------------------------------------
// A whole mixer, as the model loop would run it: CommandList ops (in_proj, conv, x_proj, dt_proj, out_proj)
// around the Mamba-1 ops, against cpu/mamba1.ts mamba1Mixer; prefill in two chunks, then a decode step.

test('a Mamba-1 / FalconMamba mixer on the GPU (CommandList) matches the CPU mixer', async () => {
  for (const falconEps of [null, 1e-6]) {
    const H = 24, I = 48, N = 16, R = 3, K = 4;
    const sh: m1.Mamba1MixerShape = { H, I, N, R, K, falconEps };
    const c = makeCase(1, I, N, R);
    const w: m1.Mamba1MixerWeights = {
      inProj: uniform(2 * I * H, -0.3, 0.3),
      inProjBias: uniform(2 * I, -0.1, 0.1),
      convW: uniform(I * K, -0.5, 0.5),
      convB: uniform(I, -0.1, 0.1),
      xProj: uniform((R + 2 * N) * I, -0.3, 0.3),
      dtProjW: uniform(I * R, -0.5, 0.5),
      dtProjB: c.dtBias,
      aLog: c.aLog,
      D: c.D,
      outProj: uniform(H * I, -0.2, 0.2),
    };
    const T = 21;
    const hidden = uniform((T + 1) * H, -1, 1);
    const cpuState: m1.Mamba1State = { conv: new Float32Array(I * (K - 1)), ssm: new Float32Array(I * N) };
    const want = new Float32Array((T + 1) * H);
    const chunks: [number, number][] = [
      [0, 13],
      [13, T],
      [T, T + 1],
    ];
    for (const [t0, t1] of chunks) want.set(m1.mamba1Mixer(hidden.slice(t0 * H, t1 * H), w, sh, cpuState), t0 * H);

    const W = R + 2 * N;
    const up = (v: Float32Array, shape: number[]) => weightF32(gpu, v, shape);
    const g = {
      inProj: up(w.inProj, [2 * I, H]),
      inProjBias: up(w.inProjBias!, [2 * I]),
      convW: up(w.convW, [I, 1, K]),
      convB: up(w.convB!, [I]),
      xProj: up(w.xProj, [W, I]),
      dtProjW: up(w.dtProjW, [I, R]),
      outProj: up(w.outProj, [H, I]),
    };
    const cp = selectiveScanConstants(gpu, up(w.aLog, [I, N]), up(w.dtProjB, [I]), up(w.D, [I]), I, N);
    const convState = buf(gpu, I * (K - 1), 'conv.state');
    const ssmState = buf(gpu, I * N, 'ssm.state');
    const hb = buf(gpu, hidden, 'hidden');
    const out = buf(gpu, (T + 1) * H, 'out');
    const xz = buf(gpu, T * 2 * I, 'xz');
    const xc = buf(gpu, T * I, 'xc');
    const xdbc = buf(gpu, T * W, 'xdbc');
    const dt = buf(gpu, T * I, 'dt');
    const y = buf(gpu, T * I, 'y');
    for (const [t0, t1] of chunks) {
      const n = t1 - t0;
      const a = new CommandList(gpu);
      a.linear({ buffer: hb, offset: t0 * H }, g.inProj, { buffer: xz }, n, H, 2 * I, { bias: g.inProjBias });
      a.causalConv1d({ buffer: xz, stride: 2 * I }, g.convW, g.convB, convState, { buffer: xc }, n, I, K);
      a.linear({ buffer: xc }, g.xProj, { buffer: xdbc }, n, I, W);
      const b = new CommandList(gpu);
      if (falconEps !== null) b.falconNorms({ buffer: xdbc }, n, R, N, falconEps);
      const d = new CommandList(gpu);
      d.linear({ buffer: xdbc, stride: W }, g.dtProjW, { buffer: dt }, n, R, I); // the bias is added in the scan
      const e = new CommandList(gpu);
      e.selectiveScan({ buffer: xc }, { buffer: dt }, { buffer: xdbc, offset: R, stride: W }, { buffer: xdbc, offset: R + N, stride: W }, cp, ssmState, { buffer: y }, { T: n, I, N }, { z: { buffer: xz, offset: I, stride: 2 * I } });
      const f = new CommandList(gpu);
      f.linear({ buffer: y }, g.outProj, { buffer: out, offset: t0 * H }, n, I, H);
      // One compute pass, in order (dispatches in a pass see the previous ones' writes).
      const enc = gpu.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      a.encode(pass);
      b.encode(pass);
      d.encode(pass);
      e.encode(pass);
      f.encode(pass);
      pass.end();
      gpu.device.queue.submit([enc.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
      await gpu.check();
      for (const l of [a, b, d, e, f]) l.destroy();
    }
    const got = await readF32(gpu, out, (T + 1) * H);
    const err = relErr(got, want);
    assert.ok(err <= TOL, `falconEps ${falconEps}: mixer output err ${err}`);
    assert.ok(relErr(await readF32(gpu, ssmState, I * N), cpuState.ssm) <= TOL, 'ssm state');
    assert.ok(relErr(await readF32(gpu, convState, I * (K - 1)), cpuState.conv) <= TOL, 'conv state');
  }
});
