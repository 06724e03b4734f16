// Snapshots of a model's state on disk, so a workspace read once is resumed instantly after a restart.
//
// A snapshot is two files side by side:
//   <name>            the snapshot (format 3): Mamba state, block summaries, the block index, manifest;
//                     small (~160 MB at 1M tokens at the Granite-4.0-H-350m shape), rewritten on every save.
//   <name>.<hex>.kv   its block file: K/V blocks and checkpoints (the Mamba state at file boundaries), each
//                     immutable once written (a complete block covering tokens [a, a+64) depends only on the
//                     tokens before a+64; a checkpoint only on the tokens before it). Only ever appended to.
// A save appends what the block file lacks (after an edit of the last file: the blocks of the re-read tail)
// and refers to the rest by offset, so it costs the tail, not the workspace (8.7 GB of K/V at 1M tokens).
// When more than half of the block file is no longer referenced (an early file changed), the save writes the
// referenced parts to a new block file instead (its own name), and the old one is deleted after the switch.
//
// Snapshot layout (little-endian):
//   "SWSNAP\0\0" | u32 format version | u32 0
//   data: the small tensors (per attention layer: block summaries, CRC-32s, offsets in the block file; the
//         Mamba state)
//   header JSON (model identity, token count, block file name, checkpoints, caller-defined manifest, tensor
//   table with a CRC-32 per tensor)
//   trailer: u64 header offset | u32 header length | u32 header CRC-32 | "SWSNAPND"
// Block file: "SWBLOCKS" | u32 format version | u32 0, then blocks (K then V, BLOCK_ROWS rows each) and
// checkpoints (conv then ssm of each Mamba layer) wherever the index says.
//
// Loading reads the snapshot and checks it, and checks that the block file is there and long enough; no
// K/V block is read: the model pages them in on demand, each checked against its own CRC-32. Checkpoints are
// read only when a re-ingest restarts from one.
//
// Crash safety: the block file is appended to and fsynced before the new snapshot is written (temp file,
// fsync, rename, fsync of the directory). A crash at any point leaves the previous snapshot valid: the bytes it
// refers to are never overwritten, and a new block file is deleted only when no snapshot in place names it.
// Saves of one snapshot by several processes take turns (a lock file holding the writer's pid).

import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import { SidewinderError } from '../errors';
import type { ModelState } from '../model';
import { BLOCK_ROWS, denseKvSource, type BlockSummary, type KvBlockSource, type StoredBlock } from './kvBlocks';

export const SNAPSHOT_FORMAT_VERSION = 3;
const MAGIC = Buffer.from('SWSNAP\0\0', 'latin1');
const END_MAGIC = Buffer.from('SWSNAPND', 'latin1');
const BLOCKS_MAGIC = Buffer.from('SWBLOCKS', 'latin1');
const PREFIX_BYTES = 16;
const TRAILER_BYTES = 24;
/** A save writes a new block file when more than this share of the old one would be unreferenced. */
const COMPACT_UNUSED_SHARE = 0.5;

/** A snapshot that cannot be used: corrupt, truncated, or made by another model or format version. */
export class SnapshotError extends SidewinderError {
  constructor(
    message: string,
    readonly kind: 'missing' | 'corrupt' | 'foreign-model' | 'foreign-version',
  ) {
    super(message);
  }
}

interface TensorEntry {
  name: string; // "mamba.3.conv", "kv.1.summaries", "kv.1.offsets", ...
  offset: number; // bytes from the start of the data section
  length: number; // bytes
  crc32: number;
}

interface KvEntry {
  rows: number;
  rowLen: number;
  blockBytes: number; // K and V of one block in the block file: 2 * BLOCK_ROWS * rowLen * 4
}

/** A checkpoint's Mamba state in the block file. */
interface CheckpointEntry {
  position: number;
  offset: number;
  length: number;
  crc32: number;
}

/** The Mamba state at a token position (a file boundary): where a re-ingest can restart from. */
export interface Checkpoint {
  position: number;
  mamba: { conv: Float32Array; ssm: Float32Array }[];
}

interface Header<M> {
  formatVersion: number;
  modelId: string;
  position: number;
  blockFile: string; // name of the block file, in the snapshot's directory
  blockFileBytes: number; // the block file is at least this long (the end of the last part referred to)
  checkpoints: CheckpointEntry[];
  createdAt: string;
  manifest: M;
  tensors: TensorEntry[];
  kv: KvEntry[];
  dataBytes: number;
}

