// A model folder on disk: config.json + safetensors + tokenizer, validated together, and the interface every
// backend (CPU reference, WebGPU) implements.

import * as fs from 'fs';
import * as path from 'path';
import type { KvBlockSource } from './memory/kvBlocks';
import type { SamplingOptions } from './sampling';
import { configFromJson, parseConfigJson, type ModelConfig } from './config';
import { ModelFormatError } from './errors';
import { foldGemmaNorms, scaleFalconH1, stackExperts, zambaViews } from './models/weights';
import { WeightStore } from './safetensors';
import { TextTokenizer } from './tokenizer';

export interface ModelFolder {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly store: WeightStore;
  readonly tokenizer: TextTokenizer | null;
  /** End-of-sequence ids from config.json, generation_config.json and the tokenizer, all of which stop generation. */
  readonly stopIds: readonly number[];
}

/** Opens and validates a checkpoint folder. The tokenizer is optional (logits work from ids). */
export function openModelFolder(dir: string, opts: { requireTokenizer?: boolean } = {}): ModelFolder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new ModelFormatError(`model folder ${dir} does not exist.`);
  }
  const cfgFile = path.join(dir, 'config.json');
  if (!fs.existsSync(cfgFile)) throw new ModelFormatError(`${dir} has no config.json; is this a Hugging Face model folder?`);
  const config = configFromJson(parseConfigJson(fs.readFileSync(cfgFile, 'utf8')));
  const store = WeightStore.open(dir);
  try {
    stackExperts(config, store);
    scaleFalconH1(config, store);
    foldGemmaNorms(config, store);
    zambaViews(config, store);
    return { dir, config, store, ...openRest(dir, config, opts) };
  } catch (e) {
    store.close();
    throw e;
  }
}

