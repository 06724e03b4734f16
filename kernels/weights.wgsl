// Weight decoding, included (// #include weights) by kernels that read weights. Weights are u32 words:
// format 0 = f32 (one per word), 1 = f16 and 2 = bf16 (two per word, element i in the low half when i is even).
// The GPU may lack shader-f16, so 16-bit values are widened with unpack2x16float or a shift.

fn wordIndex(i: u32, fmt: u32) -> u32 {
  return select(i, i >> 1u, fmt != 0u);
}

// f16 -> f32 by moving the exponent and mantissa into place and scaling by 2^112 (exact for normal halves;
// inf/NaN do not occur in weights). A subnormal half (exponent 0) would land on an f32 subnormal, which GPUs may
// flush to zero (NVIDIA's Vulkan driver does; lavapipe does not), so it is widened as mantissa * 2^-24 instead:
// a q4/q8 scale below 2^-14 (a group whose largest weight is under 2^-14 * qmax, such as the padding token's
// embedding row a few optimizer steps from zero) read as 0 on the H200. Measured on the H100 (Vulkan),
// unpack2x16float made a weight-streaming GEMV 3.5x slower than these integer ops.
const F16_SCALE = 5.192296858534828e33; // 2^112
const F16_SUB = 5.960464477539063e-8; // 2^-24, one unit of a subnormal half

/** Half h (in the low 16 bits) to f32, subnormals included. */
fn f16Value(h: u32) -> f32 {
  let m = h & 0x7fffu;
  let v = select(bitcast<f32>(m << 13u) * F16_SCALE, f32(m) * F16_SUB, m < 0x400u);
  return select(v, -v, (h & 0x8000u) != 0u);
}

/** Four halves (in the low 16 bits of each lane) to f32, subnormals included. */
fn f16Value4(h: vec4u) -> vec4f {
  let m = h & vec4u(0x7fffu);
  let v = select(bitcast<vec4f>(m << vec4u(13u)) * F16_SCALE, vec4f(m) * F16_SUB, m < vec4u(0x400u));
  return select(v, -v, (h & vec4u(0x8000u)) != vec4u(0u));
}

fn decode(word: u32, i: u32, fmt: u32) -> f32 {
  if (fmt == 0u) { return bitcast<f32>(word); }
  let h = select(word >> 16u, word, (i & 1u) == 0u);
  if (fmt == 1u) { return f16Value(h & 0xffffu); }
  return bitcast<f32>(h << 16u);
}

/**
 * Eight 16-bit values from four words, as even = (e0, e2, e4, e6) and odd = (e1, e3, e5, e7) (the pairing
 * x8even / x8odd expect), or four f32 values in even.
 */
fn decode8(q: vec4u, fmt: u32, even: ptr<function, vec4f>, odd: ptr<function, vec4f>) {
  if (fmt == 0u) {
    *even = bitcast<vec4f>(q);
  } else if (fmt == 1u) {
    *even = f16Value4(q & vec4u(0xffffu));
    *odd = f16Value4(q >> vec4u(16u));
  } else {
    *even = bitcast<vec4f>(q << vec4u(16u));
    *odd = bitcast<vec4f>(q & vec4u(0xffff0000u));
  }
}

/** The even / odd elements of the eight x values a, b = x[0..3], x[4..7]. */
fn x8even(a: vec4f, b: vec4f) -> vec4f {
  return vec4f(a.x, a.z, b.x, b.z);
}
fn x8odd(a: vec4f, b: vec4f) -> vec4f {
  return vec4f(a.y, a.w, b.y, b.w);
}

// Group-wise quantized weights (src/engine/quant.ts): format 3 = q8, 4 = q4. A weight row of K values is
// ceil(K / 32) groups, each QWORDS(fmt) words of signed values (q8: four int8 a word, byte j = value 4w + j; q4:
// eight nibbles a word, nibble j = value 8w + j, stored as q + 8) and one f16 scale; a part's buffer holds the
// data plane [rows, groups, words] and then, at word sOff (a Params field), the scales [rows, groups] two f16 a
// word. Value = scale * q.

fn isQuant(fmt: u32) -> bool {
  return fmt >= 3u;
}

fn qWords(fmt: u32) -> u32 {
  return select(4u, 8u, fmt == 3u);
}

/** Scale gi from the scales word holding it (f16 as decode() widens it). */
fn qScale(word: u32, gi: u32) -> f32 {
  return decode(word, gi, 1u);
}

/** The four int8 values of a q8 word, in order. */
fn q8x4(w: u32) -> vec4f {
  return vec4f(bitcast<vec4i>(vec4u(w) << vec4u(24u, 16u, 8u, 0u)) >> vec4u(24u));
}

/** Values 0..3 (lo) and 4..7 (hi) of a q4 word. */
fn q4lo(w: u32) -> vec4f {
  return vec4f(vec4i((vec4u(w) >> vec4u(0u, 4u, 8u, 12u)) & vec4u(15u)) - vec4i(8));
}
fn q4hi(w: u32) -> vec4f {
  return vec4f(vec4i((vec4u(w) >> vec4u(16u, 20u, 24u, 28u)) & vec4u(15u)) - vec4i(8));
}

/** The group of value k of a row (rows of K values, ceil(K / 32) groups each). */
fn qGroup(row: u32, k: u32, K: u32) -> u32 {
  return row * ((K + 31u) / 32u) + k / 32u;
}

/** The data-plane word of group gi that holds value k of its row. */
fn qDataWord(gi: u32, k: u32, fmt: u32) -> u32 {
  return gi * qWords(fmt) + (k % 32u) / (32u / qWords(fmt));
}

/** Value j of a group (any k with k % 32 = j), unscaled, from the word that holds it. */
fn qValue(word: u32, j: u32, fmt: u32) -> f32 {
  if (fmt == 3u) { return f32(bitcast<i32>(word << (24u - 8u * (j % 4u))) >> 24u); }
  return f32(i32((word >> (4u * (j % 8u))) & 15u) - 8);
}
