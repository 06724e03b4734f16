// Questions and completions on top of the workspace state, without destroying it: fork (copy the Mamba
// state, mark the KV length), run, roll back.

import { chatFormat, chatQuestionTokens } from './chat';
import { generateTokens, type GenerateOptions } from './generate';
import type { LanguageModel } from './model';
import type { TextTokenizer } from './tokenizer';

/**
 * The tokens that follow the workspace for a question. With a chat template, the rest of the user turn and
 * the assistant header; otherwise, with a file-separator token, the question is framed as one more "file"
 * after the workspace (the convention the bundled model is trained with), or as plain text.
 */
/**
 * Question tokens fed one at a time over a sparse context (GenerateOptions.exactTail): a question is short, and
 * each of its tokens then selects the workspace blocks its own query points at (the name asked about, say).
 */
export const ASK_EXACT_TAIL = 16;

export function questionTokens(tok: Pick<TextTokenizer, 'encode' | 'special'> & { config?: Record<string, unknown> }, question: string): number[] {
  // A chat model: the question closes the user turn that the workspace opened (see chat.ts).
  const format = chatFormat(tok.config);
  if (format) return chatQuestionTokens(tok, format, question);
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
