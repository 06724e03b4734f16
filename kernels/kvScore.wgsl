// Quest block scores for sparse attention (see src/engine/memory/kvBlocks.ts).
//
// qpart:  the elementwise min/max of a chunk's queries over the query heads of each KV head group, for each of
//         `slices` runs of tokens: qp [nKv, slices, 2, d]. Many workgroups, so that a long chunk (8K tokens x
//         the group's heads) is not read by a few threads one element after the other.
// qrange: those folded over the slices: qr [nKv, 2, d] (min row, then max row), the min/max over all T tokens.
//         An upper bound for every query of the chunk.
// score:  for each KV block b with key summary (kmin, kmax) [nKv*d] each:
//         score[b] = max over KV heads g of sum_i max(qmin_i kmin_i, qmin_i kmax_i, qmax_i kmin_i, qmax_i kmax_i)

struct Params {
  T: u32,        // queries in the chunk
  nH: u32,       // query heads
  nKv: u32,      // KV heads
  d: u32,        // head dim
  qOff: u32,     // q offset (elements)
  qStride: u32,  // q row stride (elements), >= nH*d
  nb: u32,       // blocks to score
  slices: u32,   // token runs of qpart, 1 .. T
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> qr: array<f32>;
@group(0) @binding(3) var<storage, read> summaries: array<f32>; // [nb, 2, nKv*d]
@group(0) @binding(4) var<storage, read_write> scores: array<f32>; // [nb]
@group(0) @binding(5) var<storage, read_write> qp: array<f32>; // [nKv, slices, 2, d]

// One workgroup per (KV head, token run); threads stride over the head dim.
@compute @workgroup_size(64)
fn qpart(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wg.x;
  let s = wg.y;
  let rep = P.nH / P.nKv;
  let per = (P.T + P.slices - 1u) / P.slices;
  let t0 = s * per;
  let t1 = min(t0 + per, P.T);
  for (var i = lid.x; i < P.d; i += 64u) {
    var lo = 3.4e38;
    var hi = -3.4e38;
    for (var t = t0; t < t1; t++) {
      for (var r = 0u; r < rep; r++) {
        let h = g * rep + r;
        let x = q[P.qOff + t * P.qStride + h * P.d + i];
        lo = min(lo, x);
        hi = max(hi, x);
      }
    }
    qp[((g * P.slices + s) * 2u) * P.d + i] = lo;
    qp[((g * P.slices + s) * 2u + 1u) * P.d + i] = hi;
  }
}

// One workgroup per KV head; threads stride over the head dim.
@compute @workgroup_size(64)
fn qrange(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wg.x;
  for (var i = lid.x; i < P.d; i += 64u) {
    var lo = 3.4e38;
    var hi = -3.4e38;
    for (var s = 0u; s < P.slices; s++) {
      lo = min(lo, qp[((g * P.slices + s) * 2u) * P.d + i]);
      hi = max(hi, qp[((g * P.slices + s) * 2u + 1u) * P.d + i]);
    }
    qr[(g * 2u) * P.d + i] = lo;
    qr[(g * 2u + 1u) * P.d + i] = hi;
  }
}

// One thread per block.
@compute @workgroup_size(64)
fn score(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.x;
  if (b >= P.nb) {
    return;
  }
  let kd = P.nKv * P.d;
  var best = -3.4e38;
  for (var g = 0u; g < P.nKv; g++) {
    var sum = 0.0;
    for (var i = 0u; i < P.d; i++) {
      let lo = summaries[b * 2u * kd + g * P.d + i];
      let hi = summaries[b * 2u * kd + kd + g * P.d + i];
      let q0 = qr[(g * 2u) * P.d + i];
      let q1 = qr[(g * 2u + 1u) * P.d + i];
      sum += max(max(q0 * lo, q0 * hi), max(q1 * lo, q1 * hi));
    }
    best = max(best, sum);
  }
  scores[b] = best;
}
