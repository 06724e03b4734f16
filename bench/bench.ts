// npm run bench -- --shape granite-4.0-h-350m [--dtype bf16|f16|f32] [--quant bf16,q8,q4] [--prompt 2048] [--decode 128]
//                  [--layers N] [--max-weights-gb N] [--warmup-ms N]
//                  --shape all-families (one real shape per family, bench/families.json; or NAME,NAME,... or a
//                  config.json path): each in turn in one process, one JSON line per shape, all of them in --json
//                  [--ingest DIR [--max-tokens N] [--kv-budget-mb N] [--chunk N] [--gpu-profile]]
//                  [--completions N [--during-sync DIR --max-tokens N]]
//                  [--peak-gbps N] [--peak-tflops N] [--gpu-name NAME] [--json FILE]
// --gpu-name (e.g. from nvidia-smi; WebGPU does not name the GPU) picks the recorded figures --ingest compares with.
//
// Builds random weights at a real model's shape directly on the GPU and measures prefill and decode tokens/s,
// with the ratio to the rooflines: decode against weight bandwidth (every weight byte, the state and the KV
// are read once per token), prefill against f32 FMA throughput (WGSL has no tensor cores here).

import * as fs from 'fs';
import { configFromJson, type ModelConfig } from '../src/engine/config';
import { Gpu, type GpuWeight } from '../src/engine/gpu/device';
import { GpuModel } from '../src/engine/gpu/model';
import { CommandList } from '../src/engine/gpu/ops';
import { parseArgs, intValue } from '../src/cli/args';
import { quantize } from '../src/engine/quant';
import { benchWeights, perTokenCounts, plannedWeightBytes, randomTensor, randomWeights, weightBytes, type BenchFormat, type Dtype } from './randomWeights';
import { WorkspaceIngest, type IngestProgress } from '../src/engine/ingest';
import { frameFile, readWorkspaceFile, walkWorkspace } from '../src/workspace';
import { completeAt } from '../src/engine/completion/complete';
import { TextTokenizer } from '../src/engine/tokenizer';
import * as os from 'os';
import * as path from 'path';
import { resolveShapes, truncateLayers, type BenchShape } from './shapes';
import { EngineServer, type EngineBackend, type LoadedModel } from '../src/extension/engineServer';
import type { CompleteResult, EngineToHost, HostToEngine, SyncResult } from '../src/extension/protocol';

/**
 * --kernels: the decode GEMV alone, per weight format, at the shape's matrices (one row of x): 200 products of
 * one weight in one submit, best of 10 submits, as us per product and the weight bytes read per second.
 */
async function benchGemv(gpu: Gpu, cfg: ModelConfig, formats: BenchFormat[], json?: string): Promise<void> {
  const H = cfg.hiddenSize;
  const m = cfg.mamba;
  const ff = cfg.feedForward;
  const mats: [string, number, number][] = [
    ...(m ? ([['mamba.in_proj', m.inProjDim, H], ['mamba.out_proj', H, m.intermediate]] as [string, number, number][]) : []),
    ...(ff && ff.sharedIntermediate > 0 ? ([['mlp.input', 2 * ff.sharedIntermediate, H], ['mlp.output', H, ff.sharedIntermediate]] as [string, number, number][]) : []),
    ['lm_head', cfg.vocabSize, H],
  ];
  const REPS = 200;
  const rows: { format: BenchFormat; matrix: string; N: number; K: number; us: number; gbps: number }[] = [];
  for (const format of formats) {
    for (const [name, N, K] of mats) {
      let seed = 7;
      const bytes = randomTensor('w', [N, K], 'F32', seed++);
      const f = new Float32Array(bytes.buffer);
      const w = format === 'q8' || format === 'q4' ? gpu.uploadQuantized(name, quantize(f, N, K, format === 'q8' ? 8 : 4), [N, K]) : gpu.uploadWeight(name, randomTensor('w', [N, K], format.toUpperCase() as Dtype, seed), format.toUpperCase() as Dtype, [N, K]);
      const x = gpu.buffer(4 * K, 'x');
      gpu.write(x, new Float32Array(K).fill(0.01));
      const out = gpu.buffer(4 * N, 'out');
      const list = new CommandList(gpu);
      for (let i = 0; i < REPS; i++) list.linear({ buffer: x }, w, { buffer: out }, 1, K, N, { accumulate: true });
      let best = Infinity;
      for (let rep = 0; rep < 12; rep++) {
        const t0 = performance.now();
        await list.run();
        if (rep >= 2) best = Math.min(best, (performance.now() - t0) / REPS);
      }
      const us = best * 1000;
      rows.push({ format, matrix: name, N, K, us: +us.toFixed(2), gbps: +(w.bytes / (us * 1e3)).toFixed(1) });
      console.error(`${format.padEnd(5)} ${name.padEnd(15)} [${N}, ${K}]`.padEnd(40) + `${us.toFixed(2).padStart(8)} us ${(w.bytes / (us * 1e3)).toFixed(0).padStart(6)} GB/s`);
      list.destroy();
      for (const p of w.parts) gpu.free(p.buffer);
      gpu.free(x);
      gpu.free(out);
    }
  }
  if (json) fs.writeFileSync(json, JSON.stringify({ adapter: gpu.adapterInfo.description, date: new Date().toISOString(), gemv: rows }, null, 2) + '\n');
}

