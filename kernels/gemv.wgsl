// Matrix-vector products for decode (T <= 4 rows of x share each weight read):
//   out[t, nOff + n] = (accumulate ? out : 0) + alpha * (sum_k x[t, k] W[n, k] + bias[nOff + n])
// x: [T, K] f32 (offset/stride), W: [N, K] one part of a weight, out: [T, *].
// TPR threads per weight row, WG / TPR rows per workgroup; each lane reads whole vec4<u32> words, so the
// weight stream is coalesced. Also the MoE form (moe > 0): workgroup row wid.y is a slot s = t*k + j that
// multiplies the rows of expert experts[s] (the weight is [E, N, K], this part holding experts
// eStart..eStart+eRows); x row is t (moe = 1) or s (moe = 2); out row is s.
// The input may be transformed on the fly (override IN), saving the dispatch that would do it first:
//   IN = 1  x[t] is RMS-normalised with weight nw [K] (eps in Params): x * nw, times 1/rms(x[t]) at the end
//   IN = 2  x is [T, 2K] (gate | up) and the input is silu(gate) * up (SwiGLU)
//   IN = 3  Mamba-2's gated norm: h = x * silu(z), RMS-normalised over groups of G channels, times nw [K]
//   IN = 4  squared ReLU: max(x, 0)^2 (Nemotron-H's MLP block)
// With CONV = 1 (GEMV_CONV devices: 9 storage bindings) the output rows convStart..convStart+convC-1 go through
// Mamba's depthwise causal conv + SiLU before they are written, each row's thread sliding its channel's conv
// state (saves the causalConv1d dispatch of a decode step: the in_proj's xBC rows come out convolved).
// Weights may be group-wise quantized (WFMT 3 = q8, 4 = q4, weights.wgsl): dequantized here, a group at a time,
// never expanded in memory.
// Entry points: main (vec4 loads; K % 8 == 0 for 16-bit, K % 4 == 0 for f32, K % 32 == 0 quantized, x
// offset/stride % 4 == 0) and scalar (any shape).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  K: u32,
  N: u32, // rows in this part
  nOff: u32, // output column of the part's first row
  xOff: u32,
  xStride: u32,
  oOff: u32,
  oStride: u32,
  alpha: f32,
  accumulate: u32,
  hasBias: u32,
  moe: u32,
  topK: u32,
  eStart: u32,
  eRows: u32,
  eps: f32,
  zOff: u32, // IN = 3: the gate z [T, K]
  zStride: u32,
  G: u32, // IN = 3: group size, a multiple of 8 (K / G <= 16 groups)
  stepRows: u32, // 1: out rows start at row pos0 (from `step`): appending to a KV cache
  oRows: u32, // rows of out; rows at or past it are dropped
  sOff: u32, // quantized formats: word offset of the scales plane in the part's buffer
  convStart: u32, // CONV = 1: the first output column convolved
  convC: u32, // CONV = 1: the columns convolved (conv channels)
}

override WG: u32 = 256u;
override TPR: u32 = 32u; // threads per row, a power of two, a multiple of SG
override SG: u32 = 32u;
override TT: u32 = 1u; // rows of x, 1..4
override WFMT: u32 = 0u;
override BFMT: u32 = 0u;
override IN: u32 = 0u; // input transform: 0 none, 1 RMSNorm, 2 SwiGLU, 3 gated RMSNorm, 4 relu^2
override NFMT: u32 = 0u; // format of the norm weight
override CONV: u32 = 0u; // 1: the conv epilogue (GEMV_CONV devices only)
override CK: u32 = 4u; // CONV = 1: conv kernel size, 2..8

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read> x1: array<f32>;
@group(0) @binding(2) var<storage, read> W4: array<vec4u>;
@group(0) @binding(2) var<storage, read> W1: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read> experts: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> NW: array<vec4u>; // norm weight [K] (IN = 1, 3)
@group(0) @binding(7) var<storage, read> z4: array<vec4f>; // gate (IN = 3)
@group(0) @binding(7) var<storage, read> z1: array<f32>;
@group(0) @binding(8) var<uniform> step: Step;
// #if GEMV_CONV
@group(0) @binding(9) var<storage, read> convWB: array<f32>; // [convC, CK + 1]: the conv weights, then the bias
@group(0) @binding(10) var<storage, read_write> convState: array<f32>; // [convC, CK - 1], the last inputs, oldest first

