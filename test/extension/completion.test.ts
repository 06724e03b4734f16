// The pure parts of inline completion: LRU cache, stop rules, FIM prompt building, debounce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { delay, KeyedDebouncer, LatestOnly, StoppedError, unlessAborted } from '../../src/extension/completion/debounce';
import { buildFimPrompt, hasFim, type FimSpecialTokens } from '../../src/engine/completion/fim';
import { CompletionCache, LruCache } from '../../src/extension/completion/lru';
import { applyStopRules, completionMode, finishCompletion, type StopContext } from '../../src/engine/completion/stopRules';

// ---- LRU ----------------------------------------------------------------------------------------------------

test('LruCache evicts the least recently used entry', () => {
  const c = new LruCache<string, number>(2);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recent
  c.set('c', 3); // evicts b
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('a'), 1);
  assert.equal(c.get('c'), 3);
  assert.equal(c.size, 2);
  c.set('a', 10); // update moves to the front
  c.set('d', 4); // evicts c
  assert.deepEqual([...c.entries()], [['d', 4], ['a', 10]]);
  assert.throws(() => new LruCache(0), RangeError);
});

test('CompletionCache: exact hits, typed-through hits, misses', () => {
  const c = new CompletionCache(4);
  const key = { document: 'file:///a.ts', prefix: 'function f() {\n  ret', suffix: '\n}' };
  c.set(key, 'urn 1;');
  assert.equal(c.get(key), 'urn 1;');
  // The user typed "ur": the rest of the suggestion still applies.
  assert.equal(c.get({ ...key, prefix: key.prefix + 'ur' }), 'n 1;');
  // Typed something else: miss.
  assert.equal(c.get({ ...key, prefix: key.prefix + 'x' }), undefined);
  // Typed the whole suggestion: nothing left to suggest from the cache.
  assert.equal(c.get({ ...key, prefix: key.prefix + 'urn 1;' }), undefined);
  // Another document or another suffix: miss.
  assert.equal(c.get({ ...key, document: 'file:///b.ts' }), undefined);
  assert.equal(c.get({ ...key, suffix: '' }), undefined);
  // A cached empty completion is a hit ("nothing to suggest here").
  c.set({ ...key, prefix: 'x' }, '');
  assert.equal(c.get({ ...key, prefix: 'x' }), '');
});

// ---- stop rules ---------------------------------------------------------------------------------------------

function ctx(linePrefix: string, suffix: string, over: Partial<StopContext> = {}): StopContext {
  return { mode: completionMode(linePrefix, suffix.split('\n', 1)[0]), maxLines: 8, linePrefix, suffix, ...over };
}

test('completionMode: a line in the middle of code, a block on an empty line or after an opener', () => {
  assert.equal(completionMode('const x = foo(', 'bar);'), 'line'); // code after the cursor
  assert.equal(completionMode('  ', ''), 'block');
  assert.equal(completionMode('function f() {', ''), 'block');
  assert.equal(completionMode('def f(x):', ''), 'block');
  assert.equal(completionMode('const f = () =>', ''), 'block');
  assert.equal(completionMode('foo(', ')'), 'block'); // only closers after the cursor
  assert.equal(completionMode('return a +', ''), 'line');
});

test('line mode stops at the end of the line', () => {
  const c = ctx('const total = ', '\nconsole.log(total);');
  assert.equal(c.mode, 'line');
  assert.deepEqual(applyStopRules('items.length', c), { done: false, text: 'items.length' });
  assert.deepEqual(applyStopRules('items.length;\nconsole.log', c), { done: true, text: 'items.length;' });
});

test('a closing bracket the suffix already has is not written twice', () => {
  const c = ctx('const x = foo(', 'bar);');
  assert.deepEqual(applyStopRules('a, b)', { ...c, suffix: ');' }), { done: true, text: 'a, b' });
  // Brackets the completion opens itself are fine.
  assert.deepEqual(applyStopRules('g(a), b', { ...c, suffix: ');' }), { done: false, text: 'g(a), b' });
  // Brackets inside strings do not count.
  assert.deepEqual(applyStopRules('")", b', { ...c, suffix: ');' }), { done: false, text: '")", b' });
});

