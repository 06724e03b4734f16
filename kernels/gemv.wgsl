// Matrix-vector products for decode (T <= 4 rows of x share each weight read):
//   out[t, nOff + n] = (accumulate ? out : 0) + alpha * (sum_k x[t, k] W[n, k] + bias[nOff + n])
// x: [T, K] f32 (offset/stride), W: [N, K] one part of a weight, out: [T, *].
// TPR threads per weight row, WG / TPR rows per workgroup; each lane reads whole vec4<u32> words, so the
// weight stream is coalesced. Also the MoE form (moe > 0): workgroup row wid.y is a slot s = t*k + j that
// multiplies the rows of expert experts[s] (the weight is [E, N, K], this part holding experts
// eStart..eStart+eRows); x row is t (moe = 1) or s (moe = 2); out row is s.
// Entry points: main (vec4 loads; K % 8 == 0 for 16-bit, K % 4 == 0 for f32, x offset/stride % 4 == 0) and
// scalar (any shape).
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
}

override WG: u32 = 256u;
override TPR: u32 = 32u; // threads per row, a power of two, a multiple of SG
override SG: u32 = 32u;
override TT: u32 = 1u; // rows of x, 1..4
override WFMT: u32 = 0u;
override BFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read> x1: array<f32>;
@group(0) @binding(2) var<storage, read> W4: array<vec4u>;
@group(0) @binding(2) var<storage, read> W1: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read> experts: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

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
  for (var t = 0u; t < TT; t++) {
    let o = P.oOff + (r.oRow + t) * P.oStride + col;
    var y = P.alpha * (sum[t] + b);
    if (P.accumulate != 0u) { y += out[o]; }
    out[o] = y;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = rowOf(wid, nwg, lid);
  var acc = vec4f(0.0);
  if (r.n < P.N) {
    let per = select(8u, 4u, WFMT == 0u); // values per vec4<u32>
    let rowV = P.K / per;
    let wBase = r.wRow * rowV;
    let xs = P.xStride / 4u;
    let xBase = P.xOff / 4u + r.xRow * xs;
    for (var v = lid % TPR; v < rowV; v += TPR) {
      var lo = vec4f(0.0);
      var hi = vec4f(0.0);
      decode8(W4[wBase + v], WFMT, &lo, &hi);
      let xi = xBase + v * (per / 4u);
      if (WFMT == 0u) {
        acc.x += dot(lo, x4[xi]);
        if (TT > 1u) { acc.y += dot(lo, x4[xi + xs]); }
        if (TT > 2u) { acc.z += dot(lo, x4[xi + 2u * xs]); }
        if (TT > 3u) { acc.w += dot(lo, x4[xi + 3u * xs]); }
      } else {
        acc.x += dot(lo, x4[xi]) + dot(hi, x4[xi + 1u]);
        if (TT > 1u) { acc.y += dot(lo, x4[xi + xs]) + dot(hi, x4[xi + xs + 1u]); }
        if (TT > 2u) { acc.z += dot(lo, x4[xi + 2u * xs]) + dot(hi, x4[xi + 2u * xs + 1u]); }
        if (TT > 3u) { acc.w += dot(lo, x4[xi + 3u * xs]) + dot(hi, x4[xi + 3u * xs + 1u]); }
      }
    }
  }
  finish(acc, r, lid);
}

@compute @workgroup_size(WG)
fn scalar(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = rowOf(wid, nwg, lid);
  var acc = vec4f(0.0);
  if (r.n < P.N) {
    let wBase = r.wRow * P.K;
    let xBase = P.xOff + r.xRow * P.xStride;
    for (var k = lid % TPR; k < P.K; k += TPR) {
      let i = wBase + k;
      let wv = decode(W1[wordIndex(i, WFMT)], i, WFMT);
      for (var t = 0u; t < TT; t++) { acc[t] += wv * x1[xBase + t * P.xStride + k]; }
    }
  }
  finish(acc, r, lid);
}

// #include rowSum
// #include weights
