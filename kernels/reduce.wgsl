// Workgroup-wide reductions, included (// #include reduce) at the end of kernels that declare
// `override WG: u32` (workgroup size, a power of two) and `override SG: u32` (subgroup size, from the device's
// probe; subgroups are laid over consecutive invocations). Call from uniform control flow only.

var<workgroup> red: array<vec4f, WG>;

/** Sum of v over the workgroup (per component), returned to every invocation. */
fn wgSum4(v: vec4f, lid: u32) -> vec4f {
// #if SUBGROUPS
  let s = subgroupAdd(v);
  if (lid % SG == 0u) { red[lid / SG] = s; }
  workgroupBarrier();
  var tot = vec4f(0.0);
  for (var i = 0u; i < WG / SG; i++) { tot += red[i]; }
// #else
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let tot = red[0];
// #endif
  workgroupBarrier();
  return tot;
}

fn wgSum(v: f32, lid: u32) -> f32 {
  return wgSum4(vec4f(v, 0.0, 0.0, 0.0), lid).x;
}

/** Maximum of v over the workgroup, returned to every invocation. */
fn wgMax(v: f32, lid: u32) -> f32 {
// #if SUBGROUPS
  let s = subgroupMax(v);
  if (lid % SG == 0u) { red[lid / SG].x = s; }
  workgroupBarrier();
  var m = red[0].x;
  for (var i = 1u; i < WG / SG; i++) { m = max(m, red[i].x); }
// #else
  red[lid].x = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid].x = max(red[lid].x, red[lid + s].x); }
    workgroupBarrier();
  }
  let m = red[0].x;
// #endif
  workgroupBarrier();
  return m;
}
