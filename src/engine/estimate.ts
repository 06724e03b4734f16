// What a model costs before it is loaded (issue 18): from a validated ModelConfig alone, the parameter count,
// the weight bytes in each load format, the recurrent state per sequence and the KV bytes per token, for
// `sidewinder info` and for checking the engine against published configs (test/data/configs/expected.json).
//
// The parameters are the tensors the engine's loader reads (models/weights.ts loadWeights), walked against a
// store that has no tensors: every shared tensor is then read under its owner's name, so tied embeddings count
// once, a Zamba / Zamba2 shared block once (plus every use's LoRA adapters, each its own tensor; untied
// checkpoints store a copy of the block per use, and those are counted per use), every MoE expert. The loader's virtual tensors (Jamba's stacked experts, Falcon-H1's muP-scaled projections,
// RecurrentGemma's (1 + w) norms, Zamba's in_proj / per-head views) have the element counts of the stored ones.
// Weight bytes follow the load formats (quantLoad.ts): bf16 stores 2 bytes a weight; q8 quantizes every matrix
// of a linear layer and the embedding (the tied lm_head with it), q4 the matrices in q4 and the embedding in q8,
// both in groups of 32 with an f16 scale (quant.ts quantizedBytes); the other tensors (norms, conv, biases, the
// router, the SSM's parameters) stay as stored, counted here as bf16.
// The state is what both backends allocate per sequence, in f32: a Mamba-2 layer's conv state [convDim, K-1]
// and SSM state [heads, headDim, N], a Mamba-1 layer's [I, K-1] and [I, N], an RG-LRU layer's [lru, W-1] and
// [lru]. The KV is f32 K and V per attention layer (Falcon-H1's parallel layers, each Zamba hybrid use: its
// own cache); RecurrentGemma's local attention keeps a ring of attention_window_size positions, so its KV stops
// growing there (kvWindowTokens).

import type { LayerKind, ModelConfig } from './config';
import { loadWeights, type TensorRole } from './models/weights';
import { quantizedBytes } from './quant';

export interface ModelEstimate {
  readonly architecture: ModelConfig['architecture'];
  readonly numLayers: number;
  /** How many layers of each kind (only the kinds present). */
  readonly layersByKind: Readonly<Partial<Record<LayerKind, number>>>;
  /** Layers with an attention (a KV cache or a local ring): attention, parallel, hybrid, local. */
  readonly attentionLayers: number;
  /** Layers with a recurrent state: mamba, mamba1, parallel, hybrid, rglru. */
  readonly recurrentLayers: number;
  /** Every weight the engine loads, counted as the checkpoint stores it. */
  readonly params: number;
  /** Parameters run per token (the MoE's top-k experts instead of all); equal to params without experts. */
  readonly activeParams: number;
  /** How many distinct tensors are loaded. */
  readonly tensors: number;
  /** The weights' bytes as loaded: bf16 (as published), q8 and q4 (quantLoad.ts), f32 (the CPU reference). */
  readonly weightBytes: { readonly bf16: number; readonly q8: number; readonly q4: number; readonly f32: number };
  /** Recurrent (conv + SSM / LRU) state bytes per sequence, f32; constant in the context length. */
  readonly stateBytes: number;
  /** f32 K and V bytes per token, summed over the attention layers (or uses). */
  readonly kvBytesPerToken: number;
  /** Local attention: the KV stops growing at this many tokens (attention_window_size); null: it grows with the context. */
  readonly kvWindowTokens: number | null;
  /** kvBytesPerToken x kvWindowTokens when bounded; null otherwise. */
  readonly kvMaxBytes: number | null;
}

const ATTENTION_KINDS: readonly LayerKind[] = ['attention', 'parallel', 'hybrid', 'local'];
const RECURRENT_KINDS: readonly LayerKind[] = ['mamba', 'mamba1', 'parallel', 'hybrid', 'rglru'];

/** A tensor the loader reads: its name, logical shape and role. */
export interface LoadedTensorShape {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: TensorRole;
}

/**
 * The tensors the engine loads for `cfg` (each once), as loadWeights asks for them from a checkpoint that stores
 * nothing twice: tied weights under their owner's name, lm_head only when the config does not tie it.
 */
