// The float32 reference forward pass on the CPU: the whole hybrid model written as the math, slow and plain.
// It is what the WebGPU engine is tested against, and a fallback backend (--backend cpu).

import type { ModelConfig } from '../config';
import type { LanguageModel, MemoryReport, ModelFolder, ModelState, StateMark } from '../model';
import { loadWeights, type LayerWeights, type ModelWeights } from '../models/weights';
import { dequantize } from '../quant';
import { QuantizedLoader, type QuantLoadOptions } from '../quantLoad';
import { toF32 } from '../safetensors';
import { BLOCK_ROWS, HostBudget, KvBlockStore, questScore, selectBlocks, type SelectionPolicy } from '../memory/kvBlocks';
import { geluMlp, localAttention, rglruBlock, softCap } from './griffin';
import { mamba1Mixer } from './mamba1';
import { sharedBlockUse, zambaMamba1Mixer } from './zamba2';
import * as ops from './ops';

interface MambaState {
  conv: Float32Array; // [convDim, K-1]: the last K-1 conv inputs, oldest first (Mamba-1, RG-LRU: [I, K-1])
  ssm: Float32Array; // [nh, hd, N] (Mamba-1: [I, N]; RG-LRU: h [L])
}
// RecurrentGemma's local attention layers keep their K/V ring [window, nKv*d] here too (conv: K, ssm: V): a
// state of constant size, forked, rolled back, exported and imported like the recurrent layers'.

type KvState = KvBlockStore;

export interface CpuModelOptions {
  /**
   * Sparse attention: at most maxBlocks past blocks per query (sinks + recent + top by the Quest bound), plus
   * the current block and the chunk's own. With denseRows, attention stays dense while the context fits in
   * that many rows (as the GPU's working buffers do).
   */
  kvPolicy?: SelectionPolicy & { denseRows?: number };
  /** Host-memory budget for KV blocks; past it blocks spill to files in spillDir. */
  hostBudgetBytes?: number;
  spillDir?: string;
}

/** What the last sparse attention call selected, per attention layer (for tests and reports). */
export interface KvSelection {
  layer: number;
  numBlocks: number;
  selected: number[];
}

class CpuMark implements StateMark {
  constructor(readonly owner: CpuModel, readonly position: number, readonly saved: (MambaState | null)[]) {}
  release(): void {}
}

export class CpuModel implements LanguageModel {
  private readonly w: ModelWeights<Float32Array>;
  private mambaState: (MambaState | null)[] = [];
  private kv: (KvState | null)[] = [];
  private pos = 0;
  private readonly hostBudget: HostBudget;
  lastSelection: KvSelection[] = [];

  constructor(readonly config: ModelConfig, w: ModelWeights<Float32Array>, readonly opts: CpuModelOptions = {}) {
    this.w = w;
    this.hostBudget = new HostBudget(opts.hostBudgetBytes ?? Infinity);
    this.reset();
  }

  /**
   * Weights in f32: a quantized checkpoint's dequantized; with opts.quant, a float checkpoint's matrices quantized
   * and dequantized again as the GPU loader quantizes them, so this reference computes with the same values.
   */
  static load(folder: ModelFolder, opts: CpuModelOptions & { quant?: QuantLoadOptions } = {}): CpuModel {
    const loader = new QuantizedLoader(folder.store, folder.dir, { mode: opts.quant?.mode ?? 'none' });
    const w = loadWeights(folder.config, folder.store, (name, shape, role) => {
      const t = loader.load(name, shape, role);
      return t.kind === 'quantized' ? dequantize(t.q) : toF32(t.bytes, t.dtype);
    });
    return new CpuModel(folder.config, w, opts);
  }

  get position(): number {
    return this.pos;
  }

  attendsSparsely(): boolean {
    const p = this.opts.kvPolicy;
    // (RecurrentGemma's local attention keeps a window's ring, never blocks to select)
    if (!p || !this.kv.some((s) => s)) return false;
    return p.denseRows !== undefined ? this.pos > p.denseRows : Math.floor(this.pos / BLOCK_ROWS) > p.maxBlocks;
  }