export interface Snapshot<M> {
  modelId: string;
  /** The Mamba state, and the K/V as block sources (`kvBlocks`) read from the block file on demand. */
  state: ModelState;
  checkpoints: Checkpoint[];
  manifest: M;
  createdAt: string;
  /** Bytes of the snapshot file and of its block file, and bytes read to open them. */
  fileBytes: number;
  blockFileBytes: number;
  bytesRead: number;
}

/** What a save wrote. */
export interface SaveReport {
  snapshotBytes: number;
  blockFile: string;
  blockFileBytes: number;
  /** Bytes added to the block file (all of it when it is new). */
  appendedBytes: number;
  /** A new block file was written because most of the old one was no longer referenced. */
  compacted: boolean;
}

/** Writes `chunks` to `file` atomically (temp file + fsync + rename + directory fsync). */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[]): void {
  writeStreamAtomic(file, (out) => chunks.forEach((c) => out.write(c)));
}

/** Deletes temp files left by writers that died (their pid no longer runs). */
function removeStaleTemps(dir: string, base: string): void {
  const re = new RegExp(`^\\.${escapeRe(base)}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  for (const f of fs.readdirSync(dir)) {
    const m = re.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !pidAlive(pid)) fs.rmSync(path.join(dir, f), { force: true });
  }
}

function bytesOf(a: Float32Array | Float64Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Sequential writes through a 4 MiB buffer into an open file. */
export class FileWriter {
  private readonly buf = Buffer.alloc(4 << 20);
  private used = 0;
  constructor(
    private readonly fd: number,
    public offset = 0, // where the next byte lands (for a file opened to append: its size)
  ) {}

  write(data: Uint8Array): void {
    this.offset += data.byteLength;
    if (data.byteLength > this.buf.length / 2) {
      this.flush();
      writeAll(this.fd, data);
      return;
    }
    if (this.used + data.byteLength > this.buf.length) this.flush();
    this.buf.set(data, this.used);
    this.used += data.byteLength;
  }

  flush(): void {
    if (this.used) writeAll(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) done += fs.writeSync(fd, data, done, data.byteLength - done);
}

/** Streams `write`'s output into `file` atomically (temp file + fsync + rename + directory fsync). */
export function writeStreamAtomic(file: string, write: (out: FileWriter) => void): number {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir, path.basename(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    const out = new FileWriter(fd);
    write(out);
    out.flush();
    bytes = out.offset;
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  fsyncDir(dir);
  return bytes;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Block files belong to the snapshot whose name they extend: `<snapshot>.<8 hex>.kv`. */
function blockFileRe(base: string): RegExp {
  return new RegExp(`^${escapeRe(base)}\\.[0-9a-f]{8}\\.kv$`);
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sleeps without giving up the thread (saves are synchronous). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes `<file>.lock` (holding this process's pid) so that saves of one snapshot by several processes take
 * turns; a lock whose writer is gone is taken over. Saves within a process never overlap (they are
 * synchronous), so a lock holding this process's own pid is a leftover too. Returns the release.
 */
function lockSnapshot(file: string): () => void {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const text = fs.readFileSync(lock, 'utf8');
      const pid = Number(text);
      // An empty lock is one being written, or one whose writer died right after creating it.
      stale = text ? pid === process.pid || !pidAlive(pid) : Date.now() - fs.statSync(lock).mtimeMs > 10_000;
    } catch {
      continue; // released meanwhile
    }
    if (stale) fs.rmSync(lock, { force: true });
    else if (Date.now() > deadline) throw new SidewinderError(`another process has been saving ${path.basename(file)} for 10 minutes; if none is, delete ${lock}.`);
    else pause(50);
  }
}

function fsyncDir(dir: string): void {
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    // Some filesystems do not allow fsync on a directory; the rename itself is still atomic.
  }
}

/**
 * Writes a snapshot: the model state (K/V as dense arrays or, without copying them, as block sources), a
 * manifest, and checkpoints. Parts already in the block file of the snapshot in place (blocks and checkpoints
 * it was restored from) are referred to, not written again; the rest is appended to it, or all of it written
 * to a new block file when the old one would be mostly unreferenced (or there is none).
 */
export function saveSnapshot<M>(file: string, modelId: string, state: ModelState, manifest: M, checkpoints: readonly Checkpoint[] = []): SaveReport {
  const steps = saveSteps(file, modelId, state, manifest, checkpoints, Infinity);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Bytes written to the block file between two of saveSnapshotLending's pauses. */
const LEND_EVERY_BYTES = 32 << 20;

/**
 * saveSnapshot that pauses every `everyBytes` of block data written and awaits `between` (the ingest lends the
 * model's state to a waiting completion there: it forks the state, runs and rolls back, leaving every block as
 * it was, so the blocks written after the pause are the state's). A save at 1M tokens writes gigabytes.
 */
export async function saveSnapshotLending<M>(
  file: string,
  modelId: string,
  state: ModelState,
  manifest: M,
  checkpoints: readonly Checkpoint[],
  between: () => Promise<void>,
  everyBytes = LEND_EVERY_BYTES,
): Promise<SaveReport> {
  const steps = saveSteps(file, modelId, state, manifest, checkpoints, everyBytes);
  try {
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await between();
    }
  } finally {
    steps.return(undefined as never); // a pause that threw: the save's own cleanup (file closed, lock released)
  }
}

/** The save, as steps: it yields after every `everyBytes` of block data, and returns what it wrote. */
function* saveSteps<M>(file: string, modelId: string, state: ModelState, manifest: M, checkpoints: readonly Checkpoint[], everyBytes: number): Generator<void, SaveReport> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockSnapshot(file);
  try {
    // The block file of the snapshot in place, when there is a usable one: the save appends to it.
    let cur: { name: string; dev: number; ino: number; size: number } | null = null;
    try {
      const name = path.basename(snapshotBlockFile(file));
      const st = fs.statSync(path.join(dir, name));
      cur = { name, dev: st.dev, ino: st.ino, size: st.size };
    } catch {
      cur = null; // none, or unusable: a new block file
    }
    const inCur = (loc: StoredBlock | null | undefined): loc is StoredBlock => !!loc && !!cur && loc.file.dev === cur.dev && loc.file.ino === cur.ino;

    // Plan: per attention layer, each block either refers to the block file or is written.
    const sources: KvBlockSource[] =
      state.kvBlocks ?? state.kv.map((l) => denseKvSource(l.k, l.v, state.position ? l.k.length / state.position : 0));
    interface LayerPlan {
      entry: KvEntry;
      summaries: Float32Array;
      crcs: Uint32Array;
      offsets: Float64Array;
      reuse: (StoredBlock | null)[];
    }
    const layers: LayerPlan[] = sources.map((src) => {
      const rows = Math.min(src.length, state.position);
      const nb = Math.ceil(rows / BLOCK_ROWS);
      const L = src.rowLen;
      const reuse: (StoredBlock | null)[] = [];
      const summaries = new Float32Array(nb * 2 * L);
      for (let b = 0; b < nb; b++) {
        const cut = rows - b * BLOCK_ROWS < BLOCK_ROWS && src.length > rows; // the state ends inside this block
        const loc = cut ? null : src.stored?.(b);
        reuse.push(inCur(loc) ? loc : null);
        if (!cut) {
          const s = src.summary(b);
          summaries.set(s.min, b * 2 * L);
          summaries.set(s.max, b * 2 * L + L);
        }
      }
      return { entry: { rows, rowLen: L, blockBytes: 2 * BLOCK_ROWS * L * 4 }, summaries, crcs: new Uint32Array(nb * 2), offsets: new Float64Array(nb), reuse };
    });
    const mambaBytes = state.mamba.reduce((n, m) => n + m.conv.byteLength + m.ssm.byteLength, 0);
    const ckptReuse = checkpoints.map((c) => (c instanceof LazyCheckpoint && inCur(c.stored) ? c.stored : null));
    let live = 0;
    let fresh = 0;
    layers.forEach((l) => l.reuse.forEach((r) => ((live += l.entry.blockBytes), r || (fresh += l.entry.blockBytes))));
    ckptReuse.forEach((r) => ((live += mambaBytes), r || (fresh += mambaBytes)));
    const compacted = !!cur && cur.size + fresh - PREFIX_BYTES - live > COMPACT_UNUSED_SHARE * (cur.size + fresh);
    if (compacted) {
      // Write everything again into a new block file.
      layers.forEach((l) => l.reuse.fill(null));
      ckptReuse.fill(null);
    }

    // Append (or write a new block file), then make it durable before the snapshot names it.
    const newFile = !cur || compacted;
    const blockName = newFile ? `${base}.${randomBytes(4).toString('hex')}.kv` : cur!.name;
    const blockPath = path.join(dir, blockName);
    const fd = fs.openSync(blockPath, newFile ? 'wx' : 'a', 0o600);
    const start = newFile ? 0 : fs.fstatSync(fd).size;
    const ckpts: CheckpointEntry[] = [];
    let blockFileBytes = PREFIX_BYTES;
    let end = start;
    try {
      const out = new FileWriter(fd, start);
      if (newFile) out.write(prefix(BLOCKS_MAGIC));
      let lentAt = out.offset;
      for (let i = 0; i < sources.length; i++) {
        const src = sources[i];
        const l = layers[i];
        const L = src.rowLen;
        for (let b = 0; b < l.reuse.length; b++) {
          const r = l.reuse[b];
          if (out.offset - lentAt >= everyBytes) {
            yield;
            lentAt = out.offset;
          }
          if (r) {
            l.offsets[b] = r.offset;
            l.crcs[2 * b] = r.crcK;
            l.crcs[2 * b + 1] = r.crcV;
          } else {
            let { k, v } = src.block(b);
            const tail = l.entry.rows - b * BLOCK_ROWS;
            if (tail < BLOCK_ROWS && src.length > l.entry.rows) {
              // The state ends inside this block of the source: keep only its rows.
              ({ k, v } = { k: k.slice(), v: v.slice() });
              k.fill(0, tail * L);
              v.fill(0, tail * L);
              const s = denseKvSource(k.subarray(0, tail * L), v.subarray(0, tail * L), L).summary(0);
              l.summaries.set(s.min, b * 2 * L);
              l.summaries.set(s.max, b * 2 * L + L);
            }
            const kb = bytesOf(k);
            const vb = bytesOf(v);
            l.offsets[b] = out.offset;
            l.crcs[2 * b] = crc32(kb);
            l.crcs[2 * b + 1] = crc32(vb);
            out.write(kb);
            out.write(vb);
          }
          blockFileBytes = Math.max(blockFileBytes, l.offsets[b] + l.entry.blockBytes);
        }
      }
      for (let j = 0; j < checkpoints.length; j++) {
        const c = checkpoints[j];
        const r = ckptReuse[j];
        if (out.offset - lentAt >= everyBytes) {
          yield;
          lentAt = out.offset;
        }
        let e: CheckpointEntry;
        if (r) e = { position: c.position, offset: r.offset, length: mambaBytes, crc32: r.crcK };
        else {
          e = { position: c.position, offset: out.offset, length: mambaBytes, crc32: 0 };
          const mamba = c instanceof LazyCheckpoint ? c.read() : c.mamba;
          if (mamba.length !== state.mamba.length) throw new RangeError(`checkpoint at ${c.position} holds ${mamba.length} Mamba layers, not ${state.mamba.length}.`);
          mamba.forEach((m, i) => {
            if (m.conv.length !== state.mamba[i].conv.length || m.ssm.length !== state.mamba[i].ssm.length) throw new RangeError(`checkpoint at ${c.position} does not match the state's Mamba layer ${i}.`);
            for (const a of [m.conv, m.ssm]) {
              e.crc32 = crc32(bytesOf(a), e.crc32);
              out.write(bytesOf(a));
            }
          });
        }
        ckpts.push(e);
        blockFileBytes = Math.max(blockFileBytes, e.offset + e.length);
      }
      out.flush();
      fs.fsyncSync(fd);
      end = out.offset;
    } finally {
      fs.closeSync(fd);
    }
    if (newFile) fsyncDir(dir); // the new block file's name is durable before a snapshot names it

    const snapshotBytes = writeStreamAtomic(file, (out) => {
      out.write(prefix(MAGIC));
      const base0 = out.offset;
      const tensors: TensorEntry[] = [];
      const add = (name: string, a: Float32Array | Float64Array | Uint32Array) => {
        const bytes = bytesOf(a);
        tensors.push({ name, offset: out.offset - base0, length: bytes.byteLength, crc32: crc32(bytes) });
        out.write(bytes);
      };
      layers.forEach((l, i) => {
        add(`kv.${i}.summaries`, l.summaries);
        add(`kv.${i}.crcs`, l.crcs);
        add(`kv.${i}.offsets`, l.offsets);
      });
      state.mamba.forEach((m, i) => {
        add(`mamba.${i}.conv`, m.conv);
        add(`mamba.${i}.ssm`, m.ssm);
      });
      const header: Header<M> = {
        formatVersion: SNAPSHOT_FORMAT_VERSION,
        modelId,
        position: state.position,
        blockFile: blockName,
        blockFileBytes,
        checkpoints: ckpts,
        createdAt: new Date().toISOString(),
        manifest,
        tensors,
        kv: layers.map((l) => l.entry),
        dataBytes: out.offset - base0,
      };
      const hjson = Buffer.from(JSON.stringify(header), 'utf8');
      const headerOffset = out.offset;
      out.write(hjson);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      trailer.writeBigUInt64LE(BigInt(headerOffset), 0);
      trailer.writeUInt32LE(hjson.length, 8);
      trailer.writeUInt32LE(crc32(hjson), 12);
      END_MAGIC.copy(trailer, 16);
      out.write(trailer);
    });
    // The new snapshot is in place: other block files of this snapshot (the one before a compaction, those of
    // saves that died) are garbage. A process still reading one keeps it open, which POSIX allows.
    const re = blockFileRe(base);
    for (const f of fs.readdirSync(dir)) {
      if (f === blockName || !re.test(f)) continue;
      try {
        fs.rmSync(path.join(dir, f), { force: true });
      } catch {
        // in use (Windows): removed by a later save
      }
    }
    return { snapshotBytes, blockFile: blockPath, blockFileBytes: end, appendedBytes: end - start, compacted };
  } finally {
    unlock();
  }
}