export function loadedTensors(cfg: ModelConfig): LoadedTensorShape[] {
  const out = new Map<string, LoadedTensorShape>();
  // Zamba / Zamba2: transformers ties a shared block's later uses to its first only with tie_word_embeddings;
  // untied, every hybrid layer stores its own copy (shared_transformer / shared_transf), which the loader reads.
  const perUseBlocks = (cfg.architecture === 'zamba' || cfg.architecture === 'zamba2') && !cfg.tieWordEmbeddings;
  const store = { has: (name: string) => !cfg.tieWordEmbeddings && (name === 'lm_head.weight' || (perUseBlocks && name.includes('.shared_transf'))) };
  loadWeights(cfg, store, (name, shape, role) => {
    if (!out.has(name)) out.set(name, { name, shape: [...shape], role });
    return name;
  });
  return [...out.values()];
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** The bytes one tensor takes under a format (quantLoad.ts quantBitsFor and QuantizedLoader.load). */
function tensorBytes(t: LoadedTensorShape, format: 'bf16' | 'q8' | 'q4' | 'f32'): number {
  const n = numel(t.shape);
  if (format === 'f32') return 4 * n;
  if (format === 'bf16' || t.role === 'other' || t.shape.length < 2) return 2 * n;
  const K = t.shape[t.shape.length - 1];
  const bits = format === 'q8' || t.role === 'embedding' ? 8 : 4;
  return quantizedBytes(bits, n / K, K);
}

/** The recurrent state bytes (f32) one layer of `kind` keeps per sequence, as CpuModel.reset() allocates it. */
function layerStateBytes(cfg: ModelConfig, kind: LayerKind): number {
  const m = cfg.mamba;
  const m1 = cfg.mamba1;
  const g = cfg.griffin;
  if (kind === 'mamba' || kind === 'parallel' || (kind === 'hybrid' && m)) return 4 * (m!.convDim * (m!.dConv - 1) + m!.numHeads * m!.headDim * m!.dState);
  if (kind === 'mamba1' || kind === 'hybrid') return 4 * (m1!.intermediate * (m1!.dConv - 1) + m1!.intermediate * m1!.dState);
  if (kind === 'rglru') return 4 * (g!.lruWidth * (g!.convWidth - 1) + g!.lruWidth);
  return 0;
}

/** Parameter count, weight bytes per format, state and KV bytes of a validated config (see the file's head). */
export function estimateModel(cfg: ModelConfig): ModelEstimate {
  const tensors = loadedTensors(cfg);
  let params = 0;
  const weightBytes = { bf16: 0, q8: 0, q4: 0, f32: 0 };
  for (const t of tensors) {
    params += numel(t.shape);
    for (const f of ['bf16', 'q8', 'q4', 'f32'] as const) weightBytes[f] += tensorBytes(t, f);
  }
  const layersByKind: Partial<Record<LayerKind, number>> = {};
  let stateBytes = 0;
  let kvBytesPerToken = 0;
  const a = cfg.attention;
  const kvPerLayer = a ? 2 * a.numKvHeads * a.headDim * 4 : 0;
  for (const k of cfg.layerKinds) {
    layersByKind[k] = (layersByKind[k] ?? 0) + 1;
    stateBytes += layerStateBytes(cfg, k);
    if (ATTENTION_KINDS.includes(k)) kvBytesPerToken += kvPerLayer;
  }
  const count = (kinds: readonly LayerKind[]) => cfg.layerKinds.filter((k) => kinds.includes(k)).length;
  // MoE: the experts not routed to are idle for a token (stacked tensors [E, ...] of the expert layers)
  let activeParams = params;
  const ff = cfg.feedForward;
  if (ff && ff.numExperts > 0) {
    const perExpert = (2 * ff.expertIntermediate * cfg.hiddenSize + cfg.hiddenSize * ff.expertIntermediate);
    const moeLayers = ff.expertLayers.filter((x) => x).length;
    activeParams -= moeLayers * (ff.numExperts - Math.min(ff.topK, ff.numExperts)) * perExpert;
  }
  const bounded = cfg.griffin && cfg.layerKinds.includes('local') ? cfg.griffin.window : null;
  return {
    architecture: cfg.architecture,
    numLayers: cfg.numLayers,
    layersByKind,
    attentionLayers: count(ATTENTION_KINDS),
    recurrentLayers: count(RECURRENT_KINDS),
    params,
    activeParams,
    tensors: tensors.length,
    weightBytes,
    stateBytes,
    kvBytesPerToken,
    kvWindowTokens: bounded,
    kvMaxBytes: bounded === null ? null : bounded * kvBytesPerToken,
  };
}
