// The host <-> engine protocol end to end in one process: EngineClient talking to EngineServer through an
// in-memory transport that serialises like the IPC channel, with a scripted fake model. Covers streaming,
// cancellation, serialisation of model work, completions with stop rules, errors and device loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelConfig } from '../../src/engine/config';
import type { IngestProgress, IngestReport, SyncOptions } from '../../src/engine/ingest';
import type { LanguageModel, MemoryReport, ModelState, StateMark } from '../../src/engine/model';
import { EngineClient, EngineExitedError, type EngineTransport } from '../../src/extension/engineClient';
import { EngineServer, type EngineBackend, type EngineTokenizer, type LoadedModel } from '../../src/extension/engineServer';
import { EngineRequestError, PROTOCOL_VERSION, type EngineEvent, type LoadParams } from '../../src/extension/protocol';

// ---- a scripted model: after each prompt it "generates" `script`, one character per step, then EOS ---------

const EOS = 0;
const SPECIAL = { eos: EOS, fimPrefix: 1, fimSuffix: 2, fimMiddle: 3, fimPad: null, fileSep: 4, fileName: null, fileFooter: false, fileDefs: false, fileIndex: false, questionKinds: false };
const OFFSET = 10; // character c is token c.charCodeAt(0) + OFFSET
const VOCAB = OFFSET + 128;

const tokenizer: EngineTokenizer = {
  special: SPECIAL,
  encode: (s) => Array.from(s, (c) => (c.charCodeAt(0) % 128) + OFFSET),
  decode: (ids) => ids.filter((i) => i >= OFFSET).map((i) => String.fromCharCode(i - OFFSET)).join(''),
};

class ScriptedModel implements LanguageModel {
  readonly config = { architecture: 'granitemoehybrid', layerKinds: ['mamba', 'mamba', 'attention'], eosTokenIds: [EOS] } as unknown as ModelConfig;
  position = 0;
  script = '';
  stepDelayMs = 0;
  prompts: number[][] = [];
  private cursor = 0;

  async forward(ids: readonly number[]): Promise<Float32Array> {
    if (this.stepDelayMs) await new Promise((r) => setTimeout(r, this.stepDelayMs));
    if (ids.length > 1) {
      this.prompts.push([...ids]);
      this.cursor = 0;
    } else this.cursor++;
    this.position += ids.length;
    const logits = new Float32Array(VOCAB);
    const c = this.script[this.cursor];
    logits[c === undefined ? EOS : c.charCodeAt(0) + OFFSET] = 1;
    return logits;
  }
  reset(): void {
    this.position = 0;
  }
  memory(): MemoryReport {
    return { weightsBytes: 1000, stateBytes: 100, kvGpuBytes: this.position * 8, kvHostBytes: 0, kvDiskBytes: 0, scratchBytes: 10, kvBudgetBytes: 0 };
  }
  async exportState(): Promise<ModelState> {
    return { position: this.position, mamba: [], kv: [] };
  }
  async importState(s: ModelState): Promise<void> {
    this.position = s.position;
  }
  async fork(): Promise<StateMark> {
    return { position: this.position, release: () => undefined };
  }
  async rollback(mark: StateMark): Promise<void> {
    this.position = mark.position;
  }
  disposed = false;
  dispose(): void {
    this.disposed = true;
  }
}

/**
 * An ingest that "reads" `tokens` tokens in `chunks` steps, `delayMs` apart. With `resumeAt`, it goes through
 * the phases of a resumed sync as WorkspaceIngest does: scan, reset, restore the snapshot's `resumeAt` tokens,
 * read the rest, save.
 */
const chunkSizes: number[] = [];