/** Channel c's causal conv + SiLU at this token, its raw value v; the state window slides by one. */
fn convStep(c: u32, v: f32) -> f32 {
  let S = CK - 1u;
  let wb = c * (CK + 1u);
  var acc = convWB[wb + CK] + convWB[wb + S] * v;
  for (var k = 0u; k < S; k++) {
    let sv = convState[c * S + k];
    acc += convWB[wb + k] * sv;
    if (k > 0u) { convState[c * S + k - 1u] = sv; }
  }
  convState[c * S + S - 1u] = v;
  return acc / (1.0 + exp(-acc));
}
// #endif

override RPW: u32 = WG / TPR;

struct Row {
  n: u32, // output row within the part, or >= N when this thread has none
  wRow: u32, // weight row in the part's buffer
  xRow: u32,
  oRow: u32,
}

fn rowOf(wid: vec3u, nwg: vec3u, lid: u32) -> Row {
  var r: Row;
  if (P.moe == 0u) {
    r.n = (wid.x + wid.y * nwg.x) * RPW + lid / TPR;
    r.wRow = r.n;
    r.xRow = 0u;
    r.oRow = 0u;
  } else {
    let slot = wid.y;
    let e = experts[slot];
    r.n = wid.x * RPW + lid / TPR;
    if (e < P.eStart || e >= P.eStart + P.eRows) { r.n = P.N; } // another part's dispatch has this expert
    r.wRow = (e - P.eStart) * P.N + r.n;
    r.xRow = select(slot, slot / P.topK, P.moe == 1u);
    r.oRow = slot;
  }
  return r;
}

fn finish(acc: vec4f, r: Row, lid: u32) {
  let sum = rowSum(acc, lid);
  if (lid % TPR != 0u || r.n >= P.N) { return; }
  let col = P.nOff + r.n;
  var b = 0.0;
  if (P.hasBias != 0u) { b = decode(bias[wordIndex(col, BFMT)], col, BFMT); }
  let row0 = r.oRow + select(0u, step.pos0, P.stepRows != 0u);
  for (var t = 0u; t < TT; t++) {
    if (row0 + t >= P.oRows) { break; }
    let o = P.oOff + (row0 + t) * P.oStride + col;
    var y = P.alpha * (sum[t] + b);
    if (P.accumulate != 0u) { y += out[o]; }
// #if GEMV_CONV
    if (CONV != 0u && col >= P.convStart && col < P.convStart + P.convC) { y = convStep(col - P.convStart, y); }
// #endif
    out[o] = y;
  }
}

fn silu4(g: vec4f) -> vec4f {
  return g / (1.0 + exp(-g));
}

fn relu2x4(v: vec4f) -> vec4f {
  let r = max(v, vec4f(0.0));
  return r * r;
}

/** Element k of the norm weight. */
fn nwAt(k: u32) -> f32 {
  let i = wordIndex(k, NFMT);
  return decode(NW[i / 4u][i % 4u], k, NFMT);
}

/** 1 / rms of each x row t < TT (IN = 1), else 1; x row t has K values from x4 index xBase + t * xs. */
fn inputScale(xBase: u32, xs: u32, lid: u32) -> vec4f {
  if (IN != 1u) { return vec4f(1.0); }
  var ss = vec4f(0.0);
  for (var v = lid; v < P.K / 4u; v += WG) {
    for (var t = 0u; t < TT; t++) {
      let a = x4[xBase + t * xs + v];
      ss[t] += dot(a, a);
    }
  }
  return inverseSqrt(wgSum4(ss, lid) / f32(P.K) + P.eps);
}

var<workgroup> groupScale: array<vec4f, 16>; // IN = 3: 1 / rms of each group (component t: row t)

/** IN = 3: fills groupScale from h = x * silu(z) (x from x4 at xBase, z from z4 at zBase, rows xs / zs apart). */
fn gatedScales(xBase: u32, xs: u32, zBase: u32, zs: u32, lid: u32) {
  for (var g = 0u; g < P.K / P.G; g++) {
    var ss = vec4f(0.0);
    for (var v = lid; v < P.G / 4u; v += WG) {
      let k4 = g * P.G / 4u + v;
      for (var t = 0u; t < TT; t++) {
        let h = x4[xBase + t * xs + k4] * silu4(z4[zBase + t * zs + k4]);
        ss[t] += dot(h, h);
      }
    }
    let s = inverseSqrt(wgSum4(ss, lid) / f32(P.G) + P.eps);
    if (lid == 0u) { groupScale[g] = s; }
  }
  workgroupBarrier();
}

