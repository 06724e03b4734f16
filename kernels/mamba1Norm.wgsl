// FalconMamba's weightless RMS norms of x_proj's output, in place: each token's row [dt_low (R) | B (N) | C (N)]
// has each of the three parts scaled by 1 / sqrt(mean(part^2) + eps) over its own width. One workgroup per token.
// v: [T, R + 2N] (offset/stride).

struct Params {
  T: u32,
  R: u32,
  N: u32,
  off: u32,
  stride: u32,
  eps: f32,
}

override WG: u32 = 256u; // a power of two

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;

var<workgroup> red: array<vec4f, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.T) { return; } // uniform: the whole workgroup has the same t
  let W = P.R + 2u * P.N;
  let base = P.off + t * P.stride;
  var ss = vec4f(0.0);
  for (var j = lid; j < W; j += WG) {
    let q = v[base + j];
    let q2 = q * q;
    if (j < P.R) { ss.x += q2; } else if (j < P.R + P.N) { ss.y += q2; } else { ss.z += q2; }
  }
  red[lid] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let tot = red[0];
  let sc = vec3f(1.0) / sqrt(tot.xyz / vec3f(f32(P.R), f32(P.N), f32(P.N)) + vec3f(P.eps));
  for (var j = lid; j < W; j += WG) {
    let k = select(select(2u, 1u, j < P.R + P.N), 0u, j < P.R);
    v[base + j] *= sc[k];
  }
}
