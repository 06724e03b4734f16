// Which tensors each architecture has, under which checkpoint names and with which shapes. The loader is
// generic over the tensor type, so the CPU reference (Float32Array) and the GPU engine (GpuWeight) share
// one description of the checkpoint.

import type { LayerKind, ModelConfig } from '../config';
import { ModelFormatError } from '../errors';

export interface MambaWeights<T> {
  inProj: T; // [inProjDim, H]: z | xBC | dt
  inProjBias: T | null;
  conv: T; // [convDim, 1, K]
  convBias: T | null; // [convDim]
  dtBias: T; // [nh]
  aLog: T; // [nh]
  D: T; // [nh]
  gatedNorm: T | null; // [I]; null: y * silu(z) without a norm (Falcon-H1 with mamba_rms_norm false)
  outProj: T; // [H, I]
  outProjBias: T | null;
}

/** A Mamba-1 mixer (MambaMixer / FalconMambaMixer). */
export interface Mamba1Weights<T> {
  inProj: T; // [2I, H]: x | z
  inProjBias: T | null; // [2I]
  conv: T; // [I, 1, K]
  convBias: T | null; // [I]
  xProj: T; // [R + 2N, I]: dt_low | B | C
  dtProj: T; // [I, R]
  dtBias: T; // [I]
  aLog: T; // [I, N]
  D: T; // [I]
  outProj: T; // [H, I]
  outProjBias: T | null; // [H]
  /** Jamba: the weights of the RMS norms on dt_low [R], B [N] and C [N]; null without (Mamba, FalconMamba). */
  dtNorm: T | null;
  bNorm: T | null;
  cNorm: T | null;
  /**
   * Zamba's multi-head mixer (Mamba1Config.numHeads > 1): each head's x_proj [R + 2N, I/heads] and dt_proj
   * [I/heads, R] (xProj and dtProj are then head 0's); null for one head.
   */
  perHead: { xProj: T[]; dtProj: T[] } | null;
}

export interface AttentionWeights<T> {
  q: T; // [nH*d, H]
  k: T; // [nKv*d, H]
  v: T; // [nKv*d, H]
  o: T; // [H, nH*d]
  qBias: T | null;
  kBias: T | null;
  vBias: T | null;
  oBias: T | null;
}

export interface FeedForwardWeights<T> {
  norm: T; // post_attention_layernorm [H] (Bamba: pre_ff_layernorm)
  sharedIn: T | null; // [2S, H]: gate | up (Granite's fused input_linear)
  /** The SwiGLU gate and up projections as two tensors, [S, H] each (Bamba's gate_proj, up_proj); null with sharedIn. */
  sharedGate: T | null;
  sharedUp: T | null;
  sharedOut: T | null; // [H, S]
  router: T | null; // [E, H]
  expertsIn: T | null; // [E, 2I, H]
  expertsOut: T | null; // [E, H, I]
}

/** Nemotron-H's MLP block: down(relu(up x + upBias)^2) + downBias. */
export interface MlpWeights<T> {
  up: T; // [M, H]
  upBias: T | null; // [M]
  down: T; // [H, M]
  downBias: T | null; // [H]
}

/** RecurrentGemma's recurrent block (temporal_block of a 'rglru' layer). L = lru_width. */
export interface RglruWeights<T> {
  linearY: T; // [L, H]
  linearYBias: T; // [L]
  linearX: T; // [L, H]
  linearXBias: T; // [L]
  conv: T; // [L, 1, K]
  convBias: T; // [L]
  /** The gates, block-diagonal: heads x [bw, bw] as x @ W (input index first), biases [heads, bw]. */
  inputGate: T;
  inputGateBias: T;
  recurrentGate: T;
  recurrentGateBias: T;
  recurrentParam: T; // [L]: a = exp(-8 * sigmoid(gate) * softplus(param))
  linearOut: T; // [H, L]
  linearOutBias: T; // [H]
}

/** RecurrentGemma's MLP (mlp_block): down(gelu_tanh(gate x + b) * (up x + b)) + b, after channel_pre_norm. */
export interface GeluMlpWeights<T> {
  norm: T; // channel_pre_norm, (1 + weight) folded in
  gate: T; // [M, H]
  gateBias: T;
  up: T; // [M, H]
  upBias: T;
  down: T; // [H, M]
  downBias: T;
}

/** One of Zamba2's shared transformer blocks (Zamba2AttentionDecoderLayer), its weights loaded once for all its uses. */
export interface SharedBlockWeights<T> {
  inputNorm: T; // [2H]
  q: T; // [nH*d, 2H]
  k: T; // [nKv*d, 2H]
  v: T; // [nKv*d, 2H]
  o: T; // [H, nH*d]
  preFfNorm: T; // [H]
  gateUp: T; // [2F, H]: gate | up
  down: T; // [H, F]
}

