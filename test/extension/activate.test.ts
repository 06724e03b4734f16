// activate() against a fake `vscode` module (fakeVscode.ts) and the real engine process (CPU backend, a fixture
// model): registrations, Restricted Mode, trust granted without a reload, the missing-model message, ingest
// with progress, a question streamed into the chat, hostile webview messages, a completion, and nothing left
// running after deactivate().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import Module from 'module';
import * as os from 'os';
import * as path from 'path';
import { createFakeVscode, Position, Range, Uri, type FakeVscode } from './fakeVscode';

const REPO = path.resolve(__dirname, '..', '..');
const MODEL = path.join(REPO, 'test', 'fixtures', 'granite-moe-rope');

// `require('vscode')` in the extension resolves to whichever fake the running test made.
let current: FakeVscode | null = null;
const exportsProxy: Record<string, unknown> = {};
for (const key of Object.keys(createFakeVscode({ trusted: true, folders: [], settings: {} }).vscode)) {
  Object.defineProperty(exportsProxy, key, { enumerable: true, get: () => (current!.vscode as Record<string, unknown>)[key] });
}
const M = Module as unknown as { _resolveFilename: (r: string, ...rest: unknown[]) => string };
const resolve = M._resolveFilename;
M._resolveFilename = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? 'vscode' : resolve.call(this, request, ...rest);
};
require.cache['vscode'] = { id: 'vscode', filename: 'vscode', loaded: true, exports: exportsProxy } as NodeJS.Module;
// Loaded after the fake is in place (esbuild keeps a require() lazy).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ext = require('../../src/extension/extension') as typeof import('../../src/extension/extension');

function context(extensionPath: string, storage: string) {
  const state = new Map<string, unknown>();
  return {
    subscriptions: [] as { dispose(): unknown }[],
    extensionPath,
    extensionUri: Uri.file(extensionPath),
    globalStorageUri: Uri.file(storage),
    workspaceState: { get: <T>(k: string, d?: T) => (state.has(k) ? (state.get(k) as T) : d), update: async (k: string, v: unknown) => void state.set(k, v), keys: () => [...state.keys()] },
    extension: { packageJSON: JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) },
  };
}

/** An extension folder with this build's dist/ (and no bundled model). */
function extensionDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-ext-'));
  fs.symlinkSync(path.join(REPO, 'dist'), path.join(dir, 'dist'));
  return dir;
}

function workspace(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-ws-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'src', 'add.ts'), 'export function add(a: number, b: number) {\n  return a + b;\n}\n');
  return dir;
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Command lines of this process's children that run the engine (from /proc: Linux, as CI). */
function engineProcesses(): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (ppid === process.pid && cmd.includes('engineWorker.js') && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) found.push(cmd);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

async function shutdown(c: ReturnType<typeof context>): Promise<void> {
  await ext.deactivate();
  for (const d of c.subscriptions) d.dispose();
}

const packageCommands: string[] = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).contributes.commands.map((c: { command: string }) => c.command);

