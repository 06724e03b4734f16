// npm run eval -- [--model DIR] --data DIR [--files N] [--fim N] [--lookup N] [--lengths 4096,16384,65536]
//                 [--backend webgpu|cpu] [--attention-blocks N] [--quant q4|q8|none] [--json FILE]
//
// Quality of a model on code it has not seen (DIR should hold held-out sources: packages left out of
// training, see train/data.py HELD_OUT), measured on the engine itself:
// - perplexity of held-out files, framed as in a workspace;
// - FIM next-line exact match: a line cut out of a held-out file, completed with prefix and suffix;
// - definition lookup: a synthetic workspace of held-out files of about L tokens, then
//   "Where is `NAME` defined?" (the `ask` framing); correct when the answer names the defining file (and, as
//   partial credit, when it names the file without its folders); the first answers of each length are kept;
// - the five question kinds (--kinds N, default 0: off): one synthetic workspace of about L tokens per length,
//   N questions of each kind about it in their canonical form, answered as `ask` answers them (answerQuestion,
//   with its answer constraint), scored against the ground truth of src/workspace/symbols.ts: definition, the
//   path exactly; usages, F1 of the path sets ("none" is the empty set); signature and summary, the answer's
//   first line exactly; outline, F1 of the name sets ("nothing" is the empty set). Subjects are drawn so that the
//   ground truth exists: names defined in one file of the workspace, for usages names used in another file too,
//   for summary half with a docstring (when there are both), for outline the workspace's files.
// On WebGPU the K/V is paged as in the product (1 GiB budget): past --attention-blocks blocks of 64 tokens (default
// 64, the engine's) each query attends to a Quest selection of blocks; a larger N keeps longer contexts dense.

import * as fs from 'fs';
import { answerQuestion, ASK_EXACT_TAIL, kindQuestion, onFork, pathAnswerConstraint, questionTokens } from '../src/engine/ask';
import { resolveModelDir } from '../src/engine/bundledModel';
import { completeAt } from '../src/engine/completion/complete';
import { CpuModel } from '../src/engine/cpu/model';
import type { GenerateOptions } from '../src/engine/generate';
import { GpuModel } from '../src/engine/gpu/model';
import { openModelFolder, type LanguageModel } from '../src/engine/model';
import { rng } from '../src/engine/sampling';
import {
  answerText,
  definedNames,
  frameFile,
  listedNames,
  readWorkspaceFile,
  summaryOf,
  usagesOf,
  walkWorkspace,
  type QuestionKind,
  type SourceText,
} from '../src/workspace';
import { intValue, parseArgs } from '../src/cli/args';
import { parseQuantMode } from '../src/engine/quantLoad';

interface SourceFile {
  path: string;
  text: string;
}

const KINDS: readonly QuestionKind[] = ['definition', 'usages', 'signature', 'summary', 'outline'];
/** Answer tokens per kind: up to 5 paths; a signature or sentence of up to 200 characters and a path; names. */
const KIND_ANSWER_TOKENS: Record<QuestionKind, number> = { definition: 32, usages: 96, signature: 96, summary: 112, outline: 160 };