function hostCopyGBps(): number {
  const a = Buffer.alloc(256 << 20, 1);
  const b = Buffer.alloc(256 << 20);
  a.copy(b);
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) a.copy(b);
  const s = (performance.now() - t0) / 1000;
  return (4 * 2 * a.length) / s / 1e9; // read + write
}

/**
 * --max-weights-gb (GB of 1e9 bytes): the largest weights the bench builds. WebGPU does not say how much memory
 * the adapter has; the default, 100 GB or 80% of this host's memory if less, keeps an H200 (139 GB) and its
 * 128 GB host sane (the weights are drawn on the host, one tensor at a time).
 */
function maxWeightsBytes(v: string | undefined): number {
  if (v !== undefined) return Number(v) * 1e9;
  return Math.min(100e9, 0.8 * os.totalmem());
}

/**
 * --shape all-families (or several shapes): each shape in turn on a device of its own (destroyed after it, so that
 * its memory is free for the next), decode and prefill in one weight format; one JSON line per shape on stdout,
 * all of them in --json (rewritten after each shape, so a run cut short keeps what it measured). A shape whose
 * weights are over --max-weights-gb or that the adapter cannot hold is skipped with its reason; an error in one
 * shape is recorded and the next runs.
 */
async function benchFamilies(
  shapes: { shape: BenchShape; cfg: ModelConfig; note?: string }[],
  o: { dtype: Dtype; promptLen: number; decodeLen: number; chunk?: number; peaks: { gbps?: number; tflops?: number }; maxWeightsBytes: number; warmupMs?: number; json?: string },
): Promise<void> {
  const format = o.dtype.toLowerCase() as BenchFormat;
  const results: Record<string, unknown>[] = [];
  let adapter = '';
  const write = () => {
    if (o.json) fs.writeFileSync(o.json, JSON.stringify({ mode: 'families', adapter, date: new Date().toISOString(), results }, null, 2) + '\n');
  };
  for (const [i, { shape, cfg, note }] of shapes.entries()) {
    const base = { shape: shape.name, family: cfg.architecture, layers: cfg.numLayers, ...(note ? { layersNote: note } : {}), weights: format, provenance: shape.provenance };
    const planned = plannedWeightBytes(cfg, [format]);
    let result: Record<string, unknown>;
    if (planned > o.maxWeightsBytes) {
      result = { ...base, skipped: `weights ${(planned / 1e9).toFixed(1)} GB are over --max-weights-gb ${(o.maxWeightsBytes / 1e9).toFixed(0)} (use --layers N)` };
      console.error(`${shape.name}: skipped: ${result.skipped}`);
    } else {
      console.error(`${shape.name} (${cfg.architecture}, ${cfg.numLayers} layers${note ? `, ${note}` : ''}): ${(planned / 1e9).toFixed(2)} GB of ${format} weights`);
      const gpu = await Gpu.create();
      adapter = `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.architecture} ${gpu.adapterInfo.description}`.trim();
      let lost = false;
      void gpu.device.lost.then(() => (lost = true));
      try {
        gpu.device.pushErrorScope('out-of-memory');
        gpu.device.pushErrorScope('validation');
        const r = await benchDecodePrefill(gpu, cfg, format, {
          shapeName: shape.name,
          promptLen: o.promptLen,
          decodeLen: o.decodeLen,
          chunk: o.chunk ?? Math.min(o.promptLen, 2048),
          peaks: o.peaks,
          // the clocks are up after the first shape
          warmupMs: o.warmupMs ?? (i === 0 ? 2000 : 500),
          layersNote: note,
        });
        const validation = await gpu.device.popErrorScope();
        const oom = await gpu.device.popErrorScope();
        const err = oom ?? validation;
        result = err ? { ...base, skipped: `the adapter could not hold this shape (${err.message.split('\n')[0]})` } : { ...r, provenance: shape.provenance };
      } catch (e) {
        const msg = (e as Error).message.split('\n')[0];
        // a weight over the adapter's binding or buffer limits: skipped, as one over --max-weights-gb
        result = /binding limit|maxBufferSize|out of memory/i.test(msg) ? { ...base, skipped: `the adapter cannot hold this shape's weights (${msg})` } : { ...base, error: msg };
      }
      gpu.destroy();
      if (lost) console.error(`${shape.name}: the device was lost`);
    }
    results.push(result);
    console.log(JSON.stringify(result));
    write();
  }
  console.error('shape                                family             layers  weights GB  prefill tok/s  decode tok/s  decode roofline');
  for (const r of results) {
    const gb = typeof r.weightsBytes === 'number' ? (r.weightsBytes / 1e9).toFixed(3) : '-';
    const tail = r.skipped ? `skipped: ${r.skipped}` : r.error ? `error: ${r.error}` : `${String(r.prefillTokensPerSecond).padStart(13)} ${String(r.decodeTokensPerSecond).padStart(13)} ${(100 * (r.decodeRooflineRatio as number)).toFixed(1).padStart(15)}%`;
    console.error(`${String(r.shape).padEnd(36)} ${String(r.family).padEnd(18)} ${String(r.layers).padStart(6)} ${gb.padStart(11)}  ${tail}`);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    values: ['shape', 'dtype', 'quant', 'prompt', 'decode', 'peak-gbps', 'peak-tflops', 'json', 'chunk', 'ingest', 'max-tokens', 'kv-budget-mb', 'tokenizer', 'completions', 'during-sync', 'gpu-name', 'layers', 'max-weights-gb', 'warmup-ms'],
    flags: ['gpu-profile', 'kernels'],
  });
  const shapeArg = args.values.get('shape') ?? 'granite-4.0-h-350m';
  const shapes = resolveShapes(shapeArg, path.join(__dirname, '..'));
  const dtype = (args.values.get('dtype') ?? 'bf16').toUpperCase() as Dtype;
  const promptLen = intValue(args, 'prompt', 2048);
  const decodeLen = intValue(args, 'decode', 128);
  const chunk = intValue(args, 'chunk', Math.min(promptLen, 2048));
  // --layers N: every shape cut to its first N layers; absent, a family shape's own `layers` (bench/families.json);
  // --layers 0: all layers.
  const layersOf = (s: BenchShape): number => (args.values.has('layers') ? intValue(args, 'layers') : (s.layers ?? 0));
  const cut = (s: BenchShape, raw: Record<string, unknown>) => {
    const n = layersOf(s);
    const full = configFromJson(raw).numLayers;
    if (!n || n >= full) return { cfg: configFromJson(raw), note: undefined };
    const cfg = configFromJson(truncateLayers(raw, n));
    return { cfg, note: `first ${cfg.numLayers} of ${full} layers (--layers${args.values.has('layers') ? '' : ', bench/families.json'}): not the whole model` };
  };
  if (shapes.length > 1 || shapeArg === 'all-families') {
    await benchFamilies(shapes.map((s) => ({ ...s, ...cut(s.shape, s.raw) })), {
      dtype,
      promptLen,
      decodeLen,
      chunk: args.values.has('chunk') ? intValue(args, 'chunk') : undefined,
      peaks: { gbps: args.values.has('peak-gbps') ? Number(args.values.get('peak-gbps')) : undefined, tflops: args.values.has('peak-tflops') ? Number(args.values.get('peak-tflops')) : undefined },
      maxWeightsBytes: maxWeightsBytes(args.values.get('max-weights-gb')),
      warmupMs: args.values.has('warmup-ms') ? intValue(args, 'warmup-ms') : undefined,
      json: args.values.get('json'),
    });
    return;
  }
  const shapeName = shapes[0].shape.name;
  const { cfg, note: layersNote } = cut(shapes[0].shape, shapes[0].raw);
  if (layersNote) console.error(`${shapeName}: ${layersNote}`);

  const gpu = await Gpu.create();
  const info = gpu.adapterInfo;
  if (args.values.has('completions') && args.values.has('during-sync')) {
    await benchCompletionsDuringSync(gpu, cfg, dtype, args.values.get('during-sync')!, {
      n: intValue(args, 'completions'),
      maxTokens: intValue(args, 'max-tokens', 120_000),
      kvBudgetMB: intValue(args, 'kv-budget-mb', 1024),
      tokenizer: args.values.get('tokenizer') ?? path.join(__dirname, '..', 'test', 'fixtures', 'granite-dense-nope'),
      json: args.values.get('json'),
      shape: shapeName,
    });
    gpu.destroy();
    return;
  }
  if (args.values.has('completions')) {
    await benchCompletions(gpu, cfg, dtype, {
      n: intValue(args, 'completions'),
      context: promptLen,
      tokenizer: args.values.get('tokenizer') ?? path.join(__dirname, '..', 'test', 'fixtures', 'granite-dense-nope'),
      json: args.values.get('json'),
      shape: shapeName,
    });
    gpu.destroy();
    return;
  }
  if (args.values.has('ingest')) {
    await benchIngest(gpu, cfg, dtype, args.values.get('ingest')!, {
      maxTokens: intValue(args, 'max-tokens', 1_050_000),
      kvBudgetMB: intValue(args, 'kv-budget-mb', 1024),
      tokenizer: args.values.get('tokenizer') ?? path.join(__dirname, '..', 'test', 'fixtures', 'granite-dense-nope'),
      decode: decodeLen,
      json: args.values.get('json'),
      shape: shapeName,
      chunk: intValue(args, 'chunk', 2048),
      gpuProfile: args.flags.has('gpu-profile'),
      gpuName: args.values.get('gpu-name'),
    });
    gpu.destroy();
    return;
  }
  if (args.flags.has('kernels')) {
    await benchGemv(gpu, cfg, (args.values.get('quant') ?? 'bf16,q8,q4').split(',') as BenchFormat[], args.values.get('json'));
    gpu.destroy();
    return;
  }
  console.error(`adapter: ${info.vendor} ${info.architecture} ${info.description} ${info.device}`);
  // --quant bf16,q8,q4: the same shape with each weight format, one after another in this process (side by side).
  const formats = (args.values.get('quant') ?? dtype.toLowerCase()).split(',').map((f) => f.trim()) as BenchFormat[];
  for (const f of formats) if (!['bf16', 'f16', 'f32', 'q8', 'q4'].includes(f)) throw new Error(`--quant: unknown format ${f}; use bf16, f16, f32, q8, q4`);
  const peaks = { gbps: args.values.has('peak-gbps') ? Number(args.values.get('peak-gbps')) : undefined, tflops: args.values.has('peak-tflops') ? Number(args.values.get('peak-tflops')) : undefined };
  const runs = [];
  for (const format of formats) runs.push(await benchDecodePrefill(gpu, cfg, format, { shapeName, promptLen, decodeLen, chunk, peaks }));
  if (runs.length > 1) {
    console.error('format   weights MB   prefill tok/s   (of FMA peak)   decode tok/s   (of bandwidth roofline)   GPU memory MB');
    for (const r of runs) {
      const pr = r.prefillComputeRooflineRatio === null ? '   -' : `${(100 * r.prefillComputeRooflineRatio).toFixed(1)}%`;
      console.error(`${r.weights.padEnd(6)} ${(r.weightsBytes / 2 ** 20).toFixed(1).padStart(11)} ${r.prefillTokensPerSecond.toFixed(0).padStart(15)} ${pr.padStart(15)} ${r.decodeTokensPerSecond.toFixed(1).padStart(14)} ${(100 * r.decodeRooflineRatio).toFixed(1).padStart(24)}% ${(r.gpuBytes / 2 ** 20).toFixed(0).padStart(15)}`);
    }
  }
  const result = runs.length === 1 ? runs[0] : { shape: shapeName, adapter: runs[0].adapter, date: runs[0].date, runs };
  console.log(JSON.stringify(result, null, 2));
  if (args.values.has('json')) fs.writeFileSync(args.values.get('json')!, JSON.stringify(result, null, 2) + '\n');
  gpu.destroy();
}

