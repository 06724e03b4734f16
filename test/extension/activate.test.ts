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
import { readSettings } from '../../src/extension/settings';
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
  return enginePids().map((p) => p.cmd);
}

/** Process ids and command lines of this process's live children that run the engine. */
function enginePids(): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (ppid === process.pid && cmd.includes('engineWorker.js') && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) found.push({ pid: Number(pid), cmd });
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

/** The indexer's log line for each finished sync. */
/** Sidewinder: Ask About Codebase with `question` typed in the quick input; waits for an answer without error. */
async function askFromPalette(f: FakeVscode, question: string): Promise<void> {
  f.setInputBox(question);
  const asking = f.commands.get('sidewinder.ask')!();
  await until('the chat view', () => f.chat.resolved);
  f.chat.send({ type: 'ready' });
  await asking;
  await until('the answer', () => f.chat.posted.some((m) => m.type === 'turnEnd'));
  assert.equal(f.chat.posted.find((m) => m.type === 'turnEnd')!.error, undefined);
}

function syncs(f: FakeVscode): { folder: string; files: number; tokens: number; readNow: number; resumed: boolean }[] {
  return f.log.flatMap((l) => {
    const m = /^info (.+?): (\d+) files, (\d+) tokens in the state \((\d+) read now in [\d.]+ s(, resumed from snapshot)?/.exec(l);
    return m ? [{ folder: m[1], files: Number(m[2]), tokens: Number(m[3]), readNow: Number(m[4]), resumed: !!m[5] }] : [];
  });
}

const CPU_MODEL = { 'sidewinder.model': MODEL, 'sidewinder.backend': 'cpu', 'sidewinder.chat.maxAnswerTokens': 4 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('file changes: one debounced re-ingest per burst, reading only what is new; create, delete, rename; noise ignored', { timeout: 120_000 }, async () => {
  const ws = workspace();
  const mul = path.join(ws, 'src', 'mul.ts');
  fs.writeFileSync(mul, 'export function mul(a: number, b: number) {\n  return a * b;\n}\n');
  const hourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(path.join(ws, 'src', 'add.ts'), hourAgo, hourAgo); // ingest order: add.ts, then mul.ts
  current = createFakeVscode({ trusted: true, folders: [ws], settings: CPU_MODEL });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the first ingest', () => syncs(f).length === 1);
    assert.equal(syncs(f)[0].files, 2);
    assert.deepEqual(f.watchers.map((w) => w.base), [ws]);
    const w = f.watchers[0];

    // A burst of events (a new file, written in steps as editors and tools do): one re-ingest, after the
    // debounce, that restores the snapshot and reads only the new file, in the background (window progress).
    const sub = path.join(ws, 'src', 'sub.ts');
    fs.writeFileSync(sub, 'export function sub(a: number, b: number) {\n');
    w.created.fire(Uri.file(sub));
    await sleep(100);
    fs.appendFileSync(sub, '  return a - b;\n}\n');
    w.changed.fire(Uri.file(sub));
    w.changed.fire(Uri.file(sub));
    await sleep(1000);
    assert.equal(syncs(f).length, 1, 'nothing before the burst is over');
    await until('the re-ingest', () => syncs(f).length === 2);
    const s2 = syncs(f)[1];
    assert.equal(s2.files, 3);
    assert.ok(s2.resumed, 'resumed from the snapshot');
    assert.ok(s2.readNow > 0 && s2.readNow < s2.tokens / 2, `only the new file is read (${s2.readNow} of ${s2.tokens})`);
    assert.equal(f.progress.at(-1)!.location, 10, 'a background re-ingest shows in the status bar, not as a notification');

    // Changes under .git or node_modules never cause a re-ingest; nor does the burst cause a second one.
    fs.mkdirSync(path.join(ws, '.git'));
    fs.writeFileSync(path.join(ws, '.git', 'index'), 'x');
    w.changed.fire(Uri.file(path.join(ws, '.git', 'index')));
    w.created.fire(Uri.file(path.join(ws, 'node_modules', 'left-pad', 'index.js')));
    await sleep(2500);
    assert.equal(syncs(f).length, 2);

    // A deletion.
    fs.rmSync(sub);
    w.deleted.fire(Uri.file(sub));
    await until('the re-ingest after a deletion', () => syncs(f).length === 3);
    assert.equal(syncs(f)[2].files, 2);

    // A rename in the editor (workspace.onDidRenameFiles).
    const times = path.join(ws, 'src', 'times.ts');
    fs.renameSync(mul, times);
    f.renameFiles([{ oldUri: Uri.file(mul), newUri: Uri.file(times) }]);
    await until('the re-ingest after a rename', () => syncs(f).length === 4);
    assert.equal(syncs(f)[3].files, 2);
    assert.ok(f.log.every((l) => !l.startsWith('error')), f.log.filter((l) => l.startsWith('error')).join('\n'));
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('multi-root: every local folder read, the active one last; virtual folders named; the active editor picks the folder', { timeout: 120_000 }, async () => {
  const a = workspace();
  const b = workspace();
  fs.writeFileSync(path.join(b, 'src', 'b.py'), 'def b():\n    return 2\n');
  current = createFakeVscode({ trusted: true, folders: [a, b, new Uri('vscode-vfs', '/github/owner/repo')], settings: CPU_MODEL });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    // Each local folder gets its own snapshot; the first (no editor is open) is read last, so the model holds it.
    await until('both folders', () => syncs(f).length === 2);
    assert.deepEqual(syncs(f).map((s) => s.folder), [path.basename(b), path.basename(a)]);
    assert.deepEqual(f.watchers.map((w) => w.base), [a, b]);
    const virtual = f.messages.filter((m) => /only folders on this machine's disk/.test(m.text));
    assert.equal(virtual.length, 1, 'told once');
    assert.equal(virtual[0].level, 'warning');
    assert.match(virtual[0].text, /repo \(vscode-vfs:\) is not read/);

    // Opening a file of the other folder switches the model to it (its snapshot, nothing read again).
    f.setActiveEditor(path.join(b, 'src', 'b.py'));
    await until('the switch', () => syncs(f).length === 3);
    assert.equal(syncs(f)[2].folder, path.basename(b));
    assert.ok(syncs(f)[2].resumed);
    assert.equal(syncs(f)[2].readNow, 0);

    // Questions are about the active folder, which is loaded: answered without another sync.
    await askFromPalette(f, 'What does b return?');
    assert.equal(syncs(f).length, 3);

    // A change in the other folder waits until that folder is active again, then it is read.
    fs.appendFileSync(path.join(a, 'src', 'add.ts'), '// more\n');
    f.watchers[0].changed.fire(Uri.file(path.join(a, 'src', 'add.ts')));
    await sleep(2000);
    assert.equal(syncs(f).length, 3);
    f.setActiveEditor(path.join(a, 'src', 'add.ts'));
    await until('the switch back', () => syncs(f).length === 4);
    assert.equal(syncs(f)[3].folder, path.basename(a));
    assert.ok(syncs(f)[3].readNow > 0, 'the edited file is read again');
  } finally {
    await shutdown(c);
    for (const d of [a, b]) fs.rmSync(d, { recursive: true, force: true });
  }
});

/**
 * An extension folder whose engine is this build's, plus one thing: on SIGUSR2 it acts out a lost GPU device
 * exactly as EngineServer reports one (a deviceLost event, then exit code 3).
 */
function extensionDirWithLosableDevice(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-ext-'));
  const dist = path.join(dir, 'dist');
  fs.mkdirSync(dist);
  for (const e of fs.readdirSync(path.join(REPO, 'dist'))) if (e !== 'engineWorker.js') fs.symlinkSync(path.join(REPO, 'dist', e), path.join(dist, e));
  fs.writeFileSync(
    path.join(dist, 'engineWorker.js'),
    `process.on('SIGUSR2', () => process.send({ type: 'event', event: { kind: 'deviceLost', reason: 'test: device removed' } }, undefined, undefined, () => process.exit(3)));\n` +
      `require(${JSON.stringify(path.join(REPO, 'dist', 'engineWorker.js'))});\n`,
  );
  return dir;
}

test('an engine that dies, or loses its GPU device, is replaced and the workspace restored from its snapshot', { timeout: 120_000 }, async () => {
  const ws = workspace();
  current = createFakeVscode({ trusted: true, folders: [ws], settings: CPU_MODEL });
  const f = current;
  const c = context(extensionDirWithLosableDevice(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  const gauge = () => f.statusItems[0].text;
  try {
    await until('the first ingest', () => syncs(f).length === 1);
    const first = enginePids();
    assert.equal(first.length, 1);

    // A crash (here: killed).
    process.kill(first[0].pid, 'SIGKILL');
    await until('the restart', () => syncs(f).length === 2);
    assert.ok(f.log.some((l) => /^error engine stopped: .*signal SIGKILL/.test(l)), f.log.join('\n'));
    const second = enginePids();
    assert.equal(second.length, 1);
    assert.notEqual(second[0].pid, first[0].pid);
    assert.ok(syncs(f)[1].resumed && syncs(f)[1].readNow === 0, 'the state comes back from the snapshot, nothing read again');
    await until('the gauge', () => /^\$\(database\) [\d.]+ (KB|MB)$/.test(gauge()));

    // A lost GPU device: the engine says so and exits; the user is told, and a new engine (new device) takes over.
    process.kill(second[0].pid, 'SIGUSR2');
    await until('the recovery', () => syncs(f).length === 3);
    assert.ok(f.log.includes('error the GPU device was lost: test: device removed'), f.log.join('\n'));
    assert.ok(f.log.some((l) => /^error engine stopped: the GPU device was lost \(test: device removed\)/.test(l)));
    const told = f.messages.find((m) => /GPU device was lost/.test(m.text));
    assert.ok(told, 'a message');
    assert.equal(told.level, 'info');
    assert.match(told.text, /A new device was opened; the workspace is restored from its snapshot/);
    const third = enginePids();
    assert.equal(third.length, 1);
    assert.ok(![first[0].pid, second[0].pid].includes(third[0].pid));
    assert.ok(syncs(f)[2].resumed && syncs(f)[2].readNow === 0);
    await until('the gauge', () => /^\$\(database\) [\d.]+ (KB|MB)$/.test(gauge()));

    // And it answers.
    await askFromPalette(f, 'What does add do?');
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
  await until('the engine to end', () => engineProcesses().length === 0, 5000);
});

test('Stop ends a question at once, also while the model loads or the workspace is read', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ChatViewProvider } = require('../../src/extension/chatView') as typeof import('../../src/extension/chatView');
  current = createFakeVscode({ trusted: true, folders: ['/ws'], settings: {} });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  const never = new Promise<never>(() => undefined);
  let loading = true; // first the model never finishes loading, then the workspace is never read
  const requests: string[] = [];
  const engine = {
    engineState: { kind: 'starting' },
    onDidChangeState: new f.vscode.EventEmitter<unknown>().event,
    client: () => (loading ? never : Promise.resolve({ stream: (kind: string) => requests.push(kind) })),
    explain: async () => assert.fail('a stop is not an error'),
  };
  const indexer = { onDidProgress: new f.vscode.EventEmitter<unknown>().event, activeFolder: () => '/ws', isStarted: true, ensureLoaded: () => never, start: () => undefined, folders: () => ['/ws'] };
  const log = f.vscode.window.createOutputChannel('test');
  const chat = new ChatViewProvider(c as never, engine as never, indexer as never, () => readSettings(() => undefined), log as never);
  f.vscode.window.registerWebviewViewProvider('sidewinder.chat', chat);
  f.resolveChatView();
  try {
    for (const [what, status] of [
      ['while the model loads', null],
      ['while the workspace is read', 'Reading the workspace…'],
    ] as const) {
      f.chat.posted.length = 0;
      const asking = chat.ask(`a question ${what}`);
      await until(`the question ${what}`, () => f.chat.posted.some((m) => m.type === 'turnStart') && (!status || f.chat.posted.some((m) => m.text === status)));
      assert.ok(chat.isGenerating);
      const t0 = Date.now();
      f.chat.send({ type: 'stop' });
      await asking;
      assert.ok(Date.now() - t0 < 1000, `stopped at once ${what}`);
      const end = f.chat.posted.find((m) => m.type === 'turnEnd')!;
      assert.equal(end.stopped, true, what);
      assert.equal(end.error, undefined, what);
      assert.ok(!chat.isGenerating);
      loading = false;
    }
    assert.deepEqual(requests, [], 'nothing was asked of the engine');
    const history = c.workspaceState.get<{ stopped?: boolean }[]>('sidewinder.chatHistory', []) ?? [];
    assert.deepEqual(history.map((t) => t.stopped), [true, true]);
  } finally {
    chat.dispose();
  }
});

test('Show Memory: a panel with a strict CSP fed by the engine pushed reports; one panel at a time', { timeout: 120_000 }, async () => {
  const ws = workspace();
  current = createFakeVscode({ trusted: true, folders: [ws], settings: CPU_MODEL });
  const f = current;
  const ext_ = extensionDir();
  const c = context(ext_, fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the ingest', () => syncs(f).length === 1);
    await f.commands.get('sidewinder.showMemory')!();
    assert.equal(f.panels.length, 1);
    const p = f.panels[0];
    assert.equal(p.viewType, 'sidewinder.memory');
    assert.equal(p.options.enableScripts, true);
    assert.deepEqual(p.options.localResourceRoots?.map((u) => u.fsPath), [path.join(ext_, 'dist', 'webview')]);
    assert.match(p.html, /default-src 'none'; script-src 'nonce-[A-Za-z0-9+/=]+'/);
    assert.match(p.html, /<script nonce="[^"]+" src="https:\/\/fake\.vscode-cdn\.net[^"]*\/dist\/webview\/memory\.js"><\/script>/);

    // The page asks for the history: every report since the engine started, ending with the ingested state.
    p.send({ type: 'ready' });
    await until('the history', () => p.posted.some((m) => m.type === 'init'));
    const init = p.posted.find((m) => m.type === 'init') as unknown as { samples: { tokens: number; weights: number }[]; budgets: { kvGpuBytes: number } };
    assert.ok(init.samples.length >= 2, `${init.samples.length} samples`);
    assert.equal(init.samples.at(-1)!.tokens, syncs(f)[0].tokens);
    assert.ok(init.samples.every((s) => s.weights > 0));
    assert.equal(init.budgets.kvGpuBytes, 1024 * 1024 * 1024);

    // New reports are pushed to the open panel as they come (here: a re-read of the workspace).
    const before = p.posted.length;
    await f.commands.get('sidewinder.reindex')!();
    await until('the re-read', () => syncs(f).length === 2);
    await until('a pushed sample', () => p.posted.slice(before).some((m) => m.type === 'sample'));

    // A malformed message is refused and logged; a second Show Memory reveals the same panel.
    p.send({ type: 'ready', extra: 'x' });
    await until('the log line', () => f.log.some((l) => /^warn memory panel: rejected a message/.test(l)));
    await f.commands.get('sidewinder.showMemory')!();
    assert.equal(f.panels.length, 1);
    assert.equal(p.reveals, 1);
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
  assert.ok(f.panels[0].disposed, 'closed with the extension');
});

test('chat actions on the host: copy, insert at the cursor, new file, open a workspace file at its line', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ChatViewProvider } = require('../../src/extension/chatView') as typeof import('../../src/extension/chatView');
  const ws = workspace();
  current = createFakeVscode({ trusted: true, folders: [ws], settings: {} });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  const engine = { engineState: { kind: 'stopped' }, onDidChangeState: new f.vscode.EventEmitter<unknown>().event, explain: async () => undefined };
  const indexer = { onDidProgress: new f.vscode.EventEmitter<unknown>().event, folders: () => [ws] };
  const chat = new ChatViewProvider(c as never, engine as never, indexer as never, () => readSettings(() => undefined), f.vscode.window.createOutputChannel('test') as never);
  f.vscode.window.registerWebviewViewProvider('sidewinder.chat', chat);
  f.resolveChatView();
  // An editor with two selections (multi-cursor): the code replaces each.
  const edits: { range: unknown; text: string }[] = [];
  const doc = { uri: Uri.file(path.join(ws, 'src', 'add.ts')) };
  f.vscode.window.activeTextEditor = {
    document: doc,
    selections: ['sel1', 'sel2'],
    viewColumn: 1,
    edit: async (cb: (e: { replace(r: unknown, t: string): void }) => void) => (cb({ replace: (range, text) => edits.push({ range, text }) }), true),
  };
  try {
    f.chat.send({ type: 'copy', text: 'const x = 1;\n' });
    await until('the copy', () => f.clipboard.length === 1);
    assert.deepEqual(f.clipboard, ['const x = 1;\n']);

    f.chat.send({ type: 'insert', code: 'y();' });
    await until('the insert', () => edits.length === 2);
    assert.deepEqual(edits, [
      { range: 'sel1', text: 'y();' },
      { range: 'sel2', text: 'y();' },
    ]);

    f.chat.send({ type: 'newFile', code: 'def f(): pass\n', language: 'python' });
    await until('the new file', () => f.shown.length === 2);
    assert.deepEqual((f.shown[1].doc as { options: unknown }).options, { content: 'def f(): pass\n', language: 'python' });

    f.chat.send({ type: 'openFile', path: 'src/add.ts', line: 2 });
    await until('the file', () => f.shown.length === 3);
    const opened = f.shown[2];
    assert.equal((opened.doc as Uri).fsPath, fs.realpathSync(path.join(ws, 'src', 'add.ts')));
    const sel = (opened.opts as { selection: Range }).selection;
    assert.deepEqual([sel.start.line, sel.start.character], [1, 0], 'line 2, zero-based');
    assert.equal(f.messages.length, 0);
  } finally {
    chat.dispose();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('inline completions: debounce, a new keystroke or the token cancels, LRU cache with typed-through hits, settings', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { InlineCompletionProvider } = require('../../src/extension/completionProvider') as typeof import('../../src/extension/completionProvider');
  const ws = '/ws';
  const values: Record<string, unknown> = { 'completion.debounceMs': 80, 'completion.maxTokens': 7, 'completion.maxLines': 3 };
  current = createFakeVscode({ trusted: true, folders: [ws], settings: {} });
  const f = current;
  const requests: { params: { prefix: string; suffix: string; path: string; maxTokens: number; maxLines: number }; signal: AbortSignal; at: number }[] = [];
  const client = {
    request: (_kind: string, params: (typeof requests)[0]['params'], opts: { signal: AbortSignal }) => {
      requests.push({ params, signal: opts.signal, at: Date.now() });
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve({ text: 'b;', reason: 'done', mode: 'fim', ms: 30 }), 30);
        opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve({ text: '', reason: 'cancelled', mode: null, ms: 1 })));
      });
    },
  };
  const engine = { ready: client };
  const indexer = { folders: () => [ws], loadedFolder: ws as string | null, holds(folder: string) { return this.loadedFolder === folder; } };
  const provider = new InlineCompletionProvider(engine as never, indexer as never, () => readSettings((k) => values[k]), f.vscode.window.createOutputChannel('test') as never);
  const doc = (text: string, file = '/ws/src/a.ts') => ({
    uri: Uri.file(file),
    offsetAt: (p: Position) => (p.line === 0 ? p.character : text.length),
    positionAt: (o: number) => new Position(0, Math.max(0, Math.min(o, text.length))),
    getText: (r: Range) => text.slice(r.start.character, r.end.character),
  });
  const token = () => {
    const cbs: (() => void)[] = [];
    return { isCancellationRequested: false, onCancellationRequested: (cb: () => void) => (cbs.push(cb), { dispose: () => undefined }), cancel() { this.isCancellationRequested = true; cbs.forEach((c) => c()); } };
  };
  const AUTO = { triggerKind: 1, selectedCompletionInfo: undefined };
  const INVOKE = { triggerKind: 0, selectedCompletionInfo: undefined };
  const complete = (text: string, ctx = AUTO, tok = token()) => provider.provideInlineCompletionItems(doc(text) as never, new Position(0, text.length) as never, ctx as never, tok as never);
  const texts = (items: unknown[]) => items.map((i) => (i as { insertText: string }).insertText);

  // Typing: each keystroke's request waits out the debounce; the newer one cancels the older before it is sent.
  const t0 = Date.now();
  const first = complete('let a = ');
  await sleep(20);
  const second = complete('let a = b');
  assert.deepEqual(texts(await first), [], 'superseded by the next keystroke');
  assert.deepEqual(texts(await second), ['b;']);
  assert.equal(requests.length, 1, 'only the last keystroke reaches the engine');
  assert.ok(requests[0].at - t0 >= 20 + 75, `sent after the debounce (${requests[0].at - t0} ms)`);
  assert.deepEqual(
    { prefix: requests[0].params.prefix, suffix: requests[0].params.suffix, path: requests[0].params.path, maxTokens: requests[0].params.maxTokens, maxLines: requests[0].params.maxLines },
    { prefix: 'let a = b', suffix: '', path: 'src/a.ts', maxTokens: 7, maxLines: 3 },
  );

  // The same place again: from the cache, at once. Typing the suggestion's first character: the rest, cached.
  // (With a 5 s debounce meanwhile, the most the setting allows, so that "at once" is told apart from "after the
  // debounce" on any machine.)
  values['completion.debounceMs'] = 5000;
  const t1 = Date.now();
  assert.deepEqual(texts(await complete('let a = b')), ['b;']);
  assert.deepEqual(texts(await complete('let a = bb')), [';']);
  assert.ok(Date.now() - t1 < 2500, 'no debounce for a cached completion');
  values['completion.debounceMs'] = 80;
  assert.equal(requests.length, 1);

  // A keystroke while a request runs aborts it in the engine; so does the editor's token.
  const running = complete('let c = ');
  await until('the request', () => requests.length === 2);
  const next = complete('let c = d');
  assert.deepEqual(texts(await running), []);
  assert.ok(requests[1].signal.aborted, 'the running request was cancelled');
  await next;
  const tok = token();
  const cancelled = complete('let e = ', AUTO, tok);
  await until('the request', () => requests.length === 4);
  tok.cancel();
  assert.deepEqual(texts(await cancelled), []);
  assert.ok(requests[3].signal.aborted);

  // Asked for explicitly (Alt+\): no debounce.
  const t2 = Date.now();
  await complete('let g = ', INVOKE);
  assert.ok(requests[4].at - t2 < 60, 'no wait when invoked');

  // Off, untrusted, another folder than the loaded one, the suggest widget open: nothing, and nothing asked.
  const asked = requests.length;
  values['completion.enabled'] = false;
  assert.deepEqual(await complete('let h = '), []);
  values['completion.enabled'] = true;
  indexer.loadedFolder = '/elsewhere';
  assert.deepEqual(await complete('let i = '), []);
  indexer.loadedFolder = ws;
  assert.deepEqual(await complete('let j = ', { triggerKind: 1, selectedCompletionInfo: { text: 'x' } } as never), []);
  f.vscode.workspace.isTrusted = false;
  assert.deepEqual(await complete('let k = '), []);
  assert.equal(requests.length, asked);

  // The cache forgets everything after a re-ingest.
  f.vscode.workspace.isTrusted = true;
  provider.clearCache();
  await complete('let a = b');
  assert.equal(requests.length, asked + 1);
});

test('settings apply without a reload: ignore globs and the size limit re-read the workspace; a new KV budget restarts the engine', { timeout: 120_000 }, async () => {
  const ws = workspace();
  fs.writeFileSync(path.join(ws, 'src', 'mul.ts'), 'export function mul(a: number, b: number) {\n  return a * b;\n}\n');
  fs.writeFileSync(path.join(ws, 'src', 'big.ts'), `export const table = [\n${'  1, 2, 3, 4, 5, 6, 7, 8,\n'.repeat(60)}];\n`); // ~1.6 KB
  current = createFakeVscode({ trusted: true, folders: [ws], settings: CPU_MODEL });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  const config = f.vscode.workspace.getConfiguration('sidewinder');
  const lastSync = () => f.log.filter((l) => /tokens in the state/.test(l)).at(-1)!;
  try {
    await until('the first ingest', () => syncs(f).length === 1);
    assert.equal(syncs(f)[0].files, 3);

    await config.update('extraIgnore', ['**/mul.ts']);
    await until('the re-read', () => syncs(f).length === 2);
    assert.equal(syncs(f)[1].files, 2);
    assert.match(lastSync(), /skipped 1 ignored/);

    await config.update('maxFileKB', 1);
    await until('the re-read', () => syncs(f).length === 3);
    assert.equal(syncs(f)[2].files, 1);
    assert.match(lastSync(), /1 too-large/);

    // Completion settings apply to the next request: nothing is re-read or restarted.
    const pid = enginePids()[0].pid;
    await config.update('completion.debounceMs', 100);
    await sleep(300);
    assert.equal(syncs(f).length, 3);

    // The KV budgets are the engine's: a new engine, with the workspace restored from its snapshot.
    await config.update('kvGpuBudgetMB', 64);
    await until('the restart', () => syncs(f).length === 4);
    assert.notEqual(enginePids()[0].pid, pid);
    assert.equal(enginePids().length, 1);
    assert.ok(syncs(f)[3].resumed && syncs(f)[3].readNow === 0);
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

/** A local stand-in for the Hugging Face Hub serving the fixture model as `owner/tiny`. */
async function fakeHub(): Promise<{ url: string; requests: string[]; close(): void }> {
  const files = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
  const body = (f: string) => fs.readFileSync(path.join(MODEL, f));
  const sha = 'c'.repeat(40);
  const hash = (algo: string, b: Buffer, prefix = '') => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const h = (require('crypto') as typeof import('crypto')).createHash(algo);
    if (prefix) h.update(prefix);
    return h.update(b).digest('hex');
  };
  const siblings = files.map((f) =>
    f.endsWith('.safetensors')
      ? { rfilename: f, size: body(f).length, lfs: { sha256: hash('sha256', body(f)), size: body(f).length } }
      : { rfilename: f, size: body(f).length, blobId: hash('sha1', body(f), `blob ${body(f).length}\0`) },
  );
  const requests: string[] = [];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const http = require('http') as typeof import('http');
  const server = http.createServer((req, res) => {
    requests.push(req.url!);
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/api/models/owner/tiny/revision/main') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ sha, siblings }));
      return;
    }
    const m = /^\/owner\/tiny\/resolve\/[0-9a-f]{40}\/(.+)$/.exec(u.pathname);
    if (m && files.includes(m[1])) {
      res.setHeader('content-length', body(m[1]).length);
      res.end(body(m[1]));
      return;
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => server.close() };
}

test('fresh install with no model: the user is told; Download Model fetches one and Use This Model starts it', { timeout: 120_000 }, async () => {
  const ws = workspace();
  const hub = await fakeHub();
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };
  process.env.HF_ENDPOINT = hub.url; // inherited by the engine processes
  process.env.XDG_CACHE_HOME = cache;
  current = createFakeVscode({ trusted: true, folders: [ws], settings: { 'sidewinder.backend': 'cpu' } });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the missing-model message', () => f.messages.some((m) => m.items.includes('Download Model')));
    f.setInputBox('owner/tiny');
    f.answerMessage(/is downloaded to/, 'Use This Model');
    await f.commands.get('sidewinder.downloadModel')!();
    const p = f.progress.find((x) => /downloading owner\/tiny/.test(x.title))!;
    assert.ok(p, 'download progress');
    assert.equal(p.cancellable, true);
    assert.ok(p.reports.some((r) => /model\.safetensors/.test(r.message ?? '')), JSON.stringify(p.reports));
    const dir = path.join(cache, 'sidewinder', 'models', 'owner--tiny');
    assert.ok(f.messages.some((m) => m.text === `Sidewinder: owner/tiny is downloaded to ${dir}.`), JSON.stringify(f.messages));
    for (const file of ['config.json', 'tokenizer.json', 'model.safetensors']) assert.deepEqual(fs.readFileSync(path.join(dir, file)), fs.readFileSync(path.join(MODEL, file)));
    // The model setting is written (user settings: it is machine-scoped), the engine starts on it and reads the workspace.
    assert.equal(f.settings['sidewinder.model'], dir);
    assert.deepEqual(f.updates, [{ key: 'sidewinder.model', value: dir, target: f.vscode.ConfigurationTarget.Global }]);
    await until('the ingest', () => syncs(f).length === 1);
    assert.ok(f.log.some((l) => l.includes(`with cpu on ${dir}`)), f.log.join('\n'));
    assert.equal(enginePids().length, 1, 'the download process has ended');
    assert.ok(hub.requests.every((r) => r.startsWith('/api/models/owner/tiny/') || r.startsWith('/owner/tiny/resolve/')), hub.requests.join('\n'));
  } finally {
    await shutdown(c);
    hub.close();
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
    fs.rmSync(ws, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

test('Select Model: a folder with config.json becomes the (user-level) model setting; anything else is refused', async () => {
  current = createFakeVscode({ trusted: false, folders: [], settings: {} });
  const f = current;
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    const notAModel = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-nomodel-'));
    f.setOpenDialog([Uri.file(notAModel)]);
    await f.commands.get('sidewinder.selectModel')!();
    assert.equal(f.settings['sidewinder.model'], undefined);
    assert.match(f.messages.at(-1)!.text, /has no config\.json; pick the folder of a Hugging Face model checkpoint/);
    f.setOpenDialog(undefined); // cancelled
    await f.commands.get('sidewinder.selectModel')!();
    assert.equal(f.settings['sidewinder.model'], undefined);
    f.setOpenDialog([Uri.file(MODEL)]);
    await f.commands.get('sidewinder.selectModel')!();
    assert.equal(f.settings['sidewinder.model'], MODEL);
    assert.deepEqual(f.updates, [{ key: 'sidewinder.model', value: MODEL, target: f.vscode.ConfigurationTarget.Global }]);
    assert.ok(f.log.includes(`info model set to ${MODEL}`));
    assert.deepEqual(engineProcesses(), [], 'Restricted Mode: nothing started');
    fs.rmSync(notAModel, { recursive: true });
  } finally {
    await shutdown(c);
  }
});

test('cancelling the ingest notification stops it with a usable state; Reindex goes on from there', { timeout: 120_000 }, async () => {
  const ws = workspace();
  // Enough code for a few 2,048-token chunks (about 4,300 tokens with the fixture's tokenizer).
  const body = Array.from({ length: 70 }, (_, i) => `export function f${i}(x: number): number {\n  return x * ${i} + ${i % 7};\n}\n`).join('\n');
  fs.writeFileSync(path.join(ws, 'src', 'many.ts'), body);
  current = createFakeVscode({ trusted: true, folders: [ws], settings: CPU_MODEL });
  const f = current;
  f.cancelProgressWhen(/ tok\/s/); // the first progress report from a chunk of the ingest
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the cancelled ingest', () => syncs(f).length === 1);
    const cancelled = f.log.find((l) => /tokens in the state/.test(l))!;
    assert.match(cancelled, /, cancelled\)/);
    const part = syncs(f)[0];
    assert.ok(part.tokens > 0, 'what was read before the cancel stays');
    // The engine is still up and usable: Reindex reads the rest, going on from the state saved at the cancel.
    await f.commands.get('sidewinder.reindex')!();
    await until('the reindex', () => syncs(f).length === 2);
    const full = syncs(f)[1];
    assert.ok(full.tokens > part.tokens, `${full.tokens} > ${part.tokens}`);
    assert.ok(full.resumed, 'resumed from the partial snapshot');
    assert.equal(full.readNow, full.tokens - part.tokens, 'only what the cancelled run had not read');
  } finally {
    await shutdown(c);
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('no WebGPU adapter: the user is told why and offered the CPU backend, which then reads the workspace', { timeout: 120_000 }, async () => {
  const ws = workspace();
  const saved = process.env.VK_ICD_FILENAMES;
  process.env.VK_ICD_FILENAMES = path.join(os.tmpdir(), 'no-such-vulkan-driver.json'); // inherited by the engine: no adapter
  current = createFakeVscode({ trusted: true, folders: [ws], settings: { 'sidewinder.model': MODEL } });
  const f = current;
  f.answerMessage(/No WebGPU adapter/, 'Use CPU Backend');
  const c = context(extensionDir(), fs.mkdtempSync(path.join(os.tmpdir(), 'sw-store-')));
  ext.activate(c as never);
  try {
    await until('the message', () => f.messages.some((m) => /No WebGPU adapter/.test(m.text)));
    const m = f.messages.find((x) => /No WebGPU adapter/.test(x.text))!;
    assert.equal(m.level, 'error');
    assert.deepEqual(m.items, ['Use CPU Backend', 'Retry', 'Show Log']);
    assert.match(m.text, /switch to the \(much slower\) CPU backend/);
    // The click: the user setting changes and a new engine reads the workspace on the CPU.
    await until('the ingest on the CPU', () => syncs(f).length === 1);
    assert.deepEqual(f.updates, [{ key: 'sidewinder.backend', value: 'cpu', target: f.vscode.ConfigurationTarget.Global }]);
    assert.ok(f.log.some((l) => l.startsWith('info starting the engine') && l.includes('with cpu on')));
    await until('the gauge', () => /^\$\(database\) [\d.]+ (KB|MB)$/.test(f.statusItems[0].text));
  } finally {
    await shutdown(c);
    if (saved === undefined) delete process.env.VK_ICD_FILENAMES;
    else process.env.VK_ICD_FILENAMES = saved;
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
