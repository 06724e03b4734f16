// Snapshots of a model's state on disk, so a workspace read once is resumed instantly after a restart.
//
// File layout (format 2, little-endian):
//   "SWSNAP\0\0" | u32 format version | u32 0
//   data: per attention layer, its K/V blocks (K then V of block 0, of block 1, ...; BLOCK_ROWS rows each),
//         then the small tensors (block key summaries, block checksums, Mamba state, checkpoints)
//   header JSON (model identity, token count, caller-defined manifest, tensor table with a CRC-32 per tensor)
//   trailer: u64 header offset | u32 header length | u32 header CRC-32 | "SWSNAPND"
// Loading reads the header and the small tensors and checks them; the K/V blocks (8.7 GB at 1M tokens at the
// Granite-4.0-H-350m shape) are not read: the model pages them in on demand, each block checked against its
// own CRC-32 when read. So resuming costs the summaries and the Mamba state, not the context length.
// Checkpoints are read only when a re-ingest restarts from one. Writes stream to a temp file, then fsync,
// rename, fsync of the directory: a crash during a save leaves the previous snapshot as it was.

import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import { SidewinderError } from '../errors';
import type { ModelState } from '../model';
import { BLOCK_ROWS, denseKvSource, type BlockSummary, type KvBlockSource } from './kvBlocks';

export const SNAPSHOT_FORMAT_VERSION = 2;
const MAGIC = Buffer.from('SWSNAP\0\0', 'latin1');
const END_MAGIC = Buffer.from('SWSNAPND', 'latin1');
const PREFIX_BYTES = 16;
const TRAILER_BYTES = 24;

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
  name: string; // "mamba.3.conv", "kv.1.summaries", "ckpt.0.mamba.2.ssm", ...
  offset: number; // bytes from the start of the data section
  length: number; // bytes
  crc32: number;
}

interface KvEntry {
  rows: number;
  rowLen: number;
  offset: number; // first block, bytes from the start of the data section
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
  checkpoints: number[]; // positions
  createdAt: string;
  manifest: M;
  tensors: TensorEntry[];
  kv: KvEntry[];
  dataBytes: number;
}

export interface Snapshot<M> {
  modelId: string;
  /** The Mamba state, and the K/V as block sources (`kvBlocks`) read from the file on demand. */
  state: ModelState;
  checkpoints: Checkpoint[];
  manifest: M;
  createdAt: string;
  /** Bytes of the file, and bytes read to open it. */
  fileBytes: number;
  bytesRead: number;
}

/** Writes `chunks` to `file` atomically (temp file + fsync + rename + directory fsync). */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[]): void {
  writeStreamAtomic(file, (out) => chunks.forEach((c) => out.write(c)));
}

/** Deletes temp files left by writers that died (their pid no longer runs). */
function removeStaleTemps(dir: string, base: string): void {
  const re = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  for (const f of fs.readdirSync(dir)) {
    const m = re.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (!alive) fs.rmSync(path.join(dir, f), { force: true });
  }
}

function bytesOf(a: Float32Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Sequential writes through a 4 MiB buffer into an open file. */
export class FileWriter {
  private readonly buf = Buffer.alloc(4 << 20);
  private used = 0;
  offset = 0;
  constructor(private readonly fd: number) {}

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
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    // Some filesystems do not allow fsync on a directory; the rename itself is still atomic.
  }
  return bytes;
}

/** A checkpoint in a snapshot file: its Mamba state is read (and checked) when first used. */
class LazyCheckpoint implements Checkpoint {
  private cached: Checkpoint['mamba'] | null = null;
  constructor(
    readonly position: number,
    private readonly readState: () => Checkpoint['mamba'],
  ) {}

  get mamba(): Checkpoint['mamba'] {
    return (this.cached ??= this.readState());
  }

  /** The state without keeping it (a save copies every checkpoint into the next snapshot). */
  read(): Checkpoint['mamba'] {
    return this.cached ?? this.readState();
  }
}

