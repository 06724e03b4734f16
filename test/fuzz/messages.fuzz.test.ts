// Fuzzing the message boundaries: what a webview sends the host (parseChatToHost, parseMemoryToHost: untrusted,
// a webview renders model output), the envelopes between host and engine process (isHostToEngine,
// isEngineToHost), and the engine server fed arbitrary message sequences. Each check returns a message of
// exactly one kind (its fields typed and bounded, taken from the input) or null / false; none throws; the
// server answers every request exactly once and never throws or leaves a rejection unhandled.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelFormatError } from '../../src/engine/errors';
import { EngineServer, type EngineBackend } from '../../src/extension/engineServer';
import { isEngineToHost, isHostToEngine, REQUEST_KINDS, type EngineToHost } from '../../src/extension/protocol';
import { MAX_CODE_CHARS, MAX_QUESTION_CHARS, parseChatToHost, parseMemoryToHost, type ChatToHost } from '../../src/webview/protocol';
import { check, checkAsync, corpus, fc, oddJson, tallyOutcome } from './fuzz';

const TARGET = 'messages';

interface Case {
  name: string;
  /** a chat webview message (JSON) */
  chat?: unknown;
  /** a host -> engine message sequence (JSON) */
  engine?: unknown[];
}

const anything = fc.anything({
  maxDepth: 3,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
});

const FIELDS: Record<ChatToHost['type'], string[]> = {
  ready: [],
  stop: [],
  clearHistory: [],
  ask: ['question'],
  copy: ['text'],
  insert: ['code'],
  newFile: ['code', 'language'],
  openFile: ['path', 'line'],
};

/** A message parseChatToHost returned: one kind, its fields only, typed and bounded, equal to the input's. */
function checkChat(input: unknown, m: ChatToHost | null): void {
  tallyOutcome(m !== null);
  if (m === null) return;
  assert.ok(Object.prototype.hasOwnProperty.call(FIELDS, m.type), `kind ${m.type}`);
  const allowed = FIELDS[m.type];
  for (const k of Object.keys(m)) assert.ok(k === 'type' || allowed.includes(k), `field ${k} of ${m.type}`);
  const src = input as Record<string, unknown>;
  for (const [k, v] of Object.entries(m)) assert.ok(Object.is(src[k], v), `${k} is the input's`);
  switch (m.type) {
    case 'ask':
      assert.ok(typeof m.question === 'string' && m.question.trim() !== '' && m.question.length <= MAX_QUESTION_CHARS);
      break;
    case 'copy':
      assert.ok(typeof m.text === 'string' && m.text.length <= MAX_CODE_CHARS);
      break;
    case 'insert':
    case 'newFile':
      assert.ok(typeof m.code === 'string' && m.code.length <= MAX_CODE_CHARS);
      break;
    case 'openFile':
      // eslint-disable-next-line no-control-regex
      assert.ok(typeof m.path === 'string' && m.path.trim() !== '' && !/[\u0000-\u001f\u007f]/.test(m.path) && !/^[A-Za-z][A-Za-z0-9+.-]+:/.test(m.path));
      if (m.line !== undefined) assert.ok(Number.isInteger(m.line) && m.line >= 1);
      break;
  }
  assert.deepEqual(parseChatToHost({ ...m }), m, 'a parsed message parses to itself');
}

const oddString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom('', '   ', 'src/a.ts', './a b.ts', 'C:\\a.ts', 'command:x', 'http://x', 'vscode:x', 'a\u0000b', 'a\nb', '\u007f', 'python', 'c++', 'x"><script>'),
  fc.nat({ max: 3 }).map((i) => 'x'.repeat([MAX_QUESTION_CHARS, MAX_QUESTION_CHARS + 1, MAX_CODE_CHARS, MAX_CODE_CHARS + 1][i])),
);
const oddField = fc.oneof({ weight: 4, arbitrary: oddString }, { weight: 1, arbitrary: fc.constantFrom<unknown>(0, 1, 42, -1, 1.5, 1e7, 1e8, NaN, null, true, ['a'], { toString: 'x' }) }, { weight: 1, arbitrary: oddJson() });

/**
 * Near-valid chat messages: a kind with its own fields (each sometimes missing, with odd values: long,
 * blank, control characters, URL schemes, numbers out of range) and sometimes a field too many.
 */
const chatMessage = fc
  .record({
    type: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...(Object.keys(FIELDS) as ChatToHost['type'][])) }, { weight: 1, arbitrary: fc.constantFrom('ASK', '', '__proto__', 'constructor', 'toString', 'hasOwnProperty') }),
    values: fc.record({ question: oddField, text: oddField, code: oddField, language: oddField, path: oddField, line: fc.oneof(fc.integer({ min: -2, max: 20_000_000 }), oddField) }),
    drop: fc.array(fc.nat({ max: 7 }), { minLength: 3, maxLength: 3 }), // 0: the field is left out
    extra: fc.option(fc.tuple(fc.constantFrom('question', 'text', 'code', 'path', 'extra', '__proto__'), oddField), { freq: 6 }),
    json: fc.boolean(),
  })
  .map(({ type, values, drop, extra, json }) => {
    const m: Record<string, unknown> = { type };
    (Object.prototype.hasOwnProperty.call(FIELDS, type) ? FIELDS[type as ChatToHost['type']] : []).forEach((k, i) => {
      if (drop[i] !== 0) m[k] = (values as Record<string, unknown>)[k];
    });
    if (extra) Object.defineProperty(m, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true });
    // Through JSON, as a webview message arrives (also drops undefined), or as it is.
    return json ? JSON.parse(JSON.stringify(m)) : m;
  });

