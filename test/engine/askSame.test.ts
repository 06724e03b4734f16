// Same answer everywhere: for the same workspace, model and question, the chat (EngineServer with the real engine
// backend, settings at the extension's defaults) and the CLI (`ingest` / `ask`, in process, at its defaults) feed
// the model the same token ids, call for call, while reading the workspace and while answering, and give the same
// answer. On the bundled model (file footer and index framing, path answers), CPU backend. Every forward() of
// every CpuModel is recorded, so nothing either path puts into the model escapes the comparison.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cmdAsk, cmdIngest, type CliStreams } from '../../src/cli/workspace';
import { DEFAULT_ANSWER_TOKENS } from '../../src/engine/ask';
import { bundledModelDir } from '../../src/engine/bundledModel';
import { CpuModel } from '../../src/engine/cpu/model';
import { TextTokenizer } from '../../src/engine/tokenizer';
import { DEFAULT_MAX_FILE_BYTES } from '../../src/workspace';
import { engineBackend } from '../../src/extension/engineBackend';
import { EngineServer } from '../../src/extension/engineServer';
import type { AskResult, EngineToHost, LoadParams, SyncResult } from '../../src/extension/protocol';
import { askParams, readSettings, syncParams } from '../../src/extension/settings';
import { REPO } from './helpers';

const MODEL = bundledModelDir(REPO);
// The question as a user types it: no backticks, no question mark, stray spaces (both paths must canonicalise it).
const QUESTION = '  where is completeAt defined ';

interface Call {
  ids: number[];
  allLogits: boolean;
  skipLogits: boolean;
}

/** Every forward() of every CpuModel while `calls` is set. */
let calls: Call[] | null = null;
const forward = CpuModel.prototype.forward;
CpuModel.prototype.forward = function (this: CpuModel, ids, opts) {
  calls?.push({ ids: [...ids], allLogits: opts?.allLogits === true, skipLogits: opts?.skipLogits === true });
  return forward.call(this, ids, opts);
};

async function recording<T>(fn: () => Promise<T>): Promise<{ result: T; calls: Call[] }> {
  const log: Call[] = [];
  calls = log;
  try {
    return { result: await fn(), calls: log };
  } finally {
    calls = null;
  }
}

/** What VS Code's configuration returns with nothing set: package.json's defaults. */
function defaultSettings() {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const props = pkg.contributes.configuration.properties as Record<string, { default?: unknown }>;
  return readSettings((key) => props[`sidewinder.${key}`]?.default);
}

/**
 * A small workspace: the exported functions of this repository's completion engine (bodies left out: the CPU
 * backend reads ~50 tokens a second here), a secret, and files that the walk options decide about.
 */
function workspace(): string {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-same-ws-'));
  fs.mkdirSync(path.join(ws, 'completion'));
  for (const f of ['complete.ts', 'fim.ts', 'stopRules.ts']) {
    const names = [...fs.readFileSync(path.join(REPO, 'src', 'engine', 'completion', f), 'utf8').matchAll(/^export (async )?function (\w+)/gm)];
    assert.ok(names.length > 0, f);
    fs.writeFileSync(path.join(ws, 'completion', f), names.map((m) => `export ${m[1] ?? ''}function ${m[2]}() {}\n`).join(''));
  }
  fs.writeFileSync(path.join(ws, '.env'), 'TOKEN=not-for-the-model\n'); // secret
  // Generated text (long lines) either side of the default size limit: skipped as 'generated' when read, as
  // 'too-large' unread. Which file gets which reason says which maxFileBytes each path used (cheaply: neither
  // is ever tokenized).
  const longLines = (bytes: number) => ('x'.repeat(4000) + '\n').repeat(Math.ceil(bytes / 4001)).slice(0, bytes);
  fs.writeFileSync(path.join(ws, 'gen-300k.txt'), longLines(300 * 1024));
  fs.writeFileSync(path.join(ws, 'gen-600k.txt'), longLines(600 * 1024));
  return ws;
}

/** The engine server in this process with the real backend, spoken to as the extension host does. */
function engineServer() {
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; stream: unknown[] }>();
  const server = new EngineServer(
    (m: EngineToHost) => {
      if (m.type === 'stream') waiting.get(m.id)?.stream.push(m.data);
      else if (m.type === 'response') {
        const w = waiting.get(m.id)!;
        waiting.delete(m.id);
        if (m.ok) w.resolve({ result: m.result, stream: w.stream });
        else w.reject(new Error(`${m.error.name}: ${m.error.message}`));
      }
    },
    engineBackend,
    { memoryIntervalMs: 0 },
  );
  const request = <T>(kind: string, params: unknown) =>
    new Promise<{ result: T; stream: unknown[] }>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, stream: [] });
      server.handle({ type: 'request', id, kind, params });
    });
  return { server, request };
}

