#!/usr/bin/env node
// Sidewinder's command line. Contracts (scripts depend on them exactly). `--model DIR` is optional everywhere: without
// it the bundled model (models/default in the package root, found from this script's location) is used.
//   sidewinder logits   [--model DIR] --ids 1,2,3 [--decode-from H] [--backend webgpu|cpu]
//       -> {"logits": [[...], ...]}  one row per position; with --decode-from H the first H ids are
//          prefilled, then the rest are fed one at a time, and rows for positions H-1 .. end are printed.
//   sidewinder generate [--model DIR] (--ids 1,2,3 | --prompt TEXT) --max-new-tokens N [--greedy] --json
//       -> {"ids": [...], "text": "..."}
//   sidewinder files    --workspace DIR --json
//       -> {"files":[{"path","bytes","mtimeMs"}...],"skipped":[{"path","reason"}...]}  in ingest order
//   sidewinder ingest   --workspace DIR [--model DIR] [--kv-budget-mb N] [--cache-dir DIR] [--max-file-kb N] [--ignore GLOB,...] [--json]
//       -> progress on stderr; with --json {"files","skipped":{reason:count},"tokens","seconds","tokensPerSecond",
//          "resumedFromSnapshot","reingestedTokens","snapshot","memory":{...}}
//   sidewinder ask      --workspace DIR [--model DIR] [--kv-budget-mb N] [--cache-dir DIR] [--max-file-kb N] [--ignore GLOB,...]
//                       [--max-new-tokens N] [--free-answer] [--json] "QUESTION"
//       -> the answer streamed to stdout; with --json {"answer","ids","tokens","resumedFromSnapshot","reingestedTokens",
//          "seconds","memory":{...}}
//       The workspace is read and the question asked exactly as the extension's chat does (same walk defaults:
//       --max-file-kb 512, --ignore as sidewinder.extraIgnore; same prompt tokens; --max-new-tokens 512 as
//       sidewinder.chat.maxAnswerTokens).
//   sidewinder complete --file PATH --offset N [--workspace DIR] [--model DIR] [--max-new-tokens N] --json
//       -> {"completion": "..."}  fill-in-the-middle at the offset, on the workspace state when given
//   sidewinder download REPO_ID [--revision REV] [--dest DIR] [--endpoint URL] [--json]
//       -> fetches config, tokenizer and safetensors from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN honoured)
//   sidewinder quantize [--model DIR] --out DIR [--quant q4|q8] [--json]
//       -> {"out","quant","bytes","quantizedTensors"}  the checkpoint stored quantized (README "Quantized weights")
//   sidewinder info     [--model DIR | --config FILE] [--json]
//       -> {"model_type","architecture","layers","layersByKind","attentionLayers","recurrentLayers","params",
//          "activeParams","tensors","weightBytes":{"bf16","q8","q4","f32"},"stateBytes","kvBytesPerToken",
//          "kvWindowTokens","kvMaxBytes"}  from config.json alone (engine/estimate.ts); nothing is loaded
//   Every command that loads a model (logits, generate, ingest, ask, complete) takes --quant q4|q8|none (default
//   none) and --cache-dir DIR (where the quantized planes are cached).

import { bundledModelDir, resolveModelDir } from '../engine/bundledModel';
import { SidewinderError, UsageError } from '../engine/errors';
import { generateTokens } from '../engine/generate';
import { openModelFolder, type LanguageModel, type ModelFolder } from '../engine/model';
import { CpuModel } from '../engine/cpu/model';
import { GpuModel } from '../engine/gpu/model';
import * as path from 'path';
import { parseQuantMode, writeQuantizedCheckpoint } from '../engine/quantLoad';
import { idList, intValue, parseArgs, type ParsedArgs } from './args';
import { cmdDownload } from './download';
import { cmdFiles } from './files';
import { cmdInfo } from './info';
import { cmdAsk, cmdComplete, cmdIngest, defaultCacheDir } from './workspace';

