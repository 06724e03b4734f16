// The Mamba-2 scan for prefill, as the chunked SSD: the T tokens are cut into chunks of L; within a chunk the
// recurrence is a masked matrix product, and only chunk-end states are carried across chunks.
// With a_t = dt_t A and Acum_t its cumulative sum within the chunk (inclusive):
//   y_t = sum_{s<=t} (C_t.B_s) exp(Acum_t - Acum_s) dt_s x_s  +  exp(Acum_t) C_t.state_in  +  D x_t
//   state_in(next) = exp(Acum_end) state_in + sum_s exp(Acum_end - Acum_s) dt_s x_s B_s^T
// Every exponent is <= 0, so nothing overflows. Five dispatches, in order:
//   prep        per (head, chunk):        dt_t and Acum_t (a prefix sum over the chunk) -> dtA [nh, T]
//   cbMain      per (group, chunk):       C_t.B_s -> cb [nC, ng, L, L]
//   chunkState  per (tile, head, chunk):  the chunk's own end-state contribution -> states [nC, nh, hd, N]
//   statePass   per (head, p, n):         walks the chunks in order; states[c] becomes the state entering
//                                         chunk c; the final state goes back to `state`
//   outputMain  per (p-block, head, chunk): y
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

override L: u32 = 64u; // chunk length: 16, 32 or 64
override NS: u32 = 128u; // state size N
const WG = 256u;

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

var<workgroup> scan: array<f32, L>;

@compute @workgroup_size(L)
fn prep(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) i: u32) {
  let h = wid.x;
  let c = wid.y;
  let k = hp[h];
  let t = c * L + i;
  var dt = 0.0;
  if (i < chunkLen(c)) { dt = dtOf(dtRaw[P.dtOff + t * P.dtStride + h], k.y, P.dtMin, P.dtMax); }
  // Inclusive prefix sum of dt * A over the chunk (Hillis-Steele).
  scan[i] = dt * k.x;
  workgroupBarrier();
  for (var o = 1u; o < L; o <<= 1u) {
    var v = scan[i];
    if (i >= o) { v += scan[i - o]; }
    workgroupBarrier();
    scan[i] = v;
    workgroupBarrier();
  }
  if (i < chunkLen(c)) { dtA[h * P.T + t] = vec2f(dt, scan[i]); }
}

// cbMain and chunkState stage 16-deep slices in these, k-major, as vec4s along the 4-wide thread blocks.
const SB = 16u;
var<workgroup> sa: array<vec4f, SB * 32u>;
var<workgroup> sb: array<vec4f, SB * 32u>;

@compute @workgroup_size(WG)
fn cbMain(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.x;
  let c = wid.y;
  let Lc = chunkLen(c);
  let t0 = c * L;
  // Each thread a 4x4 block of the L x L matrix (L <= 64): rows ti..ti+3 (t), columns si..si+3 (s).
  let ti = lid / 16u;
  let si = lid % 16u;
  var acc: array<vec4f, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }
  for (var n0 = 0u; n0 < NS; n0 += SB) {
    // C and B slices: 64 rows x 16 n each, 4 values per thread.
    for (var r = 0u; r < 4u; r++) {
      let e = lid + r * WG;
      let row = e / SB;
      let n = n0 + e % SB;
      var cv = 0.0;
      var bv = 0.0;
      if (row < Lc && n < NS) {
        cv = C[P.cOff + (t0 + row) * P.cStride + g * NS + n];
        bv = B[P.bOff + (t0 + row) * P.bStride + g * NS + n];
      }
      sa[(e % SB) * 16u + row / 4u][row % 4u] = cv;
      sb[(e % SB) * 16u + row / 4u][row % 4u] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < SB; k++) {
      let a = sa[k * 16u + ti];
      let b = sb[k * 16u + si];
      for (var i = 0u; i < 4u; i++) { acc[i] = fma(vec4f(a[i]), b, acc[i]); }
    }
    workgroupBarrier();
  }
  if (ti * 4u >= L || si * 4u >= L) { return; }
  let base = (c * P.ng + g) * L * L;
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) { cb[base + (ti * 4u + i) * L + si * 4u + j] = acc[i][j]; }
  }
}

