// Questions and completions on top of the workspace state, without destroying it: fork (copy the Mamba
// state, mark the KV length), run, roll back.

import { chatFormat, chatQuestionTokens } from './chat';
import { generateTokens, type GenerateOptions } from './generate';
import type { LanguageModel } from './model';
import type { TextTokenizer } from './tokenizer';

/**
 * Question tokens fed one at a time over a sparse context (GenerateOptions.exactTail): a question is short, and
 * each of its tokens then selects the workspace blocks its own query points at (the name asked about, say).
 */
export const ASK_EXACT_TAIL = 16;

const WHERE_DEFINED =
  /^\s*where\s+(?:is|are)\s+(?:the\s+)?(?:(?:function|class|method|type|interface|enum|const(?:ant)?|variable)\s+)?`?([A-Za-z_$][\w$]*)`?(?:\(\))?\s+(?:defined|declared|implemented)\s*\??\s*$/i;

/**
 * The question as a path-answering model was trained to read it (tokenizer flag sidewinder_file_index): "Where
 * is `NAME` defined?", the name in backticks as the file index writes it. Typed without them ("where is
 * completeAt defined", "where's the function foo() declared"), the name is tokenized differently from the index
 * and the lookup misses it. Other questions, and other models, are left as they are.
 */
export function canonicalQuestion(tok: Pick<TextTokenizer, 'special'>, question: string): string {
  if (!tok.special.fileIndex) return question.trim();
  const name = lookupName(question);
  return name ? `Where is \`${name}\` defined?` : question.trim();
}

