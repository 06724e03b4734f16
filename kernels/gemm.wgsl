// Tiled matrix products for prefill (many rows of x):
//   out[t, nOff + n] = (accumulate ? out : 0) + alpha * (sum_k x[t, k] W[n, k] + bias[nOff + n])
// x: [T, K] f32 (offset/stride), W: [N, K] one part of a weight (any format, group-wise quantized ones too:
// dequantized as they are staged, never expanded in memory), out: [T, *].
// Entry points:
//   main     vec4 loads, prefetching the next k-slice; needs K % 8 == 0 (K % 4 for f32 weights) and x
//            offset/stride % 4 == 0
//   generic  element loads: any shape
// Both: 64 x 64 tiles of out per workgroup, 4 x 4 per thread.
// MOE = 1 (main only): the expert products of a prefill chunk over the slots grouped by expert (moe.wgsl group).
// Workgroup row y is tile y of the sorted slots: its expert tileExpert[y] (NONE: nothing to do) picks the weight
// rows (W: [E, N, K], this part holding experts eStart..eStart+eRows), its 64 rows the slots rowMap[y * 64 + r];
// slot s reads x row s / k (moe = 1) or s (moe = 2) and writes out row s. P.T is then the sorted rows' count.
// Slices of x and W, BK deep, are staged in workgroup memory k-major, so a thread's rows are whole vec4s.

// Params: kernels/gemmParams.wgsl.

override WFMT: u32 = 0u;
override BFMT: u32 = 0u;
override MOE: u32 = 0u;
const NONE = 0xffffffffu;
const BK = 16u;
const TM = 16u; // threads along t
const TN = 16u; // threads along n
const BM = 64u;
const BN = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> W4: array<vec4u>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> rowMap: array<u32>; // MOE: sorted row -> slot
@group(0) @binding(6) var<storage, read> tileExpert: array<u32>; // MOE: tile -> expert
var<workgroup> tileE: u32;

var<workgroup> As: array<vec4f, BK * TM>; // [k][t / 4]
var<workgroup> Bs: array<vec4f, BK * TN>; // [k][n / 4]