function fakeIngest(model: ScriptedModel, tokens: number, chunks: number, delayMs: number, resumeAt?: number, seen: SyncOptions[] = []) {
  const at = (phase: IngestProgress['phase'], files: number): IngestProgress => ({ phase, files, filesTotal: chunks, tokens: model.position, tokensPerSecond: 1000, etaSeconds: 0 });
  return {
    async sync(opts: SyncOptions): Promise<IngestReport> {
      seen.push(opts);
      if (resumeAt !== undefined) opts.onProgress?.(at('scanning', 0));
      model.reset();
      const start = resumeAt ?? 0;
      if (resumeAt !== undefined) {
        opts.onProgress?.(at('restoring', 0));
        model.position = resumeAt;
      }
      let cancelled = false;
      for (let i = 1; i <= chunks; i++) {
        if (opts.signal?.aborted) {
          cancelled = true;
          break;
        }
        await new Promise((r) => setTimeout(r, delayMs));
        model.position = start + Math.round(((tokens - start) * i) / chunks);
        opts.onProgress?.(at('ingesting', i));
        chunkSizes.push(opts.chunkTokens?.() ?? -1); // what the next chunk would be
        await opts.yieldPoint?.(); // a chunk boundary: the state may be lent out
      }
      if (resumeAt !== undefined) opts.onProgress?.(at('saving', chunks));
      opts.onProgress?.(at('done', chunks));
      return {
        files: chunks,
        skipped: {},
        tokens: model.position,
        seconds: 0.01,
        restoreSeconds: 0,
        saveSeconds: 0,
        save: null,
        tokensPerSecond: 1000,
        resumedFromSnapshot: false,
        reingestedTokens: model.position,
        snapshot: null,
        snapshotProblem: null,
        cancelled,
        memory: model.memory(),
      };
    },
  };
}

interface Rig {
  client: EngineClient;
  server: EngineServer;
  model: ScriptedModel;
  events: EngineEvent[];
  exits: number[];
  lose(reason: string): void;
  ingestDelayMs: number;
  /** The options of every sync the fake ingest was given. */
  syncs: SyncOptions[];
}

function rig(opts: { loadError?: Error; resumeAt?: number; memoryMinGapMs?: number; memoryIntervalMs?: number; paths?: string[] } = {}): Rig {
  const model = new ScriptedModel();
  let lose: (r: string) => void = () => undefined;
  const r: Partial<Rig> = { model, events: [], exits: [], ingestDelayMs: 1, syncs: [] };
  const backend: EngineBackend = {
    async load(): Promise<LoadedModel> {
      if (opts.loadError) throw opts.loadError;
      return {
        model,
        // paths: a model trained with the file index (it answers with paths), over a folder of these files
        tokenizer: opts.paths ? { ...tokenizer, special: { ...SPECIAL, fileFooter: true, fileIndex: true } } : tokenizer,
        modelId: 'fake',
        adapter: 'fake adapter',
        lost: new Promise<string>((res) => (lose = res)),
        createIngest: () => ({ ...fakeIngest(model, 400, 4, r.ingestDelayMs!, opts.resumeAt, r.syncs), statePaths: () => opts.paths ?? [] }),
        dispose: () => model.dispose(),
      };
    },
    async download() {
      throw new Error('no downloads in this test');
    },
  };
  // Messages cross as JSON, asynchronously, as over the child process's IPC channel.
  const wire = <T>(m: T): T => JSON.parse(JSON.stringify(m));
  let toHost: ((m: unknown) => void) | null = null;
  let onExit: ((code: number | null, signal: string | null) => void) | null = null;
  const server = new EngineServer((m) => setImmediate(() => toHost?.(wire(m))), backend, {
    memoryIntervalMs: opts.memoryIntervalMs ?? 0,
    memoryMinGapMs: opts.memoryMinGapMs,
    exit: (code) => {
      r.exits!.push(code);
      setImmediate(() => onExit?.(code, null));
    },
  });
  const transport: EngineTransport = {
    send: (m) => setImmediate(() => server.handle(wire(m))),
    onMessage: (cb) => (toHost = cb),
    onExit: (cb) => (onExit = cb),
    kill: () => setImmediate(() => onExit?.(null, 'SIGKILL')),
  };
  const client = new EngineClient(transport);
  client.onEvent((e) => r.events!.push(e));
  return Object.assign(r, { client, server, lose: (reason: string) => lose(reason) }) as Rig;
}

const LOAD: LoadParams = { modelDir: '/m', backend: 'webgpu', cacheDir: '/c', kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 };
const SYNC = { folder: '/ws', maxFileBytes: 1 << 20, extraIgnore: [] };

