// The per-step uniform that the model writes before each chunk or decode step (`step` and `kv_step` in
// src/engine/gpu/model.ts, STEP_BYTES): the chunk's first position, its token count and a sampling seed.
// Included (// #include step) at the end of the kernels that bind it.

struct Step {
  pos0: u32,
  nTokens: u32,
  seed: u32,
  pad: u32,
}