/**
 * Decode and prefill tokens/s at a shape with random weights in one format, and their ratios to the rooflines:
 * decode against the bytes a token reads (the weights as stored, the Mamba state twice, the KV), prefill against
 * the f32 FMA rate.
 */
async function benchDecodePrefill(gpu: Gpu, cfg: ModelConfig, format: BenchFormat, o: { shapeName: string; promptLen: number; decodeLen: number; chunk: number; peaks: { gbps?: number; tflops?: number }; warmupMs?: number; layersNote?: string }) {
  const { shapeName, promptLen, decodeLen, chunk } = o;
  const info = gpu.adapterInfo;
  const gpuBefore = gpu.bytesAllocated();
  const tLoad = performance.now();
  const weights = benchWeights(gpu, cfg, format);
  await gpu.device.queue.onSubmittedWorkDone();
  console.error(`${format}: random weights uploaded in ${((performance.now() - tLoad) / 1000).toFixed(1)} s`);
  const wb = weightBytes(weights);
  const model = GpuModel.fromWeights(gpu, cfg, weights, { prefillChunk: chunk, kvCapacity: promptLen + decodeLen + 16 });
  const vocab = cfg.vocabSize;
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % vocab);

  // Warm-up: compile pipelines, record passes at both sizes, and keep the GPU busy for ~2 s so its clocks
  // leave idle (an H100 idles at 345 MHz and needs about a second of load to reach full clocks).
  const tWarm = performance.now();
  do {
    model.reset();
    await model.forward(prompt.slice(0, Math.min(chunk, promptLen)));
    await model.decodeGreedy(8);
  } while (performance.now() - tWarm < (o.warmupMs ?? 2000));

  // Prefill: best of three runs.
  let prefillS = Infinity;
  let last: Float32Array = new Float32Array(0);
  for (let rep = 0; rep < 3; rep++) {
    model.reset();
    const t0 = performance.now();
    last = await model.forward(prompt);
    prefillS = Math.min(prefillS, (performance.now() - t0) / 1000);
  }
  const finite = last.every((v) => Number.isFinite(v));

  const t1 = performance.now();
  const out = await model.decodeGreedy(decodeLen);
  const decodeS = (performance.now() - t1) / 1000;

  // Logits read back per token, the choice on the CPU (what an answer constrained to the workspace paths does).
  const nSimple = Math.min(32, decodeLen);
  const t2 = performance.now();
  for (let i = 0; i < nSimple; i++) await model.forward([out[i % out.length]]);
  const simpleS = (performance.now() - t2) / 1000;
  // What generate / ask / completions do now: the choice on the GPU, the 4-byte id read back per token, the next
  // step encoded while one runs (lookahead 0: never past a stop), or 2 steps queued ahead (on a fork).
  const streamTps = async (lookahead: number) => {
    const n = Math.min(64, decodeLen);
    const t = performance.now();
    let got = 0;
    for await (const _ of model.decodeStream(out[0], { greedy: true, maxNewTokens: n, lookahead, discardsState: true })) got++;
    return +(got / ((performance.now() - t) / 1000)).toFixed(1);
  };
  await streamTps(0); // records the pass with the choice at its end
  const stream0 = await streamTps(0);
  const stream2 = await streamTps(2);

  // Datasheet peaks (SXM parts): HBM bandwidth and dense f32 FMA rate. Elsewhere the host copy bandwidth.
  const known = /H200/i.test(`${info.description} ${info.device}`) ? { gbps: 4800, tflops: 67 }
    : /H100/i.test(`${info.description} ${info.device}`) ? { gbps: 3350, tflops: 67 } : null;
  const peakGBps = o.peaks.gbps ?? (known ? known.gbps : hostCopyGBps());
  const peakTflops = o.peaks.tflops ?? (known ? known.tflops : NaN);
  const st = model.stateBytes();
  const ctx = promptLen + decodeLen / 2;
  const pt = perTokenCounts(cfg, weights);
  // The Mamba / RG-LRU state is read and written; the KV read up to the context (local layers: the window).
  const kvBytesPerToken = pt.kvFullBytes * ctx + pt.kvLocalBytes * Math.min(ctx, pt.kvWindow);
  const bytesPerToken = pt.decodeWeightBytes + 2 * st.mamba + kvBytesPerToken;
  const decodeTps = decodeLen / decodeS;
  const rooflineTps = (peakGBps * 1e9) / bytesPerToken;
  const prefillTps = promptLen / prefillS;
  const flops = pt.matmulFlops;
  const gpuBytes = gpu.bytesAllocated() - gpuBefore; // weights, state, KV and scratch of this model
  const result = {
    shape: shapeName,
    family: cfg.architecture,
    layers: cfg.numLayers,
    ...(o.layersNote ? { layersNote: o.layersNote } : {}),
    weights: format,
    adapter: `${info.vendor} ${info.architecture} ${info.description}`.trim(),
    date: new Date().toISOString(),
    weightsBytes: wb,
    gpuBytes,
    mambaStateBytes: st.mamba,
    kvBytesPerContextToken: pt.kvFullBytes,
    ...(pt.kvLocalBytes ? { kvLocalBytesPerToken: pt.kvLocalBytes, kvLocalWindow: pt.kvWindow } : {}),
    matmulFlopsPerToken: flops,
    promptTokens: promptLen,
    prefillChunk: chunk,
    prefillTokensPerSecond: +prefillTps.toFixed(1),
    prefillTflops: +((prefillTps * flops) / 1e12).toFixed(3),
    prefillComputeRooflineRatio: Number.isFinite(peakTflops) ? +((prefillTps * flops) / (peakTflops * 1e12)).toFixed(4) : null,
    decodeTokens: decodeLen,
    decodeTokensPerSecond: +decodeTps.toFixed(1),
    decodeReadbackTokensPerSecond: +(nSimple / simpleS).toFixed(1),
    decodeStreamTokensPerSecond: stream0,
    decodeStreamAheadTokensPerSecond: stream2,
    decodeBytesPerToken: bytesPerToken,
    peakGBps: +peakGBps.toFixed(1),
    decodeRooflineTokensPerSecond: +rooflineTps.toFixed(1),
    decodeRooflineRatio: +(decodeTps / rooflineTps).toFixed(4),
    decodeDispatchesPerToken: model.dispatchesPerToken(),
    logitsFinite: finite,
  };
  model.dispose();
  return result;
}

