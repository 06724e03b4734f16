// CPU reference of RecurrentGemma's (transformers `recurrent_gemma`, Griffin) pieces: the recurrent block
// (RecurrentGemmaRecurrentBlock with its RG-LRU), local attention over a ring of the last `window` positions,
// the gelu-tanh MLP with biases, and the logits soft cap. Plain loops in float64 arithmetic over float32 storage.
//
// Recurrent block, per token t (position p) and channel j of lru_width L (gate head h = j / bw):
//   y = gelu_tanh(linear_y(x));  u = conv1d(linear_x(x)) (depthwise, width K, bias, no activation)
//   gx = sigmoid(u[h-block] @ Wx[h] + bx);  ga = sigmoid(u[h-block] @ Wa[h] + ba)
//   log a = -8 ga softplus(param);  a = exp(log a)
//   h_t = a h_{t-1} + sqrt(1 - a^2) (u gx)      (at position 0: h_0 = u gx, the reset)
//   out = linear_out(h_t * y)
// Local attention: query at p sees keys p - window + 1 .. p (transformers' sliding_window_overlay).

import type { AttentionConfig, GriffinConfig } from '../config';
import type { GeluMlpWeights, RglruWeights } from '../models/weights';
import { linear, softplus } from './ops';

/** gelu with the tanh approximation (torch's gelu(approximate='tanh'), ACT2FN gelu_pytorch_tanh). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** A recurrent layer's state: conv [L, K-1] (the last K-1 conv inputs, oldest first) and the RG-LRU h [L]. */
export interface RglruState {
  conv: Float32Array;
  ssm: Float32Array;
}

/** The recurrent block over x [T, H] (already normed) from position pos0; returns [T, H] and updates `st`. */
export function rglruBlock(x: Float32Array, w: RglruWeights<Float32Array>, g: GriffinConfig, H: number, st: RglruState, pos0: number): Float32Array {
  const L = g.lruWidth;
  const K = g.convWidth;
  const S = K - 1;
  const bw = g.blockWidth;
  const T = x.length / H;
  const y = linear(x, w.linearY, H, L, w.linearYBias);
  for (let j = 0; j < y.length; j++) y[j] = geluTanh(y[j]);
  const xb = linear(x, w.linearX, H, L, w.linearXBias);
  // temporal conv, continuing from the state
  const u = new Float32Array(T * L);
  const at = (t: number, c: number) => (t >= 0 ? xb[t * L + c] : st.conv[c * S + (S + t)]);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < L; c++) {
      let s = w.convBias[c];
      for (let k = 0; k < K; k++) s += w.conv[c * K + k] * at(t - S + k, c);
      u[t * L + c] = s;
    }
  }
  const next = new Float32Array(st.conv.length);
  for (let c = 0; c < L; c++) for (let j = 0; j < S; j++) next[c * S + j] = at(T - S + j, c);
  st.conv.set(next);
  // RG-LRU
  const out = new Float32Array(T * L);
  const sp = new Float64Array(L);
  for (let j = 0; j < L; j++) sp[j] = softplus(w.recurrentParam[j]);
  for (let t = 0; t < T; t++) {
    const reset = pos0 + t === 0;
    for (let j = 0; j < L; j++) {
      const h = Math.floor(j / bw);
      const jj = j % bw;
      let gx = w.inputGateBias[j];
      let ga = w.recurrentGateBias[j];
      for (let i = 0; i < bw; i++) {
        const v = u[t * L + h * bw + i];
        gx += v * w.inputGate[(h * bw + i) * bw + jj];
        ga += v * w.recurrentGate[(h * bw + i) * bw + jj];
      }
      const logA = -8 * sigmoid(ga) * sp[j];
      const a = Math.exp(logA);
      const gated = u[t * L + j] * sigmoid(gx);
      const normed = reset ? gated : gated * Math.sqrt(1 - Math.exp(2 * logA));
      const hv = (reset ? 0 : a * st.ssm[j]) + normed;
      st.ssm[j] = hv;
      out[t * L + j] = st.ssm[j] * y[t * L + j];
    }
  }
  return linear(out, w.linearOut, L, H, w.linearOutBias);
}

/**
 * Local attention of the chunk's queries q [T, nH, d] over its keys / values k, v [T, nKv, d] (RoPE applied) and
 * the ring (kRing, vRing [window, nKv * d]: position p in row p % window), from position pos0; the chunk's rows
 * then go into the ring. Returns [T, nH * d].
 */
export function localAttention(q: Float32Array, k: Float32Array, v: Float32Array, kRing: Float32Array, vRing: Float32Array, a: AttentionConfig, window: number, pos0: number): Float32Array {
  const { numHeads: nH, numKvHeads: nKv, headDim: d, scaling } = a;
  const kd = nKv * d;
  const T = q.length / (nH * d);
  const rep = nH / nKv;
  const out = new Float32Array(q.length);
  const scores = new Float64Array(window);
  for (let t = 0; t < T; t++) {
    const p = pos0 + t;
    const first = Math.max(0, p - window + 1);
    for (let hq = 0; hq < nH; hq++) {
      const kh = Math.floor(hq / rep);
      const qo = (t * nH + hq) * d;
      const row = (s: number, which: 'k' | 'v'): [Float32Array, number] =>
        s >= pos0 ? [which === 'k' ? k : v, (s - pos0) * kd + kh * d] : [which === 'k' ? kRing : vRing, (s % window) * kd + kh * d];
      let max = -Infinity;
      for (let s = first; s <= p; s++) {
        const [src, o] = row(s, 'k');
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q[qo + i] * src[o + i];
        scores[s - first] = dot * scaling;
        if (scores[s - first] > max) max = scores[s - first];
      }
      let sum = 0;
      for (let s = first; s <= p; s++) sum += scores[s - first] = Math.exp(scores[s - first] - max);
      for (let i = 0; i < d; i++) {
        let acc = 0;
        for (let s = first; s <= p; s++) {
          const [src, o] = row(s, 'v');
          acc += scores[s - first] * src[o + i];
        }
        out[qo + i] = acc / sum;
      }
    }
  }
  for (let t = Math.max(0, T - window); t < T; t++) {
    const r = ((pos0 + t) % window) * kd;
    kRing.set(k.subarray(t * kd, (t + 1) * kd), r);
    vRing.set(v.subarray(t * kd, (t + 1) * kd), r);
  }
  return out;
}

/** The MLP: down(gelu_tanh(gate x) * up x) with biases. x: [T, H] (normed). */
export function geluMlp(x: Float32Array, w: GeluMlpWeights<Float32Array>, H: number, M: number): Float32Array {
  const g = linear(x, w.gate, H, M, w.gateBias);
  const u = linear(x, w.up, H, M, w.upBias);
  for (let j = 0; j < g.length; j++) g[j] = geluTanh(g[j]) * u[j];
  return linear(g, w.down, M, H, w.downBias);
}

/** logits = tanh(logits / cap) * cap, in place. */
export function softCap(logits: Float32Array, cap: number): void {
  for (let j = 0; j < logits.length; j++) logits[j] = Math.tanh(logits[j] / cap) * cap;
}
