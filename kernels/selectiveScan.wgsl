// The Mamba-1 selective scan (transformers MambaMixer), T tokens from a carried state, for prefill and decode:
//   dt = softplus(dt_raw + dt_bias[i]),  h[i, n] = exp(dt A[i, n]) h[i, n] + dt x[i] B[n],
//   y[i] = sum_n h[i, n] C[n] + D[i] x[i],  then y * silu(z[i]) when hasZ.
// x, dtRaw (dt_proj without its bias), z, out: [T, I]; B, C: [T, N] (offset/stride each: B and C are usually
// columns of x_proj's output); cp: the f32 constants made by `prep` (A = -exp(A_log) [I, N], then (dt_bias, D)
// per channel); state: f32 [I, N], read and written back, so chunked prefill equals one-shot.
// A workgroup holds WG / TPR channels; TPR lanes (a power of two) split a channel's N state entries, NPL each,
// in registers for all T tokens; y is summed over the lanes (subgroup shuffles, or workgroup memory).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  T: u32,
  I: u32,
  N: u32,
  xOff: u32,
  xStride: u32,
  dtOff: u32,
  dtStride: u32,
  bOff: u32,
  bStride: u32,
  cOff: u32,
  cStride: u32,
  zOff: u32,
  zStride: u32,
  oOff: u32,
  oStride: u32,
  hasZ: u32,
  headCh: u32, // channels per head: B and C of channel i are at (i / headCh) * bcHead in their rows (Zamba)
  bcHead: u32, // (one head: headCh = I, bcHead = 0)
}

override WG: u32 = 256u;
override TPR: u32 = 16u; // lanes per channel: a power of two, <= the subgroup size when subgroups are on
override NPL: u32 = 1u; // state entries per lane: ceil(N / TPR) <= 16
override AFMT: u32 = 0u;
override TFMT: u32 = 0u;
override DFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dtRaw: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read> z: array<f32>;
@group(0) @binding(6) var<storage, read> cp: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;
// prep only
@group(0) @binding(9) var<storage, read> aLog: array<u32>;
@group(0) @binding(10) var<storage, read> dtBias: array<u32>;
@group(0) @binding(11) var<storage, read> Dw: array<u32>;
@group(0) @binding(12) var<storage, read_write> cpOut: array<f32>;

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
}

// #if SUBGROUPS
/** Sum of v over the TPR lanes of a channel (consecutive lanes of one subgroup); every lane gets it. */
fn laneSum(v: f32, lid: u32) -> f32 {
  var s = v;
  for (var m = TPR / 2u; m > 0u; m >>= 1u) { s += subgroupShuffleXor(s, m); }
  return s;
}
// #else
var<workgroup> red: array<f32, WG>;

/** Sum of v over the TPR lanes of a channel; every lane gets it. Uniform control flow only. */
fn laneSum(v: f32, lid: u32) -> f32 {
  if (TPR == 1u) { return v; }
  red[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[lid - lane];
  workgroupBarrier();
  return r;
}
// #endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let live = i < P.I;
  let N = P.N;
  var a: array<f32, 16>;
  var s: array<f32, 16>;
  for (var j = 0u; j < NPL; j++) {
    let n = lane + j * TPR;
    a[j] = 0.0;
    s[j] = 0.0;
    if (live && n < N) {
      a[j] = cp[i * N + n];
      s[j] = state[i * N + n];
    }
  }
  var dtb = 0.0;
  var dd = 0.0;
  if (live) {
    dtb = cp[P.I * N + 2u * i];
    dd = cp[P.I * N + 2u * i + 1u];
  }
  for (var t = 0u; t < P.T; t++) {
    var xv = 0.0;
    var dt = 0.0;
    if (live) {
      xv = x[P.xOff + t * P.xStride + i];
      dt = softplus(dtRaw[P.dtOff + t * P.dtStride + i] + dtb);
    }
    let dx = dt * xv;
    let hb = (i / P.headCh) * P.bcHead;
    let bo = P.bOff + t * P.bStride + hb;
    let co = P.cOff + t * P.cStride + hb;
    var acc = 0.0;
    for (var j = 0u; j < NPL; j++) {
      let n = lane + j * TPR;
      if (live && n < N) {
        s[j] = exp(dt * a[j]) * s[j] + dx * B[bo + n];
        acc += s[j] * C[co + n];
      }
    }
    let y = laneSum(acc, lid);
    if (live && lane == 0u) {
      var v = y + dd * xv;
      if (P.hasZ != 0u) { v *= silu(z[P.zOff + t * P.zStride + i]); }
      out[P.oOff + t * P.oStride + i] = v;
    }
  }
  for (var j = 0u; j < NPL; j++) {
    let n = lane + j * TPR;
    if (live && n < N) { state[i * N + n] = s[j]; }
  }
}

/** The scan's f32 constants from the checkpoint's weights, once: cpOut = (-exp(A_log) [I, N], (dt_bias, D) [I]). */
@compute @workgroup_size(256)
fn prep(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * 256u + lid;
  let an = P.I * P.N;
  if (e < an) {
    cpOut[e] = -exp(decode(aLog[wordIndex(e, AFMT)], e, AFMT));
  } else if (e < an + P.I) {
    let i = e - an;
    cpOut[an + 2u * i] = decode(dtBias[wordIndex(i, TFMT)], i, TFMT);
    cpOut[an + 2u * i + 1u] = decode(Dw[wordIndex(i, DFMT)], i, DFMT);
  }
}

// #include softplus
// #include weights
