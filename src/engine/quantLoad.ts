// Loading weights quantized (issue 17): `--quant q4|q8|none` and the sidewinder.quantization setting.
//
// - A checkpoint stored quantized (the bundled model; format in the README, "Quantized weights") loads as it is
//   stored, whatever the mode.
// - A float checkpoint (bf16/f16/f32) is quantized at load time: under q8 every matrix of a linear layer and the
//   embedding in q8; under q4 the matrices in q4 and the embedding (the tied lm_head too) in q8, since the output
//   projection's error lands on every logit (llama.cpp's q4 types likewise keep the output tensor at higher
//   precision). Norms, conv, biases, the MoE router and the SSM's per-head parameters stay in floats.
// - The quantized planes are cached on disk next to the snapshots, in a safetensors file keyed by the model's
//   identity (memory/snapshot.ts modelIdentity) and the mode: the next load reads them instead of quantizing again.
//   A cache that is unreadable, from another model, or from an older format is ignored and rewritten.

import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError, UsageError } from './errors';
import { modelIdentity } from './memory/snapshot';
import type { ModelConfig } from './config';
import { loadWeights, type TensorRole } from './models/weights';
import { QUANT_GROUP, groupWords, quantize, type QuantBits, type QuantizedWeight } from './quant';
import { WeightStore, numel, writeSafetensors, type DType, type TensorToWrite } from './safetensors';

export type QuantMode = 'q4' | 'q8' | 'none';
export const QUANT_MODES: readonly QuantMode[] = ['q4', 'q8', 'none'];

/** Bumped when the cached planes would differ for the same weights (the quantizer, the layout, the policy). */
const CACHE_VERSION = '1';

export function parseQuantMode(value: string | undefined, what = '--quant'): QuantMode {
  if (value === undefined) return 'none';
  if ((QUANT_MODES as readonly string[]).includes(value)) return value as QuantMode;
  throw new UsageError(`${what} must be one of ${QUANT_MODES.join(', ')}; got ${JSON.stringify(value)}.`);
}

/**
 * The identity snapshots are keyed by: the model's, plus the mode when it quantizes (a state computed with q4
 * weights is not the bf16 model's state).
 */
export function quantizedModelId(identity: string, mode: QuantMode): string {
  return mode === 'none' ? identity : `${identity}-${mode}`;
}

/** The bits a float tensor is quantized to under `mode`; null: kept as stored. */
export function quantBitsFor(mode: QuantMode, role: TensorRole): QuantBits | null {
  if (mode === 'none' || role === 'other') return null;
  if (mode === 'q8' || role === 'embedding') return 8;
  return 4;
}

/** A tensor as a backend loads it: quantized planes, or the checkpoint's own float bytes. */
export type LoadedTensor = { kind: 'quantized'; q: QuantizedWeight } | { kind: 'float'; bytes: Uint8Array; dtype: DType };

/** How a model's weights were loaded (GpuModel.weightsLoad). */
export interface WeightsLoad {
  mode: QuantMode;
  quantized: number;
  fromCache: number;
  storedQuantized: number;
  cachePath: string | null;
}

export interface QuantLoadOptions {
  mode: QuantMode;
  /** Where the quantized planes are cached (the snapshots folder); null: quantize at every load. */
  cacheDir?: string | null;
}

/**
 * The checkpoint's tensors under a quantization mode, for a backend's loader (models/weights.ts loadWeights).
 * Call finish() once every tensor is loaded: it writes the cache if anything was quantized anew.
 */
export class QuantizedLoader {
  private readonly cached: WeightStore | null;
  private readonly planes: TensorToWrite[] = []; // every quantized tensor, for a rewrite of the cache
  private dirty = false; // something was quantized anew
  private readonly cacheFile: string | null;
  private readonly identity: string;
  /** Tensors quantized at this load (not read from the cache) and from the cache. */
  readonly counts = { quantized: 0, fromCache: 0, storedQuantized: 0 };

  constructor(
    private readonly store: WeightStore,
    modelDir: string,
    readonly opts: QuantLoadOptions,
  ) {
    this.identity = opts.mode === 'none' ? '' : modelIdentity(modelDir);
    this.cacheFile = opts.mode !== 'none' && opts.cacheDir ? path.join(opts.cacheDir, 'quantized', `${this.identity}-${opts.mode}.safetensors`) : null;
    this.cached = this.openCache();
  }

  /** The file the planes are cached in (null without a cache or without quantization). */
  get cachePath(): string | null {
    return this.cacheFile;
  }

