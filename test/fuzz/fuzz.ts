// Shared pieces of the fuzz suite (test/fuzz/*.fuzz.test.ts): fast-check properties with fixed seeds from
// test/fuzz/corpus/<target>.json, the "named error or valid result" check, and bounds on time and allocation.
//
// Every parser must end each input in a valid result or an instance of the engine's own error classes
// (SidewinderError and its subclasses: ModelFormatError, UnsupportedModelError, SnapshotError, ...). A
// TypeError or RangeError from deep inside, a crash or a hang is a bug in the parser.
//
// SIDEWINDER_FUZZ_RUNS=N multiplies every property's number of runs (a long run); SIDEWINDER_FUZZ_SEED=S
// replaces the committed seeds (exploring); SIDEWINDER_FUZZ_LOG=FILE appends one JSON line per property
// (target, property, inputs tried, milliseconds), which is how BENCHMARKS.md's counts were taken.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import fc from 'fast-check';
import { SidewinderError } from '../../src/engine/errors';

export { fc };

export const REPO = path.resolve(__dirname, '..', '..');
export const FIXTURES = path.join(REPO, 'test', 'fixtures');
const CORPUS = path.join(REPO, 'test', 'fuzz', 'corpus');

export const SCALE = Math.max(1, Math.floor(Number(process.env.SIDEWINDER_FUZZ_RUNS) || 1));
const SEED_OVERRIDE = process.env.SIDEWINDER_FUZZ_SEED ? Number(process.env.SIDEWINDER_FUZZ_SEED) : null;

/** One input that takes longer than this counts as a hang. */
export const MAX_INPUT_MS = 5_000;
/** No single allocation made while parsing one input may be larger than this (a header claiming 1 TB). */
export const MAX_ALLOCATION_BYTES = 256 << 20;

export interface Corpus<C = unknown> {
  /** property name -> fast-check seed */
  seeds: Record<string, number>;
  /** inputs replayed on every run: minimal counterexamples found so far and hand-picked edge cases */
  cases: C[];
}

export function corpus<C>(target: string): Corpus<C> {
  return JSON.parse(fs.readFileSync(path.join(CORPUS, `${target}.json`), 'utf8')) as Corpus<C>;
}

/** Thrown by `named` for an error the engine should have turned into one of its own. */
export class UnnamedError extends Error {}

/** Outcomes since the current property started: valid results and named errors. */
const tally = { valid: 0, refused: 0 };

/** Counts one outcome of a check that returns null / false instead of throwing (the message validators). */
export function tallyOutcome(accepted: boolean): void {
  tally[accepted ? 'valid' : 'refused']++;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: SidewinderError };

/**
 * Runs `fn`: a result, or an engine error. Anything else thrown (TypeError, RangeError, a plain Error, a
 * string) fails the property, with the original error as the cause. Also fails when `fn` takes longer than
 * MAX_INPUT_MS or asks for a single allocation larger than `maxAllocationBytes` (MAX_ALLOCATION_BYTES).
 */
export function named<T>(fn: () => T, opts: { maxAllocationBytes?: number } = {}): Outcome<T> {
  const t0 = performance.now();
  const alloc = trackAllocations();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: fn() };
  } catch (e) {
    if (!(e instanceof SidewinderError)) {
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : `non-error ${String(e)}`;
      throw new UnnamedError(`not a named engine error: ${what}`, { cause: e });
    }
    out = { ok: false, error: e };
  } finally {
    alloc.stop();
  }
  const ms = performance.now() - t0;
  if (ms > MAX_INPUT_MS) throw new UnnamedError(`one input took ${ms.toFixed(0)} ms (a hang)`);
  tally[out.ok ? 'valid' : 'refused']++;
  const limit = opts.maxAllocationBytes ?? MAX_ALLOCATION_BYTES;
  if (alloc.largest > limit) throw new UnnamedError(`one input allocated ${alloc.largest} bytes at once (limit ${limit})`);
  return out;
}

/** The async form of `named`. */
export async function namedAsync<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  const t0 = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: await fn() };
  } catch (e) {
    if (!(e instanceof SidewinderError)) {
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : `non-error ${String(e)}`;
      throw new UnnamedError(`not a named engine error: ${what}`, { cause: e });
    }
    out = { ok: false, error: e };
  }
  const ms = performance.now() - t0;
  if (ms > MAX_INPUT_MS) throw new UnnamedError(`one input took ${ms.toFixed(0)} ms (a hang)`);
  tally[out.ok ? 'valid' : 'refused']++;
  return out;
}

/**
 * Watches Buffer.alloc / allocUnsafe / allocUnsafeSlow and the typed-array and ArrayBuffer constructors given
 * a length (how the parsers allocate what a file claims), and remembers the largest request in bytes. The
 * request itself still goes through, so a parser that would allocate 1 TB still fails (RangeError), just
 * with a clearer report.
 */
function trackAllocations(): { readonly largest: number; stop(): void } {
  const state = { largest: 0 };
  const note = (bytes: number) => {
    if (bytes > state.largest) state.largest = bytes;
  };
  const restore: (() => void)[] = [];
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const k of ['alloc', 'allocUnsafe', 'allocUnsafeSlow']) {
    const orig = B[k];
    B[k] = function (this: unknown, size: unknown, ...rest: unknown[]) {
      if (typeof size === 'number') note(size);
      return orig.call(this, size, ...rest);
    };
    restore.push(() => (B[k] = orig));
  }
  const g = globalThis as unknown as Record<string, unknown>;
  for (const k of ['ArrayBuffer', 'Uint8Array', 'Uint16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array']) {
    const orig = g[k] as (new (...a: unknown[]) => object) & { BYTES_PER_ELEMENT?: number };
    const per = orig.BYTES_PER_ELEMENT ?? 1;
    g[k] = new Proxy(orig, {
      construct(target, args, newTarget) {
        if (typeof args[0] === 'number') note(args[0] * per);
        return Reflect.construct(target, args, newTarget === g[k] ? target : newTarget);
      },
    });
    restore.push(() => (g[k] = orig));
  }
  return {
    get largest() {
      return state.largest;
    },
    stop() {
      for (const r of restore) r();
    },
  };
}