  reset(): void {
    const m = this.config.mamba;
    const m1 = this.config.mamba1;
    this.pos = 0;
    this.mambaState = this.config.layerKinds.map((k) => {
      // (a hybrid layer's Mamba decoder: Mamba-2 in Zamba2, Mamba-1 in Zamba)
      if (k === 'mamba' || k === 'parallel' || (k === 'hybrid' && m)) return { conv: new Float32Array(m!.convDim * (m!.dConv - 1)), ssm: new Float32Array(m!.numHeads * m!.headDim * m!.dState) };
      if (k === 'mamba1' || k === 'hybrid') return { conv: new Float32Array(m1!.intermediate * (m1!.dConv - 1)), ssm: new Float32Array(m1!.intermediate * m1!.dState) };
      const g = this.config.griffin;
      if (k === 'rglru') return { conv: new Float32Array(g!.lruWidth * (g!.convWidth - 1)), ssm: new Float32Array(g!.lruWidth) };
      if (k === 'local') {
        const ring = g!.window * this.config.attention!.numKvHeads * this.config.attention!.headDim;
        return { conv: new Float32Array(ring), ssm: new Float32Array(ring) };
      }
      return null;
    });
    for (const s of this.kv) s?.close();
    const a = this.config.attention;
    const spill = (i: number) => (this.opts.spillDir ? `${this.opts.spillDir}/kv-layer${i}-${process.pid}.bin` : null);
    this.kv = this.config.layerKinds.map((k, i) => (k === 'attention' || k === 'parallel' || k === 'hybrid' ? new KvBlockStore(a!.numKvHeads * a!.headDim, this.hostBudget, spill(i)) : null));
  }

  dispose(): void {
    for (const s of this.kv) s?.close();
  }

  memory(): MemoryReport {
    const seen = new Set<Float32Array>();
    let weightsBytes = 0;
    const visit = (t: unknown): void => {
      if (t instanceof Float32Array) {
        if (!seen.has(t)) weightsBytes += (seen.add(t), t.byteLength);
      } else if (t && typeof t === 'object') for (const v of Object.values(t)) visit(v);
    };
    visit(this.w);
    let stateBytes = 0;
    let kvHostBytes = 0;
    // (a local attention layer's K/V ring counts as K/V, bounded by the window)
    this.mambaState.forEach((s, i) => {
      if (!s) return;
      if (this.config.layerKinds[i] === 'local') kvHostBytes += s.conv.byteLength + s.ssm.byteLength;
      else stateBytes += s.conv.byteLength + s.ssm.byteLength;
    });
    let kvDiskBytes = 0;
    for (const s of this.kv) {
      if (!s) continue;
      const b = s.bytes();
      kvHostBytes += b.host;
      kvDiskBytes += b.disk;
    }
    const window = this.config.griffin && this.config.layerKinds.includes('local') ? { kvWindowTokens: this.config.griffin.window } : {};
    return { weightsBytes, stateBytes, kvGpuBytes: 0, kvHostBytes, kvDiskBytes, scratchBytes: 0, kvBudgetBytes: 0, ...window };
  }

  async exportState(opts: { kv?: boolean | 'blocks' } = {}): Promise<ModelState> {
    const stores = this.kv.filter((s): s is KvState => s !== null);
    return {
      position: this.pos,
      mamba: this.mambaState.filter((s): s is MambaState => s !== null).map((s) => ({ conv: s.conv.slice(), ssm: s.ssm.slice() })),
      kv: opts.kv === false || opts.kv === 'blocks' ? [] : stores.map((s) => s.dense()),
      ...(opts.kv === 'blocks' ? { kvBlocks: stores } : {}),
    };
  }

  async importState(state: ModelState): Promise<void> {
    const kd = this.config.attention ? this.config.attention.numKvHeads * this.config.attention.headDim : 0;
    this.reset();
    const mambas = this.mambaState.filter((s): s is MambaState => s !== null);
    const kvs = this.kv.filter((s): s is KvState => s !== null);
    if (state.mamba.length !== mambas.length || (state.kvBlocks ?? state.kv).length !== kvs.length) throw new RangeError('state does not match this model.');
    mambas.forEach((s, i) => {
      s.conv.set(state.mamba[i].conv);
      s.ssm.set(state.mamba[i].ssm);
    });
    if (state.kvBlocks) kvs.forEach((s, i) => s.adopt(state.kvBlocks![i], state.position));
    else kvs.forEach((s, i) => s.append(state.kv[i].k.subarray(0, state.position * kd), state.kv[i].v.subarray(0, state.position * kd)));
    this.pos = state.position;
  }

