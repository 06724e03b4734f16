// Attention for one new token (decode), split over the keys (flash-decoding):
//   partial  per (group of HPW query heads sharing a KV head, split): all of the split's scores go to workgroup
//            memory (TPK threads per key, coalesced), then one softmax over them and P.V (KQ threads per
//            output dim); leaves (o unnormalised [d], max m, sum l) per head in `part`
//   combine  per head: merges the splits: out = sum_i exp(m_i - M) o_i / sum_i exp(m_i - M) l_i
// The grid is fixed when the list is recorded; the split length follows S = pos0 + 1 (from `step`), so the
// same list serves every step. q: [nH, d] (offset), k, v caches: [capacity, nKv, d], out: [nH * d] (offset).
// With WIN > 0 the caches are a sliding window's ring (RecurrentGemma's local attention, position p in row p % WIN,
// the new row already written): S = min(pos0 + 1, WIN) rows 0..S-1, in any order (the softmax does not care).
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

override WG: u32 = 256u;
override SG: u32 = 32u;
override DH: u32 = 64u; // head dim, a multiple of 4, <= WG
override HPW: u32 = 1u; // query heads per workgroup, <= 8
override TPK: u32 = 4u; // threads per key for the scores: 1, 2 or 4, dividing DH / 4
override MAXK: u32 = 1024u; // keys per split at most: a multiple of WG / TPK, HPW * MAXK <= 4096
override D4: u32 = DH / 4u;
override KQ: u32 = WG / DH; // key lanes in P.V
override TILE: u32 = WG / TPK; // keys scored at once
override WIN: u32 = 0u; // sliding window (ring rows); 0: the whole cache up to pos0
const NEG = -3.0e38; // stands for -infinity (WGSL has no infinity literal)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k4: array<vec4f>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>; // [nH, nSplit, d + 2]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> step: Step;

var<workgroup> qs: array<vec4f, HPW * D4>;
var<workgroup> sc: array<f32, 4096>; // [head][key of the split]: scores, then probabilities