async function loaded(): Promise<Rig> {
  const r = rig();
  await r.client.request('load', LOAD);
  await r.client.request('sync', SYNC);
  return r;
}

test('hello and load report the engine and the model', async () => {
  const r = rig();
  const hello = await r.client.request('hello', { protocolVersion: PROTOCOL_VERSION });
  assert.equal(hello.protocolVersion, PROTOCOL_VERSION);
  const info = await r.client.request('load', LOAD);
  assert.deepEqual(info.layers, { mamba: 2, attention: 1 });
  assert.equal(info.fim, true);
  assert.equal(info.adapter, 'fake adapter');
  assert.equal(info.memory.weightsBytes, 1000);
  r.server.dispose();
});

test('sync streams progress as an async iterable, then its result; memory reports follow', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  const stream = r.client.stream('sync', SYNC);
  const seen: IngestProgress[] = [];
  let result;
  for (;;) {
    const step = await stream.next();
    if (step.done) {
      result = step.value;
      break;
    }
    seen.push(step.value);
  }
  assert.deepEqual(
    seen.map((p) => p.tokens),
    [100, 200, 300, 400, 400],
  );
  assert.equal(result.tokens, 400);
  assert.equal(result.folder, '/ws');
  assert.ok(r.events.some((e) => e.kind === 'memory' && e.tokens === 400 && e.folder === '/ws'));
  const mem = await r.client.request('memory', {});
  assert.equal(mem.folder, '/ws');
  assert.equal(mem.memory?.kvGpuBytes, 3200);
  r.server.dispose();
});

test('memory is pushed as it changes: load, state reset, snapshot restored, each chunk, saved, answers, completions', async () => {
  // No fallback timer (memoryIntervalMs: 0 in the rig) and no gap between chunk reports.
  const r = rig({ resumeAt: 160, memoryMinGapMs: 0 });
  const memory = () => r.events.filter((e): e is Extract<EngineEvent, { kind: 'memory' }> => e.kind === 'memory');
  await r.client.request('load', LOAD);
  assert.deepEqual(memory().map((e) => e.tokens), [0], 'a report after load');
  r.model.position = 50; // what an earlier sync left in the state
  const phases: string[] = [];
  await r.client.request('sync', SYNC, { onStream: (p) => phases.push(p.phase) });
  assert.deepEqual(phases, ['scanning', 'restoring', 'ingesting', 'ingesting', 'ingesting', 'ingesting', 'saving', 'done']);
  // Nothing at 'scanning' (the old state is still there); 0 once it is reset; then the restored snapshot's 160
  // tokens grown by each chunk; saved; done; and the result with the folder loaded.
  const sync = memory().slice(1);
  assert.deepEqual(sync.map((e) => e.tokens), [0, 220, 280, 340, 400, 400, 400, 400]);
  assert.deepEqual(sync.map((e) => e.folder), [null, null, null, null, null, null, null, '/ws']);
  assert.equal(sync[4].memory.kvGpuBytes, 400 * 8);

  const before = memory().length;
  r.model.script = 'abc';
  await r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 8 });
  const asked = memory().slice(before);
  assert.ok(asked.length >= 2, 'reports while the answer grows, and after it');
  assert.ok(asked.slice(0, -1).some((e) => e.tokens > 400), 'the fork holds the question and the answer');
  assert.equal(asked.at(-1)!.tokens, 400, 'rolled back after the answer');

  const beforeCompletion = memory().length;
  r.model.script = 'x;\n';
  await r.client.request('complete', { folder: '/ws', path: 'a.ts', prefix: 'let y = ', suffix: '', maxTokens: 4, maxLines: 1 });
  assert.equal(memory().length, beforeCompletion + 1, 'one report after a completion');
  assert.equal(memory().at(-1)!.tokens, 400);
  r.server.dispose();
});

test('ingest chunk reports are spaced by memoryMinGapMs; phase changes always report', async () => {
  const r = rig({ memoryMinGapMs: 10_000 });
  await r.client.request('load', LOAD);
  await r.client.request('sync', SYNC);
  const tokens = r.events.flatMap((e) => (e.kind === 'memory' ? [e.tokens] : []));
  // load; the first chunk (a new phase); 'done'; the result. The other three chunks fall inside the gap.
  assert.deepEqual(tokens, [0, 100, 400, 400]);
  r.server.dispose();
});

