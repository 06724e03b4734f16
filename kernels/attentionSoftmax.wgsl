// The online softmax over one key tile, shared by the tiled prefill attention kernels (included, // #include
// attentionSoftmax, by kernels/attentionTiled.wgsl and attentionWide.wgsl): tiles of BQ queries x BK keys, one
// thread each; a query row's running max, sum and rescale factor live here.

const BQ = 16u;
const BK = 16u;
const NEG = -3.0e38;

var<workgroup> Ps: array<f32, BQ * BK>;
var<workgroup> rowM: array<f32, BQ>;
var<workgroup> rowL: array<f32, BQ>;
var<workgroup> rowA: array<f32, BQ>;

/**
 * Thread (query qi, key ki of the tile) has score s (NEG where masked). Takes every thread of the workgroup (it
 * holds barriers): each query row's running max rowM moves to the tile's, rowL is rescaled and adds the tile's
 * sum, and Ps holds p = exp(s - rowM) for the P.V product. Returns rowA[qi], the factor that rescales what the
 * thread's query has accumulated so far.
 */
fn softmaxTile(qi: u32, lid: u32, s: f32) -> f32 {
  let ki = lid % BK;
  Ps[qi * BK + ki] = s;
  workgroupBarrier();
  if (lid < BQ) {
    var mx = NEG;
    for (var c = 0u; c < BK; c++) { mx = max(mx, Ps[lid * BK + c]); }
    let mNew = max(rowM[lid], mx);
    rowA[lid] = exp(rowM[lid] - mNew);
    rowM[lid] = mNew;
  }
  workgroupBarrier();
  let p = select(0.0, exp(s - rowM[qi]), s > NEG);
  Ps[qi * BK + ki] = p;
  workgroupBarrier();
  if (lid < BQ) {
    var sum = 0.0;
    for (var c = 0u; c < BK; c++) { sum += Ps[lid * BK + c]; }
    rowL[lid] = rowL[lid] * rowA[lid] + sum;
  }
  return rowA[qi];
}