function prefix(magic: Buffer): Buffer {
  const pre = Buffer.alloc(PREFIX_BYTES);
  magic.copy(pre, 0);
  pre.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
  return pre;
}

/** Positioned reads of an open file, counted. */
function readAt(fd: number, pos: number, len: number, what: string): Buffer {
  const b = Buffer.allocUnsafe(len);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, b, done, len - done, pos + done);
    if (n === 0) throw new SnapshotError(`${what} ended early: truncated; the workspace will be re-read.`, 'corrupt');
    done += n;
  }
  return b;
}

/** A snapshot's block file, open for the lazily read parts; closed when none of them is reachable any more. */
class BlockFile {
  private static readonly closer = new FinalizationRegistry<number>((fd) => {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  });
  readonly dev: number;
  readonly ino: number;

  constructor(
    readonly file: string,
    readonly fd: number,
    private readonly snapshot: { file: string; dev: number; ino: number },
  ) {
    const st = fs.fstatSync(fd);
    this.dev = st.dev;
    this.ino = st.ino;
    BlockFile.closer.register(this, fd, this);
  }

  /** Closes the file now (a load that failed after opening it), instead of when it is collected. */
  release(): void {
    BlockFile.closer.unregister(this);
    fs.closeSync(this.fd);
  }

  read(pos: number, len: number): Buffer {
    return readAt(this.fd, pos, len, 'the snapshot block file');
  }

