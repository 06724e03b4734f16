// Attention for one new token (decode), split over the keys (flash-decoding):
//   partial  per (group of HPW query heads sharing a KV head, split): an online softmax over the split's keys,
//            leaving (o unnormalised [d], running max m, sum l) per head in `part`
//   combine  per head: merges the splits: out = sum_i exp(m_i - M) o_i / sum_i exp(m_i - M) l_i
// The grid is fixed when the list is recorded; the split length follows S = pos0 + 1 (from `step`), so the
// same list serves every step. q: [nH, d] (offset), k, v caches: [capacity, nKv, d], out: [nH * d] (offset).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  nH: u32,
  nKv: u32,
  nSplit: u32,
  qOff: u32,
  oOff: u32,
  scale: f32,
}

struct Step {
  pos0: u32,
  nTokens: u32,
  seed: u32,
  pad: u32,
}

override WG: u32 = 256u;
override SG: u32 = 32u;
override DH: u32 = 64u; // head dim, a multiple of 4, <= WG
override HPW: u32 = 1u; // query heads per workgroup, <= 8
override KQ: u32 = WG / DH; // key lanes in the P.V product
const NEG = -3.0e38; // stands for -infinity (WGSL has no infinity literal)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k4: array<vec4f>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>; // [nH, nSplit, d + 2]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> step: Step;

var<workgroup> qs: array<vec4f, HPW * DH / 4u>;
var<workgroup> sc: array<f32, HPW * WG>; // [head][key in tile]: scores, then probabilities

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h0 = wid.x * HPW;
  let split = wid.y;
  let kh = h0 / (P.nH / P.nKv);
  let S = step.pos0 + 1u;
  let splitLen = max((S + P.nSplit - 1u) / P.nSplit, WG);
  let start = split * splitLen;
  let end = min(S, start + splitLen);
  let D4 = DH / 4u;
  for (var e = lid; e < HPW * D4; e += WG) {
    let b = P.qOff + (h0 + e / D4) * DH + (e % D4) * 4u;
    qs[e] = vec4f(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * P.scale;
  }
  workgroupBarrier();
  var m: array<f32, 8>;
  var l: array<f32, 8>;
  var acc: array<f32, 8>; // this thread's share of o[r][j]
  for (var r = 0u; r < HPW; r++) {
    m[r] = NEG;
    l[r] = 0.0;
    acc[r] = 0.0;
  }
  let j = lid % DH;
  let kq = lid / DH;
  for (var k0 = start; k0 < end; k0 += WG) {
    // Scores: one key per thread.
    let s = k0 + lid;
    var dots: array<f32, 8>;
    for (var r = 0u; r < HPW; r++) { dots[r] = NEG; }
    if (s < end) {
      for (var r = 0u; r < HPW; r++) { dots[r] = 0.0; }
      let kb = (s * P.nKv + kh) * D4;
      for (var c = 0u; c < D4; c++) {
        let kv = k4[kb + c];
        for (var r = 0u; r < HPW; r++) { dots[r] += dot(kv, qs[r * D4 + c]); }
      }
    }
    // Online softmax over the tile.
    var alpha: array<f32, 8>;
    for (var r = 0u; r < HPW; r++) {
      let mNew = max(m[r], wgMax(dots[r], lid));
      alpha[r] = exp(m[r] - mNew);
      let p = select(0.0, exp(dots[r] - mNew), s < end);
      sc[r * WG + lid] = p;
      l[r] = l[r] * alpha[r] + wgSum(p, lid);
      m[r] = mNew;
    }
    workgroupBarrier();
    // P.V: thread (kq, j) sums keys kq, kq + KQ, ... of the tile for output dim j.
    if (kq < KQ) {
      for (var r = 0u; r < HPW; r++) { acc[r] *= alpha[r]; }
      let n = min(WG, end - k0);
      for (var i = kq; i < n; i += KQ) {
        let vv = v[((k0 + i) * P.nKv + kh) * DH + j];
        for (var r = 0u; r < HPW; r++) { acc[r] += sc[r * WG + i] * vv; }
      }
    }
    workgroupBarrier();
  }
  // Sum the KQ key lanes of each output dim, and write this split's (o, m, l).
  for (var r = 0u; r < HPW; r++) { sc[r * WG + lid] = select(0.0, acc[r], kq < KQ); }
  workgroupBarrier();
  if (lid < DH) {
    for (var r = 0u; r < HPW; r++) {
      var o = 0.0;
      for (var i = 0u; i < KQ; i++) { o += sc[r * WG + i * DH + lid]; }
      let base = ((h0 + r) * P.nSplit + split) * (DH + 2u);
      part[base + lid] = o;
      if (lid == 0u) {
        part[base + DH] = m[r];
        part[base + DH + 1u] = l[r];
      }
    }
  }
}

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let base = h * P.nSplit * (DH + 2u);
  var M = NEG;
  for (var i = 0u; i < P.nSplit; i++) {
    let b = base + i * (DH + 2u);
    if (part[b + DH + 1u] > 0.0) { M = max(M, part[b + DH]); }
  }
  var den = 0.0;
  for (var i = 0u; i < P.nSplit; i++) {
    let b = base + i * (DH + 2u);
    let li = part[b + DH + 1u];
    if (li > 0.0) { den += exp(part[b + DH] - M) * li; }
  }
  for (var j = lid; j < DH; j += WG) {
    var o = 0.0;
    for (var i = 0u; i < P.nSplit; i++) {
      let b = base + i * (DH + 2u);
      if (part[b + DH + 1u] > 0.0) { o += exp(part[b + DH] - M) * part[b + j]; }
    }
    out[P.oOff + h * DH + j] = o / den;
  }
}

// #include reduce
