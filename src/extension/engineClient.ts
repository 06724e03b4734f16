// The host side of the protocol: requests with ids, their streamed data as async iterables, cancellation from
// an AbortSignal, and the engine's events. The engine runs in a child process (a Dawn crash or a lost device
// takes down that process, never the extension host); `forkEngine` starts it. No vscode import.

import { fork, type ChildProcess } from 'child_process';
import {
  EngineRequestError,
  isEngineToHost,
  type EngineEvent,
  type EngineToHost,
  type HostToEngine,
  type ParamsOf,
  type RequestKind,
  type ResultOf,
  type StreamOf,
} from './protocol';

/** A message pipe to an engine: a child process in the extension, an in-memory pair in tests. */
export interface EngineTransport {
  send(m: HostToEngine): void;
  onMessage(cb: (m: unknown) => void): void;
  /** Called once when the engine is gone (exit code, or signal name). */
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  /** Ends the engine at once. */
  kill(): void;
}

/** The engine process ended while requests were open. */
export class EngineExitedError extends Error {
  override name = 'EngineExitedError';
  constructor(
    readonly code: number | null,
    readonly signal: string | null,
  ) {
    super(`the Sidewinder engine process ended (${signal ? `signal ${signal}` : `exit code ${code}`}).`);
  }
}

interface Pending {
  kind: RequestKind;
  resolve(v: unknown): void;
  reject(e: Error): void;
  onStream?: (d: unknown) => void;
}

export interface RequestOptions<K extends RequestKind> {
  signal?: AbortSignal;
  onStream?: (data: StreamOf<K>) => void;
}

export class EngineClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: EngineEvent) => void>();
  private readonly exitListeners = new Set<(e: EngineExitedError) => void>();
  private exited: EngineExitedError | null = null;

  constructor(private readonly transport: EngineTransport) {
    transport.onMessage((m) => this.receive(m));
    transport.onExit((code, signal) => {
      const err = new EngineExitedError(code, signal);
      this.exited = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      for (const l of this.exitListeners) l(err);
    });
  }

  get alive(): boolean {
    return this.exited === null;
  }

  /** Engine events (memory, logs, device lost). Returns an unsubscribe function. */
  onEvent(l: (e: EngineEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onExit(l: (e: EngineExitedError) => void): () => void {
    this.exitListeners.add(l);
    return () => this.exitListeners.delete(l);
  }

  private receive(m: unknown): void {
    if (!isEngineToHost(m)) return;
    const msg = m as EngineToHost;
    if (msg.type === 'event') {
      for (const l of this.listeners) l(msg.event);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'stream') p.onStream?.(msg.data);
    else {
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new EngineRequestError(p.kind, msg.error));
    }
  }

  /**
   * Sends a request; resolves with its result. Aborting `signal` sends a cancel message: the engine stops and
   * still answers (with what it did so far), so the promise settles either way.
   */
  request<K extends RequestKind>(kind: K, params: ParamsOf<K>, opts: RequestOptions<K> = {}): Promise<ResultOf<K>> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<ResultOf<K>>((resolve, reject) => {
      const onAbort = () => {
        if (this.pending.has(id) && !this.exited) this.transport.send({ type: 'cancel', id });
      };
      const done = () => opts.signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        kind,
        resolve: (v) => {
          done();
          resolve(v as ResultOf<K>);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        onStream: opts.onStream as ((d: unknown) => void) | undefined,
      });
      this.transport.send({ type: 'request', id, kind, params } as HostToEngine);
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A streaming request as an async iterable of its data; the generator's return value is the result. */
  async *stream<K extends RequestKind>(kind: K, params: ParamsOf<K>, signal?: AbortSignal): AsyncGenerator<StreamOf<K>, ResultOf<K>> {
    const queue: StreamOf<K>[] = [];
    let wake: (() => void) | null = null;
    let settled = false;
    const result = this.request(kind, params, {
      signal,
      onStream: (d) => {
        queue.push(d);
        wake?.();
      },
    }).finally(() => {
      settled = true;
      wake?.();
    });
    result.catch(() => undefined); // rethrown below
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (settled) return await result;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
  }

  /** Ends the engine process now (open requests reject with EngineExitedError). */
  kill(): void {
    if (!this.exited) this.transport.kill();
  }
}

/** A transport to `workerPath` run as a Node child process with an IPC channel. */
export function forkEngine(workerPath: string, opts: { onStderr?: (line: string) => void; env?: NodeJS.ProcessEnv } = {}): EngineTransport {
  const child: ChildProcess = fork(workerPath, [], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // In VS Code the extension host's execPath is the editor's Electron binary: run it as plain Node.
    env: { ...process.env, ...opts.env, ELECTRON_RUN_AS_NODE: '1' },
    execArgv: [],
  });
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) opts.onStderr?.(line);
  };
  child.stdout?.on('data', forward);
  child.stderr?.on('data', forward);
  let exitCb: ((code: number | null, signal: string | null) => void) | null = null;
  let exited = false;
  const onGone = (code: number | null, signal: string | null) => {
    if (exited) return;
    exited = true;
    exitCb?.(code, signal);
  };
  child.on('exit', (code, signal) => onGone(code, signal));
  child.on('error', (e) => {
    opts.onStderr?.(`engine process error: ${e.message}`);
    if (child.exitCode !== null || child.pid === undefined) onGone(child.exitCode ?? -1, null);
  });
  return {
    send: (m) => {
      if (!exited && child.connected) child.send(m);
    },
    onMessage: (cb) => child.on('message', cb),
    onExit: (cb) => (exitCb = cb),
    kill: () => {
      if (!exited) child.kill('SIGKILL');
    },
  };
}
