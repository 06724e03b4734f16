// Chat formatting for `ask`. A chat model's tokenizer_config.json carries a Jinja `chat_template`; the
// workspace must sit inside the first user turn so that one workspace prefix (ingested once, snapshotted)
// serves every question. The template is rendered once with two markers in the user message, and the text is
// split there:
//   preamble  = everything before the workspace (system prompt, "<|start_of_role|>user<|end_of_role|>", ...)
//   [workspace files]
//   question  = "\n\nQuestion: ..." then everything after the user message (end of turn, assistant header)
// Without a template, the question is framed as one more file (see questionTokens in ask.ts).

import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ModelFormatError } from './errors';
import type { TextTokenizer } from './tokenizer';

// A chat template comes with the model, so rendering it is bounded: real templates are a few KB and take a few
// dozen evaluation steps for one message (100,000 steps take ~0.4 s); `{% for i in range(10**10) %}` would
// otherwise fill an array until the process dies of memory, and nested loops would hang it.
const MAX_TEMPLATE_CHARS = 1 << 20;
const MAX_RENDER_STEPS = 100_000;
const MAX_RANGE_ITEMS = 100_000; // all range() calls of one render together

/** Interpreter that gives up after MAX_RENDER_STEPS evaluated nodes. */
class BoundedInterpreter extends Interpreter {
  private steps = 0;
  override evaluate(...args: Parameters<Interpreter['evaluate']>): ReturnType<Interpreter['evaluate']> {
    if (++this.steps > MAX_RENDER_STEPS) throw new Error(`rendering takes more than ${MAX_RENDER_STEPS} steps (a loop that does not end?)`);
    return super.evaluate(...args);
  }
}

/** strftime_now as @huggingface/jinja defines it (%Y %m %d %b %B %H %M %%). */
function strftimeNow(format: unknown): string {
  const d = new Date();
  const pad2 = (n: number) => String(n).padStart(2, '0');
  return String(format).replace(/%[YmdbBHM%]/g, (t) => {
    switch (t) {
      case '%Y':
        return String(d.getFullYear());
      case '%m':
        return pad2(d.getMonth() + 1);
      case '%d':
        return pad2(d.getDate());
      case '%b':
        return new Intl.DateTimeFormat(undefined, { month: 'short' }).format(d);
      case '%B':
        return new Intl.DateTimeFormat(undefined, { month: 'long' }).format(d);
      case '%H':
        return pad2(d.getHours());
      case '%M':
        return pad2(d.getMinutes());
      default:
        return '%';
    }
  });
}

/**
 * Template.render with bounds: the same globals (setupGlobals in @huggingface/jinja, which it does not export),
 * except that range() may produce at most MAX_RANGE_ITEMS items in all and the render at most MAX_RENDER_STEPS
 * steps. Throws (a plain Error; chatFormat names it) when a bound is passed.
 */
function renderBounded(template: string, items: Record<string, unknown>): string {
  if (template.length > MAX_TEMPLATE_CHARS) throw new Error(`the template is ${template.length} characters, more than ${MAX_TEMPLATE_CHARS}`);
  let budget = MAX_RANGE_ITEMS;
  const range = (start: unknown, stop?: unknown, step: unknown = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (typeof start !== 'number' || typeof stop !== 'number' || typeof step !== 'number' || ![start, stop, step].every(Number.isFinite)) {
      throw new Error('range() takes finite numbers');
    }
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > budget) throw new Error(`range() of ${n} items: the template may make at most ${MAX_RANGE_ITEMS} in all`);
    budget -= n;
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    raise_exception: (message: unknown) => {
      throw new Error(String(message));
    },
    range,
    strftime_now: strftimeNow,
    True: true,
    False: false,
    None: null,
  };
  for (const [k, v] of Object.entries({ ...globals, ...items })) env.set(k, v);
  const out = new BoundedInterpreter(env).run(new Template(template).parsed).value;
  if (typeof out !== 'string') throw new Error('the template did not render to text');
  return out;
}

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
    rendered = renderBounded(template, {
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