  /**
   * A part read after loading (a K/V block, a checkpoint) failed its check: the snapshot is set aside (renamed
   * to *.corrupt, if it is still the one in place) so the next sync rebuilds it, and the caller is told.
   */
  corrupt(what: string): never {
    try {
      const here = fs.statSync(this.snapshot.file);
      if (here.ino === this.snapshot.ino && here.dev === this.snapshot.dev) fs.renameSync(this.snapshot.file, `${this.snapshot.file}.corrupt`);
    } catch {
      // gone already
    }
    throw new SnapshotError(`${what} in the snapshot is corrupt (checksum); the snapshot was set aside and the workspace will be re-read on the next sync.`, 'corrupt');
  }
}

/** A checkpoint in a block file: its Mamba state is read (and checked) when first used. */
class LazyCheckpoint implements Checkpoint {
  private cached: Checkpoint['mamba'] | null = null;
  constructor(
    readonly position: number,
    readonly stored: StoredBlock, // crcK: the CRC-32 of the whole state
    private readonly readState: () => Checkpoint['mamba'],
  ) {}

  get mamba(): Checkpoint['mamba'] {
    return (this.cached ??= this.readState());
  }

  /** The state without keeping it (a save that copies it into a new block file). */
  read(): Checkpoint['mamba'] {
    return this.cached ?? this.readState();
  }
}

