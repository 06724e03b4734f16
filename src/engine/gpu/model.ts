// The hybrid model on WebGPU. Weights go to the GPU in the checkpoint's own dtype (f32, f16 or bf16, packed in
// u32 words); the forward pass for a batch of T tokens is recorded once as a CommandList (bind groups and
// uniforms made once) and resubmitted: decode (T = 1) replays the same list every step, with only the `step`
// uniform (position) rewritten.
//
// Per layer (as in transformers' GraniteMoeHybridDecoderLayer / BambaDecoderLayer / Mamba2Block / NemotronHBlock /
// Jamba{Mamba,Attention}DecoderLayer):
//   x = rmsnorm(h);  h += r * mixer(x)            mixer = Mamba-2, Mamba-1 (MambaBlock / FalconMambaBlock),
//                                                 attention or an MLP block (Nemotron-H: down(relu(up x)^2)),
//                                                 r = residual_multiplier
//   x = rmsnorm(h);  h += r * (mlp(x) + moe(x))   Granite, Bamba and Jamba (SwiGLU; MoE: Granite, and Jamba's
//                                                 expert layers, which have no dense MLP)
// Zamba2's and Zamba's hybrid layers first run a shared block use (gpu/zamba2.ts): hm = h + t, then
// h += mamba(rmsnorm(hm)) (Zamba: a Mamba-1 mixer in heads, per-head x_proj / dt_proj and one scan).

import type { ModelConfig } from '../config';
import type { DecodeStreamOptions, LanguageModel, MemoryReport, ModelFolder, ModelState, StateMark } from '../model';
import { rng, sampleToken } from '../sampling';
import { loadWeights, type ModelWeights } from '../models/weights';
import { QuantizedLoader, type QuantLoadOptions, type WeightsLoad } from '../quantLoad';
import { denseKvSource, readDense } from '../memory/kvBlocks';
import { Gpu, type GpuWeight } from './device';
import { SparseKv, type SparseKvOptions } from './kvPager';
import { selectiveScanConstants } from './mamba1';
import { GpuError } from '../errors';
import { CommandList, GEMV_MAX_T, type Act, type SampleOptions } from './ops';
import { recordSharedBlockUse, sharedBlockScratch } from './zamba2';

const STEP_BYTES = 16;
const MIN_BUCKET = 16;

/**
 * How forward() cuts n tokens into passes: whole chunks, then the rest as powers of two from MIN_BUCKET up (its
 * binary digits, largest first), then what is left below MIN_BUCKET. Every size is one of a small set, recorded once
 * and reused: a prompt of any length (a completion's ~600 tokens) then records no new pass, where an exact tail
 * length recorded one each time (~30-40 ms of host work at granite-4.0-h-350m on a 2-core machine). The chunked
 * scan carries its state across the cuts, so the result is the same up to rounding.
 */
export function chunkLengths(n: number, chunk: number): number[] {
  const out: number[] = [];
  let left = n;
  while (left >= chunk) {
    out.push(chunk);
    left -= chunk;
  }
  for (let b = 1 << Math.floor(Math.log2(Math.max(1, chunk - 1))); b >= MIN_BUCKET; b >>= 1) {
    if (b < chunk && left >= b) {
      out.push(b);
      left -= b;
    }
  }
  if (left > 0) out.push(left);
  return out;
}

/** n tokens in whole chunks and one shorter rest (over sparse K/V, where the cuts matter). */
function wholeChunks(n: number, chunk: number): number[] {
  const out = Array<number>(Math.floor(n / chunk)).fill(chunk);
  if (n % chunk) out.push(n % chunk);
  return out;
}

/** The pass sizes chunkLengths gives for this chunk (kept in the pass cache once recorded). */
function keptPassSize(T: number, chunk: number): boolean {
  return T < MIN_BUCKET || T === chunk || (T < chunk && (T & (T - 1)) === 0);
}
const DEFAULT_PREFILL_CHUNK = 512;
const DEFAULT_KV_CAPACITY = 4096;

interface LayerState {
  conv: GPUBuffer | null; // [convDim, K-1] f32 (Mamba-1: [I, K-1])
  ssm: GPUBuffer | null; // [nh, hd, N] f32 (Mamba-1: [I, N])
  /** Mamba-1: the scan's f32 constants (-exp(A_log), dt_proj.bias, D), made once at load. */
  scanConstants: GPUBuffer | null;
  k: GPUBuffer | null; // [capacity, nKv*d] f32
  v: GPUBuffer | null;
}

/** One recorded forward pass for a fixed number of tokens, with the scratch buffers it owns. */
interface Pass {
  T: number;
  rows: number; // logits rows produced (T or 1)
  list: CommandList;
  logits: GPUBuffer;
  scratch: GPUBuffer[];
  q: Act | null; // attention queries [T, nH, d] (scratch shared by the attention layers)
  /** Dispatch index just before each attention layer's KV write, in layer order (sparse KV pages in there). */
  attentionMarks: number[];
}

export interface GpuModelOptions {
  gpu?: Gpu;
  /** Prefill is split into chunks of at most this many tokens (bounded scratch memory). */
  prefillChunk?: number;
  /** Initial KV capacity in tokens per attention layer (grows by doubling). Ignored with `kv`. */
  kvCapacity?: number;
  /** Sparse attention KV under a GPU budget (Quest selection, host/disk paging). Without it KV is dense. */
  kv?: SparseKvOptions;
  /** Quantize a float checkpoint's matrices at load (quantLoad.ts); default none. A quantized checkpoint loads as stored. */
  quant?: QuantLoadOptions;
}

/** A fork point: copies of every Mamba layer's state on the GPU, and the KV length at that time. */
class GpuMark implements StateMark {
  constructor(
    readonly owner: GpuModel,
    readonly position: number,
    readonly copies: { conv: GPUBuffer; ssm: GPUBuffer }[],
  ) {}
  release(): void {
    for (const c of this.copies) {
      c.conv.destroy();
      c.ssm.destroy();
    }
    this.copies.length = 0;
  }
}

