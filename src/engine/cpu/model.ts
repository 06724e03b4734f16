// The float32 reference forward pass on the CPU: the whole hybrid model written as the math, slow and plain.
// It is what the WebGPU engine is tested against, and a fallback backend (--backend cpu).

import type { ModelConfig } from '../config';
import type { LanguageModel, MemoryReport, ModelFolder, ModelState, StateMark } from '../model';
import { loadWeights, type LayerWeights, type ModelWeights } from '../models/weights';
import * as ops from './ops';

interface MambaState {
  conv: Float32Array; // [convDim, K-1]: the last K-1 conv inputs, oldest first
  ssm: Float32Array; // [nh, hd, N]
}

interface KvState {
  k: Float32Array[]; // per position [nKv*d]
  v: Float32Array[];
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

  constructor(readonly config: ModelConfig, w: ModelWeights<Float32Array>) {
    this.w = w;
    this.reset();
  }

  static load(folder: ModelFolder): CpuModel {
    return new CpuModel(folder.config, loadWeights(folder.config, folder.store, (name, shape) => folder.store.f32(name, shape)));
  }

  get position(): number {
    return this.pos;
  }

  reset(): void {
    const m = this.config.mamba;
    this.pos = 0;
    this.mambaState = this.config.layerKinds.map((k) =>
      k === 'mamba' ? { conv: new Float32Array(m.convDim * (m.dConv - 1)), ssm: new Float32Array(m.numHeads * m.headDim * m.dState) } : null,
    );
    this.kv = this.config.layerKinds.map((k) => (k === 'attention' ? { k: [], v: [] } : null));
  }

  dispose(): void {}

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
    for (const s of this.mambaState) if (s) stateBytes += s.conv.byteLength + s.ssm.byteLength;
    let kvHostBytes = 0;
    for (const s of this.kv) if (s) for (const r of [...s.k, ...s.v]) kvHostBytes += r.byteLength;
    return { weightsBytes, stateBytes, kvGpuBytes: 0, kvHostBytes, kvDiskBytes: 0, scratchBytes: 0, kvBudgetBytes: 0 };
  }

  async exportState(opts: { kv?: boolean } = {}): Promise<ModelState> {
    const kd = this.config.attention ? this.config.attention.numKvHeads * this.config.attention.headDim : 0;
    const flat = (rows: Float32Array[]) => {
      const out = new Float32Array(rows.length * kd);
      rows.forEach((r, i) => out.set(r, i * kd));
      return out;
    };
    return {
      position: this.pos,
      mamba: this.mambaState.filter((s): s is MambaState => s !== null).map((s) => ({ conv: s.conv.slice(), ssm: s.ssm.slice() })),
      kv: opts.kv === false ? [] : this.kv.filter((s): s is KvState => s !== null).map((s) => ({ k: flat(s.k), v: flat(s.v) })),
    };
  }

  async importState(state: ModelState): Promise<void> {
    const kd = this.config.attention ? this.config.attention.numKvHeads * this.config.attention.headDim : 0;
    this.reset();
    const mambas = this.mambaState.filter((s): s is MambaState => s !== null);
    const kvs = this.kv.filter((s): s is KvState => s !== null);
    if (state.mamba.length !== mambas.length || state.kv.length !== kvs.length) throw new RangeError('state does not match this model.');
    mambas.forEach((s, i) => {
      s.conv.set(state.mamba[i].conv);
      s.ssm.set(state.mamba[i].ssm);
    });
    kvs.forEach((s, i) => {
      for (let r = 0; r < state.position; r++) {
        s.k.push(state.kv[i].k.slice(r * kd, (r + 1) * kd));
        s.v.push(state.kv[i].v.slice(r * kd, (r + 1) * kd));
      }
    });
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
    for (const s of this.kv) if (s) {
      s.k.length = mark.position;
      s.v.length = mark.position;
    }
    this.pos = mark.position;
  }

  async forward(ids: readonly number[], opts: { allLogits?: boolean } = {}): Promise<Float32Array> {
    const cfg = this.config;
    const H = cfg.hiddenSize;
    const T = ids.length;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${cfg.vocabSize}).`);
    }
    // h: [T, H] residual stream
    const h = ops.embed(this.w.embed, ids, H, cfg.embeddingMultiplier);
    this.w.layers.forEach((layer, i) => {
      // mixer: norm -> Mamba-2 or attention -> scaled residual
      const x = ops.rmsNorm(h, layer.norm, H, cfg.rmsNormEps);
      const mixed = layer.kind === 'mamba' ? this.mamba(layer, i, x, T) : this.attention(layer, i, x, T);
      for (let j = 0; j < h.length; j++) h[j] += mixed[j] * cfg.residualMultiplier;
      // feed-forward (Granite only): norm -> shared SwiGLU MLP (+ MoE) -> scaled residual
      if (layer.feedForward) {
        const f = this.feedForward(layer, ops.rmsNorm(h, layer.feedForward.norm, H, cfg.rmsNormEps), T);
        for (let j = 0; j < h.length; j++) h[j] += f[j] * cfg.residualMultiplier;
      }
    });
    this.pos += T;
    const rows = opts.allLogits ? h : h.subarray((T - 1) * H);
    const logits = ops.linear(ops.rmsNorm(rows, this.w.finalNorm, H, cfg.rmsNormEps), this.w.lmHead, H, cfg.vocabSize);
    if (cfg.logitsScaling !== 1) for (let j = 0; j < logits.length; j++) logits[j] /= cfg.logitsScaling;
    return logits;
  }

  private mamba(layer: LayerWeights<Float32Array>, i: number, x: Float32Array, T: number): Float32Array {
    const m = this.config.mamba;
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
    // selective scan: y [T, I]
    const y = ops.ssmScan(xs, dt, B, C, st.ssm, {
      nh: m.numHeads,
      hd: m.headDim,
      N: m.dState,
      ng: m.nGroups,
      aLog: w.aLog,
      dtBias: w.dtBias,
      D: w.D,
      dtMin: m.timeStepMin,
      dtMax: m.timeStepMax,
    });
    // gate, normalise, project back: [T, H]
    const g = ops.gatedRmsNorm(y, z, w.gatedNorm, I, m.normGroupSize, this.config.rmsNormEps);
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
      ops.rope(q, a.numHeads, a.headDim, this.pos, a.ropeTheta);
      ops.rope(k, a.numKvHeads, a.headDim, this.pos, a.ropeTheta);
    }
    const cache = this.kv[i]!;
    for (let t = 0; t < T; t++) {
      cache.k.push(k.slice(t * kd, (t + 1) * kd));
      cache.v.push(v.slice(t * kd, (t + 1) * kd));
    }
    const S = cache.k.length;
    const K = new Float32Array(S * kd);
    const V = new Float32Array(S * kd);
    cache.k.forEach((r, s) => K.set(r, s * kd));
    cache.v.forEach((r, s) => V.set(r, s * kd));
    const o = ops.attention(q, K, V, a.numHeads, a.numKvHeads, a.headDim, a.scaling); // [T, nH*d]
    return ops.linear(o, w.o, qd, H, w.oBias);
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
    if (w.router && w.expertsIn && w.expertsOut) {
      const E = ff.numExperts;
      const I = ff.expertIntermediate;
      const { experts, weights } = ops.topKRouting(ops.linear(x, w.router, H, E), E, ff.topK);
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