/**
 * Writes a snapshot: the model state (K/V as dense arrays or, without copying them, as block sources), a
 * manifest, and checkpoints. Returns the file size.
 */
export function saveSnapshot<M>(file: string, modelId: string, state: ModelState, manifest: M, checkpoints: readonly Checkpoint[] = []): number {
  const tensors: TensorEntry[] = [];
  const kv: KvEntry[] = [];
  const sources: KvBlockSource[] =
    state.kvBlocks ?? state.kv.map((l) => denseKvSource(l.k, l.v, state.position ? l.k.length / state.position : 0));
  return writeStreamAtomic(file, (out) => {
    out.write(prefix());
    const base = out.offset;
    const add = (name: string, a: Float32Array | Uint32Array) => {
      const bytes = bytesOf(a);
      tensors.push({ name, offset: out.offset - base, length: bytes.byteLength, crc32: crc32(bytes) });
      out.write(bytes);
    };
    // K/V blocks first (the bulk), with a CRC-32 per block half, then their summaries and checksums.
    const tables: { summaries: Float32Array; crcs: Uint32Array }[] = [];
    for (const src of sources) {
      const rows = Math.min(src.length, state.position);
      const nb = Math.ceil(rows / BLOCK_ROWS);
      const L = src.rowLen;
      kv.push({ rows, rowLen: L, offset: out.offset - base });
      const summaries = new Float32Array(nb * 2 * L);
      const crcs = new Uint32Array(nb * 2);
      for (let b = 0; b < nb; b++) {
        let { k, v } = src.block(b);
        let s: BlockSummary = src.summary(b);
        const tail = rows - b * BLOCK_ROWS;
        if (tail < BLOCK_ROWS && src.length > rows) {
          // The state ends inside this block of the source: keep only its rows.
          ({ k, v } = { k: k.slice(), v: v.slice() });
          k.fill(0, tail * L);
          v.fill(0, tail * L);
          s = denseKvSource(k.subarray(0, tail * L), v.subarray(0, tail * L), L).summary(0);
        }
        const kb = bytesOf(k);
        const vb = bytesOf(v);
        crcs[2 * b] = crc32(kb);
        crcs[2 * b + 1] = crc32(vb);
        out.write(kb);
        out.write(vb);
        summaries.set(s.min, b * 2 * L);
        summaries.set(s.max, b * 2 * L + L);
      }
      tables.push({ summaries, crcs });
    }
    tables.forEach((t, i) => {
      add(`kv.${i}.summaries`, t.summaries);
      add(`kv.${i}.crcs`, t.crcs);
    });
    state.mamba.forEach((m, i) => {
      add(`mamba.${i}.conv`, m.conv);
      add(`mamba.${i}.ssm`, m.ssm);
    });
    checkpoints.forEach((c, j) =>
      (c instanceof LazyCheckpoint ? c.read() : c.mamba).forEach((m, i) => {
        add(`ckpt.${j}.mamba.${i}.conv`, m.conv);
        add(`ckpt.${j}.mamba.${i}.ssm`, m.ssm);
      }),
    );
    const header: Header<M> = {
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      modelId,
      position: state.position,
      checkpoints: checkpoints.map((c) => c.position),
      createdAt: new Date().toISOString(),
      manifest,
      tensors,
      kv,
      dataBytes: out.offset - base,
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
}

function prefix(): Buffer {
  const pre = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(pre, 0);
  pre.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
  return pre;
}

/** An open snapshot file shared by the lazily read parts; closed when none of them is reachable any more. */
class SnapshotFile {
  private static readonly closer = new FinalizationRegistry<number>((fd) => {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  });
  bytesRead = 0;

  constructor(
    readonly file: string,
    readonly fd: number,
  ) {
    SnapshotFile.closer.register(this, fd);
  }

  read(pos: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, b, done, len - done, pos + done);
      if (n === 0) throw new SnapshotError('snapshot ended early: truncated; the workspace will be re-read.', 'corrupt');
      done += n;
    }
    this.bytesRead += len;
    return b;
  }

  /**
   * A part read after loading (a K/V block, a checkpoint) failed its check: the file is set aside (renamed
   * to *.corrupt, if it is still the snapshot in place) so the next sync rebuilds it, and the caller is told.
   */
  corrupt(what: string): never {
    try {
      const here = fs.statSync(this.file);
      const mine = fs.fstatSync(this.fd);
      if (here.ino === mine.ino && here.dev === mine.dev) fs.renameSync(this.file, `${this.file}.corrupt`);
    } catch {
      // gone already
    }
    throw new SnapshotError(`${what} in the snapshot is corrupt (checksum); the snapshot was set aside and the workspace will be re-read on the next sync.`, 'corrupt');
  }
}

/** One attention layer's K/V in a snapshot file: summaries in memory, blocks read on demand and checked. */
class SnapshotKv implements KvBlockSource {
  constructor(
    private readonly f: SnapshotFile,
    private readonly layer: number,
    private readonly start: number, // absolute offset of block 0
    readonly rowLen: number,
    readonly length: number,
    private readonly summaries: Float32Array,
    private readonly crcs: Uint32Array,
  ) {}

  block(b: number): { k: Float32Array; v: Float32Array } {
    if (b < 0 || b * BLOCK_ROWS >= this.length) throw new RangeError(`KV block ${b} is not in the snapshot.`);
    const half = BLOCK_ROWS * this.rowLen * 4;
    const bytes = this.f.read(this.start + 2 * b * half, 2 * half);
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
}

/**
 * Opens and checks a snapshot made for `modelId`: the header, the Mamba state, the block summaries and
 * checksums. K/V blocks and checkpoints are read later, when used. Throws SnapshotError (with a kind) when
 * the file is missing, corrupt or truncated, or belongs to another model or format version.
 */
export function loadSnapshot<M>(file: string, modelId: string): Snapshot<M> {
  if (!fs.existsSync(file)) throw new SnapshotError(`no snapshot at ${file}.`, 'missing');
  // Positioned reads throughout: a snapshot of a large workspace can be bigger than one Buffer can hold.
  const f = new SnapshotFile(file, fs.openSync(file, 'r'));
  const size = fs.fstatSync(f.fd).size;
  const pre = size >= PREFIX_BYTES ? f.read(0, PREFIX_BYTES) : Buffer.alloc(0);
  if (pre.length < PREFIX_BYTES || !pre.subarray(0, 8).equals(MAGIC)) {
    throw new SnapshotError(`${path.basename(file)} is not a Sidewinder snapshot (bad magic); it will be rebuilt.`, 'corrupt');
  }
  const version = pre.readUInt32LE(8);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotError(`snapshot format version ${version} is not ${SNAPSHOT_FORMAT_VERSION}; the workspace will be re-read.`, 'foreign-version');
  }
  const trailer = size >= PREFIX_BYTES + TRAILER_BYTES ? f.read(size - TRAILER_BYTES, TRAILER_BYTES) : Buffer.alloc(0);
  if (trailer.length < TRAILER_BYTES || !trailer.subarray(16).equals(END_MAGIC)) {
    throw new SnapshotError('snapshot is truncated (no end marker); the workspace will be re-read.', 'corrupt');
  }
  const headerOffset = Number(trailer.readBigUInt64LE(0));
  const hlen = trailer.readUInt32LE(8);
  if (headerOffset + hlen + TRAILER_BYTES !== size) throw new SnapshotError('snapshot header is misplaced: the file is damaged; the workspace will be re-read.', 'corrupt');
  const hbytes = f.read(headerOffset, hlen);
  if (crc32(hbytes) !== trailer.readUInt32LE(12)) throw new SnapshotError('snapshot header does not match its checksum; the workspace will be re-read.', 'corrupt');
  let header: Header<M>;
  try {
    header = JSON.parse(hbytes.toString('utf8'));
  } catch {
    throw new SnapshotError('snapshot header is corrupt; the workspace will be re-read.', 'corrupt');
  }
  if (header.modelId !== modelId) {
    throw new SnapshotError('snapshot was made with another model; the workspace will be re-read.', 'foreign-model');
  }
  if (PREFIX_BYTES + header.dataBytes !== headerOffset) {
    throw new SnapshotError(`snapshot data is ${headerOffset - PREFIX_BYTES} bytes, expected ${header.dataBytes}; the workspace will be re-read.`, 'corrupt');
  }
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const bytes = (name: string): Buffer => {
    const t = byName.get(name);
    if (!t || t.offset + t.length > header.dataBytes || t.length % 4) throw new SnapshotError(`snapshot lacks tensor ${name}.`, 'corrupt');
    const b = f.read(PREFIX_BYTES + t.offset, t.length);
    if (crc32(b) !== t.crc32) return f.corrupt(`tensor ${name}`);
    return b;
  };
  const floats = (name: string): Float32Array => {
    const b = bytes(name);
    const out = new Float32Array(b.length / 4);
    new Uint8Array(out.buffer).set(b);
    return out;
  };
  const nMamba = header.tensors.filter((t) => t.name.startsWith('mamba.') && t.name.endsWith('.conv')).length;
  const kvBlocks = header.kv.map((e, i) => {
    const nb = Math.ceil(e.rows / BLOCK_ROWS);
    const summaries = floats(`kv.${i}.summaries`);
    const crcBytes = bytes(`kv.${i}.crcs`);
    const crcs = new Uint32Array(crcBytes.length / 4);
    new Uint8Array(crcs.buffer).set(crcBytes);
    if (summaries.length !== nb * 2 * e.rowLen || crcs.length !== nb * 2 || e.offset + nb * 2 * BLOCK_ROWS * e.rowLen * 4 > header.dataBytes) {
      throw new SnapshotError(`snapshot K/V table of attention layer ${i} does not match its blocks.`, 'corrupt');
    }
    return new SnapshotKv(f, i, PREFIX_BYTES + e.offset, e.rowLen, e.rows, summaries, crcs);
  });
  const state: ModelState = {
    position: header.position,
    mamba: Array.from({ length: nMamba }, (_, i) => ({ conv: floats(`mamba.${i}.conv`), ssm: floats(`mamba.${i}.ssm`) })),
    kv: [],
    kvBlocks,
  };
  const checkpoints: Checkpoint[] = (header.checkpoints ?? []).map((position, j) => {
    for (let i = 0; i < nMamba; i++) {
      if (!byName.has(`ckpt.${j}.mamba.${i}.conv`) || !byName.has(`ckpt.${j}.mamba.${i}.ssm`)) throw new SnapshotError(`snapshot lacks checkpoint ${j}.`, 'corrupt');
    }
    return new LazyCheckpoint(position, () =>
      Array.from({ length: nMamba }, (_, i) => ({ conv: floats(`ckpt.${j}.mamba.${i}.conv`), ssm: floats(`ckpt.${j}.mamba.${i}.ssm`) })),
    );
  });
  return { modelId, state, checkpoints, manifest: header.manifest, createdAt: header.createdAt, fileBytes: size, bytesRead: f.bytesRead };
}

/**
 * A stable identity for a model folder: config.json and every weight file's name, size and safetensors
 * header. Cheap (no weight bytes are hashed) and changes whenever the model does.
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
      const len = Buffer.alloc(8);
      fs.readSync(fd, len, 0, 8, 0);
      const n = Math.min(Number(len.readBigUInt64LE(0)), 100 << 20);
      const hb = Buffer.alloc(n);
      fs.readSync(fd, hb, 0, n, 8);
      fs.closeSync(fd);
      h.update(hb);
    } else {
      h.update(fs.readFileSync(p));
    }
  }
  return h.digest('hex').slice(0, 32);
}
