// The memory panel webview (a browser bundle): live uPlot charts of memory by component and of the tokens in
// the state, and a table of the latest values against the budgets. Colours come from the editor's theme, and
// follow it when it changes.

import './litNonce';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './memory.css';
import { formatBytes, formatTokens } from '../extension/format';
import type { HostToMemory, MemoryBudgets, MemorySample } from './protocol';

interface VsCodeApi {
  postMessage(m: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;
const api = acquireVsCodeApi();

const MB = 1024 * 1024;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** The components, in chart and table order. */
const COMPONENTS: { key: keyof Omit<MemorySample, 'at' | 'tokens'>; label: string; colour: [string, string] }[] = [
  { key: 'weights', label: 'Weights', colour: ['--vscode-charts-blue', '#3794ff'] },
  { key: 'state', label: 'Mamba state', colour: ['--vscode-charts-green', '#89d185'] },
  { key: 'kvGpu', label: 'KV on GPU', colour: ['--vscode-charts-orange', '#d18616'] },
  { key: 'kvHost', label: 'KV in host memory', colour: ['--vscode-charts-yellow', '#cca700'] },
  { key: 'kvDisk', label: 'KV on disk', colour: ['--vscode-charts-purple', '#b180d7'] },
  { key: 'scratch', label: 'Scratch', colour: ['--vscode-charts-red', '#f14c4c'] },
];

const samples: MemorySample[] = [];
let budgets: MemoryBudgets = { kvGpuBytes: 0, kvHostBytes: 0 };

function total(s: MemorySample): number {
  return s.weights + s.state + s.kvGpu + s.kvHost + s.scratch;
}

function axes(unit: (v: number) => string): uPlot.Axis[] {
  const fg = cssVar('--vscode-foreground', '#ccc');
  const grid = { stroke: cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.25)'), width: 1 };
  return [
    { stroke: fg, grid, ticks: grid },
    { stroke: fg, grid, ticks: grid, size: 76, values: (_u, vals) => vals.map(unit) },
  ];
}

interface Chart {
  plot: uPlot;
  resize: ResizeObserver;
}

function makeChart(container: HTMLElement, series: uPlot.Series[], unit: (v: number) => string): Chart {
  const opts: uPlot.Options = {
    width: Math.max(200, container.clientWidth),
    height: 220,
    series: [{}, ...series],
    axes: axes(unit),
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [[]], container);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, container.clientWidth), height: 220 }));
  resize.observe(container);
  return { plot, resize };
}

/** The theme colours the charts are drawn in; when they change, the charts are made again. */
function palette(): string {
  const vars = ['--vscode-foreground', '--vscode-editorWidget-border', '--vscode-editor-selectionBackground'];
  return [...COMPONENTS.map((c) => cssVar(c.colour[0], c.colour[1])), ...vars.map((v) => cssVar(v, ''))].join(' ');
}

let charts: { memory: Chart; tokens: Chart; palette: string } | null = null;

function makeCharts(): void {
  for (const c of charts ? [charts.memory, charts.tokens] : []) {
    c.resize.disconnect();
    c.plot.destroy();
  }
  charts = {
    palette: palette(),
    memory: makeChart(
      document.getElementById('memoryChart')!,
      [
        ...COMPONENTS.map((c) => ({ label: c.label, stroke: cssVar(c.colour[0], c.colour[1]), width: 1.5 })),
        { label: 'Total', stroke: cssVar('--vscode-foreground', '#ccc'), width: 2 },
        { label: 'KV GPU budget', stroke: cssVar('--vscode-charts-orange', '#d18616'), width: 1, dash: [6, 4] },
      ],
      (v) => `${Math.round(v)} MB`,
    ),
    tokens: makeChart(
      document.getElementById('tokenChart')!,
      [{ label: 'Tokens', stroke: cssVar('--vscode-charts-blue', '#3794ff'), width: 2, fill: cssVar('--vscode-editor-selectionBackground', 'rgba(55,148,255,0.15)') }],
      (v) => formatTokens(v),
    ),
  };
}

// VS Code changes the body's theme class and the --vscode-* variables (on <html>) when the theme changes.
let themeCheck: number | null = null;
const onThemeChange = () => {
  themeCheck ??= requestAnimationFrame(() => {
    themeCheck = null;
    if (charts && palette() !== charts.palette) {
      makeCharts();
      redraw();
    }
  });
};
const themeObserver = new MutationObserver(onThemeChange);
themeObserver.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-id'] });
themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });

function redraw(): void {
  const t = samples.map((s) => s.at / 1000);
  charts!.memory.plot.setData([
    t,
    ...COMPONENTS.map((c) => samples.map((s) => s[c.key] / MB)),
    samples.map((s) => total(s) / MB),
    samples.map(() => (budgets.kvGpuBytes > 0 ? budgets.kvGpuBytes / MB : null)),
  ]);
  charts!.tokens.plot.setData([t, samples.map((s) => s.tokens)]);
  renderTable();
}

function renderTable(): void {
  const table = document.getElementById('current') as HTMLTableElement;
  const s = samples.at(-1);
  const rows: [string, string][] = s
    ? [
        ...COMPONENTS.map((c): [string, string] => {
          const budget = c.key === 'kvGpu' ? budgets.kvGpuBytes : c.key === 'kvHost' ? budgets.kvHostBytes : 0;
          return [c.label, budget > 0 ? `${formatBytes(s[c.key])} of ${formatBytes(budget)}` : formatBytes(s[c.key])];
        }),
        ['Total in memory', formatBytes(total(s))],
        ['Tokens in the state', formatTokens(s.tokens)],
      ]
    : [['', 'No report from the engine yet.']];
  table.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(th, td);
      return tr;
    }),
  );
}

window.addEventListener('message', (event: MessageEvent) => {
  const m = event.data as HostToMemory;
  if (!m || typeof m !== 'object') return;
  if (m.type === 'init') {
    samples.splice(0, samples.length, ...m.samples);
    budgets = m.budgets;
  } else if (m.type === 'sample') {
    samples.push(m.sample);
    if (samples.length > 3600) samples.shift();
    budgets = m.budgets;
  } else return;
  redraw();
});

makeCharts();
renderTable();
api.postMessage({ type: 'ready' });
