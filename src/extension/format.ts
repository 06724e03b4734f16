// Numbers as the status bar and the memory panel show them. No vscode import (unit-tested).

import type { MemoryReport } from '../engine/model';

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** Bytes with a binary unit and about three significant digits: 0 B, 512 B, 1.5 KB, 412 MB, 12.3 GB. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '? B';
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  // 1023.6 MB would print as "1024 MB": carry to the next unit instead.
  if (u < UNITS.length - 1 && Math.round(v) >= 1024) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  const s = v < 10 ? (Math.round(v * 10) / 10).toFixed(1).replace(/\.0$/, '') : String(Math.round(v));
  return `${s} ${UNITS[u]}`;
}

/** A token count: 950, 12K, 1.2M. */
export function formatTokens(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1000) return String(Math.round(n));
  if (n < 1e6) return n < 10_000 ? `${(Math.round(n / 100) / 10).toFixed(1).replace(/\.0$/, '')}K` : `${Math.round(n / 1000)}K`;
  return n < 1e7 ? `${(Math.round(n / 1e5) / 10).toFixed(1).replace(/\.0$/, '')}M` : `${Math.round(n / 1e6)}M`;
}

/** Bytes in memory (GPU + host): weights, the constant Mamba state, KV resident on GPU and host, scratch. */
export function totalMemory(r: MemoryReport): number {
  return r.weightsBytes + r.stateBytes + r.kvGpuBytes + r.kvHostBytes + r.scratchBytes;
}

/** What the status-bar gauge shows. */
export type GaugeState =
  | { kind: 'idle' } // not started yet
  | { kind: 'restricted' } // untrusted workspace
  | { kind: 'loading'; what: string }
  | { kind: 'ingesting'; fraction: number | null; tokens: number }
  | { kind: 'ready'; memory: MemoryReport; tokens: number }
  | { kind: 'error'; message: string };

export function gaugeText(s: GaugeState): string {
  switch (s.kind) {
    case 'idle':
      return '$(database) Sidewinder';
    case 'restricted':
      return '$(shield) Sidewinder';
    case 'loading':
      return '$(loading~spin) Sidewinder';
    case 'ingesting': {
      const pct = s.fraction === null ? '' : `${Math.floor(Math.min(1, Math.max(0, s.fraction)) * 100)}% · `;
      return `$(sync~spin) ${pct}${formatTokens(s.tokens)} tok`;
    }
    case 'ready':
      return `$(database) ${formatBytes(totalMemory(s.memory))}`;
    case 'error':
      return '$(error) Sidewinder';
  }
}

export interface Budgets {
  kvGpuBytes: number; // 0: unbounded
  kvHostBytes: number;
}

/** ' (q4 18.2 MB, q8 4.3 MB, bf16 0.2 MB)': where the weights' bytes are by format, largest first; '' if one format. */
export function weightFormats(r: MemoryReport): string {
  const parts = Object.entries(r.weightsByFormat ?? {}).filter(([, b]) => b > 0).sort((a, b) => b[1] - a[1]);
  if (parts.length === 0) return '';
  if (parts.length === 1) return ` (${parts[0][0]})`;
  return ` (${parts.map(([f, b]) => `${f} ${formatBytes(b)}`).join(', ')})`;
}

function ofBudget(used: number, budget: number): string {
  return budget > 0 ? `${formatBytes(used)} / ${formatBytes(budget)} (${Math.round((100 * used) / budget)}%)` : formatBytes(used);
}

/** The gauge's tooltip as a Markdown table: where the bytes are, against the budgets. */
export function memoryTable(r: MemoryReport, budgets: Budgets, tokens: number): string {
  const kvGpuBudget = r.kvBudgetBytes > 0 ? r.kvBudgetBytes : budgets.kvGpuBytes;
  const rows: [string, string][] = [
    ['Weights', formatBytes(r.weightsBytes) + weightFormats(r)],
    ['Mamba state (constant)', formatBytes(r.stateBytes)],
    ['KV cache on GPU', ofBudget(r.kvGpuBytes, kvGpuBudget)],
    ['KV cache in host memory', ofBudget(r.kvHostBytes, budgets.kvHostBytes)],
    ['KV cache on disk', formatBytes(r.kvDiskBytes)],
    // local attention (RecurrentGemma): the K/V is bounded by the window, whatever the context
    ...(r.kvWindowTokens ? [['KV bound (local attention window)', `${formatTokens(r.kvWindowTokens)} tokens per attention layer`] as [string, string]] : []),
    ['Scratch', formatBytes(r.scratchBytes)],
    ['**Total in memory**', `**${formatBytes(totalMemory(r))}**`],
  ];
  return [
    `**Sidewinder** · ${formatTokens(tokens)} tokens in context`,
    '',
    '| Component | Size |',
    '| :-- | --: |',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
  ].join('\n');
}

/** "3m 20s", "45s": an ETA for the progress notification. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