/** A fake backend: nothing loads, nothing downloads. */
const backend: EngineBackend = {
  load: async () => {
    throw new ModelFormatError('fuzz: no model');
  },
  download: async () => {
    throw new ModelFormatError('fuzz: no downloads');
  },
};

/** Feeds `msgs` to a fresh engine server; every request before the first shutdown gets exactly one response. */
async function serve(msgs: unknown[]): Promise<void> {
  const sent: EngineToHost[] = [];
  const server = new EngineServer((m) => sent.push(m), backend, { memoryIntervalMs: 0, exit: () => undefined });
  const expected = new Map<number, number>();
  let open = true;
  for (const m of msgs) {
    assert.doesNotThrow(() => server.handle(m));
    tallyOutcome(isHostToEngine(m));
    if (open && isHostToEngine(m) && m.type === 'request') expected.set(m.id, (expected.get(m.id) ?? 0) + 1);
    if (isHostToEngine(m) && m.type === 'request' && m.kind === 'shutdown') open = false;
  }
  // Let the queued requests finish.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  for (const m of sent) assert.ok(isEngineToHost(JSON.parse(JSON.stringify(m))), 'what the server sends passes the host check');
  if (open) {
    const got = new Map<number, number>();
    for (const m of sent) if (m.type === 'response') got.set(m.id, (got.get(m.id) ?? 0) + 1);
    assert.deepEqual(got, expected, 'one response per request');
  }
}

const hostMessage = fc.oneof(
  anything,
  fc.record(
    {
      type: fc.constantFrom<unknown>('request', 'cancel', 'response', 7),
      id: fc.oneof(fc.nat({ max: 5 }), fc.constantFrom<unknown>(-1, 1.5, NaN, Infinity, '1', null)),
      kind: fc.oneof(fc.constantFrom(...REQUEST_KINDS), fc.constantFrom<unknown>('eval', '__proto__', 'constructor', '')),
      params: fc.oneof(
        fc.constant({}),
        fc.dictionary(fc.constantFrom('folder', 'question', 'maxNewTokens', 'path', 'prefix', 'suffix', 'maxTokens', 'maxLines', 'modelDir', 'backend', 'protocolVersion', 'repoId', 'extraIgnore', 'maxFileBytes'), oddJson(), { maxKeys: 4 }),
        oddJson(),
      ),
    },
    { requiredKeys: ['type'] },
  ),
);

/** `v` as it arrives over a JSON channel (undefined where JSON has no value for it). */
function viaJson(v: unknown): unknown {
  try {
    const text = JSON.stringify(v);
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return null; // BigInt: not sendable over JSON
  }
}

describe('fuzz: messages', () => {
  const cases = corpus<Case>(TARGET).cases;

  test('committed cases', async () => {
    for (const c of cases) {
      if (c.chat !== undefined) checkChat(c.chat, parseChatToHost(c.chat));
      if (c.engine !== undefined) await serve(c.engine);
    }
  });

  test('chat webview messages', () => {
    check(
      TARGET,
      'chat',
      1500,
      fc.property(fc.oneof(chatMessage, anything), (m) => checkChat(m, parseChatToHost(m))),
    );
  });

  test('memory panel messages and engine envelopes', () => {
    check(
      TARGET,
      'envelopes',
      1500,
      fc.property(fc.oneof(anything, hostMessage, fc.record({ type: fc.constantFrom('ready', 'stream', 'response', 'event'), id: fc.nat(), ok: fc.boolean(), error: oddJson(), event: oddJson() }, { requiredKeys: ['type'] })), (m) => {
        const mem = parseMemoryToHost(m);
        tallyOutcome(mem !== null || isHostToEngine(m) || isEngineToHost(m));
        assert.ok(mem === null || (mem.type === 'ready' && Object.keys(mem).length === 1));
        if (isHostToEngine(m)) {
          assert.ok(typeof m.id === 'number' && (m.type === 'cancel' || (REQUEST_KINDS.includes(m.kind) && typeof m.params === 'object' && m.params !== null)));
        }
        if (isEngineToHost(m)) assert.ok(['stream', 'response', 'event'].includes(m.type));
      }),
    );
  });

  test('the engine server fed message sequences', async () => {
    await checkAsync(
      TARGET,
      'server',
      300,
      // The IPC channel serialises as JSON (child_process.fork's default), so the server gets JSON values.
      fc.asyncProperty(fc.array(hostMessage.map(viaJson), { maxLength: 8 }), (msgs) => serve(msgs)),
    );
  });
});