export interface PropertyReport {
  target: string;
  property: string;
  /** inputs tried */
  runs: number;
  /** of the parser calls made for them: valid results and named errors (an input may make several calls) */
  valid: number;
  refused: number;
  ms: number;
}

/**
 * Checks `prop` with the committed seed for `target`/`name` and `numRuns` x SIDEWINDER_FUZZ_RUNS inputs;
 * throws fast-check's report (seed, path, shrunk counterexample) on failure. Returns how many were tried.
 */
export function check<Ts>(target: string, name: string, numRuns: number, prop: fc.IProperty<Ts>, opts: CheckOptions = {}): PropertyReport {
  const seed = seedFor(target, name);
  const t0 = performance.now();
  const fds = start();
  const details = fc.check(prop, { seed, numRuns: numRuns * SCALE });
  return finish(target, name, details, t0, fds, opts);
}

export async function checkAsync<Ts>(target: string, name: string, numRuns: number, prop: fc.IAsyncProperty<Ts>, opts: CheckOptions = {}): Promise<PropertyReport> {
  const seed = seedFor(target, name);
  const t0 = performance.now();
  const fds = start();
  const details = await fc.check(prop, { seed, numRuns: numRuns * SCALE });
  return finish(target, name, details, t0, fds, opts);
}

export interface CheckOptions {
  /**
   * How many file descriptors the property may leave open for the garbage collector to close (a loaded
   * snapshot keeps its block file open until it is collected); otherwise every descriptor a parser opens
   * must be closed when it returns or throws. Called when the property is done.
   */
  fdsKept?: () => number;
}

/** Open file descriptors of this process (-1 where /proc is not there). */
export function openFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

function start(): number {
  tally.valid = tally.refused = 0;
  return openFds();
}

function seedFor(target: string, name: string): number {
  if (SEED_OVERRIDE !== null) return SEED_OVERRIDE;
  const seed = corpus(target).seeds[name];
  if (!Number.isInteger(seed)) throw new Error(`test/fuzz/corpus/${target}.json has no seed for property "${name}"`);
  return seed;
}

function finish<Ts>(target: string, property: string, details: fc.RunDetails<Ts>, t0: number, fds0: number, opts: CheckOptions): PropertyReport {
  if (details.failed) {
    const msg = fc.defaultReportMessage(details) ?? 'property failed';
    const err = details.errorInstance;
    const cause = err instanceof Error ? `\nerror: ${err.message}${err.cause ? `\ncause: ${(err.cause as Error).stack}` : ''}` : '';
    throw new Error(`${target}/${property}: ${msg}${cause}`);
  }
  const grown = fds0 < 0 ? 0 : openFds() - fds0;
  const allowed = 8 + (opts.fdsKept?.() ?? 0);
  if (grown > allowed) throw new Error(`${target}/${property}: ${grown} more file descriptors open than before (leaked by the parser?)`);
  const report = { target, property, runs: details.numRuns, valid: tally.valid, refused: tally.refused, ms: Math.round(performance.now() - t0) };
  const log = process.env.SIDEWINDER_FUZZ_LOG;
  if (log) fs.appendFileSync(log, JSON.stringify(report) + '\n');
  return report;
}

/** A fresh temp directory (removed by the OS; the fuzz files are small). */
export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sw-fuzz-${prefix}-`));
}

/** Flips `flips` bits of a copy of `bytes` at positions from `at` (fractions of the length) and `bits`. */
export function flipBits(bytes: Uint8Array, at: readonly number[], bits: readonly number[]): Buffer {
  const out = Buffer.from(bytes);
  if (out.length === 0) return out;
  at.forEach((f, i) => {
    const p = Math.min(out.length - 1, Math.floor(f * out.length));
    out[p] ^= 1 << (bits[i % bits.length] & 7);
  });
  return out;
}

/** Arbitrary for a list of bit flips: positions as fractions of the length, bit numbers. */
export const bitFlips = (maxFlips = 8) =>
  fc.record({
    at: fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { minLength: 1, maxLength: maxFlips }),
    bits: fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: maxFlips }),
  });

/** Deeply nested or odd JSON values (arrays inside objects inside arrays, odd keys, huge and odd numbers). */
export const oddJson = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.jsonValue({ maxDepth: 6 }),
    fc.constantFrom<unknown>(
      null,
      true,
      -0,
      2 ** 53,
      2 ** 40,
      1e308,
      -1,
      0.5,
      Number.MAX_SAFE_INTEGER,
      '',
      'Infinity',
      'NaN',
      '__proto__',
      [],
      {},
      { __float__: 'Infinity' },
      { __float__: 'nan' },
      { __proto__: null },
    ),
    fc.integer({ min: 1, max: 400 }).map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth))),
  );

/** `arb` one time in `oneIn`, else undefined. */
export const rarely = <T>(arb: fc.Arbitrary<T>, oneIn = 4): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

export function rssMB(): number {
  return process.memoryUsage().rss / (1 << 20);
}
