// Shared test helpers: fixture discovery and the parity metric used everywhere (max abs difference relative
// to the largest reference logit).

import * as fs from 'fs';
import * as path from 'path';

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

export function fixtureNames(): string[] {
  if (!fs.existsSync(FIXTURES)) return [];
  return fs
    .readdirSync(FIXTURES)
    .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'expected.json')))
    .sort();
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
