// The WebGPU device: adapter and limits, buffers, weight upload and the kernel loader (one .wgsl file per op,
// compiled once per set of override constants and cached). Everything that can fail is checked inside an
// error scope so the error names the step; compile errors are reported as GpuError naming the kernel.

import * as fs from 'fs';
import * as path from 'path';
import { DeviceLostError, GpuError, WebGPUNotAvailableError } from '../errors';
import { QUANT_GROUP, groupWords, quantizedBytes, type QuantizedWeight } from '../quant';
import type { DType } from '../safetensors';
import { PassTimer, type PassTimes } from './passTimer';

/** How a weight's values are stored in its u32 words (q8 / q4: group-wise quantized, src/engine/quant.ts). */
export type WFormat = 'f32' | 'f16' | 'bf16' | 'q8' | 'q4';

/**
 * A weight tensor on the GPU, stored as u32 words (f32: one value per word; f16/bf16: two per word, element i
 * in the low half of word i>>1 when i is even). Tensors larger than maxBinding are split by rows (the first
 * dimension) into parts; each part's buffer starts at its own first row.
 */
export interface GpuWeight {
  format: WFormat;
  shape: number[];
  /**
   * scaleOffset (quantized formats): the word where the part's scales plane starts, after its data plane
   * (kernels/weights.wgsl); 0 otherwise.
   */
  parts: { buffer: GPUBuffer; rowStart: number; rows: number; scaleOffset: number }[];
  bytes: number;
}

/** The `override WFMT` value each kernel uses to decode weights. */
export const WFMT: Record<WFormat, number> = { f32: 0, f16: 1, bf16: 2, q8: 3, q4: 4 };

export function isQuantized(format: WFormat): format is 'q8' | 'q4' {
  return format === 'q8' || format === 'q4';
}

const DTYPE_FORMAT: Record<DType, WFormat> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const DTYPE_BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };

// Module-level on purpose: Dawn aborts if the object returned by create() is garbage-collected while a device
// made from it is alive.
let navigatorGpu: GPU | null = null;