@compute @workgroup_size(256)
fn generic(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tx = lid % TN;
  let ty = lid / TN;
  // Loader mapping: 64 rows x 16 k, four consecutive k per thread.
  let lr = lid / 4u;
  let lk = (lid % 4u) * 4u;
  var acc: array<vec4f, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }

  for (var k0 = 0u; k0 < P.K; k0 += BK) {
    let t = t0 + lr;
    let n = n0 + lr;
    for (var j = 0u; j < 4u; j++) {
      let k = k0 + lk + j;
      var a = 0.0;
      var b = 0.0;
      if (t < P.T && k < P.K) { a = x[P.xOff + t * P.xStride + k]; }
      if (n < P.N && k < P.K) {
        b = weightAt(n, k);
      }
      As[(lk + j) * TM + lr / 4u][lr % 4u] = a;
      Bs[(lk + j) * TN + lr / 4u][lr % 4u] = b;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * TM + ty];
      let b = Bs[k * TN + tx];
      acc[0] = fma(vec4f(a.x), b, acc[0]);
      acc[1] = fma(vec4f(a.y), b, acc[1]);
      acc[2] = fma(vec4f(a.z), b, acc[2]);
      acc[3] = fma(vec4f(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }

  epilogue(acc, t0, n0, tx, ty);
}

// main: a 64 x 64 tile per workgroup, 4 x 4 outputs per thread (rows ty*4 + i, columns tx*4 + j). The next
// k-slice is loaded into registers while the current one is multiplied out of workgroup memory. (A 128 x 128
// tile with 8 x 8 per thread measured 10x slower on the H100: register spills.)

/** Raw global data of one k-slice: 4 values of x and 4 (f32) or 8 (16-bit, quantized) values of W. */
struct Slice {
  x: vec4f,
  w: vec4u,
  d: f32, // quantized: the scale of W's values
}

/** W[n, k] of this part, any format. */
fn weightAt(n: u32, k: u32) -> f32 {
  if (isQuant(WFMT)) {
    let gi = qGroup(n, k, P.K);
    return qScale(W[P.sOff + gi / 2u], gi) * qValue(W[qDataWord(gi, k, WFMT)], k, WFMT);
  }
  let i = n * P.K + k;
  return decode(W[wordIndex(i, WFMT)], i, WFMT);
}

/** Word i of W through its vec4 view (main may not bind both views of one buffer). */
fn word4(i: u32) -> u32 {
  return W4[i / 4u][i % 4u];
}

/** x row index (NONE: none) loaded by this thread: its tile row, or (MOE) the x row of the slot sorted there. */
fn loaderXRow(t0: u32, lid: u32) -> u32 {
  let t = t0 + lid / 4u;
  if (t >= P.T) { return NONE; }
  if (MOE == 0u) { return t; }
  let s = rowMap[t];
  if (s == NONE) { return NONE; }
  return select(s / P.k, s, P.moe == 2u);
}

fn loadSlice(xr: u32, wb: u32, n0: u32, k0: u32, lid: u32) -> Slice {
  var s = Slice(vec4f(0.0), vec4u(0u), 0.0);
  // x: 64 rows x 16 k, 4 threads per row (xr: this thread's row). W rows from wb (MOE: the expert's first).
  let kx = k0 + (lid % 4u) * 4u;
  if (xr != NONE && kx < P.K) { s.x = x4[P.xOff / 4u + xr * (P.xStride / 4u) + kx / 4u]; }
  if (isQuant(WFMT)) {
    // 64 rows x 16 k, 2 threads per row, 8 values each: one q4 word or two q8 words of one group (8 | 32).
    if (lid < 128u) {
      let n = n0 + lid / 2u;
      let k = k0 + (lid % 2u) * 8u;
      if (n < P.N && k < P.K) {
        let gi = qGroup(wb + n, k, P.K);
        let w0 = qDataWord(gi, k, WFMT);
        s.w = vec4u(word4(w0), select(0u, word4(w0 + 1u), WFMT == 3u), 0u, 0u);
        s.d = qScale(word4(P.sOff + gi / 2u), gi);
      }
    }
  } else if (WFMT == 0u) {
    // f32 W: 64 rows x 16 k, 4 threads per row.
    let n = n0 + lid / 4u;
    if (n < P.N && kx < P.K) { s.w = W4[((wb + n) * P.K + kx) / 4u]; }
  } else if (lid < 128u) {
    // 16-bit W: 64 rows x 16 k = 128 vec4<u32>s, 2 threads per row.
    let n = n0 + lid / 2u;
    let k = k0 + (lid % 2u) * 8u;
    if (n < P.N && k < P.K) { s.w = W4[((wb + n) * P.K + k) / 8u]; }
  }
  return s;
}

fn storeB(k: u32, n: u32, v: vec4f, step: u32) {
  // v holds W[n, k], W[n, k + step], ...
  for (var c = 0u; c < 4u; c++) { Bs[(k + c * step) * 16u + n / 4u][n % 4u] = v[c]; }
}

fn storeSlice(s: Slice, lid: u32) {
  let r = lid / 4u;
  let kk = (lid % 4u) * 4u;
  for (var c = 0u; c < 4u; c++) { As[(kk + c) * 16u + r / 4u][r % 4u] = s.x[c]; }
  if (isQuant(WFMT)) {
    if (lid < 128u) {
      let k = (lid % 2u) * 8u;
      if (WFMT == 3u) {
        storeB(k, lid / 2u, s.d * q8x4(s.w.x), 1u);
        storeB(k + 4u, lid / 2u, s.d * q8x4(s.w.y), 1u);
      } else {
        storeB(k, lid / 2u, s.d * q4lo(s.w.x), 1u);
        storeB(k + 4u, lid / 2u, s.d * q4hi(s.w.x), 1u);
      }
    }
  } else if (WFMT == 0u) {
    storeB(kk, r, bitcast<vec4f>(s.w), 1u);
  } else if (lid < 128u) {
    var ev = vec4f(0.0);
    var od = vec4f(0.0);
    decode8(s.w, WFMT, &ev, &od);
    let k = (lid % 2u) * 8u;
    storeB(k, lid / 2u, ev, 2u);
    storeB(k + 1u, lid / 2u, od, 2u);
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t0 = wid.y * BM;
  let n0 = wid.x * BN;
  let tx = lid % TN;
  let ty = lid / TN;
  // MOE: this tile's expert (read once, uniformly: the whole workgroup returns or none of it).
  var wb = 0u;
  if (MOE != 0u) {
    if (lid == 0u) { tileE = tileExpert[wid.y]; }
    let e = workgroupUniformLoad(&tileE);
    if (e == NONE || e < P.eStart || e >= P.eStart + P.eRows) { return; } // (another part's dispatch has it)
    wb = (e - P.eStart) * P.N;
  }
  let xr = loaderXRow(t0, lid);
  var acc: array<vec4f, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4f(0.0); }
  var next = loadSlice(xr, wb, n0, 0u, lid);
  for (var k0 = 0u; k0 < P.K; k0 += BK) {
    storeSlice(next, lid);
    workgroupBarrier();
    if (k0 + BK < P.K) { next = loadSlice(xr, wb, n0, k0 + BK, lid); }
    for (var k = 0u; k < BK; k++) {
      let a = As[k * 16u + ty];
      let b = Bs[k * 16u + tx];
      acc[0] = fma(vec4f(a.x), b, acc[0]);
      acc[1] = fma(vec4f(a.y), b, acc[1]);
      acc[2] = fma(vec4f(a.z), b, acc[2]);
      acc[3] = fma(vec4f(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }
  epilogue(acc, t0, n0, tx, ty);
}

fn epilogue(acc: array<vec4f, 4>, t0: u32, n0: u32, tx: u32, ty: u32) {
  for (var i = 0u; i < 4u; i++) {
    var t = t0 + ty * 4u + i;
    if (t >= P.T) { break; }
    if (MOE != 0u) {
      t = rowMap[t]; // the slot sorted at this row: its out row
      if (t == NONE) { continue; }
    }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx * 4u + j;
      if (n >= P.N) { break; }
      let col = P.nOff + n;
      var b = 0.0;
      if (P.hasBias != 0u) { b = decode(bias[wordIndex(col, BFMT)], col, BFMT); }
      let o = P.oOff + t * P.oStride + col;
      var y = P.alpha * (acc[i][j] + b);
      if (P.accumulate != 0u) { y += out[o]; }
      out[o] = y;
    }
  }
}

// #include gemmParams
// #include weights
