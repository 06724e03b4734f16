// npm run eval -- [--model DIR] --data DIR [--files N] [--fim N] [--lookup N] [--lengths 4096,16384,65536]
//                 [--backend webgpu|cpu] [--attention-blocks N] [--quant q4|q8|none] [--json FILE]
//
// Quality of a model on code it has not seen (DIR should hold held-out sources: packages left out of
// training, see train/data.py HELD_OUT), measured on the engine itself:
// - perplexity of held-out files, framed as in a workspace;
// - FIM next-line exact match: a line cut out of a held-out file, completed with prefix and suffix;
// - definition lookup: a synthetic workspace of held-out files of about L tokens, then
//   "Where is `NAME` defined?" (the `ask` framing); correct when the answer names the defining file (and, as
//   partial credit, when it names the file without its folders); the first answers of each length are kept.
// On WebGPU the K/V is paged as in the product (1 GiB budget): past --attention-blocks blocks of 64 tokens (default
// 64, the engine's) each query attends to a Quest selection of blocks; a larger N keeps longer contexts dense.

import * as fs from 'fs';
import { ASK_EXACT_TAIL, onFork, pathAnswerConstraint, questionTokens } from '../src/engine/ask';
import { resolveModelDir } from '../src/engine/bundledModel';
import { completeAt } from '../src/engine/completion/complete';
import { CpuModel } from '../src/engine/cpu/model';
import type { GenerateOptions } from '../src/engine/generate';
import { GpuModel } from '../src/engine/gpu/model';
import { openModelFolder, type LanguageModel } from '../src/engine/model';
import { rng } from '../src/engine/sampling';
import { definedNames, frameFile, readWorkspaceFile, walkWorkspace } from '../src/workspace';
import { intValue, parseArgs } from '../src/cli/args';
import { parseQuantMode } from '../src/engine/quantLoad';

interface SourceFile {
  path: string;
  text: string;
}