function webgpu(): GPU {
  if (navigatorGpu) return navigatorGpu;
  let mod: { create: (opts: string[]) => GPU; globals: object };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('webgpu');
  } catch (e) {
    throw new WebGPUNotAvailableError(`the 'webgpu' package could not be loaded: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  navigatorGpu = mod.create([]);
  return navigatorGpu;
}

/** Where the .wgsl files are: next to the bundle (dist/kernels), one up (dist/test -> dist/kernels), or the repo. */
function kernelDir(): string {
  const candidates = [
    path.join(__dirname, 'kernels'),
    path.join(__dirname, '..', 'kernels'),
    path.join(__dirname, '..', '..', 'kernels'),
    path.join(__dirname, '..', '..', '..', 'kernels'),
    path.join(process.cwd(), 'kernels'),
  ];
  for (const d of candidates) if (fs.existsSync(path.join(d, 'gemv.wgsl'))) return d;
  throw new GpuError(`the WGSL kernels were not found (looked in ${candidates.join(', ')}); run the build (node esbuild.js).`);
}

/**
 * The only preprocessing: `// #if NAME` ... `// #else` ... `// #endif` blocks (not nested) are kept or dropped by
 * device-level defines. It exists for the subgroup variants: WGSL cannot even mention subgroup builtins without
 * `enable subgroups;`, which fails to compile on a device without the feature.
 */
export function preprocess(src: string, defines: ReadonlySet<string>): string {
  const out: string[] = [];
  let keep = true;
  let inIf = false;
  for (const line of src.split('\n')) {
    const m = /^\s*\/\/\s*#(if|else|endif)\b\s*(\w*)/.exec(line);
    if (m) {
      if (m[1] === 'if') {
        if (inIf) throw new GpuError('nested // #if blocks are not supported in kernels.');
        inIf = true;
        keep = defines.has(m[2]);
      } else if (m[1] === 'else') keep = !keep;
      else {
        inIf = false;
        keep = true;
      }
      out.push(''); // keep line numbers
      continue;
    }
    out.push(keep ? line : '');
  }
  return out.join('\n');
}

export interface GpuOptions {
  powerPreference?: 'high-performance' | 'low-power';
  /** Testing only: split weights bigger than this many bytes (instead of the device's binding limit). */
  maxBinding?: number;
  /** Testing only: behave as if the adapter had no subgroups. */
  disableSubgroups?: boolean;
}

export class Gpu {
  readonly hasSubgroups: boolean;
  /** Decode GEMVs may run Mamba's causal conv on their output rows (gemv.wgsl CONV). */
  readonly gemvConv: boolean;
  /** The largest storage buffer binding, in bytes (a multiple of 16). */
  readonly maxBinding: number;
  /** Resolves with the reason when the device is lost. */
  readonly lost: Promise<string>;
  /** Subgroup size the kernels may rely on (0 without subgroups). */
  readonly subgroupSize: number;
  /** A software adapter running on the CPU (lavapipe, SwiftShader): kernels pick CPU-friendly shapes. */
  readonly onCpu: boolean;

  private lostReason: string | null = null;
  private destroyed = false;
  private allocated = 0;
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private readonly dir = kernelDir();
  private readonly defines: ReadonlySet<string>;
  private readonly sources = new Map<string, string>();
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly pending: Promise<string | null>[] = [];
  private readonly errors: string[] = [];
  private zeros: GPUBuffer | null = null;
  /** Times compute passes when started (startTimer); benchmarks only. */
  timer: PassTimer | null = null;
  /**
   * Buffers mapped for reading (each a host round trip: the host waits for the GPU to get there) and the bytes
   * read back, since the device was created: the work per decoded token is bounded by these (a test checks it).
   */
  readonly readBacks = { maps: 0, bytes: 0 };

  private constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: { vendor: string; architecture: string; description: string; device: string },
    subgroupSize: number,
    maxBinding: number,
  ) {
    this.hasSubgroups = subgroupSize > 0;
    this.onCpu = /llvmpipe|lavapipe|swiftshader/i.test(`${adapterInfo.description} ${adapterInfo.device} ${adapterInfo.architecture}`);
    this.subgroupSize = subgroupSize;
    this.maxBinding = maxBinding;
    // The GEMV's conv epilogue (gemv.wgsl CONV) binds 9 storage buffers (WebGPU promises 8); SIDEWINDER_GEMV_CONV=0
    // turns it off (to compare, and to measure what it brings).
    this.gemvConv = device.limits.maxStorageBuffersPerShaderStage >= 9 && process.env.SIDEWINDER_GEMV_CONV !== '0';
    this.defines = new Set([...(this.hasSubgroups ? ['SUBGROUPS'] : []), ...(this.gemvConv ? ['GEMV_CONV'] : [])]);
    this.lost = device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
      return this.lostReason;
    });
    device.addEventListener('uncapturederror', (e) => {
      this.errors.push((e as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** Starts timing compute passes (needs 'timestamp-query'); returns false when the device cannot. */
  startTimer(): boolean {
    if (!this.device.features.has('timestamp-query')) return false;
    this.timer ??= new PassTimer(this.device);
    return true;
  }

  /** Stops timing: waits for the timed passes and returns their totals (null when no timer ran). */
  async stopTimer(): Promise<PassTimes | null> {
    const t = this.timer;
    if (!t) return null;
    this.timer = null;
    await t.flush();
    const times = t.report();
    t.destroy();
    return times;
  }

  /** A compute pass descriptor labelled for the timer (empty when no timer runs). */
  passDescriptor(label: string): GPUComputePassDescriptor | undefined {
    return this.timer?.pass(label);
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const gpu = webgpu();
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new WebGPUNotAvailableError('requestAdapter returned null');
    const want = [
      'maxStorageBufferBindingSize',
      'maxBufferSize',
      'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup',
      'maxComputeWorkgroupSizeX',
      'maxComputeWorkgroupsPerDimension',
      'maxStorageBuffersPerShaderStage',
      'maxUniformBuffersPerShaderStage',
    ] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of want) requiredLimits[k] = adapter.limits[k];
    const features: GPUFeatureName[] = [];
    const useSubgroups = adapter.features.has('subgroups') && !opts.disableSubgroups;
    if (useSubgroups) features.push('subgroups');
    if (adapter.features.has('timestamp-query')) features.push('timestamp-query');
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
    } catch (e) {
      throw new WebGPUNotAvailableError(`requestDevice failed: ${(e as Error).message}`);
    }
    const info = adapter.info;
    const adapterInfo = { vendor: info.vendor, architecture: info.architecture, description: info.description, device: info.device };
    const binding = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const maxBinding = Math.floor(Math.min(binding, opts.maxBinding ?? Infinity) / 16) * 16;
    // Subgroup kernels assume a fixed subgroup size laid over consecutive invocations; probe it, else fall back.
    let sg = 0;
    if (useSubgroups) {
      const probe = new Gpu(device, adapterInfo, 0, maxBinding);
      sg = await probe.probeSubgroups((info as { subgroupMinSize?: number }).subgroupMinSize ?? 0, (info as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0);
    }
    return new Gpu(device, adapterInfo, sg, maxBinding);
  }

  /**
   * Runs one 256-invocation workgroup that records subgroup_size and subgroup_invocation_id; returns the size if
   * every invocation i sits at lane i % size of one fixed size (a power of two from 4 to 128), else 0.
   */
  private async probeSubgroups(minSize: number, maxSize: number): Promise<number> {
    if (minSize !== maxSize || minSize < 4 || minSize > 128) return 0;
    const code = `enable subgroups;
      @group(0) @binding(0) var<storage, read_write> out: array<u32>;
      @compute @workgroup_size(256) fn main(@builtin(local_invocation_index) i: u32,
          @builtin(subgroup_size) n: u32, @builtin(subgroup_invocation_id) l: u32) {
        out[2u * i] = n;
        out[2u * i + 1u] = l;
        // Also check that subgroupAdd sums over exactly those lanes.
        let s = subgroupAdd(i);
        let base = i - l;
        if (s != n * base + n * (n - 1u) / 2u) { out[2u * i] = 0u; }
      }`;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code });
    const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const buf = this.buffer(2048, 'subgroup_probe');
    const bg = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(1);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    const err = await this.device.popErrorScope();
    if (err) {
      this.free(buf);
      return 0;
    }
    const r = new Uint32Array(await this.read(buf, 2048));
    this.free(buf);
    const n = r[0];
    if (n !== minSize) return 0;
    for (let i = 0; i < 256; i++) if (r[2 * i] !== n || r[2 * i + 1] !== i % n) return 0;
    return n;
  }

  /** A zero-filled buffer of at least `bytes` (rounded up to a multiple of 4, at least 4). */
  buffer(bytes: number, label: string, usage: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new GpuError(`buffer '${label}': invalid size ${bytes}.`);
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.device.limits.maxBufferSize) {
      throw new GpuError(`buffer '${label}' needs ${size} bytes, more than the device's maxBufferSize ${this.device.limits.maxBufferSize}.`);
    }
    const b = this.device.createBuffer({ size, usage, label });
    this.allocated += size;
    this.sizes.set(b, size);
    // Whoever destroys the buffer (free() or destroy()), it leaves the gauge.
    const destroy = b.destroy.bind(b);
    b.destroy = () => {
      const n = this.sizes.get(b);
      if (n !== undefined) {
        this.allocated -= n;
        this.sizes.delete(b);
      }
      destroy();
    };
    return b;
  }

  /** Destroys a buffer made by buffer() (the same as buf.destroy()). */
  free(buf: GPUBuffer): void {
    buf.destroy();
  }

  /** Running total of bytes in buffers made by buffer() and not freed. */
  bytesAllocated(): number {
    return this.allocated;
  }

  /**
   * Uploads a checkpoint tensor as it is stored (no conversion on the CPU). Split by rows of shape[0] into
   * parts of at most maxBinding bytes (or `maxPartBytes`, for tests).
   */
  uploadWeight(label: string, bytes: Uint8Array, dtype: DType, shape: number[], opts: { maxPartBytes?: number } = {}): GpuWeight {
    const format = DTYPE_FORMAT[dtype];
    if (!format) throw new GpuError(`weight '${label}': unsupported dtype ${dtype}.`);
    const n = shape.reduce((a, b) => a * b, 1);
    const eb = DTYPE_BYTES[dtype];
    if (bytes.byteLength !== n * eb) {
      throw new GpuError(`weight '${label}': ${bytes.byteLength} bytes given for shape [${shape}] of ${dtype} (${n * eb} expected).`);
    }
    const rowsTotal = shape.length ? shape[0] : 1;
    const rowBytes = rowsTotal ? (n / rowsTotal) * eb : 0;
    const limit = Math.min(this.maxBinding, opts.maxPartBytes ?? Infinity);
    let rowsPerPart = rowBytes ? Math.floor(limit / rowBytes) : rowsTotal;
    if (rowsPerPart < 1) throw new GpuError(`weight '${label}': one row (${rowBytes} bytes) is larger than the binding limit ${limit}.`);
    rowsPerPart = Math.min(rowsPerPart, Math.max(1, rowsTotal));
    const parts: GpuWeight['parts'] = [];
    for (let r0 = 0; r0 < Math.max(1, rowsTotal); r0 += rowsPerPart) {
      const rows = Math.min(rowsPerPart, rowsTotal - r0);
      const slice = bytes.subarray(r0 * rowBytes, (r0 + rows) * rowBytes);
      // Rounded up to 16 bytes so kernels may read whole vec4<u32> words.
      const buffer = this.buffer(Math.ceil(slice.byteLength / 16) * 16, parts.length || rowsTotal > rowsPerPart ? `${label}[${parts.length}]` : label);
      this.write(buffer, slice);
      parts.push({ buffer, rowStart: r0, rows: Math.max(rows, 0), scaleOffset: 0 });
    }
    return { format, shape: [...shape], parts, bytes: n * eb };
  }

  /**
   * Uploads a group-wise quantized weight of logical shape `shape` ([N, K], or [E, N, K] for experts: the rows of
   * q are then E * N), split by shape[0] into parts of at most maxBinding bytes; each part's buffer holds its rows'
   * data plane, then their scales (GpuWeight.parts[].scaleOffset).
   */
  uploadQuantized(label: string, q: QuantizedWeight, shape: number[], opts: { maxPartBytes?: number } = {}): GpuWeight {
    const K = shape[shape.length - 1];
    const inner = shape.slice(1, -1).reduce((a, b) => a * b, 1); // matrix rows per unit of shape[0]
    const units = shape[0];
    if (shape.length < 2 || q.cols !== K || q.rows !== units * inner) {
      throw new GpuError(`weight '${label}': quantized as [${q.rows}, ${q.cols}], which is not shape [${shape}].`);
    }
    const G = Math.ceil(K / QUANT_GROUP);
    const wpg = groupWords(q.bits);
    const halves = new Uint16Array(q.scales.buffer, q.scales.byteOffset, 2 * q.scales.length);
    const unitBytes = inner * (4 * G * wpg + 2 * G);
    const limit = Math.min(this.maxBinding, opts.maxPartBytes ?? Infinity);
    const perPart = Math.min(units, Math.floor((limit - 16) / unitBytes));
    if (perPart < 1) throw new GpuError(`weight '${label}': one row (${unitBytes} bytes) is larger than the binding limit ${limit}.`);
    const parts: GpuWeight['parts'] = [];
    for (let u0 = 0; u0 < units; u0 += perPart) {
      const n = Math.min(perPart, units - u0);
      const r0 = u0 * inner;
      const rows = n * inner;
      const dataWords = rows * G * wpg;
      const scaleWords = Math.ceil((rows * G) / 2);
      const words = new Uint32Array(Math.ceil((dataWords + scaleWords) / 4) * 4);
      words.set(q.data.subarray(r0 * G * wpg, (r0 + rows) * G * wpg));
      new Uint16Array(words.buffer, 4 * dataWords, 2 * scaleWords).set(halves.subarray(r0 * G, (r0 + rows) * G));
      const buffer = this.buffer(words.byteLength, parts.length || units > perPart ? `${label}[${parts.length}]` : label);
      this.write(buffer, words);
      parts.push({ buffer, rowStart: u0, rows: n, scaleOffset: dataWords });
    }
    return { format: q.bits === 8 ? 'q8' : 'q4', shape: [...shape], parts, bytes: quantizedBytes(q.bits, q.rows, q.cols) };
  }

  /** Writes `data` at `byteOffset`; pads to a multiple of 4 bytes, as writeBuffer requires. */
  write(buf: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    if (bytes.byteLength === 0) return;
    // Large writes in pieces: Dawn copies each write into a staging area.
    const PIECE = 64 << 20;
    for (let o = 0; o < bytes.byteLength; o += PIECE) {
      const len = Math.min(PIECE, bytes.byteLength - o);
      this.device.queue.writeBuffer(buf, byteOffset + o, bytes.buffer, bytes.byteOffset + o, len);
    }
  }

  /**
   * Reads buffers (each whole, or `bytes` from `offset`) through one staging buffer and a single map. The copies
   * are queued when this is called, not when the promise is awaited: the data is what the buffers hold after the
   * work submitted so far, and the caller may queue more work before it waits.
   */
  async readMany(parts: readonly { buffer: GPUBuffer; bytes?: number; offset?: number }[]): Promise<ArrayBuffer[]> {
    // An async function runs up to its first await when called: the copies below are queued at the call.
    const bytes = parts.map((p) => p.bytes ?? p.buffer.size);
    const sizes = bytes.map((b) => Math.ceil(b / 4) * 4);
    const total = sizes.reduce((n, b) => n + b, 0);
    this.checkAlive();
    if (total === 0) return parts.map(() => new ArrayBuffer(0));
    const staging = this.device.createBuffer({ size: total, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'staging' });
    try {
      const enc = this.device.createCommandEncoder();
      let o = 0;
      parts.forEach((p, i) => {
        if (sizes[i] > 0) enc.copyBufferToBuffer(p.buffer, p.offset ?? 0, staging, o, sizes[i]);
        o += sizes[i];
      });
      this.device.queue.submit([enc.finish()]);
      this.readBacks.maps++;
      this.readBacks.bytes += total;
      await staging.mapAsync(GPUMapMode.READ);
      const mapped = staging.getMappedRange();
      let at = 0;
      const out = parts.map((_, i) => {
        const from = at;
        at += sizes[i];
        return mapped.slice(from, from + bytes[i]);
      });
      staging.unmap();
      await this.check();
      return out;
    } catch (e) {
      this.checkAlive();
      if (e instanceof GpuError) throw e;
      const what = parts.length === 1 ? `buffer '${parts[0].buffer.label}'` : `${parts.length} buffers`;
      throw new GpuError(`reading ${what} failed: ${(e as Error).message}`);
    } finally {
      staging.destroy();
    }
  }

  /** Reads `bytes` from `buf` at `byteOffset` through a staging buffer (after all submitted work). */
  async read(buf: GPUBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    return (await this.readMany([{ buffer: buf, bytes, offset: byteOffset }]))[0];
  }

  /** A buffer of zeros, bound where a kernel's optional input (e.g. a bias) is absent. */
  zeroBuffer(): GPUBuffer {
    if (!this.zeros) this.zeros = this.buffer(256, 'zeros');
    return this.zeros;
  }

  /** The kernel's text after preprocessing; `// #include NAME` lines (kept at the end of a file, so that line
   * numbers in compile errors stay right) are replaced by kernels/NAME.wgsl, itself expanded the same way; a
   * file included twice (e.g. `step` by a kernel and by a file it includes) is taken once. */
  private source(kernel: string): string {
    let src = this.sources.get(kernel);
    if (src === undefined) {
      const seen = new Set<string>();
      const read = (name: string): string => {
        if (seen.has(name)) return '';
        seen.add(name);
        const file = path.join(this.dir, `${name}.wgsl`);
        if (!fs.existsSync(file)) throw new GpuError(`kernel '${name}' not found: ${file} does not exist.`);
        return preprocess(fs.readFileSync(file, 'utf8'), this.defines).replace(/^\s*\/\/\s*#include\s+(\w+)\s*$/gm, (_, inc: string) => read(inc));
      };
      src = read(kernel);
      this.sources.set(kernel, src);
    }
    return src;
  }

  /**
   * The compute pipeline for `kernel` (kernels/<kernel>.wgsl, entry point `entry`) with these override
   * constants, cached. Compile and validation errors surface as GpuError from check() (which run() and
   * read() call), naming the kernel and the line.
   */
  pipeline(kernel: string, constants: Record<string, number> = {}, entry = 'main'): GPUComputePipeline {
    const ckeys = Object.keys(constants).sort();
    const key = `${kernel}:${entry}:${ckeys.map((k) => `${k}=${constants[k]}`).join(',')}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    let module = this.modules.get(kernel);
    if (!module) {
      this.device.pushErrorScope('validation');
      module = this.device.createShaderModule({ code: this.source(kernel), label: kernel });
      const compiled = module.getCompilationInfo().then((info) => {
        const errs = info.messages.filter((m) => m.type === 'error');
        return errs.length ? `kernel ${kernel}.wgsl does not compile: ${errs.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}` : null;
      });
      const scope = this.device.popErrorScope().then((e) => (e ? `kernel ${kernel}.wgsl: ${e.message}` : null));
      this.pending.push(compiled, scope);
      this.modules.set(kernel, module);
    }
    this.device.pushErrorScope('validation');
    p = this.device.createComputePipeline({ layout: 'auto', label: key, compute: { module, entryPoint: entry, constants } });
    this.pending.push(this.device.popErrorScope().then((e) => (e ? `pipeline ${key}: ${e.message}` : null)));
    this.pipelines.set(key, p);
    return p;
  }

  /** Runs `fn` inside a validation error scope; an error is reported by check() under `label`. */
  scoped<T>(label: string, fn: () => T): T {
    this.device.pushErrorScope('validation');
    const r = fn();
    this.pending.push(this.device.popErrorScope().then((e) => (e ? `${label}: ${e.message}` : null)));
    return r;
  }

  /** Throws the first error reported so far (kernel compile, pipeline, validation), or DeviceLostError. */
  async check(): Promise<void> {
    if (this.pending.length) {
      // Compile and creation errors first: validation errors on submit are usually their consequence.
      const results = await Promise.all(this.pending.splice(0));
      this.errors.unshift(...results.filter((r): r is string => r !== null));
    }
    this.checkAlive();
    if (this.errors.length) {
      const first = this.errors[0];
      const more = this.errors.length > 1 ? ` (and ${this.errors.length - 1} more)` : '';
      this.errors.length = 0;
      throw new GpuError(`${first}${more}`);
    }
  }

  private checkAlive(): void {
    if (this.lostReason !== null && !this.destroyed) throw new DeviceLostError(this.lostReason);
    if (this.destroyed) throw new GpuError('the GPU device was destroyed (Gpu.destroy() was called).');
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.timer?.destroy();
    this.timer = null;
    this.device.destroy();
    this.allocated = 0;
  }
}
