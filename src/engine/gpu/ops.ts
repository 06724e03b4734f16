// A recorder of GPU dispatches. Each op checks its preconditions, picks a kernel variant, and creates the bind
// group and Params uniform for its dispatch(es) once, when the list is recorded; submit() then only encodes
// (setPipeline / setBindGroup / dispatch) the recorded list into one compute pass, so a decode step can be
// replayed every token with only the `step` uniform rewritten.
//
// Conventions: activations are f32, row-major, passed as Act (buffer, first element, row stride in elements).
// `step` is a 16-byte uniform buffer { pos0, nTokens, seed, pad: u32 } written by the caller before each
// submit: pos0 = tokens already in the caches; kernels that depend on position read it.

import { falconNormPlan, selectiveScanPlan, type DispatchPlan, type SelectiveScanOptions, type SelectiveScanShape } from './mamba1';
import type { RouterMode } from '../config';
import { GpuError } from '../errors';
import { WFMT, isQuantized, type Gpu, type GpuWeight, type WFormat } from './device';

/** An f32 activation: rows of a buffer, the first at `offset` elements (default 0), `stride` elements apart
 * (default: the row length the op reads). */
export interface Act {
  buffer: GPUBuffer;
  offset?: number;
  stride?: number;
}

export interface LinearOptions {
  bias?: GpuWeight; // [N]
  alpha?: number; // default 1
  accumulate?: boolean; // add to out instead of overwriting it
  /** The input is x RMS-normalised per row with this weight ([K]): saves the rmsNorm dispatch (GEMV). */
  inputNorm?: { w: GpuWeight; eps: number };
  /** The input is silu(gate) * up of x = [T, 2K] (gate | up): saves the swiglu dispatch (GEMV). */
  inputSwiglu?: boolean;
  /** The input is relu(x)^2 (Nemotron-H's MLP block): saves the relu2 dispatch (GEMV). */
  inputRelu2?: boolean;
  /** The input is gatedRmsNorm(x, z, w, groupSize, eps) (Mamba-2's norm before out_proj): saves a dispatch (GEMV). */
  inputGatedNorm?: { z: Act; w: GpuWeight; groupSize: number; eps: number };
  /**
   * Append to a KV cache: the T output rows go to rows pos0..pos0+T-1 of `out` (a [capacity, N] buffer, offset
   * 0, stride N), pos0 read from this step buffer; rows past the capacity are dropped. Saves kvWrite (GEMV).
   */
  outAtStep?: GPUBuffer;
  /**
   * Mamba's causal conv + SiLU on output columns start..start+C-1 as they are written, sliding `state` (f32
   * [C, K-1]); `wb` from convPack(). GEMV only, on devices with Gpu.gemvConv (see fusesConv): saves causalConv1d.
   */
  conv?: { wb: GPUBuffer; state: GPUBuffer; start: number; C: number; K: number };
}

/** Slots sorted by expert for a prefill chunk's expert products (CommandList.moeGroup, moeGemm). */
export interface MoeGrouping {
  rowMap: GPUBuffer; // u32 [tiles * 64]: the slot at each sorted row, 0xffffffff for padding
  tileExpert: GPUBuffer; // u32 [tiles]: each tile's expert, 0xffffffff past the last
  tiles: number;
  slots: number;
  experts: GPUBuffer; // the ids grouped (for the unaligned fallback)
}

export interface SsmScanParams {
  T: number;
  nh: number; // heads
  hd: number; // head dim
  N: number; // state size
  ng: number; // groups of B/C
  chunk: number; // SSD chunk length for prefill (capped to what fits in workgroup memory)
  dtMin: number;
  dtMax: number; // may be Infinity
  /** Testing: force the token-by-token kernel ('step') or the chunked scan ('chunked'). */
  method?: 'step' | 'chunked';
}

export interface SampleOptions {
  temperature: number; // <= 0: argmax
  topP: number; // 1: no nucleus cut
}

/** Also write each chosen id to ring[(pos0 + nTokens) % capacity], u32 (the id's position in the sequence). */
export interface RingOption {
  ring?: { buffer: GPUBuffer; capacity: number };
}

type Field = [kind: 'u' | 'f', value: number];
const u = (v: number): Field => ['u', v];
const f = (v: number): Field => ['f', v];

interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
}

