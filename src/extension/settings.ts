// The extension's settings, read once per change into one frozen, validated object that is passed down.
// No vscode import: `readSettings` takes a getter (WorkspaceConfiguration.get in the extension).

import type { AskParams, SyncParams } from './protocol';

export type Backend = 'webgpu' | 'cpu';

export interface Settings {
  /** Model folder (config.json + safetensors + tokenizer); '' means the bundled default model. */
  readonly model: string;
  readonly backend: Backend;
  /** sidewinder.quantization: quantize a float checkpoint at load (a quantized one, the bundled model, loads as stored). */
  readonly quantization: 'q4' | 'q8' | 'none';
  readonly kvGpuBudgetMB: number; // 0: unbounded
  readonly kvHostBudgetMB: number;
  readonly maxFileKB: number;
  readonly extraIgnore: readonly string[];
  readonly completion: {
    readonly enabled: boolean;
    readonly debounceMs: number;
    readonly maxTokens: number;
    readonly maxLines: number;
  };
  readonly chat: {
    readonly maxAnswerTokens: number;
  };
}

function int(v: unknown, fallback: number, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fallback;
  return Math.min(max, Math.max(min, Math.round(v)));
}

/** Reads `sidewinder.*` through `get` (keys without the prefix); bad values fall back to the defaults. */
export function readSettings(get: (key: string) => unknown): Settings {
  const model = get('model');
  const backend = get('backend');
  const extra = get('extraIgnore');
  const quant = get('quantization');
  return Object.freeze({
    model: typeof model === 'string' ? model.trim() : '',
    backend: backend === 'cpu' ? 'cpu' : 'webgpu',
    quantization: quant === 'q4' || quant === 'q8' ? quant : 'none',
    kvGpuBudgetMB: int(get('kvGpuBudgetMB'), 1024, 0, 1 << 20),
    kvHostBudgetMB: int(get('kvHostBudgetMB'), 4096, 0, 1 << 22),
    maxFileKB: int(get('maxFileKB'), 512, 1, 1 << 20),
    extraIgnore: Object.freeze(Array.isArray(extra) ? extra.filter((g): g is string => typeof g === 'string' && g.trim() !== '') : []),
    completion: Object.freeze({
      enabled: get('completion.enabled') !== false,
      debounceMs: int(get('completion.debounceMs'), 250, 0, 5000),
      maxTokens: int(get('completion.maxTokens'), 64, 1, 1024),
      maxLines: int(get('completion.maxLines'), 8, 1, 200),
    }),
    chat: Object.freeze({
      maxAnswerTokens: int(get('chat.maxAnswerTokens'), 512, 1, 8192),
    }),
  });
}

/** Settings whose change needs the engine reloaded (the rest apply to the next request). */
export function needsEngineRestart(a: Settings, b: Settings): boolean {
  return a.model !== b.model || a.backend !== b.backend || a.quantization !== b.quantization || a.kvGpuBudgetMB !== b.kvGpuBudgetMB || a.kvHostBudgetMB !== b.kvHostBudgetMB;
}

/** Settings whose change needs the workspace re-read. */
export function needsReingest(a: Settings, b: Settings): boolean {
  return a.maxFileKB !== b.maxFileKB || a.extraIgnore.join('\0') !== b.extraIgnore.join('\0');
}

/** How the engine is asked to read a workspace folder: these settings' walk options (the CLI's defaults are the same). */
export function syncParams(folder: string, s: Settings): SyncParams {
  return { folder, maxFileBytes: s.maxFileKB * 1024, extraIgnore: [...s.extraIgnore] };
}

/** How the engine is asked a question about a folder. */
export function askParams(folder: string, question: string, s: Settings): AskParams {
  return { folder, question, maxNewTokens: s.chat.maxAnswerTokens };
}
