// RecurrentGemma (Griffin) kernels (see src/engine/cpu/griffin.ts for the math):
//   rglru:          one thread per channel j of L walks the T tokens: the block-diagonal gates from the conv output
//                   u [T, L] (head h = j / BW: gx = sigmoid(u[t, h-block] . Wx[h, :, j % BW] + bx[j]), ga likewise),
//                   a = exp(-8 ga softplus(param[j])), h = a h + sqrt(1 - a^2) u gx (h = u gx at position 0),
//                   out[t, j] = h; the state h [L] (f32) carried.
//   ringWrite:      the chunk's last min(T, W) K/V rows into the rings (after the prefill's local attention,
//                   kernels/localAttnPrefill.wgsl, has read them; before decode's, kernels/attnDecode.wgsl).
// Weights are u32 words in the checkpoint's format (WFMT, weights.wgsl).

struct Params {
  T: u32,
  L: u32, // rglru: lru width; attention: heads
  BW: u32, // rglru: gate block width; attention: KV heads
  W: u32, // attention: window (ring rows)
  d: u32, // attention: head dim
  scaling: f32,
}

override WG: u32 = 64u;
override WFMT: u32 = 0u;
override DH: u32 = 64u; // ringWrite: head dim

@group(0) @binding(0) var<uniform> P: Params;

// ---- rglru
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> Wx: array<u32>;
@group(0) @binding(3) var<storage, read> bx: array<u32>;
@group(0) @binding(4) var<storage, read> Wa: array<u32>;
@group(0) @binding(5) var<storage, read> ba: array<u32>;
@group(0) @binding(6) var<storage, read> param: array<u32>;
@group(0) @binding(7) var<storage, read_write> hState: array<f32>;
@group(0) @binding(8) var<storage, read_write> hOut: array<f32>;
@group(0) @binding(9) var<uniform> step: Step;

fn wv(buf: u32, i: u32) -> f32 {
  // (buf: 0 Wx, 1 bx, 2 Wa, 3 ba, 4 param)
  let k = wordIndex(i, WFMT);
  switch buf {
    case 0u: { return decode(Wx[k], i, WFMT); }
    case 1u: { return decode(bx[k], i, WFMT); }
    case 2u: { return decode(Wa[k], i, WFMT); }
    case 3u: { return decode(ba[k], i, WFMT); }
    default: { return decode(param[k], i, WFMT); }
  }
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

fn softplus(x: f32) -> f32 {
  // torch's softplus (threshold 20)
  if (x > 20.0) { return x; }
  return log(1.0 + exp(x));
}

@compute @workgroup_size(WG)
fn rglru(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= P.L) { return; }
  let bw = P.BW;
  let hd = j / bw;
  let jj = j % bw;
  let sp = softplus(wv(4u, j));
  let bIn = wv(1u, j);
  let bRec = wv(3u, j);
  var h = hState[j];
  for (var t = 0u; t < P.T; t++) {
    var gx = bIn;
    var ga = bRec;
    for (var i = 0u; i < bw; i++) {
      let v = u[t * P.L + hd * bw + i];
      let wi = (hd * bw + i) * bw + jj;
      gx += v * wv(0u, wi);
      ga += v * wv(2u, wi);
    }
    let logA = -8.0 * sigmoid(ga) * sp;
    let a = exp(logA);
    let gated = u[t * P.L + j] * sigmoid(gx);
    if (step.pos0 + t == 0u) {
      h = gated;
    } else {
      h = a * h + gated * sqrt(1.0 - exp(2.0 * logA));
    }
    hOut[t * P.L + j] = h;
  }
  hState[j] = h;
}

// ---- ringWrite
@group(0) @binding(2) var<storage, read> kNew: array<f32>;
@group(0) @binding(3) var<storage, read> vNew: array<f32>;
@group(0) @binding(4) var<storage, read_write> kRing: array<f32>;
@group(0) @binding(5) var<storage, read_write> vRing: array<f32>;

@compute @workgroup_size(WG)
fn ringWrite(@builtin(global_invocation_id) gid: vec3u) {
  let kd = P.BW * DH;
  let rows = min(P.T, P.W);
  let e = gid.x;
  if (e >= rows * kd) { return; }
  let t = P.T - rows + e / kd;
  let i = e % kd;
  let r = ((step.pos0 + t) % P.W) * kd + i;
  kRing[r] = kNew[t * kd + i];
  vRing[r] = vNew[t * kd + i];
}

// #include weights
// #include step
