// Tiled matrix product for prefill (many rows of x):
//   out[t, nOff + n] = (accumulate ? out : 0) + alpha * (sum_k x[t, k] W[n, k] + bias[nOff + n])
// x: [T, K] f32 (offset/stride), W: [N, K] one part of a weight (any format), out: [T, *].
// A workgroup computes a BM x BN tile of out (BM = BN = 16 * 4); each of its 256 threads a 4x4 block, from
// BK-deep slices of x and W staged in workgroup memory (stored k-major so a thread's 4 rows are one vec4).

struct Params {
  T: u32,
  K: u32,
  N: u32, // rows in this part
  nOff: u32,
  xOff: u32,
  xStride: u32,
  oOff: u32,
  oStride: u32,
  alpha: f32,
  accumulate: u32,
  hasBias: u32,
}

override WFMT: u32 = 0u;
override BFMT: u32 = 0u;
const BK = 16u;
const TM = 16u; // threads along t
const TN = 16u; // threads along n
const BM = 64u;
const BN = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> As: array<vec4f, BK * TM>; // [k][t / 4]
var<workgroup> Bs: array<vec4f, BK * TN>; // [k][n / 4]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
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
        let i = n * P.K + k;
        b = decode(W[wordIndex(i, WFMT)], i, WFMT);
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

  for (var i = 0u; i < 4u; i++) {
    let t = t0 + ty * 4u + i;
    if (t >= P.T) { break; }
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

// #include weights