export const GEMV_MAX_T = 4; // linear: GEMV up to this many rows, tiled GEMM above
const CONV_FUSED_MAX_T = 8; // causalConv1d: one thread per channel walks up to this many tokens
const SSM_STEP_MAX_T = 8; // ssmScan: token-by-token kernel up to this many tokens, chunked SSD above
const MAX_SSD_CHUNK = 64;
const SLAB_BYTES = 64 * 1024; // Params uniforms are packed into slabs of this size
const PARAMS_BYTES = 128; // the largest Params struct, rounded

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function isCount(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

export class CommandList {
  private readonly dispatches: Dispatch[] = [];
  private readonly owned: GPUBuffer[] = []; // uniform slabs, scratch, small constant tables
  private slab: GPUBuffer | null = null;
  private slabUsed = 0;
  private readonly align: number;
  private dummyStep: GPUBuffer | null = null;
  private dummyRing: GPUBuffer | null = null;
  private destroyed = false;

  constructor(readonly gpu: Gpu) {
    this.align = Math.max(PARAMS_BYTES, gpu.device.limits.minUniformBufferOffsetAlignment);
  }

  /**
   * Dispatches recorded: what bounds decode speed. Measured on the H100: ~2-4 us of GPU time each at full
   * clocks, and ~5-6 us of CPU time to encode (setBindGroup + dispatch through the Node binding).
   */
  get dispatchCount(): number {
    return this.dispatches.length;
  }

  /** Labels of the recorded dispatches, in order (for profiling and debugging). */
  get labels(): string[] {
    return this.dispatches.map((d) => d.label);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Submission

  /** Encodes the recorded dispatches into an open compute pass (to combine lists in one submit). */
  encode(pass: GPUComputePassEncoder, from = 0, to = this.dispatches.length): void {
    this.checkAlive();
    let last: GPUComputePipeline | null = null;
    for (let i = from; i < to; i++) {
      const d = this.dispatches[i];
      if (d.pipeline !== last) {
        pass.setPipeline(d.pipeline);
        last = d.pipeline;
      }
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    }
  }

  /** Encodes all recorded dispatches into one compute pass and submits it. May be called any number of times. */
  submit(): void {
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.gpu.passDescriptor('list'));
    this.encode(pass);
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** submit(), then waits for the GPU and reports any error (kernel compile, validation, device lost). */
  async run(): Promise<void> {
    this.submit();
    await this.gpu.device.queue.onSubmittedWorkDone();
    await this.gpu.check();
  }

  /** Frees the uniforms and scratch buffers this list made. The list cannot be submitted afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.owned) this.gpu.free(b);
    this.owned.length = 0;
    this.dispatches.length = 0;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Ops

  /** out[t] = table[ids[t]] * multiplier. ids: u32 [T], table: [V, D], out: [T, D]. */
  embedding(ids: GPUBuffer, table: GpuWeight, out: Act, T: number, D: number, multiplier: number): void {
    const op = 'embedding';
    this.counts(op, { T, D });
    this.shape(op, 'table', table, [undefined, D]);
    if (ids.size < 4 * T) throw new GpuError(`${op}: the ids buffer holds ${ids.size / 4} ids, fewer than T = ${T}.`);
    const o = this.span(op, 'out', out, T, D);
    this.noAlias(op, [out.buffer], [ids, ...table.parts.map((p) => p.buffer)]);
    for (const part of table.parts) {
      this.add(op, this.gpu.pipeline('embedding', { WFMT: WFMT[table.format] }), [u(T), u(D), u(part.rowStart), u(part.rows), u(o.off), u(o.stride), f(multiplier), u(part.scaleOffset)], { 1: ids, 2: part.buffer, 3: out.buffer }, this.flat(Math.ceil((T * D) / 256)));
    }
  }

  /** out[t] = x[t] / rms(x[t]) * w. x, out: [T, D], w: [D]. */
  rmsNorm(x: Act, w: GpuWeight, out: Act, T: number, D: number, eps: number): void {
    const op = 'rmsNorm';
    this.counts(op, { T, D });
    const wb = this.whole(op, 'w', w, D);
    const xs = this.span(op, 'x', x, T, D);
    const o = this.span(op, 'out', out, T, D);
    this.noAlias(op, [out.buffer], [x.buffer, wb]);
    this.add(op, this.gpu.pipeline('rmsNorm', { WG: this.rowWG(), SG: this.sg(), WFMT: WFMT[w.format] }), [u(T), u(D), u(xs.off), u(xs.stride), u(o.off), u(o.stride), f(eps)], { 1: x.buffer, 2: wb, 3: out.buffer }, this.flat(T));
  }

  /** Mamba-2 gated norm: out = rmsnorm over groups of `groupSize` of (y * silu(z)), times w. y, z, out: [T, D]. */
  gatedRmsNorm(y: Act, z: Act, w: GpuWeight, out: Act, T: number, D: number, groupSize: number, eps: number): void {
    const op = 'gatedRmsNorm';
    this.counts(op, { T, D, groupSize });
    if (D % groupSize !== 0) throw new GpuError(`${op}: groupSize ${groupSize} does not divide D = ${D}.`);
    const wb = this.whole(op, 'w', w, D);
    const ys = this.span(op, 'y', y, T, D);
    const zs = this.span(op, 'z', z, T, D);
    const o = this.span(op, 'out', out, T, D);
    this.noAlias(op, [out.buffer], [y.buffer, z.buffer, wb]);
    const rows = this.flat(T);
    this.add(op, this.gpu.pipeline('gatedRmsNorm', { WG: this.rowWG(), SG: this.sg(), WFMT: WFMT[w.format] }), [u(T), u(D), u(groupSize), u(ys.off), u(ys.stride), u(zs.off), u(zs.stride), u(o.off), u(o.stride), f(eps)], { 1: y.buffer, 2: z.buffer, 3: wb, 4: out.buffer }, [D / groupSize, rows[0], rows[1]]);
  }

  /**
   * out = (accumulate ? out : 0) + alpha * (x W^T + bias). x: [T, K], w: [N, K] (any number of parts, each
   * writing its own columns), bias: [N], out: [T, N]. T <= 4 runs a bandwidth-bound GEMV, larger T a tiled GEMM.
   */
  linear(x: Act, w: GpuWeight, out: Act, T: number, K: number, N: number, opts: LinearOptions = {}): void {
    const op = 'linear';
    this.counts(op, { T, K, N });
    this.shape(op, 'w', w, [N, K]);
    const transforms = [opts.inputNorm, opts.inputSwiglu, opts.inputGatedNorm, opts.inputRelu2].filter(Boolean).length;
    if (transforms > 1) throw new GpuError(`${op}: at most one of inputNorm, inputSwiglu, inputGatedNorm and inputRelu2.`);
    const bias = opts.bias ? this.whole(op, 'bias', opts.bias, N) : this.gpu.zeroBuffer();
    const bfmt = opts.bias ? WFMT[opts.bias.format] : 0;
    const xs = this.span(op, 'x', x, T, opts.inputSwiglu ? 2 * K : K);
    const o = this.span(op, 'out', out, T, N);
    const norm = opts.inputNorm ?? opts.inputGatedNorm;
    const nw = norm ? this.whole(op, 'norm weight', norm.w, K) : this.gpu.zeroBuffer();
    const gated = opts.inputGatedNorm;
    const zs = gated ? this.span(op, 'z', gated.z, T, K) : { off: 0, stride: 0 };
    if (gated && (!isCount(gated.groupSize) || K % gated.groupSize !== 0 || K / gated.groupSize > 16)) {
      throw new GpuError(`${op}: inputGatedNorm.groupSize = ${gated.groupSize} must divide K = ${K} into at most 16 groups.`);
    }
    this.noAlias(op, [out.buffer], [x.buffer, bias, nw, ...(gated ? [gated.z.buffer] : []), ...w.parts.map((p) => p.buffer)]);
    const alpha = opts.alpha ?? 1;
    const acc = opts.accumulate ? 1 : 0;
    const hasBias = opts.bias ? 1 : 0;
    const oRows = opts.outAtStep ? Math.floor(out.buffer.size / (4 * N)) : 0xffffffff;
    if (opts.outAtStep && (o.off !== 0 || o.stride !== N)) throw new GpuError(`${op}: outAtStep needs out to be a whole [capacity, N] buffer (offset 0, stride N).`);
    if (T > GEMV_MAX_T && opts.outAtStep) {
      // The GEMM writes plain rows: into scratch, then appended to the cache.
      const tmp = this.own(this.gpu.buffer(4 * T * N, `${op}.rows`));
      this.linear(x, w, { buffer: tmp }, T, K, N, { ...opts, outAtStep: undefined });
      this.kvWrite({ buffer: tmp }, out.buffer, T, N, opts.outAtStep);
      return;
    }
    if (T > GEMV_MAX_T && transforms > 0) {
      // The GEMM takes plain rows: transform the input first, into scratch this list owns.
      const tmp: Act = { buffer: this.own(this.gpu.buffer(4 * T * K, `${op}.input`)) };
      if (opts.inputNorm) this.rmsNorm(x, opts.inputNorm.w, tmp, T, K, opts.inputNorm.eps);
      else if (gated) this.gatedRmsNorm(x, gated.z, gated.w, tmp, T, K, gated.groupSize, gated.eps);
      else if (opts.inputRelu2) this.relu2(x, tmp, T, K);
      else this.swiglu(x, tmp, T, K);
      this.linear(tmp, w, out, T, K, N, { bias: opts.bias, alpha: opts.alpha, accumulate: opts.accumulate });
      return;
    }
    const conv = opts.conv;
    if (conv) {
      if (!this.fusesConv(T)) throw new GpuError(`${op}: the conv epilogue needs T <= ${GEMV_MAX_T} (got ${T}) and a device with Gpu.gemvConv.`);
      if (conv.K < 2 || conv.K > 8 || conv.start + conv.C > N) throw new GpuError(`${op}: conv columns ${conv.start}..${conv.start + conv.C} or kernel size ${conv.K} do not fit N = ${N}.`);
      if (conv.state.size < 4 * conv.C * (conv.K - 1) || conv.wb.size < 4 * conv.C * (conv.K + 1)) throw new GpuError(`${op}: the conv state or packed weights are too small for ${conv.C} channels.`);
      if (opts.outAtStep || opts.accumulate) throw new GpuError(`${op}: the conv epilogue writes plain rows (no outAtStep, no accumulate).`);
    }
    for (const part of w.parts) {
      if (T <= GEMV_MAX_T) {
        const IN = opts.inputNorm ? 1 : opts.inputSwiglu ? 2 : gated ? 3 : opts.inputRelu2 ? 4 : 0;
        // The vec4 GEMV also needs whole vec4s of z and groups of whole vec4<u32> words.
        const zAligned = !gated || (zs.off % 4 === 0 && (T === 1 || zs.stride % 4 === 0) && gated.groupSize % 8 === 0);
        const g = this.gemvVariant(w.format, bfmt, K, xs.off, T > 1 ? xs.stride : 4, T, IN, norm ? WFMT[norm.w.format] : 0, zAligned, conv?.K ?? 0);
        const rpw = g.constants.WG / g.constants.TPR;
        const params = [u(K), u(part.rows), u(part.rowStart), u(xs.off), u(xs.stride), u(o.off), u(o.stride), f(alpha), u(acc), u(hasBias), u(0), u(1), u(0), u(0), f(norm?.eps ?? 0), u(zs.off), u(zs.stride), u(gated?.groupSize ?? 0), u(opts.outAtStep ? 1 : 0), u(oRows), u(part.scaleOffset), u(conv?.start ?? 0), u(conv?.C ?? 0)];
        const bind = this.gemvBindings({ 1: x.buffer, 2: part.buffer, 3: bias, 4: this.gpu.zeroBuffer(), 5: out.buffer, 6: nw, 7: gated ? gated.z.buffer : this.gpu.zeroBuffer(), 8: opts.outAtStep ?? this.stepDummy() }, conv);
        this.add(`${op}.gemv`, g.pipeline(this.gpu), params, bind, this.flat(Math.ceil(part.rows / rpw)));
      } else {
        const kernel = gemmKernel(w.format, K, xs.off, xs.stride, this.gpu.onCpu);
        const constants = { WFMT: WFMT[w.format], BFMT: bfmt };
        const params = [u(T), u(K), u(part.rows), u(part.rowStart), u(xs.off), u(xs.stride), u(o.off), u(o.stride), f(alpha), u(acc), u(hasBias), u(part.scaleOffset), u(0), u(0), u(0), u(0)];
        if (kernel === 'cpu') {
          this.add(`${op}.gemm`, this.gpu.pipeline('gemmCpu', { ...constants, LANES: GEMM_CPU.lanes }), params, { 1: x.buffer, 2: part.buffer, 3: bias, 4: out.buffer }, [Math.ceil(part.rows / GEMM_CPU.cols), Math.ceil(T / (GEMM_CPU.lanes * GEMM_CPU.tokens)), 1]);
          continue;
        }
        // (main binds the MoE row map and tiles, generic only the row map its epilogue names: placeholders here.)
        const moeBind: Record<number, GPUBuffer> = kernel === 'main' ? { 5: this.gpu.zeroBuffer(), 6: this.gpu.zeroBuffer() } : { 5: this.gpu.zeroBuffer() };
        this.add(`${op}.gemm`, this.gpu.pipeline('gemm', constants, kernel), params, { 1: x.buffer, 2: part.buffer, 3: bias, 4: out.buffer, ...moeBind }, [Math.ceil(part.rows / 64), Math.ceil(T / 64), 1]);
      }
    }
  }

  /**
   * Depthwise causal conv1d + SiLU over time, continuing from `state` (f32 [C, K-1], the last K-1 inputs,
   * oldest first), which is then updated. x, out: [T, C], w: [C, K] (checkpoint [C, 1, K]), bias: [C].
   */
  causalConv1d(x: Act, w: GpuWeight, bias: GpuWeight | null, state: GPUBuffer, out: Act, T: number, C: number, K: number, opts: { activation?: boolean } = {}): void {
    const op = 'causalConv1d';
    this.counts(op, { T, C, K });
    if (K < 2 || K > 8) throw new GpuError(`${op}: kernel size K = ${K} is outside the supported 2..8.`);
    const wb = this.whole(op, 'w', w, C * K);
    const bb = bias ? this.whole(op, 'bias', bias, C) : this.gpu.zeroBuffer();
    if (state.size < 4 * C * (K - 1)) throw new GpuError(`${op}: state holds ${state.size} bytes; [C, K-1] f32 needs ${4 * C * (K - 1)}.`);
    const xs = this.span(op, 'x', x, T, C);
    const o = this.span(op, 'out', out, T, C);
    this.noAlias(op, [out.buffer, state], [x.buffer, wb, bb]);
    const params = [u(T), u(C), u(xs.off), u(xs.stride), u(o.off), u(o.stride), u(bias ? 1 : 0)];
    const constants = { KC: K, WFMT: WFMT[w.format], BFMT: bias ? WFMT[bias.format] : 0, ACT: opts.activation === false ? 0 : 1 };
    const all = { 1: x.buffer, 2: wb, 3: bb, 4: state, 5: out.buffer };
    const channels = this.flat(Math.ceil(C / 256));
    if (T <= CONV_FUSED_MAX_T) {
      this.add(op, this.gpu.pipeline('causalConv1d', constants, 'fused'), params, all, channels);
    } else {
      this.add(op, this.gpu.pipeline('causalConv1d', constants, 'main'), params, all, this.flat(Math.ceil((T * C) / 256)));
      this.add(`${op}.state`, this.gpu.pipeline('causalConv1d', constants, 'updateState'), params, { 1: x.buffer, 4: state }, channels);
    }
  }

  /** Whether linear() can take the conv epilogue (LinearOptions.conv) for T tokens here. */
  fusesConv(T: number): boolean {
    return this.gpu.gemvConv && T <= GEMV_MAX_T;
  }

  /**
   * The conv weights [C, K] and bias [C] as one f32 [C, K + 1] buffer for LinearOptions.conv (a one-off dispatch
   * now; the buffer lives as long as this list).
   */
  convPack(w: GpuWeight, bias: GpuWeight | null, C: number, K: number): GPUBuffer {
    const op = 'convPack';
    if (K < 2 || K > 8) throw new GpuError(`${op}: kernel size K = ${K} is outside the supported 2..8.`);
    const wb = this.whole(op, 'w', w, C * K);
    const bb = bias ? this.whole(op, 'bias', bias, C) : this.gpu.zeroBuffer();
    const out = this.own(this.gpu.buffer(4 * C * (K + 1), 'conv.packed'));
    const pipeline = this.gpu.pipeline('causalConv1d', { KC: K, WFMT: WFMT[w.format], BFMT: bias ? WFMT[bias.format] : 0 }, 'pack');
    this.runOnce(pipeline, 'conv.pack.params', new Uint32Array([0, C, 0, 0, 0, 0, bias ? 1 : 0, 0]), { 2: wb, 3: bb, 5: out }, Math.ceil(C / 256));
    return out;
  }

  /** A one-off dispatch submitted now (derived constants made at record time); its uniform params are owned here. */
  private runOnce(pipeline: GPUComputePipeline, label: string, words: Uint32Array, bindings: Record<number, GPUBuffer>, groups: number): void {
    const params = this.own(this.gpu.buffer(Math.ceil(words.byteLength / 16) * 16, label, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST));
    this.gpu.write(params, words);
    const bindGroup = this.gpu.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: Object.entries({ 0: params, ...bindings }).map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer } })),
    });
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups);
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * The Mamba-2 selective scan (see cpu/ops.ts ssmScan): x: [T, nh*hd], dt: [T, nh] (raw), B, C: [T, ng*N],
   * aLog, dtBias, D: [nh], state: f32 [nh, hd, N] (read and updated), out: [T, nh*hd]. Short batches run token
   * by token (ssmStep.wgsl); longer ones as the chunked SSD (ssdChunkScan.wgsl) with scratch sized by T.
   */
  ssmScan(x: Act, dt: Act, B: Act, C: Act, aLog: GpuWeight, dtBias: GpuWeight, D: GpuWeight, state: GPUBuffer, out: Act, p: SsmScanParams): void {
    const op = 'ssmScan';
    const { T, nh, hd, N, ng } = p;
    this.counts(op, { T, nh, hd, N, ng, chunk: p.chunk });
    if (nh % ng !== 0) throw new GpuError(`${op}: ng = ${ng} groups do not divide nh = ${nh} heads.`);
    if (N > 256) throw new GpuError(`${op}: state size N = ${N} is above the supported 256.`);
    const xs = this.span(op, 'x', x, T, nh * hd);
    const ds = this.span(op, 'dt', dt, T, nh);
    const bs = this.span(op, 'B', B, T, ng * N);
    const cs = this.span(op, 'C', C, T, ng * N);
    const o = this.span(op, 'out', out, T, nh * hd);
    if (state.size < 4 * nh * hd * N) throw new GpuError(`${op}: state holds ${state.size} bytes; [nh, hd, N] f32 needs ${4 * nh * hd * N}.`);
    this.noAlias(op, [out.buffer, state], [x.buffer, dt.buffer, B.buffer, C.buffer]);
    const hp = this.headParams(aLog, dtBias, D, nh);
    const dtMax = Number.isFinite(p.dtMax) ? p.dtMax : 3.0e38;
    const geometry = [u(T), u(nh), u(hd), u(N), u(ng)];
    const strides = [u(xs.off), u(xs.stride), u(ds.off), u(ds.stride), u(bs.off), u(bs.stride), u(cs.off), u(cs.stride), u(o.off), u(o.stride), f(p.dtMin), f(dtMax)];
    // The chunked scan's output kernel needs ~25 KB of workgroup memory.
    const fits = this.gpu.device.limits.maxComputeWorkgroupStorageSize >= 4 * 6144 + 8 * 64;
    const method = p.method ?? (T <= SSM_STEP_MAX_T || !fits ? 'step' : 'chunked');
    // A CPU adapter takes its own shapes of the step and of the chunked scan's chunkState / output kernels
    // (SIDEWINDER_SSD_CPU=0: the GPU's).
    const cpuShape = this.gpu.onCpu && process.env.SIDEWINDER_SSD_CPU !== '0';
    if (method === 'step') {
      // CPU adapter: a row's lanes are one SIMD batch where N allows (<= 8 entries a lane), so its sum is one
      // subgroup reduction with no barrier (the bundled model's 6 decode scans on lavapipe: 7.1 -> 1.0 ms a token).
      const TPR = cpuShape ? Math.max(this.rowWG(), pow2ceil(Math.ceil(N / 8))) : Math.max(32, this.sg());
      const pipeline = this.gpu.pipeline('ssmStep', { WG: 256, TPR, SG: this.sg(), NPL: Math.ceil(N / TPR) });
      this.add(op, pipeline, [...geometry, ...strides], { 1: x.buffer, 2: dt.buffer, 3: B.buffer, 4: C.buffer, 5: hp, 6: state, 7: out.buffer }, [Math.ceil(hd / (256 / TPR)), nh, 1]);
      return;
    }
    // Chunk length 16, 32 or 64 (the chunk changes how the scan is computed, not its result).
    let L = 16;
    while (L * 2 <= Math.min(p.chunk, MAX_SSD_CHUNK)) L *= 2;
    const nC = Math.ceil(T / L);
    const scratch = (bytes: number, label: string): GPUBuffer => {
      if (bytes > this.gpu.maxBinding) {
        throw new GpuError(`${op}: the scan's ${label} needs ${bytes} bytes for T = ${T}, above the binding limit ${this.gpu.maxBinding}; run the prompt in smaller batches.`);
      }
      return this.own(this.gpu.buffer(bytes, `ssd.${label}`));
    };
    const dtA = scratch(8 * nh * T, 'dtA');
    const cb = scratch(4 * nC * ng * L * L, 'cb');
    const states = scratch(4 * nC * nh * hd * N, 'states');
    const params = [...geometry, u(nC), ...strides];
    const k = (entry: string) => this.gpu.pipeline('ssdChunkScan', { L, NS: N }, entry);
    this.add(`${op}.prep`, k('prep'), params, { 2: dt.buffer, 5: hp, 8: dtA }, [nh, nC, 1]);
    this.add(`${op}.cb`, k('cbMain'), params, { 3: B.buffer, 4: C.buffer, 9: cb }, [ng, nC, 1]);
    if (cpuShape) {
      // CPU adapters: a lane per state column, rows of the head a workgroup (kernels/ssdChunkScan.wgsl chunkStateCpu).
      const lanes = GEMM_CPU.lanes;
      this.add(`${op}.chunkState`, this.gpu.pipeline('ssdChunkScan', { L, NS: N, LANES: lanes }, 'chunkStateCpu'), params, { 1: x.buffer, 3: B.buffer, 8: dtA, 10: states }, [Math.ceil(hd / SSD_CPU.stateRows) * Math.ceil(N / (SSD_CPU.stateCols * lanes)), nh, nC]);
    } else {
      this.add(`${op}.chunkState`, k('chunkState'), params, { 1: x.buffer, 3: B.buffer, 8: dtA, 10: states }, [Math.ceil(hd / 32) * Math.ceil(N / 128), nh, nC]);
    }
    this.add(`${op}.statePass`, k('statePass'), params, { 6: state, 8: dtA, 10: states }, this.flat(Math.ceil((nh * hd * N) / 256)));
    if (cpuShape) {
      // Tokens a workgroup, rows of the head a lane (kernels/ssdChunkScan.wgsl outputMainCpu).
      const lanes = GEMM_CPU.lanes;
      this.add(`${op}.output`, this.gpu.pipeline('ssdChunkScan', { L, NS: N, LANES: lanes }, 'outputMainCpu'), params, { 1: x.buffer, 4: C.buffer, 5: hp, 7: out.buffer, 8: dtA, 9: cb, 10: states }, [Math.ceil(L / SSD_CPU.outTokens) * Math.ceil(hd / (SSD_CPU.outRows * lanes)), nh, nC]);
    } else {
      this.add(`${op}.output`, k('outputMain'), params, { 1: x.buffer, 4: C.buffer, 5: hp, 7: out.buffer, 8: dtA, 9: cb, 10: states }, [Math.ceil(hd / ((8 * 256) / L)), nh, nC]);
    }
  }

  /**
   * Rotary embedding (rotate-half), in place on x: [T, heads, dim], position pos0 + t, on the first `rotaryDim`
   * channels of each head (default all; fewer: partial rotary, the rest untouched).
   */
  rope(x: Act, T: number, heads: number, dim: number, theta: number, step: GPUBuffer, rotaryDim = dim): void {
    const op = 'rope';
    this.counts(op, { T, heads, dim, rotaryDim });
    if (rotaryDim % 2 !== 0 || rotaryDim > dim) throw new GpuError(`${op}: rotaryDim = ${rotaryDim} must be even and at most dim = ${dim}.`);
    const xs = this.span(op, 'x', x, T, heads * dim);
    // inv_freq as transformers computes it, in f32: 1 / theta^(2i / rotaryDim).
    const half = rotaryDim / 2;
    const inv = new Float32Array(half);
    for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / rotaryDim))));
    const table = this.own(this.gpu.buffer(4 * half, 'rope.invFreq'));
    this.gpu.write(table, inv);
    this.add(op, this.gpu.pipeline('rope', { WG: 256 }), [u(T), u(heads), u(rotaryDim), u(xs.off), u(xs.stride), u(dim)], { 1: x.buffer, 2: table, 3: step }, this.flat(Math.ceil((T * heads * half) / 256)));
  }

  /** Copies src rows [T, rowLen] into cache rows pos0..pos0+T-1 (cache: [capacity, rowLen]). */
  kvWrite(src: Act, cache: GPUBuffer, T: number, rowLen: number, step: GPUBuffer): void {
    const op = 'kvWrite';
    this.counts(op, { T, rowLen });
    const s = this.span(op, 'src', src, T, rowLen);
    this.noAlias(op, [cache], [src.buffer]);
    const capacity = Math.floor(cache.size / (4 * rowLen));
    this.add(op, this.gpu.pipeline('kvWrite', { WG: 256 }), [u(T), u(rowLen), u(s.off), u(s.stride), u(capacity)], { 1: src.buffer, 2: cache, 3: step }, this.flat(Math.ceil((T * rowLen) / 256)));
  }

  /**
   * Causal GQA over the caches: query t (at position pos0 + t) sees cache rows 0..pos0 + t.
   * q: [T, nH, d], kCache, vCache: [capacity, nKv, d], out: [T, nH * d].
   */
  attention(q: Act, kCache: GPUBuffer, vCache: GPUBuffer, out: Act, T: number, nH: number, nKv: number, d: number, scaling: number, step: GPUBuffer): void {
    const op = 'attention';
    this.counts(op, { T, nH, nKv, d });
    if (nH % nKv !== 0) throw new GpuError(`${op}: nKv = ${nKv} KV heads do not divide nH = ${nH} query heads.`);
    const qs = this.span(op, 'q', q, T, nH * d);
    const o = this.span(op, 'out', out, T, nH * d);
    this.noAlias(op, [out.buffer], [q.buffer, kCache, vCache]);
    const capacity = Math.floor(kCache.size / (4 * nKv * d));
    if (T === 1) {
      this.decodeAttention(op, q.buffer, qs.off, kCache, vCache, out.buffer, o.off, nH, nKv, d, scaling, step, capacity, 0);
      return;
    }
    if (d > 512 || d % 4 !== 0) throw new GpuError(`${op}: head dim ${d} must be a multiple of 4 and at most 512 for prefill.`);
    const params = [u(T), u(nH), u(nKv), u(qs.off), u(qs.stride), u(o.off), u(o.stride), f(scaling)];
    const bindings = { 1: q.buffer, 2: kCache, 3: vCache, 4: out.buffer, 5: step };
    const kernel = attentionKernel(this.gpu.onCpu, d);
    if (kernel === 'cpu') {
      this.add(op, this.gpu.pipeline('attentionCpu', { DH: d, LANES: GEMM_CPU.lanes }), params, bindings, [Math.ceil(T / (ATTN_CPU_QUERIES * GEMM_CPU.lanes)), nH, 1]);
      return;
    }
    if (kernel === 'tiled') {
      // 16 queries x 16 keys per workgroup of 256, the softmax in workgroup memory (kernels/attentionTiled.wgsl;
      // head dims above 128 in slices of 64 columns, kernels/attentionWide.wgsl).
      this.add(op, this.gpu.pipeline(d > 128 ? 'attentionWide' : 'attentionTiled', { DH: d }), params, bindings, [Math.ceil(T / 16), nH, 1]);
      return;
    }
    const WG = 64;
    let SPLIT = attentionSplit(T * nH, this.gpu.onCpu);
    // Key tile: K and V rows of BK keys plus the merge state must fit the adapter's workgroup memory.
    const room = this.gpu.device.limits.maxComputeWorkgroupStorageSize - 2 * 4 * WG;
    if (d <= 128) {
      const BK = [32, 16, 8].find((b) => b * d <= 2048 && 2 * b * d * 4 <= room) ?? 8;
      this.add(op, this.gpu.pipeline('attention', { DH: d, WG, SPLIT, BK }), params, bindings, [Math.ceil((T * SPLIT) / WG), nH, 1]);
      return;
    }
    // Head dims above 128 (kernels/attentionRowsWide.wgsl): tiles of 8 or 4 keys, and a split only where
    // SPLIT divides the tile and the partial rows being merged (WG / SPLIT of them) fit the tile's room.
    const BK = [8, 4].find((b) => b * d <= 2048 && 2 * b * d * 4 <= room) ?? 4;
    while (SPLIT > 1 && (BK % SPLIT !== 0 || WG / SPLIT > 2 * BK)) SPLIT /= 2;
    this.add(op, this.gpu.pipeline('attentionRowsWide', { DH: d, WG, SPLIT, BK }), params, bindings, [Math.ceil((T * SPLIT) / WG), nH, 1]);
  }

  /**
   * Decode attention (kernels/attnDecode.wgsl): one query row per head (q at qOff, [nH, d]) over cache rows
   * 0..pos0 (window 0) or, for a sliding window's ring of `window` rows, rows 0..min(pos0 + 1, window) - 1, split
   * over the keys (partial softmax per split) and merged. out at oOff, [nH * d].
   */
  private decodeAttention(op: string, q: GPUBuffer, qOff: number, kCache: GPUBuffer, vCache: GPUBuffer, out: GPUBuffer, oOff: number, nH: number, nKv: number, d: number, scaling: number, step: GPUBuffer, capacity: number, window: number): void {
    if (d % 4 !== 0 || d > 512) throw new GpuError(`${op}: head dim ${d} must be a multiple of 4 and at most 512 for decode.`);
    // kernels/attnDecode.wgsl needs d <= WG: head dims above 256 take workgroups of 512, with fewer query
    // heads per workgroup where their queries, the scores and the reduction room would overflow workgroup memory.
    const WG = d > 256 ? 512 : 256;
    const limits = this.gpu.device.limits;
    if (WG > limits.maxComputeInvocationsPerWorkgroup || WG > limits.maxComputeWorkgroupSizeX) {
      throw new GpuError(`${op}: head dim ${d} needs workgroups of ${WG} for decode; the adapter allows ${limits.maxComputeInvocationsPerWorkgroup}.`);
    }
    const rep = nH / nKv;
    let HPW = Math.min(8, rep);
    while (rep % HPW !== 0 || (WG > 256 && HPW > 1 && 4 * (HPW * d + 4096 + WG + 4 * WG) > limits.maxComputeWorkgroupStorageSize)) HPW--;
    // A split's scores sit in 4096 floats of workgroup memory (MAXK keys per head); splits: at least enough
    // for the capacity, and ~256 workgroups in all when the context is long, none shorter than one tile.
    const d4 = d / 4;
    const TPK = d4 % 4 === 0 ? 4 : d4 % 2 === 0 ? 2 : 1;
    const tile = WG / TPK;
    const MAXK = Math.floor(4096 / HPW / tile) * tile;
    const groups = nH / HPW;
    const nSplit = Math.max(Math.ceil(capacity / MAXK), Math.min(Math.ceil(256 / groups), Math.ceil(capacity / tile)));
    if (nSplit > 256) throw new GpuError(`${op}: a KV cache of ${capacity} rows is longer than decode attention supports (${256 * MAXK} with ${HPW} heads per KV head).`);
    const part = this.own(this.gpu.buffer(4 * nH * nSplit * (d + 2), 'attention.part'));
    const constants = { WG, SG: this.sg(), DH: d, HPW, TPK, MAXK, ...(window > 0 ? { WIN: window } : {}) };
    const params = [u(nH), u(nKv), u(nSplit), u(qOff), u(oOff), f(scaling)];
    this.add(`${op}.partial`, this.gpu.pipeline('attnDecode', constants, 'partial'), params, { 1: q, 2: kCache, 3: vCache, 4: part, 6: step }, [nH / HPW, nSplit, 1]);
    this.add(`${op}.combine`, this.gpu.pipeline('attnDecode', constants, 'combine'), params, { 4: part, 5: out }, [nH, 1, 1]);
  }

  /** SwiGLU on a fused projection: out[t, i] = silu(x[t, i]) * x[t, m + i]. x: [T, 2m], out: [T, m]. */
  swiglu(x: Act, out: Act, T: number, m: number): void {
    this.elementwise('swiglu', x, 2 * m, out, T, m, 1);
  }

  /** GeGLU on a fused projection: out[t, i] = gelu(x[t, i]) * x[t, m + i] (GELU with erf). x: [T, 2m], out: [T, m]. */
  geglu(x: Act, out: Act, T: number, m: number): void {
    this.elementwise('geglu', x, 2 * m, out, T, m, 1);
  }

  /** GeGLU (tanh gelu): out[t, i] = gelu_tanh(x[t, i]) * x[t, m + i]. x: [T, 2m], out: [T, m]. */
  gegluTanh(x: Act, out: Act, T: number, m: number): void {
    this.elementwise('gegluTanh', x, 2 * m, out, T, m, 1);
  }

  /** y[t, i] *= gelu_tanh(x[t, i]), both [T, m]. */
  geluMul(x: Act, y: Act, T: number, m: number): void {
    this.elementwise('geluMul', x, m, y, T, m, 1);
  }

  /** x = tanh(x / cap) * cap, [T, D] in place (logits soft cap). */
  softCap(x: Act, T: number, D: number, cap: number): void {
    this.elementwise('softCap', null, D, x, T, D, cap);
  }

  /**
   * RecurrentGemma's RG-LRU (kernels/griffin.wgsl rglru) over the conv output u [T, L] (whole rows, offset 0):
   * gates from heads of bw channels (wx, wa: [L / bw, bw, bw] as x @ W; bx, ba: [L]), param [L], state h f32 [L]
   * (carried; reset at position 0, from `step`), out [T, L] = h per token.
   */
  rglru(uAct: Act, wx: GpuWeight, bx: GpuWeight, wa: GpuWeight, ba: GpuWeight, param: GpuWeight, state: GPUBuffer, out: Act, T: number, L: number, bw: number, step: GPUBuffer): void {
    const op = 'rglru';
    this.counts(op, { T, L, bw });
    if (L % bw !== 0) throw new GpuError(`${op}: block width ${bw} does not divide L = ${L}.`);
    const fmt = wx.format;
    const ws = [this.whole(op, 'input gate', wx, L * bw), this.whole(op, 'input gate bias', bx, L), this.whole(op, 'recurrent gate', wa, L * bw), this.whole(op, 'recurrent gate bias', ba, L), this.whole(op, 'recurrent param', param, L)];
    if ([bx, wa, ba, param].some((w) => w.format !== fmt)) throw new GpuError(`${op}: the gate weights, biases and recurrent param must share one format.`);
    const us = this.span(op, 'u', uAct, T, L);
    const o = this.span(op, 'out', out, T, L);
    if (us.off !== 0 || us.stride !== L || o.off !== 0 || o.stride !== L) throw new GpuError(`${op}: u and out must be whole [T, L] rows.`);
    if (state.size < 4 * L) throw new GpuError(`${op}: state holds ${state.size} bytes; f32 [L] needs ${4 * L}.`);
    this.noAlias(op, [out.buffer, state], [uAct.buffer, ...ws]);
    this.add(op, this.gpu.pipeline('griffin', { WG: 64, WFMT: WFMT[fmt] }, 'rglru'), [u(T), u(L), u(bw), u(0), u(0), f(0)], { 1: uAct.buffer, 2: ws[0], 3: ws[1], 4: ws[2], 5: ws[3], 6: ws[4], 7: state, 8: out.buffer, 9: step }, [Math.ceil(L / 64), 1, 1]);
  }

  /**
   * Local (sliding-window) attention of RecurrentGemma: queries q [T, nH, d] at positions pos0 + t (from `step`)
   * over the chunk's k, v [T, nKv*d] (whole rows) and the rings kRing, vRing [window, nKv*d] (position p in row
   * p % window); then the chunk's last rows go into the rings. out: [T, nH*d]. Decode (T = 1) writes the ring
   * first and runs the split decode attention (kernels/attnDecode.wgsl) over it; prefill takes a workgroup per
   * (head, query) (kernels/localAttnPrefill.wgsl), then writes the ring.
   */
  localAttention(q: Act, k: Act, v: Act, kRing: GPUBuffer, vRing: GPUBuffer, out: Act, T: number, nH: number, nKv: number, d: number, window: number, scaling: number, step: GPUBuffer): void {
    const op = 'localAttention';
    this.counts(op, { T, nH, nKv, d, window });
    if (nH % nKv !== 0) throw new GpuError(`${op}: nKv = ${nKv} KV heads do not divide nH = ${nH} query heads.`);
    const kd = nKv * d;
    for (const [name, a, cols] of [['q', q, nH * d], ['k', k, kd], ['v', v, kd], ['out', out, nH * d]] as const) {
      const sp = this.span(op, name, a, T, cols);
      if (sp.off !== 0 || sp.stride !== cols) throw new GpuError(`${op}: ${name} must be whole rows.`);
    }
    if (kRing.size < 4 * window * kd || vRing.size < 4 * window * kd) throw new GpuError(`${op}: the rings need ${4 * window * kd} bytes each.`);
    this.noAlias(op, [out.buffer, kRing, vRing], [q.buffer, k.buffer, v.buffer]);
    const pipe = (entry: string) => this.gpu.pipeline('griffin', { WG: 64, DH: d }, entry);
    const params = [u(T), u(nH), u(nKv), u(window), u(d), f(scaling)];
    const ringWrite = () => this.add(`${op}.ringWrite`, pipe('ringWrite'), params, { 2: k.buffer, 3: v.buffer, 4: kRing, 5: vRing, 9: step }, [Math.ceil((Math.min(T, window) * kd) / 64), 1, 1]);
    if (T === 1) {
      // Decode: the new row goes into the ring first (over position pos0 - window, which has left the window), then
      // the split decode attention over the ring's min(pos0 + 1, window) valid rows, in parallel over the keys.
      ringWrite();
      this.decodeAttention(op, q.buffer, 0, kRing, vRing, out.buffer, 0, nH, nKv, d, scaling, step, window, window);
      return;
    }
    // Prefill: a workgroup of 256 per (head, query) over its window (kernels/localAttnPrefill.wgsl).
    if (d > 256) throw new GpuError(`${op}: head dim ${d} is more than 256 for prefill.`);
    if (T > this.gpu.device.limits.maxComputeWorkgroupsPerDimension) throw new GpuError(`${op}: a chunk of ${T} tokens is more than one dispatch takes.`);
    const prefill = this.gpu.pipeline('localAttnPrefill', { WG: 256, SG: this.sg(), DH: d });
    this.add(op, prefill, params, { 1: q.buffer, 2: k.buffer, 3: v.buffer, 4: kRing, 5: vRing, 6: out.buffer, 9: step }, [nH, T, 1]);
    ringWrite();
  }

  /** Squared ReLU: out[t, i] = max(x[t, i], 0)^2. x, out: [T, m]. */
  relu2(x: Act, out: Act, T: number, m: number): void {
    this.elementwise('relu2', x, m, out, T, m, 1);
  }

  /** y += alpha * x, both [T, D] (residual adds). */
  axpy(x: Act, y: Act, T: number, D: number, alpha: number): void {
    this.elementwise('axpy', x, D, y, T, D, alpha);
  }

  /** x *= alpha, [T, D]. */
  scale(x: Act, T: number, D: number, alpha: number): void {
    this.elementwise('scale', null, D, x, T, D, alpha);
  }

  /** dst = src, both [T, D]. */
  copy(src: Act, dst: Act, T: number, D: number): void {
    this.elementwise('copyRows', src, D, dst, T, D, 1);
  }

  /**
   * Top-k of router logits per token (ties to the lower index): experts u32 [T, k], weights f32 [T, k], the softmax
   * over the k ('softmaxOfTopK') or the k's probabilities of the softmax over all E ('topKOfSoftmax').
   */
  routerTopK(logits: Act, experts: GPUBuffer, weights: GPUBuffer, T: number, E: number, k: number, mode: RouterMode = 'softmaxOfTopK'): void {
    const op = 'routerTopK';
    this.counts(op, { T, E, k });
    if (k > 16 || k > E) throw new GpuError(`${op}: k = ${k} must be at most 16 and at most E = ${E}.`);
    const l = this.span(op, 'logits', logits, T, E);
    if (experts.size < 4 * T * k || weights.size < 4 * T * k) throw new GpuError(`${op}: experts and weights need ${4 * T * k} bytes each.`);
    this.noAlias(op, [experts, weights], [logits.buffer]);
    this.add(op, this.gpu.pipeline('moe', { WG: 256 }, 'routerTopK'), [u(T), u(E), u(k), u(l.off), u(l.stride), u(0), u(0), f(1), u(mode === 'topKOfSoftmax' ? 1 : 0)], { 1: logits.buffer, 2: experts, 3: weights }, [Math.ceil(T / 64), 1, 1]);
  }

  /**
   * Expert products: out row (t, j) = W[experts[t, j]] x_row, with x_row = x[t] ([T, K] input) or x[t*k + j]
   * (perSlotInput: [T*k, K], the down projection). w: [E, N, K], out: [T*k, N].
   */
  moeLinear(x: Act, w: GpuWeight, experts: GPUBuffer, out: Act, T: number, k: number, K: number, N: number, opts: { perSlotInput?: boolean } = {}): void {
    const op = 'moeLinear';
    this.counts(op, { T, k, K, N });
    this.shape(op, 'w', w, [undefined, N, K]);
    if (T * k > 65535) throw new GpuError(`${op}: T*k = ${T * k} slots exceed one dispatch (65535); use smaller batches.`);
    if (experts.size < 4 * T * k) throw new GpuError(`${op}: experts holds ${experts.size / 4} ids, fewer than T*k = ${T * k}.`);
    const xs = this.span(op, 'x', x, opts.perSlotInput ? T * k : T, K);
    const o = this.span(op, 'out', out, T * k, N);
    this.noAlias(op, [out.buffer], [x.buffer, experts, ...w.parts.map((p) => p.buffer)]);
    const g = this.gemvVariant(w.format, 0, K, xs.off, xs.stride, 1, 0, 0, true);
    const rpw = g.constants.WG / g.constants.TPR;
    for (const part of w.parts) {
      this.add(op, g.pipeline(this.gpu), [u(K), u(N), u(0), u(xs.off), u(xs.stride), u(o.off), u(o.stride), f(1), u(0), u(0), u(opts.perSlotInput ? 2 : 1), u(k), u(part.rowStart), u(part.rows), f(0), u(0), u(0), u(0), u(0), u(0xffffffff), u(part.scaleOffset)], this.gemvBindings({ 1: x.buffer, 2: part.buffer, 3: this.gpu.zeroBuffer(), 4: experts, 5: out.buffer, 6: this.gpu.zeroBuffer(), 7: this.gpu.zeroBuffer(), 8: this.stepDummy() }), [Math.ceil(N / rpw), T * k, 1]);
    }
  }

  /**
   * The slots (token t, choice j) = t*k + j sorted by their expert into tiles of 64 rows (moe.wgsl group, one
   * workgroup), for moeGemm. experts: u32 [slots], ids < E.
   */
  moeGroup(experts: GPUBuffer, slots: number, E: number): MoeGrouping {
    const op = 'moeGroup';
    this.counts(op, { slots, E });
    if (E > 1024) throw new GpuError(`${op}: ${E} experts; prefill grouping supports up to 1024.`);
    if (experts.size < 4 * slots) throw new GpuError(`${op}: experts holds ${experts.size / 4} ids, fewer than ${slots} slots.`);
    const tiles = Math.ceil(slots / 64) + E; // each expert's rows start a tile: at most one partial tile each
    const rowMap = this.own(this.gpu.buffer(4 * 64 * tiles, 'moe.rowMap'));
    const tileExpert = this.own(this.gpu.buffer(4 * tiles, 'moe.tileExpert'));
    this.add(op, this.gpu.pipeline('moe', { WG: 256 }, 'group'), [u(slots), u(E), u(0), u(tiles), u(0), u(0), u(0), f(1), u(0)], { 2: experts, 6: rowMap, 7: tileExpert }, [1, 1, 1]);
    return { rowMap, tileExpert, tiles, slots, experts };
  }

  /**
   * Expert products for a prefill chunk, as moeLinear computes them (out row s = W[experts[s]] x_row), over the
   * slots moeGroup sorted by expert: a tiled GEMM per tile of one expert's rows (gemm.wgsl MOE), so each expert's
   * weights are read once per 64 of its rows instead of once per slot. Shapes moeLinear's; unaligned ones take it.
   */
  moeGemm(x: Act, w: GpuWeight, g: MoeGrouping, out: Act, T: number, k: number, K: number, N: number, opts: { perSlotInput?: boolean } = {}): void {
    const op = 'moeGemm';
    this.counts(op, { T, k, K, N });
    this.shape(op, 'w', w, [undefined, N, K]);
    if (g.slots !== T * k) throw new GpuError(`${op}: the grouping holds ${g.slots} slots, not T*k = ${T * k}.`);
    const xs = this.span(op, 'x', x, opts.perSlotInput ? T * k : T, K);
    const o = this.span(op, 'out', out, T * k, N);
    this.noAlias(op, [out.buffer], [x.buffer, g.rowMap, g.tileExpert, ...w.parts.map((p) => p.buffer)]);
    const tiled = K % (w.format === 'f32' ? 4 : 8) === 0 && xs.off % 4 === 0 && xs.stride % 4 === 0;
    if (!tiled) {
      this.moeLinear(x, w, g.experts, out, T, k, K, N, opts);
      return;
    }
    const pipeline = this.gpu.pipeline('gemm', { WFMT: WFMT[w.format], BFMT: 0, MOE: 1 }, 'main');
    for (const part of w.parts) {
      const params = [u(64 * g.tiles), u(K), u(N), u(0), u(xs.off), u(xs.stride), u(o.off), u(o.stride), f(1), u(0), u(0), u(part.scaleOffset), u(opts.perSlotInput ? 2 : 1), u(k), u(part.rowStart), u(part.rows)];
      this.add(op, pipeline, params, { 1: x.buffer, 2: part.buffer, 3: this.gpu.zeroBuffer(), 4: out.buffer, 5: g.rowMap, 6: g.tileExpert }, [Math.ceil(N / 64), g.tiles, 1]);
    }
  }

  /** out[t] = (accumulate ? out[t] : 0) + alpha * sum_j weights[t, j] y[t*k + j]. y: [T*k, D], out: [T, D]. */
  moeCombine(y: Act, weights: GPUBuffer, out: Act, T: number, k: number, D: number, alpha: number, accumulate: boolean): void {
    const op = 'moeCombine';
    this.counts(op, { T, k, D });
    const ys = this.span(op, 'y', y, T * k, D);
    const o = this.span(op, 'out', out, T, D);
    if (weights.size < 4 * T * k) throw new GpuError(`${op}: weights holds ${weights.size / 4} values, fewer than T*k = ${T * k}.`);
    this.noAlias(op, [out.buffer], [y.buffer, weights]);
    this.add(op, this.gpu.pipeline('moe', { WG: 256 }, 'combine'), [u(T), u(D), u(k), u(ys.off), u(ys.stride), u(o.off), u(o.stride), f(alpha), u(accumulate ? 1 : 0)], { 1: y.buffer, 4: weights, 5: out.buffer }, this.flat(Math.ceil((T * D) / 256)));
  }

  /** outId[0] = argmax of logits [V] (ties to the lower index). `step` is needed only with a ring. */
  argmax(logits: Act, outId: GPUBuffer, V: number, opts: RingOption & { step?: GPUBuffer } = {}): void {
    this.chooseToken('argmax', logits, outId, V, 1, 1, opts.step ?? null, opts.ring);
  }

  /**
   * outId[0] = a token drawn from softmax(logits / temperature) cut to the top-p nucleus, with randomness from
   * (step.seed, step.pos0); temperature <= 0 is argmax. logits: [V].
   */
  sample(logits: Act, outId: GPUBuffer, V: number, opts: SampleOptions & RingOption, step: GPUBuffer): void {
    if (!(opts.topP > 0)) throw new GpuError(`sample: topP = ${opts.topP} must be in (0, 1].`);
    if (opts.temperature <= 0) this.chooseToken('argmax', logits, outId, V, 1, 1, step, opts.ring);
    else this.chooseToken('sample', logits, outId, V, 1 / opts.temperature, opts.topP, step, opts.ring);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Helpers

  /**
   * Records the token choice (sample.wgsl): the logits are cut into slices of >= 1024, one workgroup each;
   * argmax is 2 dispatches, sampling 3 (top_p = 1) or 9 (top_p < 1).
   */
  private chooseToken(kind: 'argmax' | 'sample', logits: Act, outId: GPUBuffer, V: number, invTemp: number, topP: number, step: GPUBuffer | null, ring?: { buffer: GPUBuffer; capacity: number }): void {
    const op = kind;
    this.counts(op, { V });
    const l = this.span(op, 'logits', logits, 1, V);
    if (outId.size < 4) throw new GpuError(`${op}: outId must hold one u32.`);
    if (ring && (!isCount(ring.capacity) || ring.buffer.size < 4 * ring.capacity)) throw new GpuError(`${op}: the ring buffer must hold ring.capacity u32.`);
    if (ring && !step) throw new GpuError(`${op}: writing to a ring needs the step buffer (its slot is pos0 + nTokens).`);
    this.noAlias(op, [outId, ...(ring ? [ring.buffer] : [])], [logits.buffer]);
    const WG = 256;
    const nwg = Math.min(WG, Math.ceil(V / 1024));
    const slice = Math.ceil(V / nwg);
    const parts = this.own(this.gpu.buffer(4 * 2 * nwg * 16, `${op}.parts`));
    const state = this.own(this.gpu.buffer(32, `${op}.state`));
    const stepBuf = step ?? this.stepDummy();
    // The bindings each entry point uses (its 'auto' layout has no others).
    const bindings: Record<string, Record<number, GPUBuffer>> = {
      argmaxPart: { 1: logits.buffer, 5: parts },
      maxPart: { 1: logits.buffer, 5: parts },
      massPart: { 1: logits.buffer, 5: parts, 6: state },
      gumbelPart: { 1: logits.buffer, 4: stepBuf, 5: parts, 6: state },
      pick: { 2: outId, 3: ring?.buffer ?? this.ringDummy(), 4: stepBuf, 5: parts },
    };
    const constants = { WG, SG: this.sg() };
    const entries = kind === 'argmax' ? ['argmaxPart'] : ['maxPart', ...(topP < 1 ? Array(6).fill('massPart') : []), 'gumbelPart'];
    [...entries, 'pick'].forEach((entry, seq) => {
      const params = [u(V), u(l.off), f(invTemp), f(topP), u(ring?.capacity ?? 1), u(ring ? 1 : 0), u(nwg), u(slice), u(seq)];
      this.add(`${op}.${entry}`, this.gpu.pipeline('sample', constants, entry), params, bindings[entry], [entry === 'pick' ? 1 : nwg, 1, 1]);
    });
  }

  private elementwise(entry: string, a: Act | null, aRow: number, b: Act, T: number, D: number, alpha: number): void {
    const op = entry === 'copyRows' ? 'copy' : entry;
    this.counts(op, { T, D });
    const as = a ? this.span(op, 'input', a, T, aRow) : { off: 0, stride: 0 };
    const bs = this.span(op, 'output', b, T, D);
    if (a) this.noAlias(op, [b.buffer], [a.buffer]);
    const bind: Record<number, GPUBuffer> = { 2: b.buffer };
    if (a) bind[1] = a.buffer;
    this.add(op, this.gpu.pipeline('elementwise', { WG: 256 }, entry), [u(T), u(D), u(as.off), u(as.stride), u(bs.off), u(bs.stride), f(alpha)], bind, this.flat(Math.ceil((T * D) / 256)));
  }

  /** The GEMV entry point and threads per row for a weight format and shape (IN: input transform, gemv.wgsl). */
  private gemvVariant(format: GpuWeight['format'], bfmt: number, K: number, xOff: number, xStride: number, T: number, IN: number, nfmt: number, aligned: boolean, convK = 0): { constants: Record<string, number> & { TPR: number; WG: number }; pipeline: (gpu: Gpu) => GPUComputePipeline } {
    // Values per load (gemv.wgsl): a vec4<u32> of f32, 16-bit or q8 values; one word of q4.
    const per = format === 'f32' ? 4 : format === 'q8' ? 16 : 8;
    const vec = aligned && K % (isQuantized(format) ? 32 : per) === 0 && xOff % 4 === 0 && xStride % 4 === 0;
    const perRow = vec ? K / per : K; // loads per weight row
    // About four loads per lane (measured best on the H100: 32 lanes for K = 768, 64 for K = 1536..2048). On a CPU
    // adapter a lane per row in workgroups of one SIMD batch (rowWG): the x values are then the same in every
    // lane (one scalar load each), each lane's weight row a gather, and no reduction across lanes.
    // SIDEWINDER_GEMV_CPU=0 keeps the GPU shape there (tests, benchmarks).
    const cpuShape = this.gpu.onCpu && process.env.SIDEWINDER_GEMV_CPU !== '0';
    const TPR = cpuShape ? 1 : Math.min(256, Math.max(this.sg(), 8, pow2ceil(Math.ceil(perRow / 4))));
    const WG = cpuShape ? this.rowWG() : 256;
    const constants = { WG, TPR, SG: this.sg(), TT: T, WFMT: WFMT[format], BFMT: bfmt, IN, NFMT: nfmt, ...(convK ? { CONV: 1, CK: convK } : {}) };
    return { constants, pipeline: (gpu: Gpu) => gpu.pipeline('gemv', constants, vec ? 'main' : 'scalar') };
  }

  /** (A, dt_bias, D) per head as f32 vec4s, computed now by a one-off dispatch. */
  private headParams(aLog: GpuWeight, dtBias: GpuWeight, D: GpuWeight, nh: number): GPUBuffer {
    const op = 'ssmScan';
    const a = this.whole(op, 'aLog', aLog, nh);
    const t = this.whole(op, 'dtBias', dtBias, nh);
    const d = this.whole(op, 'D', D, nh);
    const hp = this.own(this.gpu.buffer(16 * nh, 'ssm.heads'));
    const pipeline = this.gpu.pipeline('ssmHeads', { AFMT: WFMT[aLog.format], TFMT: WFMT[dtBias.format], DFMT: WFMT[D.format] });
    this.runOnce(pipeline, 'ssm.heads.params', new Uint32Array([nh, 0, 0, 0]), { 1: a, 2: t, 3: d, 4: hp }, Math.ceil(nh / 64));
    return hp;
  }

  /**
   * Mamba-1's selective scan (gpu/mamba1.ts selectiveScanPlan): x, dtRaw (dt_proj without its bias) [T, I];
   * B, C [T, N]; cp: selectiveScanConstants(); state f32 [I, N], carried; out [T, I], times silu(z) with opts.z.
   */
  selectiveScan(x: Act, dtRaw: Act, B: Act, C: Act, cp: GPUBuffer, state: GPUBuffer, out: Act, s: SelectiveScanShape, opts: SelectiveScanOptions = {}): void {
    this.addPlan(selectiveScanPlan(this.gpu, x, dtRaw, B, C, cp, state, out, s, opts));
  }

  /** Falcon-Mamba's weightless RMS norms of x_proj's output (dt_low | B | C) [T, R + 2N], in place. */
  falconNorms(xdbc: Act, T: number, R: number, N: number, eps: number): void {
    this.addPlan(falconNormPlan(this.gpu, xdbc, T, R, N, eps));
  }

  private addPlan(p: DispatchPlan): void {
    this.add(p.label, p.pipeline, p.params, p.bindings, p.grid);
  }

  /** Records one dispatch: packs its Params into a uniform slab and makes its bind group. */
  private add(label: string, pipeline: GPUComputePipeline, params: Field[], bindings: Record<number, GPUBuffer>, grid: number[]): void {
    this.checkAlive();
    const maxDim = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    const g: [number, number, number] = [grid[0], grid[1] ?? 1, grid[2] ?? 1];
    if (g.some((n) => !Number.isInteger(n) || n < 1 || n > maxDim)) throw new GpuError(`${label}: dispatch grid [${g}] is outside 1..${maxDim} per dimension.`);
    if (4 * params.length > PARAMS_BYTES) throw new GpuError(`${label}: Params has ${params.length} fields, more than ${PARAMS_BYTES / 4}.`);
    const data = new ArrayBuffer(Math.max(16, Math.ceil(params.length / 4) * 16));
    const dv = new DataView(data);
    params.forEach(([kind, v], i) => {
      if (kind === 'u') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new GpuError(`${label}: Params field ${i} = ${v} is not a u32.`);
        dv.setUint32(4 * i, v, true);
      } else dv.setFloat32(4 * i, v, true);
    });
    if (!this.slab || this.slabUsed + this.align > SLAB_BYTES) {
      this.slab = this.own(this.gpu.buffer(SLAB_BYTES, 'params', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST));
      this.slabUsed = 0;
    }
    const offset = this.slabUsed;
    this.slabUsed += this.align;
    this.gpu.write(this.slab, new Uint8Array(data), offset);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.slab, offset, size: data.byteLength } }];
    for (const [b, buffer] of Object.entries(bindings)) entries.push({ binding: Number(b), resource: { buffer } });
    const bindGroup = this.gpu.scoped(label, () => this.gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries }));
    this.dispatches.push({ label, pipeline, bindGroup, grid: g });
  }

  /** A 1-D count of workgroups as a grid within the per-dimension limit (kernels flatten x + y * nx). */
  private flat(n: number): [number, number, number] {
    const max = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    const m = Math.max(1, n);
    return m <= max ? [m, 1, 1] : [max, Math.ceil(m / max), 1];
  }

  private sg(): number {
    return this.gpu.hasSubgroups ? this.gpu.subgroupSize : 1;
  }

  /**
   * Workgroup size of the kernels that reduce over a row (the norms): 256 on a GPU; on a CPU adapter one SIMD
   * batch (8 lanes, or the subgroup if wider), whose barriers cost nothing, where 256 invocations are 32 batches
   * switching at every barrier (the bundled model's norms on lavapipe: 571 -> 101 ms a 2,048-token chunk).
   */
  private rowWG(): number {
    return this.gpu.onCpu ? Math.max(8, this.sg()) : 256;
  }

  private own(b: GPUBuffer): GPUBuffer {
    this.owned.push(b);
    return b;
  }

  /** A GEMV's bindings plus, on GEMV_CONV devices, the conv epilogue's (placeholders when it has none). */
  private gemvBindings(bind: Record<number, GPUBuffer>, conv?: LinearOptions['conv']): Record<number, GPUBuffer> {
    return this.gpu.gemvConv ? { ...bind, 9: conv?.wb ?? this.gpu.zeroBuffer(), 10: conv?.state ?? this.ringDummy() } : bind;
  }

  private stepDummy(): GPUBuffer {
    if (!this.dummyStep) this.dummyStep = this.own(this.gpu.buffer(16, 'step.unused', GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST));
    return this.dummyStep;
  }

  private ringDummy(): GPUBuffer {
    if (!this.dummyRing) this.dummyRing = this.own(this.gpu.buffer(16, 'ring.unused'));
    return this.dummyRing;
  }

  private checkAlive(): void {
    if (this.destroyed) throw new GpuError('this CommandList was destroyed.');
  }

  private counts(op: string, sizes: Record<string, number>): void {
    for (const [k, v] of Object.entries(sizes)) if (!isCount(v)) throw new GpuError(`${op}: ${k} = ${v} must be a positive integer.`);
  }

  /** Offset and stride of an Act holding `rows` rows of `cols` elements, checked against its buffer. */
  private span(op: string, name: string, a: Act, rows: number, cols: number): { off: number; stride: number } {
    const off = a.offset ?? 0;
    const stride = a.stride ?? cols;
    if (!Number.isInteger(off) || off < 0 || !Number.isInteger(stride) || stride < cols) {
      throw new GpuError(`${op}: ${name} has offset ${off} and stride ${stride}; both must be integers, stride >= ${cols}.`);
    }
    const end = 4 * (off + (rows - 1) * stride + cols);
    if (end > a.buffer.size) throw new GpuError(`${op}: ${name} [${rows}, ${cols}] (offset ${off}, stride ${stride}) ends at byte ${end}, past its ${a.buffer.size}-byte buffer '${a.buffer.label}'.`);
    return { off, stride };
  }

  /** A weight that must be in one part, with `numel` elements. */
  private whole(op: string, name: string, w: GpuWeight, numel: number): GPUBuffer {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (n !== numel) throw new GpuError(`${op}: ${name} has shape [${w.shape}] (${n} values), ${numel} expected.`);
    if (w.parts.length !== 1) throw new GpuError(`${op}: ${name} is split in ${w.parts.length} parts; it must fit one binding.`);
    if (isQuantized(w.format)) throw new GpuError(`${op}: ${name} is ${w.format}-quantized; only matrices of linear layers and the embedding may be.`);
    return w.parts[0].buffer;
  }

  /** Checks a weight's shape (undefined: any) and its parts. */
  private shape(op: string, name: string, w: GpuWeight, dims: (number | undefined)[]): void {
    const ok = w.shape.length === dims.length && dims.every((d, i) => d === undefined || w.shape[i] === d);
    if (!ok) throw new GpuError(`${op}: ${name} has shape [${w.shape}], [${dims.map((d) => d ?? '*')}] expected.`);
    let next = 0;
    for (const p of w.parts) {
      if (p.rowStart !== next || p.rows < 1) throw new GpuError(`${op}: ${name}'s parts do not tile its rows.`);
      next += p.rows;
    }
    if (next !== w.shape[0]) throw new GpuError(`${op}: ${name}'s parts cover ${next} of ${w.shape[0]} rows.`);
  }

  /** A buffer written by a dispatch must not be bound a second time in it (WebGPU forbids the aliasing). */
  private noAlias(op: string, writes: GPUBuffer[], reads: GPUBuffer[]): void {
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      if (reads.includes(w) || writes.indexOf(w) !== i) {
        throw new GpuError(`${op}: buffer '${w.label}' is both written and read (or written twice); use a separate output buffer.`);
      }
    }
  }
}

