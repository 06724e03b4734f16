// Status-bar gauge and memory panel formatting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, formatTokens, gaugeText, memoryTable, totalMemory, weightFormats } from '../../src/extension/format';
import { MemoryHistory, sampleOf } from '../../src/extension/memoryHistory';
import type { MemoryReport } from '../../src/engine/model';

const MB = 1024 * 1024;

test('formatBytes: binary units, about three significant digits', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(10 * 1024), '10 KB');
  assert.equal(formatBytes(412 * MB), '412 MB');
  assert.equal(formatBytes(412.4 * MB), '412 MB');
  assert.equal(formatBytes(1023.7 * MB), '1 GB'); // carried, not "1024 MB"
  assert.equal(formatBytes(1.25 * 1024 * MB), '1.3 GB');
  assert.equal(formatBytes(12.3 * 1024 * MB), '12 GB');
  assert.equal(formatBytes(2 * 1024 * 1024 * MB), '2 TB');
  assert.equal(formatBytes(-1), '? B');
  assert.equal(formatBytes(NaN), '? B');
});

test('formatTokens and formatDuration', () => {
  assert.equal(formatTokens(0), '0');
  assert.equal(formatTokens(950), '950');
  assert.equal(formatTokens(1200), '1.2K');
  assert.equal(formatTokens(12_345), '12K');
  assert.equal(formatTokens(1_250_000), '1.3M');
  assert.equal(formatTokens(25_000_000), '25M');
  assert.equal(formatDuration(45), '45s');
  assert.equal(formatDuration(200), '3m 20s');
  assert.equal(formatDuration(7300), '2h 1m');
});

const report: MemoryReport = {
  weightsBytes: 350 * MB,
  stateBytes: 12 * MB,
  kvGpuBytes: 40 * MB,
  kvHostBytes: 8 * MB,
  kvDiskBytes: 100 * MB,
  scratchBytes: 2 * MB,
  kvBudgetBytes: 0,
};

test('gauge text: total with a unit, ingest progress, states', () => {
  assert.equal(totalMemory(report), 412 * MB); // disk is not memory
  assert.equal(gaugeText({ kind: 'ready', memory: report, tokens: 1000 }), '$(database) 412 MB');
  assert.equal(gaugeText({ kind: 'ingesting', fraction: 0.456, tokens: 12_000 }), '$(sync~spin) 45% · 12K tok');
  assert.equal(gaugeText({ kind: 'ingesting', fraction: null, tokens: 0 }), '$(sync~spin) 0 tok');
  assert.equal(gaugeText({ kind: 'restricted' }), '$(shield) Sidewinder');
  assert.equal(gaugeText({ kind: 'error', message: 'x' }), '$(error) Sidewinder');
});

test('tooltip table: each component, KV against the budgets, the total', () => {
  const md = memoryTable(report, { kvGpuBytes: 1024 * MB, kvHostBytes: 0 }, 12_000);
  assert.match(md, /12K tokens/);
  assert.match(md, /\| Weights \| 350 MB \|/);
  assert.match(md, /\| Mamba state \(constant\) \| 12 MB \|/);
  assert.match(md, /\| KV cache on GPU \| 40 MB \/ 1 GB \(4%\) \|/);
  assert.match(md, /\| KV cache in host memory \| 8 MB \|/);
  assert.match(md, /\| KV cache on disk \| 100 MB \|/);
  assert.match(md, /\| \*\*Total in memory\*\* \| \*\*412 MB\*\* \|/);
  // The engine's own budget wins over the setting.
  assert.match(memoryTable({ ...report, kvBudgetBytes: 80 * MB }, { kvGpuBytes: 1024 * MB, kvHostBytes: 0 }, 0), /40 MB \/ 80 MB \(50%\)/);
});

test('weights by format: nothing for one format, the parts largest first when mixed', () => {
  const base: MemoryReport = { weightsBytes: 0, stateBytes: 0, kvGpuBytes: 0, kvHostBytes: 0, kvDiskBytes: 0, scratchBytes: 0, kvBudgetBytes: 0 };
  assert.equal(weightFormats(base), '');
  assert.equal(weightFormats({ ...base, weightsByFormat: { bf16: 5 << 20 } }), ' (bf16)');
  assert.equal(weightFormats({ ...base, weightsByFormat: { bf16: 1 << 20, q4: 18 << 20, q8: 4 << 20, f32: 0 } }), ` (q4 ${formatBytes(18 << 20)}, q8 ${formatBytes(4 << 20)}, bf16 ${formatBytes(1 << 20)})`);
  const table = memoryTable({ ...base, weightsBytes: 23 << 20, weightsByFormat: { q4: 19 << 20, q8: 4 << 20 } }, { kvGpuBytes: 0, kvHostBytes: 0 }, 0);
  assert.match(table, /\| Weights \| [^|]+ \(q4 [^,]+, q8 [^)]+\) \|/);
});

test('memory history keeps the newest samples in order', () => {
  const h = new MemoryHistory(3);
  assert.equal(h.latest(), null);
  for (let i = 0; i < 5; i++) h.push(sampleOf(report, i, i));
  assert.deepEqual(
    h.all().map((s) => s.tokens),
    [2, 3, 4],
  );
  assert.equal(h.latest()?.tokens, 4);
  assert.equal(h.latest()?.kvGpu, 40 * MB);
});
