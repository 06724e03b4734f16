// Token selection from logits on the CPU: greedy, temperature, nucleus (top-p). The WebGPU engine has the
// same on the GPU (kernels/sample.wgsl); this one serves the CPU backend and checks the kernel.

export interface SamplingOptions {
  greedy?: boolean;
  temperature?: number; // > 0; ignored when greedy
  topP?: number; // (0, 1]
}

/** A small seeded PRNG (mulberry32) so runs are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sampleToken(logits: Float32Array, opts: SamplingOptions, random: () => number): number {
  const temperature = opts.temperature ?? 1;
  if (opts.greedy || temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
  const topP = Math.min(Math.max(opts.topP ?? 1, 1e-6), 1);
  let kept = 0;
  let mass = 0;
  for (const i of order) {
    mass += probs[i] / sum;
    kept++;
    if (mass >= topP) break;
  }
  let u = random() * mass * sum;
  for (let j = 0; j < kept; j++) {
    u -= probs[order[j]];
    if (u <= 0) return order[j];
  }
  return order[kept - 1];
}
