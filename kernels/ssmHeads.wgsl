// Packs the per-head scan constants once (at record time) into f32 [nh] vec4s: (A = -exp(A_log), dt_bias, D, 0),
// so the scan kernels read one small f32 buffer whatever the checkpoint's dtype.

struct Params {
  nh: u32,
}

override AFMT: u32 = 0u;
override TFMT: u32 = 0u;
override DFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> aLog: array<u32>;
@group(0) @binding(2) var<storage, read> dtBias: array<u32>;
@group(0) @binding(3) var<storage, read> D: array<u32>;
@group(0) @binding(4) var<storage, read_write> hp: array<vec4f>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let h = gid.x;
  if (h >= P.nh) { return; }
  let a = decode(aLog[wordIndex(h, AFMT)], h, AFMT);
  hp[h] = vec4f(-exp(a), decode(dtBias[wordIndex(h, TFMT)], h, TFMT), decode(D[wordIndex(h, DFMT)], h, DFMT), 0.0);
}

// #include weights
