// Appends T rows to a KV cache at rows pos0..pos0+T-1 (pos0 from `step`); rows past the capacity are dropped
// (the caller grows the cache first). src: [T, rowLen] (offset/stride), cache: [capacity, rowLen].

struct Params {
  T: u32,
  rowLen: u32,
  srcOff: u32,
  srcStride: u32,
  capacity: u32, // rows
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<f32>;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= P.T * P.rowLen) { return; }
  let t = e / P.rowLen;
  let i = e % P.rowLen;
  let row = step.pos0 + t;
  if (row >= P.capacity) { return; }
  cache[row * P.rowLen + i] = src[P.srcOff + t * P.srcStride + i];
}

// #include step
