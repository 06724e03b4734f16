// The chat page (dist/webview/chat.js, the bundle the sidebar webview loads) run under jsdom with the real
// @vscode-elements components: what each control sends to the host (code block copy / insert / new file, file
// links, Ask, Stop), streamed answers, and the Stop button's state. The host's side of each message is in
// activate.test.ts; hostile Markdown is in markdown.test.ts and the e2e test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import type { ChatTurn, HostToChat } from '../../src/webview/protocol';

const BUNDLE = path.resolve(__dirname, '..', 'webview', 'chat.js'); // dist/webview/chat.js
const CSS = path.resolve(__dirname, '..', 'webview', 'chat.css');

type Win = Window & typeof globalThis & { eval(code: string): unknown };
const { JSDOM, VirtualConsole } = createRequire(__filename)('jsdom') as {
  JSDOM: new (html: string, o: object) => { window: Win };
  VirtualConsole: new () => object;
};

/** The page as ChatViewProvider writes it, with the bundle run in it; `sent` gets what it posts to the host. */
function page(): { w: Win; sent: Record<string, unknown>[] } {
  const { window: w } = new JSDOM(
    `<!DOCTYPE html><html><body>
<div id="log" role="log" aria-live="polite"></div>
<div id="status" class="status"></div>
<div id="askForm" class="ask">
  <vscode-textarea id="question" rows="3"></vscode-textarea>
  <div class="actions"><vscode-button id="send" icon="send">Ask</vscode-button><vscode-button id="stop" icon="debug-stop" secondary disabled>Stop</vscode-button></div>
</div></body></html>`,
    { runScripts: 'outside-only', pretendToBeVisual: true, virtualConsole: new VirtualConsole() },
  );
  const sent: Record<string, unknown>[] = [];
  Object.assign(w, {
    acquireVsCodeApi: () => ({ postMessage: (m: unknown) => sent.push(JSON.parse(JSON.stringify(m))) }),
    ResizeObserver: class {
      observe(): void {}
      unobserve(): void {}
      disconnect(): void {}
    },
  });
  // jsdom's ElementInternals has no form methods; the components call them (form-associated elements).
  const attach = w.HTMLElement.prototype.attachInternals;
  w.HTMLElement.prototype.attachInternals = function (this: HTMLElement) {
    const internals = attach.call(this);
    return Object.assign(internals, { setFormValue: () => undefined, setValidity: () => undefined, checkValidity: () => true, reportValidity: () => true });
  };
  w.eval(fs.readFileSync(BUNDLE, 'utf8'));
  return { w, sent };
}

function post(w: Win, m: HostToChat): void {
  w.dispatchEvent(new w.MessageEvent('message', { data: m }));
}

const frame = () => new Promise((r) => setTimeout(r, 50));

const turn = (over: Partial<ChatTurn> = {}): ChatTurn => ({ id: 't1', question: 'Where is x set?', answer: '', at: 0, ...over });

test('chat page: code blocks get copy / insert at cursor / new file; file paths open the file', () => {
  const { w, sent } = page();
  assert.deepEqual(sent, [{ type: 'ready' }]);
  const answer = 'It is set in `src/a.ts:12` (see [the config](src/config.json)).\n\n```ts\nconst x = 1;\n```\n\nand\n\n```\nplain\n```\n';
  post(w, { type: 'history', turns: [turn({ answer })] });
  const bars = w.document.querySelectorAll('.code-actions');
  assert.equal(bars.length, 2, 'one toolbar per code block');
  const buttons = Array.from(bars[0].querySelectorAll('vscode-toolbar-button')) as HTMLElement[];
  assert.deepEqual(buttons.map((b) => b.getAttribute('label')), ['Copy', 'Insert at Cursor', 'New File']);
  for (const b of buttons) b.click();
  (bars[1].querySelectorAll('vscode-toolbar-button')[2] as HTMLElement).click();
  const links = Array.from(w.document.querySelectorAll('a.file-link')) as HTMLElement[];
  assert.equal(links.length, 2);
  assert.ok(links.every((a) => !a.hasAttribute('href')), 'file links have no href: the host opens them');
  for (const a of links) a.click();
  assert.deepEqual(sent.slice(1), [
    { type: 'copy', text: 'const x = 1;\n' },
    { type: 'insert', code: 'const x = 1;\n' },
    { type: 'newFile', code: 'const x = 1;\n', language: 'ts' },
    { type: 'newFile', code: 'plain\n', language: '' },
    { type: 'openFile', path: 'src/a.ts', line: 12 },
    { type: 'openFile', path: 'src/config.json' },
  ]);
  w.close();
});