function logSoftmaxAt(row: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[id] - max - Math.log(sum);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    values: ['model', 'data', 'files', 'fim', 'lookup', 'lengths', 'backend', 'json', 'seed', 'attention-blocks', 'quant'],
    flags: ['rename-paths'],
  });
  const modelDir = resolveModelDir(args.values.get('model')); // default: the bundled model
  const dataDir = args.values.get('data');
  if (!dataDir) throw new Error('usage: npm run eval -- [--model DIR] --data DIR (held-out sources)');
  const folder = openModelFolder(modelDir, { requireTokenizer: true });
  const tok = folder.tokenizer!;
  const attentionBlocks = intValue(args, 'attention-blocks', 64);
  // --quant q4|q8: the model's float weights quantized at load, as `--quant` does everywhere (perplexity vs bf16).
  const quant = { mode: parseQuantMode(args.values.get('quant')) };
  const model: LanguageModel =
    args.values.get('backend') === 'cpu' ? CpuModel.load(folder, { quant }) : await GpuModel.load(folder, { quant, kv: { gpuBudgetBytes: 1 << 30, attentionBlocks } });
  const random = rng(intValue(args, 'seed', 1));
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];

  const listing = await walkWorkspace(dataDir);
  const files: SourceFile[] = [];
  for (const f of listing.files) {
    const r = await readWorkspaceFile(f);
    if ('text' in r && r.text.split('\n').length >= 4) files.push({ path: f.path, text: r.text });
  }
  if (files.length < 4) throw new Error(`${dataDir} has too few readable source files (${files.length}).`);
  const frame = (f: SourceFile) => frameFile(f.path, f.text, tok.special, (s) => tok.encode(s));
  const result: Record<string, unknown> = { model: modelDir, data: dataDir, files: files.length, date: new Date().toISOString(), attentionBlocks };

  // 1. Perplexity over held-out files (each file on its own, up to 2,048 tokens).
  {
    let nll = 0;
    let n = 0;
    for (let i = 0; i < intValue(args, 'files', 20); i++) {
      const ids = frame(pick(files)).slice(0, 2048);
      if (ids.length < 2) continue;
      model.reset();
      const logits = await model.forward(ids.slice(0, -1), { allLogits: true });
      const V = model.config.vocabSize;
      for (let t = 0; t < ids.length - 1; t++) nll -= logSoftmaxAt(logits.subarray(t * V, (t + 1) * V), ids[t + 1]);
      n += ids.length - 1;
    }
    result.perplexity = +Math.exp(nll / Math.max(1, n)).toFixed(3);
    result.perplexityTokens = n;
  }

  // 2. FIM next-line exact match.
  {
    let hit = 0;
    const total = intValue(args, 'fim', 20);
    for (let i = 0; i < total; i++) {
      const f = pick(files);
      const lines = f.text.split('\n');
      let j = 1 + Math.floor(random() * (lines.length - 2));
      for (let k = 0; k < lines.length && !lines[j].trim(); k++) j = 1 + ((j + 1) % (lines.length - 2));
      const prefix = lines.slice(0, j).join('\n') + '\n';
      const suffix = '\n' + lines.slice(j + 1).join('\n');
      model.reset();
      const r = await completeAt(model, tok, { path: f.path, prefix, suffix, maxTokens: 48, maxLines: 1 });
      if (r.text.trim() === lines[j].trim()) hit++;
    }
    result.fimExactMatch = +(hit / Math.max(1, total)).toFixed(3);
    result.fimCases = total;
  }

  // 3. Definition lookup at growing workspace lengths.
  const lengths = (args.values.get('lengths') ?? '4096,16384,65536').split(',').map(Number);
  const lookup: Record<string, number> = {};
  // Partial credit, to follow progress while whole paths are still wrong: the file's name without its folders.
  const lookupName: Record<string, number> = {};
  // With the answer kept to the workspace's paths (ask's default for a path-answering model; see ask.ts).
  const lookupKept: Record<string, number> = {};
  const examples: { length: number; name: string; expected: string; answer: string; answerKeptToPaths: string }[] = [];
  // --rename-paths: every folder and file name of a lookup workspace replaced by another name of the held-out
  // tree, consistently within the workspace (as in training): a file name no longer echoes what the file defines
  // (lodash's `sortedIndex` in `sortedIndex.js`), so only reading the workspace finds it.
  const renamePaths = args.flags.has('rename-paths');
  const pool = [...new Set(files.flatMap((f) => f.path.replace(/\.[^./]*$/, '').split('/')))].filter((x) => /^[A-Za-z_]\w*$/.test(x)).sort();
  const renamer = (): ((p: string) => string) => {
    const names = new Map<string, string>();
    const used = new Set<string>();
    const nameOf = (part: string) => {
      let n = names.get(part);
      if (n === undefined) {
        do n = pick(pool);
        while (used.has(n) && used.size < pool.length);
        used.add(n);
        names.set(part, n);
      }
      return n;
    };
    return (p) => {
      const parts = p.split('/');
      const base = parts.pop()!;
      const dot = base.lastIndexOf('.');
      return [...parts, dot > 0 ? base.slice(0, dot) : base].map(nameOf).join('/') + (dot > 0 ? base.slice(dot) : '');
    };
  };
  result.lookupPathsRenamed = renamePaths;
  const names = new Map(files.map((f) => [f, definedNames(f.text)]));
  const withDefs = files.filter((f) => names.get(f)!.length > 0);
  for (const L of lengths) {
    let hit = 0;
    let nameHit = 0;
    let keptHit = 0;
    const total = intValue(args, 'lookup', 10);
    for (let i = 0; i < total; i++) {
      const target = pick(withDefs);
      const name = pick(names.get(target)!);
      const rename = renamePaths ? renamer() : (p: string) => p;
      const expected = rename(target.path);
      const chosen: { path: string; ids: number[] }[] = [];
      let size = 0;
      for (let guard = 0; size < L && guard < 10 * files.length; guard++) {
        const f = pick(files);
        if (f.path === target.path || names.get(f)!.includes(name)) continue; // one right answer
        const ids = frame({ path: rename(f.path), text: f.text });
        chosen.push({ path: rename(f.path), ids });
        size += ids.length;
      }
      while (chosen.length && size > L) size -= chosen.shift()!.ids.length;
      chosen.splice(Math.floor(random() * (chosen.length + 1)), 0, { path: expected, ids: frame({ path: expected, text: target.text }) });
      model.reset();
      for (const c of chosen) await model.forward(c.ids, { skipLogits: true });
      // The model's own answer, then (for a path-answering model) the answer kept to the workspace's paths, as
      // ask gives it; both on a fork of the same workspace state.
      const answerWith = async (allowedNext: GenerateOptions['allowedNext']) => {
        const out: number[] = [];
        const gen = { maxNewTokens: 24, greedy: true, stopIds: folder.stopIds, exactTail: ASK_EXACT_TAIL, allowedNext };
        for await (const id of onFork(model, questionTokens(tok, `Where is \`${name}\` defined?`), gen)) {
          if (folder.stopIds.includes(id)) break;
          out.push(id);
        }
        return tok.decode(out);
      };
      const answer = await answerWith(undefined);
      const constraint = pathAnswerConstraint(tok, new Set(chosen.map((c) => c.path)));
      const kept = constraint ? await answerWith(constraint) : answer;
      if (answer.includes(expected)) hit++;
      if (answer.includes(expected.split('/').pop()!)) nameHit++;
      if (kept.trim() === `\`${expected}\``) keptHit++;
      if (i < 5) examples.push({ length: L, name, expected, answer: answer.trim(), answerKeptToPaths: kept.trim() });
    }
    lookup[String(L)] = +(hit / Math.max(1, total)).toFixed(3);
    lookupName[String(L)] = +(nameHit / Math.max(1, total)).toFixed(3);
    lookupKept[String(L)] = +(keptHit / Math.max(1, total)).toFixed(3);
  }
  result.definitionLookupAccuracy = lookup;
  result.definitionLookupFileNameAccuracy = lookupName;
  result.definitionLookupKeptToPathsAccuracy = lookupKept;
  result.definitionLookupExamples = examples;
  console.log(JSON.stringify(result, null, 2));
  if (args.values.has('json')) fs.writeFileSync(args.values.get('json')!, JSON.stringify(result, null, 2) + '\n');
  model.dispose();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
