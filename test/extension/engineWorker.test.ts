// The real engine process (dist/engineWorker.js) driven through EngineClient + forkEngine exactly as the
// extension does: a tiny fixture model, a temporary workspace, questions, completions, cancellation,
// snapshots, shutdown. The CPU backend always runs; WebGPU runs where an adapter exists (lavapipe in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EngineClient, EngineExitedError, forkEngine } from '../../src/extension/engineClient';
import { EngineRequestError, PROTOCOL_VERSION, type EngineEvent, type SyncResult } from '../../src/extension/protocol';

const REPO = path.resolve(__dirname, '..', '..');
const WORKER = path.join(REPO, 'dist', 'engineWorker.js');
const MODEL = path.join(REPO, 'test', 'fixtures', 'granite-moe-rope');

function workspace(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-ws-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'src', 'add.ts'), 'export function add(a: number, b: number) {\n  return a + b;\n}\n');
  fs.writeFileSync(path.join(dir, 'README.md'), '# Demo\nThis project adds numbers.\n');
  return dir;
}

function start(): { client: EngineClient; events: EngineEvent[]; stderr: string[] } {
  const stderr: string[] = [];
  const client = new EngineClient(forkEngine(WORKER, { onStderr: (l) => stderr.push(l) }));
  const events: EngineEvent[] = [];
  client.onEvent((e) => events.push(e));
  return { client, events, stderr };
}

async function sync(client: EngineClient, folder: string): Promise<SyncResult> {
  return client.request('sync', { folder, maxFileBytes: 512 * 1024, extraIgnore: [] });
}

for (const backend of ['cpu', 'webgpu'] as const) {
  test(`engine process on ${backend}: load, ingest, ask, complete, cancel, snapshot, shutdown`, async (t) => {
    assert.ok(fs.existsSync(WORKER), 'build first (node esbuild.js)');
    const ws = workspace();
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const { client, events, stderr } = start();
    try {
      const hello = await client.request('hello', { protocolVersion: PROTOCOL_VERSION });
      assert.equal(hello.protocolVersion, PROTOCOL_VERSION);
      assert.notEqual(hello.pid, process.pid, 'the engine runs in its own process');
      let info;
      try {
        info = await client.request('load', { modelDir: MODEL, backend, cacheDir, kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 });
      } catch (e) {
        if (backend === 'webgpu' && e instanceof EngineRequestError && e.name === 'WebGPUNotAvailableError') {
          t.skip(`no WebGPU adapter here: ${e.message}`);
          return;
        }
        throw e;
      }
      assert.equal(info.backend, backend);
      assert.equal(info.architecture, 'granitemoehybrid');
      assert.ok(info.layers.mamba > 0 && info.layers.attention > 0);
      if (backend === 'webgpu') assert.ok(info.adapter, 'adapter description');

      const progress: string[] = [];
      const first = await client.request('sync', { folder: ws, maxFileBytes: 512 * 1024, extraIgnore: [] }, { onStream: (p) => progress.push(p.phase) });
      assert.equal(first.files, 2);
      assert.ok(first.tokens > 0);
      assert.ok(progress.includes('ingesting') && progress.at(-1) === 'done', progress.join(','));
      assert.ok(events.some((e) => e.kind === 'memory' && e.folder === ws));

      // Ask: streamed deltas add up to the answer; the state is back where it was.
      let streamed = '';
      const answer = await client.request('ask', { folder: ws, question: 'What does add do?', maxNewTokens: 6 }, { onStream: (d) => (streamed += d.text) });
      assert.ok(answer.tokens > 0 && answer.tokens <= 6);
      assert.equal(streamed.trim(), answer.answer);
      assert.equal((await client.request('memory', {})).tokens, first.tokens);

      // Complete: fill-in-the-middle on the fixture's FIM tokens.
      const c = await client.request('complete', { folder: ws, path: 'src/mul.ts', prefix: 'export function mul(a, b) {\n  ', suffix: '\n}\n', maxTokens: 6, maxLines: 4 });
      assert.ok(['done', 'length'].includes(c.reason), c.reason);
      assert.equal(c.mode, info.fim ? 'fim' : 'prefix-only');
      assert.equal((await client.request('memory', {})).tokens, first.tokens);

      // Cancel a long answer once it has started: the engine stops and answers.
      const ac = new AbortController();
      const cancelled = await client.request('ask', { folder: ws, question: 'Explain everything.', maxNewTokens: 2000 }, { signal: ac.signal, onStream: () => ac.abort() });
      assert.equal(cancelled.stoppedBy, 'cancelled');
      assert.ok(cancelled.tokens < 2000);
      assert.equal((await client.request('memory', {})).tokens, first.tokens);

      // A change is read again; with no change nothing is.
      fs.writeFileSync(path.join(ws, 'src', 'add.ts'), 'export function add(a: number, b: number) {\n  return b + a;\n}\n');
      const second = await sync(client, ws);
      assert.ok(second.reingestedTokens > 0, JSON.stringify(second));
      const third = await sync(client, ws);
      assert.deepEqual([third.resumedFromSnapshot, third.reingestedTokens, third.tokens], [true, 0, second.tokens]);

      const exited = new Promise<EngineExitedError>((res) => client.onExit(res));
      await client.request('shutdown', {});
      const exit = await exited;
      assert.equal(exit.code, 0, stderr.join('\n'));

      // Recovery: a new engine process (a new device) gets the workspace back from the snapshot.
      const again = start().client;
      try {
        await again.request('load', { modelDir: MODEL, backend, cacheDir, kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 });
        const restored = await sync(again, ws);
        assert.deepEqual([restored.resumedFromSnapshot, restored.reingestedTokens, restored.tokens], [true, 0, second.tokens]);
      } finally {
        again.kill();
      }
    } finally {
      client.kill();
      fs.rmSync(ws, { recursive: true, force: true });
      fs.rmSync(cacheDir, { recursive: true, force: true });
    }
  });
}

test('a missing model folder is a named error, and the engine keeps running', async () => {
  const { client } = start();
  try {
    await assert.rejects(
      client.request('load', { modelDir: path.join(os.tmpdir(), 'no-such-model'), backend: 'cpu', cacheDir: os.tmpdir(), kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 }),
      (e: unknown) => e instanceof EngineRequestError && e.name === 'ModelFormatError',
    );
    assert.equal((await client.request('memory', {})).memory, null);
  } finally {
    client.kill();
  }
});

test('a killed engine rejects its open requests (the host then starts a new one)', async () => {
  const { client } = start();
  await client.request('hello', { protocolVersion: PROTOCOL_VERSION });
  const loading = client.request('load', { modelDir: MODEL, backend: 'cpu', cacheDir: os.tmpdir(), kvGpuBudgetBytes: 0, kvHostBudgetBytes: 0 });
  client.kill();
  await assert.rejects(loading, EngineExitedError);
  assert.equal(client.alive, false);
});
