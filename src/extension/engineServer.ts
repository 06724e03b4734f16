// The engine side of the protocol: runs in the engine process (engineWorker.ts), owns the model and one
// WorkspaceIngest per workspace folder, and answers the host's requests. No vscode import, and no value import
// of the GPU or ingest code: those come in through `EngineBackend`, so this file is tested with a fake model.
//
// The model has one state, so model work is serialised: one sync, question or completion at a time. The state
// holds one workspace folder at a time (multi-root windows switch folders by syncing, which restores that
// folder's snapshot). Questions and completions run on a fork of the state and roll it back afterwards.
// Completions never wait behind other work: a sync lends the state out at each point where it is consistent
// (between files read, after the restore, after each chunk, before the save) and an answer between its tokens;
// a completion that arrives meanwhile runs there, on what the state holds so far.

import { answerQuestion, questionNote } from '../engine/ask';
import type { IngestProgress, IngestReport, SyncOptions } from '../engine/ingest';
import type { LanguageModel, MemoryReport } from '../engine/model';
import type { SpecialTokens } from '../engine/tokenizer';
import { completeAt } from '../engine/completion/complete';
import { hasFim } from '../engine/completion/fim';
import {
  PROTOCOL_VERSION,
  isHostToEngine,
  toWireError,
  type AskDelta,
  type AskParams,
  type AskResult,
  type CompleteParams,
  type CompleteResult,
  type DownloadParams,
  type DownloadProgress,
  type DownloadResult,
  type EngineEvent,
  type EngineToHost,
  type HostToEngine,
  type LoadParams,
  type LoadResult,
  type MemoryResult,
  type RequestKind,
  type SyncParams,
  type SyncResult,
} from './protocol';

/** The part of TextTokenizer the engine process uses. */
export interface EngineTokenizer {
  readonly special: SpecialTokens;
  /** tokenizer_config.json (a chat model's template is in it). */
  readonly config?: Record<string, unknown>;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/** The part of WorkspaceIngest the engine process uses. */
export interface FolderIngest {
  sync(opts: SyncOptions): Promise<IngestReport>;
  /** Paths of the files in the state (answers of a path-answering model are kept to them). */
  statePaths?(): string[];
}

/** A loaded model with everything around it. */
export interface LoadedModel {
  readonly model: LanguageModel;
  readonly tokenizer: EngineTokenizer;
  readonly modelId: string;
  readonly adapter: string | null;
  /** Resolves with the reason when the GPU device is lost (never, for the CPU backend). */
  readonly lost: Promise<string> | null;
  createIngest(params: SyncParams): FolderIngest;
  dispose(): void;
}

/** What the server needs from the engine: loading a model and downloading one. */
export interface EngineBackend {
  load(params: LoadParams): Promise<LoadedModel>;
  download(params: DownloadParams, onProgress: (p: DownloadProgress) => void, signal: AbortSignal): Promise<DownloadResult>;
}

export interface EngineServerOptions {
  /**
   * Period of the fallback memory report while a model is loaded (ms; 0: none). Reports are pushed when the
   * memory changes (load, each ingest chunk, snapshot restored or saved, after each answer and completion);
   * this one only keeps the memory panel's time axis moving while nothing happens.
   */
  memoryIntervalMs?: number;
  /** Least time between two reports pushed during a stream of ingest chunks (ms). */
  memoryMinGapMs?: number;
  /** Called after the device is lost or shutdown is answered; the engine process exits. */
  exit?: (code: number) => void;
}

/** A request refused because the model's state is not what it needs. */
export class NotLoadedError extends Error {
  override name = 'NotLoadedError';
}

/** Serialises work on the model, and says what it is busy with. */
class ModelQueue {
  private tail: Promise<unknown> = Promise.resolve();
  busyWith: 'sync' | 'ask' | 'complete' | 'load' | null = null;
  /** Tasks queued or running, of every kind but completions. */
  others = 0;

