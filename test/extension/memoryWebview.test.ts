// The memory panel's page (dist/webview/memory.js, the bundle the webview loads) run under jsdom: it asks for
// the history, draws two uPlot charts, keeps a table of the latest report against the budgets, and redraws
// its charts in the new colours when the editor's theme changes. jsdom has no canvas: drawing calls go to a
// context that does nothing (the legend, which is HTML, shows the series' colours).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import type { HostToMemory, MemorySample } from '../../src/webview/protocol';

const BUNDLE = path.resolve(__dirname, '..', 'webview', 'memory.js'); // dist/webview/memory.js
const MB = 1024 * 1024;

type Win = Window & typeof globalThis & { eval(code: string): unknown };
const { JSDOM } = createRequire(__filename)('jsdom') as { JSDOM: new (html: string, o: object) => { window: Win } };

function page(): { w: Win; posted: unknown[] } {
  const { window: w } = new JSDOM(
    `<!DOCTYPE html><html><body class="vscode-dark" style="--vscode-charts-blue: #0000ff; --vscode-foreground: #eeeeee">
<table id="current"></table><div id="memoryChart"></div><div id="tokenChart"></div></body></html>`,
    { runScripts: 'outside-only', pretendToBeVisual: true },
  );
  const posted: unknown[] = [];
  Object.assign(w, {
    acquireVsCodeApi: () => ({ postMessage: (m: unknown) => posted.push(m) }),
    ResizeObserver: class {
      observe(): void {}
      disconnect(): void {}
    },
    matchMedia: () => ({ matches: false, addListener() {}, removeListener() {}, addEventListener() {}, removeEventListener() {} }),
    // A path that records nothing (moveTo, lineTo, rect, ...).
    Path2D: function Path2D() {
      return new Proxy({}, { get: () => () => undefined });
    },
  });
  w.HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement) {
    const ctx: Record<string, unknown> = { canvas: this, measureText: () => ({ width: 10 }) };
    return new Proxy(ctx, { get: (t, k: string) => (k in t ? t[k] : () => undefined), set: () => true });
  } as never;
  w.eval(fs.readFileSync(BUNDLE, 'utf8'));
  return { w, posted };
}

function sample(i: number): MemorySample {
  return { at: 1_700_000_000_000 + i * 1000, weights: MB, state: 2 * MB, kvGpu: 40 * MB, kvHost: 0, kvDisk: 3 * MB, scratch: MB / 2, tokens: 1000 * i };
}

function post(w: Win, m: HostToMemory | object | string): void {
  w.dispatchEvent(new w.MessageEvent('message', { data: m }));
}

function table(w: Win): Record<string, string> {
  return Object.fromEntries(Array.from(w.document.querySelectorAll('#current tr')).map((tr) => [tr.querySelector('th')!.textContent, tr.querySelector('td')!.textContent]));
}

/** The colour of each series in the memory chart's legend, by label. */
function legend(w: Win): Record<string, string> {
  const chart = w.document.querySelector('#memoryChart')!;
  return Object.fromEntries(
    Array.from(chart.querySelectorAll('.u-series')).map((s) => [s.querySelector('.u-label')?.textContent ?? '', (s.querySelector('.u-marker') as HTMLElement | null)?.style.borderColor ?? '']),
  );
}

test('memory page: asks for the history, draws both charts, tabulates the latest report against the budgets', () => {
  const { w, posted } = page();
  assert.deepEqual(JSON.parse(JSON.stringify(posted)), [{ type: 'ready' }]);
  assert.equal(w.document.querySelectorAll('.uplot').length, 2);
  assert.deepEqual(table(w), { '': 'No report from the engine yet.' });
  assert.deepEqual(Object.keys(legend(w)), ['Time', 'Weights', 'Mamba state', 'KV on GPU', 'KV in host memory', 'KV on disk', 'Scratch', 'Total', 'KV GPU budget']);

  post(w, { type: 'init', samples: [sample(1), sample(2), sample(3)], budgets: { kvGpuBytes: 1024 * MB, kvHostBytes: 0 } });
  assert.deepEqual(table(w), {
    Weights: '1 MB',
    'Mamba state': '2 MB',
    'KV on GPU': '40 MB of 1 GB',
    'KV in host memory': '0 B',
    'KV on disk': '3 MB',
    Scratch: '512 KB',
    'Total in memory': '44 MB', // 43.5 MB: the disk is not memory
    'Tokens in the state': '3K',
  });
  post(w, { type: 'sample', sample: { ...sample(4), kvGpu: 80 * MB }, budgets: { kvGpuBytes: 1024 * MB, kvHostBytes: 4096 * MB } });
  assert.equal(table(w)['KV on GPU'], '80 MB of 1 GB');
  assert.equal(table(w)['KV in host memory'], '0 B of 4 GB');
  assert.equal(table(w)['Tokens in the state'], '4K');
  // Anything else is ignored.
  post(w, { type: 'sample' });
  post(w, 'garbage');
  assert.equal(table(w)['Tokens in the state'], '4K');
  w.close();
});

test('memory page: a theme change redraws the charts in the new colours', async () => {
  const { w } = page();
  post(w, { type: 'init', samples: [sample(1)], budgets: { kvGpuBytes: 0, kvHostBytes: 0 } });
  assert.equal(legend(w).Weights, 'rgb(0, 0, 255)');
  assert.equal(legend(w).Total, 'rgb(238, 238, 238)');
  // As VS Code does: new variables, new theme class.
  w.document.body.style.setProperty('--vscode-charts-blue', '#ff0000');
  w.document.body.style.setProperty('--vscode-foreground', '#111111');
  w.document.body.className = 'vscode-light';
  await new Promise((r) => setTimeout(r, 100)); // a frame
  assert.equal(legend(w).Weights, 'rgb(255, 0, 0)');
  assert.equal(legend(w).Total, 'rgb(17, 17, 17)');
  assert.equal(w.document.querySelectorAll('.uplot').length, 2, 'the old charts are gone');
  assert.equal(table(w)['Tokens in the state'], '1K', 'the data is drawn again');
  // A class change that leaves the colours as they are does not rebuild anything.
  const before = w.document.querySelector('#memoryChart .uplot');
  w.document.body.className = 'vscode-light focus';
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(w.document.querySelector('#memoryChart .uplot'), before);
  w.close();
});
