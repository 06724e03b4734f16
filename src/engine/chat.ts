// Chat formatting for `ask`. A chat model's tokenizer_config.json carries a Jinja `chat_template`; the
// workspace must sit inside the first user turn so that one workspace prefix (ingested once, snapshotted)
// serves every question. The template is rendered once with two markers in the user message, and the text is
// split there:
//   preamble  = everything before the workspace (system prompt, "<|start_of_role|>user<|end_of_role|>", ...)
//   [workspace files]
//   question  = "\n\nQuestion: ..." then everything after the user message (end of turn, assistant header)
// Without a template, the question is framed as one more file (see questionTokens in ask.ts).

import { Template } from '@huggingface/jinja';
import { ModelFormatError } from './errors';
import type { TextTokenizer } from './tokenizer';

const WORKSPACE_MARKER = '\u0000SIDEWINDER_WORKSPACE\u0000';
const QUESTION_MARKER = '\u0000SIDEWINDER_QUESTION\u0000';

export interface ChatFormat {
  /** Text before the workspace, inside the first user turn. */
  preamble: string;
  /** Text after the question: the end of the user turn and the assistant's header. */
  epilogue: string;
}

/** The chat format from tokenizer_config.json's chat_template, or null when there is none. */
export function chatFormat(tokenizerConfig: Record<string, unknown> | undefined): ChatFormat | null {
  if (!tokenizerConfig) return null;
  let template = tokenizerConfig['chat_template'];
  // Some configs hold a list of named templates: take "default".
  if (Array.isArray(template)) {
    const named = template.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    template = named?.template;
  }
  if (typeof template !== 'string' || template.length === 0) return null;
  const tokenText = (v: unknown): string => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : '');
  let rendered: string;
  try {
    rendered = new Template(template).render({
      messages: [{ role: 'user', content: `${WORKSPACE_MARKER}${QUESTION_MARKER}` }],
      add_generation_prompt: true,
      bos_token: tokenText(tokenizerConfig['bos_token']),
      eos_token: tokenText(tokenizerConfig['eos_token']),
      tools: null,
      documents: null,
    });
  } catch (e) {
    throw new ModelFormatError(`tokenizer_config.json's chat_template could not be rendered: ${(e as Error).message}`);
  }
  const w = rendered.indexOf(WORKSPACE_MARKER);
  const q = rendered.indexOf(QUESTION_MARKER);
  if (w < 0 || q !== w + WORKSPACE_MARKER.length) {
    throw new ModelFormatError("tokenizer_config.json's chat_template does not put the user's message into the prompt verbatim.");
  }
  return { preamble: rendered.slice(0, w), epilogue: rendered.slice(q + QUESTION_MARKER.length) };
}

/** Tokens that go before the workspace (empty without a chat template). */
export function preambleTokens(tok: Pick<TextTokenizer, 'encode'>, format: ChatFormat | null): number[] {
  return format && format.preamble ? tok.encode(format.preamble, false) : [];
}

/** Tokens of a question after the workspace, closing the user turn when there is a chat template. */
export function chatQuestionTokens(tok: Pick<TextTokenizer, 'encode'>, format: ChatFormat, question: string): number[] {
  return tok.encode(`\n\nQuestion: ${question.trim()}${format.epilogue}`, false);
}