/** The tokenizer and the stop ids (after the weights, which are closed again when this throws). */
function openRest(dir: string, config: ModelConfig, opts: { requireTokenizer?: boolean }): { tokenizer: TextTokenizer | null; stopIds: number[] } {
  let tokenizer: TextTokenizer | null = null;
  if (fs.existsSync(path.join(dir, 'tokenizer.json')) || opts.requireTokenizer) tokenizer = TextTokenizer.load(dir);
  for (const id of config.eosTokenIds) {
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) throw new ModelFormatError(`config.json: eos_token_id ${JSON.stringify(id)} is not a token id.`);
  }
  const stop = new Set<number>(config.eosTokenIds);
  const genFile = path.join(dir, 'generation_config.json');
  if (fs.existsSync(genFile)) {
    let gen: Record<string, unknown>;
    try {
      gen = JSON.parse(fs.readFileSync(genFile, 'utf8'));
    } catch (e) {
      throw new ModelFormatError(`generation_config.json is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof gen !== 'object' || gen === null || Array.isArray(gen)) throw new ModelFormatError('generation_config.json must hold a JSON object.');
    const eos = gen['eos_token_id'];
    for (const id of Array.isArray(eos) ? eos : eos == null ? [] : [eos]) {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) throw new ModelFormatError(`generation_config.json: eos_token_id ${JSON.stringify(id)} is not a token id.`);
      stop.add(id as number);
    }
  }
  if (tokenizer?.special.eos != null) stop.add(tokenizer.special.eos);
  return { tokenizer, stopIds: [...stop] };
}

/**
 * Everything a model remembers after consuming `position` tokens: the conv and SSM state of each Mamba layer
 * (constant size) and the K/V rows of each attention layer (position rows each), in layer order.
 */
export interface ModelState {
  position: number;
  mamba: { conv: Float32Array; ssm: Float32Array }[];
  /** Dense K/V rows per attention layer; empty when `kvBlocks` holds them. */
  kv: { k: Float32Array; v: Float32Array }[];
  /**
   * The K/V as block sources instead (no copy): a snapshot read on demand, or the model's own block stores
   * (export with kv: 'blocks', valid until the model runs again).
   */
  kvBlocks?: KvBlockSource[];
}

/** Where the bytes are, for the status-bar gauge and the memory panel. */
export interface MemoryReport {
  weightsBytes: number;
  /** The weights' bytes by how they are stored: q4, q8 (group-wise quantized), bf16, f16, f32. */
  weightsByFormat?: Record<string, number>;
  stateBytes: number; // Mamba conv + SSM state (constant in the context length)
  kvGpuBytes: number; // attention K/V resident on the GPU
  kvHostBytes: number; // K/V paged out to host memory
  kvDiskBytes: number; // K/V spilled to disk
  scratchBytes: number; // activations and other working buffers
  kvBudgetBytes: number; // the GPU KV budget (0: unbounded)
  /**
   * Local attention (RecurrentGemma): each attention layer keeps K/V for this many positions only (a ring the
   * size of attention_window_size), so the KV bytes stop growing there; absent: the KV grows with the context.
   */
  kvWindowTokens?: number;
}

/** A saved point to return to: the Mamba state copied, the KV cache only marked (rows past it are dropped). */
export interface StateMark {
  readonly position: number;
  release(): void;
}

/** How LanguageModel.decodeStream chooses and how far it runs ahead. */
export interface DecodeStreamOptions extends SamplingOptions {
  maxNewTokens: number;
  seed?: number;
  /** Steps queued beyond the one whose id is being read (0: none; the next step is only encoded ahead). */
  lookahead?: number;
  /** The caller restores the state afterwards (a fork): steps run past the stop need not be undone. */
  discardsState?: boolean;
}

/**
 * A model with its recurrent state (Mamba conv + SSM state per Mamba layer, KV cache per attention layer).
 * `forward` continues from the current state: prefill is a call with many ids, decode a call with one.
 */
export interface LanguageModel {
  readonly config: ModelConfig;
  /** Tokens consumed so far (the position of the next token). */
  readonly position: number;
  /**
   * Feeds ids; returns logits [rows, vocab] for every position (all) or the last one only. With skipLogits it
   * returns an empty array: prefill whose logits nobody reads (the workspace ingest), which lets the WebGPU
   * backend return as soon as the work is queued, so the host prepares the next chunk while the GPU runs.
   */
  forward(ids: readonly number[], opts?: { allLogits?: boolean; skipLogits?: boolean }): Promise<Float32Array>;
  /**
   * Whether attention now runs on a selection of K/V blocks (the context is past what the GPU budget holds):
   * a chunk of tokens then shares one selection, made from the range of all its queries.
   */
  attendsSparsely?(): boolean;
  /**
   * Optional fast decode: feeds `firstId`, then each chosen token back in, with the choice made by the backend
   * itself (WebGPU: on the GPU, only the 4-byte id read back) instead of logits handed to the caller. Yields the
   * id chosen after each fed token, at most maxNewTokens of them. When the consumer stops (or the limit is
   * reached), the state holds `firstId` and every yielded id but the last, as with forward() token by token
   * (generate.ts); with `lookahead` > 0 a few steps past that may already be queued: they are undone unless
   * `discardsState` says the caller rolls the state back anyway.
   */
  decodeStream?(firstId: number, opts: DecodeStreamOptions): AsyncGenerator<number>;
  /** Forgets all state (back to position 0). */
  reset(): void;
  /** Bytes used now, by component. */
  memory(): MemoryReport;
  /**
   * Copies the state out (for snapshots); with kv: false only the Mamba part (for checkpoints); with
   * kv: 'blocks' the K/V as block sources, without a dense copy (valid until the model runs again). The state
   * is the one at the call: with kv: false a caller may go on feeding tokens before the promise resolves.
   */
  exportState(opts?: { kv?: boolean | 'blocks' }): Promise<ModelState>;
  /** Replaces the state with a saved one (K/V sources are read when needed, not all at once). */
  importState(state: ModelState): Promise<void>;
  /** Remembers the current state cheaply so a question or completion can run and then be undone. */
  fork(): Promise<StateMark>;
  /** Returns to a mark taken by fork() on this model (the mark stays valid for further rollbacks). */
  rollback(mark: StateMark): Promise<void>;
  dispose(): void;
}
