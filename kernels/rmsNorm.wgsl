// RMSNorm over rows: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w. One workgroup per row.
// x: [T, D] (offset/stride), w: [D], out: [T, D] (offset/stride).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  T: u32,
  D: u32,
  xOff: u32,
  xStride: u32,
  oOff: u32,
  oStride: u32,
  eps: f32,
}

override WG: u32 = 256u;
override SG: u32 = 32u;
override WFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.T) { return; } // uniform: the whole workgroup has the same t
  let xo = P.xOff + t * P.xStride;
  var ss = 0.0;
  for (var i = lid; i < P.D; i += WG) {
    let v = x[xo + i];
    ss += v * v;
  }
  let r = inverseSqrt(wgSum(ss, lid) / f32(P.D) + P.eps);
  let oo = P.oOff + t * P.oStride;
  for (var i = lid; i < P.D; i += WG) {
    out[oo + i] = x[xo + i] * r * decode(W[wordIndex(i, WFMT)], i, WFMT);
  }
}

// #include reduce
// #include weights
