// Recent completions, so asking again at the same place (or after typing what was suggested) costs nothing.

/** A map that forgets its least recently used entry once it holds more than `capacity`. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`LRU capacity must be a positive integer, got ${capacity}.`);
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, marked as most recently used; undefined when absent. */
  get(key: K): V | undefined {
    if (!this.map.has(key)) return undefined;
    const v = this.map.get(key) as V;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  /** Entries from most to least recently used (does not change the order). */
  *entries(): IterableIterator<[K, V]> {
    const all = [...this.map.entries()];
    for (let i = all.length - 1; i >= 0; i--) yield all[i];
  }
}

/** Where a completion was asked for: the document, and the text around the cursor the engine saw. */
export interface CompletionKey {
  document: string; // URI
  prefix: string;
  suffix: string;
}

/**
 * Completions by position. Besides exact hits it serves "typed-through" hits: when the user types the first
 * characters of a suggestion, the new prefix is the old one plus those characters, and the rest of the
 * suggestion is still right.
 */
export class CompletionCache {
  private readonly lru: LruCache<string, { key: CompletionKey; text: string }>;

  constructor(capacity = 64) {
    this.lru = new LruCache(capacity);
  }

  private static id(k: CompletionKey): string {
    return `${k.document}\u0000${k.prefix}\u0000${k.suffix}`;
  }

  set(key: CompletionKey, text: string): void {
    this.lru.set(CompletionCache.id(key), { key, text });
  }

  /** The remaining completion at `key`, or undefined. An empty string is a cached "nothing to suggest". */
  get(key: CompletionKey): string | undefined {
    const exact = this.lru.get(CompletionCache.id(key));
    if (exact) return exact.text;
    for (const [id, e] of this.lru.entries()) {
      if (e.key.document !== key.document || e.key.suffix !== key.suffix || !e.text) continue;
      if (key.prefix.length <= e.key.prefix.length || !key.prefix.startsWith(e.key.prefix)) continue;
      const typed = key.prefix.slice(e.key.prefix.length);
      if (typed.length < e.text.length && e.text.startsWith(typed)) {
        this.lru.get(id); // mark as used
        return e.text.slice(typed.length);
      }
    }
    return undefined;
  }

  clear(): void {
    this.lru.clear();
  }
}
