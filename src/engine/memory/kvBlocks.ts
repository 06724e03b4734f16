// The attention KV cache in blocks, kept sparse on the GPU (Quest-style selection).
//
// Every attention layer's K/V rows are grouped in blocks of BLOCK_ROWS tokens. All blocks live off the GPU
// in a KvBlockStore (host memory up to a budget, then a spill file); a bounded set of them is resident in GPU
// slots. For each query (a decode step, or a whole prefill chunk) the resident set is chosen by:
//   - sink blocks (the first few) and a recent window: always;
//   - the rest by an upper bound on q.k from per-block key summaries: with kmin/kmax the elementwise min/max
//     of the block's keys, q.k <= sum_i max(q_i kmin_i, q_i kmax_i) for every key k in the block; the top
//     blocks by that bound are selected.
// With a budget that holds every block, every block is selected and attention is exactly dense.

import * as fs from 'fs';
import * as path from 'path';

export const BLOCK_ROWS = 64;

/** Per-block elementwise min/max of the keys: [rowLen] each. */
export interface BlockSummary {
  min: Float32Array;
  max: Float32Array;
}

/**
 * One attention layer's K/V rows in blocks, wherever they live: a KvBlockStore, a snapshot file read on
 * demand (memory/snapshot.ts), or dense arrays (denseKvSource).
 */
export interface KvBlockSource {
  readonly rowLen: number;
  /** Rows held. */
  readonly length: number;
  /** Keys and values of block b ([BLOCK_ROWS, rowLen]; rows past the end are zero). Do not modify. */
  block(b: number): { k: Float32Array; v: Float32Array };
  /** Elementwise min/max of the block's keys (rows below `length` only). Do not modify. */
  summary(b: number): BlockSummary;
  /**
   * Where block b already is on disk, unchanged (a snapshot's block file), so that a save can refer to it
   * instead of writing it again; null or absent when it is not.
   */
  stored?(b: number): StoredBlock | null;
}

/** A K/V block's place in a snapshot's block file (memory/snapshot.ts): the file, its offset, its CRC-32s. */
export interface StoredBlock {
  file: { readonly dev: number; readonly ino: number };
  offset: number; // K then V, BLOCK_ROWS rows each
  crcK: number;
  crcV: number;
}

/** Dense rows [n, rowLen] of keys and values as a block source (summaries computed once). */
export function denseKvSource(k: Float32Array, v: Float32Array, rowLen: number): KvBlockSource {
  const length = rowLen ? k.length / rowLen : 0;
  const nb = Math.ceil(length / BLOCK_ROWS);
  const bf = BLOCK_ROWS * rowLen;
  const pad = (a: Float32Array, b: number) => {
    const out = new Float32Array(bf);
    out.set(a.subarray(b * bf, Math.min(a.length, (b + 1) * bf)));
    return out;
  };
  const summaries: BlockSummary[] = [];
  for (let b = 0; b < nb; b++) {
    const min = new Float32Array(rowLen).fill(Infinity);
    const max = new Float32Array(rowLen).fill(-Infinity);
    for (let j = b * bf; j < Math.min(k.length, (b + 1) * bf); j += rowLen) {
      for (let i = 0; i < rowLen; i++) {
        const x = k[j + i];
        if (x < min[i]) min[i] = x;
        if (x > max[i]) max[i] = x;
      }
    }
    summaries.push({ min, max });
  }
  return { rowLen, length, block: (b) => ({ k: pad(k, b), v: pad(v, b) }), summary: (b) => summaries[b] };
}

/** Rows [0, rows) of a block source as dense arrays. */
export function readDense(src: KvBlockSource, rows = src.length): { k: Float32Array; v: Float32Array } {
  const L = src.rowLen;
  const k = new Float32Array(rows * L);
  const v = new Float32Array(rows * L);
  for (let b = 0; b * BLOCK_ROWS < rows; b++) {
    const blk = src.block(b);
    const n = Math.min(BLOCK_ROWS, rows - b * BLOCK_ROWS) * L;
    k.set(blk.k.subarray(0, n), b * BLOCK_ROWS * L);
    v.set(blk.v.subarray(0, n), b * BLOCK_ROWS * L);
  }
  return { k, v };
}

