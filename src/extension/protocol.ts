// The extension host <-> engine process boundary, whole: every request kind with its params, its streamed
// events and its result; the envelopes that carry them (correlated by id); cancellation as its own message;
// and the unsolicited events the engine sends (memory, logs, device loss). Both sides import only this file
// to talk to each other. No vscode import.
//
//   host -> engine   { type: 'request', id, kind, params }       start a request
//                    { type: 'cancel', id }                       abort it (its AbortSignal fires)
//   engine -> host   { type: 'stream', id, data }                 zero or more, for streaming kinds
//                    { type: 'response', id, ok: true, result }   exactly one per request
//                    { type: 'response', id, ok: false, error }
//                    { type: 'event', event }                     memory reports, logs, device lost
//
// A cancelled request still gets its response (usually ok, with what was done before the cancel), so the
// host always learns when the engine is free again.

import type { IngestProgress } from '../engine/ingest';
import type { MemoryReport } from '../engine/model';

export const PROTOCOL_VERSION = 1;

// ---- requests ----------------------------------------------------------------------------------------------

export interface HelloParams {
  protocolVersion: number;
}
export interface HelloResult {
  protocolVersion: number;
  pid: number;
  node: string; // process.versions.node of the engine process
}

export interface LoadParams {
  modelDir: string;
  backend: 'webgpu' | 'cpu';
  /** Where workspace snapshots are kept (one file per folder and model). */
  cacheDir: string;
  kvGpuBudgetBytes: number; // 0: unbounded
  kvHostBudgetBytes: number;
  /** sidewinder.quantization: a float checkpoint's matrices quantized at load (cached under cacheDir); default none. */
  quant?: 'q4' | 'q8' | 'none';
}
export interface LoadResult {
  modelId: string;
  architecture: string;
  backend: 'webgpu' | 'cpu';
  adapter: string | null; // the WebGPU adapter's description
  /** Recurrent layers (Mamba-2 and Mamba-1 mixers) and attention layers. */
  layers: { mamba: number; attention: number };
  /** The tokenizer has fill-in-the-middle tokens (otherwise completions are prefix-only). */
  fim: boolean;
  memory: MemoryReport;
}

export interface SyncParams {
  folder: string; // absolute path of a workspace folder
  maxFileBytes: number;
  extraIgnore: string[];
}
export interface SyncResult {
  folder: string;
  files: number;
  skipped: Record<string, number>;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  resumedFromSnapshot: boolean;
  reingestedTokens: number;
  snapshotProblem: string | null;
  cancelled: boolean;
  memory: MemoryReport;
}

export interface AskParams {
  folder: string;
  question: string;
  maxNewTokens: number;
}
export interface AskDelta {
  text: string; // new text since the last delta
}
export interface AskResult {
  answer: string;
  tokens: number; // generated
  stoppedBy: 'eos' | 'length' | 'cancelled';
  /** A word on the answer for the user (e.g. a lookup-only model asked something else); absent when none. */
  note?: string;
}

export interface CompleteParams {
  folder: string;
  path: string; // the document's path relative to the folder, '/'-separated
  prefix: string; // document text before the cursor (already cut to a few thousand characters)
  suffix: string; // document text after the cursor
  maxTokens: number;
  maxLines: number;
}
export interface CompleteResult {
  text: string;
  /** Why there is no text or why it ended. */
  reason: 'done' | 'length' | 'cancelled' | 'not-loaded' | 'empty';
  mode: 'fim' | 'prefix-only' | null;
  ms: number;
}

export type MemoryParams = Record<string, never>;
export interface MemoryResult {
  memory: MemoryReport | null; // null before a model is loaded
  tokens: number;
  folder: string | null; // the folder whose state the model holds
}

export interface DownloadParams {
  repoId: string; // owner/name on the Hugging Face Hub
  revision: string;
  /** null: the cache the CLI uses too ($XDG_CACHE_HOME/sidewinder/models/owner--name). */
  dest: string | null;
}
export interface DownloadProgress {
  message: string;
  fraction: number | null;
}
export interface DownloadResult {
  dir: string;
  files: number;
  bytes: number;
}

