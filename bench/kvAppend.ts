// Host cost of appending a prefill chunk's K/V rows to the host block stores (the "appendMs" of the ingest
// profile, GpuModel.kvProfile()), on the CPU only: granite-4.0-h-350m shapes (4 attention layers, 4 KV heads
// x 64), 8,192-token chunks read back as one mapped staging buffer [layer, K|V, T, kd].
//   npx esbuild bench/kvAppend.ts --bundle --platform=node --outfile=/tmp/kvAppend.js
//   node /tmp/kvAppend.js copy|host|gpu [chunks]
// Modes (run each in a fresh process: the cost is dominated by first touches of new memory, 67 MB a chunk):
//   copy: the staging buffer copied out whole first, then appended with min/max computed on the host (as
//         SparseKv.commit did before the summaries came from the GPU);
//   host: appended straight from the staging buffer, min/max on the host;
//   gpu:  appended straight from the staging buffer with per-block min/max read back with it
//         (kernels/kvSummary.wgsl), so the keys are only copied.

import { BLOCK_ROWS, HostBudget, KvBlockStore } from '../src/engine/memory/kvBlocks';

const kd = 256;
const T = 8192;
const layers = 4;
const n = T * kd;
const groups = Math.ceil(T / BLOCK_ROWS);

const mapped = new Float32Array(2 * layers * n + layers * groups * 2 * kd);
for (let i = 0; i < mapped.length; i++) mapped[i] = Math.random() * 2 - 1;

const mode = process.argv[2] ?? 'gpu';
if (!['copy', 'host', 'gpu'].includes(mode)) throw new RangeError(`mode is copy, host or gpu, not ${mode}.`);
const chunks = Number(process.argv[3] ?? 40);
const budget = new HostBudget(Infinity);
const stores = Array.from({ length: layers }, () => new KvBlockStore(kd, budget, null));
const times: number[] = [];
for (let c = 0; c < chunks; c++) {
  const t = performance.now();
  const all = mode === 'copy' ? new Float32Array(mapped.buffer.slice(0)) : mapped;
  for (let j = 0; j < layers; j++) {
    const sums = mode === 'gpu' ? all.slice(2 * layers * n + j * groups * 2 * kd, 2 * layers * n + (j + 1) * groups * 2 * kd) : undefined;
    stores[j].append(all.subarray(2 * j * n, (2 * j + 1) * n), all.subarray((2 * j + 1) * n, (2 * j + 2) * n), sums);
  }
  times.push(performance.now() - t);
}
const s = times.slice(2).sort((a, b) => a - b);
const mean = s.reduce((a, b) => a + b, 0) / s.length;
console.log(`${mode}: ${chunks} chunks of ${T} tokens x ${layers} layers: median ${s[s.length >> 1].toFixed(1)} ms/chunk, mean ${mean.toFixed(1)}, max ${s[s.length - 1].toFixed(1)}`);