/** One attention layer's K/V in a block file: summaries in memory, blocks read on demand and checked. */
class SnapshotKv implements KvBlockSource {
  constructor(
    private readonly f: BlockFile,
    private readonly layer: number,
    readonly rowLen: number,
    readonly length: number,
    private readonly summaries: Float32Array,
    private readonly crcs: Uint32Array,
    private readonly offsets: Float64Array,
  ) {}

  block(b: number): { k: Float32Array; v: Float32Array } {
    if (b < 0 || b * BLOCK_ROWS >= this.length) throw new RangeError(`KV block ${b} is not in the snapshot.`);
    const half = BLOCK_ROWS * this.rowLen * 4;
    const bytes = this.f.read(this.offsets[b], 2 * half);
    const kb = bytes.subarray(0, half);
    const vb = bytes.subarray(half);
    if (crc32(kb) !== this.crcs[2 * b] || crc32(vb) !== this.crcs[2 * b + 1]) this.f.corrupt(`K/V block ${b} of attention layer ${this.layer}`);
    const k = new Float32Array(BLOCK_ROWS * this.rowLen);
    const v = new Float32Array(BLOCK_ROWS * this.rowLen);
    new Uint8Array(k.buffer).set(kb);
    new Uint8Array(v.buffer).set(vb);
    return { k, v };
  }

