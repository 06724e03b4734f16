// Mamba-2's gated RMSNorm: h = y * silu(z), normalised over groups of G channels, times w.
// y, z: [T, D] (offset/stride), w: [D], out: [T, D]. One workgroup per (group, row).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  T: u32,
  D: u32,
  G: u32, // group size
  yOff: u32,
  yStride: u32,
  zOff: u32,
  zStride: u32,
  oOff: u32,
  oStride: u32,
  eps: f32,
}

override WG: u32 = 256u;
override SG: u32 = 32u;
override WFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn gated(t: u32, i: u32) -> f32 {
  let zv = z[P.zOff + t * P.zStride + i];
  return y[P.yOff + t * P.yStride + i] * zv / (1.0 + exp(-zv));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y + wid.z * nwg.y;
  if (t >= P.T) { return; }
  let g0 = wid.x * P.G;
  var ss = 0.0;
  for (var i = lid; i < P.G; i += WG) {
    let h = gated(t, g0 + i);
    ss += h * h;
  }
  let r = inverseSqrt(wgSum(ss, lid) / f32(P.G) + P.eps);
  for (var i = lid; i < P.G; i += WG) {
    let c = g0 + i;
    out[P.oOff + t * P.oStride + c] = gated(t, c) * r * decode(W[wordIndex(c, WFMT)], c, WFMT);
  }
}

// #include reduce
// #include weights
