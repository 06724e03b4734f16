// Quest key summaries of a chunk's new K rows, per block (see src/engine/memory/kvBlocks.ts): the
// elementwise min and max of the keys of each block the rows fall in, read back with the rows so that the
// host store does not have to go over every key.
//
// The chunk's T rows sit at rows row0 .. row0+T-1 of the cache and continue a sequence whose current block
// already holds `phase` rows (pos0 % 64): group g covers chunk rows [max(64 g, phase) - phase,
// min(64 (g + 1) - phase, T)), so group 0 is the rest of the current block when phase > 0.
// out: [groups, 2, rowLen], min row then max row. Rows are folded in order, keeping the first of equal values
// (select on a strict compare, not min/max), exactly as KvBlockStore folds them on the host.

struct Params {
  row0: u32,   // cache row of the chunk's first row
  T: u32,      // rows in the chunk
  rowLen: u32, // nKv * headDim
  phase: u32,  // rows already in the current block (pos0 % 64)
  groups: u32, // ceil((phase + T) / 64)
}

const BLOCK_ROWS: u32 = 64u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>; // [capacity, rowLen]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [groups, 2, rowLen]

// One thread per (group, element): x over the row, y over the groups; a workgroup reads consecutive floats.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let g = gid.y;
  if (i >= P.rowLen || g >= P.groups) { return; }
  let r0 = max(g * BLOCK_ROWS, P.phase) - P.phase;
  let r1 = min((g + 1u) * BLOCK_ROWS - P.phase, P.T);
  var lo = k[(P.row0 + r0) * P.rowLen + i];
  var hi = lo;
  for (var r = r0 + 1u; r < r1; r++) {
    let x = k[(P.row0 + r) * P.rowLen + i];
    lo = select(lo, x, x < lo);
    hi = select(hi, x, x > hi);
  }
  out[g * 2u * P.rowLen + i] = lo;
  out[g * 2u * P.rowLen + P.rowLen + i] = hi;
}
