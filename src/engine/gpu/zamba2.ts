// Zamba2's shared transformer block use on the GPU (see cpu/zamba2.ts for the math), recorded from CommandList
// ops into the model's pass: concat(h, emb) by two strided copies, rmsNorm (2H), q/k/v GEMMs each plus this use's
// LoRA (down into a rank-wide scratch, up accumulated), RoPE, the KV write and causal attention of this use's
// own caches, o_proj, pre_ff_layernorm, gate_up plus its LoRA, GeGLU (or SwiGLU), down_proj, then the layer's
// linear accumulated onto a copy of h: `out` = h + t, the input of the layer's Mamba-2 decoder.

import { sharedBlockDims, type ModelConfig } from '../config';
import type { AdapterWeights, HybridWeights } from '../models/weights';
import type { GpuWeight } from './device';
import type { Act, CommandList } from './ops';

/** The scratch a shared block use needs for T tokens (one set for all hybrid layers of a pass). */
export interface SharedBlockScratch {
  cat: Act; // [T, 2H]: h | emb
  x2: Act; // [T, 2H] normed
  low: Act; // [T, r]: an adapter's down projection
  q: Act; // [T, nH*d]
  k: Act; // [T, nKv*d]
  v: Act;
  attn: Act; // [T, nH*d]
  o: Act; // [T, H]
  f: Act; // [T, H]: pre_ff_layernorm(o)
  gu: Act; // [T, 2F]
  act: Act; // [T, F]
  m: Act; // [T, H]: the MLP's output
}

/** The buffers a pass makes for it (with `buf` of the pass, which owns them); q/k/v/attn are the pass's attention scratch. */
export function sharedBlockScratch(cfg: ModelConfig, T: number, buf: (floats: number, label: string) => Act, attn: { q: Act; k: Act; v: Act; o: Act }): SharedBlockScratch {
  const H = cfg.hiddenSize;
  const z = cfg.zamba2!;
  return {
    cat: buf(T * 2 * H, 'z2_cat'),
    x2: buf(T * 2 * H, 'z2_x2'),
    low: buf(T * z.adapterRank, 'z2_lora'),
    q: attn.q,
    k: attn.k,
    v: attn.v,
    attn: attn.o,
    o: buf(T * H, 'z2_o'),
    f: buf(T * H, 'z2_ff_in'),
    gu: buf(T * 2 * z.intermediate, 'z2_gate_up'),
    act: buf(T * z.intermediate, 'z2_act'),
    m: buf(T * H, 'z2_mlp'),
  };
}

export interface SharedBlockUseArgs {
  h: Act; // [T, H] the residual stream (read)
  emb: Act; // [T, H] the embeddings of these tokens
  out: Act; // [T, H] h + t
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  step: GPUBuffer; // true positions (RoPE)
  kvStep: GPUBuffer; // positions in the KV working buffers
  /** Called just before the KV write (the sparse KV pages this use's selection in there). */
  markKvWrite: () => void;
}

/** Records one use of a shared block for T tokens. */
export function recordSharedBlockUse(list: CommandList, cfg: ModelConfig, w: HybridWeights<GpuWeight>, s: SharedBlockScratch, T: number, args: SharedBlockUseArgs): void {
  const a = cfg.attention!;
  const z = cfg.zamba2!;
  const { H, H2, R, F, qd, kd } = sharedBlockDims(cfg);
  const eps = cfg.rmsNormEps;
  const b = w.block;
  const col = (x: Act, offset: number, stride: number): Act => ({ buffer: x.buffer, offset: (x.offset ?? 0) + offset, stride });
  list.copy(args.h, col(s.cat, 0, H2), T, H);
  list.copy(args.emb, col(s.cat, H, H2), T, H);
  list.rmsNorm(s.cat, b.inputNorm, s.x2, T, H2, eps);
  const proj = (x: Act, K: number, wt: GpuWeight, ad: AdapterWeights<GpuWeight> | null, out: Act, N: number) => {
    list.linear(x, wt, out, T, K, N);
    if (ad) {
      list.linear(x, ad.down, s.low, T, K, R);
      list.linear(s.low, ad.up, out, T, R, N, { accumulate: true });
    }
  };
  proj(s.x2, H2, b.q, w.qAdapter, s.q, qd);
  proj(s.x2, H2, b.k, w.kAdapter, s.k, kd);
  proj(s.x2, H2, b.v, w.vAdapter, s.v, kd);
  if (a.ropeTheta !== null) {
    list.rope(s.q, T, a.numHeads, a.headDim, a.ropeTheta, args.step, a.rotaryDim);
    list.rope(s.k, T, a.numKvHeads, a.headDim, a.ropeTheta, args.step, a.rotaryDim);
  }
  args.markKvWrite();
  list.kvWrite(s.k, args.kCache, T, kd, args.kvStep);
  list.kvWrite(s.v, args.vCache, T, kd, args.kvStep);
  list.attention(s.q, args.kCache, args.vCache, s.attn, T, a.numHeads, a.numKvHeads, a.headDim, a.scaling, args.kvStep);
  list.linear(s.attn, b.o, s.o, T, qd, H);
  list.rmsNorm(s.o, b.preFfNorm, s.f, T, H, eps);
  proj(s.f, H, b.gateUp, w.gateUpAdapter, s.gu, 2 * F);
  if (z.activation === 'gelu') list.geglu(s.gu, s.act, T, F);
  else list.swiglu(s.gu, s.act, T, F);
  list.linear(s.act, b.down, s.m, T, F, H);
  list.copy(args.h, args.out, T, H);
  list.linear(s.m, w.linear, args.out, T, H, H, { accumulate: true });
}