test('the fallback report comes only when nothing was pushed for a whole period', async () => {
  const r = rig({ memoryIntervalMs: 60 });
  const count = () => r.events.filter((e) => e.kind === 'memory').length;
  await r.client.request('load', LOAD);
  assert.equal(count(), 1);
  await new Promise((res) => setTimeout(res, 200));
  const quiet = count() - 1;
  assert.ok(quiet >= 2 && quiet <= 4, `about one report per period while idle (got ${quiet})`);
  r.server.dispose();
  const after = count();
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(count(), after, 'none after dispose');
});

test('a question before the folder is loaded is refused with a named error', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  await assert.rejects(r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 4 }), (e: unknown) => {
    assert.ok(e instanceof EngineRequestError);
    assert.equal(e.name, 'NotLoadedError');
    return true;
  });
  r.server.dispose();
});

test('ask streams the answer on a fork of the state and rolls it back', async () => {
  const r = await loaded();
  r.model.script = 'The ingest is in src/engine/ingest.ts.';
  const deltas: string[] = [];
  const stream = r.client.stream('ask', { folder: '/ws', question: 'Where is ingest?', maxNewTokens: 100 });
  let result;
  for (;;) {
    const step = await stream.next();
    if (step.done) {
      result = step.value;
      break;
    }
    deltas.push(step.value.text);
  }
  assert.equal(deltas.join(''), r.model.script);
  assert.ok(deltas.length > 1);
  assert.deepEqual(result, { answer: r.model.script, tokens: r.model.script.length, stoppedBy: 'eos' });
  assert.equal(r.model.position, 400, 'the workspace state is restored after the question');
  // The prompt is the question framed as one more file after the workspace.
  assert.equal(r.model.prompts.at(-1)![0], SPECIAL.fileSep);
  const limited = await r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 5 });
  assert.deepEqual(limited, { answer: 'The i', tokens: 5, stoppedBy: 'length' });
  r.server.dispose();
});

test('a path-answering model names a file of the folder, and says so when asked something else', async () => {
  const r = rig({ paths: ['src/a.ts', 'lib/b.py'] });
  await r.client.request('load', LOAD);
  await r.client.request('sync', SYNC);
  r.model.script = 'src/c.ts is not a file of the folder';
  const other = await r.client.request('ask', { folder: '/ws', question: 'What does ingest do?', maxNewTokens: 40 });
  assert.ok(['`src/a.ts`', '`lib/b.py`'].includes(other.answer), other.answer);
  assert.equal(other.stoppedBy, 'eos');
  assert.match(other.note ?? '', /Where is NAME defined/);
  const lookup = await r.client.request('ask', { folder: '/ws', question: 'where is ingest defined', maxNewTokens: 40 });
  assert.ok(['`src/a.ts`', '`lib/b.py`'].includes(lookup.answer), lookup.answer);
  assert.equal(lookup.note, undefined);
  // The question reached the model as it was trained to read it.
  assert.equal(tokenizer.decode(r.model.prompts.at(-1)!), 'Question: Where is `ingest` defined?\nAnswer:');
  r.server.dispose();
});

test('cancelling a question stops generation; the engine still answers and is free again', async () => {
  const r = await loaded();
  r.model.script = 'x'.repeat(500);
  r.model.stepDelayMs = 2;
  const ac = new AbortController();
  let deltas = 0;
  const result = await r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 500 }, {
    signal: ac.signal,
    onStream: () => {
      if (++deltas === 3) ac.abort();
    },
  });
  assert.equal(result.stoppedBy, 'cancelled');
  assert.ok(result.tokens < 100, `stopped early (${result.tokens} tokens)`);
  assert.equal(r.model.position, 400);
  r.model.stepDelayMs = 0;
  r.model.script = 'ok';
  assert.equal((await r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 10 })).answer, 'ok');
  r.server.dispose();
});