/** x row t's vec4 k4 (values 4*k4 ..) with the input transform applied (IN; the 1/rms of IN = 1 comes later). */
fn xIn(t: u32, k4: u32, xBase: u32, xs: u32, zBase: u32, zs: u32) -> vec4f {
  var a = x4[xBase + t * xs + k4];
  if (IN == 1u || IN == 3u) {
    if (NFMT == 0u) {
      a *= bitcast<vec4f>(NW[k4]);
    } else {
      let k = 4u * k4;
      a *= vec4f(nwAt(k), nwAt(k + 1u), nwAt(k + 2u), nwAt(k + 3u));
    }
  }
  if (IN == 2u) { a = silu4(a) * x4[xBase + t * xs + P.K / 4u + k4]; }
  if (IN == 3u) { a *= silu4(z4[zBase + t * zs + k4]) * groupScale[4u * k4 / P.G][t]; }
  if (IN == 4u) { a = relu2x4(a); }
  return a;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = rowOf(wid, nwg, lid);
  let xs = P.xStride / 4u;
  let xBase = P.xOff / 4u + r.xRow * xs;
  let scale = inputScale(xBase, xs, lid);
  let zs = P.zStride / 4u;
  let zBase = P.zOff / 4u;
  if (IN == 3u) { gatedScales(xBase, xs, zBase, zs, lid); }
  var acc = vec4f(0.0);
  if (r.n < P.N && WFMT == 3u) {
    // q8: a vec4<u32> (half a group, 16 values) a lane; its x is 4 contiguous vec4s, 64 bytes apart across lanes.
    let G = P.K / 32u;
    let rowV = 2u * G;
    for (var v = lid % TPR; v < rowV; v += TPR) {
      let q = W4[r.wRow * rowV + v];
      let gi = r.wRow * G + v / 2u;
      let sw = P.sOff + (gi >> 1u); // (main reads W only as vec4s: one entry point may not bind both views)
      let d = qScale(W4[sw >> 2u][sw & 3u], gi);
      let w0 = d * q8x4(q.x);
      let w1 = d * q8x4(q.y);
      let w2 = d * q8x4(q.z);
      let w3 = d * q8x4(q.w);
      let k4 = 4u * v;
      for (var t = 0u; t < TT; t++) {
        acc[t] += dot(w0, xIn(t, k4, xBase, xs, zBase, zs)) + dot(w1, xIn(t, k4 + 1u, xBase, xs, zBase, zs)) +
                  dot(w2, xIn(t, k4 + 2u, xBase, xs, zBase, zs)) + dot(w3, xIn(t, k4 + 3u, xBase, xs, zBase, zs));
      }
    }
  } else if (r.n < P.N && WFMT == 4u) {
    // q4: one word (8 values) a lane, so that neighbouring lanes read neighbouring x vec4s (a vec4<u32> a lane put
    // 32 values a lane and the x reads 128 bytes apart across lanes: 97 vs 59 us on the H200's 350m lm_head).
    let rowW = (P.K / 32u) * 4u;
    let rowBase = r.wRow * rowW;
    for (var j = lid % TPR; j < rowW; j += TPR) {
      let wi = rowBase + j;
      let word = W4[wi >> 2u][wi & 3u];
      let gi = wi / 4u;
      let sw = P.sOff + (gi >> 1u);
      let d = qScale(W4[sw >> 2u][sw & 3u], gi);
      let lo = d * q4lo(word);
      let hi = d * q4hi(word);
      for (var t = 0u; t < TT; t++) {
        acc[t] += dot(lo, xIn(t, 2u * j, xBase, xs, zBase, zs)) + dot(hi, xIn(t, 2u * j + 1u, xBase, xs, zBase, zs));
      }
    }
  } else if (r.n < P.N) {
    let per = select(8u, 4u, WFMT == 0u); // values per vec4<u32>
    let rowV = P.K / per;
    let wBase = r.wRow * rowV;
    let up = P.K / 4u; // SwiGLU: the up half, in vec4s after the gate
    for (var v = lid % TPR; v < rowV; v += TPR) {
      var ev = vec4f(0.0);
      var od = vec4f(0.0);
      decode8(W4[wBase + v], WFMT, &ev, &od);
      let xi = xBase + v * (per / 4u);
      if (WFMT == 0u) {
        for (var t = 0u; t < TT; t++) { acc[t] += dot(ev, xIn(t, v, xBase, xs, zBase, zs)); }
      } else {
        // Norm weight of these 8 values, split even / odd like the weights.
        var ne = vec4f(1.0);
        var no = vec4f(1.0);
        if (IN == 1u || IN == 3u) {
          if (NFMT == 0u) {
            let na = bitcast<vec4f>(NW[2u * v]);
            let nb = bitcast<vec4f>(NW[2u * v + 1u]);
            ne = x8even(na, nb);
            no = x8odd(na, nb);
          } else {
            decode8(NW[v], NFMT, &ne, &no);
          }
        }
        for (var t = 0u; t < TT; t++) {
          var a = x4[xi + t * xs];
          var b = x4[xi + t * xs + 1u];
          if (IN == 2u) {
            a = silu4(a) * x4[xi + t * xs + up];
            b = silu4(b) * x4[xi + t * xs + up + 1u];
          }
          if (IN == 3u) {
            let gs = groupScale[8u * v / P.G][t];
            a *= silu4(z4[zBase + t * zs + 2u * v]) * gs;
            b *= silu4(z4[zBase + t * zs + 2u * v + 1u]) * gs;
          }
          if (IN == 4u) {
            a = relu2x4(a);
            b = relu2x4(b);
          }
          acc[t] += dot(ev, x8even(a, b) * ne) + dot(od, x8odd(a, b) * no);
        }
      }
    }
  }
  finish(acc * scale, r, lid);
}