export type ShutdownParams = Record<string, never>;
export type ShutdownResult = Record<string, never>;

/** Every request: kind -> [params, streamed data (never for non-streaming kinds), result]. */
export interface EngineRequests {
  hello: [HelloParams, never, HelloResult];
  load: [LoadParams, never, LoadResult];
  sync: [SyncParams, IngestProgress, SyncResult];
  ask: [AskParams, AskDelta, AskResult];
  complete: [CompleteParams, never, CompleteResult];
  memory: [MemoryParams, never, MemoryResult];
  download: [DownloadParams, DownloadProgress, DownloadResult];
  shutdown: [ShutdownParams, never, ShutdownResult];
}

export type RequestKind = keyof EngineRequests;
export type ParamsOf<K extends RequestKind> = EngineRequests[K][0];
export type StreamOf<K extends RequestKind> = EngineRequests[K][1];
export type ResultOf<K extends RequestKind> = EngineRequests[K][2];

export const REQUEST_KINDS: readonly RequestKind[] = ['hello', 'load', 'sync', 'ask', 'complete', 'memory', 'download', 'shutdown'];

// ---- events ------------------------------------------------------------------------------------------------

export type EngineEvent =
  /**
   * Pushed when the memory changes: after load, at each phase of a sync (state reset or restored from the
   * snapshot, saved) and after its ingest chunks (at most a few a second), while an answer grows, after each
   * answer and completion; and as a fallback every few seconds when nothing else was sent. `folder` is null
   * while a sync is under way.
   */
  | { kind: 'memory'; memory: MemoryReport; tokens: number; folder: string | null }
  | { kind: 'log'; level: 'trace' | 'debug' | 'info' | 'warn' | 'error'; message: string }
  /** The GPU device is gone; the engine exits after sending this and must be started again. */
  | { kind: 'deviceLost'; reason: string };

// ---- envelopes ---------------------------------------------------------------------------------------------

/** An error as it crosses the boundary: the engine's error class name is kept so the host can act on it. */
export interface WireError {
  name: string; // 'WebGPUNotAvailableError', 'ModelFormatError', 'DeviceLostError', 'AbortError', ...
  message: string;
}

export type HostToEngine =
  | { [K in RequestKind]: { type: 'request'; id: number; kind: K; params: ParamsOf<K> } }[RequestKind]
  | { type: 'cancel'; id: number };

export type EngineToHost =
  | { type: 'stream'; id: number; data: unknown }
  | { type: 'response'; id: number; ok: true; result: unknown }
  | { type: 'response'; id: number; ok: false; error: WireError }
  | { type: 'event'; event: EngineEvent };

/** The error a host-side request rejects with. */
export class EngineRequestError extends Error {
  constructor(
    readonly kind: RequestKind,
    readonly error: WireError,
  ) {
    super(error.message);
    this.name = error.name;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Envelope check for what arrives from the engine (the engine is ours, but a crash can leave garbage). */
export function isEngineToHost(m: unknown): m is EngineToHost {
  if (!isObject(m)) return false;
  switch (m.type) {
    case 'stream':
      return typeof m.id === 'number';
    case 'response':
      return typeof m.id === 'number' && typeof m.ok === 'boolean' && (m.ok || (isObject(m.error) && typeof m.error.message === 'string'));
    case 'event':
      return isObject(m.event) && typeof m.event.kind === 'string';
    default:
      return false;
  }
}

/** Envelope check for what arrives from the host. */
export function isHostToEngine(m: unknown): m is HostToEngine {
  if (!isObject(m) || typeof m.id !== 'number') return false;
  if (m.type === 'cancel') return true;
  return m.type === 'request' && typeof m.kind === 'string' && (REQUEST_KINDS as readonly string[]).includes(m.kind) && isObject(m.params);
}

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) return { name: e.name || 'Error', message: e.message };
  return { name: 'Error', message: String(e) };
}