/** A shared host-memory budget across layers; blocks past it are spilled to disk. */
export class HostBudget {
  used = 0;
  constructor(readonly bytes: number) {}
}

/**
 * All K/V blocks of one attention layer, off the GPU. Append-only, with truncation for rollbacks. A store can
 * start from a backing source (a snapshot on disk): its blocks are read from there when first needed.
 */
export class KvBlockStore implements KvBlockSource {
  private readonly hostK: (Float32Array | null)[] = [];
  private readonly hostV: (Float32Array | null)[] = [];
  private readonly summaries: BlockSummary[] = [];
  private readonly onDisk: boolean[] = [];
  private rows = 0;
  private fd: number | null = null;
  private diskBlocks = 0;
  private backing: KvBlockSource | null = null;
  private backed = 0; // blocks [0, backed) not in host memory nor spilled are read from the backing

  constructor(
    readonly rowLen: number, // nKv * headDim
    private readonly budget: HostBudget,
    private readonly spillFile: string | null,
  ) {}

  get length(): number {
    return this.rows;
  }

  get numBlocks(): number {
    return Math.ceil(this.rows / BLOCK_ROWS);
  }

  private get blockFloats(): number {
    return BLOCK_ROWS * this.rowLen;
  }

  /** Bytes held in host memory and on disk (spilled, or still in the snapshot it was restored from). */
  bytes(): { host: number; disk: number } {
    let host = 0;
    let inBacking = 0;
    for (let b = 0; b < this.hostK.length; b++) {
      if (this.hostK[b]) host += 2 * this.blockFloats * 4;
      else if (!this.onDisk[b] && b < this.backed) inBacking++;
    }
    return { host, disk: (this.diskBlocks + inBacking) * 2 * this.blockFloats * 4 };
  }

  /**
   * Replaces the contents with the first `rows` rows of `src`, without reading any block: they are read
   * from the source when first needed (paged onto the GPU, or appended to).
   */
  adopt(src: KvBlockSource, rows = src.length): void {
    if (src.rowLen !== this.rowLen) throw new RangeError(`KV rows of ${src.rowLen} floats do not fit a store of ${this.rowLen}.`);
    if (rows > src.length) throw new RangeError(`the source holds ${src.length} rows, not ${rows}.`);
    this.truncate(0);
    this.backing = src;
    const nb = Math.ceil(src.length / BLOCK_ROWS);
    for (let b = 0; b < nb; b++) {
      this.hostK.push(null);
      this.hostV.push(null);
      this.onDisk.push(false);
      const s = src.summary(b);
      // The last block's summary grows with appends: a private copy.
      this.summaries.push(b === nb - 1 ? { min: s.min.slice(), max: s.max.slice() } : s);
    }
    this.backed = nb;
    this.rows = src.length;
    this.truncate(rows);
  }