/** kernels/gemmCpu.wgsl's shape: a workgroup of `lanes` invocations (lavapipe's 8 f32 SIMD lanes), `tokens`
 * rows of x a lane, `cols` output columns a workgroup. */
export const GEMM_CPU = { lanes: 8, tokens: 3, cols: 8 };
/** Queries a lane in kernels/attentionCpu.wgsl (its TQ). */
const ATTN_CPU_QUERIES = 2;
/** The CPU adapter's SSD kernels (kernels/ssdChunkScan.wgsl): chunkStateCpu's rows a workgroup (SP) and columns a
 * lane (SN); outputMainCpu's tokens a workgroup (OT) and rows a lane (OP). */
const SSD_CPU = { stateRows: 8, stateCols: 2, outTokens: 2, outRows: 8 };

/**
 * Which prefill GEMM runs. gemm.wgsl 'main' (64 x 64 tiles staged in workgroup memory, vec4 loads) needs
 * K % 8 == 0 (K % 4 for f32 weights) and x offset / stride % 4 == 0; 'generic' takes any shape. On a CPU
 * adapter 'cpu' (kernels/gemmCpu.wgsl: a lane per token, a workgroup's columns shared by its lanes, no workgroup
 * memory) where K % 32 == 0 and the weights are 16-bit or quantized: at the bundled model's shapes on lavapipe
 * (2-core EPYC) 3.4x main with q4 weights, 2.9x q8, 1.6x bf16; with f32 weights the two tie (8 scalar loads per
 * 8 values there), so f32 keeps main. SIDEWINDER_GEMM_KERNEL=cpu|main|generic fixes it where the shape allows
 * (tests, benchmarks).
 */
