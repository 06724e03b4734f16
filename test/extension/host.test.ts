// Host-side pure parts: the webviews' Content Security Policy, settings parsing, paths from webviews.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { folderOf, locateModel, resolveWorkspaceFile } from '../../src/extension/paths';
import { needsEngineRestart, needsReingest, readSettings } from '../../src/extension/settings';
import { contentSecurityPolicy, makeNonce, webviewHtml } from '../../src/extension/webviewHtml';

const CSP_SOURCE = 'https://*.vscode-cdn.net';

test('CSP: nothing by default, nonce scripts only, images and fonts only from the extension', () => {
  const nonce = makeNonce();
  const csp = contentSecurityPolicy(CSP_SOURCE, nonce);
  const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
  assert.deepEqual(directives.get('default-src'), ["'none'"]);
  assert.deepEqual(directives.get('script-src'), [`'nonce-${nonce}'`]);
  assert.deepEqual(directives.get('style-src'), [CSP_SOURCE, `'nonce-${nonce}'`]);
  assert.deepEqual(directives.get('img-src'), [CSP_SOURCE]);
  assert.deepEqual(directives.get('font-src'), [CSP_SOURCE]);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|data:|blob:|https:(?!\/\/\*\.vscode-cdn)|\*(?!\.vscode-cdn)/);
  assert.throws(() => contentSecurityPolicy("x; script-src 'unsafe-inline'", nonce), RangeError);
  assert.throws(() => contentSecurityPolicy(CSP_SOURCE, "n' 'unsafe-inline"), RangeError);
  // code-server passes a list with 'self'; wildcards and other keywords still break the policy.
  assert.match(contentSecurityPolicy("'self' https://*.vscode-cdn.net", nonce), /img-src 'self' https:\/\/\*\.vscode-cdn\.net;/);
  for (const bad of ['*', 'https:', "'unsafe-inline'", "'self' *"]) assert.throws(() => contentSecurityPolicy(bad, nonce), RangeError, bad);
});