// chunkState tiles: 8 x 32 threads, each 4 p x 4 n: a 32 x 128 tile of the [hd, N] contribution.
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
    // Stage x weighted by exp(Acum_end - Acum_s) dt_s: 16 x 32 values, 2 per thread (in sa as [s][p / 4]);
    // and B: 16 x 128 values, 8 per thread (in sb as [s][n / 4]).
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
      sa[s * 8u + (e % 32u) / 4u][e % 4u] = v;
    }
    for (var r = 0u; r < 8u; r++) {
      let e = lid + r * WG;
      let s = e / 128u;
      let n = n0 + e % 128u;
      var v = 0.0;
      if (s0 + s < Lc && n < NS) { v = B[P.bOff + (t0 + s0 + s) * P.bStride + g * NS + n]; }
      sb[s * 32u + (e % 128u) / 4u][e % 4u] = v;
    }
    workgroupBarrier();
    for (var s = 0u; s < SB; s++) {
      let a = sa[s * 8u + tp];
      let b = sb[s * 32u + tn];
      for (var i = 0u; i < 4u; i++) { acc[i] = fma(vec4f(a[i]), b, acc[i]); }
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

// chunkStateCpu (CPU adapters, in place of chunkState): the same contributions with a lane per state column n
// (n = nb + i * LANES, i < 2) and the workgroup's 8 rows p the same in every lane, so that x comes as scalar
// loads, weighted once per token, B as gathers, and 16 accumulators a lane stay in registers (no workgroup
// memory: every read of it in a loop is a gather on a CPU adapter).
override LANES: u32 = 8u;
const SP = 8u; // rows p a workgroup (SSD_CPU in src/engine/gpu/ops.ts)
const SN = 2u; // columns n a lane (the per-column lines below are written out for 2)

/** chunkStateCpu's write of row p (at `at` in states, if p < hd): columns nb and nb + LANES (those below N). */
fn stateRow(at: u32, p: u32, nb: u32, v0: f32, v1: f32) {
  if (p >= P.hd) { return; }
  if (nb < NS) { states[at + nb] = v0; }
  if (nb + LANES < NS) { states[at + nb + LANES] = v1; }
}

@compute @workgroup_size(LANES)
fn chunkStateCpu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tilesN = (NS + LANES * SN - 1u) / (LANES * SN);
  let pb = (wid.x / tilesN) * SP;
  let nb = (wid.x % tilesN) * LANES * SN + lid;
  let h = wid.y;
  let c = wid.z;
  let g = group(h);
  let Lc = chunkLen(c);
  let t0 = c * L;
  let acumEnd = dtA[h * P.T + t0 + Lc - 1u].y;
  // Rows past hd and columns past N repeat the last one (read, never written).
  let m0 = min(nb + 0u * LANES, NS - 1u);
  let m1 = min(nb + 1u * LANES, NS - 1u);
  let c0 = h * P.hd + min(pb + 0u, P.hd - 1u);
  let c1 = h * P.hd + min(pb + 1u, P.hd - 1u);
  let c2 = h * P.hd + min(pb + 2u, P.hd - 1u);
  let c3 = h * P.hd + min(pb + 3u, P.hd - 1u);
  let c4 = h * P.hd + min(pb + 4u, P.hd - 1u);
  let c5 = h * P.hd + min(pb + 5u, P.hd - 1u);
  let c6 = h * P.hd + min(pb + 6u, P.hd - 1u);
  let c7 = h * P.hd + min(pb + 7u, P.hd - 1u);
  var a0_0 = 0.0; var a0_1 = 0.0;
  var a1_0 = 0.0; var a1_1 = 0.0;
  var a2_0 = 0.0; var a2_1 = 0.0;
  var a3_0 = 0.0; var a3_1 = 0.0;
  var a4_0 = 0.0; var a4_1 = 0.0;
  var a5_0 = 0.0; var a5_1 = 0.0;
  var a6_0 = 0.0; var a6_1 = 0.0;
  var a7_0 = 0.0; var a7_1 = 0.0;
  for (var s = 0u; s < Lc; s++) {
    let t = t0 + s;
    let da = dtA[h * P.T + t];
    let wt = exp(acumEnd - da.y) * da.x;
    let bRow = P.bOff + t * P.bStride + g * NS;
    let b0 = B[bRow + m0];
    let b1 = B[bRow + m1];
    let xRow = P.xOff + t * P.xStride;
    { let xv = wt * x[xRow + c0]; a0_0 += xv * b0; a0_1 += xv * b1; }
    { let xv = wt * x[xRow + c1]; a1_0 += xv * b0; a1_1 += xv * b1; }
    { let xv = wt * x[xRow + c2]; a2_0 += xv * b0; a2_1 += xv * b1; }
    { let xv = wt * x[xRow + c3]; a3_0 += xv * b0; a3_1 += xv * b1; }
    { let xv = wt * x[xRow + c4]; a4_0 += xv * b0; a4_1 += xv * b1; }
    { let xv = wt * x[xRow + c5]; a5_0 += xv * b0; a5_1 += xv * b1; }
    { let xv = wt * x[xRow + c6]; a6_0 += xv * b0; a6_1 += xv * b1; }
    { let xv = wt * x[xRow + c7]; a7_0 += xv * b0; a7_1 += xv * b1; }
  }
  let base = (c * P.nh + h) * P.hd * NS;
  stateRow(base + (pb + 0u) * NS, pb + 0u, nb, a0_0, a0_1);
  stateRow(base + (pb + 1u) * NS, pb + 1u, nb, a1_0, a1_1);
  stateRow(base + (pb + 2u) * NS, pb + 2u, nb, a2_0, a2_1);
  stateRow(base + (pb + 3u) * NS, pb + 3u, nb, a3_0, a3_1);
  stateRow(base + (pb + 4u) * NS, pb + 4u, nb, a4_0, a4_1);
  stateRow(base + (pb + 5u) * NS, pb + 5u, nb, a5_0, a5_1);
  stateRow(base + (pb + 6u) * NS, pb + 6u, nb, a6_0, a6_1);
  stateRow(base + (pb + 7u) * NS, pb + 7u, nb, a7_0, a7_1);
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

// outputMain: thread (t = lid / PG, pg = lid % PG) computes y for token t and the 8 rows p = pg * 8 + i of the
// workgroup's block of PB = 8 PG rows. Workgroup memory is one array used in two phases:
//   intra  G [L][L] = (C_t.B_s) exp(Acum_t - Acum_s) dt_s (s <= t), then x [L][PB]
//   inter  C [L][NCH + 1] (rows padded: no bank clash), then state_in [NCH][PB], NCH state entries at a time
// Rows of PB are read as vec4s.
override PG: u32 = WG / L;
override PB: u32 = 8u * PG;
const NCH = 32u;
var<workgroup> sm: array<vec4f, 1536>; // 6144 >= max(L*L + L*PB, (NCH + 1) * L + NCH * PB) for L in 16, 32, 64
var<workgroup> ac: array<vec2f, L>; // (dt, Acum)

fn smGet(i: u32) -> f32 {
  return sm[i / 4u][i % 4u];
}

fn smSet(i: u32, v: f32) {
  sm[i / 4u][i % 4u] = v;
}

@compute @workgroup_size(WG)
fn outputMain(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.y;
  let c = wid.z;
  let g = group(h);
  let Lc = chunkLen(c);
  let t0 = c * L;
  let t = lid / PG;
  let pg = lid % PG;
  let pBase = wid.x * PB;
  // Staging loops have constant trip counts, so each thread's global loads are issued together (with only a
  // few workgroups per SM, loads waited for one at a time left the kernel latency-bound).
  if (lid < Lc) { ac[lid] = dtA[h * P.T + t0 + lid]; }
  // x chunk [L][PB] after G: L * PB = 8 WG values.
  let xo = L * L;
  var xr: array<f32, 8>;
  for (var k = 0u; k < 8u; k++) {
    let e = lid + k * WG;
    let p = pBase + e % PB;
    xr[k] = 0.0;
    if (e / PB < Lc && p < P.hd) { xr[k] = x[P.xOff + (t0 + e / PB) * P.xStride + h * P.hd + p]; }
  }
  // cb for G: L * L values, L * L / WG (16, 4 or 1) per thread.
  let cbBase = (c * P.ng + g) * L * L;
  var cr: array<f32, 16>;
  for (var k = 0u; k < L * L / WG; k++) { cr[k] = cb[cbBase + lid + k * WG]; }
  for (var k = 0u; k < 8u; k++) { smSet(xo + lid + k * WG, xr[k]); }
  workgroupBarrier();
  for (var k = 0u; k < L * L / WG; k++) {
    let e = lid + k * WG;
    let ti = e / L;
    let si = e % L;
    var v = 0.0;
    if (si <= ti && ti < Lc) { v = cr[k] * exp(ac[ti].y - ac[si].y) * ac[si].x; }
    smSet(e, v);
  }
  workgroupBarrier();
  // Intra-chunk: y[t, p] = sum_{s <= t} G[t, s] x[s, p].
  let xq = (xo + pg * 8u) / 4u; // this thread's 8 rows of x, as two vec4s
  let xt = array<vec4f, 2>(sm[xq + t * PB / 4u], sm[xq + t * PB / 4u + 1u]);
  var y = array<vec4f, 2>(vec4f(0.0), vec4f(0.0));
  if (t < Lc) {
    for (var s = 0u; s <= t; s++) {
      let gts = vec4f(smGet(t * L + s));
      y[0] = fma(gts, sm[xq + s * PB / 4u], y[0]);
      y[1] = fma(gts, sm[xq + s * PB / 4u + 1u], y[1]);
    }
  }
  workgroupBarrier();
  // Inter-chunk: z[t, p] = sum_n C[t, n] state_in[p, n].
  var z = array<vec4f, 2>(vec4f(0.0), vec4f(0.0));
  let so = L * (NCH + 1u);
  let sBase = ((c * P.nh + h) * P.hd + pBase) * NS;
  for (var n0 = 0u; n0 < NS; n0 += NCH) {
    // C [L][NCH]: L * NCH / WG (8, 4 or 2) values per thread; state_in [PB][NCH]: PB * NCH / WG (4, 8 or 16).
    var cl: array<f32, 8>;
    for (var k = 0u; k < L * NCH / WG; k++) {
      let e = lid + k * WG;
      let n = n0 + e % NCH;
      cl[k] = 0.0;
      if (e / NCH < Lc && n < NS) { cl[k] = C[P.cOff + (t0 + e / NCH) * P.cStride + g * NS + n]; }
    }
    var sl: array<f32, 16>;
    for (var k = 0u; k < PB * NCH / WG; k++) {
      let e = lid + k * WG;
      let n = n0 + e % NCH;
      sl[k] = 0.0;
      if (pBase + e / NCH < P.hd && n < NS) { sl[k] = states[sBase + (e / NCH) * NS + n]; }
    }
    for (var k = 0u; k < L * NCH / WG; k++) {
      let e = lid + k * WG;
      smSet((e / NCH) * (NCH + 1u) + e % NCH, cl[k]);
    }
    for (var k = 0u; k < PB * NCH / WG; k++) {
      let e = lid + k * WG;
      smSet(so + (e % NCH) * PB + e / NCH, sl[k]);
    }
    workgroupBarrier();
    let sq = (so + pg * 8u) / 4u;
    for (var n = 0u; n < NCH; n++) {
      let cv = vec4f(smGet(t * (NCH + 1u) + n));
      z[0] = fma(cv, sm[sq + n * PB / 4u], z[0]);
      z[1] = fma(cv, sm[sq + n * PB / 4u + 1u], z[1]);
    }
    workgroupBarrier();
  }
  if (t >= Lc) { return; }
  let decay = exp(ac[t].y);
  let D = hp[h].z;
  for (var q = 0u; q < 2u; q++) {
    let r = y[q] + decay * z[q] + D * xt[q];
    for (var i = 0u; i < 4u; i++) {
      let p = pBase + pg * 8u + 4u * q + i;
      if (p < P.hd) { out[P.oOff + (t0 + t) * P.oStride + h * P.hd + p] = r[i]; }
    }
  }
}

// outputMainCpu (CPU adapters, in place of outputMain): y for 2 tokens of a chunk a workgroup, a lane per row p
// (p = pb + lid + i * LANES, i < 8), the tokens the same in every lane: C, cb and the decays as scalar loads and
// exps, x and the entering state as gathers, 16 accumulators a lane, no workgroup memory.
const OT = 2u; // tokens a workgroup (SSD_CPU in src/engine/gpu/ops.ts; the lines below are written out for 2)
const OP = 8u; // rows p a lane (written out for 8)

/** outputMainCpu's write of token ti of chunk t0 (if in it): rows pb + i * LANES get v[i] + D x. */
fn outRow(t0: u32, ti: u32, Lc: u32, h: u32, pb: u32, D: f32, v: array<f32, OP>) {
  if (ti >= Lc) { return; }
  let t = t0 + ti;
  let xRow = P.xOff + t * P.xStride + h * P.hd;
  let oRow = P.oOff + t * P.oStride + h * P.hd;
  for (var i = 0u; i < OP; i++) {
    let p = pb + i * LANES;
    if (p < P.hd) { out[oRow + p] = v[i] + D * x[xRow + p]; }
  }
}

@compute @workgroup_size(LANES)
fn outputMainCpu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tiles = (L + OT - 1u) / OT;
  let ti = (wid.x % tiles) * OT; // first token (within the chunk)
  let pb = (wid.x / tiles) * LANES * OP + lid;
  let h = wid.y;
  let c = wid.z;
  let g = group(h);
  let Lc = chunkLen(c);
  if (ti >= Lc) { return; } // uniform: the whole workgroup
  let t0 = c * L;
  // Tokens past the chunk and rows past hd repeat the last one (read, never written).
  let u0 = min(ti + 0u, Lc - 1u);
  let u1 = min(ti + 1u, Lc - 1u);
  let q0 = min(pb + 0u * LANES, P.hd - 1u);
  let q1 = min(pb + 1u * LANES, P.hd - 1u);
  let q2 = min(pb + 2u * LANES, P.hd - 1u);
  let q3 = min(pb + 3u * LANES, P.hd - 1u);
  let q4 = min(pb + 4u * LANES, P.hd - 1u);
  let q5 = min(pb + 5u * LANES, P.hd - 1u);
  let q6 = min(pb + 6u * LANES, P.hd - 1u);
  let q7 = min(pb + 7u * LANES, P.hd - 1u);
  var a0_0 = 0.0; var a0_1 = 0.0; var a0_2 = 0.0; var a0_3 = 0.0; var a0_4 = 0.0; var a0_5 = 0.0; var a0_6 = 0.0; var a0_7 = 0.0;
  var a1_0 = 0.0; var a1_1 = 0.0; var a1_2 = 0.0; var a1_3 = 0.0; var a1_4 = 0.0; var a1_5 = 0.0; var a1_6 = 0.0; var a1_7 = 0.0;
  // Inter-chunk: exp(Acum_t) C_t . state_in[p], state_in from statePass.
  let sBase = (c * P.nh + h) * P.hd * NS;
  for (var n = 0u; n < NS; n++) {
    let cv0 = C[P.cOff + (t0 + u0) * P.cStride + g * NS + n];
    let cv1 = C[P.cOff + (t0 + u1) * P.cStride + g * NS + n];
    { let sv = states[sBase + q0 * NS + n]; a0_0 += cv0 * sv; a1_0 += cv1 * sv; }
    { let sv = states[sBase + q1 * NS + n]; a0_1 += cv0 * sv; a1_1 += cv1 * sv; }
    { let sv = states[sBase + q2 * NS + n]; a0_2 += cv0 * sv; a1_2 += cv1 * sv; }
    { let sv = states[sBase + q3 * NS + n]; a0_3 += cv0 * sv; a1_3 += cv1 * sv; }
    { let sv = states[sBase + q4 * NS + n]; a0_4 += cv0 * sv; a1_4 += cv1 * sv; }
    { let sv = states[sBase + q5 * NS + n]; a0_5 += cv0 * sv; a1_5 += cv1 * sv; }
    { let sv = states[sBase + q6 * NS + n]; a0_6 += cv0 * sv; a1_6 += cv1 * sv; }
    { let sv = states[sBase + q7 * NS + n]; a0_7 += cv0 * sv; a1_7 += cv1 * sv; }
  }
  let ac0 = dtA[h * P.T + t0 + u0].y;
  { let e = exp(ac0); a0_0 *= e; a0_1 *= e; a0_2 *= e; a0_3 *= e; a0_4 *= e; a0_5 *= e; a0_6 *= e; a0_7 *= e; }
  let ac1 = dtA[h * P.T + t0 + u1].y;
  { let e = exp(ac1); a1_0 *= e; a1_1 *= e; a1_2 *= e; a1_3 *= e; a1_4 *= e; a1_5 *= e; a1_6 *= e; a1_7 *= e; }
  // Intra-chunk: sum over s <= t of (C_t.B_s) exp(Acum_t - Acum_s) dt_s x_s[p].
  let cbBase = (c * P.ng + g) * L * L;
  for (var s = 0u; s <= u1; s++) {
    let da = dtA[h * P.T + t0 + s];
    let w0 = select(0.0, cb[cbBase + u0 * L + s] * exp(ac0 - da.y) * da.x, s <= u0);
    let w1 = select(0.0, cb[cbBase + u1 * L + s] * exp(ac1 - da.y) * da.x, s <= u1);
    let xRow = P.xOff + (t0 + s) * P.xStride + h * P.hd;
    { let xv = x[xRow + q0]; a0_0 += w0 * xv; a1_0 += w1 * xv; }
    { let xv = x[xRow + q1]; a0_1 += w0 * xv; a1_1 += w1 * xv; }
    { let xv = x[xRow + q2]; a0_2 += w0 * xv; a1_2 += w1 * xv; }
    { let xv = x[xRow + q3]; a0_3 += w0 * xv; a1_3 += w1 * xv; }
    { let xv = x[xRow + q4]; a0_4 += w0 * xv; a1_4 += w1 * xv; }
    { let xv = x[xRow + q5]; a0_5 += w0 * xv; a1_5 += w1 * xv; }
    { let xv = x[xRow + q6]; a0_6 += w0 * xv; a1_6 += w1 * xv; }
    { let xv = x[xRow + q7]; a0_7 += w0 * xv; a1_7 += w1 * xv; }
  }
  let D = hp[h].z;
  outRow(t0, ti, Lc, h, pb, D, array<f32, OP>(a0_0, a0_1, a0_2, a0_3, a0_4, a0_5, a0_6, a0_7));
  outRow(t0, ti + 1u, Lc, h, pb, D, array<f32, OP>(a1_0, a1_1, a1_2, a1_3, a1_4, a1_5, a1_6, a1_7));
}

// #include softplus