test('chat page: answers stream in; Stop is enabled while one is generated and sends stop', async () => {
  const { w, sent } = page();
  const stop = w.document.getElementById('stop') as HTMLElement & { disabled: boolean };
  const ask = w.document.getElementById('send') as HTMLElement & { disabled: boolean };
  assert.equal(stop.disabled, true);
  post(w, { type: 'turnStart', turn: turn() });
  assert.equal(stop.disabled, false);
  assert.equal(ask.disabled, true);
  post(w, { type: 'delta', id: 't1', text: 'In `src/' });
  post(w, { type: 'delta', id: 't1', text: 'a.ts`, **bold**' });
  await frame();
  const rendered = w.document.querySelector('section.turn .answer')!;
  assert.equal(rendered.querySelector('strong')?.textContent, 'bold');
  assert.equal(rendered.querySelector('a.file-link')?.getAttribute('data-path'), 'src/a.ts');
  stop.click();
  assert.deepEqual(sent.at(-1), { type: 'stop' });
  post(w, { type: 'turnEnd', id: 't1', answer: 'In `src/a.ts`, **bold**', stopped: true });
  assert.equal(stop.disabled, true);
  assert.equal(ask.disabled, false);
  assert.equal(w.document.querySelector('section.turn .meta')!.textContent, 'Stopped.');
  // An error is shown under its answer.
  post(w, { type: 'turnStart', turn: turn({ id: 't2' }) });
  post(w, { type: 'turnEnd', id: 't2', answer: '', error: 'the engine stopped' });
  assert.equal(w.document.querySelectorAll('section.turn .meta')[1].textContent, 'Error: the engine stopped');
  // A note from the engine (a lookup-only model asked something else) too, and again from the history.
  post(w, { type: 'turnStart', turn: turn({ id: 't3' }) });
  post(w, { type: 'turnEnd', id: 't3', answer: '`a.ts`', note: 'This model answers lookups only.' });
  assert.equal(w.document.querySelectorAll('section.turn .meta')[2].textContent, 'This model answers lookups only.');
  post(w, { type: 'history', turns: [turn({ id: 'h1', answer: '`a.ts`', note: 'A note kept.' })] });
  assert.equal(w.document.querySelector('section.turn .meta')!.textContent, 'A note kept.');
  w.close();
});

test('chat page: Enter asks, Shift+Enter does not, an empty question is not sent', () => {
  const { w, sent } = page();
  const q = w.document.getElementById('question') as HTMLElement & { value: string };
  const key = (shiftKey: boolean) => q.dispatchEvent(new w.KeyboardEvent('keydown', { key: 'Enter', shiftKey, bubbles: true, cancelable: true }));
  q.value = '   ';
  key(false);
  q.value = 'What does add do?';
  key(true);
  assert.deepEqual(sent, [{ type: 'ready' }]);
  key(false);
  assert.deepEqual(sent.at(-1), { type: 'ask', question: 'What does add do?' });
  assert.equal(q.value, '');
  q.value = 'And mul?';
  (w.document.getElementById('send') as HTMLElement).click();
  assert.deepEqual(sent.at(-1), { type: 'ask', question: 'And mul?' });
  w.close();
});

test('chat styles use the editor theme: every colour is a --vscode-* variable', () => {
  const css = fs.readFileSync(CSS, 'utf8');
  const colours = [...css.matchAll(/(?:^|[\s;{])((?:background|color|border(?:-[a-z]+)*|outline|fill|stroke)\s*:\s*([^;}]+))/g)];
  assert.ok(colours.length > 10);
  for (const [, decl, value] of colours) {
    if (/radius|collapse|width|style/.test(decl.split(':')[0])) continue;
    const literal = value.replace(/var\(--vscode-[\w-]+(?:,[^)]*)?\)/g, '').match(/#[0-9a-f]{3,8}\b|rgba?\(|hsla?\(|\b(?:white|black|red|blue|green|gray|grey)\b/i);
    assert.equal(literal, null, `a fixed colour: ${decl}`);
  }
});