/** The NAME of a "where is NAME defined?" question, however it is typed; null for other questions. */
export function lookupName(question: string): string | null {
  return WHERE_DEFINED.exec(question.replace(/^\s*where's\s+/i, 'where is '))?.[1] ?? null;
}

/**
 * What to tell the user when a path-answering model (one trained for lookups only, like the bundled model) is
 * asked something else: its answer is a file of the workspace whatever the question. null otherwise.
 */
export function lookupOnlyNote(tok: Pick<TextTokenizer, 'special'>, question: string): string | null {
  if (!tok.special.fileIndex || lookupName(question)) return null;
  return 'This model answers "Where is NAME defined?" with a file of the workspace, whatever the question. For other questions, use a chat model such as Granite 4.0-H (Sidewinder: Download Model, then Sidewinder: Select Model).';
}

/**
 * The tokens that follow the workspace for a question. With a chat template, the rest of the user turn and
 * the assistant header; otherwise, with a file-separator token, the question is framed as one more "file"
 * after the workspace (the convention the bundled model is trained with), or as plain text.
 */
export function questionTokens(tok: Pick<TextTokenizer, 'encode' | 'special'> & { config?: Record<string, unknown> }, question: string): number[] {
  // A chat model: the question closes the user turn that the workspace opened (see chat.ts).
  const format = chatFormat(tok.config);
  if (format) return chatQuestionTokens(tok, format, question);
  const body = tok.encode(`Question: ${canonicalQuestion(tok, question)}\nAnswer:`);
  return tok.special.fileSep !== null ? [tok.special.fileSep, ...body] : [...tok.encode('\n\n'), ...body];
}

interface Trie extends Map<number, Trie> {}

/**
 * Per tokenizer: each path's answer tokens (encoding is the slow part: ~0.15 ms a path, 3 s for 20K files), and
 * the last trie with the path list it was built from (questions about one workspace reuse it).
 */
const answerCache = new WeakMap<object, { ids: Map<string, number[]>; key: string; trie: Trie | null }>();
const MAX_CACHED_PATHS = 200_000;

/**
 * For a model trained to answer with a path from the file index (tokenizer flag sidewinder_file_index, as the
 * bundled model is), the answer kept to the workspace's own paths: each token must continue ` `path`` of some
 * file, tokenized as in training, then end the answer. The model still chooses the file; it can no longer name
 * one that does not exist (a near-copy such as `_createCuryein.js`). undefined for other models (they answer in
 * prose) and when there is no path or no end-of-text token.
 */
export function pathAnswerConstraint(
  tok: Pick<TextTokenizer, 'encode' | 'special'>,
  paths: Iterable<string>,
): GenerateOptions['allowedNext'] {
  const end = tok.special.eos;
  if (!tok.special.fileIndex || end === null) return undefined;
  const list = [...paths];
  let cache = answerCache.get(tok);
  if (!cache) answerCache.set(tok, (cache = { ids: new Map(), key: '', trie: null }));
  const key = list.join('\0');
  if (cache.key !== key || !cache.trie) {
    if (cache.ids.size > MAX_CACHED_PATHS) cache.ids.clear();
    const root: Trie = new Map();
    for (const p of list) {
      let ids = cache.ids.get(p);
      if (!ids) cache.ids.set(p, (ids = [...tok.encode(` \`${p}\``), end]));
      let node = root;
      for (const id of ids) {
        let next = node.get(id);
        if (!next) node.set(id, (next = new Map()));
        node = next;
      }
    }
    cache.key = key;
    cache.trie = root;
  }
  const root = cache.trie;
  if (!root.size) return undefined;
  return (generated) => {
    let node: Trie | undefined = root;
    for (const id of generated) if (!(node = node.get(id))) return null;
    return [...node.keys()];
  };
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

/**
 * Tokens an answer may have when the caller does not say: the chat's default (sidewinder.chat.maxAnswerTokens in
 * package.json and settings.ts) and the CLI's (`ask --max-new-tokens`).
 */
export const DEFAULT_ANSWER_TOKENS = 512;

/** The tokenizer an answer needs: TextTokenizer's encode/decode and special tokens, and its config (the chat template). */
export type AnswerTokenizer = Pick<TextTokenizer, 'encode' | 'decode' | 'special'> & { readonly config?: Record<string, unknown> };

export interface AnswerRequest {
  /** As the user typed it (canonicalised and trimmed here). */
  question: string;
  /** Paths of the files in the state (WorkspaceIngest.statePaths): a path-answering model names one of them. */
  statePaths: Iterable<string>;
  /** Default DEFAULT_ANSWER_TOKENS. */
  maxNewTokens?: number;
  /** A path-answering model writes the path as it likes, not kept to the workspace's paths (CLI --free-answer). */
  freeAnswer?: boolean;
  signal?: AbortSignal;
}

/** Token ids that end an answer: the model's end-of-sequence ids, the tokenizer's end of text and file separator. */
export function answerStopIds(model: Pick<LanguageModel, 'config'>, tok: Pick<TextTokenizer, 'special'>): number[] {
  const ids = [...model.config.eosTokenIds, tok.special.eos, tok.special.fileSep];
  return [...new Set(ids.filter((x): x is number => x !== null))];
}

export interface Answer {
  /** The tokens fed after the workspace state: the question, framed for the model. */
  readonly prompt: readonly number[];
  /** How the answer is generated (greedy, stop ids, exact tail, the path constraint, the token limit). */
  readonly options: Readonly<GenerateOptions> & { readonly stopIds: readonly number[] };
  /** Why tokens() ended; null until it has ended by itself (a caller that breaks out of it leaves it null). */
  stoppedBy: 'eos' | 'length' | 'cancelled' | null;
  /**
   * The answer's tokens, one at a time (a stop token ends it and is not yielded), generated on a fork of the
   * model's state that is rolled back afterwards, also when the caller stops early. Run it once.
   */
  tokens(): AsyncGenerator<number>;
}

/**
 * A question about the workspace the model's state holds, answered: the one way from a question to the model's
 * input. The chat (the engine server's `ask`) and the CLI's `ask` both come here, so for the same workspace
 * state, model and question they feed the model the same tokens and get the same answer.
 */
export function answerQuestion(model: LanguageModel, tok: AnswerTokenizer, req: AnswerRequest): Answer {
  const stopIds = answerStopIds(model, tok);
  const options: Answer['options'] = {
    maxNewTokens: req.maxNewTokens ?? DEFAULT_ANSWER_TOKENS,
    greedy: true,
    stopIds,
    signal: req.signal,
    exactTail: ASK_EXACT_TAIL,
    // A model that answers with a path names a file of the workspace.
    allowedNext: req.freeAnswer ? undefined : pathAnswerConstraint(tok, req.statePaths),
  };
  const prompt = questionTokens(tok, req.question);
  const answer: Answer = {
    prompt,
    options,
    stoppedBy: null,
    async *tokens() {
      let stopped = false;
      for await (const id of onFork(model, prompt, options)) {
        if (stopIds.includes(id)) {
          stopped = true;
          break;
        }
        yield id;
      }
      answer.stoppedBy = stopped ? 'eos' : req.signal?.aborted ? 'cancelled' : 'length';
    },
  };
  return answer;
}
