// Model configuration: parsed once from a Hugging Face config.json into one frozen, validated object that
// the rest of the engine reads. Six architectures: `granitemoehybrid` (IBM Granite 4.0-H: Mamba-2 layers
// and a few attention layers, dense or MoE feed-forward), `mamba2` (Mamba-2 only, no feed-forward), `bamba`
// (Mamba-2 and attention layers, each followed by a SwiGLU feed-forward; partial RoPE) and `nemotron_h`
// (a pattern of single-mixer blocks: Mamba-2, attention without positional encoding, or a squared-ReLU MLP),
// `mamba` / `falcon_mamba` (Mamba-1 layers only; Falcon-Mamba adds weightless norms inside the mixer) and
// `jamba` (AI21 Jamba: Mamba-1 layers with weighted dt/B/C norms and a few attention layers, each followed by
// a dense SwiGLU or an MoE feed-forward), `falcon_h1` (TII Falcon-H1: attention and a Mamba-2 mixer in parallel
// in every layer, a SwiGLU feed-forward, muP multipliers folded into the weights), `zamba2` (Zyphra Zamba2: Mamba-2
// layers, some of them 'hybrid': one of num_mem_blocks shared transformer blocks runs first on
// concat(hidden, embeddings), with per-use LoRA adapters and its own KV per insertion point) and `zamba` (Zyphra
// Zamba: the same shared-block path, one block without adapters, over a multi-head Mamba-1).
//
// The parse is strict: model_type (with architectures, when given) selects the implementation and anything
// else is refused (UnknownModelTypeError); for a known type, every setting that changes the computation must
// hold a value the engine implements, or it is refused by name (UnsupportedConfigValueError). Keys that are
// absent take transformers' defaults for that config class; keys that only matter for training (dropout,
// initialisation, router loss) or for other runtimes (dtype, use_cache) are ignored.

import { UnknownModelTypeError, UnsupportedConfigValueError, UnsupportedModelError } from './errors';

export type Architecture = 'granitemoehybrid' | 'mamba2' | 'bamba' | 'nemotron_h' | 'mamba' | 'falcon_mamba' | 'jamba' | 'falcon_h1' | 'zamba2' | 'zamba' | 'recurrent_gemma';
/**
 * What a layer's mixer is: a Mamba-2 mixer (recurrent state), attention (KV cache), or an MLP block (no state:
 * Nemotron-H's `-`, up -> relu^2 -> down). Whether a feed-forward follows the mixer is the layer's own
 * (LayerWeights.feedForward). 'parallel': Falcon-H1 (Mamba-2 and attention on one input); 'hybrid': a Zamba2 / Zamba
 * hybrid layer (a use of a shared transformer block, with its own KV, then a Mamba-2 (Zamba: Mamba-1) decoder; see
 * Zamba2Config).
 */
export type LayerKind = 'mamba' | 'mamba1' | 'attention' | 'mlp' | 'parallel' | 'hybrid' | 'rglru' | 'local';

/**
 * RecurrentGemma (Griffin): layers of kind 'rglru' (the recurrent block: linear_y -> gelu, linear_x -> temporal
 * conv (width convWidth, bias, no activation) -> RG-LRU, their product through linear_out) and 'local' (local
 * attention over the last `window` positions: MQA, partial RoPE, o_proj with a bias), each followed by the
 * gelu-tanh gated MLP with biases (mlpIntermediate = intermediate_size / 2). The local attention layers keep K/V
 * for `window` positions only (a ring), which is their whole state: bounded like the recurrent layers'.
 */
export interface GriffinConfig {
  readonly lruWidth: number;
  readonly numHeads: number; // RG-LRU gate blocks (num_attention_heads)
  readonly blockWidth: number; // lruWidth / numHeads
  readonly convWidth: number;
  readonly window: number; // attention_window_size
  readonly mlpIntermediate: number;
  /** logits = tanh(logits / cap) * cap; 0: none. */
  readonly logitsSoftCap: number;
}

/**
 * Zamba2's shared transformer blocks (Zamba2HybridLayer): the k-th hybrid layer (in layer order) uses block
 * k % numMemBlocks on x2 = concat(h, embeddings) [2H]: input_layernorm (2H) -> attention (q/k/v 2H -> heads x
 * 2H/heads, each + its LoRA for use k when attentionAdapters, RoPE when ropeTheta, scaling (d/2)^-0.5, the KV
 * of this use) -> o_proj (H) -> pre_ff_layernorm -> MLP act(gate) * up with gate_up + its LoRA for use k ->
 * down; then the layer's own linear (H -> H), added to h as the input of the layer's Mamba-2 decoder only
 * (h + mamba(norm(h + t))). No residual inside the block.
 */
export interface Zamba2Config {
  readonly numMemBlocks: number;
  /** The layer index of each hybrid use, in order (hybrid_layer_ids). */
  readonly hybridLayers: readonly number[];
  readonly adapterRank: number;
  /** use_shared_attention_adapter: LoRA adapters on q, k and v too (the MLP's gate_up always has one). */
  readonly attentionAdapters: boolean;
  /** The MLP's F (gate_up_proj is [2F, H], down_proj [H, F]). */
  readonly intermediate: number;
  /** hidden_act of the MLP gate: 'gelu' (exact, erf) or 'silu'. */
  readonly activation: 'gelu' | 'silu';
}

/**
 * Falcon-H1's muP multipliers (every layer kind 'parallel': attention and a Mamba-2 mixer on the same normed
 * input, both added to the residual). The loader folds them into the projections' rows (WeightStore.scaleRows):
 * in_proj by ssmIn x the mup vector's five sections (z | x | B | C | dt), out_proj by ssmOut, q and v by attnIn,
 * k by attnIn x key, o_proj by attnOut, gate_proj by mlpGate, down_proj by mlpDown.
 */
export interface FalconH1Config {
  readonly ssmIn: number;
  readonly ssmOut: number;
  readonly ssmMultipliers: readonly number[]; // z, x, B, C, dt
  readonly attnIn: number;
  readonly attnOut: number;
  readonly key: number;
  readonly mlpGate: number;
  readonly mlpDown: number;
  /** mamba_rms_norm: the gated RMSNorm (gate first) after the scan; false: y * silu(z) alone. */
  readonly gatedNorm: boolean;
}

/** A Mamba-1 mixer (MambaMixer / FalconMambaMixer; layer kind 'mamba1'): a state per channel and state entry. */
export interface Mamba1Config {
  readonly intermediate: number; // I = expand * hidden_size
  readonly dState: number; // N
  readonly dtRank: number; // R: dt_proj's input width (time_step_rank)
  readonly dConv: number; // K
  readonly convBias: boolean;
  readonly projBias: boolean; // in_proj and out_proj biases (use_bias)
  /**
   * The eps of the RMS norms on dt_low, B and C (FalconMamba: mixer_rms_eps; Jamba: rms_norm_eps); null for
   * Mamba, which has none.
   */
  readonly falconEps: number | null;
  /** Whether those norms have weights (Jamba: dt_layernorm, b_layernorm, c_layernorm); FalconMamba's have none. */
  readonly innerNormWeights: boolean;
  /**
   * Zamba's multi-head Mamba-1 (ZambaMambaMixer): the I channels split into this many heads of I / numHeads, each
   * with its own x_proj (dt_low | B | C from its channels only) and dt_proj; 1 for the others (absent: 1).
   */
  readonly numHeads?: number;
}

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
  /**
   * Whether the dt clamp also applies to a one-token decode step. transformers clamps dt only in its chunked
   * scan (prefill, or any call without a previous state); its decode step (mamba2_selective_state_update) takes
   * no limit. Bamba and Nemotron-H follow that (false); Granite and Mamba-2 clamp in both (true).
   */
  readonly dtLimitInDecode: boolean;
  /** The gated norm's eps when it is not rms_norm_eps (Zamba2RMSNormGated: 1e-5 always). */
  readonly gatedNormEps?: number;
}

export interface AttentionConfig {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly scaling: number; // multiplies q.k (Granite: attention_multiplier instead of 1/sqrt(d))
  readonly bias: boolean;
  readonly ropeTheta: number | null; // null: no positional encoding (Granite 4.0-H, Nemotron-H)
  /** Channels of each head that RoPE rotates (the first ones, rotate-half among them): headDim, or less (Bamba). */
  readonly rotaryDim: number;
}

export interface FeedForwardConfig {
  readonly sharedIntermediate: number; // shared SwiGLU MLP width (0: none)
  readonly numExperts: number; // 0: dense
  readonly topK: number;
  readonly expertIntermediate: number;
  /**
   * How the router's logits become the k experts' weights: 'softmaxOfTopK' (Granite: the k largest logits,
   * softmax over those k) or 'topKOfSoftmax' (Jamba: softmax over all E experts, the k largest probabilities
   * kept as they are, not renormalised).
   */
  readonly routing: RouterMode;
  /**
   * Which layers' feed-forward is the MoE (numExperts > 0): every layer (Granite), or those with
   * i % expert_layer_period == expert_layer_offset (Jamba, whose other layers have the dense SwiGLU MLP).
   */
  readonly expertLayers: readonly boolean[];
}

export type RouterMode = 'softmaxOfTopK' | 'topKOfSoftmax';

