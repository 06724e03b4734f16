// Float32 reference operators on the CPU. They read as the math and are the yardstick every WGSL kernel is
// tested against. Layout: activations row-major [T, D]; Linear weights as in PyTorch, [out, in].

import type { RouterMode } from '../config';

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

export function softplus(x: number): number {
  // torch's softplus (beta 1, threshold 20)
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/** out[t] = x[t] / rms(x[t]) * w, over rows of length d. */
export function rmsNorm(x: Float32Array, w: Float32Array, d: number, eps: number): Float32Array {
  const T = x.length / d;
  const out = new Float32Array(x.length);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
    const r = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) out[t * d + i] = x[t * d + i] * r * w[i];
  }
  return out;
}

/**
 * Gated RMSNorm of Mamba-2: h = y * silu(z), normalised over groups of `groupSize` channels, times w.
 * y, z: [T, d].
 */
export function gatedRmsNorm(y: Float32Array, z: Float32Array, w: Float32Array, d: number, groupSize: number, eps: number): Float32Array {
  const T = y.length / d;
  const out = new Float32Array(y.length);
  const h = new Float32Array(groupSize);
  for (let t = 0; t < T; t++) {
    for (let g = 0; g < d; g += groupSize) {
      let ss = 0;
      for (let i = 0; i < groupSize; i++) {
        const k = t * d + g + i;
        h[i] = y[k] * silu(z[k]);
        ss += h[i] * h[i];
      }
      const r = 1 / Math.sqrt(ss / groupSize + eps);
      for (let i = 0; i < groupSize; i++) out[t * d + g + i] = h[i] * r * w[g + i];
    }
  }
  return out;
}

/** y[T, out] = x[T, in] . W[out, in]^T (+ bias). */
export function linear(x: Float32Array, w: Float32Array, inDim: number, outDim: number, bias?: Float32Array | null): Float32Array {
  const T = x.length / inDim;
  const y = new Float32Array(T * outDim);
  for (let t = 0; t < T; t++) {
    const xo = t * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xo + i] * w[wo + i];
      y[t * outDim + o] = s + (bias ? bias[o] : 0);
    }
  }
  return y;
}

/** Rows of the embedding table, times a multiplier: [T, d]. */
export function embed(table: Float32Array, ids: readonly number[], d: number, multiplier: number): Float32Array {
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, t) => {
    for (let i = 0; i < d; i++) out[t * d + i] = table[id * d + i] * multiplier;
  });
  return out;
}

/**
 * Depthwise causal conv1d over time with SiLU, continuing from `state`, the last K-1 inputs seen before
 * (oldest first, [C, K-1]); `state` is updated in place to the last K-1 inputs including these.
 * x: [T, C], w: [C, K], out: [T, C].
 */
export function causalConv1d(x: Float32Array, w: Float32Array, bias: Float32Array | null, state: Float32Array, C: number, K: number): Float32Array {
  const T = x.length / C;
  const out = new Float32Array(x.length);
  const S = K - 1;
  const at = (t: number, c: number) => (t >= 0 ? x[t * C + c] : state[c * S + (S + t)]);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      let s = bias ? bias[c] : 0;
      for (let k = 0; k < K; k++) s += w[c * K + k] * at(t - S + k, c);
      out[t * C + c] = silu(s);
    }
  }
  const next = new Float32Array(state.length);
  for (let c = 0; c < C; c++) for (let j = 0; j < S; j++) next[c * S + j] = at(T - S + j, c);
  state.set(next);
  return out;
}

export interface SsmParams {
  nh: number; // heads
  hd: number; // head dim
  N: number; // state size
  ng: number; // groups
  aLog: Float32Array; // [nh]
  dtBias: Float32Array; // [nh]
  D: Float32Array; // [nh]
  dtMin: number;
  dtMax: number;
}

/**
 * The Mamba-2 selective scan, one token at a time (the recurrence the chunked SSD computes in blocks):
 *   dt = clamp(softplus(dt_raw + dt_bias)),  h = exp(dt*A) h + dt * x B^T,  y = h C + D x.
 * x: [T, nh*hd], dtRaw: [T, nh], B, C: [T, ng*N], state: [nh, hd, N] updated in place. Returns y [T, nh*hd].
 */
export function ssmScan(x: Float32Array, dtRaw: Float32Array, B: Float32Array, Cm: Float32Array, state: Float32Array, p: SsmParams): Float32Array {
  const { nh, hd, N, ng } = p;
  const T = dtRaw.length / nh;
  const y = new Float32Array(T * nh * hd);
  const hpg = nh / ng; // heads per group
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / hpg);
      let dt = softplus(dtRaw[t * nh + h] + p.dtBias[h]);
      dt = Math.min(Math.max(dt, p.dtMin), p.dtMax);
      const dA = Math.exp(-Math.exp(p.aLog[h]) * dt);
      const b = (t * ng + g) * N;
      for (let i = 0; i < hd; i++) {
        const xv = x[(t * nh + h) * hd + i];
        const so = (h * hd + i) * N;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const s = state[so + n] * dA + dt * xv * B[b + n];
          state[so + n] = s;
          acc += s * Cm[b + n];
        }
        y[(t * nh + h) * hd + i] = acc + p.D[h] * xv;
      }
    }
  }
  return y;
}

/**
 * Rotary embedding (rotate-half convention) applied in place to x: [T, heads, dim] at positions pos0+t, on the
 * first `rotaryDim` channels of each head (partial rotary, Bamba; the rest pass through), frequencies
 * 1 / theta^(2i / rotaryDim).
 */
