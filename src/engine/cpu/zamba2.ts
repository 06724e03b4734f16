// CPU reference of Zamba2's shared transformer block use (transformers Zamba2HybridLayer: Zamba2AttentionDecoderLayer
// then the layer's own linear), the part of a hybrid layer that runs before its Mamba-2 decoder:
//   x2 = rmsnorm(concat(h, emb)) [2H]
//   q, k, v = x2 W^T + up(down(x2))       (this use's LoRA adapters on q/k/v when use_shared_attention_adapter)
//   RoPE (use_mem_rope), causal attention with scaling (d/2)^-0.5 over this use's own KV
//   a = rmsnorm(o_proj(attn))              (pre_ff_layernorm; no residual inside the block)
//   gu = a W_gu^T + up(down(a));  m = down_proj(act(gate) * up)
//   returns h + linear(m): the input of the layer's Mamba-2 decoder (whose residual is h itself)
// The attention itself is the model's (dense or over selected KV blocks), passed in as `attend`. Zamba's block is
// the same without adapters (its gate_proj / up_proj read as one gate_up); its multi-head Mamba-1 mixer is below.

import { sharedBlockDims, type ModelConfig } from '../config';
import type { AdapterWeights, HybridWeights, Mamba1Weights } from '../models/weights';
import { aFromLog, dtFromLow, selectiveScan, splitXProj, type Mamba1State } from './mamba1';
import * as ops from './ops';

/** x W^T plus the adapter's up(down x) when there is one. x: [T, K] -> [T, N]. */
function withAdapter(x: Float32Array, w: Float32Array, ad: AdapterWeights<Float32Array> | null, K: number, N: number, R: number): Float32Array {
  const y = ops.linear(x, w, K, N);
  if (ad) {
    const d = ops.linear(ops.linear(x, ad.down, K, R), ad.up, R, N);
    for (let j = 0; j < y.length; j++) y[j] += d[j];
  }
  return y;
}

/**
 * One use of a shared block at the current position `pos0`. `attend(q, k, v)` appends k/v [T, nKv*d] to this
 * use's KV and returns the attention output [T, nH*d] for q [T, nH*d].
 */
export function sharedBlockUse(
  cfg: ModelConfig,
  w: HybridWeights<Float32Array>,
  h: Float32Array,
  emb: Float32Array,
  T: number,
  pos0: number,
  attend: (q: Float32Array, k: Float32Array, v: Float32Array) => Float32Array,
): Float32Array {
  const a = cfg.attention!;
  const z = cfg.zamba2!;
  const { H, H2, R, F, qd, kd } = sharedBlockDims(cfg);
  const b = w.block;
  const cat = new Float32Array(T * H2);
  for (let t = 0; t < T; t++) {
    cat.set(h.subarray(t * H, (t + 1) * H), t * H2);
    cat.set(emb.subarray(t * H, (t + 1) * H), t * H2 + H);
  }
  const x = ops.rmsNorm(cat, b.inputNorm, H2, cfg.rmsNormEps);
  const q = withAdapter(x, b.q, w.qAdapter, H2, qd, R);
  const k = withAdapter(x, b.k, w.kAdapter, H2, kd, R);
  const v = withAdapter(x, b.v, w.vAdapter, H2, kd, R);
  if (a.ropeTheta !== null) {
    ops.rope(q, a.numHeads, a.headDim, pos0, a.ropeTheta, a.rotaryDim);
    ops.rope(k, a.numKvHeads, a.headDim, pos0, a.ropeTheta, a.rotaryDim);
  }
  const o = ops.linear(attend(q, k, v), b.o, qd, H);
  const f = ops.rmsNorm(o, b.preFfNorm, H, cfg.rmsNormEps);
  const gu = withAdapter(f, b.gateUp, w.gateUpAdapter, H, 2 * F, R);
  const act = z.activation === 'gelu' ? ops.geglu(gu, F) : ops.swiglu(gu, F);
  const t = ops.linear(ops.linear(act, b.down, F, H), w.linear, H, H);
  for (let j = 0; j < t.length; j++) t[j] += h[j];
  return t;
}

/**
 * Zamba's multi-head Mamba-1 mixer (ZambaMambaMixer) on T tokens, continuing from `state` (conv [I, K-1], scan
 * [I, N] with the channels head-major, updated): in_proj -> (x, z) (rows already x | z: the in_proj.xz view);
 * x = silu(conv1d(x)); per head h (channels h*hd ..): x_proj_h -> (dt_low, B, C), dt = softplus(dt_proj_h(dt_low)
 * + dt_bias_h), y_h = scan(x_h, dt, A_h, B, C, D_h) * silu(z_h); out_proj of the concatenated heads.
 */
export function zambaMamba1Mixer(cfg: ModelConfig, w: Mamba1Weights<Float32Array>, hidden: Float32Array, state: Mamba1State): Float32Array {
  const m = cfg.mamba1!;
  const H = cfg.hiddenSize;
  const I = m.intermediate;
  const N = m.dState;
  const R = m.dtRank;
  const nh = m.numHeads ?? 1;
  const hd = I / nh;
  const T = hidden.length / H;
  const xz = ops.linear(hidden, w.inProj, H, 2 * I, w.inProjBias);
  const x = new Float32Array(T * I);
  const z = new Float32Array(T * I);
  for (let t = 0; t < T; t++) {
    x.set(xz.subarray(t * 2 * I, t * 2 * I + I), t * I);
    z.set(xz.subarray(t * 2 * I + I, (t + 1) * 2 * I), t * I);
  }
  const xc = ops.causalConv1d(x, w.conv, w.convBias, state.conv, I, m.dConv);
  const A = aFromLog(w.aLog);
  const y = new Float32Array(T * I);
  const cols = (a: Float32Array, h: number): Float32Array => {
    const out = new Float32Array(T * hd);
    for (let t = 0; t < T; t++) out.set(a.subarray(t * I + h * hd, t * I + (h + 1) * hd), t * hd);
    return out;
  };
  for (let h = 0; h < nh; h++) {
    const xh = cols(xc, h);
    const sp = splitXProj(ops.linear(xh, w.perHead!.xProj[h], hd, R + 2 * N), T, R, N);
    const dt = dtFromLow(sp.dtLow, w.perHead!.dtProj[h], w.dtBias.subarray(h * hd, (h + 1) * hd), R);
    const yh = selectiveScan(xh, dt, A.subarray(h * hd * N, (h + 1) * hd * N), sp.B, sp.C, w.D.subarray(h * hd, (h + 1) * hd), state.ssm.subarray(h * hd * N, (h + 1) * hd * N), { I: hd, N }, cols(z, h));
    for (let t = 0; t < T; t++) y.set(yh.subarray(t * hd, (t + 1) * hd), t * I + h * hd);
  }
  return ops.linear(y, w.outProj, I, H, w.outProjBias);
}
