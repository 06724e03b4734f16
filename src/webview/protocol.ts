// The host <-> webview boundary: every message each way, as a `type` union, and a hand-written schema check
// for each message kind that comes from a webview. A webview renders model output, so the host treats what it
// sends as untrusted: an unknown type, a missing or extra field, a wrong type or an oversized string is
// rejected before anything is used. No vscode import: the webview bundles share this file with the host.

// ---- chat view ---------------------------------------------------------------------------------------------

/** One question and its answer, as kept in the workspace's chat history. */
export interface ChatTurn {
  id: string;
  question: string;
  answer: string;
  /** Epoch milliseconds when the question was asked. */
  at: number;
  /** Why the answer ended early, shown under it. */
  error?: string;
  stopped?: boolean;
  /** A word from the engine on the answer, shown under it. */
  note?: string;
}

/** Messages the chat webview sends to the host. */
export type ChatToHost =
  | { type: 'ready' }
  | { type: 'ask'; question: string }
  | { type: 'stop' }
  | { type: 'copy'; text: string }
  | { type: 'insert'; code: string }
  | { type: 'newFile'; code: string; language: string }
  | { type: 'openFile'; path: string; line?: number }
  | { type: 'clearHistory' };

/** Messages the host sends to the chat webview. */
export type HostToChat =
  | { type: 'history'; turns: ChatTurn[] }
  | { type: 'turnStart'; turn: ChatTurn }
  | { type: 'delta'; id: string; text: string }
  | { type: 'turnEnd'; id: string; answer: string; error?: string; stopped?: boolean; note?: string }
  | { type: 'status'; text: string; busy: boolean }
  | { type: 'focusInput' };

// ---- memory panel ------------------------------------------------------------------------------------------

/** One point of the memory panel's time series (bytes, tokens). */
export interface MemorySample {
  at: number; // epoch ms
  weights: number;
  state: number; // Mamba conv + SSM state
  kvGpu: number;
  kvHost: number;
  kvDisk: number;
  scratch: number;
  tokens: number; // tokens in the state
}

export interface MemoryBudgets {
  kvGpuBytes: number; // 0: unbounded
  kvHostBytes: number;
}

export type MemoryToHost = { type: 'ready' };

export type HostToMemory =
  | { type: 'init'; samples: MemorySample[]; budgets: MemoryBudgets }
  | { type: 'sample'; sample: MemorySample; budgets: MemoryBudgets };

// ---- validation --------------------------------------------------------------------------------------------

/** Longest question a user can type into the chat (characters). */
export const MAX_QUESTION_CHARS = 16_000;
/** Longest code block that can be copied, inserted or opened as a new file (characters). */
export const MAX_CODE_CHARS = 1_000_000;
const MAX_PATH_CHARS = 1024;
const MAX_LINE = 10_000_000;
const LANGUAGE_ID = /^[A-Za-z0-9_+#.-]{0,64}$/;

type Plain = Record<string, unknown>;

/** A plain JSON-like object whose keys are exactly `required` plus any of `optional`. */
function shaped(m: unknown, required: readonly string[], optional: readonly string[] = []): m is Plain {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const proto = Object.getPrototypeOf(m);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Object.keys(m);
  for (const k of keys) if (!required.includes(k) && !optional.includes(k)) return false;
  for (const k of required) if (!Object.prototype.hasOwnProperty.call(m, k)) return false;
  return true;
}

function str(v: unknown, max: number, opts: { nonEmpty?: boolean } = {}): v is string {
  return typeof v === 'string' && v.length <= max && (!opts.nonEmpty || v.trim().length > 0);
}

/** A relative or absolute file path as a model writes it: no control characters, no URL scheme. */
function filePath(v: unknown): v is string {
  if (!str(v, MAX_PATH_CHARS, { nonEmpty: true })) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) return false;
  // A scheme ("http:", "command:", "vscode:") is never a workspace file; a Windows drive letter is.
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(v)) return false;
  return true;
}

/** The chat webview's message, or null when it does not match any kind exactly. */
export function parseChatToHost(m: unknown): ChatToHost | null {
  if (!shaped(m, ['type'], ['question', 'text', 'code', 'language', 'path', 'line'])) return null;
  switch (m.type) {
    case 'ready':
    case 'stop':
    case 'clearHistory':
      return shaped(m, ['type']) ? { type: m.type } : null;
    case 'ask':
      return shaped(m, ['type', 'question']) && str(m.question, MAX_QUESTION_CHARS, { nonEmpty: true }) ? { type: 'ask', question: m.question } : null;
    case 'copy':
      return shaped(m, ['type', 'text']) && str(m.text, MAX_CODE_CHARS) ? { type: 'copy', text: m.text } : null;
    case 'insert':
      return shaped(m, ['type', 'code']) && str(m.code, MAX_CODE_CHARS) ? { type: 'insert', code: m.code } : null;
    case 'newFile':
      return shaped(m, ['type', 'code', 'language']) && str(m.code, MAX_CODE_CHARS) && typeof m.language === 'string' && LANGUAGE_ID.test(m.language)
        ? { type: 'newFile', code: m.code, language: m.language }
        : null;
    case 'openFile': {
      if (!shaped(m, ['type', 'path'], ['line']) || !filePath(m.path)) return null;
      if (m.line === undefined) return { type: 'openFile', path: m.path };
      if (typeof m.line !== 'number' || !Number.isInteger(m.line) || m.line < 1 || m.line > MAX_LINE) return null;
      return { type: 'openFile', path: m.path, line: m.line };
    }
    default:
      return null;
  }
}

/** The memory panel's message, or null. */
export function parseMemoryToHost(m: unknown): MemoryToHost | null {
  return shaped(m, ['type']) && m.type === 'ready' ? { type: 'ready' } : null;
}