export function rope(x: Float32Array, heads: number, dim: number, pos0: number, theta: number, rotaryDim = dim): void {
  const T = x.length / (heads * dim);
  const half = rotaryDim / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / Math.pow(theta, (2 * i) / rotaryDim);
      const a = (pos0 + t) * invFreq;
      const c = Math.cos(a);
      const s = Math.sin(a);
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * dim;
        const x1 = x[o + i];
        const x2 = x[o + half + i];
        x[o + i] = x1 * c - x2 * s;
        x[o + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

/**
 * Causal grouped-query attention of T new queries over a cache of S keys (the last T of which are theirs):
 * q: [T, nH, d], k, v: [S, nKv, d]. Query t sits at position S-T+t and sees keys 0..S-T+t.
 */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, nH: number, nKv: number, d: number, scaling: number): Float32Array {
  const T = q.length / (nH * d);
  const S = k.length / (nKv * d);
  const out = new Float32Array(q.length);
  const rep = nH / nKv;
  const scores = new Float32Array(S);
  for (let t = 0; t < T; t++) {
    const last = S - T + t;
    for (let h = 0; h < nH; h++) {
      const kh = Math.floor(h / rep);
      const qo = (t * nH + h) * d;
      let max = -Infinity;
      for (let s = 0; s <= last; s++) {
        let dot = 0;
        const ko = (s * nKv + kh) * d;
        for (let i = 0; i < d; i++) dot += q[qo + i] * k[ko + i];
        scores[s] = dot * scaling;
        if (scores[s] > max) max = scores[s];
      }
      let sum = 0;
      for (let s = 0; s <= last; s++) {
        scores[s] = Math.exp(scores[s] - max);
        sum += scores[s];
      }
      for (let s = 0; s <= last; s++) {
        const p = scores[s] / sum;
        const vo = (s * nKv + kh) * d;
        for (let i = 0; i < d; i++) out[qo + i] += p * v[vo + i];
      }
    }
  }
  return out;
}

/**
 * Causal GQA attention over an arbitrary set of cached rows (a sparse selection): krows/vrows [nKv*d] each
 * with their positions; query t sits at position pos0 + t and sees rows at positions <= its own.
 */
export function maskedAttention(
  q: Float32Array,
  krows: readonly Float32Array[],
  vrows: readonly Float32Array[],
  positions: readonly number[],
  pos0: number,
  nH: number,
  nKv: number,
  d: number,
  scaling: number,
): Float32Array {
  const T = q.length / (nH * d);
  const out = new Float32Array(q.length);
  const rep = nH / nKv;
  const scores = new Float64Array(krows.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const kh = Math.floor(h / rep);
      const qo = (t * nH + h) * d;
      let max = -Infinity;
      for (let s = 0; s < krows.length; s++) {
        if (positions[s] > pos0 + t) {
          scores[s] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q[qo + i] * krows[s][kh * d + i];
        scores[s] = dot * scaling;
        if (scores[s] > max) max = scores[s];
      }
      let sum = 0;
      for (let s = 0; s < krows.length; s++) sum += scores[s] = scores[s] === -Infinity ? 0 : Math.exp(scores[s] - max);
      for (let s = 0; s < krows.length; s++) {
        if (!scores[s]) continue;
        const p = scores[s] / sum;
        for (let i = 0; i < d; i++) out[qo + i] += p * vrows[s][kh * d + i];
      }
    }
  }
  return out;
}

/** SwiGLU on a fused projection [T, 2m]: silu(first half) * second half -> [T, m]. */
export function swiglu(gu: Float32Array, m: number): Float32Array {
  const T = gu.length / (2 * m);
  const out = new Float32Array(T * m);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < m; i++) out[t * m + i] = silu(gu[t * 2 * m + i]) * gu[t * 2 * m + m + i];
  }
  return out;
}

/** erf(x) (Numerical Recipes' erfc, fractional error below 1.2e-7; gemv/elementwise GELU use the same formula). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const c = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - c : c - 1;
}

/** GELU, the exact (erf) form: torch's nn.GELU() / transformers' "gelu". */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** GeGLU on a fused projection [T, 2m]: gelu(first half) * second half -> [T, m]. */
export function geglu(gu: Float32Array, m: number): Float32Array {
  const T = gu.length / (2 * m);
  const out = new Float32Array(T * m);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < m; i++) out[t * m + i] = gelu(gu[t * 2 * m + i]) * gu[t * 2 * m + m + i];
  }
  return out;
}

/** Squared ReLU (Nemotron-H's relu2), elementwise: max(x, 0)^2. */
export function relu2(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const r = x[i] > 0 ? x[i] : 0;
    out[i] = r * r;
  }
  return out;
}

/**
 * Top-k of router logits per token: returns expert ids and weights [T, k]. 'softmaxOfTopK' (Granite): the weights
 * are the softmax over the k selected logits; 'topKOfSoftmax' (Jamba): the k selected experts' probabilities of
 * the softmax over all E, not renormalised. The selection is the same (softmax keeps the order).
 */
export function topKRouting(logits: Float32Array, E: number, k: number, mode: RouterMode = 'softmaxOfTopK'): { experts: Int32Array; weights: Float32Array } {
  const T = logits.length / E;
  const experts = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  for (let t = 0; t < T; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    // Ties go to the lower index, as torch.topk does in practice for distinct values.
    const order = row.map((v, i) => i).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
    const max = row[order[0]];
    let sum = 0;
    const e = order.map((i) => Math.exp(row[i] - max));
    if (mode === 'topKOfSoftmax') for (const v of row) sum += Math.exp(v - max);
    else e.forEach((v) => (sum += v));
    order.forEach((i, j) => {
      experts[t * k + j] = i;
      weights[t * k + j] = e[j] / sum;
    });
  }
  return { experts, weights };
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