/** A LoRA adapter x -> up(down x): down [r, K], up [N, r]. */
export interface AdapterWeights<T> {
  down: T;
  up: T;
}

/** A use of a shared block by a Zamba2 hybrid layer: the block, this use's adapters and the layer's own linear. */
export interface HybridWeights<T> {
  block: SharedBlockWeights<T>;
  blockIndex: number;
  /** This use's LoRA on q, k, v (use_shared_attention_adapter), else null. */
  qAdapter: AdapterWeights<T> | null;
  kAdapter: AdapterWeights<T> | null;
  vAdapter: AdapterWeights<T> | null;
  /** The gate_up LoRA of this use (Zamba2); null without (Zamba). */
  gateUpAdapter: AdapterWeights<T> | null;
  linear: T; // [H, H]
}

export interface LayerWeights<T> {
  kind: LayerKind;
  norm: T; // input_layernorm [H] (Nemotron-H, Mamba-2: the block's norm)
  mamba: MambaWeights<T> | null;
  mamba1: Mamba1Weights<T> | null;
  attention: AttentionWeights<T> | null;
  mlp: MlpWeights<T> | null;
  /** The feed-forward after the mixer (Granite, Bamba), or null (Mamba-2, Nemotron-H). */
  feedForward: FeedForwardWeights<T> | null;
  /** RecurrentGemma: the recurrent block ('rglru' layers) and the gelu MLP after every temporal block. */
  rglru?: RglruWeights<T> | null;
  geluMlp?: GeluMlpWeights<T> | null;
  /** Zamba2's hybrid layers: the shared block use that runs before the Mamba-2 decoder (kind 'hybrid'), else absent. */
  hybrid?: HybridWeights<T>;
}

export interface ModelWeights<T> {
  embed: T; // [V, H]
  layers: LayerWeights<T>[];
  finalNorm: T; // [H]
  lmHead: T; // [V, H] (the embedding itself when tied)
}

/**
 * What a tensor is, for quantization: the matrices of linear layers (`matrix`) and the embedding table (also the
 * tied lm_head, `embedding`) may be stored or loaded quantized; everything else (norms, conv, biases, the MoE
 * router, the SSM's per-head parameters) stays in floats.
 */
export type TensorRole = 'matrix' | 'embedding' | 'other';

export type TensorLoader<T> = (name: string, shape: number[], role: TensorRole) => T;

/**
 * Jamba checkpoints store each expert's projections on their own (feed_forward.experts.N.{gate,up,down}_proj);
 * the MoE reads them stacked, as transformers holds them: experts.gate_up_proj [E, 2I, H] (each expert's gate
 * rows, then its up rows) and experts.down_proj [E, H, I]. Registers those as virtual tensors of the store
 * (a checkpoint that already has them, one written quantized by Sidewinder, is left as it is).
 */
export function stackExperts(cfg: ModelConfig, store: { has(name: string): boolean; stack(name: string, parts: readonly string[], groups: number): void }): void {
  if (cfg.architecture !== 'jamba' || !cfg.feedForward || cfg.feedForward.numExperts === 0) return;
  const E = cfg.feedForward.numExperts;
  cfg.feedForward.expertLayers.forEach((moe, i) => {
    if (!moe) return;
    const f = `model.layers.${i}.feed_forward.experts`;
    const experts = Array.from({ length: E }, (_, e) => `${f}.${e}`);
    if (!store.has(`${f}.gate_up_proj`)) store.stack(`${f}.gate_up_proj`, experts.flatMap((x) => [`${x}.gate_proj.weight`, `${x}.up_proj.weight`]), E);
    if (!store.has(`${f}.down_proj`)) store.stack(`${f}.down_proj`, experts.map((x) => `${x}.down_proj.weight`), E);
  });
}

/** The virtual tensor name a Falcon-H1 projection is read under, its muP multipliers folded in (scaleFalconH1). */
const MUP = '.mup';

/**
 * Falcon-H1 multiplies projections' outputs by its muP multipliers; those are folded into the weights' rows
 * here, as virtual f32 tensors of the store named `<name minus .weight>.mup.weight` (see FalconH1Config),
 * so both backends and the quantizer read the same scaled matrices.
 */
