// Sparse attention KV on the GPU under a memory budget (Quest selection, see src/engine/memory/kvBlocks.ts).
//
// Once the context no longer fits the GPU KV budget, each attention layer's working K/V buffer is laid out as
//   [ slot 0 .. slot S-1: S selected past blocks, BLOCK_ROWS rows each, in any order ]
//   [ the current block's earlier rows ][ the chunk's new rows ]
// All selected blocks precede the chunk, so the dense causal kernel run over rows 0 .. S*BLOCK_ROWS + t is
// exactly attention over the selection (Granite 4.0-H has no positional encoding; with RoPE the keys were
// rotated at their true positions before they were written). Every K/V row also lives off the GPU in a
// KvBlockStore (host memory, spilling to disk past the host budget), from which blocks are paged in.
// Per chunk and attention layer: score every past block on the GPU from the chunk's queries and the block
// key summaries, read the scores back, select sinks + recent + top blocks, upload the blocks that are not
// already in a slot (least recently used slots are reused), then run the layer's attention.
// After a chunk its rows are copied out to the host stores while the GPU goes on. With budget to spare, they and
// their block summaries are also kept on the GPU (forwarding buffers) so that the next chunk can score and page
// them before that copy-out has landed: the host appends a chunk while the GPU runs the next one.

import type { ModelConfig } from '../config';
import { BLOCK_ROWS, HostBudget, KvBlockStore, mergeSummaries, questScore, selectBlocks, selectBlocksGrouped, type BlockSummary, type KvBlockSource } from '../memory/kvBlocks';
import { GpuError, UsageError } from '../errors';
import type { Gpu } from './device';
import type { Act } from './ops';

/** Runs of tokens over which a chunk's query min/max is taken in parallel before the final fold. */
const QUERY_SLICES = 64;
/**
 * Past the summaries' reserve, the most blocks one selection scores on the host per selectable slot (see
 * selectBlocksGrouped's maxScored): 16 x 61 blocks of the 350m shape is ~1M multiply-adds per layer and token.
 */
const HOST_SCORED_PER_SLOT = 16;

export interface SparseKvOptions {
  /** GPU bytes for K/V across all attention layers (working buffers included). */
  gpuBudgetBytes: number;
  /** Host bytes for K/V blocks before they spill to disk (default: unbounded). */
  hostBudgetBytes?: number;
  /** Folder for spill files (default: none, never spill). */
  spillDir?: string | null;
  sinkBlocks?: number;
  recentBlocks?: number;
  /**
   * Past blocks each query attends to once the context is sparse (default 64 blocks = 4,096 tokens, as in
   * Quest's token budgets); fewer if the GPU budget cannot hold that many.
   */
  attentionBlocks?: number;
  /**
   * Context the block summaries (2 x kd floats per block, on the GPU) are budgeted for; their reserve is taken
   * from the budget (at most a quarter of it) before the slots. Default: at least 2^20 tokens, and all the budget
   * that the slots, the tail and the forwarding buffers leave (still at most a quarter), so that a large budget
   * scores every block on the GPU far past 1M tokens. Past it, a GPU summary covers a group of blocks and selection
   * refines the best groups on the host (selectBlocksGrouped, its work per selection capped): the summaries never
   * grow past their reserve.
   */
  maxContextTokens?: number;
  /** Rows of a chunk appended to a host store at a time (whole blocks; default 2,048), the event loop turning between them. */
  appendRows?: number;
}

interface LayerKv {
  store: KvBlockStore;
  slotBlock: Int32Array; // block held by each slot, -1 when empty
  slotUse: Float64Array; // last use, for LRU replacement
  summaries: GPUBuffer; // [capacity, 2, kd]: min then max of the keys of each block (of each group of blocks)
  summaryCapacity: number; // entries; fixed, within the budget's reserve
  summaryGroup: number; // blocks per entry: 1, or the power of two that fits the context into the capacity
  summariesUploaded: number; // blocks
  scores: GPUBuffer;
  qr: GPUBuffer;
  selected: number[];
}

/**
 * GPU bytes kept for block summaries (and their scores) out of a K/V budget: see SparseKvOptions.maxContextTokens.
 * `maxBinding` is the adapter's largest storage binding (one layer's summaries are one binding).
 */
