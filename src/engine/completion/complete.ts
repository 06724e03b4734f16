// A code completion at a cursor, on a fork of the model's state (the workspace stays as it was): the FIM
// prompt (or the prefix alone), greedy tokens, stopped by the block / bracket / line rules.

import { onFork } from '../ask';
import type { LanguageModel } from '../model';
import type { TextTokenizer } from '../tokenizer';
import { buildFimPrompt } from './fim';
import { applyStopRules, completionMode, finishCompletion, type StopContext } from './stopRules';

export interface CompletionRequest {
  path: string; // relative to the workspace, '/'-separated
  prefix: string;
  suffix: string;
  maxTokens: number;
  maxLines: number;
  maxPromptTokens?: number;
  signal?: AbortSignal;
  /** Called between tokens (e.g. to let messages in); may be async. */
  onToken?: () => Promise<void> | void;
}

export interface CompletionResult {
  text: string;
  reason: 'done' | 'length' | 'cancelled' | 'empty';
  mode: 'fim' | 'prefix-only';
}

export function completionStopIds(model: LanguageModel, tok: Pick<TextTokenizer, 'special'>): number[] {
  const s = tok.special;
  return [...model.config.eosTokenIds, ...[s.eos, s.fileSep, s.fileName, s.fimPrefix, s.fimSuffix, s.fimMiddle, s.fimPad].filter((x): x is number => x !== null)];
}

export async function completeAt(model: LanguageModel, tok: Pick<TextTokenizer, 'special' | 'encode' | 'decode'>, req: CompletionRequest): Promise<CompletionResult> {
  const prompt = buildFimPrompt(tok.special, (s) => tok.encode(s), req, { maxPromptTokens: req.maxPromptTokens ?? 2048 });
  if (prompt.ids.length === 0) return { text: '', reason: 'empty', mode: prompt.mode };
  const lineStart = req.prefix.lastIndexOf('\n') + 1;
  const linePrefix = req.prefix.slice(lineStart);
  const ctx: StopContext = {
    mode: completionMode(linePrefix, req.suffix.split('\n', 1)[0]),
    maxLines: req.maxLines,
    linePrefix,
    suffix: req.suffix,
  };
  const stop = completionStopIds(model, tok);
  const ids: number[] = [];
  let text = '';
  let reason: CompletionResult['reason'] = 'length';
  for await (const id of onFork(model, prompt.ids, { maxNewTokens: req.maxTokens, greedy: true, stopIds: stop, signal: req.signal })) {
    if (stop.includes(id)) {
      reason = 'done';
      break;
    }
    ids.push(id);
    await req.onToken?.();
    if (req.signal?.aborted) break;
    const decoded = tok.decode(ids);
    if (decoded.endsWith('\uFFFD')) continue;
    const r = applyStopRules(decoded, ctx);
    text = r.text;
    if (r.done) {
      reason = 'done';
      break;
    }
  }
  if (req.signal?.aborted) return { text: '', reason: 'cancelled', mode: prompt.mode };
  return { text: finishCompletion(text, ctx), reason, mode: prompt.mode };
}
