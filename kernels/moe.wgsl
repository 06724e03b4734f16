// Mixture-of-experts routing and combining (the expert products themselves are gemv.wgsl in its MoE form).
//   routerTopK  per token: the k largest router logits (ties to the lower index), softmax over those k
//               (accumulate = 0: Granite) or over all E logits, the k kept unnormalised (accumulate = 1: Jamba)
//               logits: [T, E] (offset/stride) -> experts u32 [T, k], weights f32 [T, k]
//   combine     out[t, i] = (accumulate ? out : 0) + alpha * sum_j weights[t, j] y[t*k + j, i]
//               y: [T*k, D] (offset/stride), out: [T, D] (offset/stride)

struct Params {
  T: u32,
  E: u32, // routerTopK: experts; combine: D
  k: u32,
  aOff: u32,
  aStride: u32,
  bOff: u32,
  bStride: u32,
  alpha: f32,
  accumulate: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> experts: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<storage, read> gates: array<f32>;
@group(0) @binding(5) var<storage, read_write> b: array<f32>;

@compute @workgroup_size(64)
fn routerTopK(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= P.T) { return; }
  let lo = P.aOff + t * P.aStride;
  var sel: array<u32, 16>;
  var val: array<f32, 16>;
  for (var j = 0u; j < P.k; j++) {
    var best = 0xffffffffu;
    var bv = 0.0;
    for (var e = 0u; e < P.E; e++) {
      var taken = false;
      for (var i = 0u; i < j; i++) { taken = taken || sel[i] == e; }
      let le = a[lo + e];
      if (!taken && (best == 0xffffffffu || le > bv)) {
        best = e;
        bv = le;
      }
    }
    sel[j] = best;
    val[j] = bv;
  }
  let top = val[0];
  var sum = 0.0;
  for (var j = 0u; j < P.k; j++) {
    val[j] = exp(val[j] - top);
    sum += val[j];
  }
  if (P.accumulate != 0u) { // softmax over all E
    sum = 0.0;
    for (var e = 0u; e < P.E; e++) { sum += exp(a[lo + e] - top); }
  }
  for (var j = 0u; j < P.k; j++) {
    experts[t * P.k + j] = sel[j];
    weights[t * P.k + j] = val[j] / sum;
  }
}

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D = P.E;
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= P.T * D) { return; }
  let t = e / D;
  let i = e % D;
  var s = 0.0;
  for (var j = 0u; j < P.k; j++) { s += gates[t * P.k + j] * a[P.aOff + (t * P.k + j) * P.aStride + i]; }
  let o = P.bOff + t * P.bStride + i;
  var y = P.alpha * s;
  if (P.accumulate != 0u) { y += b[o]; }
  b[o] = y;
}