  /**
   * Appends rows (row-major [n, rowLen]) of keys and values. `summaries`, when given, are the min/max of the new
   * keys per block they fall in ([groups, 2, rowLen], min row then max row; group 0 holds the rows that complete
   * the current partial block, if any, as kernels/kvSummary.wgsl computes them): they are folded into the block
   * summaries instead of reading every key. The rows are copied once: into the current partial block, then
   * into one buffer of whole blocks, of which the new blocks are views (no allocation per block).
   */
  append(k: Float32Array, v: Float32Array, summaries?: Float32Array): void {
    const L = this.rowLen;
    const n = k.length / L;
    if (v.length !== k.length || !Number.isInteger(n)) throw new RangeError(`append takes [n, ${L}] keys and values (got ${k.length} and ${v.length} floats).`);
    if (n === 0) return;
    const groups = Math.ceil(((this.rows % BLOCK_ROWS) + n) / BLOCK_ROWS);
    if (summaries && summaries.length !== groups * 2 * L) throw new RangeError(`${n} rows at ${this.rows} need ${groups} block summaries, not ${summaries.length / (2 * L)}.`);
    let r = 0;
    let g = 0;
    // 1. rows that complete the current partial block go into it
    const inBlock = this.rows % BLOCK_ROWS;
    if (inBlock > 0) {
      const b = Math.floor(this.rows / BLOCK_ROWS);
      const take = Math.min(n, BLOCK_ROWS - inBlock);
      const bk = this.ensureHost(b);
      bk.k.set(k.subarray(0, take * L), inBlock * L);
      bk.v.set(v.subarray(0, take * L), inBlock * L);
      this.foldSummary(b, bk.k, inBlock, inBlock + take, summaries, g++);
      this.rows += take;
      r = take;
      if (this.rows % BLOCK_ROWS === 0) this.maybeSpill();
    }
    if (r === n) return;
    // 2. the rest starts a block: one buffer of whole blocks (zero past the last row), each block a view of it
    const nb = Math.ceil((n - r) / BLOCK_ROWS);
    const bf = this.blockFloats;
    const allK = new Float32Array(nb * bf);
    const allV = new Float32Array(nb * bf);
    allK.set(k.subarray(r * L));
    allV.set(v.subarray(r * L));
    for (let j = 0; j < nb; j++, g++) {
      const b = this.hostK.length;
      const take = Math.min(BLOCK_ROWS, n - r - j * BLOCK_ROWS);
      // The sink block is never spilled: its own copy, so that it does not keep the whole buffer alive.
      const bk = allK.subarray(j * bf, (j + 1) * bf);
      const bv = allV.subarray(j * bf, (j + 1) * bf);
      this.hostK.push(b === 0 && nb > 1 ? bk.slice() : bk);
      this.hostV.push(b === 0 && nb > 1 ? bv.slice() : bv);
      this.onDisk.push(false);
      this.summaries.push({ min: new Float32Array(L).fill(Infinity), max: new Float32Array(L).fill(-Infinity) });
      this.budget.used += 2 * bf * 4;
      this.foldSummary(b, this.hostK[b]!, 0, take, summaries, g);
      this.rows += take;
      // Spill as each block fills (as row-by-row appends would): the blocks past it are not counted yet.
      if (take === BLOCK_ROWS && j + 1 < nb) {
        const ahead = 2 * bf * 4 * (nb - j - 1);
        this.budget.used -= ahead;
        this.maybeSpill();
        this.budget.used += ahead;
      } else if (take === BLOCK_ROWS) this.maybeSpill();
    }
  }

  /**
   * Folds rows [from, to) of block b (its keys `bk`) into its summary: from `summaries[g]` when given (min/max
   * computed elsewhere over exactly those rows), else from the keys. The first of equal values is kept, as a
   * fold row by row with `<` / `>` does.
   */
  private foldSummary(b: number, bk: Float32Array, from: number, to: number, summaries: Float32Array | undefined, g: number): void {
    const L = this.rowLen;
    const { min, max } = this.summaries[b];
    if (summaries) {
      const o = g * 2 * L;
      for (let i = 0; i < L; i++) {
        const lo = summaries[o + i];
        const hi = summaries[o + L + i];
        if (lo < min[i]) min[i] = lo;
        if (hi > max[i]) max[i] = hi;
      }
      return;
    }
    for (let j = from * L; j < to * L; j += L) {
      for (let i = 0; i < L; i++) {
        const x = bk[j + i];
        if (x < min[i]) min[i] = x;
        if (x > max[i]) max[i] = x;
      }
    }
  }

  /** Keys and values of block b ([BLOCK_ROWS, rowLen], rows past the end are zero). */
  block(b: number): { k: Float32Array; v: Float32Array } {
    if (b < 0 || b >= this.numBlocks) throw new RangeError(`KV block ${b} does not exist (have ${this.numBlocks}).`);
    if (this.hostK[b]) return { k: this.hostK[b]!, v: this.hostV[b]! };
    if (!this.onDisk[b] && b < this.backed) return this.backing!.block(b);
    const k = new Float32Array(this.blockFloats);
    const v = new Float32Array(this.blockFloats);
    const bytes = this.blockFloats * 4;
    fs.readSync(this.fd!, new Uint8Array(k.buffer), 0, bytes, 2 * b * bytes);
    fs.readSync(this.fd!, new Uint8Array(v.buffer), 0, bytes, (2 * b + 1) * bytes);
    return { k, v };
  }