@compute @workgroup_size(WG)
fn scalar(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = rowOf(wid, nwg, lid);
  let xBase = P.xOff + r.xRow * P.xStride;
  var scale = vec4f(1.0);
  if (IN == 1u) {
    var ss = vec4f(0.0);
    for (var k = lid; k < P.K; k += WG) {
      for (var t = 0u; t < TT; t++) {
        let a = x1[xBase + t * P.xStride + k];
        ss[t] += a * a;
      }
    }
    scale = inverseSqrt(wgSum4(ss, lid) / f32(P.K) + P.eps);
  }
  if (IN == 3u) {
    for (var g = 0u; g < P.K / P.G; g++) {
      var ss = vec4f(0.0);
      for (var k = g * P.G + lid; k < (g + 1u) * P.G; k += WG) {
        for (var t = 0u; t < TT; t++) {
          let zv = z1[P.zOff + t * P.zStride + k];
          let h = x1[xBase + t * P.xStride + k] * zv / (1.0 + exp(-zv));
          ss[t] += h * h;
        }
      }
      let gsc = inverseSqrt(wgSum4(ss, lid) / f32(P.G) + P.eps);
      if (lid == 0u) { groupScale[g] = gsc; }
    }
    workgroupBarrier();
  }
  var acc = vec4f(0.0);
  if (r.n < P.N) {
    let wBase = r.wRow * P.K;
    for (var k = lid % TPR; k < P.K; k += TPR) {
      let i = wBase + k;
      var wv: f32;
      if (isQuant(WFMT)) {
        let gi = qGroup(r.wRow, k, P.K);
        wv = qScale(W1[P.sOff + gi / 2u], gi) * qValue(W1[qDataWord(gi, k, WFMT)], k, WFMT);
      } else {
        wv = decode(W1[wordIndex(i, WFMT)], i, WFMT);
      }
      var nw = 1.0;
      if (IN == 1u || IN == 3u) { nw = nwAt(k); }
      for (var t = 0u; t < TT; t++) {
        var a = x1[xBase + t * P.xStride + k];
        if (IN == 1u) { a *= nw; }
        if (IN == 2u) { a = a / (1.0 + exp(-a)) * x1[xBase + t * P.xStride + P.K + k]; }
        if (IN == 3u) {
          let zv = z1[P.zOff + t * P.zStride + k];
          a *= zv / (1.0 + exp(-zv)) * nw * groupScale[k / P.G][t];
        }
        if (IN == 4u) {
          let r = max(a, 0.0);
          a = r * r;
        }
        acc[t] += wv * a;
      }
    }
  }
  finish(acc * scale, r, lid);
}

// #include rowSum
// #include reduce
// #include weights
// #include step