/** Sum over the TPK consecutive threads of a key; right on the key's first thread. */
fn keySum(x: f32, lid: u32) -> f32 {
  var s = x;
// #if SUBGROUPS
  if (TPK >= 2u) { s += subgroupShuffleXor(s, 1u); }
  if (TPK >= 4u) { s += subgroupShuffleXor(s, 2u); }
// #else
  if (TPK > 1u) {
    red[lid].x = s;
    workgroupBarrier();
    for (var i = 1u; i < TPK; i++) { s += red[lid + i].x; }
    workgroupBarrier();
  }
// #endif
  return s;
}

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h0 = wid.x * HPW;
  let split = wid.y;
  let kh = h0 / (P.nH / P.nKv);
  let S = select(step.pos0 + 1u, min(step.pos0 + 1u, WIN), WIN > 0u);
  let per = ((S + P.nSplit - 1u) / P.nSplit + TILE - 1u) / TILE * TILE; // <= MAXK by the choice of nSplit
  let start = split * per;
  let end = min(S, start + per);
  if (start >= end) { // nothing to do: an empty partial
    if (lid < HPW) {
      let base = ((h0 + lid) * P.nSplit + split) * (DH + 2u);
      part[base + DH] = NEG;
      part[base + DH + 1u] = 0.0;
    }
    return;
  }
  let n = end - start;
  for (var e = lid; e < HPW * D4; e += WG) {
    let b = P.qOff + (h0 + e / D4) * DH + (e % D4) * 4u;
    qs[e] = vec4f(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * P.scale;
  }
  workgroupBarrier();
  // Scores: thread lane of key i takes its D4 / TPK vec4s of the key row.
  let lane = lid % TPK;
  let cpl = D4 / TPK;
  for (var i0 = 0u; i0 < n; i0 += TILE) {
    let i = i0 + lid / TPK;
    var d: array<f32, 8>;
    for (var r = 0u; r < HPW; r++) { d[r] = 0.0; }
    if (i < n) {
      let kb = ((start + i) * P.nKv + kh) * D4 + lane * cpl;
      for (var c = 0u; c < cpl; c++) {
        let kv = k4[kb + c];
        for (var r = 0u; r < HPW; r++) { d[r] += dot(kv, qs[r * D4 + lane * cpl + c]); }
      }
    }
    for (var r = 0u; r < HPW; r++) {
      let s = keySum(d[r], lid);
      if (lane == 0u && i < n) { sc[r * MAXK + i] = s; }
    }
  }
  workgroupBarrier();
  // Softmax statistics, and the scores turned into exp(s - m).
  var m: array<f32, 8>;
  var l: array<f32, 8>;
  for (var r = 0u; r < HPW; r++) {
    var mx = NEG;
    for (var i = lid; i < n; i += WG) { mx = max(mx, sc[r * MAXK + i]); }
    m[r] = wgMax(mx, lid);
    var sum = 0.0;
    for (var i = lid; i < n; i += WG) {
      let p = exp(sc[r * MAXK + i] - m[r]);
      sc[r * MAXK + i] = p;
      sum += p;
    }
    l[r] = wgSum(sum, lid);
  }
  // P.V: thread (kq, j) sums keys kq, kq + KQ, ... for output dim j; four loads in flight per step.
  let j = lid % DH;
  let kq = lid / DH;
  var acc: array<f32, 8>;
  for (var r = 0u; r < HPW; r++) { acc[r] = 0.0; }
  if (kq < KQ) {
    let stride = P.nKv * DH;
    let vb = (start * P.nKv + kh) * DH + j;
    var i = kq;
    for (; i + 3u * KQ < n; i += 4u * KQ) {
      let v0 = v[vb + i * stride];
      let v1 = v[vb + (i + KQ) * stride];
      let v2 = v[vb + (i + 2u * KQ) * stride];
      let v3 = v[vb + (i + 3u * KQ) * stride];
      for (var r = 0u; r < HPW; r++) {
        let o = r * MAXK + i;
        acc[r] += sc[o] * v0 + sc[o + KQ] * v1 + sc[o + 2u * KQ] * v2 + sc[o + 3u * KQ] * v3;
      }
    }
    for (; i < n; i += KQ) {
      let v0 = v[vb + i * stride];
      for (var r = 0u; r < HPW; r++) { acc[r] += sc[r * MAXK + i] * v0; }
    }
  }
  workgroupBarrier();
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

var<workgroup> wts: array<f32, WG>; // per split: exp(m_i - M) / sum_i exp(m_i - M) l_i

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let base = h * P.nSplit * (DH + 2u);
  // One thread per split (nSplit <= WG); empty splits (l = 0) weigh nothing.
  var mi = NEG;
  var li = 0.0;
  if (lid < P.nSplit) {
    li = part[base + lid * (DH + 2u) + DH + 1u];
    if (li > 0.0) { mi = part[base + lid * (DH + 2u) + DH]; }
  }
  let M = wgMax(mi, lid);
  let wi = select(0.0, exp(mi - M), li > 0.0);
  let den = wgSum(wi * li, lid);
  wts[lid] = wi / den;
  workgroupBarrier();
  // o[j] = sum_i wts[i] o_i[j]: thread (iq, j) takes splits iq, iq + KQ, ...; then the KQ lanes are summed.
  let j = lid % DH;
  let iq = lid / DH;
  var o = 0.0;
  if (iq < KQ) {
    for (var i = iq; i < P.nSplit; i += KQ) { o += wts[i] * part[base + i * (DH + 2u) + j]; }
  }
  sc[lid] = o;
  workgroupBarrier();
  if (lid < DH) {
    var sum = 0.0;
    for (var q = 0u; q < KQ; q++) { sum += sc[q * DH + lid]; }
    out[P.oOff + h * DH + lid] = sum;
  }
}

// #include reduce
// #include step
