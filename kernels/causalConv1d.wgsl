// Depthwise causal conv1d over time, then SiLU (ACT 1; ACT 0: no activation), continuing from a state holding the last K-1 inputs:
//   out[t, c] = silu(bias[c] + sum_k w[c, k] x[t - (K-1) + k, c]),  x[t < 0] read from state[c, K-1+t].
// x: [T, C] (offset/stride), w: [C, K], state: f32 [C, K-1] oldest first, out: [T, C] (offset/stride).
// Entry points: main (one thread per (t, c)) then updateState (one thread per channel, a second dispatch so
// no thread overwrites state another still reads); or fused (one thread per channel walks all T, sliding
// its window in registers: one dispatch, for decode and short batches). pack: the weights and the bias as f32
// [C, K + 1] into out, once, for the GEMV's conv epilogue (gemv.wgsl CONV).

struct Params {
  T: u32,
  C: u32,
  xOff: u32,
  xStride: u32,
  oOff: u32,
  oStride: u32,
  hasBias: u32,
}

override WG: u32 = 256u;
override KC: u32 = 4u; // kernel size K, 2..8
override WFMT: u32 = 0u;
override BFMT: u32 = 0u;
override S: u32 = KC - 1u; // state length
override ACT: u32 = 1u; // 1: SiLU after the conv (Mamba); 0: none (RecurrentGemma's temporal conv)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn weight(c: u32, k: u32) -> f32 {
  let i = c * KC + k;
  return decode(W[wordIndex(i, WFMT)], i, WFMT);
}

fn biasOf(c: u32) -> f32 {
  if (P.hasBias == 0u) { return 0.0; }
  return decode(bias[wordIndex(c, BFMT)], c, BFMT);
}

fn silu(v: f32) -> f32 {
  if (ACT == 0u) { return v; }
  return v / (1.0 + exp(-v));
}

/** Input at time t (may be negative: from the state) of channel c. */
fn input(t: i32, c: u32) -> f32 {
  if (t >= 0) { return x[P.xOff + u32(t) * P.xStride + c]; }
  return state[c * S + u32(i32(S) + t)];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= P.T * P.C) { return; }
  let t = e / P.C;
  let c = e % P.C;
  var acc = biasOf(c);
  for (var k = 0u; k < KC; k++) {
    acc += weight(c, k) * input(i32(t) - i32(S) + i32(k), c);
  }
  out[P.oOff + t * P.oStride + c] = silu(acc);
}

@compute @workgroup_size(WG)
fn updateState(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  if (c >= P.C) { return; }
  // Ascending j: slot j is overwritten only after slot T + j > j (if still from the state) was read.
  for (var j = 0u; j < S; j++) {
    state[c * S + j] = input(i32(P.T) - i32(S) + i32(j), c);
  }
}

@compute @workgroup_size(WG)
fn fused(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  if (c >= P.C) { return; }
  var win: array<f32, 8>; // the last S inputs, oldest first
  var wk: array<f32, 8>;
  for (var k = 0u; k < KC; k++) { wk[k] = weight(c, k); }
  for (var j = 0u; j < S; j++) { win[j] = state[c * S + j]; }
  let b = biasOf(c);
  for (var t = 0u; t < P.T; t++) {
    let xv = x[P.xOff + t * P.xStride + c];
    var acc = b + wk[S] * xv;
    for (var k = 0u; k < S; k++) { acc += wk[k] * win[k]; }
    out[P.oOff + t * P.oStride + c] = silu(acc);
    for (var k = 0u; k + 1u < S; k++) { win[k] = win[k + 1u]; }
    win[S - 1u] = xv;
  }
  for (var j = 0u; j < S; j++) { state[c * S + j] = win[j]; }
}

@compute @workgroup_size(WG)
fn pack(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  if (c >= P.C) { return; }
  for (var k = 0u; k < KC; k++) { out[c * (KC + 1u) + k] = weight(c, k); }
  out[c * (KC + 1u) + KC] = biasOf(c);
}

// #include weights