function capture(): CliStreams & { text: () => string } {
  let out = '';
  return { out: { write: (s: string) => (out += s) }, err: { write: () => true }, text: () => out };
}

async function cli(cmd: typeof cmdAsk, argv: string[]): Promise<Record<string, unknown>> {
  const io = capture();
  await cmd(argv, io);
  return JSON.parse(io.text());
}

test('the chat and `ask` feed the model the same tokens and give the same answer (bundled model, CPU)', async (t) => {
  const t0 = performance.now();
  const lap = (what: string) => t.diagnostic(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  assert.ok(fs.existsSync(path.join(MODEL, 'config.json')), `${MODEL} is part of the repository`);
  const ws = workspace();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-same-cache-'));
  const settings = defaultSettings();
  // The defaults are one: the CLI's are the engine's, and so are the extension's.
  assert.equal(settings.maxFileKB * 1024, DEFAULT_MAX_FILE_BYTES);
  assert.deepEqual(settings.extraIgnore, []);
  assert.equal(settings.chat.maxAnswerTokens, DEFAULT_ANSWER_TOKENS);
  const { server, request } = engineServer();
  try {
    // ---- the chat: load, sync the folder, ask, with what the extension sends at its default settings ----
    const load: LoadParams = {
      modelDir: MODEL,
      backend: 'cpu',
      cacheDir: path.join(tmp, 'extension'),
      kvGpuBudgetBytes: settings.kvGpuBudgetMB * 2 ** 20,
      kvHostBudgetBytes: settings.kvHostBudgetMB * 2 ** 20,
    };
    await request('load', load);
    const chatSync = await recording(() => request<SyncResult>('sync', syncParams(ws, settings)));
    const chatAsk = await recording(() => request<AskResult>('ask', askParams(ws, QUESTION, settings)));
    const chat = chatAsk.result.result;
    lap(`chat: ${chatSync.result.result.tokens} tokens read, answered ${chat.answer}`);
    assert.equal(chat.stoppedBy, 'eos');
    assert.equal((chatAsk.result.stream as { text: string }[]).map((d) => d.text).join('').trim(), chat.answer);

    // ---- the CLI: `ask` on its own (reads the workspace, then answers) ----
    const base = ['--workspace', ws, '--backend', 'cpu'];
    const fresh = await recording(() => cli(cmdAsk, [...base, '--no-cache', '--json', QUESTION]));
    assert.deepEqual(fresh.calls, [...chatSync.calls, ...chatAsk.calls], 'ask feeds the model what the chat feeds it (sync, then the question)');
    assert.equal(fresh.result.answer, chat.answer);
    lap('CLI ask');

    // ---- the CLI: `ingest`, then `ask` on the snapshot it saved ----
    const ingest = await recording(() => cli(cmdIngest, [...base, '--cache-dir', path.join(tmp, 'cli'), '--json']));
    assert.deepEqual(ingest.calls, chatSync.calls, 'ingest reads the workspace into the same tokens');
    assert.deepEqual(ingest.result.skipped, chatSync.result.result.skipped);
    assert.equal(ingest.result.tokens, chatSync.result.result.tokens);
    assert.equal(ingest.result.files, chatSync.result.result.files);
    const resumed = await recording(() => cli(cmdAsk, [...base, '--cache-dir', path.join(tmp, 'cli'), '--json', QUESTION]));
    assert.equal(resumed.result.resumedFromSnapshot, true);
    assert.deepEqual(resumed.calls, chatAsk.calls, 'the question goes in as the same tokens');
    assert.equal(resumed.result.answer, chat.answer);
    lap('CLI ingest, ask');

    // What the calls hold: the files read (the 300 KB generated file read and skipped, the 600 KB one too large,
    // the secret never opened), then the question as the bundled model was trained to read it, then the answer.
    assert.deepEqual(chatSync.result.result.skipped, { secret: 1, generated: 1, 'too-large': 1 });
    assert.equal(chatSync.result.result.files, 3);
    const tok = TextTokenizer.load(MODEL);
    assert.ok(tok.special.fileIndex && tok.special.fileSep !== null);
    const fed = chatAsk.calls.flatMap((c) => c.ids);
    const prompt = [tok.special.fileSep, ...tok.encode('Question: Where is `completeAt` defined?\nAnswer:')];
    assert.deepEqual(fed.slice(0, prompt.length), prompt, 'the question, canonicalised');
    const answerIds = resumed.result.ids as number[];
    assert.deepEqual(fed.slice(prompt.length), answerIds, 'then each answer token (the end of text is not fed)');
    assert.ok(answerIds.length > 0 && /^`[^`]+`$/.test(chat.answer), `a path of the workspace: ${chat.answer}`);
    assert.ok(chatSync.calls.length > 0 && chatSync.calls.every((c) => c.skipLogits));
  } finally {
    server.dispose();
    fs.rmSync(ws, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
