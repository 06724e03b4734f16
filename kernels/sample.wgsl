// The next token, chosen on the GPU so decode needs no CPU round trip per token. The V logits are cut into
// nwg slices, one workgroup each; every pass leaves per-workgroup partial results in `parts` (two buffers
// used alternately: dispatch seq reads buffer (seq - 1) % 2, writes seq % 2), and the next dispatch's
// workgroups each reduce them again (a few hundred values), so no pass needs a separate reduction dispatch.
//   argmax:  argmaxPart, pick                             the largest logit (ties to the lower index)
//   sample:  maxPart, massPart x 6 (top_p < 1), gumbelPart, pick
//     With u_i = (logit_i - max) / temperature, the nucleus is {u_i >= theta}, theta the largest value whose
//     mass sum exp(u_i) over u_i >= theta reaches top_p of the total. Each massPart pass measures the mass at
//     15 candidates splitting the interval [lo, hi] known to hold theta into 16 (6 passes: theta within 5e-6
//     in log-probability). gumbelPart then draws by the Gumbel-max trick: argmax over the nucleus of
//     u_i + g_i, g_i = -log(-log(U_i)), U_i a hash of (seed, pos0, i): an exact draw from the renormalised
//     nucleus.
// pick writes the id to outId[0] and, when hasRing, to ring[(pos0 + nTokens) % ringCap] (the id's position).
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
  nwg: u32, // workgroups (slices), <= WG
  slice: u32, // logits per slice
  seq: u32, // this dispatch's place in the chain
}

override WG: u32 = 256u;
override SG: u32 = 32u;
const NEG = -3.0e38;
const LO = -88.0; // u below this has probability < e^-88 of the max: never kept
const PS = 16u; // floats per workgroup partial

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> outId: array<u32>;
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<storage, read_write> parts: array<f32>; // [2][nwg][PS]
@group(0) @binding(6) var<storage, read_write> st: array<vec4f>; // [2]: (max, lo, hi, goal) after each pass

var<workgroup> rv: array<f32, WG>;
var<workgroup> ri: array<u32, WG>;

fn partIndex(seq: u32, w: u32, c: u32) -> u32 {
  return ((seq % 2u) * P.nwg + w) * PS + c;
}

/** (value, index) with the largest value over the workgroup, ties to the lower index. */
fn wgArgmax(v: f32, i: u32, lid: u32) -> vec2u {
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
  let r = vec2u(bitcast<u32>(rv[0]), ri[0]);
  workgroupBarrier();
  return r;
}

/** This workgroup's logits: i0 + lid + k * WG for k < n, i < V. */
fn sliceStart(wid: u32) -> u32 {
  return wid * P.slice;
}

fn sliceEnd(wid: u32) -> u32 {
  return min(P.V, (wid + 1u) * P.slice);
}

@compute @workgroup_size(WG)
fn argmaxPart(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var i = sliceStart(wid.x) + lid; i < sliceEnd(wid.x); i += WG) {
    let v = logits[P.xOff + i];
    if (v > bv || bi == 0xffffffffu) {
      bv = v;
      bi = i;
    }
  }
  let r = wgArgmax(bv, bi, lid);
  if (lid == 0u) {
    parts[partIndex(P.seq, wid.x, 0u)] = bitcast<f32>(r.x);
    parts[partIndex(P.seq, wid.x, 1u)] = bitcast<f32>(r.y);
  }
}

@compute @workgroup_size(WG)
fn pick(@builtin(local_invocation_index) lid: u32) {
  var bv = NEG;
  var bi = 0xffffffffu;
  if (lid < P.nwg) {
    bv = parts[partIndex(P.seq - 1u, lid, 0u)];
    bi = bitcast<u32>(parts[partIndex(P.seq - 1u, lid, 1u)]);
  }
  let id = wgArgmax(bv, bi, lid).y;
  if (lid == 0u) {
    let v = select(id, 0u, id >= P.V); // all-NaN logits: token 0
    outId[0] = v;
    if (P.hasRing != 0u) { ring[(step.pos0 + step.nTokens) % P.ringCap] = v; }
  }
}

@compute @workgroup_size(WG)
fn maxPart(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  var mx = NEG;
  for (var i = sliceStart(wid.x) + lid; i < sliceEnd(wid.x); i += WG) { mx = max(mx, logits[P.xOff + i]); }
  let m = wgMax(mx, lid);
  if (lid == 0u) { parts[partIndex(P.seq, wid.x, 0u)] = m; }
}

/**
 * The state after the previous dispatch: (max, lo, hi, goal). After maxPart (seq 1) it reduces the maxima;
 * after a massPart it narrows [lo, hi] to the sub-interval that holds theta. Invariant: mass(lo) >= goal.
 */