/** Nemotron-H's MLP block (layer kind 'mlp'): down(relu(up(x))^2), no gate. */
export interface MlpBlockConfig {
  readonly intermediate: number;
  readonly bias: boolean;
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
  readonly mamba: MambaConfig | null; // the Mamba-2 layers' settings; null when there are none
  readonly mamba1: Mamba1Config | null; // the Mamba-1 layers' settings (mamba, falcon_mamba, jamba); else null
  readonly attention: AttentionConfig | null; // null when no layer is attention
  readonly feedForward: FeedForwardConfig | null; // null for mamba2 and nemotron_h (no feed-forward after the mixer)
  readonly mlp: MlpBlockConfig | null; // the 'mlp' layers' width (nemotron_h), else null
  /** Falcon-H1's multipliers (architecture falcon_h1 only). */
  readonly falconH1?: FalconH1Config;
  /** RecurrentGemma's recurrent blocks, window and MLP (architecture recurrent_gemma only). */
  readonly griffin?: GriffinConfig;
  /** Zamba2's (and Zamba's: one block, no adapters) shared transformer blocks; absent without hybrid layers. */
  readonly zamba2?: Zamba2Config;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

type Json = Record<string, unknown>;

/** The model types Sidewinder runs, each with the one transformers class its checkpoints are saved from. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<Architecture, { readonly architecture: string; readonly description: string }>> = {
  granitemoehybrid: { architecture: 'GraniteMoeHybridForCausalLM', description: 'IBM Granite 4.0-H' },
  mamba2: { architecture: 'Mamba2ForCausalLM', description: 'Mamba-2' },
  bamba: { architecture: 'BambaForCausalLM', description: 'IBM Bamba' },
  nemotron_h: { architecture: 'NemotronHForCausalLM', description: 'NVIDIA Nemotron-H' },
  mamba: { architecture: 'MambaForCausalLM', description: 'Mamba' },
  falcon_mamba: { architecture: 'FalconMambaForCausalLM', description: 'TII Falcon-Mamba' },
  jamba: { architecture: 'JambaForCausalLM', description: 'AI21 Jamba' },
  falcon_h1: { architecture: 'FalconH1ForCausalLM', description: 'TII Falcon-H1' },
  recurrent_gemma: { architecture: 'RecurrentGemmaForCausalLM', description: 'Google RecurrentGemma (Griffin)' },
  zamba2: { architecture: 'Zamba2ForCausalLM', description: 'Zyphra Zamba2' },
  zamba: { architecture: 'ZambaForCausalLM', description: 'Zyphra Zamba' },
};

function supportedTypes(): string {
  const all = Object.entries(SUPPORTED_MODEL_TYPES).map(([t, s]) => `"${t}" (${s.architecture}, ${s.description})`);
  return all.length > 1 ? `${all.slice(0, -1).join(', ')} and ${all[all.length - 1]}` : all.join('');
}

const FIX = 'Convert the checkpoint to one of these (a Hugging Face transformers config.json) or pick another one.';

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

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

/**
 * The largest size any config field may give (2^24: vocabularies, widths, heads, state sizes, layers): every
 * buffer size made from them stays a safe integer, and a config claiming more is refused before anything is
 * allocated from it (a billion layers would be a billion-entry layer table).
 */
const MAX_SIZE = 2 ** 24;
/** The most layers a model may have. */
const MAX_LAYERS = 4096;

function int(raw: Json, key: string, fallback?: number): number {
  const v = num(raw, key, fallback);
  if (!Number.isInteger(v) || v < 0) {
    throw new UnsupportedModelError(`config.json: "${key}" must be a non-negative integer, got ${v}.`);
  }
  const max = key === 'num_hidden_layers' ? MAX_LAYERS : MAX_SIZE;
  if (v > max) throw new UnsupportedModelError(`config.json: "${key}" is ${v}, more than the ${max} Sidewinder supports; the file is likely corrupt.`);
  return v;
}

/** A size that must be at least 1 (heads, state size, kernel width...). */
function positive(raw: Json, key: string, fallback?: number): number {
  const v = int(raw, key, fallback);
  if (v < 1) throw new UnsupportedModelError(`config.json: "${key}" must be a positive integer, got ${v}.`);
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
  const lim: [number, number] = [num({ time_step_limit: v[0] }, 'time_step_limit'), num({ time_step_limit: v[1] }, 'time_step_limit')];
  if (lim[0] > lim[1]) throw new UnsupportedModelError(`config.json: "time_step_limit" [${lim}] has min above max.`);
  return lim;
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

/** model_type, checked against the supported ones and against architectures. */
function modelTypeOf(raw: Json): Architecture {
  const mt = raw['model_type'];
  const rawArchs = raw['architectures'];
  if (present(rawArchs) && !(Array.isArray(rawArchs) && rawArchs.every((a) => typeof a === 'string'))) {
    throw new UnknownModelTypeError(`config.json: "architectures" must be a list of class names, got ${show(rawArchs)}.`, mt, Object.keys(SUPPORTED_MODEL_TYPES));
  }
  const archs = (rawArchs ?? []) as string[];
  const supported = Object.keys(SUPPORTED_MODEL_TYPES);
  const listed = `Sidewinder runs model_type ${supportedTypes()}.`;
  if (!present(mt) || mt === '') {
    // state-spaces/mamba2-* (mamba_ssm's own format) ship a config.json without model_type.
    const native = 'ssm_cfg' in raw || 'd_model' in raw || 'n_layer' in raw;
    throw new UnknownModelTypeError(
      `config.json has no "model_type"${archs.length ? ` (architectures: ${show(archs)})` : ''}, so it names no implementation. ${listed} ` +
        (native ? "It looks like a mamba_ssm (state-spaces) config: convert it with transformers' Mamba-2 conversion script, or pick another checkpoint." : FIX),
      mt ?? null,
      supported,
    );
  }
  if (typeof mt !== 'string' || !Object.prototype.hasOwnProperty.call(SUPPORTED_MODEL_TYPES, mt)) {
    throw new UnknownModelTypeError(`config.json: model_type ${show(mt)} is not supported. ${listed} ${FIX}`, mt, supported);
  }
  const type = mt as Architecture;
  const expected = SUPPORTED_MODEL_TYPES[type].architecture;
  const wrong = archs.filter((a) => a !== expected);
  if (wrong.length > 0) {
    throw new UnknownModelTypeError(
      `config.json: architectures ${show(archs)} do not match model_type "${type}", whose checkpoints are ${expected}. ` +
        `${listed} Fix the config.json if it was edited by hand; otherwise convert the checkpoint or pick another one.`,
      mt,
      supported,
    );
  }
  return type;
}

const ACTIVATIONS = ['silu', 'swish'];

/** Settings both architectures share (and some other configs spell), refused where the engine computes otherwise. */
function checkCommon(raw: Json, mt: Architecture): void {
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  // SiLU is the conv activation, the SwiGLU gate and the Mamba gate: one activation for all of them.
  // (Nemotron-H reads no hidden_act: its MLP's activation is mlp_hidden_act, checked with the rest of it.)
  // (RecurrentGemma's hidden_activation is gelu-tanh, checked with the rest of its config.)
  // (Zamba2's hidden_act is its shared MLP's activation, GELU by default: checked with the rest of its config.)
  const actKeys = mt === 'nemotron_h' ? ['mamba_hidden_act'] : mt === 'recurrent_gemma' ? [] : mt === 'zamba2' || mt === 'zamba' ? ['hidden_activation', 'mamba_hidden_act'] : ['hidden_act', 'hidden_activation', 'mamba_hidden_act'];
  for (const key of actKeys) {
    if (present(raw[key]) && !ACTIVATIONS.includes(raw[key] as string)) refuse(key, raw[key], '"silu" only (SiLU, also spelled "swish")');
  }
  // The Mamba output is norm(y * silu(z)) * w: a gated RMSNorm, the gate applied before the norm.
  // (Falcon-H1 reads mamba_rms_norm as an option, parsed with the rest of its config.)
  for (const key of ['rms_norm', 'rmsnorm', 'mamba_rmsnorm', ...(mt === 'falcon_h1' ? [] : ['mamba_rms_norm'])]) {
    if (present(raw[key]) && raw[key] !== true) refuse(key, raw[key], 'true only (the gated RMSNorm after the scan)');
  }
  // norm_before_gate: mamba_ssm's key, written in real checkpoints (Mamba-Codestral-7B-v0.1 says true). None of
  // these model types' transformers configs reads it: their mixers always gate before the norm, and so does the
  // engine, so the key is ignored here as transformers ignores it (Falcon-H1's config does read it).
  const q = raw['quantization_config'];
  if (present(q)) {
    const method = typeof q === 'object' && q !== null && 'quant_method' in q ? (q as Json)['quant_method'] : q;
    refuse('quantization_config.quant_method', method, 'unquantized checkpoints only (f32, f16 or bf16 safetensors)');
  }
  // The residual stream is float32 on both backends, which is what residual_in_fp32 asks for; false (the
  // residual in the weights' dtype) only loses precision, so both are accepted.
  bool(raw, 'residual_in_fp32', true);
}

/** Layer kinds from layer_types / layers_block_type / attn_layer_indices; `fallback` when none is given (else refused). */
function layerKindsFrom(raw: Json, numLayers: number, mt: Architecture, fallback: LayerKind[] | null = null): LayerKind[] {
  const kinds = (key: string, v: unknown): LayerKind[] => {
    if (!Array.isArray(v) || v.length !== numLayers) {
      throw new UnsupportedModelError(`config.json: "${key}" must list exactly num_hidden_layers (${numLayers}) entries.`);
    }
    return v.map((t, i) => {
      if (t === 'mamba' || t === 'linear_attention') return 'mamba';
      if (t === 'attention' || t === 'full_attention') return 'attention';
      throw new UnsupportedConfigValueError(
        `${key}[${i}]`,
        t,
        'the layer types "mamba" (or "linear_attention") and "attention" (or "full_attention")',
        mt,
        `layer ${i} has type ${show(t)} (${key}[${i}]), which`,
      );
    });
  };
  const fromTypes = present(raw['layer_types']) ? kinds('layer_types', raw['layer_types']) : null;
  const fromBlocks = present(raw['layers_block_type']) ? kinds('layers_block_type', raw['layers_block_type']) : null;
  const idx = raw['attn_layer_indices'];
  let fromIdx: LayerKind[] | null = null;
  if (present(idx)) {
    if (!Array.isArray(idx) || !idx.every((i) => Number.isInteger(i) && i >= 0 && i < numLayers)) {
      throw new UnsupportedModelError(`config.json: "attn_layer_indices" must list layer indices in [0, ${numLayers}), got ${show(idx)}.`);
    }
    fromIdx = Array.from({ length: numLayers }, (_, i) => (idx.includes(i) ? 'attention' : 'mamba'));
  }
  const given: [string, LayerKind[]][] = [];
  if (fromTypes) given.push(['layer_types', fromTypes]);
  if (fromBlocks) given.push(['layers_block_type', fromBlocks]);
  if (fromIdx) given.push(['attn_layer_indices', fromIdx]);
  if (given.length === 0 && fallback) return fallback;
  if (given.length === 0) {
    throw new UnsupportedModelError('config.json: "layer_types" is missing; it must list each layer as mamba or attention.');
  }
  for (const [key, k] of given.slice(1)) {
    if (k.join() !== given[0][1].join()) {
      throw new UnsupportedModelError(`config.json: "${key}" and "${given[0][0]}" disagree on which layers are attention; fix the config.json.`);
    }
  }
  return given[0][1];
}

function checkPositionType(raw: Json, mt: Architecture): boolean {
  const pe = raw['position_embedding_type'];
  if (!present(pe) || pe === 'nope' || pe === 'none') return false;
  if (pe !== 'rope') throw new UnsupportedConfigValueError('position_embedding_type', pe, '"rope" and "nope" (or null: no positional encoding)', mt);
  return true;
}

/** rope_theta for rotary attention, refusing every rope variant but the plain one (rotate-half, all dims). */
function ropeTheta(raw: Json, mt: Architecture, headDim: number): number {
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const plain = '"default" rope only (no scaling)';
  let theta = num(raw, 'rope_theta', 10000);
  const params = raw['rope_parameters'];
  if (present(params)) {
    if (typeof params !== 'object' || Array.isArray(params)) refuse('rope_parameters', params, 'an object {rope_type, rope_theta}');
    const p = params as Json;
    const type = p['rope_type'] ?? p['type'] ?? 'default';
    if (type !== 'default') refuse('rope_parameters.rope_type', type, plain);
    if (present(p['partial_rotary_factor']) && p['partial_rotary_factor'] !== 1) refuse('rope_parameters.partial_rotary_factor', p['partial_rotary_factor'], '1 only (every channel rotated)');
    if (p['rope_theta'] !== undefined) theta = num(p, 'rope_theta');
  }
  const scaling = raw['rope_scaling'];
  if (present(scaling)) {
    const s = typeof scaling === 'object' && !Array.isArray(scaling) ? (scaling as Json) : {};
    const type = s['rope_type'] ?? s['type'];
    if (type !== 'default') refuse('rope_scaling', scaling, `null or ${plain}`);
  }
  if (present(raw['partial_rotary_factor']) && raw['partial_rotary_factor'] !== 1) refuse('partial_rotary_factor', raw['partial_rotary_factor'], '1 only (every channel rotated)');
  if (headDim % 2 !== 0) throw new UnsupportedModelError(`config.json: rotary attention needs an even head dim, got ${headDim}.`);
  if (!(theta > 0) || !Number.isFinite(theta)) throw new UnsupportedModelError(`config.json: rope_theta must be a positive number, got ${theta}.`);
  return theta;
}

/**
 * Bamba's rotary settings as transformers 5.x resolves them: BambaConfig forces partial_rotary_factor = 0.5 unless
 * rope_parameters names its own (a top-level partial_rotary_factor is overwritten); rope_theta from
 * rope_parameters, else the top level, else 10000. RoPE rotates the first int(head_dim * factor) channels.
 */
function bambaRope(raw: Json, mt: Architecture, headDim: number): { theta: number; rotaryDim: number } {
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const plain = '"default" rope only (no scaling)';
  let theta = num(raw, 'rope_theta', 10000);
  let factor = 0.5;
  const params = raw['rope_parameters'];
  if (present(params)) {
    if (typeof params !== 'object' || Array.isArray(params)) refuse('rope_parameters', params, 'an object {rope_type, rope_theta, partial_rotary_factor}');
    const p = params as Json;
    const type = p['rope_type'] ?? p['type'] ?? 'default';
    if (type !== 'default') refuse('rope_parameters.rope_type', type, plain);
    if (present(p['rope_theta'])) theta = num(p, 'rope_theta');
    if (present(p['partial_rotary_factor'])) factor = num(p, 'partial_rotary_factor');
  }
  const scaling = raw['rope_scaling'];
  if (present(scaling)) {
    const s = typeof scaling === 'object' && !Array.isArray(scaling) ? (scaling as Json) : {};
    const type = s['rope_type'] ?? s['type'];
    if (type !== 'default') refuse('rope_scaling', scaling, `null or ${plain}`);
  }
  const rotaryDim = Math.floor(headDim * factor);
  if (!(factor > 0 && factor <= 1) || rotaryDim < 2 || rotaryDim % 2 !== 0) {
    refuse('rope_parameters.partial_rotary_factor', factor, `a fraction in (0, 1] giving an even number of rotated channels of the head dim ${headDim}`);
  }
  if (!(theta > 0) || !Number.isFinite(theta)) throw new UnsupportedModelError(`config.json: rope_theta must be a positive number, got ${theta}.`);
  return { theta, rotaryDim };
}

function checkMamba(m: MambaConfig): void {
  if (m.numHeads % m.nGroups !== 0) {
    throw new UnsupportedModelError(`mamba heads (${m.numHeads}) must be a multiple of n_groups (${m.nGroups}).`);
  }
  if (m.dConv < 1 || m.dConv > 8) throw new UnsupportedModelError(`conv kernel width ${m.dConv} is not supported (1..8).`);
  if (m.intermediate % m.normGroupSize !== 0) throw new UnsupportedModelError('gated norm group size must divide the intermediate size.');
}

/** The config.json keys of the Mamba-2 settings, which each architecture names its own way, and their defaults. */
interface MambaKeys {
  /** null: the intermediate size is heads x head dim (Nemotron-H, whose `expand` is not read). */
  expand: string | null;
  heads: string;
  headDim: string;
  /** transformers' default head dim; null: intermediate / heads ("auto"). */
  headDimDefault: number | null;
  groups: string;
  groupsDefault: number;
  state: string;
  stateDefault: number;
  conv: string;
  chunk: string;
  convBias: string;
  projBias: string;
  /** Defaults differing from the Granite / Mamba-2 ones. */
  headsDefault?: number;
  chunkDefault?: number;
  /** The dt limit when not time_step_limit (Nemotron-H: [time_step_min, inf]). */
  dtLimit?: [number, number];
  /** Gated norm groups: one (the whole intermediate, transformers' Granite / Mamba-2 / Bamba) or n_groups (Nemotron-H). */
  normPerGroup?: boolean;
  dtLimitInDecode: boolean;
}

function mambaFrom(raw: Json, hiddenSize: number, k: MambaKeys): MambaConfig {
  const numHeads = positive(raw, k.heads, k.headsDefault ?? 128);
  let intermediate: number;
  let headDim: number;
  if (k.expand === null) {
    headDim = positive(raw, k.headDim, k.headDimDefault ?? 64);
    intermediate = numHeads * headDim;
    if (intermediate > MAX_SIZE) throw new UnsupportedModelError(`config.json: ${k.heads} x ${k.headDim} (${intermediate}) is more than the ${MAX_SIZE} Sidewinder supports.`);
  } else {
    const expand = num(raw, k.expand, 2);
    intermediate = expand * hiddenSize;
    if (!Number.isInteger(intermediate) || intermediate < 1) {
      throw new UnsupportedModelError(`config.json: ${k.expand} (${expand}) x hidden_size (${hiddenSize}) must be a positive integer.`);
    }
    const autoHeadDim = Math.floor(intermediate / numHeads);
    headDim = raw[k.headDim] === 'auto' ? autoHeadDim : positive(raw, k.headDim, k.headDimDefault ?? autoHeadDim);
    if (numHeads * headDim !== intermediate) {
      throw new UnsupportedModelError(
        `${k.heads} (${numHeads}) x ${k.headDim} (${headDim}) must equal ${k.expand} x hidden_size (${intermediate}).`,
      );
    }
  }
  const nGroups = positive(raw, k.groups, k.groupsDefault);
  const dState = positive(raw, k.state, k.stateDefault);
  const [tMin, tMax] = k.dtLimit ?? timeStepLimit(raw);
  if (k.normPerGroup && intermediate % nGroups !== 0) {
    throw new UnsupportedModelError(`the Mamba intermediate size (${intermediate}) must be a multiple of ${k.groups} (${nGroups}).`);
  }
  const mamba: MambaConfig = {
    numHeads,
    headDim,
    dState,
    nGroups,
    dConv: positive(raw, k.conv, 4),
    chunkSize: positive(raw, k.chunk, k.chunkDefault ?? 256),
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
    normGroupSize: k.normPerGroup ? intermediate / nGroups : intermediate,
    dtLimitInDecode: k.dtLimitInDecode,
  };
  checkMamba(mamba);
  return mamba;
}

function granite(raw: Json): ModelConfig {
  const mt: Architecture = 'granitemoehybrid';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const hiddenSize = int(raw, 'hidden_size');
  const numLayers = int(raw, 'num_hidden_layers');
  const layerKinds = layerKindsFrom(raw, numLayers, mt);
  const mamba = mambaFrom(raw, hiddenSize, {
    expand: 'mamba_expand',
    heads: 'mamba_n_heads',
    headDim: 'mamba_d_head',
    headDimDefault: null,
    groups: 'mamba_n_groups',
    groupsDefault: 1,
    state: 'mamba_d_state',
    stateDefault: 256,
    conv: 'mamba_d_conv',
    chunk: 'mamba_chunk_size',
    convBias: 'mamba_conv_bias',
    projBias: 'mamba_proj_bias',
    dtLimitInDecode: true,
  });
  const hasAttention = layerKinds.includes('attention');
  const rope = checkPositionType(raw, mt);
  // Attention is full causal softmax attention with biases as attention_bias says; the MLPs have no bias.
  if (present(raw['sliding_window'])) refuse('sliding_window', raw['sliding_window'], 'null only (full causal attention)');
  if (present(raw['use_sliding_window']) && raw['use_sliding_window'] !== false) refuse('use_sliding_window', raw['use_sliding_window'], 'false only (full causal attention)');
  if (present(raw['mlp_bias']) && raw['mlp_bias'] !== false) refuse('mlp_bias', raw['mlp_bias'], 'false only (the shared MLP and the experts have no bias)');
  let attention: AttentionConfig | null = null;
  if (hasAttention) {
    const numAttnHeads = positive(raw, 'num_attention_heads', 32);
    const numKvHeads = positive(raw, 'num_key_value_heads', numAttnHeads);
    if (numAttnHeads % numKvHeads !== 0) {
      throw new UnsupportedModelError(`num_attention_heads (${numAttnHeads}) must be a multiple of num_key_value_heads (${numKvHeads}).`);
    }
    // GraniteMoeHybrid attention splits hidden_size into the heads (head_dim = hidden_size / heads).
    if (hiddenSize % numAttnHeads !== 0) {
      throw new UnsupportedModelError(`config.json: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numAttnHeads}).`);
    }
    const attnHeadDim = hiddenSize / numAttnHeads;
    if (present(raw['head_dim']) && raw['head_dim'] !== attnHeadDim) {
      refuse('head_dim', raw['head_dim'], `hidden_size / num_attention_heads = ${attnHeadDim} only (the head dim GraniteMoeHybrid attention uses)`);
    }
    attention = {
      numHeads: numAttnHeads,
      numKvHeads,
      headDim: attnHeadDim,
      // transformers' default attention_multiplier is 1.0 (not 1/sqrt(head_dim)).
      scaling: num(raw, 'attention_multiplier', 1),
      bias: bool(raw, 'attention_bias', false),
      ropeTheta: rope ? ropeTheta(raw, mt, attnHeadDim) : null,
      rotaryDim: attnHeadDim,
    };
  }
  const numExperts = int(raw, 'num_local_experts', 8);
  let topK = 0;
  if (numExperts > 0) {
    topK = int(raw, 'num_experts_per_tok', 2);
    if (topK < 1 || topK > numExperts) refuse('num_experts_per_tok', topK, `1 to num_local_experts (${numExperts}) experts per token`);
  }
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
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    mamba,
    mamba1: null,
    attention,
    feedForward: {
      sharedIntermediate: int(raw, 'shared_intermediate_size', 1024),
      numExperts,
      topK,
      expertIntermediate: numExperts > 0 ? positive(raw, 'intermediate_size', 11008) : 0,
      routing: 'softmaxOfTopK',
      expertLayers: Array.from({ length: numLayers }, () => numExperts > 0),
    },
    mlp: null,
    bosTokenId: raw['bos_token_id'] == null ? null : int(raw, 'bos_token_id'),
    eosTokenIds: tokenIds(raw['eos_token_id']),
    padTokenId: raw['pad_token_id'] == null ? null : int(raw, 'pad_token_id'),
  };
}

function mamba2(raw: Json): ModelConfig {
  const hiddenSize = int(raw, 'hidden_size');
  const numLayers = int(raw, 'num_hidden_layers');
  const mamba = mambaFrom(raw, hiddenSize, {
    expand: 'expand',
    heads: 'num_heads',
    headDim: 'head_dim',
    headDimDefault: 64,
    groups: 'n_groups',
    groupsDefault: 8,
    state: 'state_size',
    stateDefault: 128,
    conv: 'conv_kernel',
    chunk: 'chunk_size',
    convBias: 'use_conv_bias',
    projBias: 'use_bias',
    dtLimitInDecode: true,
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
    mamba1: null,
    attention: null,
    feedForward: null,
    mlp: null,
    bosTokenId: raw['bos_token_id'] == null ? null : int(raw, 'bos_token_id'),
    eosTokenIds: tokenIds(raw['eos_token_id']),
    padTokenId: raw['pad_token_id'] == null ? null : int(raw, 'pad_token_id'),
  };
}

function tokenIdsOf(raw: Json): Pick<ModelConfig, 'bosTokenId' | 'eosTokenIds' | 'padTokenId'> {
  return {
    bosTokenId: raw['bos_token_id'] == null ? null : int(raw, 'bos_token_id'),
    eosTokenIds: tokenIds(raw['eos_token_id']),
    padTokenId: raw['pad_token_id'] == null ? null : int(raw, 'pad_token_id'),
  };
}

/** Grouped-query attention heads, checked; head_dim as given (or hidden_size / heads when absent and `headDim` is null). */
function attentionHeads(raw: Json, hiddenSize: number, headDimDefault: number | null): { numHeads: number; numKvHeads: number; headDim: number } {
  const numHeads = positive(raw, 'num_attention_heads', 32);
  // Absent: the config class's default, 8; null: as many as the query heads (both classes' __post_init__).
  const numKvHeads = raw['num_key_value_heads'] === null ? numHeads : positive(raw, 'num_key_value_heads', 8);
  if (numHeads % numKvHeads !== 0) {
    throw new UnsupportedModelError(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads}).`);
  }
  let headDim: number;
  if (present(raw['head_dim'])) headDim = positive(raw, 'head_dim');
  else if (headDimDefault !== null) headDim = headDimDefault;
  else {
    if (hiddenSize % numHeads !== 0) {
      throw new UnsupportedModelError(`config.json: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}) when head_dim is not given.`);
    }
    headDim = hiddenSize / numHeads;
  }
  return { numHeads, numKvHeads, headDim };
}

/**
 * IBM Bamba (transformers' BambaForCausalLM): every layer is input_layernorm -> Mamba-2 or attention -> residual,
 * then pre_ff_layernorm -> SwiGLU MLP -> residual; attention layers are attn_layer_indices, with partial RoPE
 * and 1/sqrt(head_dim) scaling; the gated norm spans the whole Mamba intermediate (BambaRMSNormGated).
 */
function bamba(raw: Json): ModelConfig {
  const mt: Architecture = 'bamba';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const hiddenSize = int(raw, 'hidden_size');
  const numLayers = int(raw, 'num_hidden_layers', 32);
  // No attn_layer_indices: every layer is Mamba (BambaConfig.layers_block_type).
  const layerKinds = layerKindsFrom(raw, numLayers, mt, Array.from({ length: numLayers }, () => 'mamba' as const));
  const mamba = mambaFrom(raw, hiddenSize, {
    expand: 'mamba_expand',
    heads: 'mamba_n_heads',
    headDim: 'mamba_d_head',
    headDimDefault: null,
    groups: 'mamba_n_groups',
    groupsDefault: 1,
    state: 'mamba_d_state',
    stateDefault: 256,
    conv: 'mamba_d_conv',
    chunk: 'mamba_chunk_size',
    convBias: 'mamba_conv_bias',
    projBias: 'mamba_proj_bias',
    dtLimitInDecode: false,
  });
  if (present(raw['mlp_bias']) && raw['mlp_bias'] !== false) refuse('mlp_bias', raw['mlp_bias'], 'false only (the feed-forward has no bias)');
  let attention: AttentionConfig | null = null;
  if (layerKinds.includes('attention')) {
    const heads = attentionHeads(raw, hiddenSize, null);
    const rope = bambaRope(raw, mt, heads.headDim);
    attention = {
      ...heads,
      scaling: 1 / Math.sqrt(heads.headDim),
      bias: bool(raw, 'attention_bias', false),
      ropeTheta: rope.theta,
      rotaryDim: rope.rotaryDim,
    };
  }
  return {
    architecture: mt,
    vocabSize: int(raw, 'vocab_size', 128000),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-5),
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    mamba,
    mamba1: null,
    attention,
    feedForward: { sharedIntermediate: positive(raw, 'intermediate_size', 14336), numExperts: 0, topK: 0, expertIntermediate: 0, routing: 'softmaxOfTopK', expertLayers: Array.from({ length: numLayers }, () => false) },
    mlp: null,
    ...tokenIdsOf(raw),
  };
}

const NEMOTRON_PATTERN: Record<string, LayerKind | 'moe'> = { M: 'mamba', '*': 'attention', '-': 'mlp', E: 'moe' };
const NEMOTRON_TYPES: Record<string, LayerKind | 'moe'> = {
  mamba: 'mamba',
  linear_attention: 'mamba',
  attention: 'attention',
  full_attention: 'attention',
  mlp: 'mlp',
  moe: 'moe',
};

/** Nemotron-H's blocks from hybrid_override_pattern (one character a block) or layers_block_type / layer_types. */
function nemotronKinds(raw: Json, mt: Architecture): LayerKind[] {
  const moe = (field: string, i: number): never => {
    throw new UnsupportedConfigValueError(field, raw[field], 'the blocks M (Mamba-2), * (attention) and - (MLP); MoE blocks (E) are not implemented', mt, `block ${i} is an MoE block (${field}), which`);
  };
  const given: [string, LayerKind[]][] = [];
  const pattern = raw['hybrid_override_pattern'];
  if (present(pattern)) {
    if (typeof pattern !== 'string' || pattern.length === 0) refuseWith(mt, 'hybrid_override_pattern', pattern, 'a string of M, * and - (one character a block)');
    const p = pattern as string;
    if (p.length > MAX_LAYERS) throw new UnsupportedModelError(`config.json: "hybrid_override_pattern" has ${p.length} blocks, more than the ${MAX_LAYERS} Sidewinder supports.`);
    given.push([
      'hybrid_override_pattern',
      [...p].map((c, i) => {
        const k = Object.prototype.hasOwnProperty.call(NEMOTRON_PATTERN, c) ? NEMOTRON_PATTERN[c] : undefined;
        if (k === undefined) {
          throw new UnsupportedConfigValueError('hybrid_override_pattern', p, 'the block characters M (Mamba-2), * (attention) and - (MLP)', mt, `block ${i} is ${show(c)} (hybrid_override_pattern[${i}]), which`);
        }
        return k === 'moe' ? moe('hybrid_override_pattern', i) : k;
      }),
    ]);
  }
  for (const key of ['layers_block_type', 'layer_types']) {
    const v = raw[key];
    if (!present(v)) continue;
    if (!Array.isArray(v) || v.length === 0 || v.length > MAX_LAYERS) throw new UnsupportedModelError(`config.json: "${key}" must be a list of 1 to ${MAX_LAYERS} block types.`);
    given.push([
      key,
      v.map((t, i) => {
        const k = typeof t === 'string' && Object.prototype.hasOwnProperty.call(NEMOTRON_TYPES, t) ? NEMOTRON_TYPES[t] : undefined;
        if (k === undefined) {
          throw new UnsupportedConfigValueError(`${key}[${i}]`, t, 'the block types "mamba" (or "linear_attention"), "attention" (or "full_attention") and "mlp"', mt, `block ${i} has type ${show(t)} (${key}[${i}]), which`);
        }
        return k === 'moe' ? moe(key, i) : k;
      }),
    ]);
  }
  if (given.length === 0) {
    throw new UnsupportedModelError('config.json: "hybrid_override_pattern" (or "layers_block_type") is missing; it must give each block as M (Mamba-2), * (attention) or - (MLP).');
  }
  for (const [key, k] of given.slice(1)) {
    if (k.join() !== given[0][1].join()) throw new UnsupportedModelError(`config.json: "${key}" and "${given[0][0]}" disagree on the blocks; fix the config.json.`);
  }
  return given[0][1];
}

function refuseWith(mt: Architecture, field: string, value: unknown, supported: string): never {
  throw new UnsupportedConfigValueError(field, value, supported, mt);
}

/**
 * NVIDIA Nemotron-H (transformers' NemotronHForCausalLM): each block is norm -> one mixer -> residual, the mixer
 * Mamba-2 (gated norm over n_groups groups), attention (no positional encoding, 1/sqrt(head_dim)) or an MLP
 * (up -> relu^2 -> down); there is no feed-forward after a mixer. Weights under backbone. (or model.).
 */
function nemotronH(raw: Json): ModelConfig {
  const mt: Architecture = 'nemotron_h';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  // NemotronHConfig's legacy names win over the current ones when a config.json has them (its __post_init__).
  const r: Json = { ...raw };
  const aliases: [string, string][] = [
    ['mamba_n_groups', 'n_groups'],
    ['mamba_d_conv', 'conv_kernel'],
    ['mamba_dt_min', 'time_step_min'],
    ['mamba_conv_bias', 'use_conv_bias'],
    ['mamba_chunk_size', 'chunk_size'],
  ];
  for (const [legacy, key] of aliases) if (legacy in raw) r[key] = raw[legacy];
  const hiddenSize = int(r, 'hidden_size', 4096);
  const layerKinds = nemotronKinds(r, mt);
  const numLayers = layerKinds.length; // num_hidden_layers is derived from the pattern (a different value is ignored, as transformers does)
  if (present(r['mlp_hidden_act']) && r['mlp_hidden_act'] !== 'relu2') refuse('mlp_hidden_act', r['mlp_hidden_act'], '"relu2" only (squared ReLU)');
  // NemotronHForCausalLM ties nothing (_tied_weights_keys = {}), whatever tie_word_embeddings says: its lm_head is
  // its own, and saved (checked with transformers 5.18: a model made with tie_word_embeddings true saves lm_head.weight).
  bool(r, 'tie_word_embeddings', false);
  const dtMin = num(r, 'time_step_min', 0.001);
  const mamba = mambaFrom(r, hiddenSize, {
    expand: null,
    heads: 'mamba_num_heads',
    headDim: 'mamba_head_dim',
    headDimDefault: 64,
    groups: 'n_groups',
    groupsDefault: 8,
    state: 'ssm_state_size',
    stateDefault: 128,
    conv: 'conv_kernel',
    chunk: 'chunk_size',
    convBias: 'use_conv_bias',
    projBias: 'use_bias',
    chunkDefault: 128,
    // The mixer's limit is (time_step_min, inf); time_step_limit is not read.
    dtLimit: [dtMin, Infinity],
    normPerGroup: true,
    dtLimitInDecode: false,
  });
  let attention: AttentionConfig | null = null;
  if (layerKinds.includes('attention')) {
    const heads = attentionHeads(r, hiddenSize, 128);
    // NemotronHAttention: q/k/v/o without bias whatever attention_bias says, and no positional encoding.
    attention = { ...heads, scaling: 1 / Math.sqrt(heads.headDim), bias: false, ropeTheta: null, rotaryDim: heads.headDim };
  }
  const mlp: MlpBlockConfig | null = layerKinds.includes('mlp') ? { intermediate: positive(r, 'intermediate_size', 21504), bias: bool(r, 'mlp_bias', false) } : null;
  return {
    architecture: mt,
    vocabSize: int(r, 'vocab_size', 131072),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps: num(r, 'layer_norm_epsilon', 1e-5),
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: false, // (see above: never tied)
    mamba,
    mamba1: null,
    attention,
    feedForward: null,
    mlp,
    ...tokenIdsOf(r),
  };
}

/** The most state entries per channel the WebGPU selective scan holds (16 lanes x 16 in registers). */
const MAX_MAMBA1_STATE = 256;

/**
 * Mamba-1 (transformers' MambaForCausalLM) and Falcon-Mamba (FalconMambaForCausalLM): every block is
 * norm -> MambaMixer -> residual, backbone.* names, lm_head tied by default. The mixer: in_proj -> (x, z);
 * x = silu(conv1d(x)); x_proj -> (dt_low, B, C) [Falcon-Mamba: each RMS-normalised without a weight, eps
 * mixer_rms_eps]; dt = softplus(dt_proj(dt_low)); y = scan(x, dt, A, B, C, D) * silu(z); out_proj.
 */
function mamba1(raw: Json, mt: Architecture): ModelConfig {
  const hiddenSize = int(raw, 'hidden_size', 768);
  const numLayers = int(raw, 'num_hidden_layers', 32);
  // MambaConfig / FalconMambaConfig set intermediate_size = int(expand * hidden_size), and then the file's own
  // intermediate_size, a key they do not declare, is set over it (PretrainedConfig.__init__ in 4.x,
  // PreTrainedConfig.__post_init__ in 5.x set every extra key as an attribute): tiiuae/falcon-mamba-7b writes
  // expand 16 with intermediate_size 8192, and its weights are 8192 wide.
  const expand = num(raw, 'expand', 2);
  const intermediate = present(raw['intermediate_size']) ? positive(raw, 'intermediate_size') : Math.trunc(expand * hiddenSize);
  if (!(intermediate >= 1) || intermediate > MAX_SIZE) {
    throw new UnsupportedModelError(`config.json: intermediate_size (or expand (${expand}) x hidden_size (${hiddenSize})) must give an intermediate size of 1 to ${MAX_SIZE}.`);
  }
  const dtRank = raw['time_step_rank'] === 'auto' || raw['time_step_rank'] === undefined ? Math.ceil(hiddenSize / 16) : positive(raw, 'time_step_rank');
  if (dtRank < 1) throw new UnsupportedModelError('config.json: "time_step_rank" must be a positive integer or "auto".');
  const dState = positive(raw, 'state_size', 16);
  if (dState > MAX_MAMBA1_STATE) refuseWith(mt, 'state_size', dState, `1 to ${MAX_MAMBA1_STATE} state entries per channel`);
  const dConv = positive(raw, 'conv_kernel', 4);
  if (dConv > 8) refuseWith(mt, 'conv_kernel', dConv, '1 to 8 (the causal conv kernel width)');
  const falconEps = mt === 'falcon_mamba' ? num(raw, 'mixer_rms_eps', 1e-6) : null;
  if (falconEps !== null && !(falconEps > 0 && Number.isFinite(falconEps))) refuseWith(mt, 'mixer_rms_eps', falconEps, 'a positive number');
  return {
    architecture: mt,
    vocabSize: int(raw, 'vocab_size', 50280),
    hiddenSize,
    numLayers,
    layerKinds: Array.from({ length: numLayers }, () => 'mamba1' as const),
    rmsNormEps: num(raw, 'layer_norm_epsilon', 1e-5),
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', true),
    mamba: null,
    mamba1: { intermediate, dState, dtRank, dConv, convBias: bool(raw, 'use_conv_bias', true), projBias: bool(raw, 'use_bias', false), falconEps, innerNormWeights: false },
    attention: null,
    feedForward: null,
    mlp: null,
    ...tokenIdsOf(raw),
  };
}

/** i % period == offset, the rule Jamba places its attention layers and MoE feed-forwards by. */
function periodic(raw: Json, mt: Architecture, numLayers: number, periodKey: string, periodDefault: number, offsetKey: string, offsetDefault: number): boolean[] {
  const period = positive(raw, periodKey, periodDefault);
  const offset = int(raw, offsetKey, offsetDefault);
  if (offset >= period) refuseWith(mt, offsetKey, offset, `an offset below ${periodKey} (${period})`);
  return Array.from({ length: numLayers }, (_, i) => i % period === offset);
}

/**
 * AI21 Jamba (transformers' JambaForCausalLM): every layer is input_layernorm -> Mamba-1 or attention -> residual,
 * then pre_ff_layernorm -> feed-forward -> residual. Attention on layers i % attn_layer_period ==
 * attn_layer_offset (no positional encoding, 1/sqrt(head_dim), no biases); the Mamba-1 mixer RMS-normalises
 * dt_low, B and C with weights (eps rms_norm_eps). The feed-forward is an MoE (softmax over all experts, top-k
 * kept unnormalised) on layers i % expert_layer_period == expert_layer_offset when num_experts > 1, else the
 * dense SwiGLU (gate_proj, up_proj, down_proj).
 */
function jamba(raw: Json): ModelConfig {
  const mt: Architecture = 'jamba';
  const hiddenSize = int(raw, 'hidden_size', 4096);
  const numLayers = int(raw, 'num_hidden_layers', 32);
  const attn = periodic(raw, mt, numLayers, 'attn_layer_period', 8, 'attn_layer_offset', 4);
  const layerKinds: LayerKind[] = attn.map((a) => (a ? 'attention' : 'mamba1'));
  // JambaMambaMixer: intermediate = mamba_expand * hidden_size; dt rank "auto" = ceil(hidden_size / 16).
  const intermediate = positive(raw, 'mamba_expand', 2) * hiddenSize;
  if (intermediate > MAX_SIZE) throw new UnsupportedModelError(`config.json: mamba_expand x hidden_size (${intermediate}) is more than the ${MAX_SIZE} Sidewinder supports.`);
  const dtRank = raw['mamba_dt_rank'] === 'auto' || raw['mamba_dt_rank'] === undefined ? Math.ceil(hiddenSize / 16) : positive(raw, 'mamba_dt_rank');
  const dState = positive(raw, 'mamba_d_state', 16);
  if (dState > MAX_MAMBA1_STATE) refuseWith(mt, 'mamba_d_state', dState, `1 to ${MAX_MAMBA1_STATE} state entries per channel`);
  const dConv = positive(raw, 'mamba_d_conv', 4);
  if (dConv > 8) refuseWith(mt, 'mamba_d_conv', dConv, '1 to 8 (the causal conv kernel width)');
  const rmsNormEps = num(raw, 'rms_norm_eps', 1e-6);
  if (!(rmsNormEps > 0 && Number.isFinite(rmsNormEps))) refuseWith(mt, 'rms_norm_eps', rmsNormEps, 'a positive number');
  const numExperts = positive(raw, 'num_experts', 16);
  const topK = positive(raw, 'num_experts_per_tok', 2);
  const width = positive(raw, 'intermediate_size', 14336);
  const moe = numExperts > 1;
  if (moe && topK > Math.min(16, numExperts)) refuseWith(mt, 'num_experts_per_tok', topK, `1 to min(16, num_experts = ${numExperts})`);
  const expertLayers = moe ? periodic(raw, mt, numLayers, 'expert_layer_period', 2, 'expert_layer_offset', 1) : Array.from({ length: numLayers }, () => false);
  let attention: AttentionConfig | null = null;
  if (layerKinds.includes('attention')) {
    const heads = attentionHeads(raw, hiddenSize, null);
    attention = { ...heads, scaling: 1 / Math.sqrt(heads.headDim), bias: false, ropeTheta: null, rotaryDim: heads.headDim };
  }
  return {
    architecture: mt,
    vocabSize: int(raw, 'vocab_size', 65536),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    mamba: null,
    mamba1: layerKinds.includes('mamba1')
      ? { intermediate, dState, dtRank, dConv, convBias: bool(raw, 'mamba_conv_bias', true), projBias: bool(raw, 'mamba_proj_bias', false), falconEps: rmsNormEps, innerNormWeights: true }
      : null,
    attention,
    feedForward: {
      sharedIntermediate: width,
      numExperts: moe ? numExperts : 0,
      topK: moe ? topK : 0,
      expertIntermediate: moe ? width : 0,
      routing: 'topKOfSoftmax',
      expertLayers,
    },
    mlp: null,
    ...tokenIdsOf(raw),
  };
}

function numList(raw: Json, key: string, n: number): number[] {
  const v = raw[key];
  if (v === undefined || v === null) return Array(n).fill(1);
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new UnsupportedModelError(`config.json: "${key}" must be a list of ${n} numbers, got ${show(v)}.`);
  }
  return v as number[];
}

/**
 * TII Falcon-H1 (FalconH1ForCausalLM): every layer is input_layernorm -> (Mamba-2 mixer + attention, in parallel
 * on the same normed input, each with its multipliers) -> residual, then pre_ff_layernorm -> SwiGLU -> residual.
 * muP multipliers on the embedding, the Mamba in_proj (ssm_in_multiplier and the mup vector from ssm_multipliers),
 * its out_proj, attention in / key / out, the MLP gate and down, and lm_head.
 */
function falconH1(raw: Json): ModelConfig {
  const mt: Architecture = 'falcon_h1';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const hiddenSize = int(raw, 'hidden_size', 4096);
  const numLayers = int(raw, 'num_hidden_layers', 32);
  for (const key of ['attention_bias', 'mlp_bias', 'projectors_bias']) {
    if (present(raw[key]) && raw[key] !== false) refuse(key, raw[key], 'false only (no bias)');
  }
  const gatedNorm = bool(raw, 'mamba_rms_norm', false);
  if (gatedNorm && bool(raw, 'mamba_norm_before_gate', true)) {
    refuse('mamba_norm_before_gate', raw['mamba_norm_before_gate'] ?? true, 'false only with mamba_rms_norm true (the gate applied before the norm)');
  }
  const numHeads = positive(raw, 'mamba_n_heads', 128);
  const expand = num(raw, 'mamba_expand', 2);
  // The mixer's width is mamba_d_ssm (None: mamba_expand x hidden_size). Published configs without it (Falcon-H1-0.5B:
  // 24 heads of 64, expand 2 x 1024) have heads x head_dim channels, which is what their in_proj holds; absent
  // there, it is taken from the heads (transformers 5.17 would default mamba_d_ssm to 1024 and refuse them).
  const autoHead = raw['mamba_d_head'] === 'auto' || !present(raw['mamba_d_head']);
  const intermediate = present(raw['mamba_d_ssm']) ? positive(raw, 'mamba_d_ssm') : autoHead ? expand * hiddenSize : numHeads * positive(raw, 'mamba_d_head');
  if (!Number.isInteger(intermediate) || intermediate < 1 || intermediate > MAX_SIZE) {
    throw new UnsupportedModelError(`config.json: the Mamba intermediate size (mamba_d_ssm, or mamba_expand x hidden_size) must be a positive integer up to ${MAX_SIZE}, got ${intermediate}.`);
  }
  const headDim = autoHead ? Math.floor(intermediate / numHeads) : positive(raw, 'mamba_d_head');
  if (headDim < 1 || headDim * numHeads !== intermediate) {
    throw new UnsupportedModelError(`mamba_n_heads (${numHeads}) x mamba_d_head (${headDim}) must equal the Mamba intermediate size (${intermediate}).`);
  }
  const nGroups = positive(raw, 'mamba_n_groups', 1);
  const dState = positive(raw, 'mamba_d_state', 256);
  if (intermediate % nGroups !== 0) throw new UnsupportedModelError(`the Mamba intermediate size (${intermediate}) must be a multiple of mamba_n_groups (${nGroups}).`);
  const [tMin, tMax] = timeStepLimit(raw);
  const mamba: MambaConfig = {
    numHeads,
    headDim,
    dState,
    nGroups,
    dConv: positive(raw, 'mamba_d_conv', 4),
    chunkSize: positive(raw, 'mamba_chunk_size', 256),
    intermediate,
    convDim: intermediate + 2 * nGroups * dState,
    inProjDim: 2 * intermediate + 2 * nGroups * dState + numHeads,
    convBias: bool(raw, 'mamba_conv_bias', true),
    projBias: bool(raw, 'mamba_proj_bias', false),
    timeStepMin: tMin,
    timeStepMax: tMax,
    // FalconH1RMSNormGated normalises over n_groups groups
    normGroupSize: intermediate / nGroups,
    // the decode step (mamba2_selective_state_update) takes no dt limit
    dtLimitInDecode: false,
  };
  checkMamba(mamba);
  const heads = attentionHeads(raw, hiddenSize, null);
  const attention: AttentionConfig = {
    ...heads,
    scaling: 1 / Math.sqrt(heads.headDim),
    bias: false,
    ropeTheta: ropeTheta(raw, mt, heads.headDim),
    rotaryDim: heads.headDim,
  };
  const [mlpGate, mlpDown] = numList(raw, 'mlp_multipliers', 2);
  const lmHead = num(raw, 'lm_head_multiplier', 1);
  if (!(lmHead !== 0 && Number.isFinite(lmHead))) refuse('lm_head_multiplier', raw['lm_head_multiplier'], 'a finite non-zero number');
  return {
    architecture: mt,
    vocabSize: int(raw, 'vocab_size', 128000),
    hiddenSize,
    numLayers,
    layerKinds: Array.from({ length: numLayers }, () => 'parallel' as const),
    rmsNormEps: num(raw, 'rms_norm_eps', 1e-5),
    embeddingMultiplier: num(raw, 'embedding_multiplier', 1),
    residualMultiplier: 1,
    logitsScaling: 1 / lmHead,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', false),
    mamba,
    mamba1: null,
    attention,
    feedForward: { sharedIntermediate: positive(raw, 'intermediate_size', 14336), numExperts: 0, topK: 0, expertIntermediate: 0, routing: 'softmaxOfTopK', expertLayers: Array.from({ length: numLayers }, () => false) },
    mlp: null,
    falconH1: {
      ssmIn: num(raw, 'ssm_in_multiplier', 1),
      ssmOut: num(raw, 'ssm_out_multiplier', 1),
      ssmMultipliers: numList(raw, 'ssm_multipliers', 5),
      attnIn: num(raw, 'attention_in_multiplier', 1),
      attnOut: num(raw, 'attention_out_multiplier', 1),
      key: num(raw, 'key_multiplier', 1),
      mlpGate,
      mlpDown,
      gatedNorm,
    },
    ...tokenIdsOf(raw),
  };
}

/** x rounded to the nearest bfloat16 (ties to even), as torch.tensor(x, dtype=torch.bfloat16) stores it. */
export function bf16Round(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000;
  return f[0];
}

const GRIFFIN_BLOCKS = ['recurrent', 'attention'];

/**
 * Google RecurrentGemma (transformers' RecurrentGemmaForCausalLM, Griffin): layer i's temporal block is
 * block_types[i % len] ('recurrent': RG-LRU with a temporal conv; 'attention': local attention over the last
 * attention_window_size positions), temporal_pre_norm before it and channel_pre_norm before the gelu-tanh MLP,
 * all Gemma RMSNorms scaling by (1 + weight) (folded into virtual *.plus1.weight tensors at open). Embeddings
 * times sqrt(hidden_size) rounded to bf16 (the model's normalizer buffer); logits soft-capped.
 */
function recurrentGemma(raw: Json): ModelConfig {
  const mt: Architecture = 'recurrent_gemma';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const hiddenSize = positive(raw, 'hidden_size', 2560);
  const numLayers = positive(raw, 'num_hidden_layers', 26);
  const act = raw['hidden_activation'] ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') refuse('hidden_activation', act, '"gelu_pytorch_tanh" only (the tanh approximation of GELU)');
  for (const key of ['hidden_act', 'mamba_hidden_act']) if (present(raw[key])) refuse(key, raw[key], 'no such key (RecurrentGemma reads hidden_activation)');
  const rawBlocks = raw['block_types'] ?? ['recurrent', 'recurrent', 'attention'];
  if (!Array.isArray(rawBlocks) || rawBlocks.length === 0) refuse('block_types', rawBlocks, 'a non-empty list of "recurrent" and "attention"');
  const blocks = rawBlocks as unknown[];
  blocks.forEach((b, i) => {
    if (typeof b !== 'string' || !GRIFFIN_BLOCKS.includes(b)) {
      throw new UnsupportedConfigValueError(`block_types[${i}]`, b, 'the block types "recurrent" and "attention"', mt);
    }
  });
  const layerKinds: LayerKind[] = Array.from({ length: numLayers }, (_, i) => (blocks[i % blocks.length] === 'attention' ? 'local' : 'rglru'));
  const numHeads = positive(raw, 'num_attention_heads', 10);
  const numKvHeads = present(raw['num_key_value_heads']) ? positive(raw, 'num_key_value_heads') : numHeads;
  if (numKvHeads > numHeads || numHeads % numKvHeads !== 0) refuse('num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  if (hiddenSize % numHeads !== 0) throw new UnsupportedModelError(`config.json: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}).`);
  // RecurrentGemmaConfig sets head_dim = hidden_size // num_attention_heads whatever the file says.
  const headDim = hiddenSize / numHeads;
  if (present(raw['head_dim']) && raw['head_dim'] !== headDim) refuse('head_dim', raw['head_dim'], `hidden_size / num_attention_heads = ${headDim} only`);
  const lruWidth = present(raw['lru_width']) ? positive(raw, 'lru_width') : hiddenSize;
  if (lruWidth % numHeads !== 0) refuse('lru_width', lruWidth, `a multiple of num_attention_heads (${numHeads}): the RG-LRU gates are ${numHeads} diagonal blocks`);
  const convWidth = positive(raw, 'conv1d_width', 4);
  if (convWidth < 2 || convWidth > 8) refuse('conv1d_width', convWidth, '2 to 8 (the temporal conv width)');
  const window = positive(raw, 'attention_window_size', 2048);
  const intermediate = positive(raw, 'intermediate_size', 3 * 2560);
  const mlpIntermediate = Math.floor(intermediate / 2);
  if (mlpIntermediate < 1) refuse('intermediate_size', intermediate, 'at least 2 (the MLP is intermediate_size // 2 wide)');
  const cap = num(raw, 'logits_soft_cap', 30);
  if (!(cap > 0) || !Number.isFinite(cap)) refuse('logits_soft_cap', raw['logits_soft_cap'], 'a positive number');
  const rmsNormEps = num(raw, 'rms_norm_eps', 1e-6);
  if (!(rmsNormEps > 0 && Number.isFinite(rmsNormEps))) refuse('rms_norm_eps', rmsNormEps, 'a positive number');
  // RoPE: the default type only, on the first int(head_dim * partial_rotary_factor) channels (factor 0.5 unless
  // given; rope_parameters' value, else the top-level one).
  let theta = num(raw, 'rope_theta', 10000);
  let factor = present(raw['partial_rotary_factor']) ? num(raw, 'partial_rotary_factor') : 0.5;
  const params = raw['rope_parameters'];
  if (present(params)) {
    if (typeof params !== 'object' || Array.isArray(params)) refuse('rope_parameters', params, 'an object {rope_type, rope_theta, partial_rotary_factor}');
    const p = params as Json;
    const type = p['rope_type'] ?? p['type'] ?? 'default';
    if (type !== 'default') refuse('rope_parameters.rope_type', type, '"default" rope only (no scaling)');
    if (present(p['rope_theta'])) theta = num(p, 'rope_theta');
    if (present(p['partial_rotary_factor'])) factor = num(p, 'partial_rotary_factor');
  }
  if (present(raw['rope_scaling'])) refuse('rope_scaling', raw['rope_scaling'], 'null only (default rope)');
  const rotaryDim = Math.floor(headDim * factor);
  if (!(factor > 0 && factor <= 1) || rotaryDim < 2 || rotaryDim % 2 !== 0) {
    refuse('partial_rotary_factor', factor, `a fraction in (0, 1] giving an even number of rotated channels of the head dim ${headDim}`);
  }
  if (!(theta > 0) || !Number.isFinite(theta)) refuse('rope_theta', theta, 'a positive number');
  const attention: AttentionConfig = {
    numHeads,
    numKvHeads,
    headDim,
    scaling: 1 / Math.sqrt(headDim),
    bias: bool(raw, 'attention_bias', false),
    ropeTheta: theta,
    rotaryDim,
  };
  return {
    architecture: mt,
    vocabSize: positive(raw, 'vocab_size', 256000),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps,
    // RecurrentGemmaModel.normalizer: sqrt(hidden_size) held as a bfloat16 tensor
    embeddingMultiplier: bf16Round(Math.sqrt(hiddenSize)),
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', true),
    mamba: null,
    mamba1: null,
    attention: layerKinds.includes('local') ? attention : null,
    feedForward: null,
    mlp: null,
    griffin: { lruWidth, numHeads, blockWidth: lruWidth / numHeads, convWidth, window, mlpIntermediate, logitsSoftCap: cap },
    ...tokenIdsOf(raw),
  };
}


/** The widths of a Zamba2 / Zamba shared block use: H, 2H (its input, concat(h, embeddings)), adapter rank, MLP width, q and k/v widths. */
export function sharedBlockDims(cfg: ModelConfig): { H: number; H2: number; R: number; F: number; qd: number; kd: number } {
  const a = cfg.attention!;
  const z = cfg.zamba2!;
  const H = cfg.hiddenSize;
  return { H, H2: 2 * H, R: z.adapterRank, F: z.intermediate, qd: a.numHeads * a.headDim, kd: a.numKvHeads * a.headDim };
}

/**
 * Zamba2's / Zamba's layers_block_type: exactly num_hidden_layers entries, each "mamba" (or "linear_attention"),
 * read as `mambaKind`, or "hybrid"; with the hybrid layers' indices.
 */
function zambaLayerKinds(types: unknown, numLayers: number, mt: Architecture, mambaKind: LayerKind): { layerKinds: LayerKind[]; hybridLayers: number[] } {
  if (!Array.isArray(types) || types.length !== numLayers) {
    throw new UnsupportedModelError(`config.json: "layers_block_type" must list exactly num_hidden_layers (${numLayers}) entries.`);
  }
  const layerKinds: LayerKind[] = types.map((t, i) => {
    if (t === 'mamba' || t === 'linear_attention') return mambaKind;
    if (t === 'hybrid') return 'hybrid';
    throw new UnsupportedConfigValueError(`layers_block_type[${i}]`, t, 'the layer types "mamba" (or "linear_attention") and "hybrid"', mt, `layer ${i} has type ${show(t)} (layers_block_type[${i}]), which`);
  });
  return { layerKinds, hybridLayers: layerKinds.flatMap((k, i) => (k === 'hybrid' ? [i] : [])) };
}

/**
 * The pre-transformers spelling of Zyphra's Zamba2 configs (Zyphra/Zamba2-7B's, test/data/configs/zamba2) and
 * the key transformers' Zamba2Config reads for each; a legacy key counts only where the current one is absent.
 */
const ZAMBA2_LEGACY: [string, string][] = [
  ['ffn_hidden_size', 'intermediate_size'],
  ['lora_rank', 'adapter_rank'],
  ['state_size', 'mamba_d_state'],
  ['conv_dimension', 'mamba_d_conv'],
  ['expansion_factor', 'mamba_expand'],
  ['use_shared_attention_lora', 'use_shared_attention_adapter'],
];

/**
 * Zyphra Zamba2 (Zamba2ForCausalLM): every layer is a Mamba-2 decoder (input_layernorm -> Zamba2MambaMixer ->
 * residual; I = mamba_expand x H in n_mamba_heads heads, B/C in mamba_ngroups groups, the conv always biased,
 * dt limited to (time_step_min, inf) in the chunked scan only, the gated norm over groups of I / ngroups with
 * eps 1e-5); the layers layers_block_type calls "hybrid" first run a shared transformer block (Zamba2Config
 * above). Legacy Zyphra key names are mapped (ZAMBA2_LEGACY); settings that change the computation to
 * something not implemented are refused by name.
 */
function zamba2(raw: Json): ModelConfig {
  const mt: Architecture = 'zamba2';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const r: Json = { ...raw };
  for (const [legacy, key] of ZAMBA2_LEGACY) if (present(raw[legacy]) && !present(raw[key])) r[key] = raw[legacy];
  // Zyphra's own switches, each of which transformers' Zamba2 always has on (or off).
  if (present(r['use_shared_block_lora']) && r['use_shared_block_lora'] !== true) refuse('use_shared_block_lora', r['use_shared_block_lora'], 'true only (every use of a shared block has its MLP adapter, as in transformers)');
  if (present(r['gated_linear_unit']) && r['gated_linear_unit'] !== true) refuse('gated_linear_unit', r['gated_linear_unit'], 'true only (the shared MLP is gated)');
  if (present(r['ft_lora']) && r['ft_lora'] !== false) refuse('ft_lora', r['ft_lora'], 'false only');
  if (present(r['add_bias_linear']) && r['add_bias_linear'] !== false) refuse('add_bias_linear', r['add_bias_linear'], 'false only (no biases in the Mamba projections and the shared MLP)');
  if (present(r['sliding_window'])) refuse('sliding_window', r['sliding_window'], 'null only (full causal attention)');
  const hiddenSize = positive(r, 'hidden_size', 2560);
  const numLayers = positive(r, 'num_hidden_layers', 54);
  const types = r['layers_block_type'];
  if (!present(types)) {
    throw new UnsupportedModelError('config.json: "layers_block_type" is missing; it must list each layer as "mamba" (or "linear_attention") or "hybrid".');
  }
  const { layerKinds, hybridLayers } = zambaLayerKinds(types, numLayers, mt, 'mamba');
  const ids = r['hybrid_layer_ids'];
  if (present(ids) && (!Array.isArray(ids) || ids.join() !== hybridLayers.join())) {
    throw new UnsupportedModelError(`config.json: "hybrid_layer_ids" ${show(ids)} disagrees with the hybrid layers of "layers_block_type" (${show(hybridLayers)}); fix the config.json.`);
  }
  // Zamba2MambaMixer: I = int(mamba_expand x H) over n_mamba_heads heads (mamba_headdim = I / heads, whatever the
  // file says). Zyphra's legacy configs give mamba_headdim and no n_mamba_heads: the heads are then I / mamba_headdim.
  const expand = num(r, 'mamba_expand', 2);
  const intermediate = Math.trunc(expand * hiddenSize);
  if (!(intermediate >= 1) || intermediate > MAX_SIZE) {
    throw new UnsupportedModelError(`config.json: mamba_expand (${expand}) x hidden_size (${hiddenSize}) must give a Mamba intermediate size of 1 to ${MAX_SIZE}.`);
  }
  const numHeads = present(r['n_mamba_heads']) || !present(r['mamba_headdim']) ? positive(r, 'n_mamba_heads', 8) : Math.floor(intermediate / positive(r, 'mamba_headdim'));
  if (numHeads < 1 || intermediate % numHeads !== 0) {
    throw new UnsupportedModelError(`config.json: n_mamba_heads (${numHeads}) must divide the Mamba intermediate size mamba_expand x hidden_size (${intermediate}).`);
  }
  const headDim = intermediate / numHeads;
  if (present(r['mamba_headdim']) && r['mamba_headdim'] !== headDim) {
    throw new UnsupportedModelError(`config.json: mamba_headdim (${show(r['mamba_headdim'])}) must be mamba_expand x hidden_size / n_mamba_heads (${headDim}).`);
  }
  const nGroups = positive(r, 'mamba_ngroups', 1);
  const dState = positive(r, 'mamba_d_state', 64);
  if (intermediate % nGroups !== 0) throw new UnsupportedModelError(`the Mamba intermediate size (${intermediate}) must be a multiple of mamba_ngroups (${nGroups}).`);
  const dtMin = num(r, 'time_step_min', 0.001);
  const rmsNormEps = num(r, 'rms_norm_eps', 1e-5);
  if (!(rmsNormEps > 0 && Number.isFinite(rmsNormEps))) refuse('rms_norm_eps', rmsNormEps, 'a positive number');
  const mamba: MambaConfig = {
    numHeads,
    headDim,
    dState,
    nGroups,
    dConv: positive(r, 'mamba_d_conv', 4),
    chunkSize: positive(r, 'chunk_size', 256),
    intermediate,
    convDim: intermediate + 2 * nGroups * dState,
    inProjDim: 2 * intermediate + 2 * nGroups * dState + numHeads,
    // Zamba2MambaMixer's conv1d has a bias whatever use_conv_bias says
    convBias: true,
    projBias: false,
    timeStepMin: dtMin,
    timeStepMax: Infinity,
    normGroupSize: intermediate / nGroups,
    dtLimitInDecode: false,
    gatedNormEps: 1e-5,
  };
  checkMamba(mamba);
  let attention: AttentionConfig | null = null;
  let shared: Zamba2Config | undefined;
  if (hybridLayers.length > 0) {
    const heads = positive(r, 'num_attention_heads', 32);
    const kvHeads = present(r['num_key_value_heads']) ? positive(r, 'num_key_value_heads') : heads;
    if (heads % kvHeads !== 0) throw new UnsupportedModelError(`num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads}).`);
    // Zamba2Config: attention_head_dim = 2 x hidden_size / num_attention_heads (the file's value is not read)
    if ((2 * hiddenSize) % heads !== 0) throw new UnsupportedModelError(`config.json: 2 x hidden_size (${2 * hiddenSize}) must be a multiple of num_attention_heads (${heads}).`);
    const headDim = (2 * hiddenSize) / heads;
    const rope = bool(r, 'use_mem_rope', false);
    attention = { numHeads: heads, numKvHeads: kvHeads, headDim, scaling: 1 / Math.sqrt(headDim / 2), bias: false, ropeTheta: rope ? ropeTheta(r, mt, headDim) : null, rotaryDim: headDim };
    const act = r['hidden_act'] ?? 'gelu';
    if (act !== 'gelu' && act !== 'silu' && act !== 'swish') refuse('hidden_act', act, '"gelu" (exact, erf) and "silu" (or "swish")');
    const numMemBlocks = positive(r, 'num_mem_blocks', 1);
    const attentionAdapters = bool(r, 'use_shared_attention_adapter', false);
    // The q/k/v adapters map back to attention_hidden_size (2H), which k and v have only without grouped KV heads.
    if (attentionAdapters && kvHeads !== heads) refuse('num_key_value_heads', kvHeads, `num_attention_heads (${heads}) only with use_shared_attention_adapter (the k/v adapters are 2 x hidden_size wide)`);
    shared = {
      numMemBlocks,
      hybridLayers,
      adapterRank: positive(r, 'adapter_rank', 128),
      attentionAdapters,
      intermediate: present(r['intermediate_size']) ? positive(r, 'intermediate_size') : 4 * hiddenSize,
      activation: act === 'gelu' ? 'gelu' : 'silu',
    };
  }
  return {
    architecture: mt,
    vocabSize: positive(r, 'vocab_size', 32000),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(r, 'tie_word_embeddings', true),
    mamba,
    mamba1: null,
    attention,
    feedForward: null,
    mlp: null,
    ...(shared ? { zamba2: shared } : {}),
    ...tokenIdsOf(r),
  };
}

/**
 * Zyphra Zamba (ZambaForCausalLM): every layer a Mamba-1 decoder (input_layernorm -> ZambaMambaMixer -> residual), the
 * mixer split into n_mamba_heads heads with their own x_proj / dt_proj (3-D weights) and in_proj's rows interleaved
 * per channel as (x, z); the "hybrid" layers first run the one shared transformer block (as Zamba2's, without
 * adapters or RoPE, its MLP gate_proj / up_proj / down_proj) on concat(h, embeddings), then the layer's linear,
 * added to the Mamba decoder's input. No dt limit. attention_head_dim and attention_hidden_size as the file says
 * (default 2H / heads and 2H; the block's input is 2H wide).
 */
function zamba(raw: Json): ModelConfig {
  const mt: Architecture = 'zamba';
  const refuse = (field: string, value: unknown, supported: string): never => refuseWith(mt, field, value, supported);
  const hiddenSize = positive(raw, 'hidden_size', 3712);
  const numLayers = positive(raw, 'num_hidden_layers', 76);
  let types = raw['layers_block_type'];
  if (!present(types)) {
    // ZambaConfig.__post_init__'s default from attn_layer_period / attn_layer_offset
    const period = positive(raw, 'attn_layer_period', 6);
    const offset = int(raw, 'attn_layer_offset', 4);
    types = ['mamba', 'mamba', 'hybrid', ...Array.from({ length: Math.max(0, numLayers - 3) }, (_, i) => (i % period === offset ? 'hybrid' : 'mamba'))];
  }
  const { layerKinds, hybridLayers } = zambaLayerKinds(types, numLayers, mt, 'mamba1');
  if (present(raw['hidden_mamba_act']) && raw['hidden_mamba_act'] !== 'silu' && raw['hidden_mamba_act'] !== 'swish') refuse('hidden_mamba_act', raw['hidden_mamba_act'], '"silu" only');
  const intermediate = positive(raw, 'mamba_expand', 2) * hiddenSize;
  if (intermediate > MAX_SIZE) throw new UnsupportedModelError(`config.json: mamba_expand x hidden_size (${intermediate}) is more than the ${MAX_SIZE} Sidewinder supports.`);
  const numHeads = positive(raw, 'n_mamba_heads', 2);
  if (intermediate % numHeads !== 0) throw new UnsupportedModelError(`config.json: n_mamba_heads (${numHeads}) must divide mamba_expand x hidden_size (${intermediate}).`);
  const dtRank = raw['mamba_dt_rank'] === 'auto' || raw['mamba_dt_rank'] === undefined ? Math.ceil(hiddenSize / 16) : positive(raw, 'mamba_dt_rank');
  const dState = positive(raw, 'mamba_d_state', 16);
  if (dState > MAX_MAMBA1_STATE) refuse('mamba_d_state', dState, `1 to ${MAX_MAMBA1_STATE} state entries per channel`);
  const dConv = positive(raw, 'mamba_d_conv', 4);
  if (dConv > 8) refuse('mamba_d_conv', dConv, '1 to 8 (the causal conv kernel width)');
  const rmsNormEps = num(raw, 'rms_norm_eps', 1e-5);
  if (!(rmsNormEps > 0 && Number.isFinite(rmsNormEps))) refuse('rms_norm_eps', rmsNormEps, 'a positive number');
  let attention: AttentionConfig | null = null;
  let shared: Zamba2Config | undefined;
  if (hybridLayers.length > 0) {
    const heads = positive(raw, 'num_attention_heads', 16);
    const kvHeads = positive(raw, 'num_key_value_heads', 16);
    if (heads % kvHeads !== 0) throw new UnsupportedModelError(`num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads}).`);
    const attnHidden = present(raw['attention_hidden_size']) ? positive(raw, 'attention_hidden_size') : 2 * hiddenSize;
    if (attnHidden !== 2 * hiddenSize) refuse('attention_hidden_size', attnHidden, `2 x hidden_size (${2 * hiddenSize}) only (the shared block reads concat(hidden, embeddings))`);
    if (!present(raw['attention_head_dim']) && (2 * hiddenSize) % heads !== 0) throw new UnsupportedModelError(`config.json: 2 x hidden_size (${2 * hiddenSize}) must be a multiple of num_attention_heads (${heads}).`);
    const headDim = present(raw['attention_head_dim']) ? positive(raw, 'attention_head_dim') : (2 * hiddenSize) / heads;
    attention = { numHeads: heads, numKvHeads: kvHeads, headDim, scaling: 1 / Math.sqrt(headDim / 2), bias: false, ropeTheta: null, rotaryDim: headDim };
    const act = raw['hidden_act'] ?? 'gelu';
    if (act !== 'gelu' && act !== 'silu' && act !== 'swish') refuse('hidden_act', act, '"gelu" (exact, erf) and "silu" (or "swish")');
    shared = { numMemBlocks: 1, hybridLayers, adapterRank: 0, attentionAdapters: false, intermediate: positive(raw, 'intermediate_size', 14848), activation: act === 'gelu' ? 'gelu' : 'silu' };
  }
  return {
    architecture: mt,
    vocabSize: positive(raw, 'vocab_size', 32000),
    hiddenSize,
    numLayers,
    layerKinds,
    rmsNormEps,
    embeddingMultiplier: 1,
    residualMultiplier: 1,
    logitsScaling: 1,
    tieWordEmbeddings: bool(raw, 'tie_word_embeddings', true),
    mamba: null,
    mamba1: { intermediate, dState, dtRank, dConv, convBias: bool(raw, 'mamba_conv_bias', true), projBias: bool(raw, 'mamba_proj_bias', false), falconEps: null, innerNormWeights: false, numHeads },
    attention,
    feedForward: null,
    mlp: null,
    ...(shared ? { zamba2: shared } : {}),
    ...tokenIdsOf(raw),
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Builds the validated config from config.json's parsed contents. Throws UnknownModelTypeError for a missing or
 * unsupported model_type (or architectures that contradict it) and UnsupportedConfigValueError for a setting the
 * engine does not implement, both UnsupportedModelErrors whose message names what was found and what is supported.
 */
export function configFromJson(raw: Json): ModelConfig {
  const mt = modelTypeOf(raw);
  checkCommon(raw, mt);
  const cfg =
    mt === 'granitemoehybrid' ? granite(raw) : mt === 'mamba2' ? mamba2(raw) : mt === 'bamba' ? bamba(raw) : mt === 'nemotron_h' ? nemotronH(raw) : mt === 'jamba' ? jamba(raw) : mt === 'falcon_h1' ? falconH1(raw) : mt === 'zamba2' ? zamba2(raw) : mt === 'zamba' ? zamba(raw) : mt === 'recurrent_gemma' ? recurrentGemma(raw) : mamba1(raw, mt);
  if (cfg.hiddenSize === 0 || cfg.vocabSize === 0 || cfg.numLayers === 0) {
    throw new UnsupportedModelError('config.json: hidden_size, vocab_size and num_hidden_layers must be positive.');
  }
  return deepFreeze(cfg);
}
