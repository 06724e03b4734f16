// Autoregressive generation over any LanguageModel: prefill the prompt, then one token at a time.

import type { LanguageModel } from './model';
import { rng, sampleToken, type SamplingOptions } from './sampling';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  stopIds?: readonly number[];
  seed?: number;
  signal?: AbortSignal;
}

/** Yields each new token id as it is produced. The model's state advances past the prompt and the output. */
export async function* generateTokens(model: LanguageModel, prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<number> {
  if (prompt.length === 0) throw new RangeError('generate needs at least one prompt token.');
  const random = rng(opts.seed ?? 0x5eed);
  const stop = new Set(opts.stopIds ?? []);
  let logits = await model.forward(prompt);
  for (let n = 0; n < opts.maxNewTokens; n++) {
    if (opts.signal?.aborted) return;
    const id = sampleToken(logits, opts, random);
    yield id;
    if (stop.has(id) || n + 1 === opts.maxNewTokens) return;
    logits = await model.forward([id]);
  }
}