fn advance(lid: u32) -> vec4f {
  if (P.seq == 1u) {
    var mx = NEG;
    if (lid < P.nwg) { mx = parts[partIndex(0u, lid, 0u)]; }
    return vec4f(wgMax(mx, lid), LO, 0.0, 0.0);
  }
  let prev = st[(P.seq - 1u) % 2u];
  var f = array<vec4f, 4>(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
  for (var q = 0u; q < 4u; q++) {
    var v = vec4f(0.0);
    if (lid < P.nwg) {
      let b = partIndex(P.seq - 1u, lid, 4u * q);
      v = vec4f(parts[b], parts[b + 1u], parts[b + 2u], parts[b + 3u]);
    }
    f[q] = wgSum4(v, lid);
  }
  // Mass at candidate c is f[c / 4][c % 4]; slot 0 of the first pass holds the total, which sets the goal.
  let goal = select(prev.w, P.topP * f[0].x, P.seq == 2u);
  let lo = prev.y;
  let w = (prev.z - prev.y) / 16.0;
  var best = 0u; // largest c with mass(theta_c) >= goal (0: lo itself)
  for (var c = 1u; c < 16u; c++) {
    if (f[c / 4u][c % 4u] >= goal) { best = c; }
  }
  let hi = select(lo + w * f32(best + 1u), prev.z, best == 15u);
  return vec4f(prev.x, lo + w * f32(best), hi, goal);
}

@compute @workgroup_size(WG)
fn massPart(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = advance(lid);
  let m = s.x;
  let lo = s.y;
  let w = (s.z - s.y) / 16.0;
  // Candidates theta_c = lo + c w, c = 1..15: the mass of u >= theta_c. Slot 0 sums everything counted (the
  // total, on the first pass, which counts from lo itself).
  let floor = select(lo + w, lo, P.seq == 1u);
  var f0 = vec4f(0.0);
  var f1 = vec4f(0.0);
  var f2 = vec4f(0.0);
  var f3 = vec4f(0.0);
  for (var i = sliceStart(wid.x) + lid; i < sliceEnd(wid.x); i += WG) {
    let u = (logits[P.xOff + i] - m) * P.invTemp;
    if (u < floor) { continue; }
    let e = exp(u);
    let cv = vec4f(f32(min(u32(max(u - lo, 0.0) / w), 15u)));
    f0 += select(vec4f(0.0), vec4f(e), vec4f(0.0, 1.0, 2.0, 3.0) <= cv);
    f1 += select(vec4f(0.0), vec4f(e), vec4f(4.0, 5.0, 6.0, 7.0) <= cv);
    f2 += select(vec4f(0.0), vec4f(e), vec4f(8.0, 9.0, 10.0, 11.0) <= cv);
    f3 += select(vec4f(0.0), vec4f(e), vec4f(12.0, 13.0, 14.0, 15.0) <= cv);
  }
  f0 = wgSum4(f0, lid);
  f1 = wgSum4(f1, lid);
  f2 = wgSum4(f2, lid);
  f3 = wgSum4(f3, lid);
  if (lid == 0u) {
    let b = partIndex(P.seq, wid.x, 0u);
    for (var c = 0u; c < 4u; c++) {
      parts[b + c] = f0[c];
      parts[b + 4u + c] = f1[c];
      parts[b + 8u + c] = f2[c];
      parts[b + 12u + c] = f3[c];
    }
    if (wid.x == 0u) { st[P.seq % 2u] = s; }
  }
}

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

/**
 * A Gumbel variate -log(E), E = -log(U) ~ Exp(1), from 24 random bits. E is computed from q = 1 - U (exact)
 * with a series when q is small: GPU log is only accurate to ~1e-7 absolute near 1, which would make -log(E)
 * wildly wrong (even infinite) for U near 1, and such tokens would win the argmax.
 */
fn gumbel(h: u32) -> f32 {
  let q = (f32(h >> 8u) + 0.5) / 16777216.0;
  var e: f32;
  if (q < 0.01) { e = q * (1.0 + q * (0.5 + q * (0.33333334 + q * 0.25))); } else { e = -log(1.0 - q); }
  return -log(e);
}

@compute @workgroup_size(WG)
fn gumbelPart(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = advance(lid);
  let theta = select(NEG, s.y, P.topP < 1.0);
  let seed = pcg(step.seed ^ pcg(step.pos0 + 0x9e3779b9u));
  var bv = NEG;
  var bi = 0xffffffffu;
  for (var i = sliceStart(wid.x) + lid; i < sliceEnd(wid.x); i += WG) {
    let u = (logits[P.xOff + i] - s.x) * P.invTemp;
    if (u < theta) { continue; }
    let g = u + gumbel(pcg(pcg(i ^ seed) + seed));
    if (g > bv || bi == 0xffffffffu) {
      bv = g;
      bi = i;
    }
  }
  let r = wgArgmax(bv, bi, lid);
  if (lid == 0u) {
    parts[partIndex(P.seq, wid.x, 0u)] = bitcast<f32>(r.x);
    parts[partIndex(P.seq, wid.x, 1u)] = bitcast<f32>(r.y);
  }
}

// #include reduce
// #include step