  summary(b: number): BlockSummary {
    const L = this.rowLen;
    return { min: this.summaries.subarray(b * 2 * L, b * 2 * L + L), max: this.summaries.subarray(b * 2 * L + L, (b + 1) * 2 * L) };
  }

  stored(b: number): StoredBlock {
    return { file: this.f, offset: this.offsets[b], crcK: this.crcs[2 * b], crcV: this.crcs[2 * b + 1] };
  }
}

/**
 * Whether a parsed header has the fields the loader uses, with their types and ranges (the checksum only says
 * that it was written whole, not by whom): offsets, lengths and counts are non-negative safe integers.
 */
function wellFormed(h: unknown): h is Header<unknown> {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const u32 = (v: unknown) => count(v) && v <= 0xffffffff;
  const list = (v: unknown, ok: (e: Record<string, unknown>) => boolean) => Array.isArray(v) && v.every((e) => isObj(e) && ok(e));
  return (
    isObj(h) &&
    typeof h.modelId === 'string' &&
    typeof h.blockFile === 'string' &&
    typeof h.createdAt === 'string' &&
    count(h.position) &&
    count(h.blockFileBytes) &&
    count(h.dataBytes) &&
    list(h.tensors, (t) => typeof t.name === 'string' && count(t.offset) && count(t.length) && u32(t.crc32)) &&
    list(h.kv, (e) => count(e.rows) && e.rows <= (h.position as number) && count(e.rowLen) && (e.rows === 0 || e.rowLen > 0) && count(e.blockBytes)) &&
    (h.checkpoints == null || list(h.checkpoints, (c) => count(c.position) && count(c.offset) && count(c.length) && u32(c.crc32)))
  );
}

/**
 * The snapshot file's header, checked (magic, version, trailer, checksum), and a reader of its data section.
 * The file is read whole by loadSnapshot; saveSnapshot only needs the header (which block file it names).
 */
