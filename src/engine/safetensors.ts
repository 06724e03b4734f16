// safetensors reader: one file or a sharded set (model.safetensors.index.json). Headers are parsed and
// validated up front; tensor bytes are read on demand with positioned reads, so a large checkpoint is never
// held in memory twice.
//
// Format: [u64 little-endian header length N][N bytes of JSON header][data]. The header maps each tensor
// name to {dtype, shape, data_offsets: [begin, end]} relative to the start of the data section.

import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError } from './errors';
import { QUANT_GROUP, dequantize, type QuantBits, type QuantizedWeight } from './quant';

/** Float dtypes of weights. */
export type DType = 'F32' | 'F16' | 'BF16';
/** What a tensor may be stored as: a float dtype, or U32 (the data plane of a quantized weight, README "Quantized weights"). */
export type StoredDType = DType | 'U32';
const DTYPE_BYTES: Record<StoredDType, number> = { F32: 4, F16: 2, BF16: 2, U32: 4 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  readonly file: string;
  readonly offset: number; // absolute byte offset in `file`
  readonly byteLength: number;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function parseHeader(file: string, fd: number, fileSize: number): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  const name = path.basename(file);
  if (fileSize < 8) throw new ModelFormatError(`${name}: file is ${fileSize} bytes, too short to be safetensors (truncated download?).`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileSize) {
    throw new ModelFormatError(`${name}: header length ${headerLen} does not fit in a ${fileSize}-byte file: not a safetensors file, or truncated.`);
  }
  const hb = Buffer.alloc(headerLen);
  fs.readSync(fd, hb, 0, headerLen, 8);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(hb.toString('utf8'));
  } catch (e) {
    throw new ModelFormatError(`${name}: header is not valid JSON (${(e as Error).message}); the file is corrupt.`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ModelFormatError(`${name}: header is ${JSON.stringify(header)?.slice(0, 40)}, not a JSON object of tensors; the file is corrupt.`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const out: TensorInfo[] = [];
  const metadata: Record<string, string> = {};
  for (const [tname, v] of Object.entries(header)) {
    if (tname === '__metadata__') {
      if (typeof v === 'object' && v !== null) for (const [k, m] of Object.entries(v)) if (typeof m === 'string') metadata[k] = m;
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) throw new ModelFormatError(`${name}: entry ${tname} is not an object.`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'U32') {
      throw new ModelFormatError(`${name}: tensor ${tname} has dtype ${JSON.stringify(t.dtype)}; only F32, F16 and BF16 are supported (and U32 for quantized weights).`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new ModelFormatError(`${name}: tensor ${tname} has an invalid shape ${JSON.stringify(t.shape)}.`);
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0]) {
      throw new ModelFormatError(`${name}: tensor ${tname} has invalid data_offsets ${JSON.stringify(off)}.`);
    }
    const bytes = numel(t.shape as number[]) * DTYPE_BYTES[t.dtype];
    if (off[1] - off[0] !== bytes) {
      throw new ModelFormatError(`${name}: tensor ${tname} spans ${off[1] - off[0]} bytes but its shape and dtype need ${bytes}.`);
    }
    if (off[1] > dataLen) {
      throw new ModelFormatError(`${name}: tensor ${tname} ends at byte ${off[1]} of a ${dataLen}-byte data section: the file is truncated.`);
    }
    out.push({ name: tname, dtype: t.dtype, shape: t.shape as number[], file, offset: dataStart + off[0], byteLength: bytes });
  }
  // Tensors must not overlap.
  const sorted = [...out].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].byteLength) {
      throw new ModelFormatError(`${name}: tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap; the file is corrupt.`);
    }
  }
  return { tensors: out, metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: StoredDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file: the header (padded with spaces to a multiple of 8 bytes), then each tensor's bytes in
 * order. Written to a temporary name and renamed, so a reader never sees half a file.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) throw new RangeError(`writeSafetensors: ${t.name} has ${t.data.byteLength} bytes, [${t.shape}] ${t.dtype} needs ${bytes}.`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  const writeAll = (b: Uint8Array) => {
    for (let done = 0; done < b.byteLength; ) done += fs.writeSync(fd, b, done, b.byteLength - done);
  };
  try {
    writeAll(len);
    writeAll(Buffer.from(json));
    for (const t of tensors) writeAll(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export class WeightStore {
  private readonly tensors = new Map<string, TensorInfo>();
  /** Virtual tensors (stack()): the stored tensors they are read from, in order. */
  private readonly stacked = new Map<string, TensorInfo[]>();
  /** Virtual tensors (scaleRows()): the stored tensor they are read from and each row's factor. */
  private readonly scaledRows = new Map<string, { from: TensorInfo; scales: Float32Array; add?: number }>();
  /** Virtual tensors whose rows (of the first dimension) are another tensor's in another order. */
  private readonly permuted = new Map<string, { from: TensorInfo; order: Uint32Array }>();
  private readonly fds = new Map<string, number>();
  private meta: Record<string, string> = {};

  private constructor(readonly dir: string) {}

  /** Opens one safetensors file (a cache of quantized weights, say). */
  static openFile(file: string): WeightStore {
    const store = new WeightStore(path.dirname(file));
    try {
      store.load([file]);
      return store;
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** The header's __metadata__ string values of the first file that has them ({} if none). */
  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  /** Opens model.safetensors, or the shards listed by model.safetensors.index.json, in `dir`. */
  static open(dir: string): WeightStore {
    const store = new WeightStore(dir);
    try {
      return store.openFiles();
    } catch (e) {
      store.close(); // the shards opened before the one that failed
      throw e;
    }
  }

  private openFiles(): WeightStore {
    const dir = this.dir;
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    let files: string[];
    if (fs.existsSync(index)) {
      let parsed: { weight_map?: Record<string, string> } | null;
      try {
        parsed = JSON.parse(fs.readFileSync(index, 'utf8'));
      } catch (e) {
        throw new ModelFormatError(`model.safetensors.index.json is not valid JSON: ${(e as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || !parsed.weight_map || typeof parsed.weight_map !== 'object') {
        throw new ModelFormatError('model.safetensors.index.json has no "weight_map".');
      }
      files = [...new Set(Object.values(parsed.weight_map))];
      for (const f of files) {
        if (typeof f !== 'string' || f.includes('/') || f.includes('\\') || f.startsWith('.')) {
          throw new ModelFormatError(`model.safetensors.index.json names an invalid shard ${JSON.stringify(f)}.`);
        }
        if (!fs.existsSync(path.join(dir, f)) || !fs.statSync(path.join(dir, f)).isFile()) {
          throw new ModelFormatError(`shard ${f} listed in model.safetensors.index.json is missing from ${dir}; download it again.`);
        }
      }
      this.load(files.map((f) => path.join(dir, f)));
      for (const [t, f] of Object.entries(parsed.weight_map)) {
        const info = this.tensors.get(t);
        if (!info) throw new ModelFormatError(`tensor ${t} is listed in the index but not found in shard ${f}.`);
        if (path.basename(info.file) !== f) throw new ModelFormatError(`tensor ${t} is in ${path.basename(info.file)}, but the index says ${f}.`);
      }
    } else if (fs.existsSync(single)) {
      this.load([single]);
    } else {
      throw new ModelFormatError(`${dir} has neither model.safetensors nor model.safetensors.index.json.`);
    }
    return this;
  }

  private load(files: string[]): void {
    for (const f of files) {
      const fd = fs.openSync(f, 'r');
      this.fds.set(f, fd);
      const { tensors, metadata } = parseHeader(f, fd, fs.fstatSync(fd).size);
      if (!Object.keys(this.meta).length) this.meta = metadata;
      for (const t of tensors) {
        if (this.tensors.has(t.name)) throw new ModelFormatError(`tensor ${t.name} appears in more than one shard.`);
        this.tensors.set(t.name, t);
      }
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /**
   * Registers `name` as a virtual float tensor: the stored tensors `parts` (one dtype and shape, all present)
   * stacked along a new leading dimension of `groups` entries ([groups, parts / groups * rows, ...]: Jamba's
   * per-expert gate/up/down projections as the [E, 2I, H] / [E, H, I] the MoE reads). Read like any tensor; the
   * parts themselves stay readable.
   */
  stack(name: string, parts: readonly string[], groups: number): void {
    if (this.tensors.has(name)) throw new ModelFormatError(`tensor ${name} is already in the checkpoint; it cannot also be stacked from ${parts.length} tensors.`);
    const infos = parts.map((p) => this.info(p));
    const first = infos[0];
    if (!first || groups < 1 || infos.length % groups !== 0) throw new ModelFormatError(`tensor ${name}: ${infos.length} parts do not stack into ${groups} groups.`);
    for (const t of infos) {
      if (t.dtype === 'U32' || t.dtype !== first.dtype || t.shape.join() !== first.shape.join()) {
        throw new ModelFormatError(`tensor ${name}: the parts ${first.name} [${first.shape}] ${first.dtype} and ${t.name} [${t.shape}] ${t.dtype} must be floats of one dtype and shape to stack.`);
      }
    }
    const per = infos.length / groups;
    // (one group: the parts concatenated along their first dimension, no leading 1: Zamba's gate | up)
    const shape = groups === 1 ? [per * first.shape[0], ...first.shape.slice(1)] : [groups, per * first.shape[0], ...first.shape.slice(1)];
    this.tensors.set(name, { name, dtype: first.dtype, shape, file: first.file, offset: 0, byteLength: infos.reduce((a, t) => a + t.byteLength, 0) });
    this.stacked.set(name, infos);
  }

  /**
   * Registers `name` as a virtual f32 tensor: the stored float tensor `from` with row r (of its first dimension)
   * multiplied by scales[r] (Falcon-H1's muP multipliers folded into its projections, so both backends and
   * the quantizer see one set of weights).
   */
  scaleRows(name: string, from: string, scales: Float32Array): void {
    if (this.tensors.has(name)) throw new ModelFormatError(`tensor ${name} is already in the checkpoint; it cannot also be scaled from ${from}.`);
    const t = this.info(from);
    if (t.dtype === 'U32' || t.shape[0] !== scales.length) throw new ModelFormatError(`tensor ${from} [${t.shape}] ${t.dtype}: ${scales.length} row factors do not fit it.`);
    const numel = t.shape.reduce((a, d) => a * d, 1);
    this.tensors.set(name, { name, dtype: 'F32', shape: [...t.shape], file: t.file, offset: 0, byteLength: 4 * numel });
    this.scaledRows.set(name, { from: t, scales });
  }

  /**
   * Registers `name` as a virtual f32 tensor: the stored float tensor `from` plus `add` in every entry (Gemma's
   * RMSNorms, which scale by 1 + weight, read as plain norm weights).
   */
  offsetValues(name: string, from: string, add: number): void {
    if (this.tensors.has(name)) throw new ModelFormatError(`tensor ${name} is already in the checkpoint; it cannot also be made from ${from}.`);
    const t = this.info(from);
    if (t.dtype === 'U32' || t.shape.length < 1) throw new ModelFormatError(`tensor ${from} [${t.shape}] ${t.dtype} must be a float tensor to offset.`);
    const numel = t.shape.reduce((a, d) => a * d, 1);
    this.tensors.set(name, { name, dtype: 'F32', shape: [...t.shape], file: t.file, offset: 0, byteLength: 4 * numel });
    this.scaledRows.set(name, { from: t, scales: new Float32Array(t.shape[0]).fill(1), add });
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  /**
   * Registers `name` as a virtual tensor: the stored float tensor `from` with its rows (first dimension) taken in
   * `order` (row r of `name` is row order[r] of `from`); Zamba's in_proj, whose rows interleave x and z per channel,
   * read as x rows then z rows.
   */
  permuteRows(name: string, from: string, order: Uint32Array): void {
    if (this.tensors.has(name)) throw new ModelFormatError(`tensor ${name} is already in the checkpoint; it cannot also be made from ${from}.`);
    const t = this.info(from);
    if (t.dtype === 'U32' || t.shape[0] !== order.length || order.some((r) => r >= order.length)) throw new ModelFormatError(`tensor ${from} [${t.shape}] ${t.dtype}: ${order.length} rows cannot be reordered from it.`);
    this.tensors.set(name, { ...t, name, shape: [...t.shape] });
    this.permuted.set(name, { from: t, order });
  }

  /**
   * Registers `name` as a view of entry `index` of the stored tensor `from`'s first dimension (shape from.shape[1:],
   * the same bytes): Zamba's per-head x_proj / dt_proj, stored [heads, out, in].
   */
  sliceFirst(name: string, from: string, index: number): void {
    if (this.tensors.has(name)) throw new ModelFormatError(`tensor ${name} is already in the checkpoint; it cannot also be a slice of ${from}.`);
    const t = this.info(from);
    if (t.dtype === 'U32' || this.permuted.has(from) || this.stacked.has(from) || this.scaledRows.has(from) || t.shape.length < 2 || !(index >= 0 && index < t.shape[0])) {
      throw new ModelFormatError(`tensor ${from} [${t.shape}] ${t.dtype}: entry ${index} cannot be read as its own tensor.`);
    }
    const bytes = t.byteLength / t.shape[0];
    this.tensors.set(name, { ...t, name, shape: t.shape.slice(1), offset: t.offset + index * bytes, byteLength: bytes });
  }

  /**
   * Whether two float tensors hold the same dtype, shape and bytes (Zamba2 checkpoints may store a shared block
   * once per use, identical or not: identical copies are then loaded once). Quantized or absent ones never are.
   */
  sameTensor(a: string, b: string): boolean {
    const x = this.tensors.get(a);
    const y = this.tensors.get(b);
    if (!x || !y || x.dtype === 'U32' || y.dtype === 'U32' || x.dtype !== y.dtype || x.shape.join() !== y.shape.join()) return false;
    if (a === b) return true;
    const bx = this.read(x);
    return Buffer.from(bx.buffer, bx.byteOffset, bx.byteLength).equals(this.read(y));
  }

  info(name: string, shape?: readonly number[]): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new ModelFormatError(`the checkpoint has no tensor ${name}; is it the right architecture, and complete?`);
    if (t.dtype === 'U32') {
      // A quantized weight's planes: checked against the logical shape when one is given.
      if (shape) this.quantizedShape(t, shape);
      return t;
    }
    if (shape) {
      // Trailing singleton dims are tolerated (e.g. conv1d weight [C, 1, K] read as [C, K]).
      const a = t.shape.filter((d) => d !== 1).join('x');
      const b = shape.filter((d) => d !== 1).join('x');
      if (a !== b) throw new ModelFormatError(`tensor ${name} has shape [${t.shape}], expected [${shape}] from config.json.`);
    }
    return t;
  }

  /** Raw bytes in the checkpoint's own dtype. */
  bytes(name: string, shape?: readonly number[]): Uint8Array {
    return this.read(this.info(name, shape));
  }

  private read(t: TensorInfo): Uint8Array {
    const sc = this.scaledRows.get(t.name);
    if (sc) {
      const x = toF32(this.read(sc.from), sc.from.dtype);
      const cols = x.length / sc.scales.length;
      for (let r = 0; r < sc.scales.length; r++) for (let c = 0; c < cols; c++) x[r * cols + c] *= sc.scales[r];
      if (sc.add) for (let j = 0; j < x.length; j++) x[j] += sc.add;
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    }
    const perm = this.permuted.get(t.name);
    if (perm) {
      const src = this.read(perm.from);
      const row = src.byteLength / perm.order.length;
      const out = new Uint8Array(src.byteLength);
      perm.order.forEach((r, i) => out.set(src.subarray(r * row, (r + 1) * row), i * row));
      return out;
    }
    const parts = this.stacked.get(t.name);
    if (parts) {
      const out = new Uint8Array(t.byteLength);
      let at = 0;
      for (const p of parts) {
        out.set(this.read(p), at);
        at += p.byteLength;
      }
      return out;
    }
    const name = t.name;
    const buf = new Uint8Array(t.byteLength);
    let done = 0;
    const fd = this.fds.get(t.file)!;
    while (done < t.byteLength) {
      const n = fs.readSync(fd, buf, done, t.byteLength - done, t.offset + done);
      if (n === 0) throw new ModelFormatError(`${path.basename(t.file)} ended while reading ${name}: the file is truncated.`);
      done += n;
    }
    return buf;
  }

  /** The tensor widened to float32 (a quantized weight: its values dequantized, shape [..., K]). */
  f32(name: string, shape?: readonly number[]): Float32Array {
    const t = this.info(name, shape);
    if (t.dtype === 'U32') {
      if (!shape) throw new ModelFormatError(`tensor ${name} is stored quantized (U32); its shape must be known to read it.`);
      return dequantize(this.quantized(name, shape)!);
    }
    return toF32(this.bytes(name, shape), t.dtype);
  }

  /** Whether `name` is stored quantized (a U32 data plane with its NAME.scales). */
  isQuantized(name: string): boolean {
    return this.tensors.get(name)?.dtype === 'U32';
  }

  /**
   * A weight stored group-wise quantized, of logical shape `shape` ([N, K] or [E, N, K]), as the engine's planes
   * (src/engine/quant.ts): NAME is U32 [..., G, words a group] (4: q4, 8: q8), NAME.scales F16 [..., G],
   * G = ceil(K / 32). null when the tensor is stored as floats.
   */
  quantized(name: string, shape: readonly number[]): QuantizedWeight | null {
    const t = this.info(name, shape);
    if (t.dtype !== 'U32') return null;
    const { bits, scales } = this.quantizedShape(t, shape);
    const K = shape[shape.length - 1];
    const rows = numel(shape) / Math.max(1, K);
    const data = this.read(t);
    const half = this.read(scales);
    const sw = new Uint32Array(Math.ceil(half.byteLength / 4));
    new Uint8Array(sw.buffer).set(half);
    // An inf or NaN scale (f16 exponent 31) is no weight either backend can compute with: refused, not run.
    const h16 = new Uint16Array(sw.buffer, 0, half.byteLength / 2);
    const bad = h16.findIndex((h) => (h & 0x7c00) === 0x7c00);
    if (bad >= 0) {
      throw new ModelFormatError(`quantized tensor ${name}: scale ${bad} of ${t.name}.scales is ${f16ToF32(h16[bad])} (f16 bits 0x${h16[bad].toString(16)}); the file is corrupt or was not written by the quantizer.`);
    }
    return { bits, rows, cols: K, data: new Uint32Array(data.buffer, data.byteOffset, data.byteLength / 4), scales: sw };
  }

  /** Checks a quantized tensor's planes against the logical shape; its bits and its scales tensor. */
  private quantizedShape(t: TensorInfo, shape: readonly number[]): { bits: QuantBits; scales: TensorInfo } {
    const K = shape[shape.length - 1];
    const G = Math.ceil(K / QUANT_GROUP);
    const lead = shape.slice(0, -1);
    const words = t.shape[t.shape.length - 1];
    const planes = t.shape.length === shape.length + 1 && lead.every((d, i) => t.shape[i] === d) && t.shape[lead.length] === G && (words === 4 || words === 8);
    if (!planes) {
      throw new ModelFormatError(`quantized tensor ${t.name} has shape [${t.shape}]; [${[...lead, G]}, 4 or 8] (q4 or q8 groups of ${QUANT_GROUP}) expected for [${shape}] from config.json.`);
    }
    const scales = this.tensors.get(`${t.name}.scales`);
    if (!scales || scales.dtype !== 'F16' || scales.shape.join('x') !== [...lead, G].join('x')) {
      throw new ModelFormatError(`quantized tensor ${t.name} needs ${t.name}.scales, F16 [${[...lead, G]}]; it is ${scales ? `${scales.dtype} [${scales.shape}]` : 'missing'}.`);
    }
    return { bits: words === 4 ? 4 : 8, scales };
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

const f16Scratch = new Float32Array(1);
const f16ScratchBits = new Uint32Array(f16Scratch.buffer);

/** The f16 bits of x, rounded to nearest, ties to even (overflow to infinity, NaN kept). */
export function f32ToF16(x: number): number {
  f16Scratch[0] = x;
  const b = f16ScratchBits[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the implicit bit in, round to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // a carry out of the mantissa moves to the next exponent, which is the right rounding
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
}

/** IEEE half to float. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function toF32(bytes: Uint8Array, dtype: StoredDType): Float32Array {
  if (dtype === 'U32') throw new ModelFormatError('a quantized (U32) tensor cannot be widened without its scales.');
  if (dtype === 'F32') {
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  const n = bytes.byteLength / 2;
  const u16 = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(u16[i]);
  }
  return out;
}
