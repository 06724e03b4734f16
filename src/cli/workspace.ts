// `ingest` and `ask`: the workspace commands (contracts in cli.ts's header).

import * as os from 'os';
import * as path from 'path';
import * as fs from 'fs';
import { answerQuestion, DEFAULT_ANSWER_TOKENS, questionNote } from '../engine/ask';
import { completeAt } from '../engine/completion/complete';
import { resolveModelDir } from '../engine/bundledModel';
import { UsageError } from '../engine/errors';
import { workspaceIngest, type IngestProgress, type IngestReport, type WorkspaceIngest } from '../engine/ingest';
import { modelIdentity } from '../engine/memory/snapshot';
import { openModelFolder, type LanguageModel } from '../engine/model';
import { CpuModel } from '../engine/cpu/model';
import { GpuModel } from '../engine/gpu/model';
import { parseQuantMode, quantizedModelId } from '../engine/quantLoad';
import { DEFAULT_MAX_FILE_BYTES } from '../workspace';
import { intValue, parseArgs, type ParsedArgs } from './args';

/** Where a command writes (tests pass their own). */
export interface CliStreams {
  out: { write(s: string): unknown };
  err: { write(s: string): unknown; isTTY?: boolean };
}

const STDIO: CliStreams = { out: process.stdout, err: process.stderr };

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'sidewinder');
}

function progressPrinter(err: CliStreams['err']): (p: IngestProgress) => void {
  const tty = err.isTTY === true;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (p.phase === 'ingesting' && now - last < (tty ? 100 : 2000)) return;
    last = now;
    const eta = p.etaSeconds === null ? '' : ` ETA ${p.etaSeconds.toFixed(0)}s`;
    const line =
      p.phase === 'ingesting'
        ? `${bar(p.files / Math.max(1, p.filesTotal))} ${p.files}/${p.filesTotal} files, ${p.tokens} tokens, ${p.tokensPerSecond.toFixed(0)} tok/s${eta}`
        : `${p.phase}${p.phase === 'done' ? `: ${p.files} files, ${p.tokens} tokens` : '...'}`;
    if (tty) err.write(`\r\x1b[2K${line}${p.phase === 'done' ? '\n' : ''}`);
    else err.write(line + '\n');
  };
}

function bar(frac: number): string {
  const n = 24;
  const k = Math.round(Math.min(1, Math.max(0, frac)) * n);
  return `[${'#'.repeat(k)}${'.'.repeat(n - k)}]`;
}

async function openWorkspace(args: ParsedArgs, err: CliStreams['err'], requireWorkspace = true): Promise<{ ingest: WorkspaceIngest; model: LanguageModel }> {
  const ws = args.values.get('workspace') ?? (requireWorkspace ? undefined : process.cwd());
  if (!ws) throw new UsageError('--workspace DIR is required.');
  const dir = resolveModelDir(args.values.get('model'));
  const folder = openModelFolder(dir, { requireTokenizer: true });
  const backend = args.values.get('backend') ?? 'webgpu';
  const cacheDir = path.resolve(args.values.get('cache-dir') ?? defaultCacheDir());
  // Attention KV is paged under a GPU budget (default 1 GiB); past the host budget blocks spill to the cache dir.
  const kvBudget = intValue(args, 'kv-budget-mb', 1024) * 2 ** 20;
  const hostBudget = intValue(args, 'kv-host-budget-mb', 8192) * 2 ** 20;
  // --quant q4|q8 quantizes a float checkpoint at load (planes cached in the cache dir); a quantized one loads as stored.
  const quant = { mode: parseQuantMode(args.values.get('quant')), cacheDir };
  const t0 = performance.now();
  const model: LanguageModel =
    backend === 'cpu'
      ? CpuModel.load(folder, { quant })
      : await GpuModel.load(folder, { quant, kv: { gpuBudgetBytes: kvBudget, hostBudgetBytes: hostBudget, spillDir: path.join(cacheDir, 'kv-spill') } });
  if (model instanceof GpuModel && quant.mode !== 'none') {
    // Quantizing at load takes seconds for a large model, once: say so, and where the result is kept.
    const w = model.weightsLoad;
    const how = w.quantized > 0 ? `quantized ${w.quantized} tensors at load in ${((performance.now() - t0) / 1000).toFixed(1)} s${w.cachePath ? `, cached in ${w.cachePath}` : ''}` : w.fromCache > 0 ? `${w.fromCache} tensors from ${w.cachePath}` : 'the checkpoint is stored quantized';
    err.write(`weights: ${quant.mode} (${how})\n`);
  }
  // The same walk and ingest options as the extension's (its settings' defaults are these defaults).
  const ingest = workspaceIngest(model, folder.tokenizer!, {
    workspace: ws,
    cacheDir: args.flags.has('no-cache') ? null : cacheDir,
    modelId: quantizedModelId(modelIdentity(dir), quant.mode),
    maxFileBytes: intValue(args, 'max-file-kb', DEFAULT_MAX_FILE_BYTES / 1024) * 1024,
    // gitignore lines, comma-separated, as `files --ignore` takes them (the extension's sidewinder.extraIgnore).
    extraIgnore: (args.values.get('ignore') ?? '').split(',').map((g) => g.trim()).filter((g) => g.length > 0),
  });
  return { ingest, model };
}

