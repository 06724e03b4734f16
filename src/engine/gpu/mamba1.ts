// The Mamba-1 ops on the GPU (kernels/selectiveScan.wgsl, kernels/mamba1Norm.wgsl): the selective scan over T
// tokens from a carried f32 state [I, N] (prefill in chunks equals one-shot; T = 1 is the decode step, one
// dispatch) and FalconMamba's weightless norms of x_proj's output. Mirrors CommandList's conventions (ops.ts):
// each op checks its inputs and builds its pipeline, Params uniform and bind group once, when recorded, as a
// DispatchPlan, which CommandList.selectiveScan / falconNorms record.

import { GpuError } from '../errors';
import { WFMT, isQuantized, type Gpu, type GpuWeight } from './device';
import type { Act } from './ops';

/** A Params field: u32 or f32 (the same shape as ops.ts's). */
export type Field = [kind: 'u' | 'f', value: number];
const u = (v: number): Field => ['u', v];
const f = (v: number): Field => ['f', v];

/** One dispatch, ready to record: the pipeline, its Params fields (binding 0), the other bindings and the grid. */
export interface DispatchPlan {
  label: string;
  pipeline: GPUComputePipeline;
  params: Field[];
  bindings: Record<number, GPUBuffer>;
  grid: [number, number, number];
}

export interface SelectiveScanShape {
  T: number; // tokens
  I: number; // channels (intermediate_size)
  N: number; // state size
}

export interface SelectiveScanOptions {
  /** Gate the output: y * silu(z), z: [T, I] (the in_proj half that MambaMixer multiplies in after the scan). */
  z?: Act;
  /** Testing: lanes per channel (a power of two; at most the subgroup size when the device has subgroups). */
  tpr?: number;
  /**
   * Zamba's multi-head mixer: channels in heads of `channels`, each head's B and C `stride` further along their
   * rows than the previous head's (B, C then span (I / channels - 1) * stride + N columns).
   */
  heads?: { channels: number; stride: number };
}

const MAX_NPL = 16; // state entries per lane the kernel holds in registers
const PARAMS_BYTES = 128;

function isCount(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function counts(op: string, sizes: Record<string, number>): void {
  for (const [k, v] of Object.entries(sizes)) if (!isCount(v)) throw new GpuError(`${op}: ${k} = ${v} must be a positive integer.`);
}

function span(op: string, name: string, a: Act, rows: number, cols: number): { off: number; stride: number } {
  const off = a.offset ?? 0;
  const stride = a.stride ?? cols;
  if (!Number.isInteger(off) || off < 0 || !Number.isInteger(stride) || stride < cols) {
    throw new GpuError(`${op}: ${name} has offset ${off} and stride ${stride}; both must be integers, stride >= ${cols}.`);
  }
  const end = 4 * (off + (rows - 1) * stride + cols);
  if (end > a.buffer.size) throw new GpuError(`${op}: ${name} [${rows}, ${cols}] (offset ${off}, stride ${stride}) ends at byte ${end}, past its ${a.buffer.size}-byte buffer '${a.buffer.label}'.`);
  return { off, stride };
}

function whole(op: string, name: string, w: GpuWeight, numel: number): GPUBuffer {
  const n = w.shape.reduce((a, b) => a * b, 1);
  if (n !== numel) throw new GpuError(`${op}: ${name} has shape [${w.shape}] (${n} values), ${numel} expected.`);
  if (w.parts.length !== 1) throw new GpuError(`${op}: ${name} is split in ${w.parts.length} parts; it must fit one binding.`);
  if (isQuantized(w.format)) throw new GpuError(`${op}: ${name} is ${w.format}-quantized; only matrices of linear layers and the embedding may be.`);
  return w.parts[0].buffer;
}

function noAlias(op: string, writes: GPUBuffer[], reads: GPUBuffer[]): void {
  for (let i = 0; i < writes.length; i++) {
    const w = writes[i];
    if (reads.includes(w) || writes.indexOf(w) !== i) {
      throw new GpuError(`${op}: buffer '${w.label}' is both written and read (or written twice); use a separate output buffer.`);
    }
  }
}

function flat(gpu: Gpu, n: number): [number, number, number] {
  const max = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const m = Math.max(1, n);
  return m <= max ? [m, 1, 1] : [max, Math.ceil(m / max), 1];
}

/** Bytes of the scan constants buffer for I channels of N states: A [I, N], then (dt_bias, D) [I], f32. */
export function scanConstantsBytes(I: number, N: number): number {
  return 4 * (I * N + 2 * I);
}

/**
 * The scan's constants, computed once from the checkpoint's A_log [I, N], dt_proj.bias [I] and D [I] (any of
 * f32 / f16 / bf16) by a dispatch submitted now: f32 (-exp(A_log), then (dt_bias, D) per channel). The caller
 * owns (and frees) the buffer; a model makes it per layer at load.
 */
export function selectiveScanConstants(gpu: Gpu, aLog: GpuWeight, dtBias: GpuWeight, D: GpuWeight, I: number, N: number): GPUBuffer {
  const op = 'selectiveScan.prep';
  counts(op, { I, N });
  const a = whole(op, 'A_log', aLog, I * N);
  const t = whole(op, 'dt_bias', dtBias, I);
  const d = whole(op, 'D', D, I);
  const cp = gpu.buffer(scanConstantsBytes(I, N), 'mamba1.scanConstants');
  const pipeline = gpu.pipeline('selectiveScan', { AFMT: WFMT[aLog.format], TFMT: WFMT[dtBias.format], DFMT: WFMT[D.format] }, 'prep');
  // The scan's Params struct (18 u32, padded to 20), of which prep reads I and N.
  const params = gpu.buffer(80, 'mamba1.prep.params', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  gpu.write(params, new Uint32Array([0, I, N, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, I, 0, 0, 0]));
  const bindGroup = gpu.scoped(op, () =>
    gpu.device.createBindGroup({
      label: op,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: params } },
        { binding: 9, resource: { buffer: a } },
        { binding: 10, resource: { buffer: t } },
        { binding: 11, resource: { buffer: d } },
        { binding: 12, resource: { buffer: cp } },
      ],
    }),
  );
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  const g = flat(gpu, Math.ceil((I * N + I) / 256));
  pass.dispatchWorkgroups(g[0], g[1], g[2]);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  // Freed after the submitted work (destroy waits for queued use in WebGPU).
  gpu.free(params);
  return cp;
}

