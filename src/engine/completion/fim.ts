// The prompt for an inline completion, appended to the workspace state (on a fork of it). The file is framed
// the way the workspace was (src/workspace/frame.ts: `<filename>path\n`, `<file_sep>path\n`, or a
// `// File: path` line), then, with the model's fill-in-the-middle tokens, prefix-suffix-middle (PSM):
//   header <fim_prefix> prefix <fim_suffix> suffix <fim_middle>   -> the model writes the middle
// and without them the prefix alone (the model continues the text; the stop rules use the suffix).

export interface FimSpecialTokens {
  fimPrefix: number | null;
  fimSuffix: number | null;
  fimMiddle: number | null;
  fileSep: number | null;
  fileName: number | null;
}

export interface FimInput {
  path: string; // the file's path relative to its workspace folder, '/'-separated
  prefix: string; // document text before the cursor
  suffix: string; // document text after the cursor
}

export interface FimPrompt {
  ids: number[];
  mode: 'fim' | 'prefix-only';
  /** Prompt tokens of the prefix and suffix after truncation (for logs). */
  prefixTokens: number;
  suffixTokens: number;
}

/** Budget in tokens for the prompt; the prefix gets three quarters of it when both sides are long. */
export interface FimBudget {
  maxPromptTokens: number;
}

export function hasFim(t: FimSpecialTokens): boolean {
  return t.fimPrefix !== null && t.fimSuffix !== null && t.fimMiddle !== null;
}

/**
 * Builds the completion prompt. The prefix is cut from the left and the suffix from the right so the whole
 * fits `maxPromptTokens` (the workspace state already holds the rest of the codebase).
 */
export function buildFimPrompt(special: FimSpecialTokens, encode: (text: string) => number[], input: FimInput, budget: FimBudget): FimPrompt {
  if (!Number.isInteger(budget.maxPromptTokens) || budget.maxPromptTokens < 8) {
    throw new RangeError(`maxPromptTokens must be an integer >= 8, got ${budget.maxPromptTokens}.`);
  }
  const head =
    special.fileName !== null
      ? [special.fileName, ...encode(input.path + '\n')]
      : special.fileSep !== null
        ? [special.fileSep, ...encode(input.path + '\n')]
        : encode(`// File: ${input.path}\n`);
  const fim = hasFim(special);
  const room = Math.max(0, budget.maxPromptTokens - head.length - (fim ? 3 : 0));
  let pre = input.prefix ? encode(input.prefix) : [];
  let suf = fim && input.suffix ? encode(input.suffix) : [];
  // Give the suffix up to a quarter, then the prefix everything the suffix does not use.
  const sufRoom = Math.min(suf.length, Math.floor(room / 4));
  const preRoom = Math.min(pre.length, room - sufRoom);
  const sufKeep = Math.min(suf.length, room - preRoom);
  pre = pre.slice(pre.length - preRoom);
  suf = suf.slice(0, sufKeep);
  if (!fim) return { ids: [...head, ...pre], mode: 'prefix-only', prefixTokens: pre.length, suffixTokens: 0 };
  return {
    ids: [...head, special.fimPrefix!, ...pre, special.fimSuffix!, ...suf, special.fimMiddle!],
    mode: 'fim',
    prefixTokens: pre.length,
    suffixTokens: suf.length,
  };
}
