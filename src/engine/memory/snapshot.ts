// Snapshots of a model's state on disk, so a workspace read once is resumed instantly after a restart.
//
// File layout (little-endian):
//   "SWSNAP\0\0" | u32 format version | u32 header length | header JSON | zero padding to 8 | tensor data
// The header holds the model identity, the token count, a caller-defined manifest (the workspace files and
// their hashes), the tensor table and the sha256 of the data section, so truncation and corruption are found
// before anything is used. Writes are atomic: temp file, fsync, rename, fsync of the directory; a crash
// during a save leaves the previous snapshot as it was.

import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { SidewinderError } from '../errors';
import type { ModelState } from '../model';

export const SNAPSHOT_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('SWSNAP\0\0', 'latin1');

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
  name: string; // "mamba.3.conv", "kv.1.k", ...
  offset: number; // bytes from the start of the data section
  length: number; // bytes
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
  dataBytes: number;
  dataSha256: string;
}

export interface Snapshot<M> {
  modelId: string;
  state: ModelState;
  checkpoints: Checkpoint[];
  manifest: M;
  createdAt: string;
}

/** Writes `data` to `file` atomically (temp file + fsync + rename + directory fsync). */
export function writeFileAtomic(file: string, chunks: readonly Uint8Array[]): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir, path.basename(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += fs.writeSync(fd, c, done, c.byteLength - done);
    }
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

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function saveSnapshot<M>(file: string, modelId: string, state: ModelState, manifest: M, checkpoints: readonly Checkpoint[] = []): number {
  const tensors: TensorEntry[] = [];
  const data: Uint8Array[] = [];
  let offset = 0;
  const add = (name: string, a: Float32Array) => {
    tensors.push({ name, offset, length: a.byteLength });
    data.push(bytesOf(a));
    offset += a.byteLength;
  };
  state.mamba.forEach((m, i) => {
    add(`mamba.${i}.conv`, m.conv);
    add(`mamba.${i}.ssm`, m.ssm);
  });
  state.kv.forEach((kv, i) => {
    add(`kv.${i}.k`, kv.k);
    add(`kv.${i}.v`, kv.v);
  });
  checkpoints.forEach((c, j) =>
    c.mamba.forEach((m, i) => {
      add(`ckpt.${j}.mamba.${i}.conv`, m.conv);
      add(`ckpt.${j}.mamba.${i}.ssm`, m.ssm);
    }),
  );
  const sha = createHash('sha256');
  for (const d of data) sha.update(d);
  const header: Header<M> = {
    formatVersion: SNAPSHOT_FORMAT_VERSION,
    modelId,
    position: state.position,
    checkpoints: checkpoints.map((c) => c.position),
    createdAt: new Date().toISOString(),
    manifest,
    tensors,
    dataBytes: offset,
    dataSha256: sha.digest('hex'),
  };
  const hjson = Buffer.from(JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(16);
  MAGIC.copy(pre, 0);
  pre.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
  pre.writeUInt32LE(hjson.length, 12);
  const pad = Buffer.alloc((8 - ((16 + hjson.length) % 8)) % 8);
  writeFileAtomic(file, [pre, hjson, pad, ...data]);
  return 16 + hjson.length + pad.length + offset;
}

/**
 * Reads and verifies a snapshot made for `modelId`. Throws SnapshotError (with a kind) when the file is
 * missing, corrupt or truncated, or belongs to another model or format version.
 */
export function loadSnapshot<M>(file: string, modelId: string): Snapshot<M> {
  if (!fs.existsSync(file)) throw new SnapshotError(`no snapshot at ${file}.`, 'missing');
  // Positioned reads throughout: a snapshot of a large workspace can be bigger than one Buffer can hold.
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const read = (pos: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      let done = 0;
      while (done < len) {
        const n = fs.readSync(fd, b, done, len - done, pos + done);
        if (n === 0) throw new SnapshotError('snapshot ended early: truncated; the workspace will be re-read.', 'corrupt');
        done += n;
      }
      return b;
    };
    const pre = size >= 16 ? read(0, 16) : Buffer.alloc(0);
    if (pre.length < 16 || !pre.subarray(0, 8).equals(MAGIC)) {
      throw new SnapshotError(`${path.basename(file)} is not a Sidewinder snapshot (bad magic); it will be rebuilt.`, 'corrupt');
    }
    const version = pre.readUInt32LE(8);
    if (version !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotError(`snapshot format version ${version} is not ${SNAPSHOT_FORMAT_VERSION}; the workspace will be re-read.`, 'foreign-version');
    }
    const hlen = pre.readUInt32LE(12);
    if (16 + hlen > size) throw new SnapshotError('snapshot header is truncated; the workspace will be re-read.', 'corrupt');
    let header: Header<M>;
    try {
      header = JSON.parse(read(16, hlen).toString('utf8'));
    } catch {
      throw new SnapshotError('snapshot header is corrupt; the workspace will be re-read.', 'corrupt');
    }
    if (header.modelId !== modelId) {
      throw new SnapshotError('snapshot was made with another model; the workspace will be re-read.', 'foreign-model');
    }
    const start = 16 + hlen + ((8 - ((16 + hlen) % 8)) % 8);
    if (size - start !== header.dataBytes) {
      throw new SnapshotError(`snapshot data is ${size - start} bytes, expected ${header.dataBytes}: truncated; the workspace will be re-read.`, 'corrupt');
    }
    const sha = createHash('sha256');
    const step = 64 << 20;
    for (let o = 0; o < header.dataBytes; o += step) sha.update(read(start + o, Math.min(step, header.dataBytes - o)));
    if (sha.digest('hex') !== header.dataSha256) {
      throw new SnapshotError('snapshot data does not match its checksum; the workspace will be re-read.', 'corrupt');
    }
    const get = (name: string): Float32Array => {
      const t = header.tensors.find((x) => x.name === name);
      if (!t || t.offset + t.length > header.dataBytes || t.length % 4) throw new SnapshotError(`snapshot lacks tensor ${name}.`, 'corrupt');
      const out = new Float32Array(t.length / 4);
      const bytes = new Uint8Array(out.buffer);
      for (let o = 0; o < t.length; o += step) bytes.set(read(start + t.offset + o, Math.min(step, t.length - o)), o);
      return out;
    };
    const nMamba = header.tensors.filter((t) => t.name.startsWith('mamba.') && t.name.endsWith('.conv')).length;
    const nKv = header.tensors.filter((t) => t.name.startsWith('kv.') && t.name.endsWith('.k')).length;
    const state: ModelState = {
      position: header.position,
      mamba: Array.from({ length: nMamba }, (_, i) => ({ conv: get(`mamba.${i}.conv`), ssm: get(`mamba.${i}.ssm`) })),
      kv: Array.from({ length: nKv }, (_, i) => ({ k: get(`kv.${i}.k`), v: get(`kv.${i}.v`) })),
    };
    const checkpoints: Checkpoint[] = (header.checkpoints ?? []).map((position, j) => ({
      position,
      mamba: Array.from({ length: nMamba }, (_, i) => ({ conv: get(`ckpt.${j}.mamba.${i}.conv`), ssm: get(`ckpt.${j}.mamba.${i}.ssm`) })),
    }));
    return { modelId, state, checkpoints, manifest: header.manifest, createdAt: header.createdAt };
  } finally {
    fs.closeSync(fd);
  }
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
