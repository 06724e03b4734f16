// Causal grouped-query attention for a batch of T new queries (prefill), flash style with one query per
// invocation: a workgroup of WG invocations takes WG consecutive queries of one head and walks the keys in
// tiles of BK rows staged in workgroup memory. Each invocation keeps its query, its output row and its online
// softmax (running max and sum) in registers, so a tile costs two barriers and no reduction across
// invocations; every invocation reads the same key row at once (a broadcast from workgroup memory).
// Query t sits at position pos0 + t (pos0 from `step`) and sees cache rows 0..pos0 + t.
// q: [T, nH, d] (offset/stride), k, v caches: [capacity, nKv, d], out: [T, nH * d] (offset/stride).

struct Params {
  T: u32,
  nH: u32,
  nKv: u32,
  qOff: u32,
  qStride: u32,
  oOff: u32,
  oStride: u32,
  scale: f32,
}

struct Step {
  pos0: u32,
  nTokens: u32,
  seed: u32,
  pad: u32,
}

override DH: u32 = 64u; // head dim: a multiple of 4, <= 128
override WG: u32 = 64u; // queries (invocations) per workgroup
const BK = 32u; // keys per tile
const NEG = -3.0e38;
const D4MAX = 32u; // 128 / 4: room in the private arrays; only DH / 4 entries are used

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> step: Step;

var<workgroup> Ks: array<vec4f, BK * DH / 4u>;
var<workgroup> Vs: array<vec4f, BK * DH / 4u>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D4 = DH / 4u;
  let tq0 = wid.x * WG;
  let h = wid.y;
  let kh = h / (P.nH / P.nKv);
  let pos0 = step.pos0;
  let tq = tq0 + lid;
  let live = tq < P.T;
  let last = pos0 + tq; // the last row this query sees
  var qv: array<vec4f, D4MAX>;
  var acc: array<vec4f, D4MAX>;
  if (live) {
    let b = P.qOff + tq * P.qStride + h * DH;
    for (var c = 0u; c < D4; c++) {
      qv[c] = vec4f(q[b + 4u * c], q[b + 4u * c + 1u], q[b + 4u * c + 2u], q[b + 4u * c + 3u]) * P.scale;
    }
  }
  for (var c = 0u; c < D4; c++) { acc[c] = vec4f(0.0); }
  var m = NEG;
  var l = 0.0;
  let nKeys = pos0 + min(P.T, tq0 + WG); // rows seen by the workgroup's last query
  var s: array<f32, BK>;
  for (var k0 = 0u; k0 < nKeys; k0 += BK) {
    // Stage BK rows of K and V (zeros past nKeys).
    for (var e = lid; e < BK * D4; e += WG) {
      let key = k0 + e / D4;
      var kr = vec4f(0.0);
      var vr = vec4f(0.0);
      if (key < nKeys) {
        let o = (key * P.nKv + kh) * DH + 4u * (e % D4);
        kr = vec4f(k[o], k[o + 1u], k[o + 2u], k[o + 3u]);
        vr = vec4f(v[o], v[o + 1u], v[o + 2u], v[o + 3u]);
      }
      Ks[e] = kr;
      Vs[e] = vr;
    }
    workgroupBarrier();
    if (live && k0 <= last) {
      var mx = m;
      for (var j = 0u; j < BK; j++) {
        var dot4 = vec4f(0.0);
        for (var c = 0u; c < D4; c++) { dot4 += qv[c] * Ks[j * D4 + c]; }
        let sj = select(NEG, dot4.x + dot4.y + dot4.z + dot4.w, k0 + j <= last);
        s[j] = sj;
        mx = max(mx, sj);
      }
      // Rescale what was summed under the old maximum once per tile, then add the tile.
      let corr = exp(m - mx);
      m = mx;
      l *= corr;
      for (var c = 0u; c < D4; c++) { acc[c] *= corr; }
      for (var j = 0u; j < BK; j++) {
        let p = select(0.0, exp(s[j] - m), s[j] > NEG);
        l += p;
        for (var c = 0u; c < D4; c++) { acc[c] += p * Vs[j * D4 + c]; }
      }
    }
    workgroupBarrier();
  }
  if (!live) { return; }
  let inv = 1.0 / l;
  let b = P.oOff + tq * P.oStride + h * DH;
  for (var c = 0u; c < D4; c++) {
    let r = acc[c] * inv;
    out[b + 4u * c] = r.x;
    out[b + 4u * c + 1u] = r.y;
    out[b + 4u * c + 2u] = r.z;
    out[b + 4u * c + 3u] = r.w;
  }
}
