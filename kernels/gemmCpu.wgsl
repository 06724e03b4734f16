// Matrix products for prefill on CPU adapters (lavapipe, SwiftShader), same contract as gemm.wgsl:
//   out[t, nOff + n] = (accumulate ? out : 0) + alpha * (sum_k x[t, k] W[n, k] + bias[nOff + n])
// x: [T, K] f32 (offset and stride % 4 == 0), W: [N, K] one part of a weight in any format (K % 32 == 0),
// dequantized as read, never expanded in memory.
//
// A CPU adapter runs a workgroup's invocations in SIMD lanes (llvmpipe: 8 f32 lanes with AVX2). A load whose
// address differs between lanes is a gather there, one whose address is the same in every lane a single scalar
// load, and every workgroup-memory read in a loop is a gather. So here a lane is a token (its x row: two vec4
// gathers per 8 k) and a workgroup's 8 output columns are the same in every lane (their weights: scalar loads,
// dequantized once for the lane's 3 tokens), 24 accumulators a lane, each a scalar (vec4 accumulators ran ~25%
// slower), no workgroup memory, no barriers. At the bundled model's in_proj (T 2048, K 256, N 1160, q4) on a 2-core
// EPYC (Mesa 25.0.7): 15.8 GFLOP/s against 4.4 for gemm.wgsl's main, whose 64 x 64 tiles in workgroup memory suit a
// GPU (16 columns x 1 token: 11.4; 12 x 2: 14.3; 8 x 2: 12.3). 16-bit weights take 4 scalar loads per 8 values
// instead of q4's 1 (bf16 6.6 against main's 4.1); f32 weights take 8 and only tie with main, so ops.ts
// (gemmKernel) leaves f32 to main.

// Params: kernels/gemmParams.wgsl.

override WFMT: u32 = 0u;
override BFMT: u32 = 0u;
override LANES: u32 = 8u; // invocations a workgroup: the adapter's SIMD width
const COLS = 8u; // output columns a workgroup (GEMM_CPU in src/engine/gpu/ops.ts; the lines below are written out for 8)
const TOK = 3u; // tokens a lane: t = base + i * LANES (written out for 3)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

/** Words of W per row, and values per word. */
fn rowWords() -> u32 {
  if (isQuant(WFMT)) { return (P.K / 32u) * qWords(WFMT); }
  return select(P.K / 2u, P.K, WFMT == 0u);
}
fn perWord() -> u32 {
  if (isQuant(WFMT)) { return 32u / qWords(WFMT); }
  return select(2u, 1u, WFMT == 0u);
}

/** Scale of row n's group holding value k (quantized formats), else 1. */
fn rowScale(n: u32, k: u32) -> f32 {
  if (!isQuant(WFMT)) { return 1.0; }
  let gi = qGroup(n, k, P.K);
  return qScale(W[P.sOff + gi / 2u], gi);
}

/** Eight consecutive values of a row (unscaled for quantized formats) from word i of W on: lo, hi = 0..3, 4..7. */
struct W8 {
  lo: vec4f,
  hi: vec4f,
}

fn w8(i: u32) -> W8 {
  if (WFMT == 4u) {
    let w = W[i];
    return W8(q4lo(w), q4hi(w));
  }
  if (WFMT == 3u) { return W8(q8x4(W[i]), q8x4(W[i + 1u])); }
  if (WFMT == 0u) {
    return W8(bitcast<vec4f>(vec4u(W[i], W[i + 1u], W[i + 2u], W[i + 3u])), bitcast<vec4f>(vec4u(W[i + 4u], W[i + 5u], W[i + 6u], W[i + 7u])));
  }
  var ev = vec4f(0.0);
  var od = vec4f(0.0);
  decode8(vec4u(W[i], W[i + 1u], W[i + 2u], W[i + 3u]), WFMT, &ev, &od);
  return W8(vec4f(ev.x, od.x, ev.y, od.y), vec4f(ev.z, od.z, ev.w, od.w));
}

/** sum of the 8 products of v with x[k..k+7] = xa, xb. */
fn dot8(v: W8, xa: vec4f, xb: vec4f) -> f32 {
  return dot(xa, v.lo) + dot(xb, v.hi);
}

fn store(t: u32, n: u32, v: f32) {
  if (t >= P.T || n >= P.N) { return; }
  let col = P.nOff + n;
  var b = 0.0;
  if (P.hasBias != 0u) { b = decode(bias[wordIndex(col, BFMT)], col, BFMT); }
  let o = P.oOff + t * P.oStride + col;
  var y = P.alpha * (v + b);
  if (P.accumulate != 0u) { y += out[o]; }
  out[o] = y;
}

