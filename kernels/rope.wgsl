// Rotary position embedding (rotate-half convention), in place: for each head, pairs (i, i + dim/2) rotate by
// angle (pos0 + t) * invFreq[i]. Angles are f32 as in transformers; cos/sin get an explicit range reduction
// because GPU sin/cos are only accurate near [-pi, pi] and positions reach tens of thousands.
// x: [T, heads, hStride] (offset/stride), of which the first `dim` channels of each head rotate (partial
// rotary: dim < hStride, the rest untouched), invFreq: f32 [dim / 2].

struct Params {
  T: u32,
  heads: u32,
  dim: u32,
  xOff: u32,
  xStride: u32,
  hStride: u32, // channels per head (dim, or more with partial rotary)
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> invFreq: array<f32>;
@group(0) @binding(3) var<uniform> step: Step;

/** a reduced to [-pi, pi] (Cody-Waite: 2 pi = HI + LO with HI exact in 8 bits, so k * HI is exact). */
fn reduceAngle(a: f32) -> f32 {
  let k = round(a * 0.15915494309189535);
  return (a - k * 6.28125) - k * 0.0019353071795864769;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  let half = P.dim / 2u;
  if (e >= P.T * P.heads * half) { return; }
  let t = e / (P.heads * half);
  let h = (e / half) % P.heads;
  let i = e % half;
  let a = reduceAngle(f32(step.pos0 + t) * invFreq[i]);
  let c = cos(a);
  let s = sin(a);
  let o = P.xOff + t * P.xStride + h * P.hStride;
  let x1 = x[o + i];
  let x2 = x[o + half + i];
  x[o + i] = x1 * c - x2 * s;
  x[o + half + i] = x2 * c + x1 * s;
}

// #include step
