// The Mamba-2 selective scan, token by token (decode and short batches), state kept in registers:
//   dt = clamp(softplus(dt_raw + dt_bias)),  h = exp(dt*A) h + dt * x B^T,  y = h C + D x.
// x: [T, nh*hd], dt: [T, nh], B, C: [T, ng*N] (offset/stride each), hp: (A, dt_bias, D) per head,
// state: f32 [nh, hd, N] updated in place, out: [T, nh*hd].
// A workgroup holds WG / TPR rows p of one head; TPR lanes split each row's N state entries.
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  T: u32,
  nh: u32,
  hd: u32,
  N: u32,
  ng: u32,
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

override WG: u32 = 256u;
override TPR: u32 = 32u; // lanes per row p
override SG: u32 = 32u;
override NPL: u32 = 4u; // state entries per lane: ceil(N / TPR) <= 8

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dtRaw: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read> C: array<f32>;
@group(0) @binding(5) var<storage, read> hp: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.y;
  let p = wid.x * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let g = h / (P.nh / P.ng);
  let c = hp[h]; // (A, dt_bias, D)
  let live = p < P.hd;
  let so = (h * P.hd + p) * P.N;
  var s: array<f32, 8>;
  for (var j = 0u; j < NPL; j++) {
    let n = lane + j * TPR;
    s[j] = select(0.0, state[so + n], live && n < P.N);
  }
  for (var t = 0u; t < P.T; t++) {
    let dt = dtOf(dtRaw[P.dtOff + t * P.dtStride + h], c.y, P.dtMin, P.dtMax);
    let dA = exp(dt * c.x);
    var xv = 0.0;
    if (live) { xv = x[P.xOff + t * P.xStride + h * P.hd + p]; }
    let bo = P.bOff + t * P.bStride + g * P.N;
    let co = P.cOff + t * P.cStride + g * P.N;
    var acc = 0.0;
    for (var j = 0u; j < NPL; j++) {
      let n = lane + j * TPR;
      if (live && n < P.N) {
        s[j] = s[j] * dA + dt * xv * B[bo + n];
        acc += s[j] * C[co + n];
      }
    }
    let y = rowSum(vec4f(acc, 0.0, 0.0, 0.0), lid).x;
    if (live && lane == 0u) { out[P.oOff + t * P.oStride + h * P.hd + p] = y + c.z * xv; }
  }
  for (var j = 0u; j < NPL; j++) {
    let n = lane + j * TPR;
    if (live && n < P.N) { state[so + n] = s[j]; }
  }
}

// #include rowSum
// #include softplus
