// CPU reference of the Mamba-1 (transformers `mamba` / `falcon_mamba` / `jamba`, MambaMixer) pieces that Mamba-2
// does not have: the x_proj split (with FalconMamba's weightless RMS norms, or Jamba's weighted ones),
// dt = softplus(dt_proj(dt_low) + dt_bias) per channel, and the selective scan with a state per (channel, state entry):
//   h[i, n] = exp(dt[i] A[i, n]) h[i, n] + dt[i] B[n] x[i],   y[i] = sum_n h[i, n] C[n] + D[i] x[i]   (A = -exp(A_log))
// optionally gated: y[i] * silu(z[i]). Plain loops in float64 arithmetic over float32 storage; the state is f32.
// The conv (cpu/ops.ts causalConv1d) and the projections (cpu/ops.ts linear) are shared with Mamba-2.

import { causalConv1d, linear, silu, softplus } from './ops';

/** RMS norm without a weight over rows of length d: out = x / sqrt(mean(x^2) + eps). */
export function rmsNormNoWeight(x: Float32Array, d: number, eps: number): Float32Array {
  if (d <= 0 || x.length % d !== 0) throw new Error(`rmsNormNoWeight: ${x.length} values are not rows of ${d}.`);
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j] * x[r * d + j];
    const s = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) out[r * d + j] = x[r * d + j] * s;
  }
  return out;
}

export interface XProjSplit {
  dtLow: Float32Array; // [T, R]
  B: Float32Array; // [T, N]
  C: Float32Array; // [T, N]
}

/**
 * Splits x_proj's output [T, R + 2N] into dt_low [T, R], B [T, N], C [T, N] (in that order along the row).
 * FalconMamba (falconEps given: config.mixer_rms_eps) then RMS-normalises each of the three, per token, over its
 * own width, without a weight, before dt_proj and the scan.
 */
export function splitXProj(xdbc: Float32Array, T: number, R: number, N: number, falconEps: number | null = null, norms: InnerNormWeights | null = null): XProjSplit {
  const W = R + 2 * N;
  if (xdbc.length !== T * W) throw new Error(`splitXProj: ${xdbc.length} values, [${T}, ${W}] expected.`);
  let dtLow: Float32Array = new Float32Array(T * R);
  let B: Float32Array = new Float32Array(T * N);
  let C: Float32Array = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < R; j++) dtLow[t * R + j] = xdbc[t * W + j];
    for (let n = 0; n < N; n++) {
      B[t * N + n] = xdbc[t * W + R + n];
      C[t * N + n] = xdbc[t * W + R + N + n];
    }
  }
  if (falconEps !== null) {
    dtLow = rmsNormNoWeight(dtLow, R, falconEps);
    B = rmsNormNoWeight(B, N, falconEps);
    C = rmsNormNoWeight(C, N, falconEps);
    // Jamba: each norm then has its weight.
    if (norms) {
      scaleRows(dtLow, norms.dt);
      scaleRows(B, norms.B);
      scaleRows(C, norms.C);
    }
  }
  return { dtLow, B, C };
}

/** x[r, j] *= w[j] for every row r of x (rows of w.length). */
function scaleRows(x: Float32Array, w: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] *= w[i % w.length];
}

/** dt_proj without its bias: raw[t, i] = sum_r W[i, r] dtLow[t, r]. W: [I, R] (nn.Linear layout). */
export function dtProjRaw(dtLow: Float32Array, W: Float32Array, R: number, I: number): Float32Array {
  return linear(dtLow, W, R, I, null);
}

/** dt[t, i] = softplus(raw[t, i] + bias[i]) (torch's softplus, threshold 20). raw: [T, I], bias: [I]. */
export function dtSoftplus(raw: Float32Array, bias: Float32Array): Float32Array {
  const I = bias.length;
  const dt = new Float32Array(raw.length);
  for (let k = 0; k < raw.length; k++) dt[k] = softplus(raw[k] + bias[k % I]);
  return dt;
}

/** dt = softplus(dt_proj(dtLow) + bias): dtLow [T, R], W [I, R], bias [I]; returns [T, I]. */
export function dtFromLow(dtLow: Float32Array, W: Float32Array, bias: Float32Array, R: number): Float32Array {
  return dtSoftplus(dtProjRaw(dtLow, W, R, bias.length), bias);
}

/** A = -exp(A_log), elementwise ([I, N]). */
export function aFromLog(aLog: Float32Array): Float32Array {
  const A = new Float32Array(aLog.length);
  for (let k = 0; k < aLog.length; k++) A[k] = -Math.exp(aLog[k]);
  return A;
}

export interface ScanShape {
  I: number; // channels (intermediate_size)
  N: number; // state size
}

/**
 * One token of the selective scan. x, dt, z: [I]; B, C: [N]; A: [I, N]; D: [I]; state: f32 [I, N], updated in
 * place. Returns y [I] (times silu(z) when z is given).
 */