/** The first maxTokens tokens of DIR in ingest order, copied to `ws` with their mtimes. */
async function copyWorkspace(dir: string, ws: string, maxTokens: number, tok: TextTokenizer) {
  const listing = await walkWorkspace(dir);
  let copied = 0;
  const files: string[] = [];
  for (const f of listing.files) {
    if (copied >= maxTokens) break;
    const r = await readWorkspaceFile(f);
    if (!('text' in r)) continue;
    copied += frameFile(f.path, r.text, tok.special, (s) => tok.encode(s)).length;
    const dest = path.join(ws, f.path);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, r.text);
    fs.utimesSync(dest, f.mtimeMs / 1000, f.mtimeMs / 1000);
    files.push(f.path);
  }
  console.error(`workspace: ${files.length} files, ${copied} tokens copied from ${dir}`);
  return { listing, files, tokens: copied };
}

/**
 * The last decode figures at 1M context recorded in BENCHMARKS.md (bench/baselines.json), for the adapter
 * this run is on (matched by its name), so that a fall is seen when the bench runs, not by a user.
 */
function decodeBaseline(adapter: string, shape: string, gpuName: string | undefined): { adapter: string; date: string; tokens: number; decodeTokensPerSecondAtContext: number; resumeDecodeTokensPerSecond: number; source: string } | null {
  const file = path.join(__dirname, '..', 'bench', 'baselines.json');
  if (!fs.existsSync(file)) return null;
  const all = JSON.parse(fs.readFileSync(file, 'utf8')).ingestDecode as { shape: string; adapter: string; date: string; tokens: number; decodeTokensPerSecondAtContext: number; resumeDecodeTokensPerSecond: number; source: string }[];
  const mine = all.filter((b) => b.shape === shape);
  const name = `${gpuName ?? ''} ${adapter}`.toLowerCase();
  return mine.find((b) => name.includes(b.adapter.toLowerCase())) ?? null;
}