// Accumulator aI_J: token I of the lane, column J of the workgroup (the per-column lines are written out, so
// that every accumulator stays a register).
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tb = wid.y * LANES * TOK + lid;
  let nb = wid.x * COLS;
  let rw = rowWords();
  // Rows past T / columns past N repeat the last one (read, never written).
  let x0 = (P.xOff + min(tb, P.T - 1u) * P.xStride) / 4u;
  let x1 = (P.xOff + min(tb + LANES, P.T - 1u) * P.xStride) / 4u;
  let x2 = (P.xOff + min(tb + 2u * LANES, P.T - 1u) * P.xStride) / 4u;
  let n0 = min(nb + 0u, P.N - 1u);
  let n1 = min(nb + 1u, P.N - 1u);
  let n2 = min(nb + 2u, P.N - 1u);
  let n3 = min(nb + 3u, P.N - 1u);
  let n4 = min(nb + 4u, P.N - 1u);
  let n5 = min(nb + 5u, P.N - 1u);
  let n6 = min(nb + 6u, P.N - 1u);
  let n7 = min(nb + 7u, P.N - 1u);
  let r0 = n0 * rw;
  let r1 = n1 * rw;
  let r2 = n2 * rw;
  let r3 = n3 * rw;
  let r4 = n4 * rw;
  let r5 = n5 * rw;
  let r6 = n6 * rw;
  let r7 = n7 * rw;
  var a0_0 = 0.0; var a0_1 = 0.0; var a0_2 = 0.0; var a0_3 = 0.0; var a0_4 = 0.0; var a0_5 = 0.0; var a0_6 = 0.0; var a0_7 = 0.0;
  var a1_0 = 0.0; var a1_1 = 0.0; var a1_2 = 0.0; var a1_3 = 0.0; var a1_4 = 0.0; var a1_5 = 0.0; var a1_6 = 0.0; var a1_7 = 0.0;
  var a2_0 = 0.0; var a2_1 = 0.0; var a2_2 = 0.0; var a2_3 = 0.0; var a2_4 = 0.0; var a2_5 = 0.0; var a2_6 = 0.0; var a2_7 = 0.0;
  // Groups of 32 k share one scale per row (quantized formats).
  for (var k0 = 0u; k0 < P.K; k0 += 32u) {
    let d0 = rowScale(n0, k0);
    let d1 = rowScale(n1, k0);
    let d2 = rowScale(n2, k0);
    let d3 = rowScale(n3, k0);
    let d4 = rowScale(n4, k0);
    let d5 = rowScale(n5, k0);
    let d6 = rowScale(n6, k0);
    let d7 = rowScale(n7, k0);
    for (var s = 0u; s < 4u; s++) {
      let k = k0 + s * 8u;
      let kw = k / perWord();
      let xa0 = x4[x0 + k / 4u];
      let xb0 = x4[x0 + k / 4u + 1u];
      let xa1 = x4[x1 + k / 4u];
      let xb1 = x4[x1 + k / 4u + 1u];
      let xa2 = x4[x2 + k / 4u];
      let xb2 = x4[x2 + k / 4u + 1u];
      { let v = w8(r0 + kw); a0_0 += d0 * dot8(v, xa0, xb0); a1_0 += d0 * dot8(v, xa1, xb1); a2_0 += d0 * dot8(v, xa2, xb2); }
      { let v = w8(r1 + kw); a0_1 += d1 * dot8(v, xa0, xb0); a1_1 += d1 * dot8(v, xa1, xb1); a2_1 += d1 * dot8(v, xa2, xb2); }
      { let v = w8(r2 + kw); a0_2 += d2 * dot8(v, xa0, xb0); a1_2 += d2 * dot8(v, xa1, xb1); a2_2 += d2 * dot8(v, xa2, xb2); }
      { let v = w8(r3 + kw); a0_3 += d3 * dot8(v, xa0, xb0); a1_3 += d3 * dot8(v, xa1, xb1); a2_3 += d3 * dot8(v, xa2, xb2); }
      { let v = w8(r4 + kw); a0_4 += d4 * dot8(v, xa0, xb0); a1_4 += d4 * dot8(v, xa1, xb1); a2_4 += d4 * dot8(v, xa2, xb2); }
      { let v = w8(r5 + kw); a0_5 += d5 * dot8(v, xa0, xb0); a1_5 += d5 * dot8(v, xa1, xb1); a2_5 += d5 * dot8(v, xa2, xb2); }
      { let v = w8(r6 + kw); a0_6 += d6 * dot8(v, xa0, xb0); a1_6 += d6 * dot8(v, xa1, xb1); a2_6 += d6 * dot8(v, xa2, xb2); }
      { let v = w8(r7 + kw); a0_7 += d7 * dot8(v, xa0, xb0); a1_7 += d7 * dot8(v, xa1, xb1); a2_7 += d7 * dot8(v, xa2, xb2); }
    }
  }
  store(tb + 0u * LANES, nb + 0u, a0_0); store(tb + 0u * LANES, nb + 1u, a0_1); store(tb + 0u * LANES, nb + 2u, a0_2); store(tb + 0u * LANES, nb + 3u, a0_3); store(tb + 0u * LANES, nb + 4u, a0_4); store(tb + 0u * LANES, nb + 5u, a0_5); store(tb + 0u * LANES, nb + 6u, a0_6); store(tb + 0u * LANES, nb + 7u, a0_7);
  store(tb + 1u * LANES, nb + 0u, a1_0); store(tb + 1u * LANES, nb + 1u, a1_1); store(tb + 1u * LANES, nb + 2u, a1_2); store(tb + 1u * LANES, nb + 3u, a1_3); store(tb + 1u * LANES, nb + 4u, a1_4); store(tb + 1u * LANES, nb + 5u, a1_5); store(tb + 1u * LANES, nb + 6u, a1_6); store(tb + 1u * LANES, nb + 7u, a1_7);
  store(tb + 2u * LANES, nb + 0u, a2_0); store(tb + 2u * LANES, nb + 1u, a2_1); store(tb + 2u * LANES, nb + 2u, a2_2); store(tb + 2u * LANES, nb + 3u, a2_3); store(tb + 2u * LANES, nb + 4u, a2_4); store(tb + 2u * LANES, nb + 5u, a2_5); store(tb + 2u * LANES, nb + 6u, a2_6); store(tb + 2u * LANES, nb + 7u, a2_7);
}

// #include gemmParams
// #include weights