test('webview HTML: every script and stylesheet carries the nonce; attributes are escaped', () => {
  const nonce = makeNonce();
  const html = webviewHtml({
    cspSource: CSP_SOURCE,
    nonce,
    title: 'T"<x>',
    scripts: ['https://x.vscode-cdn.net/dist/webview/chat.js'],
    styles: ['https://x.vscode-cdn.net/dist/webview/chat.css'],
    codicons: 'https://x.vscode-cdn.net/codicon.css',
    body: '<div id="log"></div>',
  });
  assert.equal((html.match(/<script /g) ?? []).length, 1);
  assert.equal((html.match(new RegExp(`<script nonce="${nonce.replace(/[+/=]/g, (c) => '\\' + c)}"`, 'g')) ?? []).length, 1);
  assert.match(html, /id="vscode-codicon-stylesheet" nonce="/);
  assert.equal((html.match(/<link rel="stylesheet"[^>]*nonce="/g) ?? []).length, 2);
  assert.match(html, /<title>T&quot;&lt;x&gt;<\/title>/);
  assert.notEqual(makeNonce(), makeNonce());
});

test('settings: defaults, clamping, bad values ignored', () => {
  const d = readSettings(() => undefined);
  assert.equal(d.model, '');
  assert.equal(d.backend, 'webgpu');
  assert.equal(d.maxFileKB, 512);
  assert.equal(d.completion.enabled, true);
  assert.equal(d.completion.debounceMs, 250);
  assert.ok(Object.isFrozen(d) && Object.isFrozen(d.completion));
  const values: Record<string, unknown> = {
    model: ' /models/x ',
    backend: 'cpu',
    kvGpuBudgetMB: -5,
    maxFileKB: 'lots',
    extraIgnore: ['*.min.js', 3, '', 'fixtures/'],
    'completion.enabled': false,
    'completion.debounceMs': 99999,
    'completion.maxTokens': 12.6,
  };
  const s = readSettings((k) => values[k]);
  assert.equal(s.model, '/models/x');
  assert.equal(s.backend, 'cpu');
  assert.equal(s.kvGpuBudgetMB, 0);
  assert.equal(s.maxFileKB, 512);
  assert.deepEqual(s.extraIgnore, ['*.min.js', 'fixtures/']);
  assert.equal(s.completion.enabled, false);
  assert.equal(s.completion.debounceMs, 5000);
  assert.equal(s.completion.maxTokens, 13);
  assert.equal(readSettings((k) => (k === 'backend' ? 'tpu' : undefined)).backend, 'webgpu');
  assert.ok(needsEngineRestart(d, s));
  assert.ok(needsReingest(d, s));
  assert.ok(!needsEngineRestart(d, readSettings(() => undefined)));
  // sidewinder.quantization: none by default, q4/q8 taken, anything else falls back; a change reloads the model.
  assert.equal(d.quantization, 'none');
  const q4 = readSettings((k) => (k === 'quantization' ? 'q4' : undefined));
  assert.equal(q4.quantization, 'q4');
  assert.equal(readSettings((k) => (k === 'quantization' ? 'int4' : undefined)).quantization, 'none');
  assert.ok(needsEngineRestart(d, q4));
});

test('paths from model output resolve only to files inside the workspace', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-paths-'));
  const ws = path.join(root, 'ws');
  fs.mkdirSync(path.join(ws, 'src'), { recursive: true });
  fs.writeFileSync(path.join(ws, 'src', 'a.ts'), 'x');
  fs.writeFileSync(path.join(root, 'secret.txt'), 'x');
  fs.symlinkSync(path.join(root, 'secret.txt'), path.join(ws, 'link.txt'));
  const folders = [fs.realpathSync(ws)];
  const a = path.join(folders[0], 'src', 'a.ts');
  assert.equal(resolveWorkspaceFile('src/a.ts', folders), a);
  assert.equal(resolveWorkspaceFile('./src/a.ts', folders), a);
  assert.equal(resolveWorkspaceFile(a, folders), a);
  assert.equal(resolveWorkspaceFile('src', folders), null); // a folder
  assert.equal(resolveWorkspaceFile('src/missing.ts', folders), null);
  assert.equal(resolveWorkspaceFile('../secret.txt', folders), null);
  assert.equal(resolveWorkspaceFile('src/../../secret.txt', folders), null);
  assert.equal(resolveWorkspaceFile(path.join(root, 'secret.txt'), folders), null);
  assert.equal(resolveWorkspaceFile('link.txt', folders), null); // symlink out of the workspace
  assert.equal(resolveWorkspaceFile('/etc/passwd', folders), null);
  assert.equal(resolveWorkspaceFile('', folders), null);
  assert.equal(folderOf(a, ['/nope', folders[0], path.join(folders[0], 'src')]), path.join(folders[0], 'src'));
  assert.equal(folderOf('/elsewhere/x', folders), null);
  fs.rmSync(root, { recursive: true, force: true });
});

test('the model: the setting, else the bundled default, else a clear problem', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-model-'));
  assert.deepEqual(locateModel('', root), { problem: 'not-configured', dir: path.join(root, 'models', 'default') });
  fs.mkdirSync(path.join(root, 'models', 'default'), { recursive: true });
  fs.writeFileSync(path.join(root, 'models', 'default', 'config.json'), '{}');
  assert.deepEqual(locateModel('', root), { dir: path.join(root, 'models', 'default'), source: 'bundled' });
  assert.deepEqual(locateModel(path.join(root, 'nope'), root), { problem: 'missing', dir: path.join(root, 'nope') });
  assert.deepEqual(locateModel(path.join(root, 'models', 'default'), root), { dir: path.join(root, 'models', 'default'), source: 'setting' });
  fs.rmSync(root, { recursive: true, force: true });
});