export function scaleFalconH1(cfg: ModelConfig, store: { has(name: string): boolean; scaleRows(name: string, from: string, scales: Float32Array): void }): void {
  const f = cfg.falconH1;
  if (cfg.architecture !== 'falcon_h1' || !f) return;
  const m = cfg.mamba!;
  const a = cfg.attention!;
  const H = cfg.hiddenSize;
  const I = m.intermediate;
  const gN = m.nGroups * m.dState;
  const inScales = new Float32Array(m.inProjDim);
  const [mz, mx, mb, mc, mdt] = f.ssmMultipliers;
  for (let r = 0; r < m.inProjDim; r++) {
    const s = r < I ? mz : r < 2 * I ? mx : r < 2 * I + gN ? mb : r < 2 * I + 2 * gN ? mc : mdt;
    inScales[r] = s * f.ssmIn;
  }
  const fill = (n: number, v: number) => new Float32Array(n).fill(v);
  const S = cfg.feedForward!.sharedIntermediate;
  const qd = a.numHeads * a.headDim;
  const kd = a.numKvHeads * a.headDim;
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const all: [string, Float32Array][] = [
      [`${p}.mamba.in_proj`, inScales],
      [`${p}.mamba.out_proj`, fill(H, f.ssmOut)],
      [`${p}.self_attn.q_proj`, fill(qd, f.attnIn)],
      [`${p}.self_attn.k_proj`, fill(kd, f.attnIn * f.key)],
      [`${p}.self_attn.v_proj`, fill(kd, f.attnIn)],
      [`${p}.self_attn.o_proj`, fill(H, f.attnOut)],
      [`${p}.feed_forward.gate_proj`, fill(S, f.mlpGate)],
      [`${p}.feed_forward.down_proj`, fill(H, f.mlpDown)],
    ];
    for (const [base, scales] of all) {
      if (!store.has(`${base}${MUP}.weight`) && store.has(`${base}.weight`)) store.scaleRows(`${base}${MUP}.weight`, `${base}.weight`, scales);
    }
  }
}

/** The virtual tensor name a RecurrentGemma norm is read under, with (1 + weight) folded in. */
const PLUS1 = '.plus1';

/**
 * RecurrentGemma's RMSNorms scale by (1 + weight): registered as virtual f32 tensors `<name minus
 * .weight>.plus1.weight` holding 1 + weight, so every backend runs its plain RMSNorm on them.
 */
export function foldGemmaNorms(cfg: ModelConfig, store: { has(name: string): boolean; offsetValues(name: string, from: string, add: number): void }): void {
  if (cfg.architecture !== 'recurrent_gemma') return;
  const bases = ['model.final_norm'];
  for (let i = 0; i < cfg.numLayers; i++) bases.push(`model.layers.${i}.temporal_pre_norm`, `model.layers.${i}.channel_pre_norm`);
  for (const b of bases) if (!store.has(`${b}${PLUS1}.weight`) && store.has(`${b}.weight`)) store.offsetValues(`${b}${PLUS1}.weight`, `${b}.weight`, 1);
}

/** The virtual name of Zamba's in_proj read as x rows then z rows (zambaViews). */
const XZ = '.xz';

/**
 * Zamba's checkpoints, read as the engine's layouts through virtual tensors of the store: each mixer's in_proj
 * (rows interleaved per channel as x, z) as `in_proj.xz` (x rows, then z rows), its x_proj_weight [heads, R + 2N,
 * I/heads] and dt_proj_weight [heads, I/heads, R] as one tensor per head (`.h`), and the shared block's MLP
 * gate_proj and up_proj stacked as `feed_forward.gate_up_proj` [2F, H] (gate rows, then up rows).
 */
export function zambaViews(
  cfg: ModelConfig,
  store: { has(name: string): boolean; permuteRows(name: string, from: string, order: Uint32Array): void; sliceFirst(name: string, from: string, index: number): void; stack(name: string, parts: readonly string[], groups: number): void },
): void {
  if (cfg.architecture !== 'zamba') return;
  const m = cfg.mamba1!;
  const I = m.intermediate;
  const nh = m.numHeads ?? 1;
  const order = new Uint32Array(2 * I);
  for (let c = 0; c < I; c++) {
    order[c] = 2 * c;
    order[I + c] = 2 * c + 1;
  }
  cfg.layerKinds.forEach((kind, i) => {
    const p = kind === 'hybrid' ? `model.layers.${i}.mamba_decoder.mamba` : `model.layers.${i}.mamba`;
    for (const part of ['weight', 'bias']) {
      if (!store.has(`${p}.in_proj${XZ}.${part}`) && store.has(`${p}.in_proj.${part}`)) store.permuteRows(`${p}.in_proj${XZ}.${part}`, `${p}.in_proj.${part}`, order);
    }
    for (const w of ['x_proj_weight', 'dt_proj_weight']) {
      for (let h = 0; h < nh; h++) if (!store.has(`${p}.${w}.${h}`) && store.has(`${p}.${w}`)) store.sliceFirst(`${p}.${w}.${h}`, `${p}.${w}`, h);
    }
    const f = `model.layers.${i}.shared_transf.feed_forward`;
    if (kind === 'hybrid' && !store.has(`${f}.gate_up_proj.weight`) && store.has(`${f}.gate_proj.weight`)) {
      store.stack(`${f}.gate_up_proj.weight`, [`${f}.gate_proj.weight`, `${f}.up_proj.weight`], 1);
    }
  });
}