export function summaryReserve(kd: number, numLayers: number, maxChunk: number, opts: SparseKvOptions, maxBinding: number): number {
  const blockBytes = 2 * BLOCK_ROWS * kd * 4;
  const summaryBytesPerBlock = (2 * kd + 1) * 4;
  const tailBlocks = Math.ceil((BLOCK_ROWS - 1 + maxChunk) / BLOCK_ROWS);
  const forwardBytes = 2 * BLOCK_ROWS * Math.ceil(maxChunk / BLOCK_ROWS) * kd * 4;
  const forTokens = (tokens: number) => numLayers * Math.ceil(tokens / BLOCK_ROWS) * summaryBytesPerBlock;
  // What the default slots, the tail, the query ranges and the forwarding buffers need; the rest may go to summaries.
  const others = numLayers * (((opts.attentionBlocks ?? 64) + tailBlocks) * blockBytes + 2 * kd * 4 + forwardBytes);
  const bindingMax = numLayers * Math.floor(maxBinding / (2 * kd * 4)) * summaryBytesPerBlock;
  const wanted = opts.maxContextTokens !== undefined ? forTokens(opts.maxContextTokens) : Math.max(forTokens(2 ** 20), opts.gpuBudgetBytes - others);
  return Math.floor(Math.min(opts.gpuBudgetBytes / 4, bindingMax, wanted));
}

export class SparseKv {
  readonly maxSlots: number; // selected past blocks per layer
  readonly tailRows: number; // room after the slots for the current block's rows and a chunk
  readonly summaryReserveBytes: number; // share of the budget kept for block summaries and scores
  private readonly layers: LayerKv[];
  private readonly params: GPUBuffer;
  private readonly staging: GPUBuffer;
  private readonly kd: number;
  private clock = 0;
  private readonly hostBudget: HostBudget;
  private readonly commitStaging: (GPUBuffer | null)[] = [null, null]; // two: a chunk's copy-out may overlap the next's
  private commitTurn = 0;
  private commitSummaries: GPUBuffer | null = null; // [layer][groups, 2, kd] of the chunk being committed
  private readonly summaryParams: GPUBuffer;
  private readonly queryParts: GPUBuffer; // [nKv, QUERY_SLICES, 2, headDim]: per-run query min/max (kvScore qpart)
  private pendingCommits: Promise<void>[] = []; // copy-outs in flight, oldest first (at most two)
  /**
   * GPU copies of the last committed chunk's K/V rows (one pair per layer), or null when forwarding is off (no
   * spare room in the budget). While the host stores take in a chunk's rows, the next chunk pages that chunk's
   * blocks from here and scores them from summaries copied on the GPU, so it need not wait for the copy-out.
   */
  private readonly forwardBuffers: { k: GPUBuffer; v: GPUBuffer }[] | null;
  private readonly forwardRows: number;
  private readonly appendRows: number; // rows appended to a host store at a time (whole blocks)
  private forwarded: { pos0: number; end: number; epoch: number } | null = null;
  private epoch = 0; // bumped when rows are dropped: a commit in flight from before is discarded
  /** Milliseconds of CPU-side work and waits, accumulated (the ingest bench reports them). */
  readonly profile = { scoreWaitMs: 0, selectMs: 0, pageInMs: 0, commitWaitMs: 0, appendMs: 0 };
  /** Blocks paged into slots, by where they came from. */
  readonly paged = { fromHost: 0, fromForward: 0 };
  /** Selections made from summaries of groups of blocks (a context past the reserve), and the blocks they scored on the host. */
  readonly grouped = { selections: 0, blocksScored: 0, capped: 0 };

