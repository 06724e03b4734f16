// The Mamba-2 scan for prefill, as the chunked SSD: the T tokens are cut into chunks of L; within a chunk the
// recurrence is a masked matrix product, and only chunk-end states are carried across chunks.
// With a_t = dt_t A and Acum_t its cumulative sum within the chunk (inclusive):
//   y_t = sum_{s<=t} (C_t.B_s) exp(Acum_t - Acum_s) dt_s x_s  +  exp(Acum_t) C_t.state_in  +  D x_t
//   state_in(next) = exp(Acum_end) state_in + sum_s exp(Acum_end - Acum_s) dt_s x_s B_s^T
// Every exponent is <= 0, so nothing overflows. Five dispatches, in order:
//   prep        per (chunk, head):       dt_t and Acum_t -> dtA [nh, T]
//   cb          per (chunk, group):      C_t.B_s -> cb [nC, ng, L, L]
//   chunkState  per (chunk, head, tile): the chunk's own end-state contribution -> states [nC, nh, hd, N]
//   statePass   per (head, p, n):        walks the chunks in order; states[c] becomes the state entering chunk c;
//                                        the final state goes back to `state`
//   output      per (chunk, head, p-block): y
// x: [T, nh*hd], dt: [T, nh], B, C: [T, ng*N] (offset/stride), hp: (A, dt_bias, D) per head,
// state: f32 [nh, hd, N], out: [T, nh*hd] (offset/stride).

struct Params {
  T: u32,
  nh: u32,
  hd: u32,
  N: u32,
  ng: u32,
  nC: u32, // number of chunks
  xOff: u32,
  xStride: u32,
  dtOff: u32,
  dtStride: u32,
  bOff: u32,
  bStride: u32,
  cOff: u32,
  cStride: u32,
  oOff: u32,
  oStride: u32,
  dtMin: f32,
  dtMax: f32,
}

override L: u32 = 64u; // chunk length, a power of two <= 64
override NS: u32 = 128u; // state size N
const WG = 256u;
override PB: u32 = WG / L; // rows p per output workgroup

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dtRaw: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read> hp: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> dtA: array<vec2f>; // (dt, Acum) [nh, T]
@group(0) @binding(9) var<storage, read_write> cb: array<f32>;
@group(0) @binding(10) var<storage, read_write> states: array<f32>;

fn group(h: u32) -> u32 {
  return h / (P.nh / P.ng);
}

/** Tokens in chunk c. */
fn chunkLen(c: u32) -> u32 {
  return min(L, P.T - c * L);
}

@compute @workgroup_size(64)
fn prep(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= P.nC * P.nh) { return; }
  let c = e / P.nh;
  let h = e % P.nh;
  let k = hp[h];
  var acum = 0.0;
  for (var i = 0u; i < chunkLen(c); i++) {
    let t = c * L + i;
    let dt = dtOf(dtRaw[P.dtOff + t * P.dtStride + h], k.y, P.dtMin, P.dtMax);
    acum += dt * k.x;
    dtA[h * P.T + t] = vec2f(dt, acum);
  }
}

@compute @workgroup_size(WG)
fn cbMain(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let c = wid.y;
  let Lc = chunkLen(c);
  // Each thread a 4x4 block of the L x L matrix (L <= 64).
  let ti = (lid / 16u) * 4u;
  let si = (lid % 16u) * 4u;
  if (ti >= L || si >= L || si > ti + 3u) { return; } // out of range, or above the diagonal (never read)
  var acc: array<vec4f, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }
  let t0 = c * L;
  for (var n = 0u; n < NS; n++) {
    var cv = vec4f(0.0);
    var bv = vec4f(0.0);
    for (var i = 0u; i < 4u; i++) {
      if (ti + i < Lc) { cv[i] = C[P.cOff + (t0 + ti + i) * P.cStride + g * NS + n]; }
      if (si + i < Lc) { bv[i] = B[P.bOff + (t0 + si + i) * P.bStride + g * NS + n]; }
    }
    for (var i = 0u; i < 4u; i++) { acc[i] = fma(vec4f(cv[i]), bv, acc[i]); }
  }
  let base = (c * P.ng + g) * L * L;
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) { cb[base + (ti + i) * L + si + j] = acc[i][j]; }
  }
}

// chunkState tiles: 8 x 32 threads, each 4 p x 4 n: a 32 x 128 tile of the [hd, N] contribution.
const SB = 16u; // tokens staged per step
var<workgroup> xs: array<vec4f, SB * 8u>; // [s][p / 4], x weighted by exp(Acum_end - Acum_s) dt_s
var<workgroup> bs: array<vec4f, SB * 32u>; // [s][n / 4]