/** The items of an answer in backticks (paths, names); none for "none" or "nothing". */
const codeItems = (answer: string) => new Set([...answer.matchAll(/`([^`]+)`/g)].map((m) => m[1]));

/** F1 of two sets; two empty sets agree. */
function f1(got: Set<string>, want: Set<string>): number {
  if (!got.size && !want.size) return 1;
  const both = [...got].filter((x) => want.has(x)).length;
  return both ? (2 * both) / (got.size + want.size) : 0;
}

/** How well `answer` matches the ground truth `truth` of a question of `kind` (see the header): 0 to 1. */
function kindScore(kind: QuestionKind, answer: string, truth: string): number {
  const firstLine = answer.trim().split('\n')[0].trim();
  if (kind === 'usages' || kind === 'outline') return f1(codeItems(firstLine), codeItems(truth));
  return firstLine === truth ? 1 : 0;
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
    values: ['model', 'data', 'files', 'fim', 'lookup', 'kinds', 'lengths', 'backend', 'json', 'seed', 'attention-blocks', 'quant'],
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
  // Held-out files drawn at random, framed, until about L tokens (the earliest dropped to fit), none that `skip`s.
  const sampleWorkspace = (L: number, rename: (p: string) => string, skip: (f: SourceFile, chosen: readonly { path: string; ids: number[] }[]) => boolean) => {
    const chosen: { path: string; text: string; ids: number[] }[] = [];
    let size = 0;
    for (let guard = 0; size < L && guard < 10 * files.length; guard++) {
      const f = pick(files);
      if (skip(f, chosen)) continue;
      const ids = frame({ path: rename(f.path), text: f.text });
      chosen.push({ path: rename(f.path), text: f.text, ids });
      size += ids.length;
    }
    while (chosen.length && size > L) size -= chosen.shift()!.ids.length;
    return chosen;
  };
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
      const chosen = sampleWorkspace(L, rename, (f) => f.path === target.path || names.get(f)!.includes(name)); // one right answer
      chosen.splice(Math.floor(random() * (chosen.length + 1)), 0, { path: expected, text: target.text, ids: frame({ path: expected, text: target.text }) });
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

  // 4. The five question kinds, on one workspace per length.
  const perKind = intValue(args, 'kinds', 0);
  if (perKind > 0) {
    const kinds = Object.fromEntries(KINDS.map((k) => [k, {} as Record<string, number | null>])) as Record<QuestionKind, Record<string, number | null>>;
    const kindExamples: { length: number; kind: QuestionKind; question: string; expected: string; answer: string }[] = [];
    const lengthOf = new Map<SourceFile, number>();
    const framedLength = (f: SourceFile) => lengthOf.get(f) ?? lengthOf.set(f, frame(f).length).get(f)!;
    for (const L of lengths) {
      const rename = renamePaths ? renamer() : (p: string) => p;
      // Each file once (a path listed twice would be two answers to one question), and only files that fit in what
      // is left of L (dropping the earliest to fit a long file would often leave that file alone).
      const fits = (f: SourceFile, ws: readonly { path: string; ids: number[] }[]) => framedLength(f) <= L - ws.reduce((n, c) => n + c.ids.length, 0);
      const chosen = sampleWorkspace(L, rename, (f, ws) => ws.some((c) => c.path === rename(f.path)) || !fits(f, ws));
      model.reset();
      for (const c of chosen) await model.forward(c.ids, { skipLogits: true });
      const ws: SourceText[] = chosen.map(({ path, text }) => ({ path, text }));
      const statePaths = ws.map((f) => f.path);
      const definers = new Map<string, number>();
      for (const f of ws) for (const n of listedNames(f.text)) definers.set(n, (definers.get(n) ?? 0) + 1);
      const defined = [...definers].filter(([, count]) => count === 1).map(([n]) => n);
      const documented = defined.filter((n) => summaryOf(n, ws)!.sentence !== null);
      const undocumented = defined.filter((n) => summaryOf(n, ws)!.sentence === null);
      const draw = (xs: string[], n: number) => (xs.length ? Array.from({ length: n }, () => pick(xs)) : []);
      const subjects: Record<QuestionKind, string[]> = {
        definition: draw(defined, perKind),
        usages: draw(defined.filter((n) => usagesOf(n, ws).length > 0), perKind),
        signature: draw(defined, perKind),
        summary: documented.length && undocumented.length ? [...draw(documented, Math.ceil(perKind / 2)), ...draw(undocumented, Math.floor(perKind / 2))] : draw(defined, perKind),
        outline: draw(statePaths, perKind),
      };
      for (const kind of KINDS) {
        let score = 0;
        for (const subject of subjects[kind]) {
          const question = kindQuestion(kind, subject);
          const expected = answerText(kind, subject, ws)!;
          const answer = answerQuestion(model, tok, { question, statePaths, maxNewTokens: KIND_ANSWER_TOKENS[kind] });
          const ids: number[] = [];
          for await (const id of answer.tokens()) ids.push(id);
          const text = tok.decode(ids).trim();
          score += kindScore(kind, text, expected);
          if (kindExamples.filter((e) => e.length === L && e.kind === kind).length < 2) kindExamples.push({ length: L, kind, question, expected, answer: text });
        }
        kinds[kind][String(L)] = subjects[kind].length ? +(score / subjects[kind].length).toFixed(3) : null;
      }
    }
    result.kinds = kinds;
    result.kindsQuestions = perKind;
    result.kindsExamples = kindExamples;
    // The table on stderr, so that stdout stays one JSON object.
    const cell = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(3)).padStart(8);
    console.error(['kind'.padEnd(12), ...lengths.map((L) => String(L).padStart(8))].join(''));
    for (const kind of KINDS) console.error([kind.padEnd(12), ...lengths.map((L) => cell(kinds[kind][String(L)]))].join(''));
  }
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