export function gemmKernel(format: WFormat, K: number, xOff: number, xStride: number, onCpu = false): 'cpu' | 'main' | 'generic' {
  const vec4 = xOff % 4 === 0 && xStride % 4 === 0;
  const mainFits = vec4 && K % (format === 'f32' ? 4 : 8) === 0;
  const cpuFits = vec4 && K % 32 === 0;
  const forced = process.env.SIDEWINDER_GEMM_KERNEL;
  if (forced === 'generic') return 'generic';
  if (forced === 'cpu' && cpuFits) return 'cpu';
  if (forced === 'main' && mainFits) return 'main';
  if (onCpu && cpuFits && format !== 'f32' && !forced) return 'cpu';
  return mainFits ? 'main' : 'generic';
}

/**
 * Which prefill attention kernel runs. On a CPU adapter 'cpu' (kernels/attentionCpu.wgsl: ATTN_CPU_QUERIES
 * queries a SIMD lane, K and V rows read straight from the caches by all lanes at once, no workgroup memory) for
 * head dims up to 128: at the bundled model on lavapipe (2-core EPYC) a 2,048-token chunk's two attention layers
 * took 2.4 s against 2.9 s for 'rows' at position 4,096, 3.9 s against 4.7 s at 6,144 (one query a lane: 3.8 s;
 * four: 2.5 s); wider heads take 'rows' there. 'rows' (kernels/attention.wgsl, one query per invocation with its
 * softmax state and output row in registers) is 3x faster than 'tiled' (kernels/attentionTiled.wgsl) on a CPU
 * adapter (lavapipe, tiny shape), but slower on a GPU: over 1M tokens of ingest on an H200 (350m shape, chunk
 * 8192) the four attention layers took ~52 s of GPU time with 'rows' (the same with its private arrays sized
 * for head dim 64 instead of 128) and ~14 s with 'tiled' (ingest 110 s -> 67 s). So GPUs take 'tiled'.
 * SIDEWINDER_ATTN_KERNEL=cpu|rows|tiled fixes it (benchmarks, tests).
 */