  summary(b: number): BlockSummary {
    return this.summaries[b];
  }

  /** Block b's place on disk when it is still the backing's block, untouched (not copied to memory to be changed). */
  stored(b: number): StoredBlock | null {
    if (b < this.backed && !this.hostK[b] && !this.onDisk[b]) return this.backing!.stored?.(b) ?? null;
    return null;
  }

  /** Rows [0, rows) as one dense array (for snapshots / tests). */
  dense(rows = this.rows): { k: Float32Array; v: Float32Array } {
    return readDense(this, rows);
  }

  /** Drops rows from `rows` on (a rollback or a re-ingest restart); summaries of the cut block are rebuilt. */
  truncate(rows: number): void {
    if (rows >= this.rows) return;
    const keep = Math.ceil(rows / BLOCK_ROWS);
    for (let b = keep; b < this.hostK.length; b++) if (this.hostK[b]) this.budget.used -= 2 * this.blockFloats * 4;
    this.hostK.length = keep;
    this.hostV.length = keep;
    this.summaries.length = keep;
    this.onDisk.length = keep;
    this.diskBlocks = this.onDisk.filter(Boolean).length;
    this.backed = Math.min(this.backed, keep);
    if (keep === 0) this.backing = null;
    this.rows = rows;
    const partial = rows % BLOCK_ROWS;
    if (partial) {
      const b = keep - 1;
      const blk = this.ensureHost(b);
      blk.k.fill(0, partial * this.rowLen);
      blk.v.fill(0, partial * this.rowLen);
      // A new summary object: the old one may be shared with a backing source.
      const s = { min: new Float32Array(this.rowLen).fill(Infinity), max: new Float32Array(this.rowLen).fill(-Infinity) };
      this.summaries[b] = s;
      for (let r = 0; r < partial; r++) {
        for (let i = 0; i < this.rowLen; i++) {
          const x = blk.k[r * this.rowLen + i];
          if (x < s.min[i]) s.min[i] = x;
          if (x > s.max[i]) s.max[i] = x;
        }
      }
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    if (this.spillFile) fs.rmSync(this.spillFile, { force: true });
    for (const k of this.hostK) if (k) this.budget.used -= 2 * this.blockFloats * 4;
    this.hostK.length = 0;
    this.hostV.length = 0;
    this.backing = null;
    this.backed = 0;
  }

  private ensureHost(b: number): { k: Float32Array; v: Float32Array } {
    if (!this.hostK[b]) {
      const blk = this.onDisk[b]
        ? this.block(b)
        : b < this.backed
          ? (({ k, v }) => ({ k: k.slice(), v: v.slice() }))(this.backing!.block(b))
          : { k: new Float32Array(this.blockFloats), v: new Float32Array(this.blockFloats) };
      this.hostK[b] = blk.k;
      this.hostV[b] = blk.v;
      this.budget.used += 2 * this.blockFloats * 4;
    }
    return { k: this.hostK[b]!, v: this.hostV[b]! };
  }

  /** Past the host budget, full blocks move to the spill file, oldest first (sink blocks stay). */
  private maybeSpill(): void {
    if (!this.spillFile || this.budget.used <= this.budget.bytes) return;
    if (this.fd === null) {
      fs.mkdirSync(path.dirname(this.spillFile), { recursive: true });
      this.fd = fs.openSync(this.spillFile, 'w+', 0o600);
    }
    const full = Math.floor(this.rows / BLOCK_ROWS);
    const bytes = this.blockFloats * 4;
    for (let b = 1; b < full && this.budget.used > this.budget.bytes; b++) {
      if (!this.hostK[b]) continue;
      if (!this.onDisk[b]) {
        fs.writeSync(this.fd, bytesOf(this.hostK[b]!), 0, bytes, 2 * b * bytes);
        fs.writeSync(this.fd, bytesOf(this.hostV[b]!), 0, bytes, (2 * b + 1) * bytes);
        this.onDisk[b] = true;
        this.diskBlocks++;
      }
      this.hostK[b] = null;
      this.hostV[b] = null;
      this.budget.used -= 2 * bytes;
    }
  }
}

/** The bytes of a float array (a block may be a view into a larger buffer). */
function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The Quest upper bound of q.k over a block: sum_i max(q_i kmin_i, q_i kmax_i). */
export function blockBound(q: Float32Array, s: BlockSummary, offset = 0): number {
  let sum = 0;
  for (let i = 0; i < s.min.length; i++) {
    const qi = q[offset + i];
    sum += Math.max(qi * s.min[i], qi * s.max[i]);
  }
  return sum;
}

export interface SelectionPolicy {
  sinkBlocks: number; // always keep the first blocks (attention sinks)
  recentBlocks: number; // always keep the last blocks (local context)
  maxBlocks: number; // GPU slots available for this query
}

/**
 * The blocks a query attends to: sinks, the recent window, then the highest-scoring others, up to maxBlocks.
 * `scores[b]` is the bound for block b (already reduced over heads and queries). Returns sorted block ids.
 */
export function selectBlocks(scores: ArrayLike<number>, numBlocks: number, p: SelectionPolicy): number[] {
  if (numBlocks <= p.maxBlocks) return Array.from({ length: numBlocks }, (_, b) => b);
  const chosen = new Set<number>();
  for (let b = 0; b < Math.min(p.sinkBlocks, numBlocks); b++) chosen.add(b);
  for (let b = Math.max(0, numBlocks - p.recentBlocks); b < numBlocks; b++) chosen.add(b);
  for (const b of topIndices(scores, numBlocks, p.maxBlocks - chosen.size, chosen)) chosen.add(b);
  return [...chosen].sort((a, b) => a - b);
}

/**
 * The `k` best of indices [0, n) outside `skip`, best first (higher score, then lower index), without sorting
 * all of them: a bounded min-heap, O(n log k).
 */
export function topIndices(scores: ArrayLike<number>, n: number, k: number, skip?: ReadonlySet<number>): number[] {
  if (k <= 0) return [];
  const better = (a: number, b: number) => scores[a] > scores[b] || (scores[a] === scores[b] && a < b);
  const heap: number[] = [];
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && better(heap[m], heap[l])) m = l;
      if (r < heap.length && better(heap[m], heap[r])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  const up = (i: number) => {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!better(heap[parent], heap[i])) return;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  };
  // Once the heap is full nearly every index fails against its root: that test comes first (with the root's
  // score held in a local), the skip set is asked only about the few that pass it (~3x faster at 16K blocks).
  let rootScore = -Infinity;
  let root = -1;
  for (let b = 0; b < n; b++) {
    if (heap.length === k) {
      const v = scores[b];
      if (v < rootScore || (v === rootScore && b > root)) continue;
    }
    if (skip?.has(b)) continue;
    if (heap.length < k) {
      heap.push(b);
      up(heap.length - 1);
    } else if (better(b, heap[0])) {
      heap[0] = b;
      down(0);
    } else continue;
    if (heap.length === k) {
      root = heap[0];
      rootScore = scores[root];
    }
  }
  return heap.sort((a, b) => (better(a, b) ? -1 : 1));
}

