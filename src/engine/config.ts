// Model configuration: parsed once from a Hugging Face config.json into one frozen, validated object that
// the rest of the engine reads. Two architectures: `granitemoehybrid` (IBM Granite 4.0-H: Mamba-2 layers
// and a few attention layers, dense or MoE feed-forward) and `mamba2` (Mamba-2 only, no feed-forward).

import { UnsupportedModelError } from './errors';

export type Architecture = 'granitemoehybrid' | 'mamba2';
export type LayerKind = 'mamba' | 'attention';

export interface MambaConfig {
  readonly numHeads: number; // nh: SSM heads
  readonly headDim: number; // hd: channels per head
  readonly dState: number; // N: state size per group
  readonly nGroups: number; // ng: B/C groups (heads share B, C within a group)
  readonly dConv: number; // K: causal conv kernel width
  readonly chunkSize: number; // SSD chunk length used by the prefill scan
  readonly intermediate: number; // I = nh * hd
  readonly convDim: number; // I + 2 * ng * N: channels that go through the conv (x, B, C)
  readonly inProjDim: number; // I (gate z) + convDim + nh (dt)
  readonly convBias: boolean;
  readonly projBias: boolean;
  readonly timeStepMin: number; // dt is clamped to [timeStepMin, timeStepMax] after softplus
  readonly timeStepMax: number;
  /** Gated RMSNorm statistics are taken over groups of this many channels (I for one group). */
  readonly normGroupSize: number;
}

export interface AttentionConfig {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly scaling: number; // multiplies q.k (Granite: attention_multiplier instead of 1/sqrt(d))
  readonly bias: boolean;
  readonly ropeTheta: number | null; // null: no positional encoding (Granite 4.0-H)
}

export interface FeedForwardConfig {
  readonly sharedIntermediate: number; // shared SwiGLU MLP width (0: none)
  readonly numExperts: number; // 0: dense
  readonly topK: number;
  readonly expertIntermediate: number;
}

export interface ModelConfig {
  readonly architecture: Architecture;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly layerKinds: readonly LayerKind[];
  readonly rmsNormEps: number;
  readonly embeddingMultiplier: number;
  readonly residualMultiplier: number;
  readonly logitsScaling: number; // logits are divided by this
  readonly tieWordEmbeddings: boolean;
  readonly mamba: MambaConfig;
  readonly attention: AttentionConfig | null; // null when no layer is attention
  readonly feedForward: FeedForwardConfig | null; // null for mamba2
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

type Json = Record<string, unknown>;

function num(raw: Json, key: string, fallback?: number): number {
  let v = raw[key];
  // transformers 5.x writes non-finite floats as {"__float__": "Infinity"}.
  if (v && typeof v === 'object' && '__float__' in v) v = (v as { __float__: unknown }).__float__;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new UnsupportedModelError(`config.json: "${key}" is missing; it is required for this architecture.`);
  }
  // JSON written by Python may hold Infinity (json.dumps allows it); it arrives as a string after our
  // tolerant parse, or as a number.
  if (v === 'Infinity' || v === 'inf') return Infinity;
  if (v === '-Infinity' || v === '-inf') return -Infinity;
  if (typeof v !== 'number' || Number.isNaN(v)) {
    throw new UnsupportedModelError(`config.json: "${key}" must be a number, got ${JSON.stringify(v)}.`);
  }
  return v;
}

function int(raw: Json, key: string, fallback?: number): number {
  const v = num(raw, key, fallback);
  if (!Number.isInteger(v) || v < 0) {
    throw new UnsupportedModelError(`config.json: "${key}" must be a non-negative integer, got ${v}.`);
  }
  return v;
}

function bool(raw: Json, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new UnsupportedModelError(`config.json: "${key}" must be true or false.`);
  return v;
}

function tokenIds(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'number') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  throw new UnsupportedModelError(`config.json: token id ${JSON.stringify(v)} must be a number or a list of numbers.`);
}

function timeStepLimit(raw: Json): [number, number] {
  const v = raw['time_step_limit'];
  if (v === undefined || v === null) return [0, Infinity];
  if (!Array.isArray(v) || v.length !== 2) {
    throw new UnsupportedModelError('config.json: "time_step_limit" must be a pair [min, max].');
  }
  return [num({ a: v[0] }, 'a'), num({ b: v[1] }, 'b')];
}

