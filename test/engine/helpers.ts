// Shared test helpers: fixture discovery and the parity metric used everywhere (max abs difference relative
// to the largest reference logit).

import * as fs from 'fs';
import * as path from 'path';
import { SUPPORTED_MODEL_TYPES } from '../../src/engine/config';

export const REPO = path.resolve(__dirname, '..', '..');
export const FIXTURES = path.join(REPO, 'test', 'fixtures');

export interface Expected {
  ids: number[];
  prefill_logits: number[][];
  decode_from: number;
  decode_logits: number[][];
  greedy: { prompt_ids: number[]; max_new_tokens: number; new_ids: number[] };
  tokenizer?: { text: string; ids: number[]; more?: { text: string; ids: number[] }[] };
}

function allFixtureNames(): string[] {
  if (!fs.existsSync(FIXTURES)) return [];
  return fs
    .readdirSync(FIXTURES)
    .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'expected.json')))
    .sort();
}

/** The model_type a fixture's config.json names. */
export function fixtureModelType(name: string): string {
  return String(JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'))['model_type']);
}

/** Fixtures of the model types the engine runs (SUPPORTED_MODEL_TYPES): every parity-style test runs on these. */
export function fixtureNames(): string[] {
  return allFixtureNames().filter((n) => Object.hasOwn(SUPPORTED_MODEL_TYPES, fixtureModelType(n)));
}

/**
 * Fixtures made for families the engine does not run yet (scripts/make_family_fixtures.py, issue 18): they wait
 * for their implementation, and meanwhile a checkpoint of theirs must be refused by name.
 */
export function pendingFixtureNames(): string[] {
  return allFixtureNames().filter((n) => !Object.hasOwn(SUPPORTED_MODEL_TYPES, fixtureModelType(n)));
}

export function loadExpected(name: string): Expected {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8'));
}

/** max |got - want| / max |want| over all entries. */
export function relError(got: ArrayLike<number>, want: readonly number[][] | ArrayLike<number>): number {
  const flat: number[] = Array.isArray(want) && Array.isArray(want[0]) ? (want as number[][]).flat() : Array.from(want as ArrayLike<number>);
  if (got.length !== flat.length) throw new Error(`length mismatch: got ${got.length}, want ${flat.length}`);
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < flat.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(flat[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - flat[i]));
  }
  return maxDiff / maxRef;
}

/** Runs fn with the environment variables set, then deletes them again. */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(vars)) delete process.env[k];
  }
}