export class GpuModel implements LanguageModel {
  private readonly hostMs = { forwardMs: 0, encodeMs: 0, timerFlushMs: 0 };
  private readonly states: LayerState[];
  private readonly step: GPUBuffer; // true positions (RoPE)
  private readonly kvStep: GPUBuffer; // positions in the KV working buffers (differ once KV is sparse)
  private readonly ids: GPUBuffer;
  private readonly sparseKv: SparseKv | null;
  private sparse = false; // the context no longer fits the KV working buffers: attention runs on a selection
  private readonly passes = new Map<string, Pass>();
  private kvCapacity: number;
  private pos = 0;
  private readonly prefillChunk: number;
  /** How the weights were loaded: the quantization mode, tensors quantized now / read from the cache / stored quantized. */
  weightsLoad: WeightsLoad = { mode: 'none', quantized: 0, fromCache: 0, storedQuantized: 0, cachePath: null };

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    private readonly w: ModelWeights<GpuWeight>,
    opts: GpuModelOptions,
    private readonly ownsGpu: boolean,
  ) {
    this.prefillChunk = opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    this.kvCapacity = opts.kvCapacity ?? DEFAULT_KV_CAPACITY;
    this.step = gpu.buffer(STEP_BYTES, 'step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.kvStep = gpu.buffer(STEP_BYTES, 'kv_step', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const nAttn = config.layerKinds.filter((k) => k === 'attention' || k === 'parallel' || k === 'hybrid').length;
    this.sparseKv = opts.kv && nAttn > 0 ? new SparseKv(gpu, config, opts.kv, this.prefillChunk, nAttn) : null;
    if (this.sparseKv) this.kvCapacity = this.sparseKv.workingRows;
    this.ids = gpu.buffer(4 * Math.max(this.prefillChunk, 1), 'ids');
    const m = config.mamba;
    const m1 = config.mamba1;
    const a = config.attention;
    // RecurrentGemma: an RG-LRU layer's conv state [L, K-1] and h [L]; a local attention layer's K and V rings
    // [window, nKv*d] take the conv / ssm places (a bounded state, forked and exported with the recurrent ones).
    const g = config.griffin;
    const ring = g && a ? 4 * g.window * a.numKvHeads * a.headDim : 0;
    // (a hybrid layer's Mamba decoder: Mamba-2 in Zamba2, Mamba-1 in Zamba)
    const mamba2 = (kind: string) => kind === 'mamba' || kind === 'parallel' || (kind === 'hybrid' && m !== null);
    const mamba1 = (kind: string) => kind === 'mamba1' || (kind === 'hybrid' && m === null);
    const kvKind = (kind: string) => kind === 'attention' || kind === 'parallel' || kind === 'hybrid';
    const convBytes = (kind: string) =>
      mamba2(kind) ? 4 * m!.convDim * (m!.dConv - 1) : mamba1(kind) ? 4 * m1!.intermediate * (m1!.dConv - 1) : kind === 'rglru' ? 4 * g!.lruWidth * (g!.convWidth - 1) : kind === 'local' ? ring : 0;
    const ssmBytes = (kind: string) =>
      mamba2(kind) ? 4 * m!.numHeads * m!.headDim * m!.dState : mamba1(kind) ? 4 * m1!.intermediate * m1!.dState : kind === 'rglru' ? 4 * g!.lruWidth : kind === 'local' ? ring : 0;
    this.states = config.layerKinds.map((kind, i) => ({
      conv: convBytes(kind) ? gpu.buffer(convBytes(kind), kind === 'local' ? `k_ring.${i}` : `conv_state.${i}`) : null,
      ssm: ssmBytes(kind) ? gpu.buffer(ssmBytes(kind), kind === 'local' ? `v_ring.${i}` : `ssm_state.${i}`) : null,
      scanConstants: mamba1(kind) ? selectiveScanConstants(gpu, w.layers[i].mamba1!.aLog, w.layers[i].mamba1!.dtBias, w.layers[i].mamba1!.D, m1!.intermediate, m1!.dState) : null,
      k: kvKind(kind) ? gpu.buffer(4 * this.kvCapacity * a!.numKvHeads * a!.headDim, `k_cache.${i}`) : null,
      v: kvKind(kind) ? gpu.buffer(4 * this.kvCapacity * a!.numKvHeads * a!.headDim, `v_cache.${i}`) : null,
    }));
  }

  static async load(folder: ModelFolder, opts: GpuModelOptions = {}): Promise<GpuModel> {
    const gpu = opts.gpu ?? (await Gpu.create());
    const { config, store } = folder;
    const loader = new QuantizedLoader(store, folder.dir, opts.quant ?? { mode: 'none' });
    const uploaded: GpuWeight[] = []; // freed again if the load fails part way (a shared device lives on)
    try {
      const weights = loadWeights(config, store, (name, shape, role) => {
        const t = loader.load(name, shape, role);
        const w = t.kind === 'quantized' ? gpu.uploadQuantized(name, t.q, shape) : gpu.uploadWeight(name, t.bytes, t.dtype, [...store.info(name, shape).shape]);
        uploaded.push(w);
        return w;
      });
      loader.finish();
      const model = new GpuModel(gpu, config, weights, opts, !opts.gpu);
      model.weightsLoad = { mode: loader.opts.mode, ...loader.counts, cachePath: loader.cachePath };
      return model;
    } catch (e) {
      loader.close();
      for (const w of uploaded) for (const p of w.parts) gpu.free(p.buffer);
      if (!opts.gpu) gpu.destroy();
      throw e;
    }
  }

  /** Builds a model from weights already on the GPU (used by the bench with random weights). */
  static fromWeights(gpu: Gpu, config: ModelConfig, weights: ModelWeights<GpuWeight>, opts: GpuModelOptions = {}): GpuModel {
    return new GpuModel(gpu, config, weights, opts, false);
  }

  get position(): number {
    return this.pos;
  }

  attendsSparsely(): boolean {
    return this.sparse;
  }

  /**
   * Host time (ms, accumulated) around sparse-KV paging, plus the time inside forward()'s chunks (`forwardMs`),
   * of it encoding and submitting their passes (`encodeMs`) and flushing a benchmark's pass timer
   * (`timerFlushMs`); null without paged KV. What a caller's wall time has beyond `forwardMs` is its own.
   */
  kvProfile(): Record<string, number> | null {
    return this.sparseKv ? { ...this.sparseKv.profile, ...this.hostMs } : null;
  }

  /** Bytes held on the GPU by the recurrent state and KV cache. */
  stateBytes(): { mamba: number; kv: number } {
    let mamba = 0;
    let kv = 0;
    this.states.forEach((s, i) => {
      const held = (s.conv?.size ?? 0) + (s.ssm?.size ?? 0);
      // a local attention layer's rings are its K/V, bounded by the window
      if (this.config.layerKinds[i] === 'local') kv += held;
      else mamba += held;
      kv += (s.k?.size ?? 0) + (s.v?.size ?? 0);
    });
    return { mamba, kv };
  }

  reset(): void {
    this.pos = 0;
    this.sparse = false;
    this.sparseKv?.truncate(0);
    const enc = this.gpu.device.createCommandEncoder();
    for (const s of this.states) for (const b of [s.conv, s.ssm]) if (b) enc.clearBuffer(b);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  memory(): MemoryReport {
    const seen = new Set<GpuWeight>();
    let weightsBytes = 0;
    const byFormat: Record<string, number> = {};
    const visit = (t: unknown): void => {
      if (!t || typeof t !== 'object') return;
      if ('parts' in t && 'format' in t) {
        const g = t as GpuWeight;
        if (seen.has(g)) return;
        seen.add(g);
        weightsBytes += g.bytes;
        byFormat[g.format] = (byFormat[g.format] ?? 0) + g.bytes;
      } else for (const v of Object.values(t)) visit(v);
    };
    visit(this.w);
    const st = this.stateBytes();
    let scratchBytes = this.step.size + this.ids.size;
    for (const s of this.states) scratchBytes += s.scanConstants?.size ?? 0;
    for (const p of this.passes.values()) scratchBytes += p.logits.size + p.scratch.reduce((n, b) => n + b.size, 0);
    scratchBytes += this.sparseKv?.scratchBytes() ?? 0;
    const paged = this.sparseKv?.bytes() ?? { gpu: 0, host: 0, disk: 0 };
    return {
      weightsBytes,
      weightsByFormat: byFormat,
      stateBytes: st.mamba,
      kvGpuBytes: st.kv + paged.gpu,
      kvHostBytes: paged.host,
      kvDiskBytes: paged.disk,
      scratchBytes,
      kvBudgetBytes: this.sparseKv?.opts.gpuBudgetBytes ?? 0,
      ...(this.config.griffin && this.config.layerKinds.includes('local') ? { kvWindowTokens: this.config.griffin.window } : {}),
    };
  }

  /**
   * Blocks paged into the slots from the host stores and from the forwarding buffers; selections made from
   * summaries of groups of blocks (a context past the summaries' reserve) and the blocks those scored on the host.
   */
  kvPaging(): { fromHost: number; fromForward: number; groupedSelections: number; hostScoredBlocks: number; cappedSelections: number } {
    const kv = this.sparseKv;
    return {
      fromHost: kv?.paged.fromHost ?? 0,
      fromForward: kv?.paged.fromForward ?? 0,
      groupedSelections: kv?.grouped.selections ?? 0,
      hostScoredBlocks: kv?.grouped.blocksScored ?? 0,
      cappedSelections: kv?.grouped.capped ?? 0,
    };
  }

  /**
   * Work counters, accumulated since the model was made (the K/V paging) and the device was created (read-backs):
   * take the difference over a span of decoded tokens to get the work per token.
   */
  workCounters(): { blocksPaged: number; hostScoredBlocks: number; readBackMaps: number; readBackBytes: number } {
    const p = this.kvPaging();
    return { blocksPaged: p.fromHost + p.fromForward, hostScoredBlocks: p.hostScoredBlocks, readBackMaps: this.gpu.readBacks.maps, readBackBytes: this.gpu.readBacks.bytes };
  }

  /** Whether paged K/V keeps each chunk's rows on the GPU for the next chunk (budget permitting). */
  get kvForwarding(): boolean {
    return this.sparseKv?.forwarding ?? false;
  }

  exportState(opts: { kv?: boolean | 'blocks' } = {}): Promise<ModelState> {
    return opts.kv === false ? this.exportMamba() : this.exportWithKv(opts);
  }

  /**
   * The Mamba state (a checkpoint) in one copy and one map, taken when called: the copies are queued behind the
   * work submitted so far, so the caller may feed the next chunk before awaiting it, and nothing waits for the
   * K/V copy-out to the host.
   */
  private exportMamba(): Promise<ModelState> {
    const layers = this.states.filter((s) => s.conv && s.ssm);
    const position = this.pos;
    return this.gpu.readMany(layers.flatMap((s) => [{ buffer: s.conv! }, { buffer: s.ssm! }])).then((parts) => ({
      position,
      mamba: layers.map((_, i) => ({ conv: new Float32Array(parts[2 * i]), ssm: new Float32Array(parts[2 * i + 1]) })),
      kv: [],
    }));
  }

  private async exportWithKv(opts: { kv?: boolean | 'blocks' }): Promise<ModelState> {
    await this.sparseKv?.settle();
    await this.gpu.device.queue.onSubmittedWorkDone();
    const a = this.config.attention;
    const kvBytes = a ? 4 * this.pos * a.numKvHeads * a.headDim : 0;
    const mamba: ModelState['mamba'] = [];
    const kv: ModelState['kv'] = [];
    for (const s of this.states) {
      if (s.conv && s.ssm) {
        mamba.push({ conv: new Float32Array(await this.gpu.read(s.conv, s.conv.size)), ssm: new Float32Array(await this.gpu.read(s.ssm, s.ssm.size)) });
      }
      if (s.k && s.v && opts.kv === 'blocks' && this.sparseKv) {
        // the host stores hold every row: no copy
      } else if (s.k && s.v && opts.kv !== false && this.sparseKv) {
        kv.push(this.sparseKv.dense(kv.length, this.pos));
      } else if (s.k && s.v && opts.kv !== false) {
        const k = kvBytes ? new Float32Array(await this.gpu.read(s.k, kvBytes)) : new Float32Array(0);
        const v = kvBytes ? new Float32Array(await this.gpu.read(s.v, kvBytes)) : new Float32Array(0);
        kv.push({ k, v });
      }
    }
    if (opts.kv === 'blocks' && this.sparseKv) {
      const kvLayers = this.attentionStates().length;
      return { position: this.pos, mamba, kv: [], kvBlocks: Array.from({ length: kvLayers }, (_, j) => this.sparseKv!.source(j)) };
    }
    return { position: this.pos, mamba, kv };
  }

  async importState(state: ModelState): Promise<void> {
    await this.sparseKv?.settle();
    const mambaLayers = this.states.filter((s) => s.conv && s.ssm);
    const kvLayers = this.states.filter((s) => s.k && s.v);
    if (state.mamba.length !== mambaLayers.length || (state.kvBlocks ?? state.kv).length !== kvLayers.length) {
      throw new RangeError('the saved state does not match this model (layer count).');
    }
    this.ensureKvCapacity(state.position);
    mambaLayers.forEach((s, i) => {
      if (state.mamba[i].conv.byteLength !== s.conv!.size || state.mamba[i].ssm.byteLength !== s.ssm!.size) {
        throw new RangeError('the saved state does not match this model (Mamba state size).');
      }
      this.gpu.write(s.conv!, state.mamba[i].conv);
      this.gpu.write(s.ssm!, state.mamba[i].ssm);
    });
    const kv = this.sparseKv;
    const a = this.config.attention;
    const rowLen = a ? a.numKvHeads * a.headDim : 0;
    // Block sources (a snapshot on disk) are adopted without reading them: blocks are paged in when selected.
    const sources = state.kvBlocks ?? state.kv.map((d) => denseKvSource(d.k.subarray(0, state.position * rowLen), d.v.subarray(0, state.position * rowLen), rowLen));
    if (kv) sources.forEach((src, i) => kv.adoptSource(i, src, state.position));
    this.sparse = !!kv && state.position > kv.workingRows;
    if (!this.sparse) {
      kvLayers.forEach((s, i) => {
        const d = state.kvBlocks ? readDense(state.kvBlocks[i], state.position) : state.kv[i];
        if (d.k.length) this.gpu.write(s.k!, d.k.subarray(0, state.position * rowLen));
        if (d.v.length) this.gpu.write(s.v!, d.v.subarray(0, state.position * rowLen));
      });
    }
    this.pos = state.position;
    await this.gpu.device.queue.onSubmittedWorkDone();
  }

  async fork(): Promise<StateMark> {
    const enc = this.gpu.device.createCommandEncoder();
    const copies: { conv: GPUBuffer; ssm: GPUBuffer }[] = [];
    for (const s of this.states) {
      if (!s.conv || !s.ssm) continue;
      const c = { conv: this.gpu.buffer(s.conv.size, 'fork_conv'), ssm: this.gpu.buffer(s.ssm.size, 'fork_ssm') };
      enc.copyBufferToBuffer(s.conv, 0, c.conv, 0, s.conv.size);
      enc.copyBufferToBuffer(s.ssm, 0, c.ssm, 0, s.ssm.size);
      copies.push(c);
    }
    this.gpu.device.queue.submit([enc.finish()]);
    return new GpuMark(this, this.pos, copies);
  }

  async rollback(mark: StateMark): Promise<void> {
    if (!(mark instanceof GpuMark) || mark.owner !== this) throw new RangeError('rollback needs a mark taken by fork() on this model.');
    await this.sparseKv?.settle();
    const enc = this.gpu.device.createCommandEncoder();
    let i = 0;
    for (const s of this.states) {
      if (!s.conv || !s.ssm) continue;
      const c = mark.copies[i++];
      enc.copyBufferToBuffer(c.conv, 0, s.conv, 0, s.conv.size);
      enc.copyBufferToBuffer(c.ssm, 0, s.ssm, 0, s.ssm.size);
    }
    this.gpu.device.queue.submit([enc.finish()]);
    // Dense KV rows past the mark are simply overwritten later: attention only reads rows below the position.
    this.pos = mark.position;
    const kv = this.sparseKv;
    if (kv) {
      kv.truncate(mark.position);
      if (this.sparse && mark.position <= kv.workingRows) {
        // Back under the budget: the working buffers hold the rows in order again.
        this.sparse = false;
        this.attentionStates().forEach((s, j) => {
          const d = kv.dense(j, mark.position);
          this.gpu.write(s.k!, d.k);
          this.gpu.write(s.v!, d.v);
        });
        kv.slotsInOrder(mark.position);
      }
    }
  }

  dispose(): void {
    this.sparseKv?.destroy();
    for (const p of this.passes.values()) this.freePass(p);
    this.passes.clear();
    for (const s of this.states) if (s.scanConstants) this.gpu.free(s.scanConstants);
    if (this.ownsGpu) this.gpu.destroy();
  }

  async forward(ids: readonly number[], opts: { allLogits?: boolean; skipLogits?: boolean } = {}): Promise<Float32Array> {
    const V = this.config.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${V}).`);
    }
    if (ids.length === 0) throw new RangeError('forward needs at least one token.');
    const chunks: (readonly number[])[] = [];
    let at = 0;
    // Over sparse K/V a chunk's queries share one block selection, so the cuts would change what is attended to:
    // there (or where this call crosses into it) chunks keep their exact lengths, as the CPU reference's.
    const kv = this.sparseKv;
    const exact = kv !== null && (this.sparse || this.pos + ids.length > kv.workingRows);
    for (const n of exact ? wholeChunks(ids.length, this.prefillChunk) : chunkLengths(ids.length, this.prefillChunk)) {
      chunks.push(ids.slice(at, at + n));
      at += n;
    }
    const out: Float32Array[] = [];
    for (let c = 0; c < chunks.length; c++) {
      const last = c === chunks.length - 1;
      const want = opts.skipLogits ? 'none' : opts.allLogits ? 'all' : last ? 'last' : 'none';
      const logits = await this.runChunk(chunks[c], want);
      if (logits) out.push(logits);
    }
    if (out.length === 0) return new Float32Array(0);
    if (out.length === 1) return out[0];
    const all = new Float32Array(out.reduce((n, a) => n + a.length, 0));
    let o = 0;
    for (const a of out) {
      all.set(a, o);
      o += a.length;
    }
    return all;
  }

  private async runChunk(ids: readonly number[], want: 'all' | 'last' | 'none'): Promise<Float32Array | null> {
    const t0 = performance.now();
    try {
      return await this.runChunkTimed(ids, want);
    } finally {
      this.hostMs.forwardMs += performance.now() - t0;
    }
  }

  private async runChunkTimed(ids: readonly number[], want: 'all' | 'last' | 'none'): Promise<Float32Array | null> {
    const T = ids.length;
    const pos0 = this.pos;
    if (this.gpu.timer?.nearlyFull) {
      const t = performance.now();
      await this.gpu.timer.flush(); // benchmarks only
      this.hostMs.timerFlushMs += performance.now() - t;
    }
    this.ensureKvCapacity(pos0 + T);
    const pass = this.pass(T, want === 'all' ? T : want === 'last' ? 1 : 0, false, pos0 === 0);
    const kv = this.sparseKv;
    // The context outgrows the KV working buffers: from now on attention runs on a selection of blocks.
    if (kv && !this.sparse && pos0 + T > kv.workingRows) this.sparse = true;
    this.gpu.write(this.ids, new Uint32Array(ids));
    this.gpu.write(this.step, new Uint32Array([pos0, T, 0, 0]));
    this.gpu.write(this.kvStep, new Uint32Array([this.sparse ? kv!.workingPosition(pos0) : pos0, T, 0, 0]));
    if (!this.sparse) {
      pass.list.submit();
      await kv?.settle(); // the previous chunk's rows reach the host store while this one runs
    } else {
      // Submit up to each attention layer's KV write, page that layer's selection in, go on.
      let from = 0;
      for (let j = 0; j < pass.attentionMarks.length; j++) {
        this.submitRange(pass.list, from, pass.attentionMarks[j], `segment${j}`);
        from = pass.attentionMarks[j];
        await kv!.prepare(j, pass.q!, T, pos0, this.attentionStates()[j].k!, this.attentionStates()[j].v!);
      }
      this.submitRange(pass.list, from, pass.list.dispatchCount, `segment${pass.attentionMarks.length}`);
    }
    // Every K/V row also goes to the host store, from which blocks are paged in once the context is sparse.
    if (kv) kv.commit(T, pos0, this.attentionStates().map((s) => ({ k: s.k!, v: s.v! })), this.sparse);
    this.pos += T;
    if (want === 'none') {
      // With sparse KV the chunk's K/V copy-out is in flight: the next chunk waits for it (settle) once its
      // own first layers are submitted, so the GPU is not left idle here.
      if (!kv) await this.gpu.device.queue.onSubmittedWorkDone();
      // Nothing is read back (which would check): a lost device, or an error from building or submitting this
      // chunk's passes, is reported here, without waiting for the GPU's work.
      await this.gpu.check();
      return null;
    }
    return new Float32Array(await this.gpu.read(pass.logits, 4 * pass.rows * this.config.vocabSize));
  }

  private attentionStates(): LayerState[] {
    return this.states.filter((s) => s.k !== null);
  }

  private submitRange(list: CommandList, from: number, to: number, label = 'layers'): void {
    if (to <= from) return;
    const t = performance.now();
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.gpu.passDescriptor(label));
    list.encode(pass, from, to);
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
    this.hostMs.encodeMs += performance.now() - t;
  }

  /** Grows every KV cache to hold `needed` tokens, keeping its contents; recorded passes are rebuilt. */
  private ensureKvCapacity(needed: number): void {
    if (needed <= this.kvCapacity || !this.config.attention || this.sparseKv) return;
    let cap = this.kvCapacity;
    while (cap < needed) cap *= 2;
    const a = this.config.attention;
    const row = 4 * a.numKvHeads * a.headDim;
    const enc = this.gpu.device.createCommandEncoder();
    const old: GPUBuffer[] = [];
    this.states.forEach((s, i) => {
      for (const key of ['k', 'v'] as const) {
        const b = s[key];
        if (!b) continue;
        const nb = this.gpu.buffer(row * cap, `${key}_cache.${i}`);
        if (this.pos > 0) enc.copyBufferToBuffer(b, 0, nb, 0, row * this.pos);
        s[key] = nb;
        old.push(b);
      }
    });
    this.gpu.device.queue.submit([enc.finish()]);
    for (const b of old) b.destroy();
    this.kvCapacity = cap;
    for (const p of this.passes.values()) this.freePass(p);
    this.passes.clear();
  }

  private freePass(p: Pass): void {
    p.list.destroy();
    for (const b of p.scratch) b.destroy();
    p.logits.destroy();
  }

  /**
   * Greedy decoding with the token choice on the GPU: feeds `firstId`, then each argmax back into the next
   * step without a CPU round trip; the ids are collected in a GPU buffer and read once at the end.
   * Returns the n ids that follow `firstId`.
   */
  async decodeGreedy(n: number, firstId = 0): Promise<number[]> {
    if (n <= 0) return [];
    if (this.sparseKv) {
      // With paged KV every step needs the CPU (selection, paging): decode token by token.
      const out: number[] = [];
      let id = firstId;
      for (let i = 0; i < n; i++) {
        const logits = await this.forward([id]);
        id = 0;
        for (let v = 1; v < logits.length; v++) if (logits[v] > logits[id]) id = v;
        out.push(id);
      }
      return out;
    }
    this.ensureKvCapacity(this.pos + n);
    const pass = this.pass(1, 1, true, this.pos === 0);
    const ring = this.gpu.buffer(4 * n, 'decoded_ids');
    this.gpu.write(this.ids, new Uint32Array([firstId]));
    for (let i = 0; i < n; i++) {
      this.gpu.write(this.step, new Uint32Array([this.pos, 1, i, 0]));
      this.gpu.write(this.kvStep, new Uint32Array([this.pos, 1, i, 0]));
      pass.list.submit();
      const enc = this.gpu.device.createCommandEncoder();
      enc.copyBufferToBuffer(this.ids, 0, ring, 4 * i, 4);
      this.gpu.device.queue.submit([enc.finish()]);
      this.pos += 1;
    }
    const out = Array.from(new Uint32Array(await this.gpu.read(ring, 4 * n)));
    ring.destroy();
    return out;
  }

  /**
   * LanguageModel.decodeStream on the GPU: each step's pass ends in the token choice (kernels/sample.wgsl, argmax
   * when greedy), which the next step's embedding reads from the ids buffer; the host only reads the 4-byte id
   * back, through a small staging buffer per step in flight, and encodes the next step while one runs. With
   * lookahead 0 a step is submitted once the previous id is known (never past a stop); with lookahead L, L more
   * are queued, and those run past the stop are undone (a fork taken first, then the kept ids fed again) unless
   * the caller discards the state. Once the context outgrows the sparse KV working buffers (each step then
   * pages its blocks through the host), the rest goes token by token through forward().
   */
  async *decodeStream(firstId: number, opts: DecodeStreamOptions): AsyncGenerator<number> {
    const n = opts.maxNewTokens;
    const V = this.config.vocabSize;
    if (!Number.isInteger(firstId) || firstId < 0 || firstId >= V) throw new RangeError(`token id ${firstId} is outside the vocabulary [0, ${V}).`);
    if (!(n > 0)) return;
    const ahead = Math.max(0, Math.floor(opts.lookahead ?? 0));
    const temperature = opts.greedy ? 0 : (opts.temperature ?? 1);
    const topP = Math.min(Math.max(opts.topP ?? 1, 1e-6), 1);
    const seed = (opts.seed ?? 0x5eed) >>> 0;
    const kv = this.sparseKv;
    if (!kv) this.ensureKvCapacity(this.pos + n + 1);
    const mark = ahead > 0 && !opts.discardsState ? await this.fork() : null;
    // The decode pass with the choice at its end, recorded when a step first takes the GPU path (a stream over
    // sparse K/V never does).
    let pass: Pass | null = null;
    const outs: number[] = []; // the ids yielded; step k's input is outs[k - 1] (firstId for k = 0)
    let submitted = 0;
    const inflight: { staging: GPUBuffer; id: Promise<number> }[] = [];
    const free: GPUBuffer[] = [];
    let prepared: { cb: GPUCommandBuffer; staging: GPUBuffer } | null = null;
    // A step takes the GPU path while its position fits the dense KV (or the sparse KV's working rows).
    // (Position 0 goes through forward(): a first token there is the chunked scan's, not the decode step's.)
    const fits = () => this.pos > 0 && !this.sparse && (!kv || this.pos + 1 <= kv.workingRows);
    const encode = () => {
      const staging = free.pop() ?? this.gpu.device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'decoded_id' });
      const t = performance.now();
      const enc = this.gpu.device.createCommandEncoder();
      const cp = enc.beginComputePass(this.gpu.passDescriptor('decode'));
      pass ??= this.pass(1, 1, temperature > 0 ? { temperature, topP } : true, false);
      pass.list.encode(cp);
      cp.end();
      enc.copyBufferToBuffer(this.ids, 0, staging, 0, 4);
      const cb = enc.finish();
      this.hostMs.encodeMs += performance.now() - t;
      return { cb, staging };
    };
    let onGpu = false; // the last step ran here: the ids buffer holds its choice, the next step's input
    const submit = async () => {
      if (!onGpu) this.gpu.write(this.ids, new Uint32Array([outs.at(-1) ?? firstId]));
      onGpu = true;
      const { cb, staging } = prepared ?? encode();
      prepared = null;
      const pos0 = this.pos;
      this.gpu.write(this.step, new Uint32Array([pos0, 1, seed, 0]));
      this.gpu.write(this.kvStep, new Uint32Array([pos0, 1, seed, 0]));
      this.gpu.device.queue.submit([cb]);
      this.pos += 1;
      submitted++;
      const id = staging.mapAsync(GPUMapMode.READ, 0, 4).then(() => {
        const v = new Uint32Array(staging.getMappedRange(0, 4))[0];
        staging.unmap();
        return v;
      });
      id.catch(() => undefined); // awaited in order below, or left when the consumer stops
      inflight.push({ staging, id });
      if (kv) {
        await kv.settle(1); // at most two K/V copy-outs in flight
        kv.commit(1, pos0, this.attentionStates().map((st) => ({ k: st.k!, v: st.v! })), false);
      }
    };
    try {
      while (outs.length < n) {
        // Queue the steps allowed in flight (the one read next and `ahead` more), then encode the one after.
        while (submitted < n && submitted - outs.length <= ahead && fits()) await submit();
        if (!prepared && submitted < n && fits()) prepared = encode();
        let id: number;
        const head = inflight.shift();
        if (head) {
          try {
            id = await head.id;
          } catch (e) {
            await this.gpu.check();
            throw new GpuError(`reading the decoded token failed: ${(e as Error).message}`);
          } finally {
            free.push(head.staging);
          }
          await this.gpu.check(); // a step that failed validation leaves a stale id: report the error instead
        } else {
          // Token by token once the context is past the KV working rows: forward() and the CPU's choice.
          const logits = await this.forward([outs.at(-1) ?? firstId]);
          submitted++;
          onGpu = false;
          id = sampleToken(logits, { greedy: temperature <= 0, temperature, topP }, rng(seed ^ this.pos));
        }
        outs.push(id);
        yield id;
      }
    } finally {
      prepared = null;
      // Steps still in flight finish (their ids are not needed); the state then goes back to where the consumer stopped.
      await Promise.all(inflight.map((f) => f.id.catch(() => undefined)));
      for (const f of inflight.splice(0)) free.push(f.staging);
      try {
        await kv?.settle();
        if (mark && submitted > outs.length) {
          await this.rollback(mark);
          await this.forward([firstId, ...outs.slice(0, outs.length - 1)], { skipLogits: true });
        }
      } finally {
        mark?.release();
        for (const b of free) b.destroy();
      }
    }
    await this.gpu.check();
  }

  /** Dispatches in one decode step (the number that bounds decode speed). */
  dispatchesPerToken(): number {
    return this.pass(1, 1, true).list.dispatchCount;
  }

  /**
   * The recorded pass for T tokens. `atStart` (no token before): a one-token pass there is transformers' chunked
   * scan, not its decode step, which matters where the dt limit differs between them (dtLimitInDecode false).
   */
  private pass(T: number, rows: number, choose: boolean | SampleOptions = false, atStart = false): Pass {
    const first = atStart && T === 1 && this.config.mamba !== null && !this.config.mamba.dtLimitInDecode && (this.config.layerKinds.some((k) => k === 'mamba' || k === 'parallel' || k === 'hybrid'));
    const sample = typeof choose === 'object' ? choose : null;
    const key = `${T}:${rows}${sample ? `:sample:${sample.temperature}:${sample.topP}` : choose ? ':argmax' : ''}${first ? ':first' : ''}`;
    let p = this.passes.get(key);
    if (!p) {
      // forward() asks for the sizes chunkLengths gives (a bounded set, kept once recorded) while dense; any other
      // size (an exact rest over sparse K/V, a caller's own) is dropped again when the cache grows.
      if (this.passes.size > 48) {
        for (const [k, q] of this.passes) {
          if (!keptPassSize(q.T, this.prefillChunk)) {
            this.freePass(q);
            this.passes.delete(k);
          }
        }
      }
      p = this.record(T, rows, first);
      if (sample) p.list.sample({ buffer: p.logits }, this.ids, this.config.vocabSize, sample, this.step);
      else if (choose) p.list.argmax({ buffer: p.logits }, this.ids, this.config.vocabSize);
      this.passes.set(key, p);
    }
    return p;
  }

  /** Records the whole forward pass for T tokens: embedding, every layer, final norm and lm_head rows. */
  private record(T: number, rows: number, first = false): Pass {
    const cfg = this.config;
    const gpu = this.gpu;
    const H = cfg.hiddenSize;
    const m = cfg.mamba;
    const a = cfg.attention;
    const ff = cfg.feedForward;
    const r = cfg.residualMultiplier;
    const eps = cfg.rmsNormEps;
    const scratch: GPUBuffer[] = [];
    const buf = (floats: number, label: string): Act => {
      const b = gpu.buffer(4 * Math.max(1, floats), label);
      scratch.push(b);
      return { buffer: b };
    };
    const col = (x: Act, offset: number, stride: number): Act => ({ buffer: x.buffer, offset, stride });
    const list = new CommandList(gpu);

    const attentionMarks: number[] = [];
    const h = buf(T * H, 'h'); // residual stream [T, H]
    const x = buf(T * H, 'x'); // normalised input of the current block [T, H]
    list.embedding(this.ids, this.w.embed, h, T, H, cfg.embeddingMultiplier);

    const I = m?.intermediate ?? 0;
    const gN = m ? m.nGroups * m.dState : 0;
    const hasMamba = m !== null && cfg.layerKinds.some((k) => k === 'mamba' || k === 'parallel' || k === 'hybrid');
    // y * silu(z) without a norm (Falcon-H1, mamba_rms_norm false): [T, z | y] for swiglu
    const zy = hasMamba && this.w.layers.some((l) => l.mamba && !l.mamba.gatedNorm) ? buf(T * 2 * I, 'ssm_zy') : null;
    const zxbcdt = hasMamba ? buf(T * m.inProjDim, 'zxbcdt') : null; // [T, z | xBC | dt]
    const xbc = hasMamba ? buf(T * m.convDim, 'xbc') : null; // [T, x | B | C] after conv
    const y = hasMamba ? buf(T * I, 'ssm_y') : null; // [T, I]
    const g = hasMamba ? buf(T * I, 'gated') : null;
    const qd = a ? a.numHeads * a.headDim : 0;
    const kd = a ? a.numKvHeads * a.headDim : 0;
    const q = a ? buf(T * qd, 'q') : null;
    const k = a ? buf(T * kd, 'k') : null;
    const v = a ? buf(T * kd, 'v') : null;
    const o = a ? buf(T * qd, 'attn_out') : null;
    const S = ff?.sharedIntermediate ?? 0;
    const E = ff?.numExperts ?? 0;
    const topK = ff?.topK ?? 0;
    const EI = ff?.expertIntermediate ?? 0;
    const gu = S > 0 ? buf(T * 2 * S, 'mlp_gate_up') : null;
    const act = S > 0 ? buf(T * S, 'mlp_act') : null;
    const M = cfg.mlp?.intermediate ?? 0; // Nemotron-H MLP blocks
    const mUp = M > 0 ? buf(T * M, 'mlp_block_up') : null;
    const mAct = M > 0 ? buf(T * M, 'mlp_block_act') : null;
    // A one-token step after earlier tokens is transformers' decode step: no dt limit where dtLimitInDecode is false.
    const dtLimit = !m || m.dtLimitInDecode || T > 1 || first;
    // Mamba-1 scratch: xz [T, x | z], the conv output xc [T, I], x_proj's xdbc [T, dt_low | B | C], dt_proj's dt [T, I]
    const m1 = cfg.mamba1;
    const I1 = m1?.intermediate ?? 0;
    const W1 = m1 ? m1.dtRank + 2 * m1.dState : 0;
    const hasMamba1 = m1 !== null && this.w.layers.some((l) => l.mamba1);
    const nh1 = m1?.numHeads ?? 1; // Zamba: heads with their own x_proj / dt_proj, xdbc [T, heads x (dt_low | B | C)]
    const xz = hasMamba1 ? buf(T * 2 * I1, 'm1_xz') : null;
    const xc = hasMamba1 ? buf(T * I1, 'm1_xc') : null;
    const xdbc = hasMamba1 ? buf(T * W1 * nh1, 'm1_xdbc') : null;
    const xdbcN = hasMamba1 && m1.innerNormWeights ? buf(T * W1, 'm1_xdbc_normed') : null; // Jamba's weighted norms
    const dt1 = hasMamba1 ? buf(T * I1, 'm1_dt') : null;
    const y1 = hasMamba1 ? buf(T * I1, 'm1_y') : null;
    // RecurrentGemma scratch: linear_y / linear_x outputs, the conv output, the RG-LRU output [T, L]; the MLP's
    // gate | up [T, 2M] and its GeGLU [T, M]
    const gr = cfg.griffin;
    const L = gr?.lruWidth ?? 0;
    const GM = gr?.mlpIntermediate ?? 0;
    const hasRglru = cfg.layerKinds.includes('rglru');
    const yb = hasRglru ? buf(T * L, 'rg_y') : null;
    const xb = hasRglru ? buf(T * L, 'rg_x') : null;
    const uc = hasRglru ? buf(T * L, 'rg_conv') : null;
    const hr = hasRglru ? buf(T * L, 'rg_h') : null;
    const ggu = gr ? buf(T * 2 * GM, 'gelu_mlp_gate_up') : null;
    const gact = gr ? buf(T * GM, 'gelu_mlp_act') : null;
    const routerLogits = E > 0 ? buf(T * E, 'router_logits') : null;
    const experts = E > 0 ? buf(T * topK, 'moe_experts') : null;
    const gates = E > 0 ? buf(T * topK, 'moe_gates') : null;
    const up = E > 0 ? buf(T * topK * 2 * EI, 'moe_up') : null;
    const upAct = E > 0 ? buf(T * topK * EI, 'moe_act') : null;
    const down = E > 0 ? buf(T * topK * H, 'moe_down') : null;
    // Zamba2: the embeddings kept for the shared blocks, their scratch, and hm = h + t (a hybrid layer's Mamba input)
    const zamba = cfg.zamba2 && cfg.layerKinds.includes('hybrid') ? cfg.zamba2 : null;
    const emb = zamba ? buf(T * H, 'z2_emb') : null;
    const hm = zamba ? buf(T * H, 'z2_mamba_in') : null;
    const zs = zamba ? sharedBlockScratch(cfg, T, buf, { q: q!, k: k!, v: v!, o: o! }) : null;
    if (emb) list.copy(h, emb, T, H);

    // Decode (T <= 4) fuses each RMSNorm / gated norm / SwiGLU into the GEMV that reads it: fewer dispatches,
    // which is what bounds decode speed. Prefill keeps them apart (shared scratch, tiled GEMMs).
    const fuse = T <= 4;
    this.w.layers.forEach((layer, i) => {
      const st = this.states[i];
      // Falcon-H1's parallel layers add both mixers to h, so their input is x, never h with the norm fused.
      const par = layer.kind === 'parallel';
      const fuseIn = fuse && !par;
      // Zamba2's hybrid layers: the shared block use makes the Mamba-2 decoder's input hm = h + t
      if (layer.hybrid) {
        recordSharedBlockUse(list, cfg, layer.hybrid, zs!, T, { h, emb: emb!, out: hm!, kCache: st.k!, vCache: st.v!, step: this.step, kvStep: this.kvStep, markKvWrite: () => attentionMarks.push(list.dispatchCount) });
      }
      const src = layer.hybrid ? hm! : h;
      if (!fuseIn) list.rmsNorm(src, layer.norm, x, T, H, eps);
      // the mixer's input: x = rmsnorm(h), or h with the norm fused into each projection
      const input = fuseIn ? src : x;
      const inNorm = fuseIn ? { inputNorm: { w: layer.norm, eps } } : {};
      if (layer.mamba1) {
        // Mamba-1: in_proj -> (x | z); x = silu(conv(x)); x_proj -> (dt_low | B | C) [Falcon: normed];
        // dt = dt_proj(dt_low) (its bias and softplus in the scan); y = scan * silu(z); h += r * out_proj(y)
        const w = layer.mamba1;
        const { dtRank: R, dState: N, dConv: K } = m1!;
        list.linear(input, w.inProj, xz!, T, H, 2 * I1, { bias: w.inProjBias ?? undefined, ...inNorm });
        list.causalConv1d(col(xz!, 0, 2 * I1), w.conv, w.convBias, st.conv!, xc!, T, I1, K);
      }
      if (layer.mamba1?.perHead) {
        // Zamba: per head h (channels h*hd ..), x_proj_h -> (dt_low | B | C) at columns h*W of xdbc, dt_proj_h ->
        // dt channels h*hd ..; one scan with each head's B and C (heads option); h += out_proj(y)
        const w = layer.mamba1;
        const ph = w.perHead!;
        const { dtRank: R, dState: N } = m1!;
        const hd = I1 / nh1;
        const WW = nh1 * W1;
        for (let hh = 0; hh < nh1; hh++) list.linear(col(xc!, hh * hd, I1), ph.xProj[hh], col(xdbc!, hh * W1, WW), T, hd, W1);
        for (let hh = 0; hh < nh1; hh++) list.linear(col(xdbc!, hh * W1, WW), ph.dtProj[hh], col(dt1!, hh * hd, I1), T, R, hd);
        list.selectiveScan(xc!, dt1!, col(xdbc!, R, WW), col(xdbc!, R + N, WW), st.scanConstants!, st.ssm!, y1!, { T, I: I1, N }, { z: col(xz!, I1, 2 * I1), heads: { channels: hd, stride: W1 } });
        list.linear(y1!, w.outProj, h, T, I1, H, { bias: w.outProjBias ?? undefined, alpha: r, accumulate: true });
      } else if (layer.mamba1) {
        const w = layer.mamba1;
        const { dtRank: R, dState: N } = m1!;
        list.linear(xc!, w.xProj, xdbc!, T, I1, W1);
        // (dt_low | B | C) as dt_proj and the scan read it: normed in place (Falcon), or into xdbcN by three
        // strided RMSNorms with their weights (Jamba)
        let dbc = xdbc!;
        if (w.dtNorm && w.bNorm && w.cNorm) {
          dbc = xdbcN!;
          list.rmsNorm(col(xdbc!, 0, W1), w.dtNorm, col(dbc, 0, W1), T, R, m1!.falconEps!);
          list.rmsNorm(col(xdbc!, R, W1), w.bNorm, col(dbc, R, W1), T, N, m1!.falconEps!);
          list.rmsNorm(col(xdbc!, R + N, W1), w.cNorm, col(dbc, R + N, W1), T, N, m1!.falconEps!);
        } else if (m1!.falconEps !== null) list.falconNorms(xdbc!, T, R, N, m1!.falconEps);
        list.linear(col(dbc, 0, W1), w.dtProj, dt1!, T, R, I1);
        list.selectiveScan(xc!, dt1!, col(dbc, R, W1), col(dbc, R + N, W1), st.scanConstants!, st.ssm!, y1!, { T, I: I1, N }, { z: col(xz!, I1, 2 * I1) });
        list.linear(y1!, w.outProj, h, T, I1, H, { bias: w.outProjBias ?? undefined, alpha: r, accumulate: true });
      }
      if (layer.mamba) {
        const w = layer.mamba;
        const m = cfg.mamba!;
        // in_proj: [T, H] -> [T, inProjDim], then causal conv + SiLU over xBC: [T, convDim]. Decode: the conv in
        // the GEMV's epilogue, its output over the raw xBC columns of zxbcdt (one dispatch fewer a layer).
        const convInGemv = list.fusesConv(T);
        if (convInGemv) {
          const conv = { wb: list.convPack(w.conv, w.convBias, m.convDim, m.dConv), state: st.conv!, start: I, C: m.convDim, K: m.dConv };
          list.linear(input, w.inProj, zxbcdt!, T, H, m.inProjDim, { bias: w.inProjBias ?? undefined, ...inNorm, conv });
        } else {
          list.linear(input, w.inProj, zxbcdt!, T, H, m.inProjDim, { bias: w.inProjBias ?? undefined, ...inNorm });
          list.causalConv1d(col(zxbcdt!, I, m.inProjDim), w.conv, w.convBias, st.conv!, xbc!, T, m.convDim, m.dConv);
        }
        const [xbcBuf, xbcAt, xbcStride] = convInGemv ? [zxbcdt!, I, m.inProjDim] : [xbc!, 0, m.convDim];
        // selective scan: y [T, I], state carried in st.ssm
        list.ssmScan(
          col(xbcBuf, xbcAt, xbcStride),
          col(zxbcdt!, I + m.convDim, m.inProjDim),
          col(xbcBuf, xbcAt + I, xbcStride),
          col(xbcBuf, xbcAt + I + gN, xbcStride),
          w.aLog,
          w.dtBias,
          w.D,
          st.ssm!,
          zy ? col(zy, I, 2 * I) : y!,
          { T, nh: m.numHeads, hd: m.headDim, N: m.dState, ng: m.nGroups, chunk: m.chunkSize, dtMin: dtLimit ? m.timeStepMin : 0, dtMax: dtLimit ? m.timeStepMax : Infinity },
        );
        // y * silu(z), normalised, then out_proj into the residual stream
        const z = col(zxbcdt!, 0, m.inProjDim);
        if (!w.gatedNorm) {
          list.copy(z, col(zy!, 0, 2 * I), T, I);
          if (fuse) list.linear(zy!, w.outProj, h, T, I, H, { bias: w.outProjBias ?? undefined, alpha: r, accumulate: true, inputSwiglu: true });
          else {
            list.swiglu(zy!, g!, T, I);
            list.linear(g!, w.outProj, h, T, I, H, { bias: w.outProjBias ?? undefined, alpha: r, accumulate: true });
          }
        } else if (fuse) {
          list.linear(y!, w.outProj, h, T, I, H, {
            bias: w.outProjBias ?? undefined,
            alpha: r,
            accumulate: true,
            inputGatedNorm: { z, w: w.gatedNorm, groupSize: m.normGroupSize, eps: m.gatedNormEps ?? eps },
          });
        } else {
          list.gatedRmsNorm(y!, z, w.gatedNorm, g!, T, I, m.normGroupSize, m.gatedNormEps ?? eps);
          list.linear(g!, w.outProj, h, T, I, H, { bias: w.outProjBias ?? undefined, alpha: r, accumulate: true });
        }
      }
      if (layer.mlp) {
        // Nemotron-H MLP block: h += r * down(relu(up x)^2)
        const w = layer.mlp;
        list.linear(input, w.up, mUp!, T, H, M, { bias: w.upBias ?? undefined, ...inNorm });
        if (fuse) list.linear(mUp!, w.down, h, T, M, H, { bias: w.downBias ?? undefined, alpha: r, accumulate: true, inputRelu2: true });
        else {
          list.relu2(mUp!, mAct!, T, M);
          list.linear(mAct!, w.down, h, T, M, H, { bias: w.downBias ?? undefined, alpha: r, accumulate: true });
        }
      }
      if (layer.rglru) {
        // RecurrentGemma's recurrent block: y = linear_y(x); u = conv(linear_x(x)) (no activation);
        // h = RG-LRU(u); h += linear_out(h * gelu(y))
        const w = layer.rglru;
        list.linear(input, w.linearY, yb!, T, H, L, { bias: w.linearYBias, ...inNorm });
        list.linear(input, w.linearX, xb!, T, H, L, { bias: w.linearXBias, ...inNorm });
        list.causalConv1d(xb!, w.conv, w.convBias, st.conv!, uc!, T, L, gr!.convWidth, { activation: false });
        list.rglru(uc!, w.inputGate, w.inputGateBias, w.recurrentGate, w.recurrentGateBias, w.recurrentParam, st.ssm!, hr!, T, L, gr!.blockWidth, this.step);
        list.geluMul(yb!, hr!, T, L);
        list.linear(hr!, w.linearOut, h, T, L, H, { bias: w.linearOutBias, accumulate: true });
      }
      if (layer.attention && layer.kind === 'local') {
        // RecurrentGemma's local attention: partial RoPE, the window's K/V rings in st.conv / st.ssm
        const w = layer.attention;
        list.linear(input, w.q, q!, T, H, qd, { bias: w.qBias ?? undefined, ...inNorm });
        list.linear(input, w.k, k!, T, H, kd, { bias: w.kBias ?? undefined, ...inNorm });
        list.linear(input, w.v, v!, T, H, kd, { bias: w.vBias ?? undefined, ...inNorm });
        list.rope(q!, T, a!.numHeads, a!.headDim, a!.ropeTheta!, this.step, a!.rotaryDim);
        list.rope(k!, T, a!.numKvHeads, a!.headDim, a!.ropeTheta!, this.step, a!.rotaryDim);
        list.localAttention(q!, k!, v!, st.conv!, st.ssm!, o!, T, a!.numHeads, a!.numKvHeads, a!.headDim, gr!.window, a!.scaling, this.step);
        list.linear(o!, w.o, h, T, qd, H, { bias: w.oBias ?? undefined, accumulate: true });
      } else if (layer.attention) {
        const w = layer.attention;
        list.linear(input, w.q, q!, T, H, qd, { bias: w.qBias ?? undefined, ...inNorm }); // [T, nH, d]
        if (a!.ropeTheta === null && T <= GEMV_MAX_T) {
          // Decode without RoPE (NoPE, granite-4.0-h): K and V rows go from the GEMVs straight into the caches at
          // the step's position (two kvWrite dispatches fewer); sparse KV pages its blocks in after them, around those rows.
          list.linear(input, w.k, { buffer: st.k! }, T, H, kd, { bias: w.kBias ?? undefined, ...inNorm, outAtStep: this.kvStep });
          list.linear(input, w.v, { buffer: st.v! }, T, H, kd, { bias: w.vBias ?? undefined, ...inNorm, outAtStep: this.kvStep });
          attentionMarks.push(list.dispatchCount);
        } else {
          list.linear(input, w.k, k!, T, H, kd, { bias: w.kBias ?? undefined, ...inNorm }); // [T, nKv, d]
          list.linear(input, w.v, v!, T, H, kd, { bias: w.vBias ?? undefined, ...inNorm });
          if (a!.ropeTheta !== null) {
            list.rope(q!, T, a!.numHeads, a!.headDim, a!.ropeTheta, this.step, a!.rotaryDim);
            list.rope(k!, T, a!.numKvHeads, a!.headDim, a!.ropeTheta, this.step, a!.rotaryDim);
          }
          attentionMarks.push(list.dispatchCount);
          list.kvWrite(k!, st.k!, T, kd, this.kvStep);
          list.kvWrite(v!, st.v!, T, kd, this.kvStep);
        }
        list.attention(q!, st.k!, st.v!, o!, T, a!.numHeads, a!.numKvHeads, a!.headDim, a!.scaling, this.kvStep);
        list.linear(o!, w.o, h, T, qd, H, { bias: w.oBias ?? undefined, alpha: r, accumulate: true });
      }
      if (layer.geluMlp) {
        // RecurrentGemma: h += down(gelu_tanh(gate x) * up x), x = channel_pre_norm(h), with biases
        const f = layer.geluMlp;
        list.rmsNorm(h, f.norm, x, T, H, eps);
        list.linear(x, f.gate, col(ggu!, 0, 2 * GM), T, H, GM, { bias: f.gateBias });
        list.linear(x, f.up, col(ggu!, GM, 2 * GM), T, H, GM, { bias: f.upBias });
        list.gegluTanh(ggu!, gact!, T, GM);
        list.linear(gact!, f.down, h, T, GM, H, { bias: f.downBias, accumulate: true });
      }
      const f = layer.feedForward;
      if (f) {
        const moe = !!(f.router && f.expertsIn && f.expertsOut);
        // The MoE router and experts read x; a dense MLP can take the norm fused.
        const fuseFf = fuse && !moe;
        if (!fuseFf) list.rmsNorm(h, f.norm, x, T, H, eps);
        if (f.sharedIn && f.sharedOut) {
          if (fuseFf) {
            list.linear(h, f.sharedIn, gu!, T, H, 2 * S, { inputNorm: { w: f.norm, eps } });
            list.linear(gu!, f.sharedOut, h, T, S, H, { alpha: r, accumulate: true, inputSwiglu: true });
          } else {
            list.linear(x, f.sharedIn, gu!, T, H, 2 * S);
            list.swiglu(gu!, act!, T, S);
            list.linear(act!, f.sharedOut, h, T, S, H, { alpha: r, accumulate: true });
          }
        }
        if (f.sharedGate && f.sharedUp && f.sharedOut) {
          // Bamba: gate_proj and up_proj write the two halves of each gu row, then SwiGLU as for the fused one.
          const src = fuseFf ? h : x;
          const ffNorm = fuseFf ? { inputNorm: { w: f.norm, eps } } : {};
          list.linear(src, f.sharedGate, col(gu!, 0, 2 * S), T, H, S, ffNorm);
          list.linear(src, f.sharedUp, col(gu!, S, 2 * S), T, H, S, ffNorm);
          if (fuseFf) list.linear(gu!, f.sharedOut, h, T, S, H, { alpha: r, accumulate: true, inputSwiglu: true });
          else {
            list.swiglu(gu!, act!, T, S);
            list.linear(act!, f.sharedOut, h, T, S, H, { alpha: r, accumulate: true });
          }
        }
        if (moe) {
          list.linear(x, f.router!, routerLogits!, T, H, E);
          list.routerTopK(routerLogits!, experts!.buffer, gates!.buffer, T, E, topK, ff!.routing);
          if (T > GEMV_MAX_T) {
            // Prefill: the slots grouped by expert, each expert's weights read once per tile of its rows (a GEMV
            // per slot would read a whole expert for every token).
            const g = list.moeGroup(experts!.buffer, T * topK, E);
            list.moeGemm(x, f.expertsIn!, g, up!, T, topK, H, 2 * EI);
            list.swiglu(up!, upAct!, T * topK, EI);
            list.moeGemm(upAct!, f.expertsOut!, g, down!, T, topK, EI, H, { perSlotInput: true });
          } else {
            list.moeLinear(x, f.expertsIn!, experts!.buffer, up!, T, topK, H, 2 * EI);
            list.swiglu(up!, upAct!, T * topK, EI);
            list.moeLinear(upAct!, f.expertsOut!, experts!.buffer, down!, T, topK, EI, H, { perSlotInput: true });
          }
          list.moeCombine(down!, gates!.buffer, h, T, topK, H, r, true);
        }
      }
    });

    const V = cfg.vocabSize;
    const logits = gpu.buffer(4 * Math.max(1, rows) * V, 'logits');
    if (rows > 0) {
      const from: Act = rows === T ? h : { buffer: h.buffer, offset: (T - 1) * H };
      if (rows <= 4) {
        list.linear(from, this.w.lmHead, { buffer: logits }, rows, H, V, { alpha: 1 / cfg.logitsScaling, inputNorm: { w: this.w.finalNorm, eps } });
      } else {
        const xf = buf(rows * H, 'final_norm');
        list.rmsNorm(from, this.w.finalNorm, xf, rows, H, eps);
        list.linear(xf, this.w.lmHead, { buffer: logits }, rows, H, V, { alpha: 1 / cfg.logitsScaling });
      }
    }
    if (rows > 0 && cfg.griffin) list.softCap({ buffer: logits }, rows, V, cfg.griffin.logitsSoftCap);
    return { T, rows, list, logits, scratch, q, attentionMarks };
  }
}
