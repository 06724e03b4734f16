// Random weights at a model's shape, built directly on the GPU for the benchmarks (bench/bench.ts), and what one
// token costs with them: the weight bytes decode reads, the matmul FLOPs, the KV bytes per context position.

import { type ModelConfig } from '../src/engine/config';
import { Gpu, type GpuWeight } from '../src/engine/gpu/device';
import { loadWeights, type ModelWeights, type LayerWeights, type TensorRole } from '../src/engine/models/weights';
import { f32ToF16 } from '../src/engine/safetensors';
import { groupWords, quantize, type QuantBits, type QuantizedWeight } from '../src/engine/quant';
import { quantBitsFor } from '../src/engine/quantLoad';

export type Dtype = 'F32' | 'F16' | 'BF16';

/** Values past the first TILE of a random tensor repeat them. */
export const TILE = 1 << 20;

/** Deterministic pseudo-random weights; norms near 1, Mamba A_log/dt_bias/D in their trained ranges. */
export function randomTensor(name: string, shape: number[], dtype: Dtype, seed: number, count?: number): Uint8Array {
  // count: only the first `count` values (uploadRandom draws one period of them and repeats it on the GPU)
  const total = count ?? shape.reduce((a, b) => a * b, 1);
  // Values past the first 2^20 repeat them (speed does not depend on the values; a 350m shape's 340M values
  // took ~45 s to draw one by one on the GPU machine's host).
  const n = Math.min(total, TILE);
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5; // [-0.5, 0.5)
  };
  const fan = shape.length >= 2 ? shape[shape.length - 1] : 1;
  const value = (): number => {
    if (name.endsWith('norm.weight') || name.endsWith('layernorm.weight')) return 1 + 0.1 * next();
    if (name.endsWith('A_log')) return Math.log(1 + 15 * (next() + 0.5));
    if (name.endsWith('dt_bias')) return -4 + next();
    if (name.endsWith('.D')) return 1 + next();
    return (2 * next()) / Math.sqrt(fan);
  };
  const tile = <A extends Float32Array | Uint16Array>(a: A): Uint8Array => {
    for (let i = n; i < total; i += n) a.copyWithin(i, 0, Math.min(n, total - i));
    return new Uint8Array(a.buffer);
  };
  if (dtype === 'F32') {
    const a = new Float32Array(total);
    for (let i = 0; i < n; i++) a[i] = value();
    return tile(a);
  }
  const u = new Uint16Array(total);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    f[0] = value();
    if (dtype === 'BF16') u[i] = bits[0] >>> 16;
    else u[i] = f32ToF16(f[0]);
  }
  return tile(u);
}


/**
 * The checkpoint random weights stand in for: none of the optional or alternative tensors (so every view is made
 * from the one canonical tensor: a shared block loaded once for all its uses), but an lm_head where it is untied.
 */
export const RANDOM_STORE = { has: (name: string) => name === 'lm_head.weight' };

/** The model's weights at `cfg`'s shape, random (randomTensor, seeded 1, 2, ... in load order), on the GPU. */
export function randomWeights(gpu: Gpu, cfg: ModelConfig, dtype: Dtype): ModelWeights<GpuWeight> {
  let seed = 1;
  const sources: GPUBuffer[] = [];
  const w = loadWeights(cfg, RANDOM_STORE, (name, shape, role) => noted(uploadRandom(gpu, name, shape, dtype, seed++, sources), name, role));
  // The tiles' sources, once the copies from them have run (queue order: freed after this submit's work).
  void gpu.device.queue.onSubmittedWorkDone().then(() => sources.forEach((b) => gpu.free(b)));
  return w;
}

/**
 * randomTensor(name, shape, dtype, seed) on the GPU, the same bytes in the same parts as uploadWeight makes, but
 * a large tensor is not drawn in full on the host: one period of its values (TILE) goes up, repeated a few times,
 * and GPU copies repeat it over the tensor (a 7B shape's 14 GB would take the host tens of seconds to fill and
 * write). Small tensors, and rows whose byte offsets are not 4-aligned (copy alignment), go through uploadWeight.
 */
