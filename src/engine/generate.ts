// Autoregressive generation over any LanguageModel: prefill the prompt, then one token at a time.

import type { LanguageModel } from './model';
import { rng, sampleToken, type SamplingOptions } from './sampling';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  stopIds?: readonly number[];
  seed?: number;
  signal?: AbortSignal;
  /**
   * When attention runs on a selection of K/V blocks (LanguageModel.attendsSparsely), the last `exactTail` prompt
   * tokens are fed one at a time, so that each picks its own blocks: in a chunk, one selection made from the
   * range of all the chunk's queries serves them all, which blurs what a question looks for. Default 1 (the
   * token whose logits start the answer); ask uses ASK_EXACT_TAIL.
   */
  exactTail?: number;
  /**
   * Keeps each new token to a set (an answer that must be one of the workspace's paths, see ask.ts
   * pathAnswerConstraint): given the tokens generated so far, the ids allowed next, or null for any.
   */
  allowedNext?: (generated: readonly number[]) => readonly number[] | null;
  /**
   * The caller rolls the model's state back afterwards (ask.ts onFork): the backend may then queue a few decode
   * steps ahead and leave them run past the stop (LanguageModel.decodeStream lookahead).
   */
  discardsState?: boolean;
}

/** Decode steps queued ahead when the state is discarded afterwards: enough to hide the id read-back. */
const STREAM_LOOKAHEAD = 2;

/** The logits with every id outside `allowed` at -Infinity. */
function onlyAllowed(logits: Float32Array, allowed: readonly number[]): Float32Array {
  const out = new Float32Array(logits.length).fill(-Infinity);
  for (const id of allowed) if (id >= 0 && id < logits.length) out[id] = logits[id];
  return out;
}

/** Yields each new token id as it is produced. The model's state advances past the prompt and the output. */
export async function* generateTokens(model: LanguageModel, prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<number> {
  if (prompt.length === 0) throw new RangeError('generate needs at least one prompt token.');
  const random = rng(opts.seed ?? 0x5eed);
  const stop = new Set(opts.stopIds ?? []);
  let logits: Float32Array;
  const tail = Math.min(prompt.length - 1, Math.max(0, opts.exactTail ?? 1));
  if (tail > 0 && model.attendsSparsely?.()) {
    await model.forward(prompt.slice(0, prompt.length - tail), { skipLogits: true });
    for (let i = prompt.length - tail; i < prompt.length - 1; i++) await model.forward([prompt[i]], { skipLogits: true });
    logits = await model.forward([prompt[prompt.length - 1]]);
  } else logits = await model.forward(prompt);
  const generated: number[] = [];
  if (model.decodeStream && !opts.allowedNext && opts.maxNewTokens > 0) {
    // The backend chooses the tokens itself after the first (on the GPU: no logits read back per token).
    const first = sampleToken(logits, opts, random);
    yield first;
    if (stop.has(first) || opts.maxNewTokens === 1 || opts.signal?.aborted) return;
    const stream = model.decodeStream(first, {
      greedy: opts.greedy,
      temperature: opts.temperature,
      topP: opts.topP,
      seed: opts.seed,
      maxNewTokens: opts.maxNewTokens - 1,
      lookahead: opts.discardsState ? STREAM_LOOKAHEAD : 0,
      discardsState: opts.discardsState,
    });
    for await (const id of stream) {
      if (opts.signal?.aborted) return;
      yield id;
      if (stop.has(id)) return;
    }
    return;
  }
  for (let n = 0; n < opts.maxNewTokens; n++) {
    if (opts.signal?.aborted) return;
    const allowed = opts.allowedNext?.(generated);
    const id = sampleToken(allowed?.length ? onlyAllowed(logits, allowed) : logits, opts, random);
    generated.push(id);
    yield id;
    if (stop.has(id) || n + 1 === opts.maxNewTokens) return;
    logits = await model.forward([id]);
  }
}