/** Lanes per channel: the state entries split over up to 16 lanes, within one subgroup when subgroups are on. */
export function scanLanes(gpu: Gpu, N: number): number {
  const want = Math.min(16, pow2ceil(N));
  return gpu.hasSubgroups ? Math.min(want, gpu.subgroupSize) : want;
}

/**
 * The selective scan (cpu/mamba1.ts selectiveScan) as one dispatch: x, dtRaw (dt_proj output without its bias):
 * [T, I]; B, C: [T, N]; cp: selectiveScanConstants(); state: f32 [I, N], read and updated; out: [T, I]
 * (times silu(z) with opts.z).
 */
export function selectiveScanPlan(gpu: Gpu, x: Act, dtRaw: Act, B: Act, C: Act, cp: GPUBuffer, state: GPUBuffer, out: Act, s: SelectiveScanShape, opts: SelectiveScanOptions = {}): DispatchPlan {
  const op = 'selectiveScan';
  const { T, I, N } = s;
  counts(op, { T, I, N });
  const TPR = opts.tpr ?? scanLanes(gpu, N);
  if (!isCount(TPR) || (TPR & (TPR - 1)) !== 0 || TPR > 256 || (gpu.hasSubgroups && TPR > gpu.subgroupSize)) {
    throw new GpuError(`${op}: ${TPR} lanes per channel is not a power of two up to ${gpu.hasSubgroups ? gpu.subgroupSize : 256}.`);
  }
  const NPL = Math.ceil(N / TPR);
  if (NPL > MAX_NPL) throw new GpuError(`${op}: state size N = ${N} needs ${NPL} entries per lane with ${TPR} lanes, above ${MAX_NPL}.`);
  const xs = span(op, 'x', x, T, I);
  const ds = span(op, 'dt', dtRaw, T, I);
  const hc = opts.heads?.channels ?? I;
  const hs = opts.heads ? opts.heads.stride : 0;
  if (!isCount(hc) || I % hc !== 0 || !Number.isInteger(hs) || hs < 0) throw new GpuError(`${op}: heads of ${hc} channels (B/C stride ${hs}) do not divide I = ${I}.`);
  const bcCols = (I / hc - 1) * hs + N;
  const bs = span(op, 'B', B, T, bcCols);
  const cs = span(op, 'C', C, T, bcCols);
  const o = span(op, 'out', out, T, I);
  const zs = opts.z ? span(op, 'z', opts.z, T, I) : { off: 0, stride: 0 };
  if (cp.size < scanConstantsBytes(I, N)) throw new GpuError(`${op}: the constants buffer holds ${cp.size} bytes; ${scanConstantsBytes(I, N)} needed for I = ${I}, N = ${N}.`);
  if (state.size < 4 * I * N) throw new GpuError(`${op}: state holds ${state.size} bytes; [I, N] f32 needs ${4 * I * N}.`);
  const zb = opts.z ? opts.z.buffer : gpu.zeroBuffer();
  noAlias(op, [out.buffer, state], [x.buffer, dtRaw.buffer, B.buffer, C.buffer, zb, cp]);
  const pipeline = gpu.pipeline('selectiveScan', { WG: 256, TPR, NPL });
  const params = [u(T), u(I), u(N), u(xs.off), u(xs.stride), u(ds.off), u(ds.stride), u(bs.off), u(bs.stride), u(cs.off), u(cs.stride), u(zs.off), u(zs.stride), u(o.off), u(o.stride), u(opts.z ? 1 : 0), u(hc), u(hs)];
  const bindings = { 1: x.buffer, 2: dtRaw.buffer, 3: B.buffer, 4: C.buffer, 5: zb, 6: cp, 7: state, 8: out.buffer };
  return { label: op, pipeline, params, bindings, grid: flat(gpu, Math.ceil(I / (256 / TPR))) };
}

/**
 * FalconMamba's norms, in place on x_proj's output xdbc [T, R + 2N] = (dt_low | B | C): each part RMS-normalised
 * per token over its own width without a weight (eps: config.mixer_rms_eps).
 */
export function falconNormPlan(gpu: Gpu, xdbc: Act, T: number, R: number, N: number, eps: number): DispatchPlan {
  const op = 'mamba1Norm';
  counts(op, { T, R, N });
  const xs = span(op, 'xdbc', xdbc, T, R + 2 * N);
  return { label: op, pipeline: gpu.pipeline('mamba1Norm', { WG: 256 }), params: [u(T), u(R), u(N), u(xs.off), u(xs.stride), f(eps)], bindings: { 1: xdbc.buffer }, grid: flat(gpu, T) };
}

interface Recorded {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
}

