// The uniform parameters of the prefill GEMMs (kernels/gemm.wgsl, kernels/gemmCpu.wgsl; CommandList.linear in
// src/engine/gpu/ops.ts writes them), included (// #include gemmParams) by both.

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
  sOff: u32, // quantized formats: word offset of the scales plane in the part's buffer
  moe: u32, // MOE = 1: x row of slot s: 1 -> s / k, 2 -> s
  k: u32,
  eStart: u32,
  eRows: u32,
}
