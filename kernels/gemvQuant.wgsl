// Matrix-vector products over group-wise quantized weights (src/engine/quant.ts), dequantized inside the product
// (issue 17; not yet used by the model): out[t, n] = sum_k x[t, k] * d[n, g(k)] * q[n, k], for T <= 4 rows of x.
// W is [N, K] as two planes: data [N, G, WPG] u32 (G = ceil(K / 32) groups a row; WPG = 8 words a group for q8,
// four int8 a word, two's complement; 4 for q4, eight nibbles a word, stored as q + 8) and scales [N, G] f16
// packed two per u32. One row per 32 invocations: each lane takes every 32nd group of the row, so a row's words are
// read once, then the lanes' sums are folded in workgroup memory.

struct Params {
  K: u32,
  N: u32,
  T: u32,
  G: u32, // groups per row
  xOff: u32,
  xStride: u32,
  oStride: u32,
  pad: u32,
}

override BITS: u32 = 8u;
const LANES: u32 = 32u;
const ROWS: u32 = 8u; // rows per workgroup (256 invocations)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> data: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<vec4f, 256>;

fn xat(t: u32, k: u32) -> f32 {
  if (t >= P.T || k >= P.K) { return 0.0; }
  return x[P.xOff + t * P.xStride + k];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let n = wid.x * ROWS + li / LANES;
  var acc = vec4f(0.0);
  if (n < P.N) {
    let wpg = (32u * BITS) / 32u;
    let per = 32u / BITS;
    for (var g = lane; g < P.G; g += LANES) {
      let gi = n * P.G + g;
      let d = unpack2x16float(scales[gi >> 1u])[gi & 1u];
      for (var w = 0u; w < wpg; w++) {
        let word = data[gi * wpg + w];
        for (var j = 0u; j < per; j++) {
          let v = (word >> (j * BITS)) & ((1u << BITS) - 1u);
          var q: f32;
          if (BITS == 8u) { q = f32(bitcast<i32>(v << 24u) >> 24u); } else { q = f32(i32(v) - 8); }
          let k = g * 32u + w * per + j;
          let wq = d * q;
          acc += wq * vec4f(xat(0u, k), xat(1u, k), xat(2u, k), xat(3u, k));
        }
      }
    }
  }
  part[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { part[li] += part[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && n < P.N) {
    let r = part[li];
    for (var t = 0u; t < P.T; t++) { out[t * P.oStride + n] = r[t]; }
  }
}
