// RecurrentGemma's local (sliding-window) attention for a prefill chunk (T > 1; decode takes kernels/attnDecode.wgsl
// over the ring): one workgroup per (head, query t) at position p = pos0 + t, over positions p - W + 1 .. p, those
// before the chunk from the ring (row p % W), the chunk's own from k, v [T, nKv*d]. The keys go in tiles of TK:
// one thread per key scores it into workgroup memory, then the tile's softmax merges into the running (m, l) and
// the threads (kq, j) sum P.V for output dim j over keys kq, kq + KQ, ...; the KQ lanes are summed at the end.
// q: [T, nH, d], out: [T, nH * d] (whole rows). The ring is written afterwards (griffin.wgsl ringWrite).
// #if SUBGROUPS
enable subgroups;
// #endif

struct Params {
  T: u32,
  nH: u32,
  nKv: u32,
  W: u32,
  d: u32,
  scaling: f32,
}

override WG: u32 = 256u;
override SG: u32 = 32u;
override DH: u32 = 64u; // head dim, <= WG
override KQ: u32 = WG / DH; // key lanes in P.V
const TK = 1024u; // keys per tile (>= WG)
const NEG = -3.0e38; // stands for -infinity

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kNew: array<f32>;
@group(0) @binding(3) var<storage, read> vNew: array<f32>;
@group(0) @binding(4) var<storage, read> kRing: array<f32>;
@group(0) @binding(5) var<storage, read> vRing: array<f32>;
@group(0) @binding(6) var<storage, read_write> attnOut: array<f32>;
@group(0) @binding(9) var<uniform> step: Step;

var<workgroup> qs: array<f32, DH>;
var<workgroup> sc: array<f32, TK>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let hq = wid.x;
  let t = wid.y;
  let nH = P.nH;
  let kh = hq / (nH / P.nKv);
  let kd = P.nKv * DH;
  let pos0 = step.pos0;
  let p = pos0 + t;
  let first = select(0u, p + 1u - P.W, p + 1u > P.W);
  let n = p + 1u - first;
  let qo = (t * nH + hq) * DH;
  for (var i = lid; i < DH; i += WG) { qs[i] = q[qo + i]; }
  workgroupBarrier();
  let j = lid % DH;
  let kq = lid / DH;
  var m = NEG;
  var l = 0.0;
  var acc = 0.0;
  for (var i0 = 0u; i0 < n; i0 += TK) {
    let nt = min(TK, n - i0);
    var mx = NEG;
    for (var i = lid; i < nt; i += WG) {
      let s = first + i0 + i;
      var dot = 0.0;
      if (s >= pos0) {
        let o = (s - pos0) * kd + kh * DH;
        for (var c = 0u; c < DH; c++) { dot += qs[c] * kNew[o + c]; }
      } else {
        let o = (s % P.W) * kd + kh * DH;
        for (var c = 0u; c < DH; c++) { dot += qs[c] * kRing[o + c]; }
      }
      let sv = dot * P.scaling;
      sc[i] = sv;
      mx = max(mx, sv);
    }
    let mNew = max(m, wgMax(mx, lid)); // (its barriers publish sc)
    let corr = exp(m - mNew);
    var sum = 0.0;
    for (var i = lid; i < nt; i += WG) {
      let pw = exp(sc[i] - mNew);
      sc[i] = pw;
      sum += pw;
    }
    l = l * corr + wgSum(sum, lid);
    acc *= corr;
    if (kq < KQ) {
      for (var i = kq; i < nt; i += KQ) {
        let s = first + i0 + i;
        var vv: f32;
        if (s >= pos0) { vv = vNew[(s - pos0) * kd + kh * DH + j]; } else { vv = vRing[(s % P.W) * kd + kh * DH + j]; }
        acc += sc[i] * vv;
      }
    }
    m = mNew;
    workgroupBarrier(); // the next tile overwrites sc
  }
  sc[lid] = select(0.0, acc, kq < KQ);
  workgroupBarrier();
  if (lid < DH) {
    var o = 0.0;
    for (var i = 0u; i < KQ; i++) { o += sc[i * DH + lid]; }
    attnOut[qo + lid] = o / l;
  }
}

// #include reduce
// #include step
