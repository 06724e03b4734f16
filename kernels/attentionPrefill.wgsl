// Parameters and bindings of the two prefill attention kernels (kernels/attention.wgsl, kernels/attentionTiled.wgsl;
// CommandList.attention in src/engine/gpu/ops.ts binds them), included (// #include attentionPrefill) at the end of
// both. q: [T, nH, d] (offset/stride), k, v caches: [capacity, nKv, d], out: [T, nH * d] (offset/stride); query t
// sits at position step.pos0 + t (kernels/step.wgsl).

struct Params {
  T: u32,
  nH: u32,
  nKv: u32,
  qOff: u32,
  qStride: u32,
  oOff: u32,
  oStride: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> step: Step;

// #include step
