// Causal grouped-query attention for a batch of T new queries (prefill) on CPU adapters, same contract as
// kernels/attention.wgsl. A CPU adapter runs a workgroup's invocations in SIMD lanes and serves a
// workgroup-memory read in a loop as a gather, a storage read whose address is the same in every lane as one
// scalar load: so here a lane takes TQ queries (their query and output rows in private arrays), all lanes of a
// workgroup walk the same keys, and each K and V row is read straight from the cache once for the lane's TQ
// queries (no staging, no barriers). Keys go in tiles of BK: their scores, one rescale of the running sums per
// tile. Query t sits at position pos0 + t (pos0 from `step`) and sees cache rows 0..pos0 + t.

override DH: u32 = 64u; // head dim: a multiple of 4, <= 4 * D4MAX
override LANES: u32 = 8u; // invocations a workgroup: the adapter's SIMD width
const D4MAX = 32u;
const TQ = 2u; // queries a lane: t = base + i * LANES (ATTN_CPU_QUERIES in src/engine/gpu/ops.ts)
const BK = 8u;
const NEG = -3.0e38;

@group(0) @binding(2) var<storage, read> k4: array<vec4f>;
@group(0) @binding(3) var<storage, read> v4: array<vec4f>;

@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D4 = DH / 4u;
  let tq0 = wid.x * LANES * TQ;
  let h = wid.y;
  let kh = h / (P.nH / P.nKv);
  let pos0 = step.pos0;
  var qv: array<vec4f, TQ * D4MAX>;
  var acc: array<vec4f, TQ * D4MAX>;
  var last: array<u32, TQ>; // the last row each query sees
  var m: array<f32, TQ>;
  var l: array<f32, TQ>;
  for (var i = 0u; i < TQ; i++) {
    let tq = min(tq0 + lid + i * LANES, P.T - 1u); // lanes past T repeat the last query (not written)
    last[i] = pos0 + tq;
    let b = P.qOff + tq * P.qStride + h * DH;
    for (var c = 0u; c < D4; c++) {
      qv[i * D4MAX + c] = vec4f(q[b + 4u * c], q[b + 4u * c + 1u], q[b + 4u * c + 2u], q[b + 4u * c + 3u]) * P.scale;
      acc[i * D4MAX + c] = vec4f(0.0);
    }
    m[i] = NEG;
    l[i] = 0.0;
  }
  let nKeys = pos0 + min(P.T, tq0 + LANES * TQ); // rows seen by the workgroup's last query
  let rowStep = P.nKv * D4;
  var s: array<f32, TQ * BK>;
  for (var k0 = 0u; k0 < nKeys; k0 += BK) {
    for (var j = 0u; j < BK; j++) {
      let o = min(k0 + j, nKeys - 1u) * rowStep + kh * D4;
      var d: array<vec4f, TQ>;
      for (var i = 0u; i < TQ; i++) { d[i] = vec4f(0.0); } // (zeroed explicitly: left implicit, lavapipe kept the last key's sums)
      for (var c = 0u; c < D4; c++) {
        let kv = k4[o + c];
        for (var i = 0u; i < TQ; i++) { d[i] += qv[i * D4MAX + c] * kv; }
      }
      for (var i = 0u; i < TQ; i++) { s[i * BK + j] = select(NEG, d[i].x + d[i].y + d[i].z + d[i].w, k0 + j <= last[i]); }
    }
    for (var i = 0u; i < TQ; i++) {
      var mx = m[i];
      for (var j = 0u; j < BK; j++) { mx = max(mx, s[i * BK + j]); }
      let corr = exp(m[i] - mx);
      m[i] = mx;
      var li = l[i] * corr;
      for (var j = 0u; j < BK; j++) {
        let p = select(0.0, exp(s[i * BK + j] - mx), s[i * BK + j] > NEG);
        s[i * BK + j] = p;
        li += p;
      }
      l[i] = li;
      for (var c = 0u; c < D4; c++) { acc[i * D4MAX + c] *= corr; }
    }
    for (var j = 0u; j < BK; j++) {
      let o = min(k0 + j, nKeys - 1u) * rowStep + kh * D4;
      for (var c = 0u; c < D4; c++) {
        let vv = v4[o + c];
        for (var i = 0u; i < TQ; i++) { acc[i * D4MAX + c] += s[i * BK + j] * vv; }
      }
    }
  }
  for (var i = 0u; i < TQ; i++) {
    let t = tq0 + lid + i * LANES;
    if (t >= P.T) { break; }
    let inv = 1.0 / l[i];
    let ob = P.oOff + t * P.oStride + h * DH;
    for (var c = 0u; c < D4; c++) {
      let r = acc[i * D4MAX + c] * inv;
      out[ob + 4u * c] = r.x;
      out[ob + 4u * c + 1u] = r.y;
      out[ob + 4u * c + 2u] = r.z;
      out[ob + 4u * c + 3u] = r.w;
    }
  }
}

// #include attentionPrefill