  load(name: string, shape: number[], role: TensorRole): LoadedTensor {
    if (role === 'other' && this.store.isQuantized(name)) {
      throw new ModelFormatError(`tensor ${name} is stored quantized, but only the matrices of linear layers and the embedding may be (norms, conv, biases, the router and the SSM's parameters stay in floats).`);
    }
    const stored = this.store.quantized(name, shape);
    if (stored) {
      this.counts.storedQuantized++;
      return { kind: 'quantized', q: stored };
    }
    const bits = quantBitsFor(this.opts.mode, role);
    const info = this.store.info(name, shape);
    if (bits === null || shape.length < 2) return { kind: 'float', bytes: this.store.bytes(name, shape), dtype: info.dtype as DType };
    const K = shape[shape.length - 1];
    const rows = numel(shape) / K;
    let q = this.fromCache(name, shape, bits);
    if (q) this.counts.fromCache++;
    else {
      q = quantize(this.store.f32(name, shape), rows, K, bits);
      this.counts.quantized++;
      this.dirty = true;
    }
    if (this.cacheFile) this.planes.push(...planeTensors(name, shape, q));
    return { kind: 'quantized', q };
  }

  /** Writes the cache when something was quantized anew (a failure to write only costs the next load time). */
  finish(): void {
    this.cached?.close();
    if (!this.cacheFile || !this.dirty) return;
    try {
      writeSafetensors(this.cacheFile, this.planes, { sidewinder_model: this.identity, sidewinder_quant: this.opts.mode, sidewinder_quant_version: CACHE_VERSION, sidewinder_quant_group: String(QUANT_GROUP) });
    } catch {
      // A read-only or full disk: the weights are loaded all the same.
    }
    this.planes.length = 0;
    this.dirty = false;
  }

  /** Closes the cache without writing (a load that failed part way). */
  close(): void {
    this.cached?.close();
    this.planes.length = 0;
    this.dirty = false;
  }

  private openCache(): WeightStore | null {
    if (!this.cacheFile || !fs.existsSync(this.cacheFile)) return null;
    let store: WeightStore | null = null;
    try {
      store = WeightStore.openFile(this.cacheFile);
      const m = store.metadata();
      if (m.sidewinder_model === this.identity && m.sidewinder_quant === this.opts.mode && m.sidewinder_quant_version === CACHE_VERSION) return store;
    } catch {
      // unreadable: quantized again and rewritten
    }
    store?.close();
    return null;
  }

  private fromCache(name: string, shape: number[], bits: QuantBits): QuantizedWeight | null {
    if (!this.cached?.has(name)) return null;
    try {
      const q = this.cached.quantized(name, shape);
      return q && q.bits === bits ? q : null;
    } catch {
      return null;
    }
  }
}

/** A quantized weight of logical shape `shape` as it is stored (README "Quantized weights"): NAME (U32) and NAME.scales (F16). */
function planeTensors(name: string, shape: readonly number[], q: QuantizedWeight): TensorToWrite[] {
  const G = Math.ceil(shape[shape.length - 1] / QUANT_GROUP);
  const lead = shape.slice(0, -1);
  return [
    { name, dtype: 'U32', shape: [...lead, G, groupWords(q.bits)], data: q.data },
    { name: `${name}.scales`, dtype: 'F16', shape: [...lead, G], data: new Uint8Array(q.scales.buffer, q.scales.byteOffset, 2 * q.rows * G) },
  ];
}

/**
 * Writes `folder`'s checkpoint stored quantized under `mode` into `outDir` (model.safetensors, with config.json,
 * tokenizer and generation files copied): the matrices as the loader would quantize them, every other tensor as
 * stored. Loading it then reads the planes as they are (what the bundled model ships as).
 */
export function writeQuantizedCheckpoint(folder: { dir: string; config: ModelConfig; store: WeightStore }, outDir: string, mode: Exclude<QuantMode, 'none'>): { bytes: number; quantized: number } {
  const loader = new QuantizedLoader(folder.store, folder.dir, { mode });
  const tensors: TensorToWrite[] = [];
  const seen = new Set<string>();
  loadWeights(folder.config, folder.store, (name, shape, role) => {
    if (seen.has(name)) return name;
    seen.add(name);
    const t = loader.load(name, shape, role);
    if (t.kind === 'quantized') {
      tensors.push(...planeTensors(name, shape, t.q));
    } else {
      tensors.push({ name, dtype: t.dtype, shape: folder.store.info(name, shape).shape, data: t.bytes });
    }
    return name;
  });
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of fs.readdirSync(folder.dir)) {
    if (f.endsWith('.json') && f !== 'model.safetensors.index.json') fs.copyFileSync(path.join(folder.dir, f), path.join(outDir, f));
  }
  const file = path.join(outDir, 'model.safetensors');
  writeSafetensors(file, tensors, { format: 'pt', sidewinder_quant: mode, sidewinder_quant_group: String(QUANT_GROUP) });
  return { bytes: fs.statSync(file).size, quantized: loader.counts.quantized + loader.counts.storedQuantized };
}
