// Sums over rows of TPR consecutive invocations, included (// #include rowSum) by kernels that declare
// `override WG`, `override TPR` (1, or a power of two and a multiple of SG when subgroups are on) and `override SG`.
// Call from uniform control flow only.

var<workgroup> part: array<vec4f, WG>;

/** Sums v over the TPR lanes of each row; the row's first lane (lid % TPR == 0) gets the total. */
fn rowSum(v: vec4f, lid: u32) -> vec4f {
  if (TPR == 1u) { return v; }
// #if SUBGROUPS
  var s = subgroupAdd(v);
  if (TPR > SG) {
    if (lid % SG == 0u) { part[lid / SG] = s; }
    workgroupBarrier();
    let first = (lid / TPR) * (TPR / SG);
    s = vec4f(0.0);
    for (var i = 0u; i < TPR / SG; i++) { s += part[first + i]; }
    workgroupBarrier();
  }
  return s;
// #else
  part[lid] = v;
  workgroupBarrier();
  let lane = lid % TPR;
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  let r = part[lid];
  workgroupBarrier();
  return r;
// #endif
}
