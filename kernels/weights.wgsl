// Weight decoding, included (// #include weights) by kernels that read weights. Weights are u32 words:
// format 0 = f32 (one per word), 1 = f16 and 2 = bf16 (two per word, element i in the low half when i is even).
// The GPU may lack shader-f16, so 16-bit values are widened with unpack2x16float or a shift.

fn wordIndex(i: u32, fmt: u32) -> u32 {
  return select(i, i >> 1u, fmt != 0u);
}

fn decode(word: u32, i: u32, fmt: u32) -> f32 {
  if (fmt == 0u) { return bitcast<f32>(word); }
  if (fmt == 1u) { return unpack2x16float(word)[i & 1u]; }
  return bitcast<f32>(select(word & 0xffff0000u, word << 16u, (i & 1u) == 0u));
}

/** Eight 16-bit values (or four f32 values, in lo) from four words. */
fn decode8(q: vec4u, fmt: u32, lo: ptr<function, vec4f>, hi: ptr<function, vec4f>) {
  if (fmt == 0u) {
    *lo = bitcast<vec4f>(q);
  } else if (fmt == 1u) {
    *lo = vec4f(unpack2x16float(q.x), unpack2x16float(q.y));
    *hi = vec4f(unpack2x16float(q.z), unpack2x16float(q.w));
  } else {
    *lo = bitcast<vec4f>(vec4u(q.x << 16u, q.x & 0xffff0000u, q.y << 16u, q.y & 0xffff0000u));
    *hi = bitcast<vec4f>(vec4u(q.z << 16u, q.z & 0xffff0000u, q.w << 16u, q.w & 0xffff0000u));
  }
}
