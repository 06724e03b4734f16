// Causal grouped-query attention for a batch of T new queries (prefill) on GPUs for head dims above 128
// (kernels/attentionTiled.wgsl takes the rest): the same flash-style walk as attentionTiled, BQ = 16 queries of
// one head per workgroup over key blocks of BK = 16 with an online softmax, but the head dim is staged in
// slices of DC = 64 columns, so workgroup memory stays at ~9 KB whatever the head dim: a key block sums each
// query-key score over the slices of Q and K, then adds P.V one slice of V at a time. Each thread keeps the
// output columns ki, ki + 16, ... of its query (CPT <= 32 of them). Query t sits at position pos0 + t (pos0 from
// `step`) and sees cache rows 0..pos0 + t.
// q: [T, nH, d] (offset/stride), k, v caches: [capacity, nKv, d], out: [T, nH * d] (offset/stride).

override DH: u32 = 256u; // head dim: a multiple of 4, <= 512
const DC = 64u; // head-dim columns per slice
const LOADS = 4u; // BQ * DC / 256 = BK * DC / 256: values of a slice each thread stages
override CPT: u32 = (DH + 15u) / 16u; // output columns per thread, <= 32

var<workgroup> Qs: array<f32, BQ * DC>;
var<workgroup> KVs: array<f32, BK * (DC + 1u)>; // a slice of K (padded rows), later of V

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tq0 = wid.x * BQ;
  let h = wid.y;
  let kh = h / (P.nH / P.nKv);
  let pos0 = step.pos0;
  let qi = lid / BK;
  let ki = lid % BK;
  let tq = tq0 + qi;
  if (lid < BQ) {
    rowM[lid] = NEG;
    rowL[lid] = 0.0;
  }
  var acc: array<f32, 32>;
  for (var u = 0u; u < CPT; u++) { acc[u] = 0.0; }
  let nKeys = pos0 + min(P.T, tq0 + BQ); // keys seen by the block's last query
  for (var k0 = 0u; k0 < nKeys; k0 += BK) {
    let key = k0 + ki;
    // Scores: q . k summed over the slices of the head dim.
    var s = 0.0;
    for (var c0 = 0u; c0 < DH; c0 += DC) {
      var qr: array<f32, LOADS>;
      var kr: array<f32, LOADS>;
      for (var r = 0u; r < LOADS; r++) {
        let e = lid + r * 256u;
        let row = e / DC;
        let col = c0 + e % DC;
        let t = tq0 + row;
        let kk = k0 + row;
        qr[r] = 0.0;
        kr[r] = 0.0;
        if (col < DH && t < P.T) { qr[r] = q[P.qOff + t * P.qStride + h * DH + col] * P.scale; }
        if (col < DH && kk < nKeys) { kr[r] = k[(kk * P.nKv + kh) * DH + col]; }
      }
      for (var r = 0u; r < LOADS; r++) {
        let e = lid + r * 256u;
        Qs[e] = qr[r];
        KVs[(e / DC) * (DC + 1u) + e % DC] = kr[r];
      }
      workgroupBarrier();
      for (var c = 0u; c < DC; c++) { s += Qs[qi * DC + c] * KVs[ki * (DC + 1u) + c]; }
      workgroupBarrier();
    }
    s = select(NEG, s, tq < P.T && key <= pos0 + tq);
    let a = softmaxTile(qi, lid, s);
    // P.V, one slice of V at a time: this thread's columns c0 + ki + 16 j of the slice.
    for (var c0 = 0u; c0 < DH; c0 += DC) {
      var vr: array<f32, LOADS>;
      for (var r = 0u; r < LOADS; r++) {
        let e = lid + r * 256u;
        let kk = k0 + e / DC;
        let col = c0 + e % DC;
        vr[r] = 0.0;
        if (col < DH && kk < nKeys) { vr[r] = v[(kk * P.nKv + kh) * DH + col]; }
      }
      for (var r = 0u; r < LOADS; r++) { KVs[lid + r * 256u] = vr[r]; }
      workgroupBarrier();
      for (var j = 0u; j < DC / 16u; j++) {
        let c = c0 + ki + 16u * j;
        if (c < DH) {
          let u = c / 16u;
          var o = acc[u] * a;
          for (var kk = 0u; kk < BK; kk++) { o += Ps[qi * BK + kk] * KVs[kk * DC + ki + 16u * j]; }
          acc[u] = o;
        }
      }
      workgroupBarrier();
    }
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
