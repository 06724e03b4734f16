// Embedding lookup: out[t] = table[ids[t]] * multiplier. One dispatch per part of the table; each writes only
// the rows whose id falls in its range rowStart..rowStart+rows.
// ids: u32 [T], table part: [rows, D], out: [T, D] (offset/stride).

struct Params {
  T: u32,
  D: u32,
  rowStart: u32,
  rows: u32,
  oOff: u32,
  oStride: u32,
  multiplier: f32,
  sOff: u32, // quantized formats: word offset of the scales plane in the part's buffer
}

override WG: u32 = 256u;
override WFMT: u32 = 0u;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= P.T * P.D) { return; }
  let t = i / P.D;
  let d = i % P.D;
  let id = ids[t];
  if (id < P.rowStart || id - P.rowStart >= P.rows) { return; }
  var v: f32;
  if (isQuant(WFMT)) {
    let gi = qGroup(id - P.rowStart, d, P.D);
    v = qScale(W[P.sOff + gi / 2u], gi) * qValue(W[qDataWord(gi, d, WFMT)], d, WFMT);
  } else {
    let e = (id - P.rowStart) * P.D + d;
    v = decode(W[wordIndex(e, WFMT)], e, WFMT);
  }
  out[P.oOff + t * P.oStride + d] = v * P.multiplier;
}

// #include weights