/** Walks the checkpoint's tensors for `cfg`, calling `load` once per tensor. */
export function loadWeights<T>(cfg: ModelConfig, store: { has(name: string): boolean; sameTensor?(a: string, b: string): boolean }, loadTensor: TensorLoader<T>): ModelWeights<T> {
  const load = (name: string, shape: number[], role: TensorRole = 'other') => loadTensor(name, shape, role);
  const H = cfg.hiddenSize;
  const arch = cfg.architecture;
  const opt = (name: string, shape: number[], role: TensorRole = 'other') => (store.has(name) ? load(name, shape, role) : null);

  const mambaAt = (p: string, mup = ''): MambaWeights<T> => {
    const m = cfg.mamba!;
    return {
    inProj: load(`${p}.in_proj${mup}.weight`, [m.inProjDim, H], 'matrix'),
    inProjBias: m.projBias ? load(`${p}.in_proj.bias`, [m.inProjDim]) : null,
    conv: load(`${p}.conv1d.weight`, [m.convDim, 1, m.dConv]),
    convBias: m.convBias ? load(`${p}.conv1d.bias`, [m.convDim]) : null,
    dtBias: load(`${p}.dt_bias`, [m.numHeads]),
    aLog: load(`${p}.A_log`, [m.numHeads]),
    D: load(`${p}.D`, [m.numHeads]),
    gatedNorm: cfg.falconH1 && !cfg.falconH1.gatedNorm ? null : load(`${p}.norm.weight`, [m.intermediate]),
    outProj: load(`${p}.out_proj${mup}.weight`, [H, m.intermediate], 'matrix'),
    outProjBias: m.projBias ? load(`${p}.out_proj.bias`, [H]) : null,
    };
  };

  const mamba1At = (p: string): Mamba1Weights<T> => {
    const m = cfg.mamba1!;
    const I = m.intermediate;
    return {
      inProj: load(`${p}.in_proj.weight`, [2 * I, H], 'matrix'),
      inProjBias: m.projBias ? load(`${p}.in_proj.bias`, [2 * I]) : null,
      conv: load(`${p}.conv1d.weight`, [I, 1, m.dConv]),
      convBias: m.convBias ? load(`${p}.conv1d.bias`, [I]) : null,
      xProj: load(`${p}.x_proj.weight`, [m.dtRank + 2 * m.dState, I], 'matrix'),
      // dt_proj's input is the narrow dt rank: kept in floats.
      dtProj: load(`${p}.dt_proj.weight`, [I, m.dtRank]),
      dtBias: load(`${p}.dt_proj.bias`, [I]),
      aLog: load(`${p}.A_log`, [I, m.dState]),
      D: load(`${p}.D`, [I]),
      outProj: load(`${p}.out_proj.weight`, [H, I], 'matrix'),
      outProjBias: m.projBias ? load(`${p}.out_proj.bias`, [H]) : null,
      dtNorm: m.innerNormWeights ? load(`${p}.dt_layernorm.weight`, [m.dtRank]) : null,
      bNorm: m.innerNormWeights ? load(`${p}.b_layernorm.weight`, [m.dState]) : null,
      cNorm: m.innerNormWeights ? load(`${p}.c_layernorm.weight`, [m.dState]) : null,
      perHead: null,
    };
  };

  // Zamba's multi-head Mamba-1: in_proj's rows as x | z, per-head x_proj / dt_proj (the views zambaViews made)
  const zambaMamba1At = (p: string): Mamba1Weights<T> => {
    const m = cfg.mamba1!;
    const I = m.intermediate;
    const nh = m.numHeads ?? 1;
    const hd = I / nh;
    const W = m.dtRank + 2 * m.dState;
    const xProj = Array.from({ length: nh }, (_, h) => load(`${p}.x_proj_weight.${h}`, [W, hd], 'matrix'));
    // (dt_proj's input is the narrow dt rank: kept in floats, as Mamba-1's)
    const dtProj = Array.from({ length: nh }, (_, h) => load(`${p}.dt_proj_weight.${h}`, [hd, m.dtRank]));
    return {
      inProj: load(`${p}.in_proj${XZ}.weight`, [2 * I, H], 'matrix'),
      inProjBias: m.projBias ? load(`${p}.in_proj${XZ}.bias`, [2 * I]) : null,
      conv: load(`${p}.conv1d.weight`, [I, 1, m.dConv]),
      convBias: m.convBias ? load(`${p}.conv1d.bias`, [I]) : null,
      xProj: xProj[0],
      dtProj: dtProj[0],
      dtBias: load(`${p}.dt_proj_bias`, [nh, hd]),
      aLog: load(`${p}.A_log`, [nh, hd, m.dState]),
      D: load(`${p}.D`, [nh, hd]),
      outProj: load(`${p}.out_proj.weight`, [H, I], 'matrix'),
      outProjBias: m.projBias ? load(`${p}.out_proj.bias`, [H]) : null,
      dtNorm: null,
      bNorm: null,
      cNorm: null,
      perHead: { xProj, dtProj },
    };
  };

  const attentionAt = (p: string): AttentionWeights<T> => {
    const a = cfg.attention!;
    const qd = a.numHeads * a.headDim;
    const kd = a.numKvHeads * a.headDim;
    const b = (n: string, d: number) => (a.bias ? load(`${p}.${n}.bias`, [d]) : null);
    return {
      q: load(`${p}.q_proj.weight`, [qd, H], 'matrix'),
      k: load(`${p}.k_proj.weight`, [kd, H], 'matrix'),
      v: load(`${p}.v_proj.weight`, [kd, H], 'matrix'),
      o: load(`${p}.o_proj.weight`, [H, qd], 'matrix'),
      qBias: b('q_proj', qd),
      kBias: b('k_proj', kd),
      vBias: b('v_proj', kd),
      oBias: b('o_proj', H),
    };
  };

  const none = { mamba: null, mamba1: null, attention: null, mlp: null, feedForward: null, rglru: null, geluMlp: null };
  let root: string;
  let layers: LayerWeights<T>[];
  let embedName: string;
  let finalNormName: string;
  if (arch === 'mamba' || arch === 'falcon_mamba') {
    // backbone.layers.N.{norm, mixer}, backbone.norm_f; lm_head tied to backbone.embeddings unless told otherwise
    embedName = 'backbone.embeddings.weight';
    finalNormName = 'backbone.norm_f.weight';
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `backbone.layers.${i}`;
      return { kind, norm: load(`${p}.norm.weight`, [H]), ...none, mamba1: mamba1At(`${p}.mixer`) };
    });
  } else if (arch === 'mamba2' || arch === 'nemotron_h') {
    // backbone.layers.N.{norm, mixer}; transformers 5.x loads Nemotron-H's backbone. as model. (and may save it so).
    root = arch === 'nemotron_h' && !store.has('backbone.embeddings.weight') && store.has('model.embeddings.weight') ? 'model' : 'backbone';
    embedName = `${root}.embeddings.weight`;
    finalNormName = `${root}.norm_f.weight`;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `${root}.layers.${i}`;
      const layer: LayerWeights<T> = { kind, norm: load(`${p}.norm.weight`, [H]), ...none };
      if (kind === 'mamba') layer.mamba = mambaAt(`${p}.mixer`);
      else if (kind === 'attention') layer.attention = attentionAt(`${p}.mixer`);
      else {
        const M = cfg.mlp!.intermediate;
        const bias = cfg.mlp!.bias;
        layer.mlp = {
          up: load(`${p}.mixer.up_proj.weight`, [M, H], 'matrix'),
          upBias: bias ? load(`${p}.mixer.up_proj.bias`, [M]) : null,
          down: load(`${p}.mixer.down_proj.weight`, [H, M], 'matrix'),
          downBias: bias ? load(`${p}.mixer.down_proj.bias`, [H]) : null,
        };
      }
      return layer;
    });
  } else if (arch === 'jamba') {
    // model.layers.N.{input_layernorm, mamba | self_attn, pre_ff_layernorm, feed_forward.{gate,up,down}_proj |
    // feed_forward.{router, experts.*}}; the experts stacked by stackExperts() when the folder was opened.
    embedName = 'model.embed_tokens.weight';
    finalNormName = 'model.final_layernorm.weight';
    const ff = cfg.feedForward!;
    const S = ff.sharedIntermediate;
    const E = ff.numExperts;
    const I = ff.expertIntermediate;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      const f = `${p}.feed_forward`;
      const moe = ff.expertLayers[i];
      return {
        kind,
        norm: load(`${p}.input_layernorm.weight`, [H]),
        ...none,
        mamba1: kind === 'mamba1' ? mamba1At(`${p}.mamba`) : null,
        attention: kind === 'attention' ? attentionAt(`${p}.self_attn`) : null,
        feedForward: {
          norm: load(`${p}.pre_ff_layernorm.weight`, [H]),
          sharedIn: null,
          sharedGate: moe ? null : load(`${f}.gate_proj.weight`, [S, H], 'matrix'),
          sharedUp: moe ? null : load(`${f}.up_proj.weight`, [S, H], 'matrix'),
          sharedOut: moe ? null : load(`${f}.down_proj.weight`, [H, S], 'matrix'),
          router: moe ? load(`${f}.router.weight`, [E, H]) : null,
          expertsIn: moe ? load(`${f}.experts.gate_up_proj`, [E, 2 * I, H], 'matrix') : null,
          expertsOut: moe ? load(`${f}.experts.down_proj`, [E, H, I], 'matrix') : null,
        },
      };
    });
  } else if (arch === 'falcon_h1') {
    // model.layers.N.{input_layernorm, mamba, self_attn, pre_ff_layernorm, feed_forward.{gate,up,down}_proj}, the
    // projections read as their muP-scaled virtual tensors (scaleFalconH1)
    embedName = 'model.embed_tokens.weight';
    finalNormName = 'model.final_layernorm.weight';
    const a = cfg.attention!;
    const S = cfg.feedForward!.sharedIntermediate;
    const qd = a.numHeads * a.headDim;
    const kd = a.numKvHeads * a.headDim;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      const mm = mambaAt(`${p}.mamba`, MUP);
      return {
        kind,
        norm: load(`${p}.input_layernorm.weight`, [H]),
        ...none,
        mamba: mm,
        attention: {
          q: load(`${p}.self_attn.q_proj${MUP}.weight`, [qd, H], 'matrix'),
          k: load(`${p}.self_attn.k_proj${MUP}.weight`, [kd, H], 'matrix'),
          v: load(`${p}.self_attn.v_proj${MUP}.weight`, [kd, H], 'matrix'),
          o: load(`${p}.self_attn.o_proj${MUP}.weight`, [H, qd], 'matrix'),
          qBias: null,
          kBias: null,
          vBias: null,
          oBias: null,
        },
        feedForward: {
          norm: load(`${p}.pre_ff_layernorm.weight`, [H]),
          sharedIn: null,
          sharedGate: load(`${p}.feed_forward.gate_proj${MUP}.weight`, [S, H], 'matrix'),
          sharedUp: load(`${p}.feed_forward.up_proj.weight`, [S, H], 'matrix'),
          sharedOut: load(`${p}.feed_forward.down_proj${MUP}.weight`, [H, S], 'matrix'),
          router: null,
          expertsIn: null,
          expertsOut: null,
        },
      };
    });
  } else if (arch === 'recurrent_gemma') {
    // model.layers.N.{temporal_pre_norm, temporal_block.{linear_x, linear_y, conv_1d, rg_lru.*, linear_out} |
    // temporal_block.{q,k,v,o}_proj, channel_pre_norm, mlp_block.{gate,up,down}_proj}, model.final_norm; norms
    // read as their (1 + weight) virtual tensors (foldGemmaNorms)
    embedName = 'model.embed_tokens.weight';
    finalNormName = `model.final_norm${PLUS1}.weight`;
    const g = cfg.griffin!;
    const L = g.lruWidth;
    const M = g.mlpIntermediate;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      const tb = `${p}.temporal_block`;
      const layer: LayerWeights<T> = { kind, norm: load(`${p}.temporal_pre_norm${PLUS1}.weight`, [H]), ...none };
      if (kind === 'local') {
        const at = attentionAt(tb);
        layer.attention = { ...at, oBias: load(`${tb}.o_proj.bias`, [H]) };
      } else {
        const r = `${tb}.rg_lru`;
        layer.rglru = {
          linearY: load(`${tb}.linear_y.weight`, [L, H], 'matrix'),
          linearYBias: load(`${tb}.linear_y.bias`, [L]),
          linearX: load(`${tb}.linear_x.weight`, [L, H], 'matrix'),
          linearXBias: load(`${tb}.linear_x.bias`, [L]),
          conv: load(`${tb}.conv_1d.weight`, [L, 1, g.convWidth]),
          convBias: load(`${tb}.conv_1d.bias`, [L]),
          inputGate: load(`${r}.input_gate_weight`, [g.numHeads, g.blockWidth, g.blockWidth]),
          inputGateBias: load(`${r}.input_gate_bias`, [g.numHeads, g.blockWidth]),
          recurrentGate: load(`${r}.recurrent_gate_weight`, [g.numHeads, g.blockWidth, g.blockWidth]),
          recurrentGateBias: load(`${r}.recurrent_gate_bias`, [g.numHeads, g.blockWidth]),
          recurrentParam: load(`${r}.recurrent_param`, [L]),
          linearOut: load(`${tb}.linear_out.weight`, [H, L], 'matrix'),
          linearOutBias: load(`${tb}.linear_out.bias`, [H]),
        };
      }
      const f = `${p}.mlp_block`;
      layer.geluMlp = {
        norm: load(`${p}.channel_pre_norm${PLUS1}.weight`, [H]),
        gate: load(`${f}.gate_proj.weight`, [M, H], 'matrix'),
        gateBias: load(`${f}.gate_proj.bias`, [M]),
        up: load(`${f}.up_proj.weight`, [M, H], 'matrix'),
        upBias: load(`${f}.up_proj.bias`, [M]),
        down: load(`${f}.down_proj.weight`, [H, M], 'matrix'),
        downBias: load(`${f}.down_proj.bias`, [H]),
      };
      return layer;
    });
  } else if (arch === 'zamba2' || arch === 'zamba') {
    // model.layers.N.{input_layernorm, mamba} (Mamba-2 layers); hybrid layers: model.layers.N.{linear,
    // mamba_decoder.{input_layernorm, mamba}, shared_transformer.*}. The shared blocks are stored under the first
    // num_mem_blocks hybrid layers (transformers ties the later ones to those), with every use's adapters.
    embedName = 'model.embed_tokens.weight';
    finalNormName = 'model.final_layernorm.weight';
    const z = cfg.zamba2;
    const a = cfg.attention;
    const H2 = 2 * H;
    const qd = a ? a.numHeads * a.headDim : 0;
    const kd = a ? a.numKvHeads * a.headDim : 0;
    const F = z?.intermediate ?? 0;
    const R = z?.adapterRank ?? 0;
    // transformers ties the later uses of a block to its first (model.layers.{first}.shared_transformer) only with
    // tie_word_embeddings; otherwise each hybrid layer keeps its own copy. A use reads its own layer's tensor where
    // the checkpoint has one that differs from the first use's, else the first use's (loaded once).
    const loaded = new Map<string, T>();
    const once = (name: string, shape: number[], role: TensorRole): T => {
      let t = loaded.get(name);
      if (t === undefined) loaded.set(name, (t = load(name, shape, role)));
      return t;
    };
    const pick = (own: string, owner: string, shape: number[], role: TensorRole = 'other'): T =>
      once(own !== owner && store.has(own) && !store.sameTensor?.(own, owner) ? own : owner, shape, role);
    // Zamba2's block is shared_transformer, Zamba's shared_transf (its MLP's gate_up stacked by zambaViews)
    const ST = arch === 'zamba' ? 'shared_transf' : 'shared_transformer';
    const blockFor = (layer: number, b: number): SharedBlockWeights<T> => {
      const own = `model.layers.${layer}.${ST}`;
      const owner = `model.layers.${z!.hybridLayers[b]}.${ST}`;
      const t = (n: string, shape: number[], role: TensorRole = 'other') => pick(`${own}.${n}`, `${owner}.${n}`, shape, role);
      return {
        inputNorm: t('input_layernorm.weight', [H2]),
        q: t('self_attn.q_proj.weight', [qd, H2], 'matrix'),
        k: t('self_attn.k_proj.weight', [kd, H2], 'matrix'),
        v: t('self_attn.v_proj.weight', [kd, H2], 'matrix'),
        o: t('self_attn.o_proj.weight', [H, qd], 'matrix'),
        preFfNorm: t('pre_ff_layernorm.weight', [H]),
        gateUp: t('feed_forward.gate_up_proj.weight', [2 * F, H], 'matrix'),
        down: t('feed_forward.down_proj.weight', [H, F], 'matrix'),
      };
    };
    let use = 0;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      const mixer = (q: string) => (arch === 'zamba' ? { mamba1: zambaMamba1At(q) } : { mamba: mambaAt(q) });
      if (kind !== 'hybrid') return { kind, norm: load(`${p}.input_layernorm.weight`, [H]), ...none, ...mixer(`${p}.mamba`) };
      const u = use++;
      const b = u % z!.numMemBlocks;
      const block = blockFor(i, b);
      const own = `${p}.${ST}`;
      const owner = `model.layers.${z!.hybridLayers[b]}.${ST}`;
      const adapter = (list: string, K: number, N: number): AdapterWeights<T> => ({
        down: pick(`${own}.${list}.${u}.0.weight`, `${owner}.${list}.${u}.0.weight`, [R, K], 'matrix'),
        up: pick(`${own}.${list}.${u}.1.weight`, `${owner}.${list}.${u}.1.weight`, [N, R], 'matrix'),
      });
      const att = z!.attentionAdapters;
      return {
        kind,
        norm: load(`${p}.mamba_decoder.input_layernorm.weight`, [H]),
        ...none,
        ...mixer(`${p}.mamba_decoder.mamba`),
        hybrid: {
          block,
          blockIndex: b,
          qAdapter: att ? adapter('self_attn.linear_q_adapter_list', H2, qd) : null,
          kAdapter: att ? adapter('self_attn.linear_k_adapter_list', H2, kd) : null,
          vAdapter: att ? adapter('self_attn.linear_v_adapter_list', H2, kd) : null,
          gateUpAdapter: arch === 'zamba2' ? adapter('feed_forward.gate_up_proj_adapter_list', H, 2 * F) : null,
          linear: load(`${p}.linear.weight`, [H, H], 'matrix'),
        },
      };
    });
  } else if (arch === 'bamba') {
    // model.layers.N.{input_layernorm, mamba | self_attn, pre_ff_layernorm, feed_forward.{gate,up,down}_proj}
    embedName = 'model.embed_tokens.weight';
    finalNormName = 'model.final_layernorm.weight';
    const S = cfg.feedForward!.sharedIntermediate;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      return {
        kind,
        norm: load(`${p}.input_layernorm.weight`, [H]),
        ...none,
        mamba: kind === 'mamba' ? mambaAt(`${p}.mamba`) : null,
        attention: kind === 'attention' ? attentionAt(`${p}.self_attn`) : null,
        feedForward: {
          norm: load(`${p}.pre_ff_layernorm.weight`, [H]),
          sharedIn: null,
          sharedGate: load(`${p}.feed_forward.gate_proj.weight`, [S, H], 'matrix'),
          sharedUp: load(`${p}.feed_forward.up_proj.weight`, [S, H], 'matrix'),
          sharedOut: load(`${p}.feed_forward.down_proj.weight`, [H, S], 'matrix'),
          router: null,
          expertsIn: null,
          expertsOut: null,
        },
      };
    });
  } else {
    embedName = 'model.embed_tokens.weight';
    finalNormName = 'model.norm.weight';
    const ff = cfg.feedForward!;
    const S = ff.sharedIntermediate;
    const E = ff.numExperts;
    const I = ff.expertIntermediate;
    layers = cfg.layerKinds.map((kind, i) => {
      const p = `model.layers.${i}`;
      const attention = kind === 'attention' ? attentionAt(`${p}.self_attn`) : null; // (loaded first, as before)
      return {
        kind,
        norm: load(`${p}.input_layernorm.weight`, [H]),
        ...none,
        mamba: kind === 'mamba' ? mambaAt(`${p}.mamba`) : null,
        attention,
        feedForward: {
          norm: load(`${p}.post_attention_layernorm.weight`, [H]),
          sharedIn: S > 0 ? load(`${p}.shared_mlp.input_linear.weight`, [2 * S, H], 'matrix') : null,
          sharedGate: null,
          sharedUp: null,
          sharedOut: S > 0 ? load(`${p}.shared_mlp.output_linear.weight`, [H, S], 'matrix') : null,
          router: E > 0 ? load(`${p}.block_sparse_moe.router.layer.weight`, [E, H]) : null,
          expertsIn: E > 0 ? load(`${p}.block_sparse_moe.input_linear.weight`, [E, 2 * I, H], 'matrix') : null,
          expertsOut: E > 0 ? load(`${p}.block_sparse_moe.output_linear.weight`, [E, H, I], 'matrix') : null,
        },
      };
    });
  }

  const embed = load(embedName, [cfg.vocabSize, H], 'embedding');
  let lmHead: T;
  if (cfg.tieWordEmbeddings) lmHead = embed;
  else {
    const head = opt('lm_head.weight', [cfg.vocabSize, H], 'embedding');
    if (head === null) {
      throw new ModelFormatError(
        arch === 'nemotron_h'
          ? 'the checkpoint has no lm_head.weight, which NemotronHForCausalLM always has (it ties nothing).'
          : 'config.json says tie_word_embeddings is false, but the checkpoint has no lm_head.weight.',
      );
    }
    lmHead = head;
  }
  return { embed, layers, finalNorm: load(finalNormName, [H]), lmHead };
}