export function selectiveStep(
  x: Float32Array,
  dt: Float32Array,
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  D: Float32Array,
  state: Float32Array,
  s: ScanShape,
  z: Float32Array | null = null,
): Float32Array {
  const { I, N } = s;
  const y = new Float32Array(I);
  for (let i = 0; i < I; i++) {
    let acc = 0;
    for (let n = 0; n < N; n++) {
      const k = i * N + n;
      const h = Math.exp(dt[i] * A[k]) * state[k] + dt[i] * B[n] * x[i];
      state[k] = h; // rounded to f32, as the carried state is
      acc += state[k] * C[n];
    }
    let v = acc + D[i] * x[i];
    if (z) v *= silu(z[i]);
    y[i] = v;
  }
  return y;
}

/**
 * The selective scan over T tokens, continuing from `state` (f32 [I, N], updated in place), token by token.
 * x, dt (after softplus), z: [T, I]; B, C: [T, N]; A: [I, N] (= -exp(A_log)); D: [I]. Returns y [T, I].
 */
export function selectiveScan(
  x: Float32Array,
  dt: Float32Array,
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  D: Float32Array,
  state: Float32Array,
  s: ScanShape,
  z: Float32Array | null = null,
): Float32Array {
  const { I, N } = s;
  const T = x.length / I;
  if (!Number.isInteger(T) || dt.length !== T * I || B.length !== T * N || C.length !== T * N || (z && z.length !== T * I)) {
    throw new Error(`selectiveScan: inputs are not [T, I] / [T, N] for I = ${I}, N = ${N}.`);
  }
  if (A.length !== I * N || D.length !== I || state.length !== I * N) throw new Error(`selectiveScan: A, D or the state is not sized for I = ${I}, N = ${N}.`);
  const y = new Float32Array(T * I);
  for (let t = 0; t < T; t++) {
    const row = (a: Float32Array, w: number) => a.subarray(t * w, (t + 1) * w);
    y.set(selectiveStep(row(x, I), row(dt, I), A, row(B, N), row(C, N), D, state, s, z ? row(z, I) : null), t * I);
  }
  return y;
}

/** One Mamba-1 mixer's weights, f32, in the checkpoint's layouts (nn.Linear [out, in], conv1d [I, 1, K]). */
export interface Mamba1MixerWeights {
  inProj: Float32Array; // [2I, H]: x rows then z rows
  inProjBias?: Float32Array | null; // [2I] (config.use_bias)
  convW: Float32Array; // [I, K]
  convB?: Float32Array | null; // [I] (config.use_conv_bias)
  xProj: Float32Array; // [R + 2N, I]
  dtProjW: Float32Array; // [I, R]
  dtProjB: Float32Array; // [I]
  aLog: Float32Array; // [I, N]
  D: Float32Array; // [I]
  outProj: Float32Array; // [H, I]
  outProjBias?: Float32Array | null; // [H]
  /** Jamba: the weights of the norms on dt_low [R], B [N], C [N] (with falconEps). */
  innerNorms?: InnerNormWeights | null;
}

/** The weights of Jamba's RMS norms on x_proj's three parts. */
export interface InnerNormWeights {
  dt: Float32Array; // [R]
  B: Float32Array; // [N]
  C: Float32Array; // [N]
}

export interface Mamba1MixerShape {
  H: number; // hidden_size
  I: number; // intermediate_size
  N: number; // state_size
  R: number; // time_step_rank
  K: number; // conv_kernel
  /** FalconMamba: mixer_rms_eps (the weightless norms of dt_low, B, C); null for Mamba. */
  falconEps: number | null;
}

/** A mixer's carried state: the conv's last K-1 inputs [I, K-1] and the scan's h [I, N], both f32. */
export interface Mamba1State {
  conv: Float32Array;
  ssm: Float32Array;
}

/**
 * One Mamba-1 mixer (MambaMixer / FalconMambaMixer) on T tokens, continuing from `state` (updated):
 * in_proj -> (x, z); x = silu(conv1d(x)); x_proj -> (dt_low, B, C) [Falcon: normed]; dt = softplus(dt_proj);
 * y = scan(x, dt, A, B, C, D) * silu(z); out_proj. hidden: [T, H]; returns [T, H].
 */
export function mamba1Mixer(hidden: Float32Array, w: Mamba1MixerWeights, s: Mamba1MixerShape, state: Mamba1State): Float32Array {
  const { H, I, N, R, K } = s;
  const T = hidden.length / H;
  const xz = linear(hidden, w.inProj, H, 2 * I, w.inProjBias ?? null);
  const x = new Float32Array(T * I);
  const z = new Float32Array(T * I);
  for (let t = 0; t < T; t++) {
    x.set(xz.subarray(t * 2 * I, t * 2 * I + I), t * I);
    z.set(xz.subarray(t * 2 * I + I, (t + 1) * 2 * I), t * I);
  }
  const xc = causalConv1d(x, w.convW, w.convB ?? null, state.conv, I, K);
  const sp = splitXProj(linear(xc, w.xProj, I, R + 2 * N, null), T, R, N, s.falconEps, w.innerNorms ?? null);
  const dt = dtFromLow(sp.dtLow, w.dtProjW, w.dtProjB, R);
  const y = selectiveScan(xc, dt, aFromLog(w.aLog), sp.B, sp.C, w.D, state.ssm, { I, N }, z);
  return linear(y, w.outProj, I, H, w.outProjBias ?? null);
}