test('Restricted Mode: registers everything, reads nothing; trust starts it without a reload', async () => {
  const ws = workspace();
  current = createFakeVscode({ trusted: false, folders: [ws], settings: {} });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    for (const id of packageCommands) assert.ok(f.commands.has(id), `command ${id} registered`);
    assert.ok(f.viewProviders.has('sidewinder.chat'));
    assert.equal(f.inlineProviders.length, 1);
    assert.ok(c.subscriptions.length >= packageCommands.length + 5);
    assert.ok(c.subscriptions.every((d) => typeof d.dispose === 'function'));
    const gauge = f.statusItems[0];
    assert.ok(gauge.shown);
    assert.equal(gauge.text, '$(shield) Sidewinder');
    assert.equal(gauge.command, 'sidewinder.showMemory');
    assert.equal(f.progress.length, 0, 'no ingest in Restricted Mode');
    assert.deepEqual(engineProcesses(), []);

    await f.commands.get('sidewinder.ask')!();
    assert.match(f.messages.at(-1)!.text, /only when it is trusted/);

    // Trust granted: the ingest starts; with no model configured or bundled, the user is told how to fix it.
    f.grantTrust();
    await until('the missing-model message', () => f.messages.some((m) => m.items.includes('Select Model')));
    const m = f.messages.find((x) => x.items.includes('Select Model'))!;
    assert.deepEqual(m.items, ['Select Model', 'Download Model']);
    assert.match(m.text, /No Sidewinder model is configured/);
    assert.equal(gauge.text, '$(error) Sidewinder');
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('trusted workspace: ingest with progress, a question streamed to the chat, a completion, clean deactivate', { timeout: 120_000 }, async () => {
  const ws = workspace();
  current = createFakeVscode({
    trusted: true,
    folders: [ws],
    settings: { 'sidewinder.model': MODEL, 'sidewinder.backend': 'cpu', 'sidewinder.chat.maxAnswerTokens': 8, 'sidewinder.completion.maxTokens': 4 },
  });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the ingest', () => f.log.some((l) => /tokens in the state/.test(l)));
    assert.equal(engineProcesses().length, 1, 'one engine process per window');
    const p = f.progress[0];
    assert.equal(p.title, `Sidewinder: reading ${path.basename(ws)}`);
    assert.equal(p.cancellable, true);
    assert.ok(p.reports.some((r) => /files/.test(r.message ?? '')), JSON.stringify(p.reports));
    const gauge = f.statusItems[0];
    await until('the gauge', () => /^\$\(database\) [\d.]+ (KB|MB)$/.test(gauge.text));
    assert.match((gauge.tooltip as { value: string }).value, /Total in memory/);

    // Ask from the palette: the chat view opens, and the answer streams into it.
    f.setInputBox('What does add do?');
    const asking = f.commands.get('sidewinder.ask')!();
    await until('the chat view', () => f.chat.resolved);
    assert.match(f.chat.html, /default-src 'none'/);
    assert.match(f.chat.html, /img-src https:\/\/fake\.vscode-cdn\.net;/);
    f.chat.send({ type: 'ready' });
    await asking;
    await until('the answer', () => f.chat.posted.some((m) => m.type === 'turnEnd'));
    const types = f.chat.posted.map((m) => m.type);
    assert.deepEqual(types.slice(0, 2), ['history', 'status']);
    assert.ok(types.includes('turnStart') && types.includes('delta'), types.join(','));
    const end = f.chat.posted.find((m) => m.type === 'turnEnd')!;
    assert.equal(end.error, undefined);
    assert.ok(typeof end.answer === 'string');
    const history = c.workspaceState.get<{ question: string }[]>('sidewinder.chatHistory', []) ?? [];
    assert.deepEqual(history.map((t) => t.question), ['What does add do?']);

    // Hostile messages from the webview are refused.
    f.chat.send({ type: 'openFile', path: '/etc/passwd' });
    f.chat.send({ type: 'openFile', path: '../../../etc/passwd' });
    await until('the refusals', () => f.messages.filter((m) => /not a file in this workspace/.test(m.text)).length === 2);
    f.chat.send({ type: 'eval', code: 'process.exit()' });
    await until('the log line', () => f.log.some((l) => /rejected a message from the webview/.test(l)));

    // A completion at the end of the function body.
    const file = path.join(ws, 'src', 'add.ts');
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.split('\n');
    const offsetAt = (pos: Position) => lines.slice(0, pos.line).reduce((n, l) => n + l.length + 1, 0) + pos.character;
    const positionAt = (o: number) => {
      const clamped = Math.max(0, Math.min(o, text.length));
      const before = text.slice(0, clamped).split('\n');
      return new Position(before.length - 1, before.at(-1)!.length);
    };
    const doc = { uri: Uri.file(file), offsetAt, positionAt, getText: (r?: Range) => (r ? text.slice(offsetAt(r.start), offsetAt(r.end)) : text) };
    const provider = f.inlineProviders[0] as { provideInlineCompletionItems(...a: unknown[]): Promise<unknown[]> };
    const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose: () => undefined }) };
    const items = await provider.provideInlineCompletionItems(doc, new Position(1, 2), { triggerKind: 0, selectedCompletionInfo: undefined }, token);
    assert.ok(Array.isArray(items));
    assert.ok(f.log.some((l) => /^trace completion: (done|length)/.test(l)), f.log.filter((l) => /completion/.test(l)).join('\n'));
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
  await until('the engine to end', () => engineProcesses().length === 0, 5000);
});
