// dt of the Mamba-2 scan, included (// #include softplus): clamp(softplus(raw + dt_bias), dtMin, dtMax).

/** torch's softplus (beta 1, threshold 20), with an accurate log1p (WGSL has none). */
fn softplus(v: f32) -> f32 {
  if (v > 20.0) { return v; }
  let e = exp(v);
  let u = 1.0 + e;
  if (u == 1.0) { return e; }
  return log(u) * (e / (u - 1.0));
}

fn dtOf(raw: f32, dtBias: f32, dtMin: f32, dtMax: f32) -> f32 {
  return min(max(softplus(raw + dtBias), dtMin), dtMax);
}