  async fork(): Promise<StateMark> {
    return new CpuMark(this, this.pos, this.mambaState.map((s) => (s ? { conv: s.conv.slice(), ssm: s.ssm.slice() } : null)));
  }

  async rollback(mark: StateMark): Promise<void> {
    if (!(mark instanceof CpuMark) || mark.owner !== this) throw new RangeError('rollback needs a mark taken by fork() on this model.');
    const saved = mark.saved;
    this.mambaState.forEach((s, i) => {
      if (s) {
        s.conv.set(saved[i]!.conv);
        s.ssm.set(saved[i]!.ssm);
      }
    });
    for (const s of this.kv) s?.truncate(mark.position);
    this.pos = mark.position;
  }

  async forward(ids: readonly number[], opts: { allLogits?: boolean; skipLogits?: boolean } = {}): Promise<Float32Array> {
    const cfg = this.config;
    const H = cfg.hiddenSize;
    const T = ids.length;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${cfg.vocabSize}).`);
    }
    // h: [T, H] residual stream
    const h = ops.embed(this.w.embed, ids, H, cfg.embeddingMultiplier);
    // Zamba2's shared blocks read the embeddings again at every use
    const emb = cfg.zamba2 ? h.slice() : null;
    this.w.layers.forEach((layer, i) => {
      // Zamba2 hybrid layer: a shared block use (cpu/zamba2.ts) makes the Mamba-2 decoder's input h + t
      const src = layer.hybrid ? sharedBlockUse(cfg, layer.hybrid, h, emb!, T, this.pos, (q, k, v) => this.attend(i, q, k, v, T)) : h;
      // mixer: norm -> Mamba-2, Mamba-1, attention, an MLP block (Nemotron-H), an RG-LRU block or local attention
      // (RecurrentGemma) -> scaled residual
      const x = ops.rmsNorm(src, layer.norm, H, cfg.rmsNormEps);
      const mixed =
        layer.kind === 'rglru'
          ? rglruBlock(x, layer.rglru!, cfg.griffin!, H, this.mambaState[i]!, this.pos)
          : layer.kind === 'local'
          ? this.localAttention(layer, i, x)
          : layer.kind === 'parallel'
          ? this.parallel(layer, i, x, T)
          : layer.mamba1?.perHead
          ? zambaMamba1Mixer(cfg, layer.mamba1, x, this.mambaState[i]!)
          : layer.kind === 'mamba' || layer.kind === 'hybrid'
          ? this.mamba(layer, i, x, T)
          : layer.kind === 'mamba1'
            ? this.mamba1(layer, i, x)
            : layer.kind === 'attention'
              ? this.attention(layer, i, x, T)
              : this.mlpBlock(layer, x);
      for (let j = 0; j < h.length; j++) h[j] += mixed[j] * cfg.residualMultiplier;
      // feed-forward (Granite, Bamba, Jamba): norm -> shared SwiGLU MLP (+ MoE) -> scaled residual
      if (layer.feedForward) {
        const f = this.feedForward(layer, ops.rmsNorm(h, layer.feedForward.norm, H, cfg.rmsNormEps), T);
        for (let j = 0; j < h.length; j++) h[j] += f[j] * cfg.residualMultiplier;
      }
      // RecurrentGemma: channel_pre_norm -> gelu MLP -> residual
      if (layer.geluMlp) {
        const f = geluMlp(ops.rmsNorm(h, layer.geluMlp.norm, H, cfg.rmsNormEps), layer.geluMlp, H, cfg.griffin!.mlpIntermediate);
        for (let j = 0; j < h.length; j++) h[j] += f[j];
      }
    });
    this.pos += T;
    if (opts.skipLogits) return new Float32Array(0);
    const rows = opts.allLogits ? h : h.subarray((T - 1) * H);
    const logits = ops.linear(ops.rmsNorm(rows, this.w.finalNorm, H, cfg.rmsNormEps), this.w.lmHead, H, cfg.vocabSize);
    if (cfg.logitsScaling !== 1) for (let j = 0; j < logits.length; j++) logits[j] /= cfg.logitsScaling;
    if (cfg.griffin) softCap(logits, cfg.griffin.logitsSoftCap);
    return logits;
  }

  /** RecurrentGemma's local attention (cpu/griffin.ts): q, k, v with partial RoPE, over the window's ring. */
  private localAttention(layer: LayerWeights<Float32Array>, i: number, x: Float32Array): Float32Array {
    const a = this.config.attention!;
    const w = layer.attention!;
    const H = this.config.hiddenSize;
    const qd = a.numHeads * a.headDim;
    const kd = a.numKvHeads * a.headDim;
    const q = ops.linear(x, w.q, H, qd, w.qBias);
    const k = ops.linear(x, w.k, H, kd, w.kBias);
    const v = ops.linear(x, w.v, H, kd, w.vBias);
    ops.rope(q, a.numHeads, a.headDim, this.pos, a.ropeTheta!, a.rotaryDim);
    ops.rope(k, a.numKvHeads, a.headDim, this.pos, a.ropeTheta!, a.rotaryDim);
    const ring = this.mambaState[i]!;
    const o = localAttention(q, k, v, ring.conv, ring.ssm, a, this.config.griffin!.window, this.pos);
    return ops.linear(o, w.o, qd, H, w.oBias);
  }

  /** Falcon-H1: a Mamba-2 mixer and attention on the same normed input, summed (their multipliers are in the weights). */
  private parallel(layer: LayerWeights<Float32Array>, i: number, x: Float32Array, T: number): Float32Array {
    const y = this.mamba(layer, i, x, T);
    const o = this.attention(layer, i, x, T);
    for (let j = 0; j < y.length; j++) y[j] += o[j];
    return y;
  }

  /** A Mamba-1 mixer (cpu/mamba1.ts), its conv and scan state carried in mambaState[i]. */
  private mamba1(layer: LayerWeights<Float32Array>, i: number, x: Float32Array): Float32Array {
    const m = this.config.mamba1!;
    const w = layer.mamba1!;
    return mamba1Mixer(
      x,
      { inProj: w.inProj, inProjBias: w.inProjBias, convW: w.conv, convB: w.convBias, xProj: w.xProj, dtProjW: w.dtProj, dtProjB: w.dtBias, aLog: w.aLog, D: w.D, outProj: w.outProj, outProjBias: w.outProjBias, innerNorms: w.dtNorm && w.bNorm && w.cNorm ? { dt: w.dtNorm, B: w.bNorm, C: w.cNorm } : null },
      { H: this.config.hiddenSize, I: m.intermediate, N: m.dState, R: m.dtRank, K: m.dConv, falconEps: m.falconEps },
      this.mambaState[i]!,
    );
  }

  private mamba(layer: LayerWeights<Float32Array>, i: number, x: Float32Array, T: number): Float32Array {
    const m = this.config.mamba!;
    const w = layer.mamba!;
    const st = this.mambaState[i]!;
    const I = m.intermediate;
    const gN = m.nGroups * m.dState;
    // zxbcdt: [T, inProjDim] = z [I] | xBC [convDim] | dt [nh]
    const zxbcdt = ops.linear(x, w.inProj, this.config.hiddenSize, m.inProjDim, w.inProjBias);
    const z = new Float32Array(T * I);
    const xBC = new Float32Array(T * m.convDim);
    const dt = new Float32Array(T * m.numHeads);
    for (let t = 0; t < T; t++) {
      const row = zxbcdt.subarray(t * m.inProjDim, (t + 1) * m.inProjDim);
      z.set(row.subarray(0, I), t * I);
      xBC.set(row.subarray(I, I + m.convDim), t * m.convDim);
      dt.set(row.subarray(I + m.convDim), t * m.numHeads);
    }
    // causal depthwise conv + SiLU over x, B, C together
    const conv = ops.causalConv1d(xBC, w.conv, w.convBias, st.conv, m.convDim, m.dConv);
    const xs = new Float32Array(T * I);
    const B = new Float32Array(T * gN);
    const C = new Float32Array(T * gN);
    for (let t = 0; t < T; t++) {
      const row = conv.subarray(t * m.convDim, (t + 1) * m.convDim);
      xs.set(row.subarray(0, I), t * I);
      B.set(row.subarray(I, I + gN), t * gN);
      C.set(row.subarray(I + gN), t * gN);
    }
    // selective scan: y [T, I]. A one-token step after earlier tokens is transformers' decode step, which
    // (for Bamba, Nemotron-H) takes no dt limit.
    const limit = m.dtLimitInDecode || !(T === 1 && this.pos > 0);
    const y = ops.ssmScan(xs, dt, B, C, st.ssm, {
      nh: m.numHeads,
      hd: m.headDim,
      N: m.dState,
      ng: m.nGroups,
      aLog: w.aLog,
      dtBias: w.dtBias,
      D: w.D,
      dtMin: limit ? m.timeStepMin : -Infinity,
      dtMax: limit ? m.timeStepMax : Infinity,
    });
    // gate, normalise, project back: [T, H]
    let g: Float32Array;
    if (w.gatedNorm) g = ops.gatedRmsNorm(y, z, w.gatedNorm, I, m.normGroupSize, m.gatedNormEps ?? this.config.rmsNormEps);
    else {
      g = y;
      for (let j = 0; j < g.length; j++) g[j] *= ops.silu(z[j]);
    }
    return ops.linear(g, w.outProj, I, this.config.hiddenSize, w.outProjBias);
  }

  private attention(layer: LayerWeights<Float32Array>, i: number, x: Float32Array, T: number): Float32Array {
    const a = this.config.attention!;
    const w = layer.attention!;
    const H = this.config.hiddenSize;
    const qd = a.numHeads * a.headDim;
    const kd = a.numKvHeads * a.headDim;
    const q = ops.linear(x, w.q, H, qd, w.qBias); // [T, nH, d]
    const k = ops.linear(x, w.k, H, kd, w.kBias); // [T, nKv, d]
    const v = ops.linear(x, w.v, H, kd, w.vBias);
    if (a.ropeTheta !== null) {
      ops.rope(q, a.numHeads, a.headDim, this.pos, a.ropeTheta, a.rotaryDim);
      ops.rope(k, a.numKvHeads, a.headDim, this.pos, a.ropeTheta, a.rotaryDim);
    }
    return ops.linear(this.attend(i, q, k, v, T), w.o, qd, H, w.oBias);
  }

  /** Appends k, v to layer i's KV and attends q over it (dense, or over selected blocks): [T, nH*d]. */
  private attend(i: number, q: Float32Array, k: Float32Array, v: Float32Array, T: number): Float32Array {
    const cache = this.kv[i]!;
    cache.append(k, v);
    return this.opts.kvPolicy ? this.sparseAttention(q, cache, i, T) : this.denseAttention(q, cache);
  }

  private denseAttention(q: Float32Array, cache: KvBlockStore): Float32Array {
    const a = this.config.attention!;
    const { k, v } = cache.dense();
    return ops.attention(q, k, v, a.numHeads, a.numKvHeads, a.headDim, a.scaling);
  }

  /**
   * Attention over a selection of KV blocks, one selection for the whole chunk of T queries: the Quest bound
   * is taken for the chunk's per-dimension query min/max in each KV head group (an upper bound for every
   * query of the chunk), maximised over KV heads; the chunk's own blocks count as recent.
   */
  private sparseAttention(q: Float32Array, cache: KvBlockStore, layer: number, T: number): Float32Array {
    const a = this.config.attention!;
    const d = a.headDim;
    const rep = a.numHeads / a.numKvHeads;
    const nb = cache.numBlocks;
    const qmin = new Float32Array(a.numKvHeads * d).fill(Infinity);
    const qmax = new Float32Array(a.numKvHeads * d).fill(-Infinity);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < a.numHeads; h++) {
        const g = Math.floor(h / rep);
        for (let j = 0; j < d; j++) {
          const x = q[(t * a.numHeads + h) * d + j];
          if (x < qmin[g * d + j]) qmin[g * d + j] = x;
          if (x > qmax[g * d + j]) qmax[g * d + j] = x;
        }
      }
    }
    const scores = new Float32Array(nb);
    for (let b = 0; b < nb; b++) scores[b] = questScore(qmin, qmax, cache.summary(b), a.numKvHeads);
    // Past complete blocks compete for maxBlocks places; the current block and the chunk's are always in.
    const p = this.opts.kvPolicy!;
    const pos0 = cache.length - T;
    const nComplete = Math.floor(pos0 / BLOCK_ROWS);
    const dense = p.denseRows !== undefined ? cache.length <= p.denseRows : nComplete <= p.maxBlocks;
    const past = dense ? Array.from({ length: nComplete }, (_, b) => b) : selectBlocks(scores, nComplete, p);
    const selected = [...past, ...Array.from({ length: nb - nComplete }, (_, j) => nComplete + j)];
    this.lastSelection = [...this.lastSelection.filter((x) => x.layer !== layer), { layer, numBlocks: nb, selected: past }];
    // Gather the selected rows, remembering each row's position for the causal mask.
    const kd = a.numKvHeads * d;
    const V: Float32Array[] = [];
    const pos: number[] = [];
    const Kr: Float32Array[] = [];
    for (const b of selected) {
      const blk = cache.block(b);
      for (let r = 0; r < BLOCK_ROWS && b * BLOCK_ROWS + r < cache.length; r++) {
        Kr.push(blk.k.subarray(r * kd, (r + 1) * kd));
        V.push(blk.v.subarray(r * kd, (r + 1) * kd));
        pos.push(b * BLOCK_ROWS + r);
      }
    }
    return ops.maskedAttention(q, Kr, V, pos, cache.length - T, a.numHeads, a.numKvHeads, d, a.scaling);
  }

  /** Nemotron-H's MLP block: down(relu(up x)^2), no gate. */
  private mlpBlock(layer: LayerWeights<Float32Array>, x: Float32Array): Float32Array {
    const w = layer.mlp!;
    const H = this.config.hiddenSize;
    const M = this.config.mlp!.intermediate;
    return ops.linear(ops.relu2(ops.linear(x, w.up, H, M, w.upBias)), w.down, M, H, w.downBias);
  }

  private feedForward(layer: LayerWeights<Float32Array>, x: Float32Array, T: number): Float32Array {
    const ff = this.config.feedForward!;
    const w = layer.feedForward!;
    const H = this.config.hiddenSize;
    const out = new Float32Array(T * H);
    if (w.sharedIn && w.sharedOut) {
      const S = ff.sharedIntermediate;
      const y = ops.linear(ops.swiglu(ops.linear(x, w.sharedIn, H, 2 * S), S), w.sharedOut, S, H);
      out.set(y);
    }
    if (w.sharedGate && w.sharedUp && w.sharedOut) {
      // Bamba: down(silu(gate x) * up x)
      const S = ff.sharedIntermediate;
      const g = ops.linear(x, w.sharedGate, H, S);
      const u = ops.linear(x, w.sharedUp, H, S);
      for (let j = 0; j < g.length; j++) g[j] = ops.silu(g[j]) * u[j];
      out.set(ops.linear(g, w.sharedOut, S, H));
    }
    if (w.router && w.expertsIn && w.expertsOut) {
      const E = ff.numExperts;
      const I = ff.expertIntermediate;
      const { experts, weights } = ops.topKRouting(ops.linear(x, w.router, H, E), E, ff.topK, ff.routing);
      for (let t = 0; t < T; t++) {
        const xt = x.subarray(t * H, (t + 1) * H);
        for (let j = 0; j < ff.topK; j++) {
          const e = experts[t * ff.topK + j];
          const up = ops.linear(xt, w.expertsIn.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), H, 2 * I);
          const down = ops.linear(ops.swiglu(up, I), w.expertsOut.subarray(e * H * I, (e + 1) * H * I), I, H);
          const g = weights[t * ff.topK + j];
          for (let d = 0; d < H; d++) out[t * H + d] += g * down[d];
        }
      }
    }
    return out;
  }
}
