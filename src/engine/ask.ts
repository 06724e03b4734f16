// Questions and completions on top of the workspace state, without destroying it: fork (copy the Mamba
// state, mark the KV length), run, roll back.

import { generateTokens, type GenerateOptions } from './generate';
import type { LanguageModel } from './model';
import type { TextTokenizer } from './tokenizer';

/**
 * The tokens that follow the workspace for a question. With a file-separator token the question is framed
 * as one more "file" after the workspace (the convention the bundled model is trained with); otherwise as
 * plain text.
 */
export function questionTokens(tok: Pick<TextTokenizer, 'encode' | 'special'>, question: string): number[] {
  const body = tok.encode(`Question: ${question.trim()}\nAnswer:`);
  return tok.special.fileSep !== null ? [tok.special.fileSep, ...body] : [...tok.encode('\n\n'), ...body];
}

/** Runs `prompt` + generation on a fork of the model's state; the state is restored afterwards. */
export async function* onFork(model: LanguageModel, prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<number> {
  const mark = await model.fork();
  try {
    yield* generateTokens(model, prompt, opts);
  } finally {
    await model.rollback(mark);
    mark.release();
  }
}