const USAGE = `usage:
  sidewinder logits   [--model DIR] --ids 1,2,3 [--decode-from H] [--backend webgpu|cpu] [--quant q4|q8|none]
  sidewinder generate [--model DIR] (--ids 1,2,3 | --prompt TEXT) --max-new-tokens N [--greedy]
                      [--temperature T] [--top-p P] [--seed S] [--backend webgpu|cpu] [--quant q4|q8|none] [--json]
  sidewinder files    --workspace DIR [--json]
  sidewinder ingest   --workspace DIR [--model DIR] [--kv-budget-mb N] [--cache-dir DIR] [--max-file-kb N] [--ignore GLOB,...] [--json]
  sidewinder ask      --workspace DIR [--model DIR] [--kv-budget-mb N] [--cache-dir DIR] [--max-file-kb N] [--ignore GLOB,...]
                      [--max-new-tokens N] [--free-answer] [--json] "QUESTION"
  sidewinder download REPO_ID [--revision REV] [--dest DIR] [--endpoint URL] [--json]
  sidewinder complete --file PATH --offset N [--workspace DIR] [--model DIR] [--max-new-tokens N] [--json]
  sidewinder quantize [--model DIR] --out DIR [--quant q4|q8] [--json]
  sidewinder info     [--model DIR | --config FILE] [--json]   params, weight bytes (bf16/q8/q4), state, KV per token

--model DIR: a Hugging Face model folder (config.json, *.safetensors, tokenizer.json). Default: the bundled
model, ${bundledModelDir()}.
--quant q4|q8|none (every command that loads a model; default none): quantize a bf16/f16/f32 checkpoint's
matrices at load, group-wise (32 a group, f16 scales; under q4 the embedding in q8), cached in the cache dir
(--cache-dir, default ${defaultCacheDir()}). A checkpoint stored quantized (the bundled model) loads as stored.`;

async function loadModel(folder: ModelFolder, args: ParsedArgs): Promise<LanguageModel> {
  const backend = args.values.get('backend') ?? 'webgpu';
  const quant = { mode: parseQuantMode(args.values.get('quant')), cacheDir: path.resolve(args.values.get('cache-dir') ?? defaultCacheDir()) };
  if (backend === 'cpu') return CpuModel.load(folder, { quant });
  if (backend === 'webgpu') return GpuModel.load(folder, { quant });
  throw new UsageError(`--backend must be webgpu or cpu, got ${JSON.stringify(backend)}.`);
}

function checkIds(ids: number[], folder: ModelFolder): void {
  const bad = ids.find((id) => id >= folder.config.vocabSize);
  if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the model's vocabulary (size ${folder.config.vocabSize}).`);
}

function rows(logits: Float32Array, vocab: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < logits.length / vocab; r++) out.push(Array.from(logits.subarray(r * vocab, (r + 1) * vocab)));
  return out;
}

async function cmdLogits(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'ids', 'decode-from', 'backend', 'quant', 'cache-dir'] });
  const dir = resolveModelDir(args.values.get('model'));
  const ids = idList(args.values.get('ids') ?? '');
  const folder = openModelFolder(dir);
  checkIds(ids, folder);
  const V = folder.config.vocabSize;
  const H = args.values.has('decode-from') ? intValue(args, 'decode-from') : null;
  if (H !== null && (H < 1 || H > ids.length)) throw new UsageError(`--decode-from must be between 1 and the number of ids (${ids.length}).`);
  const model = await loadModel(folder, args);
  try {
    let result: number[][];
    if (H !== null) {
      result = rows(await model.forward(ids.slice(0, H)), V);
      for (const id of ids.slice(H)) result.push(...rows(await model.forward([id]), V));
    } else {
      result = rows(await model.forward(ids, { allLogits: true }), V);
    }
    process.stdout.write(JSON.stringify({ logits: result }) + '\n');
  } finally {
    model.dispose();
  }
}

