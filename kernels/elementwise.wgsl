// Elementwise ops over [T, D] rows with offsets and strides (a = input, b = output):
//   swiglu:  b[t, i] = silu(a[t, i]) * a[t, D + i]      a: [T, 2D] (gate | up), b: [T, D]
//   geglu:   b[t, i] = gelu(a[t, i]) * a[t, D + i]      GELU with erf (Zamba2's shared MLP, "gelu")
//   relu2:   b[t, i] = max(a[t, i], 0)^2                (Nemotron-H's squared ReLU)
//   axpy:    b[t, i] += alpha * a[t, i]                 (residual adds)
//   scale:   b[t, i] *= alpha
//   copyRows: b[t, i] = a[t, i]
//   gegluTanh: b[t, i] = gelu_tanh(a[t, i]) * a[t, D + i]  (RecurrentGemma's MLP)
//   geluMul: b[t, i] *= gelu_tanh(a[t, i])               (RecurrentGemma's recurrent block: h * gelu(y))
//   softCap: b[t, i] = tanh(b[t, i] / alpha) * alpha      (RecurrentGemma's logits)

struct Params {
  T: u32,
  D: u32,
  aOff: u32,
  aStride: u32,
  bOff: u32,
  bStride: u32,
  alpha: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;

struct Idx {
  ok: bool,
  a: u32, // index of a[t, i]
  b: u32, // index of b[t, i]
}

fn element(wid: vec3u, nwg: vec3u, lid: u32) -> Idx {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  let t = e / P.D;
  let i = e % P.D;
  return Idx(e < P.T * P.D, P.aOff + t * P.aStride + i, P.bOff + t * P.bStride + i);
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (!e.ok) { return; }
  let g = a[e.a];
  b[e.b] = g / (1.0 + exp(-g)) * a[e.a + P.D];
}

// erf(x) as cpu/ops.ts computes it (Numerical Recipes' erfc, fractional error below 1.2e-7).
fn erf_nr(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let c = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(c - 1.0, 1.0 - c, x >= 0.0);
}

@compute @workgroup_size(WG)
fn geglu(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (!e.ok) { return; }
  let g = a[e.a];
  b[e.b] = 0.5 * g * (1.0 + erf_nr(g * 0.70710678118654752)) * a[e.a + P.D];
}

@compute @workgroup_size(WG)
fn relu2(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (!e.ok) { return; }
  let r = max(a[e.a], 0.0);
  b[e.b] = r * r;
}

@compute @workgroup_size(WG)
fn axpy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (e.ok) { b[e.b] += P.alpha * a[e.a]; }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (e.ok) { b[e.b] *= P.alpha; }
}

@compute @workgroup_size(WG)
fn copyRows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (e.ok) { b[e.b] = a[e.a]; }
}

fn geluTanh(x: f32) -> f32 {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh written out so large |u| saturates without inf/inf
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + tanhf(u));
}

fn tanhf(u: f32) -> f32 {
  let e = exp(-2.0 * abs(u));
  let t = (1.0 - e) / (1.0 + e);
  return select(t, -t, u < 0.0);
}

@compute @workgroup_size(WG)
fn gegluTanh(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (!e.ok) { return; }
  b[e.b] = geluTanh(a[e.a]) * a[e.a + P.D];
}

@compute @workgroup_size(WG)
fn geluMul(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (e.ok) { b[e.b] *= geluTanh(a[e.a]); }
}

@compute @workgroup_size(WG)
fn softCap(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = element(wid, nwg, lid);
  if (e.ok) { b[e.b] = tanhf(b[e.b] / P.alpha) * P.alpha; }
}
