// `ingest` and `ask`: the workspace commands (contracts in cli.ts's header).

import * as os from 'os';
import * as path from 'path';
import * as fs from 'fs';
import { ASK_EXACT_TAIL, onFork, pathAnswerConstraint, questionTokens } from '../engine/ask';
import { completeAt } from '../engine/completion/complete';
import { resolveModelDir } from '../engine/bundledModel';
import { UsageError } from '../engine/errors';
import { WorkspaceIngest, type IngestProgress, type IngestReport } from '../engine/ingest';
import { modelIdentity } from '../engine/memory/snapshot';
import { openModelFolder, type LanguageModel } from '../engine/model';
import { CpuModel } from '../engine/cpu/model';
import { GpuModel } from '../engine/gpu/model';
import { intValue, parseArgs, type ParsedArgs } from './args';

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'sidewinder');
}

function progressPrinter(): (p: IngestProgress) => void {
  const tty = process.stderr.isTTY;
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
    if (tty) process.stderr.write(`\r\x1b[2K${line}${p.phase === 'done' ? '\n' : ''}`);
    else process.stderr.write(line + '\n');
  };
}

function bar(frac: number): string {
  const n = 24;
  const k = Math.round(Math.min(1, Math.max(0, frac)) * n);
  return `[${'#'.repeat(k)}${'.'.repeat(n - k)}]`;
}

async function openWorkspace(args: ParsedArgs, requireWorkspace = true): Promise<{ ingest: WorkspaceIngest; model: LanguageModel }> {
  const ws = args.values.get('workspace') ?? (requireWorkspace ? undefined : process.cwd());
  if (!ws) throw new UsageError('--workspace DIR is required.');
  const dir = resolveModelDir(args.values.get('model'));
  const folder = openModelFolder(dir, { requireTokenizer: true });
  const backend = args.values.get('backend') ?? 'webgpu';
  const cacheDir = path.resolve(args.values.get('cache-dir') ?? defaultCacheDir());
  // Attention KV is paged under a GPU budget (default 1 GiB); past the host budget blocks spill to the cache dir.
  const kvBudget = intValue(args, 'kv-budget-mb', 1024) * 2 ** 20;
  const hostBudget = intValue(args, 'kv-host-budget-mb', 8192) * 2 ** 20;
  const model: LanguageModel =
    backend === 'cpu'
      ? CpuModel.load(folder)
      : await GpuModel.load(folder, { kv: { gpuBudgetBytes: kvBudget, hostBudgetBytes: hostBudget, spillDir: path.join(cacheDir, 'kv-spill') } });
  const ingest = new WorkspaceIngest(model, folder.tokenizer!, {
    workspace: path.resolve(ws),
    cacheDir: args.flags.has('no-cache') ? null : cacheDir,
    modelId: modelIdentity(dir),
    walk: { maxFileBytes: intValue(args, 'max-file-kb', 512) * 1024 },
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

const COMMON = ['workspace', 'model', 'kv-budget-mb', 'kv-host-budget-mb', 'cache-dir', 'backend', 'max-file-kb'];

export async function cmdIngest(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: COMMON, flags: ['json', 'no-cache'] });
  const { ingest, model } = await openWorkspace(args);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    const r = await ingest.sync({ signal: ac.signal, onProgress: progressPrinter() });
    if (r.snapshotProblem) process.stderr.write(`note: ${r.snapshotProblem}\n`);
    if (args.flags.has('json')) process.stdout.write(JSON.stringify(reportJson(r)) + '\n');
    else {
      process.stdout.write(
        `${r.files} files, ${r.tokens} tokens in the state (${r.reingestedTokens} read now, ${r.tokensPerSecond.toFixed(0)} tok/s)` +
          `${r.resumedFromSnapshot ? ', resumed from snapshot' : ''}${r.cancelled ? ', cancelled' : ''}\n`,
      );
    }
  } finally {
    process.off('SIGINT', onSig);
    model.dispose();
  }
}

export async function cmdAsk(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: [...COMMON, 'max-new-tokens'], flags: ['json', 'no-cache', 'free-answer'] });
  const question = args.positionals.join(' ').trim();
  if (!question) throw new UsageError('ask needs a QUESTION.');
  const t0 = performance.now();
  const { ingest, model } = await openWorkspace(args);
  try {
    const r = await ingest.sync({ onProgress: args.flags.has('json') ? undefined : progressPrinter() });
    const tok = ingest.tokenizer;
    const ids: number[] = [];
    const stop = [...model.config.eosTokenIds, ...(tok.special.eos !== null ? [tok.special.eos] : [])];
    if (tok.special.fileSep !== null) stop.push(tok.special.fileSep);
    let printed = '';
    // A model that answers with a path names a file of the workspace (--free-answer: as the model writes it).
    const allowedNext = args.flags.has('free-answer') ? undefined : pathAnswerConstraint(tok, ingest.statePaths());
    const gen = { maxNewTokens: intValue(args, 'max-new-tokens', 64), greedy: true, stopIds: stop, exactTail: ASK_EXACT_TAIL, allowedNext };
    for await (const id of onFork(model, questionTokens(tok, question), gen)) {
      if (stop.includes(id)) break;
      ids.push(id);
      if (!args.flags.has('json')) {
        const text = tok.decode(ids);
        if (!text.endsWith('\uFFFD')) {
          process.stdout.write(text.slice(printed.length));
          printed = text;
        }
      }
    }
    const answer = tok.decode(ids).trim();
    if (args.flags.has('json')) {
      process.stdout.write(
        JSON.stringify({
          answer,
          ids,
          tokens: r.tokens,
          resumedFromSnapshot: r.resumedFromSnapshot,
          reingestedTokens: r.reingestedTokens,
          seconds: +((performance.now() - t0) / 1000).toFixed(3),
          memory: model.memory(),
        }) + '\n',
      );
    } else process.stdout.write('\n');
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
  const { ingest, model } = await openWorkspace(args, false);
  try {
    if (withWorkspace) await ingest.sync({ onProgress: args.flags.has('json') ? undefined : progressPrinter() });
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