/** A summary of `group` consecutive blocks: the elementwise min/max over theirs (an upper bound for each). */
export function mergeSummaries(parts: BlockSummary[], out?: { min: Float32Array; max: Float32Array }): BlockSummary {
  const L = parts[0].min.length;
  const min = out?.min ?? new Float32Array(L);
  const max = out?.max ?? new Float32Array(L);
  min.set(parts[0].min);
  max.set(parts[0].max);
  for (let p = 1; p < parts.length; p++) {
    const s = parts[p];
    for (let i = 0; i < L; i++) {
      if (s.min[i] < min[i]) min[i] = s.min[i];
      if (s.max[i] > max[i]) max[i] = s.max[i];
    }
  }
  return { min, max };
}

/**
 * selectBlocks when only summaries of groups of `group` consecutive blocks can be scored at once (entry e covers
 * blocks [e*group, (e+1)*group)): branch and bound. Groups are visited from the highest bound down and their
 * blocks scored one by one with `blockScore`; the search stops once the worst of the best blocks found so far
 * beats the next group's bound, which bounds every block in it. The choice is then exactly the one selectBlocks
 * makes from every block's score, at the cost of scoring the visited groups' blocks only.
 *
 * Merged bounds are loose (random-looking keys make every group's bound beat the best blocks), so the search may
 * visit most groups: `maxScored` caps the blocks scored on the host per selection (once `want` are found), which
 * bounds the work per decoded token at any context length. The choice is exact whenever the search ends before
 * the cap (`exact`); past it, the best of the visited groups' blocks, visited best bound first.
 */