/**
 * --ingest DIR: stream a real source tree into the model at the benchmark shape (random weights) with the KV
 * under a GPU budget and a snapshot on disk; then decode at that context; then, as after a restart, resume
 * from the snapshot in a fresh model; then edit the most recently modified file and sync again.
 * The first --max-tokens tokens of DIR (in ingest order) are copied to a temporary workspace first, with
 * their modification times, so that the edit happens in a copy and the token limit does not move files.
 */
async function benchIngest(
  gpu: Gpu,
  cfg: ModelConfig,
  dtype: Dtype,
  dir: string,
  o: { maxTokens: number; kvBudgetMB: number; tokenizer: string; decode: number; json?: string; shape: string; chunk: number; gpuProfile?: boolean; gpuName?: string },
): Promise<void> {
  const weights = randomWeights(gpu, cfg, dtype);
  const budget = o.kvBudgetMB * 2 ** 20;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-bench-ingest-'));
  const spill = path.join(tmp, 'spill');
  const cacheDir = path.join(tmp, 'cache');
  const tok = TextTokenizer.load(o.tokenizer);
  const ws = path.join(tmp, 'workspace');
  const { listing } = await copyWorkspace(dir, ws, o.maxTokens, tok);
  const newModel = () => GpuModel.fromWeights(gpu, cfg, weights, { prefillChunk: o.chunk, kv: { gpuBudgetBytes: budget, hostBudgetBytes: 48 * 2 ** 30, spillDir: spill } });
  const session = (model: GpuModel) => new WorkspaceIngest(model, tok, { workspace: ws, cacheDir, modelId: 'bench', chunkTokens: o.chunk });
  let model = newModel();
  let peakKvGpu = 0;
  let peakAllocated = 0;
  let last = 0;
  const watch = (p: IngestProgress) => {
    const m = model.memory();
    peakKvGpu = Math.max(peakKvGpu, m.kvGpuBytes);
    peakAllocated = Math.max(peakAllocated, gpu.bytesAllocated());
    if (p.phase !== 'ingesting' || performance.now() - last > 5000) {
      last = performance.now();
      console.error(`${p.phase} ${p.files}/${p.filesTotal} files ${p.tokens} tokens ${p.tokensPerSecond.toFixed(0)} tok/s`);
    }
  };
  // --gpu-profile: GPU time of every compute pass during the ingest (timestamp queries), to compare with the wall.
  if (o.gpuProfile && !gpu.startTimer()) console.error('--gpu-profile: this adapter has no timestamp-query; not timed');
  const t0 = performance.now();
  const r = await session(model).sync({ onProgress: watch });
  const wall = (performance.now() - t0) / 1000;
  const gpuPasses = await gpu.stopTimer();
  const hostAfterSave = model.memory().kvHostBytes;
  const profile = Object.fromEntries(Object.entries(model.kvProfile() ?? {}).map(([k, v]) => [k.replace(/Ms$/, ''), +(v / 1000).toFixed(2)]));
  const paging = { forwarding: model.kvForwarding, blocksPaged: model.kvPaging() };
  // Where a decoded token's host time goes at this context (kvProfile: waits for block scores, selection, page-in,
  // K/V copy-out, forward, encoding), per token: after the ingest, then after the resume.
  const decodeHostMsPerToken: Record<string, number>[] = [];
  const decode = async (m: GpuModel) => {
    const p0 = { ...(m.kvProfile() ?? {}) } as Record<string, number>;
    const td = performance.now();
    await m.decodeGreedy(o.decode, 1);
    const ms = performance.now() - td;
    const p1 = (m.kvProfile() ?? {}) as Record<string, number>;
    decodeHostMsPerToken.push(Object.fromEntries([['wall', ms], ...Object.keys(p1).map((k) => [k.replace(/Ms$/, ''), p1[k] - (p0[k] ?? 0)])].map(([k, v]) => [k, +((v as number) / o.decode).toFixed(3)])));
    return +(o.decode / (ms / 1000)).toFixed(1);
  };
  const decodeTps = await decode(model);
  const mem = model.memory();
  model.dispose();

  // A restart: a fresh model resumes from the snapshot (K/V blocks stay on disk until selected).
  model = newModel();
  const t1 = performance.now();
  const resumed = await session(model).sync({ onProgress: watch });
  const resumeWall = (performance.now() - t1) / 1000;
  const tFirst = performance.now();
  await model.decodeGreedy(1, 1);
  const firstTokenMs = performance.now() - tFirst;
  const decodeAfterResume = await decode(model);
  model.dispose();

  // Edit the most recently modified file (last in ingest order) and sync again after a restart.
  const lastFile = r.files > 0 ? listing.files.filter((f) => fs.existsSync(path.join(ws, f.path))).at(-1)! : null;
  if (lastFile) fs.appendFileSync(path.join(ws, lastFile.path), '\n# edited by the benchmark\n');
  model = newModel();
  const t2 = performance.now();
  const edited = await session(model).sync({ onProgress: watch });
  const editWall = (performance.now() - t2) / 1000;
  model.dispose();

  const result = {
    mode: 'ingest',
    shape: o.shape,
    dtype,
    adapter: `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description}`.trim(),
    ...(o.gpuName ? { gpuName: o.gpuName } : {}),
    date: new Date().toISOString(),
    workspace: dir,
    files: r.files,
    skipped: r.skipped,
    tokens: r.tokens,
    ingestSeconds: +(r.tokens / r.tokensPerSecond).toFixed(2),
    ingestTokensPerSecond: +r.tokensPerSecond.toFixed(1),
    chunkTokens: o.chunk,
    hostSecondsDuringIngest: profile,
    decodeHostMsPerToken,
    // Forwarding (SIDEWINDER_KV_FORWARD, on unless 0): the previous chunk's blocks come from GPU copies while its
    // rows are still on their way to the host stores.
    kvPaging: paging,
    ...(gpuPasses ? { gpuPassSecondsDuringSync: gpuPasses } : {}),
    // Time of the ingest with no compute pass running (copies and uploads run outside passes, so not all idle).
    ...(gpuPasses ? { gpuOutsidePassesSecondsDuringIngest: +(r.tokens / r.tokensPerSecond - gpuPasses.busySeconds).toFixed(2) } : {}),
    wallSecondsIncludingReadTokenizeAndSave: +wall.toFixed(2),
    // The snapshot and its block file (K/V blocks and checkpoints).
    snapshotBytes: (r.save?.snapshotBytes ?? 0) + (r.save?.blockFileBytes ?? 0),
    snapshotFileBytes: r.save?.snapshotBytes ?? 0,
    saveSeconds: +r.saveSeconds.toFixed(2),
    kvBudgetBytes: budget,
    peakKvGpuBytes: peakKvGpu,
    peakGpuAllocatedBytes: peakAllocated,
    kvWithinBudget: peakKvGpu <= budget,
    kvHostBytesAfterSave: hostAfterSave,
    kvDiskBytes: mem.kvDiskBytes,
    decodeTokensAtContext: o.decode,
    decodeTokensPerSecondAtContext: decodeTps,
    resume: {
      resumedFromSnapshot: resumed.resumedFromSnapshot,
      reingestedTokens: resumed.reingestedTokens,
      restoreSeconds: +resumed.restoreSeconds.toFixed(3),
      syncSeconds: +resumeWall.toFixed(3),
      firstTokenMs: +firstTokenMs.toFixed(1),
      decodeTokensPerSecond: decodeAfterResume,
    },
    editLastFile: {
      file: lastFile?.path ?? null,
      resumedFromSnapshot: edited.resumedFromSnapshot,
      reingestedTokens: edited.reingestedTokens,
      syncSecondsBeforeSave: +(editWall - edited.saveSeconds).toFixed(3),
      saveSeconds: +edited.saveSeconds.toFixed(2),
      // Bytes the save added to the block file (the re-read tail), and whether it wrote a new one instead.
      appendedBytes: edited.save?.appendedBytes ?? 0,
      compacted: edited.save?.compacted ?? false,
      syncSeconds: +editWall.toFixed(3),
    },
  };
  const base = decodeBaseline(result.adapter, o.shape, o.gpuName);
  const withBase = { ...result, decodeBaseline: base };
  console.log(JSON.stringify(withBase, null, 2));
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(withBase, null, 2) + '\n');
  const ctx = r.tokens.toLocaleString('en-US');
  if (base) {
    const ratio = decodeTps / base.decodeTokensPerSecondAtContext;
    const resumeRatio = decodeAfterResume / base.resumeDecodeTokensPerSecond;
    console.error(
      `decode at ${ctx} tokens: ${decodeTps} tok/s after ingest, ${decodeAfterResume} after resume; last recorded (${base.adapter}, ${base.date}, ` +
        `${base.tokens.toLocaleString('en-US')} tokens, ${base.source}): ${base.decodeTokensPerSecondAtContext} / ${base.resumeDecodeTokensPerSecond} tok/s ` +
        `(x${ratio.toFixed(2)} / x${resumeRatio.toFixed(2)})`,
    );
    if (ratio < 0.8 || resumeRatio < 0.8) console.error(`WARNING: decode at long context is slower than last recorded: find out why before recording this run.`);
  } else console.error(`decode at ${ctx} tokens: ${decodeTps} tok/s after ingest, ${decodeAfterResume} after resume; no recorded figure for this adapter and shape (bench/baselines.json)`);
  fs.rmSync(tmp, { recursive: true, force: true });
}