function readHeader<M>(file: string): { header: Header<M>; size: number; dev: number; ino: number; read: (pos: number, len: number) => Buffer; close: () => void; bytesRead: () => number } {
  if (!fs.existsSync(file)) throw new SnapshotError(`no snapshot at ${file}.`, 'missing');
  const fd = fs.openSync(file, 'r');
  let bytesRead = 0;
  const read = (pos: number, len: number) => ((bytesRead += len), readAt(fd, pos, len, 'the snapshot'));
  try {
    const st = fs.fstatSync(fd);
    const size = st.size;
    const pre = size >= PREFIX_BYTES ? read(0, PREFIX_BYTES) : Buffer.alloc(0);
    if (pre.length < PREFIX_BYTES || !pre.subarray(0, 8).equals(MAGIC)) {
      throw new SnapshotError(`${path.basename(file)} is not a Sidewinder snapshot (bad magic); it will be rebuilt.`, 'corrupt');
    }
    const version = pre.readUInt32LE(8);
    if (version !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotError(`snapshot format version ${version} is not ${SNAPSHOT_FORMAT_VERSION}; the workspace will be re-read.`, 'foreign-version');
    }
    const trailer = size >= PREFIX_BYTES + TRAILER_BYTES ? read(size - TRAILER_BYTES, TRAILER_BYTES) : Buffer.alloc(0);
    if (trailer.length < TRAILER_BYTES || !trailer.subarray(16).equals(END_MAGIC)) {
      throw new SnapshotError('snapshot is truncated (no end marker); the workspace will be re-read.', 'corrupt');
    }
    const headerOffset = Number(trailer.readBigUInt64LE(0));
    const hlen = trailer.readUInt32LE(8);
    if (headerOffset + hlen + TRAILER_BYTES !== size) throw new SnapshotError('snapshot header is misplaced: the file is damaged; the workspace will be re-read.', 'corrupt');
    const hbytes = read(headerOffset, hlen);
    if (crc32(hbytes) !== trailer.readUInt32LE(12)) throw new SnapshotError('snapshot header does not match its checksum; the workspace will be re-read.', 'corrupt');
    let header: Header<M>;
    try {
      header = JSON.parse(hbytes.toString('utf8'));
    } catch {
      throw new SnapshotError('snapshot header is corrupt; the workspace will be re-read.', 'corrupt');
    }
    if (!wellFormed(header)) throw new SnapshotError('snapshot header is malformed (a field of the wrong type or range); the workspace will be re-read.', 'corrupt');
    if (PREFIX_BYTES + header.dataBytes !== headerOffset) {
      throw new SnapshotError(`snapshot data is ${headerOffset - PREFIX_BYTES} bytes, expected ${header.dataBytes}; the workspace will be re-read.`, 'corrupt');
    }
    if (typeof header.blockFile !== 'string' || !blockFileRe(path.basename(file)).test(header.blockFile)) {
      throw new SnapshotError('snapshot names no valid block file; the workspace will be re-read.', 'corrupt');
    }
    return { header, size, dev: st.dev, ino: st.ino, read, close: () => fs.closeSync(fd), bytesRead: () => bytesRead };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** The block file a snapshot refers to (its K/V blocks and checkpoints). */
export function snapshotBlockFile(file: string): string {
  const h = readHeader(file);
  h.close();
  return path.join(path.dirname(file), h.header.blockFile);
}

/**
 * Opens and checks a snapshot made for `modelId`: the header, the Mamba state, the block summaries, checksums
 * and offsets, and that its block file is there and long enough. K/V blocks and checkpoints are read later,
 * when used. Throws SnapshotError (with a kind) when a file is missing, corrupt or truncated, or belongs to
 * another model or format version.
 */
export function loadSnapshot<M>(file: string, modelId: string): Snapshot<M> {
  const h = readHeader<M>(file);
  let opened: BlockFile | null = null; // closed again unless the load succeeds
  let loaded = false;
  try {
    const header = h.header;
    if (header.modelId !== modelId) {
      throw new SnapshotError('snapshot was made with another model; the workspace will be re-read.', 'foreign-model');
    }
    // The block file, kept open for the blocks read later.
    const blockPath = path.join(path.dirname(file), header.blockFile);
    let bfd: number;
    try {
      bfd = fs.openSync(blockPath, 'r');
    } catch {
      throw new SnapshotError(`the snapshot's block file ${header.blockFile} is missing; the workspace will be re-read.`, 'corrupt');
    }
    const bf = (opened = new BlockFile(blockPath, bfd, { file, dev: h.dev, ino: h.ino }));
    const blockFileBytes = fs.fstatSync(bfd).size;
    if (blockFileBytes < header.blockFileBytes) {
      throw new SnapshotError(`the snapshot's block file is ${blockFileBytes} bytes, shorter than the ${header.blockFileBytes} it needs (truncated); the workspace will be re-read.`, 'corrupt');
    }
    const bpre = bf.read(0, PREFIX_BYTES);
    if (!bpre.subarray(0, 8).equals(BLOCKS_MAGIC) || bpre.readUInt32LE(8) !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotError(`${header.blockFile} is not a Sidewinder block file of format ${SNAPSHOT_FORMAT_VERSION}; the workspace will be re-read.`, 'corrupt');
    }
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    const bytes = (name: string): Buffer => {
      const t = byName.get(name);
      if (!t || t.offset + t.length > header.dataBytes || t.length % 4) throw new SnapshotError(`snapshot lacks tensor ${name}.`, 'corrupt');
      const b = h.read(PREFIX_BYTES + t.offset, t.length);
      if (crc32(b) !== t.crc32) throw new SnapshotError(`tensor ${name} in the snapshot does not match its checksum; the workspace will be re-read.`, 'corrupt');
      return b;
    };
    const typed = <T extends Float32Array | Float64Array | Uint32Array>(name: string, make: (n: number) => T): T => {
      const b = bytes(name);
      const out = make(b.length / make(0).BYTES_PER_ELEMENT);
      if (out.byteLength !== b.length) throw new SnapshotError(`snapshot tensor ${name} has a bad size.`, 'corrupt');
      new Uint8Array(out.buffer).set(b);
      return out;
    };
    const floats = (name: string) => typed(name, (n) => new Float32Array(n));
    const nMamba = header.tensors.filter((t) => t.name.startsWith('mamba.') && t.name.endsWith('.conv')).length;
    const inFile = (offset: number, length: number) => Number.isInteger(offset) && offset >= PREFIX_BYTES && offset + length <= header.blockFileBytes;
    const kvBlocks = header.kv.map((e, i) => {
      const nb = Math.ceil(e.rows / BLOCK_ROWS);
      const summaries = floats(`kv.${i}.summaries`);
      const crcs = typed(`kv.${i}.crcs`, (n) => new Uint32Array(n));
      const offsets = typed(`kv.${i}.offsets`, (n) => new Float64Array(n));
      if (summaries.length !== nb * 2 * e.rowLen || crcs.length !== nb * 2 || offsets.length !== nb || e.blockBytes !== 2 * BLOCK_ROWS * e.rowLen * 4 || !offsets.every((o) => inFile(o, e.blockBytes))) {
        throw new SnapshotError(`snapshot K/V table of attention layer ${i} does not match its blocks.`, 'corrupt');
      }
      return new SnapshotKv(bf, i, e.rowLen, e.rows, summaries, crcs, offsets);
    });
    const mamba = Array.from({ length: nMamba }, (_, i) => ({ conv: floats(`mamba.${i}.conv`), ssm: floats(`mamba.${i}.ssm`) }));
    const state: ModelState = { position: header.position, mamba, kv: [], kvBlocks };
    const mambaBytes = mamba.reduce((n, m) => n + m.conv.byteLength + m.ssm.byteLength, 0);
    const checkpoints: Checkpoint[] = (header.checkpoints ?? []).map((c, j) => {
      if (c.length !== mambaBytes || !inFile(c.offset, c.length)) throw new SnapshotError(`snapshot checkpoint ${j} does not match the Mamba state.`, 'corrupt');
      return new LazyCheckpoint(c.position, { file: bf, offset: c.offset, crcK: c.crc32, crcV: 0 }, () => {
        const b = bf.read(c.offset, c.length);
        if (crc32(b) !== c.crc32) bf.corrupt(`checkpoint ${j}`);
        let o = 0;
        const take = (n: number) => {
          const a = new Float32Array(n);
          new Uint8Array(a.buffer).set(b.subarray(o, (o += 4 * n)));
          return a;
        };
        return mamba.map((m) => ({ conv: take(m.conv.length), ssm: take(m.ssm.length) }));
      });
    });
    const bytesRead = h.bytesRead() + PREFIX_BYTES;
    loaded = true;
    return { modelId, state, checkpoints, manifest: header.manifest, createdAt: header.createdAt, fileBytes: h.size, blockFileBytes, bytesRead };
  } finally {
    h.close();
    if (!loaded) opened?.release();
  }
}

const IDENTITY_SAMPLE = 64 << 10;

/**
 * A stable identity for a model folder: config.json, the tokenizer files, and every weight file's name, size,
 * safetensors header and the first and last 64 KiB of its tensor data (a model retrained at the same shapes has
 * the same headers). Cheap: a few hundred KiB are read whatever the model's size.
 */
export function modelIdentity(dir: string): string {
  const h = createHash('sha256');
  const files = fs
    .readdirSync(dir)
    .filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f === 'tokenizer.json' || f === 'tokenizer_config.json')
    .sort();
  for (const f of files) {
    const p = path.join(dir, f);
    const st = fs.statSync(p);
    h.update(`${f}\0${st.size}\0`);
    if (f.endsWith('.safetensors')) {
      const fd = fs.openSync(p, 'r');
      try {
        const len = Buffer.alloc(8);
        fs.readSync(fd, len, 0, 8, 0);
        // (A corrupt length is cut to the file: a few bytes claiming a 1 TB header allocate no 100 MiB.)
        const n = Math.min(Number(len.readBigUInt64LE(0)), 100 << 20, Math.max(0, st.size - 8));
        const header = Buffer.alloc(n);
        fs.readSync(fd, header, 0, n, 8);
        const head = Buffer.alloc(Math.max(0, Math.min(IDENTITY_SAMPLE, st.size - 8 - n)));
        const tail = Buffer.alloc(head.length);
        fs.readSync(fd, head, 0, head.length, 8 + n);
        fs.readSync(fd, tail, 0, tail.length, st.size - tail.length);
        h.update(header).update(head).update(tail);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      h.update(fs.readFileSync(p));
    }
  }
  return h.digest('hex').slice(0, 32);
}