test('complete: FIM prompt, stop rules, and the state restored', async () => {
  const r = await loaded();
  r.model.script = 'return 1;\n}\n\nfunction g() {\n';
  const base = { folder: '/ws', path: 'src/a.ts', prefix: 'function f() {\n  ', maxTokens: 64, maxLines: 8 };
  const open = await r.client.request('complete', { ...base, suffix: '' });
  assert.equal(open.text, 'return 1;\n}'); // the block's closing brace, then stop
  assert.equal(open.reason, 'done');
  assert.equal(open.mode, 'fim');
  const prompt = r.model.prompts.at(-1)!;
  assert.equal(prompt[0], SPECIAL.fileSep);
  assert.deepEqual(prompt.slice(-1), [SPECIAL.fimMiddle]);
  assert.ok(prompt.includes(SPECIAL.fimPrefix) && prompt.includes(SPECIAL.fimSuffix));
  const closed = await r.client.request('complete', { ...base, suffix: '\n}\n' });
  assert.equal(closed.text, 'return 1;'); // the suffix already closes the block
  assert.equal(r.model.position, 400);
  // Not the loaded folder: nothing, at once.
  assert.equal((await r.client.request('complete', { ...base, folder: '/other', suffix: '' })).reason, 'not-loaded');
  r.server.dispose();
});

test('a completion during the first ingest is served at the next chunk boundary, on what is read so far', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  r.ingestDelayMs = 40;
  r.model.script = 'ok';
  let syncDone = false;
  const sync = r.client.request('sync', SYNC).finally(() => (syncDone = true));
  await new Promise((res) => setTimeout(res, 10));
  let positionAtPrompt = -1;
  const forward = r.model.forward.bind(r.model);
  r.model.forward = async (ids) => {
    if (ids.length > 1 && positionAtPrompt < 0) positionAtPrompt = r.model.position;
    return forward(ids);
  };
  const c = await r.client.request('complete', { folder: '/ws', path: 'a.ts', prefix: 'x', suffix: '', maxTokens: 4, maxLines: 1 });
  assert.equal(c.text, 'ok');
  assert.ok(!syncDone, 'answered while the ingest still runs');
  assert.equal(positionAtPrompt, 100, 'completed at the first chunk boundary, on the first chunk\'s 100 of 400 tokens');
  const res = await sync;
  assert.equal(res.tokens, 400, 'the ingest went on from where it lent the state: nothing lost');
  assert.equal(r.model.position, 400);
  r.server.dispose();
});

test('sync chunks are cut to a time, not a token count: small before the speed is known, then what takes ~1 s', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  r.ingestDelayMs = 100; // 100 tokens per 100 ms chunk: 1 ms a token (or more, on a slow machine)
  chunkSizes.length = 0;
  await r.client.request('sync', SYNC);
  assert.equal(chunkSizes[0], 256, 'the first chunk, before any is measured');
  for (const n of chunkSizes.slice(1)) assert.ok(n >= 64 && n < 2048 && n <= 1000, `then chunks of ~1 s: ${chunkSizes.join(',')}`);
  r.server.dispose();
});

test('a completion during a streaming answer runs between its tokens; the answer is unchanged', async () => {
  const r = await loaded();
  r.model.script = 'abcdefghij';
  r.model.stepDelayMs = 5;
  const deltas: string[] = [];
  const asking = r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 10 }, { onStream: (d) => deltas.push(d.text) });
  await new Promise((res) => setTimeout(res, 20));
  const c = await r.client.request('complete', { folder: '/ws', path: 'a.ts', prefix: 'x', suffix: '', maxTokens: 2, maxLines: 1 });
  assert.equal(c.reason === 'done' || c.reason === 'length', true, `completion ${c.reason}`);
  assert.ok(deltas.join('').length < 10, 'the completion came back before the answer was done');
  const a = await asking;
  assert.ok(a.answer.length > 0);
  assert.equal(r.model.position, 400, 'every fork rolled back');
  r.server.dispose();
});