test('line mode drops a repeat of the text after the cursor', () => {
  const c = ctx('let x ', '= 5;');
  assert.equal(c.mode, 'line');
  assert.deepEqual(applyStopRules(': number = 5;', c), { done: true, text: ': number ' });
  assert.equal(finishCompletion(': number ', c), ': number '); // the space before "= 5;" stays
});

test('block mode: stops at a dedent (end of block), Python style', () => {
  const c = ctx('    ', '\n', { mode: 'block' });
  const r = applyStopRules('x = 1\n    return x\n\ndef other():\n    pass', c);
  assert.deepEqual(r, { done: true, text: 'x = 1\n    return x\n' });
  assert.equal(finishCompletion(r.text, c), 'x = 1\n    return x');
});

test('block mode: keeps the closing brace of the block unless the suffix has it', () => {
  const open = ctx('function f() {', '');
  assert.equal(open.mode, 'block');
  assert.deepEqual(applyStopRules('\n  return 1;\n}\n\nfunction g() {', open), { done: true, text: '\n  return 1;\n}' });
  // The suffix already closes the block: stop before the brace.
  const closed = ctx('  ', '\n}\n', { mode: 'block' });
  const r = applyStopRules('return 1;\n}\n', closed);
  assert.equal(r.done, true);
  assert.equal(finishCompletion(r.text, closed), 'return 1;');
});

test('block mode: a nested block the completion opens and closes is kept whole', () => {
  const c = ctx('  ', '\n}', { mode: 'block' });
  const text = 'if (x) {\n    y();\n  }\n  z();';
  assert.deepEqual(applyStopRules(text, c), { done: false, text });
});

test('block mode: two blank lines end it, and so does the line budget', () => {
  const c = ctx('', '', { mode: 'block' });
  assert.deepEqual(applyStopRules('a()\n\n\nb()', c), { done: true, text: 'a()\n' });
  const lines = Array.from({ length: 12 }, (_, i) => `x${i}()`).join('\n');
  const r = applyStopRules(lines, { ...c, maxLines: 3 });
  assert.deepEqual(r, { done: true, text: 'x0()\nx1()\nx2()' });
});

test('block mode: stops when it reaches a line the suffix already starts with', () => {
  const c = ctx('  ', '\n  return total;\n}', { mode: 'block' });
  const r = applyStopRules('total += 1;\n  return total;\n}', c);
  assert.deepEqual(r, { done: true, text: 'total += 1;' });
});

// ---- FIM ----------------------------------------------------------------------------------------------------

// A character-level "tokenizer": one id per character (its code point).
const encode = (s: string) => Array.from(s, (ch) => ch.codePointAt(0)!);
const FIM: FimSpecialTokens = { fimPrefix: 1001, fimSuffix: 1002, fimMiddle: 1003, fileSep: 1004, fileName: null };

test('FIM prompt: file header, then prefix-suffix-middle', () => {
  assert.ok(hasFim(FIM));
  const p = buildFimPrompt(FIM, encode, { path: 'a.ts', prefix: 'ab', suffix: 'cd' }, { maxPromptTokens: 100 });
  assert.equal(p.mode, 'fim');
  assert.deepEqual(p.ids, [1004, ...encode('a.ts\n'), 1001, ...encode('ab'), 1002, ...encode('cd'), 1003]);
  // With a <filename> token the header is the ingest's framing for a file.
  const named = buildFimPrompt({ ...FIM, fileName: 1005 }, encode, { path: 'a.ts', prefix: 'ab', suffix: '' }, { maxPromptTokens: 100 });
  assert.deepEqual(named.ids, [1005, ...encode('a.ts\n'), 1001, ...encode('ab'), 1002, 1003]);
});

test('FIM prompt: without FIM tokens, the prefix alone (after the ingest framing)', () => {
  const none: FimSpecialTokens = { fimPrefix: null, fimSuffix: 1002, fimMiddle: null, fileSep: null, fileName: null };
  assert.ok(!hasFim(none));
  const p = buildFimPrompt(none, encode, { path: 'x.py', prefix: 'def f(', suffix: '):' }, { maxPromptTokens: 100 });
  assert.equal(p.mode, 'prefix-only');
  assert.deepEqual(p.ids, encode('// File: x.py\ndef f('));
  assert.equal(p.suffixTokens, 0);
});

