// Waiting before work that the next keystroke or file event would make useless.

/** Resolves true after `ms`, or false as soon as `signal` aborts (at once if it already has). */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error `unlessAborted` rejects with. */
export class StoppedError extends Error {
  override name = 'AbortError';
  constructor() {
    super('stopped');
  }
}

/**
 * Settles as `p` does, or rejects with a StoppedError as soon as `signal` aborts (at once if it already has):
 * for waits that cannot themselves be cancelled (the engine starting, the workspace being read), which go on
 * in the background.
 */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new StoppedError());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new StoppedError());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Runs a callback `ms` after the last `schedule` for its key: a burst of saves in one folder causes one
 * re-ingest of that folder.
 */
export class KeyedDebouncer<K> {
  private readonly timers = new Map<K, ReturnType<typeof setTimeout>>();
  private disposed = false;

  constructor(
    private readonly ms: number,
    private readonly run: (key: K) => void,
  ) {}

  schedule(key: K): void {
    if (this.disposed) return;
    this.cancel(key);
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.run(key);
      }, this.ms),
    );
  }

  cancel(key: K): void {
    const t = this.timers.get(key);
    if (t !== undefined) clearTimeout(t);
    this.timers.delete(key);
  }

  pending(key: K): boolean {
    return this.timers.has(key);
  }

  dispose(): void {
    this.disposed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

/**
 * The latest of a series of requests: starting one aborts the one before, so only the newest completion
 * request keeps the engine busy.
 */
export class LatestOnly {
  private current: AbortController | null = null;

  /** A signal for a new request; the previous request's signal aborts. Also aborts when `parent` does. */
  next(parent?: AbortSignal): AbortSignal {
    this.current?.abort();
    const ac = new AbortController();
    this.current = ac;
    if (parent) {
      if (parent.aborted) ac.abort();
      else parent.addEventListener('abort', () => ac.abort(), { once: true });
    }
    return ac.signal;
  }

  abort(): void {
    this.current?.abort();
    this.current = null;
  }
}
