// The 'rows' prefill attention kernel, included (// #include attentionRows) by kernels/attention.wgsl (head dims
// up to 128) and kernels/attentionRowsWide.wgsl (up to 512), which differ only in D4MAX, the room in the private
// arrays (a const: WGSL sizes function arrays at compile time), so that head dims up to 128 keep their small
// arrays. Described in kernels/attention.wgsl.

override DH: u32 = 64u; // head dim: a multiple of 4, <= 4 * D4MAX
override WG: u32 = 64u; // invocations per workgroup
override SPLIT: u32 = 1u; // invocations per query: 1, 2 or 4 (divides WG and BK)
override BK: u32 = 32u; // keys per tile; BK * DH <= 2048 (workgroup memory)
const NEG = -3.0e38;
const BKMAX = 32u;

// K rows then V rows of a tile; at the end, the partial rows being merged.
var<workgroup> KV: array<vec4f, 2u * BK * DH / 4u>;
var<workgroup> Pm: array<f32, WG>;
var<workgroup> Pl: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D4 = DH / 4u;
  let QPW = WG / SPLIT;
  let qi = lid / SPLIT; // query of this invocation within the workgroup
  let sp = lid % SPLIT; // which keys of a tile it takes
  let tq0 = wid.x * QPW;
  let h = wid.y;
  let kh = h / (P.nH / P.nKv);
  let pos0 = step.pos0;
  let tq = tq0 + qi;
  let live = tq < P.T;
  let last = pos0 + tq; // the last row this query sees
  var qv: array<vec4f, D4MAX>;
  var acc: array<vec4f, D4MAX>;
  if (live) {
    let b = P.qOff + tq * P.qStride + h * DH;
    for (var c = 0u; c < D4; c++) {
      qv[c] = vec4f(q[b + 4u * c], q[b + 4u * c + 1u], q[b + 4u * c + 2u], q[b + 4u * c + 3u]) * P.scale;
    }
  }
  for (var c = 0u; c < D4; c++) { acc[c] = vec4f(0.0); }
  var m = NEG;
  var l = 0.0;
  let nKeys = pos0 + min(P.T, tq0 + QPW); // rows seen by the workgroup's last query
  let vBase = BK * D4;
  var s: array<f32, BKMAX>;
  for (var k0 = 0u; k0 < nKeys; k0 += BK) {
    // Stage BK rows of K and V (zeros past nKeys).
    for (var e = lid; e < BK * D4; e += WG) {
      let key = k0 + e / D4;
      var kr = vec4f(0.0);
      var vr = vec4f(0.0);
      if (key < nKeys) {
        let o = (key * P.nKv + kh) * DH + 4u * (e % D4);
        kr = vec4f(k[o], k[o + 1u], k[o + 2u], k[o + 3u]);
        vr = vec4f(v[o], v[o + 1u], v[o + 2u], v[o + 3u]);
      }
      KV[e] = kr;
      KV[vBase + e] = vr;
    }
    workgroupBarrier();
    if (live && k0 <= last) {
      var mx = m;
      for (var j = 0u; j < BK / SPLIT; j++) {
        let r = j * SPLIT + sp;
        var dot4 = vec4f(0.0);
        for (var c = 0u; c < D4; c++) { dot4 += qv[c] * KV[r * D4 + c]; }
        let sj = select(NEG, dot4.x + dot4.y + dot4.z + dot4.w, k0 + r <= last);
        s[j] = sj;
        mx = max(mx, sj);
      }
      // Rescale what was summed under the old maximum once per tile, then add the tile.
      let corr = exp(m - mx);
      m = mx;
      l *= corr;
      for (var c = 0u; c < D4; c++) { acc[c] *= corr; }
      for (var j = 0u; j < BK / SPLIT; j++) {
        let r = j * SPLIT + sp;
        let p = select(0.0, exp(s[j] - m), s[j] > NEG);
        l += p;
        for (var c = 0u; c < D4; c++) { acc[c] += p * KV[vBase + r * D4 + c]; }
      }
    }
    workgroupBarrier();
  }
  // Merge the SPLIT partial results of each query into its first invocation, one split at a time.
  for (var r = 1u; r < SPLIT; r++) {
    if (sp == r) {
      Pm[qi] = m;
      Pl[qi] = l;
      for (var c = 0u; c < D4; c++) { KV[qi * D4 + c] = acc[c]; }
    }
    workgroupBarrier();
    if (sp == 0u) {
      let mo = Pm[qi];
      let mx = max(m, mo);
      let a = exp(m - mx);
      let b = exp(mo - mx);
      l = l * a + Pl[qi] * b;
      m = mx;
      for (var c = 0u; c < D4; c++) { acc[c] = acc[c] * a + KV[qi * D4 + c] * b; }
    }
    workgroupBarrier();
  }
  if (!live || sp != 0u) { return; }
  let inv = 1.0 / l;
  let b = P.oOff + tq * P.oStride + h * DH;
  for (var c = 0u; c < D4; c++) {
    let r = acc[c] * inv;
    out[b + 4u * c] = r.x;
    out[b + 4u * c + 1u] = r.y;
    out[b + 4u * c + 2u] = r.z;
    out[b + 4u * c + 3u] = r.w;
  }
}

// #include attentionPrefill