/**
 * --completions N: inline-completion latency as the extension sees it: a workspace state of --prompt tokens,
 * then N fill-in-the-middle requests (a ~1.5K-character prefix and a suffix, up to 16 new tokens, one line)
 * each on a fork of the state. Reports p50 / p95 in milliseconds.
 */
async function benchCompletions(
  gpu: Gpu,
  cfg: ModelConfig,
  dtype: Dtype,
  o: { n: number; context: number; tokenizer: string; json?: string; shape: string },
): Promise<void> {
  const weights = randomWeights(gpu, cfg, dtype);
  const model = GpuModel.fromWeights(gpu, cfg, weights, { prefillChunk: 512, kv: { gpuBudgetBytes: 1 << 30 } });
  const tok = TextTokenizer.load(o.tokenizer);
  const context = Array.from({ length: o.context }, (_, i) => (i * 7919 + 13) % Math.min(cfg.vocabSize, 300));
  await model.forward(context);
  const source = fs.readFileSync(__filename, 'utf8');
  const times: number[] = [];
  for (let i = 0; i < o.n + 2; i++) {
    const at = 2000 + ((i * 977) % (source.length - 4000));
    const t0 = performance.now();
    await completeAt(model, tok, { path: 'bench.ts', prefix: source.slice(at - 1500, at), suffix: source.slice(at, at + 500), maxTokens: 16, maxLines: 1 });
    if (i >= 2) times.push(performance.now() - t0); // the first two compile pipelines and record passes
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => +times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1);
  const result = {
    mode: 'completions',
    shape: o.shape,
    dtype,
    adapter: `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description}`.trim(),
    date: new Date().toISOString(),
    contextTokens: o.context,
    completions: times.length,
    maxNewTokens: 16,
    p50Ms: q(0.5),
    p95Ms: q(0.95),
    meanMs: +(times.reduce((a, b) => a + b, 0) / times.length).toFixed(1),
  };
  console.log(JSON.stringify(result, null, 2));
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
  model.dispose();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

/** An EngineServer in this process, spoken to as the extension host does (requests by id, streamed data). */
function inProcessEngine(backend: EngineBackend) {
  let next = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const server = new EngineServer(
    (m: EngineToHost) => {
      if (m.type !== 'response') return;
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.ok) w?.resolve(m.result);
      else w?.reject(new Error(m.error.message));
    },
    backend,
    { memoryIntervalMs: 0 },
  );
  const request = <T>(kind: string, params: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      server.handle({ type: 'request', id, kind, params } as HostToEngine);
    });
  return { server, request };
}