export function uploadRandom(gpu: Gpu, name: string, shape: number[], dtype: Dtype, seed: number, sources: GPUBuffer[]): GpuWeight {
  const total = shape.reduce((a, b) => a * b, 1);
  const eb = dtype === 'F32' ? 4 : 2;
  const rowsTotal = shape.length ? shape[0] : 1;
  const rowBytes = (total / rowsTotal) * eb;
  const period = TILE * eb;
  if (total <= 8 * TILE || rowBytes % 4 !== 0) return gpu.uploadWeight(name, randomTensor(name, shape, dtype, seed), dtype, shape);
  const rowsPerPart = Math.min(Math.floor(gpu.maxBinding / rowBytes), rowsTotal);
  if (rowsPerPart < 1) throw new Error(`weight '${name}': one row (${rowBytes} bytes) is larger than the binding limit ${gpu.maxBinding}.`);
  // The source: SPAN periods to copy from at any phase, plus one.
  const SPAN = 4;
  const tile = randomTensor(name, shape, dtype, seed, TILE);
  const host = new Uint8Array((SPAN + 1) * period);
  for (let i = 0; i <= SPAN; i++) host.set(tile, i * period);
  const src = gpu.buffer(host.byteLength, `${name}.tile`);
  gpu.write(src, host);
  sources.push(src);
  const enc = gpu.device.createCommandEncoder();
  const parts: GpuWeight['parts'] = [];
  for (let r0 = 0; r0 < rowsTotal; r0 += rowsPerPart) {
    const rows = Math.min(rowsPerPart, rowsTotal - r0);
    const bytes = rows * rowBytes;
    const buffer = gpu.buffer(Math.ceil(bytes / 16) * 16, rowsTotal > rowsPerPart ? `${name}[${parts.length}]` : name);
    const phase = (r0 * rowBytes) % period;
    for (let o = 0; o < bytes; o += SPAN * period) enc.copyBufferToBuffer(src, phase, buffer, o, Math.min(SPAN * period, bytes - o));
    parts.push({ buffer, rowStart: r0, rows, scaleOffset: 0 });
  }
  gpu.device.queue.submit([enc.finish()]);
  return { format: dtype.toLowerCase() as GpuWeight['format'], shape: [...shape], parts, bytes: total * eb };
}

/** Each uploaded weight's checkpoint name and role, for counting the matmul FLOPs (perTokenCounts). */
export const weightInfo = new WeakMap<GpuWeight, { name: string; role: TensorRole }>();
export function noted(w: GpuWeight, name: string, role: TensorRole): GpuWeight {
  weightInfo.set(w, { name, role });
  return w;
}

/** The same random weights quantized as `--quant` loads a float checkpoint (src/engine/quantLoad.ts quantBitsFor). */
export function randomQuantizedWeights(gpu: Gpu, cfg: ModelConfig, mode: 'q4' | 'q8'): ModelWeights<GpuWeight> {
  let seed = 1;
  return loadWeights(cfg, RANDOM_STORE, (name, shape, role) => {
    const bits = quantBitsFor(mode, role);
    if (bits === null || shape.length < 2) return noted(gpu.uploadWeight(name, randomTensor(name, shape, 'F32', seed++), 'F32', shape), name, role);
    return noted(gpu.uploadQuantized(name, randomQuantized(name, shape, bits, seed++), shape), name, role);
  });
}

/** Random weights quantized: about 2^20 values quantized, their planes repeated over the rows (as randomTensor repeats values). */
export function randomQuantized(name: string, shape: number[], bits: QuantBits, seed: number): QuantizedWeight {
  const K = shape[shape.length - 1];
  const rows = shape.reduce((a, b) => a * b, 1) / K;
  const rb = Math.max(1, Math.min(rows, Math.floor((1 << 20) / K)));
  const block = randomTensor(name, [rb, K], 'F32', seed);
  const qb = quantize(new Float32Array(block.buffer, block.byteOffset, rb * K), rb, K, bits);
  const G = Math.ceil(K / 32);
  const words = G * groupWords(bits);
  const data = new Uint32Array(rows * words);
  const halves = new Uint16Array(2 * Math.ceil((rows * G) / 2));
  const qh = new Uint16Array(qb.scales.buffer, 0, rb * G);
  for (let r = 0; r < rows; r += rb) {
    const n = Math.min(rb, rows - r);
    data.set(qb.data.subarray(0, n * words), r * words);
    halves.set(qh.subarray(0, n * G), r * G);
  }
  return { bits, rows, cols: K, data, scales: new Uint32Array(halves.buffer) };
}


/** A weight format the decode/prefill bench runs: a float dtype, or q8 / q4 (group-wise quantized). */
export type BenchFormat = 'bf16' | 'f16' | 'f32' | 'q8' | 'q4';

export function benchWeights(gpu: Gpu, cfg: ModelConfig, format: BenchFormat): ModelWeights<GpuWeight> {
  if (format === 'q8' || format === 'q4') return randomQuantizedWeights(gpu, cfg, format);
  return randomWeights(gpu, cfg, format.toUpperCase() as Dtype);
}