test('a completion cancelled while it waits is answered at once and never runs', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  r.ingestDelayMs = 60;
  const sync = r.client.request('sync', SYNC);
  await new Promise((res) => setTimeout(res, 10));
  const prompts = r.model.prompts.length;
  const ac = new AbortController();
  let syncDone = false;
  void sync.finally(() => (syncDone = true));
  const pending = r.client.request('complete', { folder: '/ws', path: 'a.ts', prefix: 'x', suffix: '', maxTokens: 4, maxLines: 1 }, { signal: ac.signal });
  setTimeout(() => ac.abort(), 5);
  assert.equal((await pending).reason, 'cancelled');
  assert.ok(!syncDone, 'answered while the ingest still runs, not at its end');
  await sync;
  assert.equal(r.model.prompts.length, prompts, 'the cancelled completion never ran');
  r.server.dispose();
});

test('syncing the folder the state holds says so (nothing restored when nothing changed); another folder clears it', async () => {
  const r = await loaded();
  assert.equal(r.syncs.at(-1)!.stateHeld, false, 'the first sync has nothing to keep');
  await r.client.request('sync', SYNC);
  assert.equal(r.syncs.at(-1)!.stateHeld, true);
  await r.client.request('sync', { ...SYNC, folder: '/other' });
  assert.equal(r.syncs.at(-1)!.stateHeld, false);
  await r.client.request('sync', SYNC);
  assert.equal(r.syncs.at(-1)!.stateHeld, false, 'the state was another folder\'s meanwhile');
  r.server.dispose();
});

test('cancelling a sync leaves the engine usable', async () => {
  const r = rig();
  await r.client.request('load', LOAD);
  r.ingestDelayMs = 20;
  const ac = new AbortController();
  const pending = r.client.request('sync', SYNC, { signal: ac.signal, onStream: () => ac.abort() });
  const res = await pending;
  assert.equal(res.cancelled, true);
  assert.ok(res.tokens < 400);
  r.model.script = 'a';
  assert.equal((await r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 3 })).answer, 'a');
  r.server.dispose();
});

test('load errors keep their name (the host offers the fix for each)', async () => {
  const e = new Error('No WebGPU adapter is available (requestAdapter returned null).');
  e.name = 'WebGPUNotAvailableError';
  const r = rig({ loadError: e });
  await assert.rejects(r.client.request('load', LOAD), (err: unknown) => err instanceof EngineRequestError && err.name === 'WebGPUNotAvailableError' && /adapter/.test(err.message));
  r.server.dispose();
});

test('device lost: the engine reports it, frees the model and exits; open requests reject', async () => {
  const r = await loaded();
  r.model.script = 'y'.repeat(1000);
  r.model.stepDelayMs = 2;
  const exited = new Promise<EngineExitedError>((res) => r.client.onExit(res));
  const asking = r.client.request('ask', { folder: '/ws', question: 'q', maxNewTokens: 1000 });
  await new Promise((res) => setTimeout(res, 10));
  r.lose('DXGI_ERROR_DEVICE_REMOVED');
  const exit = await exited;
  assert.ok(exit instanceof EngineExitedError);
  assert.deepEqual(r.exits, [3]);
  assert.ok(r.events.some((e) => e.kind === 'deviceLost' && e.reason === 'DXGI_ERROR_DEVICE_REMOVED'));
  assert.ok(r.model.disposed);
  await assert.rejects(asking);
  assert.equal(r.client.alive, false);
  await assert.rejects(r.client.request('memory', {}), EngineExitedError);
});

test('shutdown answers, then ends the engine', async () => {
  const r = await loaded();
  const exited = new Promise((res) => r.client.onExit(res));
  assert.deepEqual(await r.client.request('shutdown', {}), {});
  await exited;
  assert.deepEqual(r.exits, [0]);
  assert.ok(r.model.disposed);
});

test('malformed messages to the engine are ignored with a log line', async () => {
  const r = await loaded();
  r.server.handle({ type: 'request', id: 99, kind: 'format-disk', params: {} });
  r.server.handle('garbage');
  await new Promise((res) => setTimeout(res, 5));
  assert.equal(r.events.filter((e) => e.kind === 'log' && e.level === 'warn').length, 2);
  assert.equal((await r.client.request('memory', {})).folder, '/ws');
  r.server.dispose();
});
