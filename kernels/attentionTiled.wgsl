// Causal grouped-query attention for a batch of T new queries (prefill) on GPUs (CPU adapters take
// kernels/attention.wgsl: see attentionKernel in src/engine/gpu/ops.ts), flash style: a workgroup takes
// BQ = 16 queries of one head and walks the keys in blocks of BK = 16 with an online softmax, so S can be
// any length. Query t sits at position pos0 + t (pos0 from `step`) and sees cache rows 0..pos0 + t.
// q: [T, nH, d] (offset/stride), k, v caches: [capacity, nKv, d], out: [T, nH * d] (offset/stride).

override DH: u32 = 64u; // head dim <= 128
override CPT: u32 = (DH + 15u) / 16u; // output columns per thread
override TILE_LOADS: u32 = (BK * DH + 255u) / 256u; // values of a 16-row tile each thread loads (<= 8)

var<workgroup> Qs: array<f32, BQ * DH>;
var<workgroup> Ks: array<f32, BK * (DH + 1u)>; // padded rows: the 16 threads of a query read 16 keys
var<workgroup> Vs: array<f32, BK * DH>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tq0 = wid.x * BQ;
  let h = wid.y;
  let kh = h / (P.nH / P.nKv);
  let pos0 = step.pos0;
  let qi = lid / BK;
  let ki = lid % BK;
  let tq = tq0 + qi;
  // Staging loops have constant trip counts so that each thread's loads are issued together.
  for (var r = 0u; r < TILE_LOADS; r++) {
    let e = lid + r * 256u;
    let t = tq0 + e / DH;
    if (e < BQ * DH) { Qs[e] = select(0.0, q[P.qOff + t * P.qStride + h * DH + e % DH] * P.scale, t < P.T); }
  }
  if (lid < BQ) {
    rowM[lid] = NEG;
    rowL[lid] = 0.0;
  }
  var acc: array<f32, 8>;
  for (var u = 0u; u < CPT; u++) { acc[u] = 0.0; }
  let nKeys = pos0 + min(P.T, tq0 + BQ); // keys seen by the block's last query
  for (var k0 = 0u; k0 < nKeys; k0 += BK) {
    var kr: array<f32, 8>;
    var vr: array<f32, 8>;
    for (var r = 0u; r < TILE_LOADS; r++) {
      let e = lid + r * 256u;
      let key = k0 + e / DH;
      kr[r] = 0.0;
      vr[r] = 0.0;
      if (e < BK * DH && key < nKeys) {
        let o = (key * P.nKv + kh) * DH + e % DH;
        kr[r] = k[o];
        vr[r] = v[o];
      }
    }
    for (var r = 0u; r < TILE_LOADS; r++) {
      let e = lid + r * 256u;
      if (e < BK * DH) {
        Ks[(e / DH) * (DH + 1u) + e % DH] = kr[r];
        Vs[e] = vr[r];
      }
    }
    workgroupBarrier();
    let key = k0 + ki;
    var s = NEG;
    if (tq < P.T && key <= pos0 + tq) {
      s = 0.0;
      for (var c = 0u; c < DH; c++) { s += Qs[qi * DH + c] * Ks[ki * (DH + 1u) + c]; }
    }
    let a = softmaxTile(qi, lid, s);
    for (var u = 0u; u < CPT; u++) {
      let c = ki + u * 16u;
      if (c < DH) {
        var o = acc[u] * a;
        for (var kk = 0u; kk < BK; kk++) { o += Ps[qi * BK + kk] * Vs[kk * DH + c]; }
        acc[u] = o;
      }
    }
    workgroupBarrier();
  }
  if (tq >= P.T) { return; }
  let inv = 1.0 / rowL[qi];
  for (var u = 0u; u < CPT; u++) {
    let c = ki + u * 16u;
    if (c < DH) { out[P.oOff + tq * P.oStride + h * DH + c] = acc[u] * inv; }
  }
}

// #include attentionSoftmax
// #include attentionPrefill