  /** `after` runs when `fn` is done, before the next task starts (completions that waited meanwhile). */
  run<T>(what: NonNullable<ModelQueue['busyWith']>, fn: () => Promise<T>, after?: () => Promise<void>): Promise<T> {
    if (what !== 'complete') this.others++;
    const next = this.tail.then(async () => {
      this.busyWith = what;
      try {
        return await fn();
      } finally {
        if (what !== 'complete') this.others--;
        try {
          await after?.();
        } finally {
          this.busyWith = null;
        }
      }
    });
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** A completion waiting for the task that holds the model to lend the state out. */
interface WaitingCompletion {
  run(): Promise<void>;
}

/**
 * A sync's chunks are cut to take at most about this long (ms), so that a completion asked for at any moment waits
 * at most that long for the next chunk boundary (on a GPU whole chunks take less; on a CPU adapter a 2,048-token
 * chunk of the bundled model takes ~12 s). Shorter costs CPU adapters throughput: each chunk has ~170 ms of fixed
 * work on lavapipe (the tiny shape ingests at 447 tok/s in 256-token chunks, 609 in 2,048).
 */
const CHUNK_MS = 1000;
/**
 * While completions are coming in, chunks take about half a completion, within these bounds (ms): a completion
 * then waits at most about half its own time (p95 within ~1.5x of idle), and the sync keeps a share of the model.
 */
const CHUNK_MS_WHILE_TYPING = { min: 100, max: 500 };
/** How long after the last completion request the user counts as typing (ms). */
const TYPING_MS = 10_000;
const SYNC_CHUNK_TOKENS = 2048;
/** The first chunk, before the speed of this model is known. */
const FIRST_CHUNK_TOKENS = 256;

/**
 * Lets the event loop run, so a cancel message can arrive between tokens (the CPU backend computes a whole
 * token without giving it a turn).
 */
const letMessagesIn = () => new Promise<void>((resolve) => setImmediate(resolve));

const sameWalk = (a: SyncParams, b: SyncParams) => a.maxFileBytes === b.maxFileBytes && a.extraIgnore.join('\0') === b.extraIgnore.join('\0');

export class EngineServer {
  private loaded: LoadedModel | null = null;
  private loadedFolder: string | null = null;
  /** The ingest whose last sync left the state as it is (null once anything else reset it). */
  private heldBy: FolderIngest | null = null;
  private readonly ingests = new Map<string, { params: SyncParams; ingest: FolderIngest }>();
  private readonly running = new Map<number, AbortController>();
  private readonly queue = new ModelQueue();
  private waiting: WaitingCompletion[] = [];
  /** The folder a running sync is reading (its state so far serves completions). */
  private syncingFolder: string | null = null;
  private lastCompletionAt = -Infinity;
  private msPerToken = 0; // of the last sync chunks, host time (smoothed)
  private completionMs = 0; // of the last completions (smoothed)
  private readonly timer: ReturnType<typeof setInterval> | null;
  private lastMemoryEvent = 0;
  private disposed = false;

  constructor(
    private readonly send: (m: EngineToHost) => void,
    private readonly backend: EngineBackend,
    private readonly opts: EngineServerOptions = {},
  ) {
    const every = opts.memoryIntervalMs ?? 3000;
    // The fallback report: only when nothing has been pushed for a whole period.
    this.timer = every > 0 ? setInterval(() => Date.now() - this.lastMemoryEvent >= every - 50 && this.emitMemory(), every) : null;
    this.timer?.unref?.();
  }

  private event(event: EngineEvent): void {
    if (!this.disposed) this.send({ type: 'event', event });
  }

  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void {
    this.event({ kind: 'log', level, message });
  }

  private emitMemory(force = true): void {
    if (!this.loaded) return;
    const now = Date.now();
    if (!force && now - this.lastMemoryEvent < (this.opts.memoryMinGapMs ?? 250)) return;
    this.lastMemoryEvent = now;
    this.event({ kind: 'memory', memory: this.loaded.model.memory(), tokens: this.loaded.model.position, folder: this.loadedFolder });
  }

  /** Entry point for every message from the host. */
  handle(m: unknown): void {
    if (this.disposed) return;
    if (!isHostToEngine(m)) {
      this.log('warn', `engine: ignored a malformed message: ${JSON.stringify(m)?.slice(0, 200)}`);
      return;
    }
    if (m.type === 'cancel') {
      this.running.get(m.id)?.abort();
      return;
    }
    void this.dispatch(m);
  }

  private async dispatch(m: Extract<HostToEngine, { type: 'request' }>): Promise<void> {
    const ac = new AbortController();
    this.running.set(m.id, ac);
    const stream = (data: unknown) => {
      if (!this.disposed) this.send({ type: 'stream', id: m.id, data });
    };
    try {
      const result = await this.run(m, ac.signal, stream);
      if (!this.disposed) this.send({ type: 'response', id: m.id, ok: true, result });
    } catch (e) {
      if (!this.disposed) this.send({ type: 'response', id: m.id, ok: false, error: toWireError(e) });
    } finally {
      this.running.delete(m.id);
    }
    if (m.kind === 'shutdown') this.shutdown(0);
  }

  private run(m: Extract<HostToEngine, { type: 'request' }>, signal: AbortSignal, stream: (d: unknown) => void): Promise<unknown> {
    switch (m.kind) {
      case 'hello':
        return Promise.resolve({ protocolVersion: PROTOCOL_VERSION, pid: process.pid, node: process.versions.node });
      case 'load':
        return this.queue.run('load', () => this.load(m.params), this.serveWaiting);
      case 'sync':
        return this.queue.run('sync', () => this.sync(m.params, signal, stream), this.serveWaiting);
      case 'ask':
        return this.queue.run('ask', () => this.ask(m.params, signal, stream), this.serveWaiting);
      case 'complete':
        this.lastCompletionAt = performance.now();
        // A completion never waits for a whole sync or answer: it runs at their next yield point.
        if (this.queue.others > 0) return this.whenLent(m.params, signal);
        return this.queue.run('complete', () => this.complete(m.params, signal));
      case 'memory':
        return Promise.resolve(this.memory());
      case 'download':
        return this.backend.download(m.params, stream, signal);
      case 'shutdown':
        for (const ac of this.running.values()) ac.abort();
        return Promise.resolve({});
      default:
        return Promise.reject(new Error(`unknown request kind ${(m as { kind: RequestKind }).kind}`));
    }
  }

  /** A completion served by the task holding the model at its next yield point (or when it ends). */
  private whenLent(p: CompleteParams, signal: AbortSignal): Promise<CompleteResult> {
    const t0 = performance.now();
    return new Promise<CompleteResult>((resolve, reject) => {
      let done = false;
      const entry: WaitingCompletion = {
        run: async () => {
          if (done) return;
          done = true;
          signal.removeEventListener('abort', onAbort);
          try {
            const r = await this.complete(p, signal);
            resolve({ ...r, ms: performance.now() - t0 });
          } catch (e) {
            reject(e);
          }
        },
      };
      // Cancelled while waiting (the user typed on): answered at once, and it leaves the queue.
      const onAbort = () => {
        if (done) return;
        done = true;
        this.waiting = this.waiting.filter((w) => w !== entry);
        resolve(this.noCompletion('cancelled', t0));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  /** Runs the completions waiting for the model (the state is consistent whenever this is called). */
  private readonly serveWaiting = async (): Promise<void> => {
    while (this.waiting.length) await this.waiting.shift()!.run();
  };

  /**
   * Tokens for the next sync chunk: as many as take about CHUNK_MS at the speed measured between yield points (at
   * most a whole chunk), or about half a completion while the user types, so that a completion waits at most about
   * that long for the chunk boundary whenever it comes.
   */
  private syncChunkTokens(): number {
    if (this.msPerToken <= 0) return FIRST_CHUNK_TOKENS;
    const typing = performance.now() - this.lastCompletionAt <= TYPING_MS;
    const t = CHUNK_MS_WHILE_TYPING;
    const target = typing ? Math.min(t.max, Math.max(t.min, 0.5 * this.completionMs)) : CHUNK_MS;
    let n = SYNC_CHUNK_TOKENS;
    while (n > 64 && n * this.msPerToken > target) n /= 2;
    return n;
  }

  private requireModel(): LoadedModel {
    if (!this.loaded) throw new NotLoadedError('no model is loaded; the host must send "load" first.');
    return this.loaded;
  }

  private async load(p: LoadParams): Promise<LoadResult> {
    this.unload();
    const loaded = await this.backend.load(p);
    this.loaded = loaded;
    loaded.lost?.then((reason) => {
      if (this.loaded !== loaded || this.disposed) return; // replaced or shut down on purpose
      this.event({ kind: 'deviceLost', reason });
      this.shutdown(3);
    });
    const kinds = loaded.model.config.layerKinds;
    const result: LoadResult = {
      modelId: loaded.modelId,
      architecture: loaded.model.config.architecture,
      backend: p.backend,
      adapter: loaded.adapter,
      // (a Zamba2 hybrid layer has both: a shared attention block use with its own KV, then a Mamba-2 mixer)
      layers: { mamba: kinds.filter((k) => k === 'mamba' || k === 'mamba1' || k === 'parallel' || k === 'hybrid' || k === 'rglru').length, attention: kinds.filter((k) => k === 'attention' || k === 'parallel' || k === 'hybrid' || k === 'local').length },
      fim: hasFim(loaded.tokenizer.special),
      memory: loaded.model.memory(),
    };
    this.emitMemory();
    return result;
  }

  private unload(): void {
    const old = this.loaded;
    this.loaded = null;
    this.loadedFolder = null;
    this.heldBy = null;
    this.ingests.clear();
    old?.dispose();
  }

  private async sync(p: SyncParams, signal: AbortSignal, stream: (d: unknown) => void): Promise<SyncResult> {
    const loaded = this.requireModel();
    let entry = this.ingests.get(p.folder);
    if (!entry || !sameWalk(entry.params, p)) {
      entry = { params: p, ingest: loaded.createIngest(p) };
      this.ingests.set(p.folder, entry);
    }
    // The state is this folder's own, as the last sync of it left it: nothing to restore if nothing changed.
    const stateHeld = this.loadedFolder === p.folder && this.heldBy === entry.ingest;
    // sync() may reset the state: until it returns, the model holds no complete folder, but what it holds so far
    // serves completions of this folder.
    this.loadedFolder = null;
    this.heldBy = null;
    this.syncingFolder = p.folder;
    let mark = { at: performance.now(), position: loaded.model.position };
    const yieldPoint = async () => {
      const now = performance.now();
      const fed = loaded.model.position - mark.position;
      if (fed > 0) {
        const ms = (now - mark.at) / fed;
        this.msPerToken = this.msPerToken > 0 ? 0.5 * this.msPerToken + 0.5 * ms : ms;
      }
      await this.serveWaiting();
      mark = { at: performance.now(), position: loaded.model.position };
    };
    // Memory is reported at each new phase (the state reset or restored from the snapshot, K/V moved to the
    // saved snapshot) and after each ingest chunk, at most one chunk report per memoryMinGapMs.
    let phase: IngestProgress['phase'] = 'scanning';
    let r: IngestReport;
    try {
      r = await entry.ingest.sync({
        signal,
        stateHeld,
        yieldPoint,
        chunkTokens: () => this.syncChunkTokens(),
        onProgress: (progress) => {
          stream(progress);
          const changed = progress.phase !== phase;
          phase = progress.phase;
          if (changed || phase === 'ingesting') this.emitMemory(changed);
        },
      });
    } finally {
      this.syncingFolder = null;
    }
    this.loadedFolder = p.folder;
    this.heldBy = entry.ingest;
    this.emitMemory();
    return {
      folder: p.folder,
      files: r.files,
      skipped: r.skipped,
      tokens: r.tokens,
      seconds: r.seconds,
      tokensPerSecond: r.tokensPerSecond,
      resumedFromSnapshot: r.resumedFromSnapshot,
      reingestedTokens: r.reingestedTokens,
      snapshotProblem: r.snapshotProblem,
      cancelled: r.cancelled,
      memory: r.memory,
    };
  }

  private async ask(p: AskParams, signal: AbortSignal, stream: (d: AskDelta) => void): Promise<AskResult> {
    const loaded = this.requireModel();
    if (this.loadedFolder !== p.folder) throw new NotLoadedError(`the workspace folder ${p.folder} is not loaded; sync it first.`);
    const tok = loaded.tokenizer;
    const ids: number[] = [];
    let sent = '';
    // The CLI's way to the answer (cli/workspace.ts cmdAsk): the same prompt tokens and generation for the same question.
    const answer = answerQuestion(loaded.model, tok, {
      question: p.question,
      statePaths: this.ingests.get(p.folder)?.ingest.statePaths?.() ?? [],
      maxNewTokens: p.maxNewTokens,
      signal,
    });
    for await (const id of answer.tokens()) {
      ids.push(id);
      const text = tok.decode(ids);
      if (text.endsWith('\uFFFD') || !text.startsWith(sent)) continue; // half a UTF-8 character
      if (text.length > sent.length) stream({ text: text.slice(sent.length) });
      sent = text;
      this.emitMemory(false); // the fork's K/V grows with the answer
      await letMessagesIn();
      if (signal.aborted) break;
      // A completion that came in meanwhile runs now, on a fork of this answer's fork, then the answer goes on.
      await this.serveWaiting();
    }
    const stoppedBy: AskResult['stoppedBy'] = signal.aborted ? 'cancelled' : (answer.stoppedBy ?? 'length');
    // What was held back (an incomplete character at the end) goes out now, so the deltas add up to the answer.
    const text = ids.length ? tok.decode(ids) : '';
    if (text.startsWith(sent) && text.length > sent.length) stream({ text: text.slice(sent.length) });
    this.emitMemory();
    const note = questionNote(tok, p.question);
    return { answer: text.trim(), tokens: ids.length, stoppedBy, ...(note ? { note } : {}) };
  }

  private noCompletion(reason: CompleteResult['reason'], t0 = performance.now()): CompleteResult {
    return { text: '', reason, mode: null, ms: performance.now() - t0 };
  }

  private async complete(p: CompleteParams, signal: AbortSignal): Promise<CompleteResult> {
    const t0 = performance.now();
    if (signal.aborted) return this.noCompletion('cancelled', t0);
    const loaded = this.loaded;
    // The folder's state, whole or (while its sync runs) as far as it is read.
    if (!loaded || (this.loadedFolder !== p.folder && this.syncingFolder !== p.folder)) return this.noCompletion('not-loaded', t0);
    const r = await completeAt(loaded.model, loaded.tokenizer, {
      path: p.path,
      prefix: p.prefix,
      suffix: p.suffix,
      maxTokens: p.maxTokens,
      maxLines: p.maxLines,
      signal,
      onToken: letMessagesIn,
    });
    this.emitMemory(false);
    if (r.reason !== 'cancelled') {
      const ms = performance.now() - t0;
      this.completionMs = this.completionMs > 0 ? 0.7 * this.completionMs + 0.3 * ms : ms;
    }
    if (r.reason === 'cancelled' || r.reason === 'empty') return { ...this.noCompletion(r.reason, t0), mode: r.mode };
    return { text: r.text, reason: r.reason, mode: r.mode, ms: performance.now() - t0 };
  }

  private memory(): MemoryResult {
    const m: MemoryReport | null = this.loaded?.model.memory() ?? null;
    return { memory: m, tokens: this.loaded?.model.position ?? 0, folder: this.loadedFolder };
  }

  private shutdown(code: number): void {
    this.dispose();
    this.opts.exit?.(code);
  }

  /** Aborts everything, frees the model, stops the timer. */
  dispose(): void {
    if (this.disposed) return;
    for (const ac of this.running.values()) ac.abort();
    if (this.timer) clearInterval(this.timer);
    this.unload();
    this.disposed = true;
  }
}