export function attentionKernel(onCpu = false, headDim = 64): 'cpu' | 'rows' | 'tiled' {
  const forced = process.env.SIDEWINDER_ATTN_KERNEL;
  if (forced === 'cpu' && headDim <= 128) return 'cpu';
  if (forced === 'rows' || forced === 'tiled') return forced;
  if (onCpu && headDim <= 128) return 'cpu';
  return onCpu ? 'rows' : 'tiled';
}

/**
 * Invocations per query in the 'rows' prefill attention kernel (kernels/attention.wgsl; GPUs run it only when
 * SIDEWINDER_ATTN_KERNEL=rows): with few queries x heads, several invocations share a query (each takes part of
 * every key tile) so that enough of them run at once.
 * A CPU adapter has few threads to fill and pays for the extra staging and merging (lavapipe, tiny shape:
 * 1 is 1.5x faster than 4), so it takes 1. SIDEWINDER_ATTN_SPLIT=1|2|4 fixes it (benchmarks).
 */
export function attentionSplit(queryRows: number, onCpu = false): 1 | 2 | 4 {
  const forced = Number(process.env.SIDEWINDER_ATTN_SPLIT);
  if (forced === 1 || forced === 2 || forced === 4) return forced;
  if (onCpu) return 1;
  return queryRows >= 65536 ? 1 : queryRows >= 32768 ? 2 : 4;
}
