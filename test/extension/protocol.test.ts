// The host checks every message a webview sends before using it: hostile or malformed ones are rejected.
// Also the engine protocol's envelope checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CODE_CHARS, MAX_QUESTION_CHARS, parseChatToHost, parseMemoryToHost } from '../../src/webview/protocol';
import { isEngineToHost, isHostToEngine, toWireError } from '../../src/extension/protocol';

test('well-formed chat messages are accepted as they are', () => {
  const ok: unknown[] = [
    { type: 'ready' },
    { type: 'ask', question: 'Where is the snapshot written?' },
    { type: 'stop' },
    { type: 'copy', text: 'const a = 1;' },
    { type: 'copy', text: '' },
    { type: 'insert', code: 'x++;' },
    { type: 'newFile', code: 'print(1)', language: 'python' },
    { type: 'newFile', code: '', language: '' },
    { type: 'openFile', path: 'src/engine/ingest.ts' },
    { type: 'openFile', path: 'src/engine/ingest.ts', line: 42 },
    { type: 'openFile', path: 'C:\\work\\a.ts' },
    { type: 'clearHistory' },
  ];
  for (const m of ok) assert.deepEqual(parseChatToHost(m), m, JSON.stringify(m));
  // Messages arrive through structured clone / JSON: a parsed object is fine, null-prototype too.
  assert.deepEqual(parseChatToHost(JSON.parse('{"type":"ask","question":"q"}')), { type: 'ask', question: 'q' });
  assert.deepEqual(parseChatToHost(Object.assign(Object.create(null), { type: 'stop' })), { type: 'stop' });
});

test('hostile and malformed chat messages are rejected', () => {
  class Evil {
    type = 'stop';
  }
  const bad: unknown[] = [
    null,
    undefined,
    42,
    'ask',
    [],
    [{ type: 'stop' }],
    {},
    { type: 'unknown' },
    { type: 'eval', code: 'alert(1)' },
    { type: 'constructor' },
    { type: '__proto__' },
    { type: 'toString' },
    { type: 'ASK', question: 'q' },
    new Evil(), // not a plain object
    { type: 'stop', extra: 1 }, // extra field
    { type: 'ready', question: 'q' }, // a field of another kind
    { type: 'ask' }, // missing field
    { type: 'ask', question: 7 },
    { type: 'ask', question: '   ' },
    { type: 'ask', question: ['a'] },
    { type: 'ask', question: { toString: () => 'q' } },
    { type: 'ask', question: 'x'.repeat(MAX_QUESTION_CHARS + 1) },
    { type: 'copy', text: null },
    { type: 'copy', text: 'x'.repeat(MAX_CODE_CHARS + 1) },
    { type: 'insert', code: 1 },
    { type: 'newFile', code: 'x' },
    { type: 'newFile', code: 'x', language: 'python"><script>' },
    { type: 'newFile', code: 'x', language: 'a'.repeat(65) },
    { type: 'openFile' },
    { type: 'openFile', path: '' },
    { type: 'openFile', path: 'a\u0000b' },
    { type: 'openFile', path: 'src/a.ts\n' },
    { type: 'openFile', path: 'command:workbench.action.terminal.new' },
    { type: 'openFile', path: 'https://evil.example/x' },
    { type: 'openFile', path: 'file:///etc/passwd' },
    { type: 'openFile', path: 'vscode://settings' },
    { type: 'openFile', path: 'a'.repeat(2000) },
    { type: 'openFile', path: 'src/a.ts', line: 0 },
    { type: 'openFile', path: 'src/a.ts', line: -3 },
    { type: 'openFile', path: 'src/a.ts', line: 1.5 },
    { type: 'openFile', path: 'src/a.ts', line: '3' },
    { type: 'openFile', path: 'src/a.ts', line: Infinity },
    { type: 'openFile', path: 'src/a.ts', line: 1e12 },
    { type: 'openFile', path: 'src/a.ts', line: null },
    JSON.parse('{"type":"stop","__proto__":{"polluted":true}}'),
  ];
  for (const m of bad) assert.equal(parseChatToHost(m), null, String(JSON.stringify(m)).slice(0, 80));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('memory panel messages: only "ready"', () => {
  assert.deepEqual(parseMemoryToHost({ type: 'ready' }), { type: 'ready' });
  for (const m of [null, {}, { type: 'ready', x: 1 }, { type: 'ask', question: 'q' }, [], 'ready']) assert.equal(parseMemoryToHost(m), null);
});

test('engine envelopes: requests and responses are checked before use', () => {
  assert.ok(isHostToEngine({ type: 'request', id: 1, kind: 'ask', params: { folder: '/w', question: 'q', maxNewTokens: 4 } }));
  assert.ok(isHostToEngine({ type: 'cancel', id: 1 }));
  assert.ok(!isHostToEngine({ type: 'request', id: 1, kind: 'rm -rf', params: {} }));
  assert.ok(!isHostToEngine({ type: 'request', id: '1', kind: 'ask', params: {} }));
  assert.ok(!isHostToEngine({ type: 'request', id: 1, kind: 'ask', params: null }));
  assert.ok(!isHostToEngine(null));
  assert.ok(isEngineToHost({ type: 'response', id: 3, ok: true, result: {} }));
  assert.ok(isEngineToHost({ type: 'response', id: 3, ok: false, error: { name: 'E', message: 'm' } }));
  assert.ok(isEngineToHost({ type: 'stream', id: 3, data: { text: 'a' } }));
  assert.ok(isEngineToHost({ type: 'event', event: { kind: 'log', level: 'info', message: 'x' } }));
  assert.ok(!isEngineToHost({ type: 'response', id: 3, ok: false }));
  assert.ok(!isEngineToHost({ type: 'event' }));
  assert.ok(!isEngineToHost('garbage'));
  const e = new RangeError('bad');
  assert.deepEqual(toWireError(e), { name: 'RangeError', message: 'bad' });
  assert.deepEqual(toWireError('plain'), { name: 'Error', message: 'plain' });
});