/** Parses config.json text, accepting the non-standard Infinity/NaN literals Python's json writes. */
export function parseConfigJson(text: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    try {
      // Quote bare Infinity / -Infinity / NaN outside strings, then parse again.
      parsed = JSON.parse(text.replace(/("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)/g, (m, s) => (s ? s : `"${m}"`)));
    } catch (e) {
      throw new UnsupportedModelError(`config.json is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UnsupportedModelError('config.json must hold a JSON object.');
  }
  return parsed as Json;
}

function layerKindsFrom(raw: Json, numLayers: number): LayerKind[] {
  const v = raw['layer_types'] ?? raw['layers_block_type'];
  if (v === undefined || v === null) {
    // transformers 4.x Granite configs may give attention layer indices instead.
    const idx = raw['attn_layer_indices'];
    if (Array.isArray(idx)) {
      return Array.from({ length: numLayers }, (_, i) => (idx.includes(i) ? 'attention' : 'mamba'));
    }
    throw new UnsupportedModelError('config.json: "layer_types" is missing; it must list each layer as mamba or attention.');
  }
  if (!Array.isArray(v) || v.length !== numLayers) {
    throw new UnsupportedModelError(
      `config.json: "layer_types" must list exactly num_hidden_layers (${numLayers}) entries.`,
    );
  }
  return v.map((t, i) => {
    if (t === 'mamba' || t === 'linear_attention') return 'mamba';
    if (t === 'attention' || t === 'full_attention') return 'attention';
    throw new UnsupportedModelError(
      `config.json: layer ${i} has type ${JSON.stringify(t)}; expected "mamba"/"linear_attention" or "attention"/"full_attention".`,
    );
  });
}

function ropeTheta(raw: Json): number | null {
  const pe = raw['position_embedding_type'];
  if (pe === undefined || pe === null || pe === 'nope' || pe === 'none') return null;
  if (pe !== 'rope') {
    throw new UnsupportedModelError(`config.json: position_embedding_type ${JSON.stringify(pe)} is not supported (use "rope" or "nope").`);
  }
  const params = raw['rope_parameters'] as Json | undefined;
  if (params && typeof params === 'object') {
    const type = params['rope_type'] ?? 'default';
    if (type !== 'default') throw new UnsupportedModelError(`config.json: rope_type ${JSON.stringify(type)} is not supported.`);
    if (params['rope_theta'] !== undefined) return num(params, 'rope_theta');
  }
  const scaling = raw['rope_scaling'];
  if (scaling !== undefined && scaling !== null) {
    throw new UnsupportedModelError('config.json: rope_scaling is not supported.');
  }
  return num(raw, 'rope_theta', 10000);
}

function checkMamba(m: MambaConfig): void {
  if (m.numHeads % m.nGroups !== 0) {
    throw new UnsupportedModelError(`mamba heads (${m.numHeads}) must be a multiple of n_groups (${m.nGroups}).`);
  }
  if (m.dConv < 1 || m.dConv > 8) throw new UnsupportedModelError(`conv kernel width ${m.dConv} is not supported (1..8).`);
  if (m.intermediate % m.normGroupSize !== 0) throw new UnsupportedModelError('gated norm group size must divide the intermediate size.');
}

/** The config.json keys of the Mamba-2 settings, which each architecture names its own way. */
interface MambaKeys {
  expand: string;
  heads: string;
  headDim: string;
  groups: string;
  state: string;
  conv: string;
  chunk: string;
  convBias: string;
  projBias: string;
}

function mambaFrom(raw: Json, hiddenSize: number, k: MambaKeys): MambaConfig {
  const intermediate = Math.round(num(raw, k.expand, 2) * hiddenSize);
  const numHeads = int(raw, k.heads, 128);
  const headDim = int(raw, k.headDim, Math.floor(intermediate / numHeads));
  if (numHeads * headDim !== intermediate) {
    throw new UnsupportedModelError(
      `${k.heads} (${numHeads}) x ${k.headDim} (${headDim}) must equal ${k.expand} x hidden_size (${intermediate}).`,
    );
  }
  const nGroups = int(raw, k.groups, 1);
  const dState = int(raw, k.state, 128);
  const [tMin, tMax] = timeStepLimit(raw);
  const mamba: MambaConfig = {
    numHeads,
    headDim,
    dState,
    nGroups,
    dConv: int(raw, k.conv, 4),
    chunkSize: int(raw, k.chunk, 256),
    intermediate,
    convDim: intermediate + 2 * nGroups * dState,
    inProjDim: 2 * intermediate + 2 * nGroups * dState + numHeads,
    convBias: bool(raw, k.convBias, true),
    projBias: bool(raw, k.projBias, false),
    timeStepMin: tMin,
    timeStepMax: tMax,
    // transformers 5.17's gated RMSNorm (GraniteMoeHybridRMSNormGated, MambaRMSNormGated) normalises over the
    // whole intermediate dimension; the mamba_ssm kernels use groups of intermediate / n_groups, and the two
    // agree for n_groups = 1 (every Granite 4.0-H model).
    normGroupSize: intermediate,
  };
  checkMamba(mamba);
  return mamba;
}

function granite(raw: Json): ModelConfig {
  const hiddenSize = int(raw, 'hidden_size');
  const numLayers = int(raw, 'num_hidden_layers');
  const layerKinds = layerKindsFrom(raw, numLayers);
  const mamba = mambaFrom(raw, hiddenSize, {
    expand: 'mamba_expand',
    heads: 'mamba_n_heads',
    headDim: 'mamba_d_head',
    groups: 'mamba_n_groups',
    state: 'mamba_d_state',
    conv: 'mamba_d_conv',
    chunk: 'mamba_chunk_size',
    convBias: 'mamba_conv_bias',
    projBias: 'mamba_proj_bias',
  });
  const hasAttention = layerKinds.includes('attention');
  const numAttnHeads = int(raw, 'num_attention_heads', 32);
  const numKvHeads = int(raw, 'num_key_value_heads', numAttnHeads);
  const attnHeadDim = int(raw, 'head_dim', Math.floor(hiddenSize / Math.max(1, numAttnHeads)));
  if (hasAttention && numAttnHeads % Math.max(1, numKvHeads) !== 0) {
    throw new UnsupportedModelError(`num_attention_heads (${numAttnHeads}) must be a multiple of num_key_value_heads (${numKvHeads}).`);
  }
  const attention: AttentionConfig | null = hasAttention
    ? {
        numHeads: numAttnHeads,
        numKvHeads,
        headDim: attnHeadDim,
        scaling: num(raw, 'attention_multiplier', 1 / Math.sqrt(attnHeadDim)),
        bias: bool(raw, 'attention_bias', false),
        ropeTheta: ropeTheta(raw),
      }
    : null;
  if (raw['hidden_act'] !== undefined && raw['hidden_act'] !== 'silu') {
    throw new UnsupportedModelError(`hidden_act ${JSON.stringify(raw['hidden_act'])} is not supported (silu only).`);
  }
  const numExperts = int(raw, 'num_local_experts', 0);
  return {
    architecture: 'granitemoehybrid',
    vocabSize: int(raw, 'vocab_size'),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-6),
    embeddingMultiplier: num(raw, 'embedding_multiplier', 1),
    residualMultiplier: num(raw, 'residual_multiplier', 1),
    logitsScaling: num(raw, 'logits_scaling', 1),
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', true),
    mamba,
    attention,
    feedForward: {
      sharedIntermediate: int(raw, 'shared_intermediate_size', 0),
      numExperts,
      topK: numExperts > 0 ? int(raw, 'num_experts_per_tok', 2) : 0,
      expertIntermediate: numExperts > 0 ? int(raw, 'intermediate_size') : 0,
    },
    bosTokenId: raw['bos_token_id'] == null ? null : int(raw, 'bos_token_id'),
    eosTokenIds: tokenIds(raw['eos_token_id']),
    padTokenId: raw['pad_token_id'] == null ? null : int(raw, 'pad_token_id'),
  };
}

function mamba2(raw: Json): ModelConfig {
  const hiddenSize = int(raw, 'hidden_size');
  const numLayers = int(raw, 'num_hidden_layers');
  if (raw['rms_norm'] === false) throw new UnsupportedModelError('mamba2 with rms_norm=false is not supported.');
  const mamba = mambaFrom(raw, hiddenSize, {
    expand: 'expand',
    heads: 'num_heads',
    headDim: 'head_dim',
    groups: 'n_groups',
    state: 'state_size',
    conv: 'conv_kernel',
    chunk: 'chunk_size',
    convBias: 'use_conv_bias',
    projBias: 'use_bias',
  });
  return {
    architecture: 'mamba2',
    vocabSize: int(raw, 'vocab_size'),
    hiddenSize,
    numLayers,
    layerKinds: Array.from({ length: numLayers }, () => 'mamba' as const),
    rmsNormEps: num(raw, 'layer_norm_epsilon', 1e-5),
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    mamba,
    attention: null,
    feedForward: null,
    bosTokenId: raw['bos_token_id'] == null ? null : int(raw, 'bos_token_id'),
    eosTokenIds: tokenIds(raw['eos_token_id']),
    padTokenId: raw['pad_token_id'] == null ? null : int(raw, 'pad_token_id'),
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Builds the validated config from config.json's parsed contents. */
export function configFromJson(raw: Json): ModelConfig {
  const mt = raw['model_type'];
  const archs = Array.isArray(raw['architectures']) ? (raw['architectures'] as unknown[]) : [];
  let cfg: ModelConfig;
  if (mt === 'granitemoehybrid' || archs.includes('GraniteMoeHybridForCausalLM')) cfg = granite(raw);
  else if (mt === 'mamba2' || archs.includes('Mamba2ForCausalLM')) cfg = mamba2(raw);
  else {
    throw new UnsupportedModelError(
      `model_type ${JSON.stringify(mt)} is not supported; Sidewinder runs "granitemoehybrid" (IBM Granite 4.0-H) and "mamba2" checkpoints.`,
    );
  }
  if (cfg.hiddenSize === 0 || cfg.vocabSize === 0 || cfg.numLayers === 0) {
    throw new UnsupportedModelError('config.json: hidden_size, vocab_size and num_hidden_layers must be positive.');
  }
  return deepFreeze(cfg);
}