async function cmdGenerate(argv: string[]): Promise<void> {
  const args = parseArgs(argv, {
    values: ['model', 'ids', 'prompt', 'max-new-tokens', 'temperature', 'top-p', 'seed', 'backend', 'quant', 'cache-dir'],
    flags: ['greedy', 'json'],
  });
  const dir = resolveModelDir(args.values.get('model'));
  const folder = openModelFolder(dir, { requireTokenizer: args.values.has('prompt') });
  let prompt: number[];
  if (args.values.has('ids') === args.values.has('prompt')) throw new UsageError('give exactly one of --ids or --prompt.');
  if (args.values.has('ids')) prompt = idList(args.values.get('ids')!);
  else prompt = folder.tokenizer!.encode(args.values.get('prompt')!);
  if (prompt.length === 0) throw new UsageError('the prompt encodes to no tokens.');
  checkIds(prompt, folder);
  const maxNewTokens = intValue(args, 'max-new-tokens');
  const temperature = args.values.has('temperature') ? Number(args.values.get('temperature')) : 0.7;
  const topP = args.values.has('top-p') ? Number(args.values.get('top-p')) : 0.95;
  if (!(temperature >= 0) || !(topP > 0 && topP <= 1)) throw new UsageError('--temperature must be >= 0 and --top-p in (0, 1].');
  const json = args.flags.has('json');
  const model = await loadModel(folder, args);
  const tok = folder.tokenizer;
  const stopIds = folder.stopIds;
  const out: number[] = [];
  try {
    let printed = '';
    for await (const id of generateTokens(model, prompt, {
      maxNewTokens,
      greedy: args.flags.has('greedy'),
      temperature,
      topP,
      seed: intValue(args, 'seed', 0),
      stopIds,
    })) {
      out.push(id);
      if (!json && tok) {
        // Stream text as it becomes stable (a partial UTF-8 sequence decodes to U+FFFD until complete).
        const text = tok.decode(out);
        if (!text.endsWith('\uFFFD')) {
          process.stdout.write(text.slice(printed.length));
          printed = text;
        }
      }
    }
  } finally {
    model.dispose();
  }
  const text = tok ? tok.decode(out) : '';
  if (json) process.stdout.write(JSON.stringify({ ids: out, text }) + '\n');
  else process.stdout.write(tok ? '\n' : out.join(',') + '\n');
}

async function cmdQuantize(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'out', 'quant'], flags: ['json'] });
  const out = args.values.get('out');
  if (!out) throw new UsageError('--out DIR is required.');
  const mode = parseQuantMode(args.values.get('quant') ?? 'q4');
  if (mode === 'none') throw new UsageError('--quant must be q4 or q8 for quantize.');
  const dir = resolveModelDir(args.values.get('model'));
  const folder = openModelFolder(dir);
  if (path.resolve(out) === path.resolve(dir)) throw new UsageError('--out must be another folder than --model.');
  try {
    const r = writeQuantizedCheckpoint(folder, path.resolve(out), mode);
    if (args.flags.has('json')) process.stdout.write(JSON.stringify({ out: path.resolve(out), quant: mode, bytes: r.bytes, quantizedTensors: r.quantized }) + '\n');
    else process.stdout.write(`${path.resolve(out)}: ${r.quantized} tensors ${mode}, ${(r.bytes / 2 ** 20).toFixed(1)} MiB\n`);
  } finally {
    folder.store.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'logits':
      await cmdLogits(rest);
      return 0;
    case 'generate':
      await cmdGenerate(rest);
      return 0;
    case 'files':
      await cmdFiles(rest);
      return 0;
    case 'ingest':
      await cmdIngest(rest);
      return 0;
    case 'ask':
      await cmdAsk(rest);
      return 0;
    case 'download':
      await cmdDownload(rest);
      return 0;
    case 'complete':
      await cmdComplete(rest);
      return 0;
    case 'quantize':
      await cmdQuantize(rest);
      return 0;
    case 'info':
      await cmdInfo(rest);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(cmd)}.\n${USAGE}`);
  }
}

/** Exits once everything written so far has reached the OS (a pipe is written asynchronously). */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterFlush, (e: unknown) => {
  if (e instanceof SidewinderError) process.stderr.write(`sidewinder: ${e.message}\n`);
  else process.stderr.write(`sidewinder: ${(e as Error)?.stack ?? String(e)}\n`);
  exitAfterFlush(e instanceof UsageError ? 2 : 1);
});