/** The bytes of all the weights as stored (each shared tensor once). */
export function weightBytes(w: ModelWeights<GpuWeight>): number {
  const seen = new Set<GpuWeight>();
  let total = 0;
  const visit = (t: unknown): void => {
    if (!t || typeof t !== 'object') return;
    if ('parts' in (t as object) && 'format' in (t as object)) {
      const g = t as GpuWeight;
      if (!seen.has(g)) {
        seen.add(g);
        total += g.bytes;
      }
      return;
    }
    for (const v of Object.values(t as object)) visit(v);
  };
  visit(w);
  return total;
}

/** A weight that is a matrix of a matmul (a linear layer, the RG-LRU's block-diagonal gates, a router, Mamba-1's dt_proj). */
export function isMatmul(w: GpuWeight): boolean {
  const info = weightInfo.get(w);
  if (!info || w.shape.length < 2) return false;
  if (info.role === 'matrix') return true;
  return /(\.dt_proj\.weight|\.dt_proj_weight\.\d+|router(\.layer)?\.weight|_gate_weight)$/.test(info.name);
}

/**
 * What one token costs, from the weights as loaded: the weight bytes decode reads and the matmul multiply-adds
 * (2 FLOPs each, the dominant prefill cost), layer by layer. A Zamba2 / Zamba shared block counts at each of
 * its uses (each hybrid layer runs it: its weights are read and multiplied again); an MoE's experts count
 * top-k of E (a token reads and runs k of them); the embedding one row (unless tied: lm_head reads it in full).
 * Also the KV bytes per context position: a K and a V row per attention layer, Falcon-H1 parallel layer and
 * shared-block use ('full', unbounded), and per RecurrentGemma local-attention layer ('local', up to the window).
 */
export function perTokenCounts(cfg: ModelConfig, w: ModelWeights<GpuWeight>): { decodeWeightBytes: number; matmulFlops: number; kvFullBytes: number; kvLocalBytes: number; kvWindow: number } {
  let bytes = 0;
  let macs = 0;
  const numel = (g: GpuWeight) => g.shape.reduce((a, b) => a * b, 1);
  const ff = cfg.feedForward;
  for (const layer of w.layers as LayerWeights<GpuWeight>[]) {
    const seen = new Set<GpuWeight>();
    const share = new Map<GpuWeight, number>();
    const f = layer.feedForward;
    if (ff && ff.numExperts > 0) for (const e of [f?.expertsIn, f?.expertsOut]) if (e) share.set(e, ff.topK / ff.numExperts);
    const visit = (t: unknown): void => {
      if (!t || typeof t !== 'object') return;
      if ('parts' in (t as object) && 'format' in (t as object)) {
        const g = t as GpuWeight;
        if (seen.has(g)) return;
        seen.add(g);
        const s = share.get(g) ?? 1;
        bytes += g.bytes * s;
        if (isMatmul(g)) macs += numel(g) * s;
        return;
      }
      for (const v of Object.values(t as object)) visit(v);
    };
    visit(layer);
  }
  const H = cfg.hiddenSize;
  bytes += w.finalNorm.bytes + w.lmHead.bytes + (w.embed === w.lmHead ? 0 : w.embed.bytes / cfg.vocabSize);
  macs += cfg.vocabSize * H; // lm_head
  const a = cfg.attention;
  // K and V rows in f32 (the engine's KV cache).
  const row = a ? 2 * 4 * a.numKvHeads * a.headDim : 0;
  const count = (kinds: string[]) => cfg.layerKinds.filter((k) => kinds.includes(k)).length;
  return {
    decodeWeightBytes: bytes,
    matmulFlops: 2 * macs,
    kvFullBytes: row * count(['attention', 'parallel', 'hybrid']),
    kvLocalBytes: row * count(['local']),
    kvWindow: cfg.griffin?.window ?? 0,
  };
}


/** The bytes a shape's weights take in `format` (as the bench loads them), before any is uploaded. */
export function plannedWeightBytes(cfg: ModelConfig, formats: BenchFormat[]): number {
  let most = 0;
  for (const format of formats) {
    let total = 0;
    loadWeights(cfg, RANDOM_STORE, (_name, shape, role) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const quant = (format === 'q8' || format === 'q4') && quantBitsFor(format, role) !== null && shape.length >= 2;
      const per = quant ? (format === 'q8' ? 8 : 4) / 8 + 2 / 32 : format === 'f32' || format === 'q8' || format === 'q4' ? 4 : 2;
      total += n * per;
      return n;
    });
    most = Math.max(most, total);
  }
  return most;
}