/**
 * --completions N --during-sync DIR: inline-completion latency through the engine server, as the extension asks for
 * it: N completions with the workspace idle, then N more one after another (60 ms apart, as while typing) while a
 * re-read of the whole workspace (an edit of its first file: everything after it is read again) runs.
 * Reports p50 / p95 for both and the re-read's time with and without completions.
 */
async function benchCompletionsDuringSync(
  gpu: Gpu,
  cfg: ModelConfig,
  dtype: Dtype,
  dir: string,
  o: { n: number; maxTokens: number; kvBudgetMB: number; tokenizer: string; json?: string; shape: string },
): Promise<void> {
  const weights = randomWeights(gpu, cfg, dtype);
  const tok = TextTokenizer.load(o.tokenizer);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-bench-complete-'));
  const ws = path.join(tmp, 'workspace');
  const copied = await copyWorkspace(dir, ws, o.maxTokens, tok);
  const model = GpuModel.fromWeights(gpu, cfg, weights, { prefillChunk: 2048, kv: { gpuBudgetBytes: o.kvBudgetMB * 2 ** 20, spillDir: path.join(tmp, 'spill') } });
  const loaded: LoadedModel = {
    model,
    tokenizer: tok,
    modelId: 'bench',
    adapter: gpu.adapterInfo.description,
    lost: null,
    createIngest: (p) => new WorkspaceIngest(model, tok, { workspace: p.folder, cacheDir: path.join(tmp, 'cache'), modelId: 'bench' }),
    dispose: () => model.dispose(),
  };
  const engine = inProcessEngine({ load: async () => loaded, download: () => Promise.reject(new Error('no downloads')) });
  await engine.request('load', { modelDir: '-', backend: 'webgpu', cacheDir: path.join(tmp, 'cache'), kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 });
  const syncParams = { folder: ws, maxFileBytes: 512 * 1024, extraIgnore: [] };
  const first = await engine.request<SyncResult>('sync', syncParams);
  console.error(`first ingest: ${first.tokens} tokens in ${first.seconds.toFixed(1)} s`);
  const source = fs.readFileSync(__filename, 'utf8');
  let i = 0;
  const completeOnce = async (): Promise<{ ms: number; reason: string }> => {
    const at = 2000 + ((i++ * 977) % (source.length - 4000));
    const t0 = performance.now();
    const r = await engine.request<CompleteResult>('complete', { folder: ws, path: 'bench.ts', prefix: source.slice(at - 1500, at), suffix: source.slice(at, at + 500), maxTokens: 16, maxLines: 1 });
    return { ms: performance.now() - t0, reason: r.reason };
  };
  const quantiles = (xs: number[]) => {
    const t = [...xs].sort((a, b) => a - b);
    const q = (p: number) => +t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(1);
    return { count: t.length, p50Ms: q(0.5), p95Ms: q(0.95), maxMs: +t[t.length - 1].toFixed(1) };
  };
  for (let w = 0; w < 2; w++) await completeOnce(); // pipelines and recorded passes
  const idle: number[] = [];
  for (let k = 0; k < o.n; k++) idle.push((await completeOnce()).ms);
  // A re-read of (nearly) everything: the first file in ingest order changes, so it moves to the end and the state
  // restarts from its start. First alone, then again with completions coming in.
  const reread = async (withCompletions: boolean) => {
    const firstFile = (await walkWorkspace(ws)).files[0].abs; // least recently modified: first in ingest order
    fs.appendFileSync(firstFile, `\n// edited ${Date.now()}\n`);
    const t0 = performance.now();
    let running = true;
    const sync = engine.request<SyncResult>('sync', syncParams).finally(() => (running = false));
    const during: number[] = [];
    const reasons: Record<string, number> = {};
    if (withCompletions) {
      await new Promise((r) => setTimeout(r, 200)); // the re-read is under way
      while (running && during.length < o.n) {
        const r = await completeOnce();
        if (running) {
          during.push(r.ms);
          reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
        }
        await new Promise((res) => setTimeout(res, 60));
      }
    }
    const res = await sync;
    return { seconds: (performance.now() - t0) / 1000, reingestedTokens: res.reingestedTokens, during, reasons };
  };
  const alone = await reread(false);
  const busy = await reread(true);
  const idleQ = quantiles(idle);
  const duringQ = busy.during.length ? quantiles(busy.during) : null;
  const result = {
    mode: 'completions-during-sync',
    shape: o.shape,
    dtype,
    adapter: `${gpu.adapterInfo.vendor} ${gpu.adapterInfo.description}`.trim(),
    date: new Date().toISOString(),
    workspaceTokens: first.tokens,
    maxNewTokens: 16,
    idle: idleQ,
    duringReread: { ...duringQ, reasons: busy.reasons, rereadTokens: busy.reingestedTokens, rereadSeconds: +busy.seconds.toFixed(2) },
    rereadAloneSeconds: +alone.seconds.toFixed(2),
    rereadAloneTokens: alone.reingestedTokens,
    p95Ratio: duringQ ? +(duringQ.p95Ms / idleQ.p95Ms).toFixed(2) : null,
  };
  console.log(JSON.stringify(result, null, 2));
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
  engine.server.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
}
