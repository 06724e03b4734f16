// The next token, chosen on the GPU (one workgroup), so decode needs no CPU round trip per token:
//   argmax  the index of the largest logit (ties to the lower index)
//   sample  temperature + nucleus (top-p) sampling: with u_i = (logit_i - max) / temperature, keep the tokens
//           with u_i >= theta, theta the largest value whose kept mass sum exp(u_i) reaches top_p of the total
//           (found by 16-way multisection, 6 passes: theta within 5e-6 in log-probability), then draw by the
//           Gumbel-max trick, argmax of u_i + g_i with g_i = -log(-log(U_i)) and U_i a hash of (seed, pos0, i),
//           an exact draw from the renormalised kept distribution.
// Both write the id to outId[0] and, when hasRing, to ring[(pos0 + nTokens) % ringCap] (the id's position).
// logits: [V] (offset).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  V: u32,
  xOff: u32,
  invTemp: f32,
  topP: f32,
  ringCap: u32,
  hasRing: u32,
}

struct Step {
  pos0: u32,
  nTokens: u32,
  seed: u32,
  pad: u32,
}

override WG: u32 = 256u;
override SG: u32 = 32u;
const NEG = -3.0e38;
const LO = -88.0; // u below this has probability < e^-88 of the max: never kept

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> outId: array<u32>;
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> rv: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;

/** Index of the largest v over the workgroup, ties to the lower index (every thread passes its best). */
fn wgArgmax(v: f32, i: u32, lid: u32) -> u32 {
  rv[lid] = v;
  ri[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = rv[lid + s];
      let oi = ri[lid + s];
      if (ov > rv[lid] || (ov == rv[lid] && oi < ri[lid])) {
        rv[lid] = ov;
        ri[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  return ri[0];
}

fn emit(id: u32, lid: u32) {
  if (lid != 0u) { return; }
  let v = select(id, 0u, id >= P.V); // all-NaN logits: token 0
  outId[0] = v;
  if (P.hasRing != 0u) { ring[(step.pos0 + step.nTokens) % P.ringCap] = v; }
}

@compute @workgroup_size(WG)
fn argmax(@builtin(local_invocation_index) lid: u32) {
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var i = lid; i < P.V; i += WG) {
    let v = logits[P.xOff + i];
    if (v > bv || bi == 0xffffffffu) {
      bv = v;
      bi = i;
    }
  }
  emit(wgArgmax(bv, bi, lid), lid);
}

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
  var mx = NEG;
  for (var i = lid; i < P.V; i += WG) { mx = max(mx, logits[P.xOff + i]); }
  let m = wgMax(mx, lid);
  var theta = NEG;
  if (P.topP < 1.0) {
    var z = 0.0;
    for (var i = lid; i < P.V; i += WG) { z += exp((logits[P.xOff + i] - m) * P.invTemp); }
    let goal = P.topP * wgSum(z, lid);
    // Invariant: mass(lo) >= goal. Candidates theta_c = lo + (hi - lo) c / 16, c = 1..15.
    var lo = LO;
    var hi = 0.0;
    for (var it = 0u; it < 6u; it++) {
      let w = (hi - lo) / 16.0;
      var f0 = vec4f(0.0); // mass at candidates 1..4 (slot 0 unused)
      var f1 = vec4f(0.0); // 4..7
      var f2 = vec4f(0.0); // 8..11
      var f3 = vec4f(0.0); // 12..15
      for (var i = lid; i < P.V; i += WG) {
        let u = (logits[P.xOff + i] - m) * P.invTemp;
        if (u < lo + w) { continue; }
        let e = exp(u);
        let c = min(u32((u - lo) / w), 15u); // u >= theta_1 .. theta_c
        let cv = vec4f(f32(c));
        f0 += select(vec4f(0.0), vec4f(e), vec4f(0.0, 1.0, 2.0, 3.0) <= cv);
        f1 += select(vec4f(0.0), vec4f(e), vec4f(4.0, 5.0, 6.0, 7.0) <= cv);
        f2 += select(vec4f(0.0), vec4f(e), vec4f(8.0, 9.0, 10.0, 11.0) <= cv);
        f3 += select(vec4f(0.0), vec4f(e), vec4f(12.0, 13.0, 14.0, 15.0) <= cv);
      }
      f0 = wgSum4(f0, lid);
      f1 = wgSum4(f1, lid);
      f2 = wgSum4(f2, lid);
      f3 = wgSum4(f3, lid);
      var best = 0u; // largest c with mass(theta_c) >= goal (0: lo itself)
      for (var c = 1u; c < 16u; c++) {
        var f: f32;
        if (c < 4u) { f = f0[c]; } else if (c < 8u) { f = f1[c - 4u]; } else if (c < 12u) { f = f2[c - 8u]; } else { f = f3[c - 12u]; }
        if (f >= goal) { best = c; }
      }
      let newLo = lo + w * f32(best);
      hi = select(lo + w * f32(best + 1u), hi, best == 15u);
      lo = newLo;
    }
    theta = lo;
  }
  let seed = pcg(step.seed ^ pcg(step.pos0 + 0x9e3779b9u));
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var i = lid; i < P.V; i += WG) {
    let u = (logits[P.xOff + i] - m) * P.invTemp;
    if (u < theta) { continue; }
    let r = (f32(pcg(pcg(i ^ seed) + seed) >> 8u) + 0.5) / 16777216.0;
    let g = u - log(-log(r));
    if (g > bv || bi == 0xffffffffu) {
      bv = g;
      bi = i;
    }
  }
  emit(wgArgmax(bv, bi, lid), lid);
}

// #include reduce
