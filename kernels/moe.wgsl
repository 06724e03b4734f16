// Mixture-of-experts routing and combining (the expert products themselves are gemv.wgsl in its MoE form for
// decode, gemm.wgsl's MOE form over the slots grouped by expert for prefill).
//   routerTopK  per token: the k largest router logits (ties to the lower index), softmax over those k
//               (accumulate = 0: Granite) or over all E logits, the k kept unnormalised (accumulate = 1: Jamba)
//               logits: [T, E] (offset/stride) -> experts u32 [T, k], weights f32 [T, k]
//   combine     out[t, i] = (accumulate ? out : 0) + alpha * sum_j weights[t, j] y[t*k + j, i]
//               y: [T*k, D] (offset/stride), out: [T, D] (offset/stride)
//   group       one workgroup: the T slots (here T = tokens x k) sorted by expert into tiles of 64 rows, each
//               expert's rows starting a tile: rowMap [aOff * 64] = the slot at each sorted row (NONE: padding),
//               tileExpert [aOff] = each tile's expert (NONE: past the last). aOff = tiles, >= ceil(T / 64) + E.

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
@group(0) @binding(6) var<storage, read_write> rowMap: array<u32>;
@group(0) @binding(7) var<storage, read_write> tileExpert: array<u32>;

const NONE = 0xffffffffu;
const GROUP_TILE = 64u; // rows of gemm.wgsl's tile
const MAX_EXPERTS = 1024u;
var<workgroup> counts: array<atomic<u32>, MAX_EXPERTS>;
var<workgroup> cursor: array<atomic<u32>, MAX_EXPERTS>;
var<workgroup> firstRow: array<u32, MAX_EXPERTS>;

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

@compute @workgroup_size(WG)
fn group(@builtin(local_invocation_index) lid: u32) {
  let tiles = P.aOff;
  for (var e = lid; e < P.E; e += WG) {
    atomicStore(&counts[e], 0u);
    atomicStore(&cursor[e], 0u);
  }
  workgroupBarrier();
  for (var s = lid; s < P.T; s += WG) { atomicAdd(&counts[min(experts[s], P.E - 1u)], 1u); }
  workgroupBarrier();
  if (lid == 0u) {
    var at = 0u;
    for (var e = 0u; e < P.E; e++) {
      firstRow[e] = at * GROUP_TILE;
      let n = (atomicLoad(&counts[e]) + GROUP_TILE - 1u) / GROUP_TILE;
      for (var i = 0u; i < n; i++) { tileExpert[at + i] = e; }
      at += n;
    }
    for (var i = at; i < tiles; i++) { tileExpert[i] = NONE; }
  }
  for (var r = lid; r < tiles * GROUP_TILE; r += WG) { rowMap[r] = NONE; }
  storageBarrier();
  workgroupBarrier();
  for (var s = lid; s < P.T; s += WG) {
    let e = min(experts[s], P.E - 1u);
    rowMap[firstRow[e] + atomicAdd(&cursor[e], 1u)] = s;
  }
}