function reportJson(r: IngestReport) {
  return {
    files: r.files,
    skipped: r.skipped,
    tokens: r.tokens,
    seconds: +r.seconds.toFixed(3),
    tokensPerSecond: +r.tokensPerSecond.toFixed(1),
    resumedFromSnapshot: r.resumedFromSnapshot,
    reingestedTokens: r.reingestedTokens,
    snapshot: r.snapshot,
    memory: r.memory,
  };
}

const COMMON = ['workspace', 'model', 'kv-budget-mb', 'kv-host-budget-mb', 'cache-dir', 'backend', 'max-file-kb', 'ignore', 'quant'];

export async function cmdIngest(argv: string[], io: CliStreams = STDIO): Promise<void> {
  const args = parseArgs(argv, { values: COMMON, flags: ['json', 'no-cache'] });
  const { ingest, model } = await openWorkspace(args, io.err);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    const r = await ingest.sync({ signal: ac.signal, onProgress: progressPrinter(io.err) });
    if (r.snapshotProblem) io.err.write(`note: ${r.snapshotProblem}\n`);
    if (args.flags.has('json')) io.out.write(JSON.stringify(reportJson(r)) + '\n');
    else {
      io.out.write(
        `${r.files} files, ${r.tokens} tokens in the state (${r.reingestedTokens} read now, ${r.tokensPerSecond.toFixed(0)} tok/s)` +
          `${r.resumedFromSnapshot ? ', resumed from snapshot' : ''}${r.cancelled ? ', cancelled' : ''}\n`,
      );
    }
  } finally {
    process.off('SIGINT', onSig);
    model.dispose();
  }
}

export async function cmdAsk(argv: string[], io: CliStreams = STDIO): Promise<void> {
  const args = parseArgs(argv, { values: [...COMMON, 'max-new-tokens'], flags: ['json', 'no-cache', 'free-answer'] });
  const question = args.positionals.join(' ').trim();
  if (!question) throw new UsageError('ask needs a QUESTION.');
  const json = args.flags.has('json');
  const t0 = performance.now();
  const { ingest, model } = await openWorkspace(args, io.err);
  try {
    const r = await ingest.sync({ onProgress: json ? undefined : progressPrinter(io.err) });
    const tok = ingest.tokenizer;
    const ids: number[] = [];
    let printed = '';
    // The chat's way to the answer (engineServer.ts): the same prompt tokens and generation for the same question.
    const answer = answerQuestion(model, tok, {
      question,
      statePaths: ingest.statePaths(),
      maxNewTokens: intValue(args, 'max-new-tokens', DEFAULT_ANSWER_TOKENS),
      freeAnswer: args.flags.has('free-answer'),
    });
    for await (const id of answer.tokens()) {
      ids.push(id);
      if (!json) {
        const text = tok.decode(ids);
        if (!text.endsWith('\uFFFD')) {
          io.out.write(text.slice(printed.length));
          printed = text;
        }
      }
    }
    const text = tok.decode(ids).trim();
    if (json) {
      io.out.write(
        JSON.stringify({
          answer: text,
          ids,
          tokens: r.tokens,
          resumedFromSnapshot: r.resumedFromSnapshot,
          reingestedTokens: r.reingestedTokens,
          seconds: +((performance.now() - t0) / 1000).toFixed(3),
          memory: model.memory(),
        }) + '\n',
      );
    } else {
      io.out.write('\n');
      const note = questionNote(tok, question);
      if (note) io.err.write(`note: ${note}\n`);
    }
  } finally {
    model.dispose();
  }
}

/**
 * complete --file PATH --offset N [--workspace DIR] [--model DIR] [--max-new-tokens N] --json
 *   -> {"completion": "..."}: fill-in-the-middle at character offset N (UTF-16 code units, as editors count),
 *   on top of the workspace state when --workspace is given (brought up to date first), on a fork of it.
 */
export async function cmdComplete(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: [...COMMON, 'file', 'offset', 'max-new-tokens', 'max-lines'], flags: ['json', 'no-cache'] });
  const file = args.values.get('file');
  if (!file) throw new UsageError('--file PATH is required.');
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UsageError(`--file ${file} is not a readable file.`);
  const text = fs.readFileSync(file, 'utf8');
  const offset = intValue(args, 'offset');
  if (offset > text.length) throw new UsageError(`--offset ${offset} is past the end of the file (${text.length} characters).`);
  const withWorkspace = args.values.has('workspace');
  const { ingest, model } = await openWorkspace(args, process.stderr, false);
  try {
    if (withWorkspace) await ingest.sync({ onProgress: args.flags.has('json') ? undefined : progressPrinter(process.stderr) });
    const root = withWorkspace ? path.resolve(args.values.get('workspace')!) : path.dirname(path.resolve(file));
    const rel = path.relative(root, path.resolve(file)).split(path.sep).join('/');
    const r = await completeAt(model, ingest.tokenizer, {
      path: rel.startsWith('..') ? path.basename(file) : rel,
      prefix: text.slice(0, offset),
      suffix: text.slice(offset),
      maxTokens: intValue(args, 'max-new-tokens', 64),
      maxLines: intValue(args, 'max-lines', 8),
    });
    if (args.flags.has('json')) process.stdout.write(JSON.stringify({ completion: r.text }) + '\n');
    else process.stdout.write(r.text + '\n');
  } finally {
    model.dispose();
  }
}