export function selectBlocksGrouped(
  groupScores: ArrayLike<number>,
  group: number,
  numBlocks: number,
  blockScore: (b: number) => number,
  p: SelectionPolicy,
  maxScored = Infinity,
): { selected: number[]; scored: number; exact: boolean } {
  if (numBlocks <= p.maxBlocks) return { selected: selectBlocks([], numBlocks, p), scored: 0, exact: true };
  const always = new Set<number>();
  for (let b = 0; b < Math.min(p.sinkBlocks, numBlocks); b++) always.add(b);
  for (let b = Math.max(0, numBlocks - p.recentBlocks); b < numBlocks; b++) always.add(b);
  const want = p.maxBlocks - always.size;
  const entries = Math.ceil(numBlocks / group);
  // The search fills `want` from at most want + |always| groups, then scores at most maxScored more blocks: only
  // that many of the best groups can be visited, so only they are ordered.
  const visitable = Number.isFinite(maxScored) ? want + always.size + Math.ceil(maxScored / group) + 1 : entries;
  const order = topIndices(groupScores, entries, Math.min(entries, visitable));
  const scores = new Float32Array(numBlocks).fill(-Infinity);
  // The `want` best block scores so far, highest first (want is a few dozen slots): best[want - 1] is the one to beat.
  const best: number[] = [];
  let scored = 0;
  // Exact when the bound stops the search, or when every group was visited.
  let exact = order.length === entries;
  for (const e of order) {
    if (want <= 0 || (best.length === want && best[want - 1] > groupScores[e])) {
      exact = true;
      break;
    }
    if (best.length === want && scored + group > maxScored) {
      exact = false;
      break;
    }
    for (let b = e * group; b < Math.min(numBlocks, (e + 1) * group); b++) {
      if (always.has(b)) continue;
      const x = (scores[b] = blockScore(b));
      scored++;
      if (best.length === want && x <= best[want - 1]) continue;
      let at = best.length;
      while (at > 0 && best[at - 1] < x) at--;
      best.splice(at, 0, x);
      if (best.length > want) best.pop();
    }
  }
  return { selected: selectBlocks(scores, numBlocks, p), scored, exact };
}

/**
 * The Quest bound of a chunk's queries over a block, as kernels/kvScore.wgsl computes it: with the queries'
 * elementwise range [qmin, qmax] per KV head group ([nKv * d] each), max over groups of
 * sum_i max(qmin_i kmin_i, qmin_i kmax_i, qmax_i kmin_i, qmax_i kmax_i).
 */
export function questScore(qmin: ArrayLike<number>, qmax: ArrayLike<number>, s: BlockSummary, nKv: number): number {
  const d = s.min.length / nKv;
  let best = -Infinity;
  for (let g = 0; g < nKv; g++) {
    let sum = 0;
    for (let j = g * d; j < (g + 1) * d; j++) {
      const lo = s.min[j];
      const hi = s.max[j];
      const q0 = qmin[j];
      const q1 = qmax[j];
      sum += Math.max(q0 * lo, q0 * hi, q1 * lo, q1 * hi);
    }
    best = Math.max(best, sum);
  }
  return best;
}