@compute @workgroup_size(WG)
fn chunkState(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tilesN = (NS + 127u) / 128u;
  let p0 = (wid.x / tilesN) * 32u;
  let n0 = (wid.x % tilesN) * 128u;
  let h = wid.y;
  let c = wid.z;
  let g = group(h);
  let Lc = chunkLen(c);
  let t0 = c * L;
  let acumEnd = dtA[h * P.T + t0 + Lc - 1u].y;
  let tp = lid / 32u; // p group
  let tn = lid % 32u; // n group
  var acc: array<vec4f, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }
  for (var s0 = 0u; s0 < Lc; s0 += SB) {
    // Stage x (weighted): 16 x 32 values, 2 per thread; and B: 16 x 128 values, 8 per thread.
    for (var r = 0u; r < 2u; r++) {
      let e = lid + r * WG;
      let s = e / 32u;
      let p = p0 + e % 32u;
      var v = 0.0;
      if (s0 + s < Lc && p < P.hd) {
        let t = t0 + s0 + s;
        let da = dtA[h * P.T + t];
        v = x[P.xOff + t * P.xStride + h * P.hd + p] * exp(acumEnd - da.y) * da.x;
      }
      xs[s * 8u + (e % 32u) / 4u][e % 4u] = v;
    }
    for (var r = 0u; r < 8u; r++) {
      let e = lid + r * WG;
      let s = e / 128u;
      let n = n0 + e % 128u;
      var v = 0.0;
      if (s0 + s < Lc && n < NS) { v = B[P.bOff + (t0 + s0 + s) * P.bStride + g * NS + n]; }
      bs[s * 32u + (e % 128u) / 4u][e % 4u] = v;
    }
    workgroupBarrier();
    for (var s = 0u; s < SB; s++) {
      let a = xs[s * 8u + tp];
      let b = bs[s * 32u + tn];
      acc[0] = fma(vec4f(a.x), b, acc[0]);
      acc[1] = fma(vec4f(a.y), b, acc[1]);
      acc[2] = fma(vec4f(a.z), b, acc[2]);
      acc[3] = fma(vec4f(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }
  let base = (c * P.nh + h) * P.hd * NS;
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + tp * 4u + i;
    if (p >= P.hd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tn * 4u + j;
      if (n < NS) { states[base + p * NS + n] = acc[i][j]; }
    }
  }
}

@compute @workgroup_size(WG)
fn statePass(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  let per = P.hd * NS;
  if (e >= P.nh * per) { return; }
  let h = e / per;
  let o = e % per;
  var s = state[e];
  for (var c = 0u; c < P.nC; c++) {
    let i = (c * P.nh + h) * per + o;
    let contrib = states[i];
    states[i] = s;
    let decay = exp(dtA[h * P.T + c * L + chunkLen(c) - 1u].y);
    s = decay * s + contrib;
  }
  state[e] = s;
}

var<workgroup> G: array<f32, L * L>; // [t][s]: (C_t.B_s) exp(Acum_t - Acum_s) dt_s, s <= t
var<workgroup> xo: array<f32, WG>; // [s][p]
var<workgroup> st: array<f32, PB * (NS + 1u)>; // state entering the chunk, [p][n], padded rows
var<workgroup> ac: array<vec2f, L>; // (dt, Acum)

@compute @workgroup_size(WG)
fn outputMain(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.y;
  let c = wid.z;
  let g = group(h);
  let Lc = chunkLen(c);
  let t0 = c * L;
  let t = lid / PB;
  let pp = lid % PB;
  let p = wid.x * PB + pp;
  let valid = t < Lc && p < P.hd;
  if (lid < Lc) { ac[lid] = dtA[h * P.T + t0 + lid]; }
  var xv = 0.0;
  if (valid) { xv = x[P.xOff + (t0 + t) * P.xStride + h * P.hd + p]; }
  xo[lid] = xv;
  let sBase = ((c * P.nh + h) * P.hd + wid.x * PB) * NS;
  for (var e = lid; e < PB * NS; e += WG) {
    let r = e / NS;
    let n = e % NS;
    var v = 0.0;
    if (wid.x * PB + r < P.hd) { v = states[sBase + e]; }
    st[r * (NS + 1u) + n] = v;
  }
  workgroupBarrier();
  let cbBase = (c * P.ng + g) * L * L;
  for (var e = lid; e < L * L; e += WG) {
    let ti = e / L;
    let si = e % L;
    var v = 0.0;
    if (si <= ti && ti < Lc) { v = cb[cbBase + e] * exp(ac[ti].y - ac[si].y) * ac[si].x; }
    G[e] = v;
  }
  workgroupBarrier();
  if (!valid) { return; }
  var y = 0.0;
  for (var s = 0u; s <= t; s++) { y += G[t * L + s] * xo[s * PB + pp]; }
  var inter = 0.0;
  let co = P.cOff + (t0 + t) * P.cStride + g * NS;
  for (var n = 0u; n < NS; n++) { inter += C[co + n] * st[pp * (NS + 1u) + n]; }
  y += exp(ac[t].y) * inter + hp[h].z * xv;
  out[P.oOff + (t0 + t) * P.oStride + h * P.hd + p] = y;
}

// #include softplus