  constructor(
    private readonly gpu: Gpu,
    private readonly cfg: ModelConfig,
    readonly opts: SparseKvOptions,
    maxChunk: number,
    numLayers: number,
  ) {
    const a = cfg.attention!;
    this.kd = a.numKvHeads * a.headDim;
    const blockBytes = 2 * BLOCK_ROWS * this.kd * 4;
    this.tailRows = BLOCK_ROWS * Math.ceil((BLOCK_ROWS - 1 + maxChunk) / BLOCK_ROWS);
    const summaryBytesPerBlock = (2 * this.kd + 1) * 4;
    const qrangeBytes = 2 * this.kd * 4;
    this.forwardRows = BLOCK_ROWS * Math.ceil(maxChunk / BLOCK_ROWS);
    const forwardBytes = 2 * this.forwardRows * this.kd * 4;
    const reserve = summaryReserve(this.kd, numLayers, maxChunk, opts, gpu.device.limits.maxStorageBufferBindingSize);
    this.summaryReserveBytes = reserve;
    const perLayer = Math.floor((opts.gpuBudgetBytes - reserve) / Math.max(1, numLayers)) - qrangeBytes;
    const fit = Math.floor((perLayer - (this.tailRows / BLOCK_ROWS) * blockBytes) / blockBytes);
    this.maxSlots = Math.min(fit, opts.attentionBlocks ?? 64);
    // Forwarding buffers take only budget the slots leave over (never a slot), and SIDEWINDER_KV_FORWARD=0 turns
    // them off (to measure what they bring).
    this.appendRows = BLOCK_ROWS * Math.max(1, Math.round((opts.appendRows ?? 2048) / BLOCK_ROWS));
    const spare = perLayer - (this.tailRows / BLOCK_ROWS + this.maxSlots) * blockBytes;
    const forwardOn = process.env.SIDEWINDER_KV_FORWARD !== '0' && spare >= forwardBytes;
    const sinks = opts.sinkBlocks ?? 1;
    const recent = opts.recentBlocks ?? 2;
    if (this.maxSlots < sinks + recent + 1) {
      // The least budget that holds them: the blocks and query range of every layer, plus the summaries' reserve
      // (a quarter of the budget at most).
      const blocks = sinks + recent + 1 + this.tailRows / BLOCK_ROWS;
      const least = ((4 / 3) * numLayers * (blocks * blockBytes + qrangeBytes)) / 2 ** 20;
      throw new UsageError(
        `the GPU KV budget of ${(opts.gpuBudgetBytes / 2 ** 20).toFixed(1)} MiB is too small for this model: it must ` +
          `hold ${blocks} blocks of ${BLOCK_ROWS} tokens per attention layer; give it at least ${Math.ceil(least)} MiB.`,
      );
    }
    this.hostBudget = new HostBudget(opts.hostBudgetBytes ?? Infinity);
    this.params = gpu.buffer(32, 'kv.params', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.queryParts = gpu.buffer(4 * QUERY_SLICES * 2 * this.kd, 'kv.queryParts');
    this.summaryParams = gpu.buffer(32, 'kv.summaryParams', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.staging = gpu.device.createBuffer({ size: 4 * 65536, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'kv.staging' });
    // Summaries and scores hold the reserved capacity; a longer context groups blocks instead of growing them.
    const reservedBlocks = Math.max(1, Math.floor(reserve / (numLayers * summaryBytesPerBlock)));
    this.layers = Array.from({ length: numLayers }, (_, i) => ({
      store: new KvBlockStore(this.kd, this.hostBudget, opts.spillDir ? `${opts.spillDir}/kv-${process.pid}-${i}.bin` : null),
      slotBlock: new Int32Array(this.maxSlots).fill(-1),
      slotUse: new Float64Array(this.maxSlots),
      summaries: gpu.buffer(4 * 2 * this.kd * reservedBlocks, `kv.summaries.${i}`),
      summaryCapacity: reservedBlocks,
      summaryGroup: 1,
      summariesUploaded: 0,
      scores: gpu.buffer(4 * reservedBlocks, `kv.scores.${i}`),
      qr: gpu.buffer(4 * 2 * this.kd, `kv.qrange.${i}`),
      selected: [],
    }));
    this.forwardBuffers = forwardOn
      ? this.layers.map((_, i) => ({ k: gpu.buffer(forwardBytes / 2, `kv.forwardK.${i}`), v: gpu.buffer(forwardBytes / 2, `kv.forwardV.${i}`) }))
      : null;
  }

  /** Whether a chunk's K/V rows are also kept on the GPU for the next chunk (see forwardBuffers). */
  get forwarding(): boolean {
    return this.forwardBuffers !== null;
  }

  /** Rows of the working buffer that must exist: the slots plus the tail. */
  get workingRows(): number {
    return this.maxSlots * BLOCK_ROWS + this.tailRows;
  }

  /** Past this many tokens the context no longer fits the slots and selection starts. */
  get denseLimit(): number {
    return this.maxSlots * BLOCK_ROWS;
  }

  /** Where the chunk's rows go in the working buffer when sparse (the kernels' position). */
  workingPosition(pos0: number): number {
    return this.maxSlots * BLOCK_ROWS + (pos0 % BLOCK_ROWS);
  }

  length(layer: number): number {
    return this.layers[layer].store.length;
  }

  lastSelection(layer: number): number[] {
    return this.layers[layer].selected;
  }

  bytes(): { gpu: number; host: number; disk: number } {
    let host = 0;
    let disk = 0;
    let gpu = 0; // block summaries and scores (the working K/V buffers are counted by the model)
    for (const l of this.layers) {
      const b = l.store.bytes();
      host += b.host;
      disk += b.disk;
      gpu += l.summaries.size + l.scores.size + l.qr.size;
    }
    for (const f of this.forwardBuffers ?? []) gpu += f.k.size + f.v.size;
    return { gpu, host, disk };
  }

  /** GPU bytes of parameter and scratch buffers (not K/V: outside the budget, like the model's scratch). */
  scratchBytes(): number {
    return this.params.size + this.summaryParams.size + this.queryParts.size + (this.commitSummaries?.size ?? 0);
  }

  /** Takes rows [0, rows) of a dense K/V buffer pair into the host store (when switching to sparse). */
  async adoptDense(layer: number, k: GPUBuffer, v: GPUBuffer, rows: number): Promise<void> {
    const l = this.layers[layer];
    l.store.truncate(0);
    for (let r = 0; r < rows; r += 4096) {
      const n = Math.min(4096, rows - r);
      const kk = new Float32Array(await this.gpu.read(k, 4 * n * this.kd, 4 * r * this.kd));
      const vv = new Float32Array(await this.gpu.read(v, 4 * n * this.kd, 4 * r * this.kd));
      l.store.append(kk, vv);
    }
    l.slotBlock.fill(-1);
    l.summariesUploaded = 0;
    this.forwarded = null;
  }

  /** Replaces a layer's rows with the first `rows` of a source (import of a saved state); nothing is read yet. */
  adoptSource(layer: number, src: KvBlockSource, rows: number): void {
    this.epoch++;
    this.forwarded = null;
    const l = this.layers[layer];
    l.store.adopt(src, rows);
    l.slotBlock.fill(-1);
    l.summariesUploaded = 0;
  }

  /** A layer's rows as a block source (for a snapshot), valid until the model runs again. */
  source(layer: number): KvBlockSource {
    return this.layers[layer].store;
  }

  dense(layer: number, rows: number): { k: Float32Array; v: Float32Array } {
    return this.layers[layer].store.dense(rows);
  }

  /**
   * The working rows were rewritten in order from the host stores (a rollback back under the working rows):
   * slot s now holds block s for every complete block, and the slot table says so (not what it held when sparse).
   */
  slotsInOrder(rows: number): void {
    const complete = Math.floor(rows / BLOCK_ROWS);
    for (const l of this.layers) for (let s = 0; s < this.maxSlots; s++) l.slotBlock[s] = s < complete ? s : -1;
  }

  /** Forgets rows from `rows` on (rollback); slots holding cut blocks are freed. */
  truncate(rows: number): void {
    this.epoch++;
    this.forwarded = null;
    const keep = Math.floor(rows / BLOCK_ROWS);
    for (const l of this.layers) {
      l.store.truncate(rows);
      for (let s = 0; s < this.maxSlots; s++) if (l.slotBlock[s] >= keep) l.slotBlock[s] = -1;
      l.summariesUploaded = Math.min(l.summariesUploaded, keep);
    }
  }

  /**
   * Before layer `layer`'s attention for a chunk of T queries at pos0: scores the complete past blocks from the
   * chunk's queries q [T, nH, d], selects, and pages the selection and the current block's rows into the
   * working buffers. The queries must already be computed (the caller has submitted the work up to here).
   */
  async prepare(layer: number, q: Act, T: number, pos0: number, workK: GPUBuffer, workV: GPUBuffer): Promise<void> {
    // The chunk just before this one may still be on its way to the host stores: its blocks come from the
    // forwarding buffers then, and only the copy-outs before it are waited for.
    const fw = this.forwarded;
    const forwarding = fw !== null && fw.epoch === this.epoch && fw.end === pos0 && pos0 % BLOCK_ROWS === 0;
    await this.settle(forwarding ? 1 : 0);
    const l = this.layers[layer];
    const nComplete = Math.floor(pos0 / BLOCK_ROWS);
    // Forwarded summaries are on the GPU already (commit() copied them), so nothing is uploaded then.
    if (!forwarding || l.summariesUploaded < nComplete) {
      if (forwarding) await this.settle();
      this.uploadSummaries(l, nComplete);
    }
    const fromForward = forwarding && this.pendingCommits.length > 0 ? Math.floor(fw.pos0 / BLOCK_ROWS) : Infinity;
    // 1. scores of every complete past block (of every group of blocks), on the GPU
    let t = performance.now();
    const g = l.summaryGroup;
    const scores = await this.scoreBlocks(l, q, T, Math.ceil(nComplete / g));
    const qr = g > 1 ? await this.queryRange(l) : null;
    this.profile.scoreWaitMs += performance.now() - t;
    t = performance.now();
    // 2. selection: sinks + recent + top by bound, exactly maxSlots blocks (the best groups' blocks scored here)
    const policy = { sinkBlocks: this.opts.sinkBlocks ?? 1, recentBlocks: this.opts.recentBlocks ?? 2, maxBlocks: this.maxSlots };
    let selected: number[];
    if (qr) {
      const nKv = this.cfg.attention!.numKvHeads;
      const cap = HOST_SCORED_PER_SLOT * this.maxSlots;
      const r = selectBlocksGrouped(scores, g, nComplete, (b) => questScore(qr.min, qr.max, l.store.summary(b), nKv), policy, cap);
      selected = r.selected;
      this.grouped.selections++;
      this.grouped.blocksScored += r.scored;
      if (!r.exact) this.grouped.capped++;
    } else selected = selectBlocks(scores, nComplete, policy);
    l.selected = selected;
    this.profile.selectMs += performance.now() - t;
    t = performance.now();
    // 3. page in: keep blocks already in a slot, put the others in the least recently used free slots
    const want = new Set(selected);
    const now = ++this.clock;
    const free: number[] = [];
    for (let s = 0; s < this.maxSlots; s++) {
      if (want.has(l.slotBlock[s])) {
        want.delete(l.slotBlock[s]);
        l.slotUse[s] = now;
      } else free.push(s);
    }
    free.sort((x, y) => l.slotUse[x] - l.slotUse[y]);
    const blockBytes = BLOCK_ROWS * this.kd * 4;
    let enc: GPUCommandEncoder | null = null;
    for (const b of want) {
      const s = free.shift()!;
      if (b >= fromForward) {
        // a block of the chunk still being copied out: a copy on the GPU from the forwarding buffers
        const f = this.forwardBuffers![layer];
        const at = (b - fromForward) * blockBytes;
        enc ??= this.gpu.device.createCommandEncoder();
        enc.copyBufferToBuffer(f.k, at, workK, s * blockBytes, blockBytes);
        enc.copyBufferToBuffer(f.v, at, workV, s * blockBytes, blockBytes);
        this.paged.fromForward++;
      } else {
        const blk = l.store.block(b);
        this.gpu.write(workK, blk.k, s * blockBytes);
        this.gpu.write(workV, blk.v, s * blockBytes);
        this.paged.fromHost++;
      }
      l.slotBlock[s] = b;
      l.slotUse[s] = now;
    }
    if (enc) this.gpu.device.queue.submit([enc.finish()]);
    // 4. the current block's earlier rows go right after the slots
    const partial = pos0 % BLOCK_ROWS;
    if (partial > 0) {
      const blk = l.store.block(nComplete);
      this.gpu.write(workK, blk.k.subarray(0, partial * this.kd), this.maxSlots * blockBytes);
      this.gpu.write(workV, blk.v.subarray(0, partial * this.kd), this.maxSlots * blockBytes);
    }
    this.profile.pageInMs += performance.now() - t;
  }

  /**
   * After a chunk: the T new rows of every layer (at the working position) and their per-block key summaries
   * (kernels/kvSummary.wgsl) are copied to one staging buffer and reach the host stores when the copy is done,
   * while the GPU goes on with the next chunk; settle() waits for them (prepare() does, before it scores blocks).
   * Staging layout: [layer][K rows, V rows] then [layer][groups, 2, kd] summaries.
   */
  commit(T: number, pos0: number, work: { k: GPUBuffer; v: GPUBuffer }[], sparse: boolean): void {
    const row = sparse ? this.workingPosition(pos0) : pos0;
    const bytes = 4 * T * this.kd;
    const phase = pos0 % BLOCK_ROWS;
    const groups = Math.ceil((phase + T) / BLOCK_ROWS);
    const sumBytes = 4 * groups * 2 * this.kd;
    // Each layer's summaries at a storage-binding-aligned offset of one buffer.
    const sumStride = Math.ceil(sumBytes / 256) * 256;
    const sumAt = 2 * work.length * bytes;
    const size = sumAt + work.length * sumBytes;
    if (this.pendingCommits.length > 1) throw new GpuError('internal: a third K/V copy-out was started before the first had settled.');
    // The staging buffer not used by the copy-out still in flight (if any).
    const turn = this.pendingCommits.length === 1 ? 1 - this.commitTurn : this.commitTurn;
    this.commitTurn = turn;
    let staging = this.commitStaging[turn];
    if (!staging || staging.size < size) {
      staging?.destroy();
      staging = this.gpu.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `kv.commit.${turn}` });
      this.commitStaging[turn] = staging;
    }
    // Forward the chunk (its rows and the summaries of its whole blocks stay on the GPU for the next chunk) when
    // it starts on a block boundary right after what the GPU summaries hold.
    const fullBlocks = Math.floor(T / BLOCK_ROWS);
    const first = pos0 / BLOCK_ROWS;
    const forward =
      this.forwardBuffers !== null &&
      T <= this.forwardRows &&
      phase === 0 &&
      work.length === this.layers.length &&
      this.layers.every((l) => l.summaryGroup === 1 && l.summariesUploaded === first && first + fullBlocks <= l.summaryCapacity);
    if (!this.commitSummaries || this.commitSummaries.size < work.length * sumStride) {
      this.commitSummaries?.destroy();
      this.commitSummaries = this.gpu.buffer(work.length * sumStride, 'kv.commitSummaries');
    }
    const sums = this.commitSummaries;
    this.gpu.write(this.summaryParams, new Uint32Array([row, T, this.kd, phase, groups, 0, 0, 0]));
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.gpu.passDescriptor('kvSummary'));
    const pipeline = this.gpu.pipeline('kvSummary');
    pass.setPipeline(pipeline);
    work.forEach((w, j) => {
      const bindGroup = this.gpu.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: this.summaryParams } },
          { binding: 1, resource: { buffer: w.k } },
          { binding: 2, resource: { buffer: sums, offset: j * sumStride, size: sumBytes } },
        ],
      });
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil(this.kd / 64), groups);
    });
    pass.end();
    work.forEach((w, j) => {
      enc.copyBufferToBuffer(w.k, 4 * row * this.kd, staging, 2 * j * bytes, bytes);
      enc.copyBufferToBuffer(w.v, 4 * row * this.kd, staging, (2 * j + 1) * bytes, bytes);
      enc.copyBufferToBuffer(sums, j * sumStride, staging, sumAt + j * sumBytes, sumBytes);
      if (forward) {
        const f = this.forwardBuffers![j];
        const l = this.layers[j];
        enc.copyBufferToBuffer(w.k, 4 * row * this.kd, f.k, 0, bytes);
        enc.copyBufferToBuffer(w.v, 4 * row * this.kd, f.v, 0, bytes);
        if (fullBlocks > 0) enc.copyBufferToBuffer(sums, j * sumStride, l.summaries, 4 * 2 * this.kd * first, 4 * 2 * this.kd * fullBlocks);
        l.summariesUploaded = first + fullBlocks;
      }
    });
    this.gpu.device.queue.submit([enc.finish()]);
    const epoch = this.epoch;
    this.forwarded = forward ? { pos0, end: pos0 + T, epoch } : null;
    // The rows reach the stores in order: this copy-out's rows are appended after the previous one's.
    const before = this.pendingCommits.at(-1) ?? Promise.resolve();
    this.gpu.readBacks.maps++;
    this.gpu.readBacks.bytes += size;
    const p = Promise.all([staging.mapAsync(GPUMapMode.READ, 0, size), before]).then(async () => {
      let t = performance.now();
      const mapped = staging.getMappedRange(0, size);
      // The summaries are read element by element: a copy out of the mapped memory first (reads of mapped
      // memory can be slow). The rows are only copied, once, into the stores' blocks.
      const summaries = new Float32Array(mapped.slice(sumAt, size));
      const n = T * this.kd;
      for (let j = 0; j < work.length && epoch === this.epoch; j++) {
        const store = this.layers[j].store;
        const k = new Float32Array(mapped, 2 * j * bytes, n);
        const v = new Float32Array(mapped, (2 * j + 1) * bytes, n);
        // The summaries are grouped by blocks from pos0; a store that is elsewhere (never, while the epoch
        // holds) computes its own.
        const s = store.length === pos0 ? summaries.subarray((j * sumBytes) / 4, ((j + 1) * sumBytes) / 4) : undefined;
        // In slices of appendRows (whole blocks, when the store ends on a block boundary), yielding between
        // them: a score read-back that arrives meanwhile is answered after one slice, not after the chunk, so
        // the GPU does not wait for the whole chunk's rows to be stored. The epoch is checked again after each.
        const slice = s && pos0 % BLOCK_ROWS === 0 ? this.appendRows : T;
        for (let r = 0; r < T && epoch === this.epoch; r += slice) {
          const e = Math.min(T, r + slice);
          const g0 = r / BLOCK_ROWS;
          const g1 = Math.ceil(e / BLOCK_ROWS);
          const part = s && slice < T ? s.subarray(g0 * 2 * this.kd, g1 * 2 * this.kd) : s;
          store.append(k.subarray(r * this.kd, e * this.kd), v.subarray(r * this.kd, e * this.kd), part);
          this.profile.appendMs += performance.now() - t;
          await new Promise((res) => setImmediate(res));
          t = performance.now();
        }
      }
      staging.unmap();
    });
    p.catch(() => undefined); // reported by settle()
    this.pendingCommits.push(p);
  }

  /** Waits until at most `keep` of the latest copy-outs are in flight (0: every chunk's rows are in the host stores). */
  async settle(keep = 0): Promise<void> {
    if (this.pendingCommits.length <= keep) return;
    const t = performance.now();
    while (this.pendingCommits.length > keep) {
      const p = this.pendingCommits.shift()!;
      try {
        await p;
      } catch (e) {
        this.pendingCommits = [];
        // A lost device (or an earlier error) fails the copy-out: report that, not the map's DOMException.
        await this.gpu.check();
        throw new GpuError(`copying the chunk's K/V rows to the host failed: ${(e as Error).message}`);
      }
    }
    this.profile.commitWaitMs += performance.now() - t;
  }

  destroy(): void {
    for (const l of this.layers) {
      l.store.close();
      l.summaries.destroy();
      l.scores.destroy();
      l.qr.destroy();
    }
    this.params.destroy();
    this.staging.destroy();
    this.summaryParams.destroy();
    this.queryParts.destroy();
    for (const b of this.commitStaging) b?.destroy();
    for (const f of this.forwardBuffers ?? []) {
      f.k.destroy();
      f.v.destroy();
    }
    this.commitSummaries?.destroy();
  }

  /**
   * Brings the GPU summaries up to nComplete blocks: one entry per block while they fit the reserved capacity,
   * else one per group of blocks (the smallest power of two that fits; a change of group re-uploads them all).
   */
  private uploadSummaries(l: LayerKv, nComplete: number): void {
    let g = 1;
    while (Math.ceil(nComplete / g) > l.summaryCapacity) g *= 2;
    if (g !== l.summaryGroup) {
      l.summaryGroup = g;
      l.summariesUploaded = 0;
    }
    if (l.summariesUploaded >= nComplete) return;
    // From the entry holding the first block not uploaded (a group's last entry may have been partial).
    const e0 = Math.floor(l.summariesUploaded / g);
    const e1 = Math.ceil(nComplete / g);
    const kd = this.kd;
    const data = new Float32Array((e1 - e0) * 2 * kd);
    for (let e = e0; e < e1; e++) {
      const at = (e - e0) * 2 * kd;
      const out = { min: data.subarray(at, at + kd), max: data.subarray(at + kd, at + 2 * kd) };
      const parts: BlockSummary[] = [];
      for (let b = e * g; b < Math.min(nComplete, (e + 1) * g); b++) parts.push(l.store.summary(b));
      mergeSummaries(parts, out);
    }
    this.gpu.write(l.summaries, data, 4 * 2 * kd * e0);
    l.summariesUploaded = nComplete;
  }

  private async scoreBlocks(l: LayerKv, q: Act, T: number, nb: number): Promise<Float32Array> {
    const a = this.cfg.attention!;
    const qStride = q.stride ?? a.numHeads * a.headDim;
    // The query range in two steps: min/max over runs of tokens (many workgroups), then over the runs.
    const slices = Math.min(T, QUERY_SLICES);
    this.gpu.write(this.params, new Uint32Array([T, a.numHeads, a.numKvHeads, a.headDim, q.offset ?? 0, qStride, nb, slices]));
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.gpu.passDescriptor('kvScore'));
    const steps = {
      qpart: { bind: { 0: this.params, 1: q.buffer, 5: this.queryParts }, groups: [a.numKvHeads, slices] },
      qrange: { bind: { 0: this.params, 2: l.qr, 5: this.queryParts }, groups: [a.numKvHeads] },
      score: { bind: { 0: this.params, 2: l.qr, 3: l.summaries, 4: l.scores }, groups: [Math.ceil(nb / 64)] },
    };
    for (const [entry, { bind, groups }] of Object.entries(steps)) {
      const pipeline = this.gpu.pipeline('kvScore', {}, entry);
      const bindGroup = this.gpu.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: Object.entries(bind).map(([b, buffer]) => ({ binding: Number(b), resource: { buffer } })),
      });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(groups[0], groups[1] ?? 1);
    }
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
    return this.readScores(l, nb);
  }

  /** The chunk's query range that scoreBlocks left in l.qr ([nKv, 2, d]), as [nKv * d] min and max rows. */
  private async queryRange(l: LayerKv): Promise<{ min: Float32Array; max: Float32Array }> {
    const d = this.cfg.attention!.headDim;
    const qr = new Float32Array(await this.gpu.read(l.qr, 4 * 2 * this.kd));
    const min = new Float32Array(this.kd);
    const max = new Float32Array(this.kd);
    for (let g = 0; g < this.kd / d; g++) {
      min.set(qr.subarray(2 * g * d, (2 * g + 1) * d), g * d);
      max.set(qr.subarray((2 * g + 1) * d, (2 * g + 2) * d), g * d);
    }
    return { min, max };
  }

  /** Reads the scores back through the staging buffer, 65,536 blocks (4M tokens) at a time. */
  private async readScores(l: LayerKv, nb: number): Promise<Float32Array> {
    const out = new Float32Array(nb);
    for (let o = 0; o < nb; o += 65536) {
      const n = Math.min(65536, nb - o);
      const enc = this.gpu.device.createCommandEncoder();
      enc.copyBufferToBuffer(l.scores, 4 * o, this.staging, 0, 4 * n);
      this.gpu.device.queue.submit([enc.finish()]);
      this.gpu.readBacks.maps++;
      this.gpu.readBacks.bytes += 4 * n;
      await this.staging.mapAsync(GPUMapMode.READ, 0, 4 * n);
      out.set(new Float32Array(this.staging.getMappedRange(0, 4 * n)), o);
      this.staging.unmap();
    }
    return out;
  }
}