test('FIM prompt: long sides are cut next to the cursor-far ends to fit the budget', () => {
  const prefix = 'p'.repeat(500) + 'NEAR';
  const suffix = 'NEXT' + 's'.repeat(500);
  const p = buildFimPrompt(FIM, encode, { path: 'a', prefix, suffix }, { maxPromptTokens: 100 });
  assert.equal(p.ids.length, 100);
  const header = 2 + 1; // fileSep + "a\n"
  assert.equal(p.prefixTokens + p.suffixTokens, 100 - header - 3);
  assert.ok(p.suffixTokens <= Math.floor((100 - header - 3) / 4));
  // The prefix keeps its end (next to the cursor), the suffix its start.
  const ids = p.ids;
  const pre = ids.slice(ids.indexOf(1001) + 1, ids.indexOf(1002));
  const suf = ids.slice(ids.indexOf(1002) + 1, ids.indexOf(1003));
  assert.deepEqual(pre.slice(-4), encode('NEAR'));
  assert.deepEqual(suf.slice(0, 4), encode('NEXT'));
  // A short suffix leaves its room to the prefix.
  const q = buildFimPrompt(FIM, encode, { path: 'a', prefix, suffix: 'x' }, { maxPromptTokens: 100 });
  assert.equal(q.suffixTokens, 1);
  assert.equal(q.ids.length, 100);
  assert.throws(() => buildFimPrompt(FIM, encode, { path: 'a', prefix, suffix }, { maxPromptTokens: 3 }), RangeError);
});

// ---- debounce -----------------------------------------------------------------------------------------------

test('delay resolves true after the time, false when aborted', async () => {
  assert.equal(await delay(5), true);
  const ac = new AbortController();
  const p = delay(10_000, ac.signal);
  ac.abort();
  assert.equal(await p, false);
  assert.equal(await delay(5, AbortSignal.abort()), false);
});

test('KeyedDebouncer runs once per burst, per key', async () => {
  const runs: string[] = [];
  const d = new KeyedDebouncer<string>(20, (k) => runs.push(k));
  d.schedule('a');
  d.schedule('a');
  d.schedule('b');
  await delay(5);
  d.schedule('a'); // restarts a's wait
  assert.ok(d.pending('a'));
  await delay(60);
  assert.deepEqual(runs.sort(), ['a', 'b']);
  d.schedule('a');
  d.dispose();
  await delay(40);
  assert.deepEqual(runs.sort(), ['a', 'b']);
});

test('LatestOnly aborts the previous request and follows its parent signal', () => {
  const l = new LatestOnly();
  const first = l.next();
  const parent = new AbortController();
  const second = l.next(parent.signal);
  assert.ok(first.aborted);
  assert.ok(!second.aborted);
  parent.abort();
  assert.ok(second.aborted);
  // A parent of an old request aborting later does not touch the newest one.
  const p3 = new AbortController();
  const third = l.next(p3.signal);
  const fourth = l.next();
  p3.abort();
  assert.ok(third.aborted && !fourth.aborted);
});

test('unlessAborted settles as its promise does, or rejects with StoppedError when stopped first', async () => {
  assert.equal(await unlessAborted(Promise.resolve(7), new AbortController().signal), 7);
  await assert.rejects(unlessAborted(Promise.reject(new RangeError('x')), new AbortController().signal), RangeError);
  await assert.rejects(unlessAborted(new Promise(() => undefined), AbortSignal.abort()), StoppedError);
  const ac = new AbortController();
  const never = unlessAborted(new Promise(() => undefined), ac.signal);
  setTimeout(() => ac.abort(), 5);
  await assert.rejects(never, (e: unknown) => e instanceof StoppedError && e.name === 'AbortError');
  // Aborting after it settled changes nothing.
  const done = new AbortController();
  const v = await unlessAborted(delay(1).then(() => 'ok'), done.signal);
  done.abort();
  assert.equal(v, 'ok');
});
