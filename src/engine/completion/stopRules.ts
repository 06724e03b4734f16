// When an inline completion is finished. The model would happily write the rest of the file; a suggestion
// should end where the thing being written ends: the end of the line when the cursor is inside a line, the
// end of the block (dedent or the closing bracket of the enclosing block), a bracket the text after the cursor
// already closes, a line the text after the cursor already has, two blank lines, or a line budget.

/** 'line': complete the current line only; 'block': may run over several lines. */
export type CompletionMode = 'line' | 'block';

export interface StopContext {
  mode: CompletionMode;
  /** Most lines a suggestion may have. */
  maxLines: number;
  /** Text of the cursor's line before the cursor. */
  linePrefix: string;
  /** Text after the cursor (at least the rest of the line and the next few lines). */
  suffix: string;
}

export interface StopResult {
  /** True when nothing after this point can be part of the suggestion: generation can stop. */
  done: boolean;
  /** The suggestion as it stands. */
  text: string;
}

const OPEN = '([{';
const CLOSE = ')]}';
const TAB_WIDTH = 4;

/** Characters that may follow the cursor on its line without making it a mid-line completion. */
const TRAILING_CLOSERS = /^[\s)\]}'"`;,:]*$/;

/** Picks single-line or multi-line from the text around the cursor on its line. */
export function completionMode(linePrefix: string, lineSuffix: string): CompletionMode {
  if (!TRAILING_CLOSERS.test(lineSuffix)) return 'line'; // real code after the cursor: fill in the line
  const before = linePrefix.trimEnd();
  if (before === '') return 'block'; // an empty or indented line: a statement or a block
  if (/(?:[([{:]|=>)$/.test(before)) return 'block'; // just opened a block, a call or an object
  return 'line';
}

function indentWidth(line: string): number {
  let w = 0;
  for (const c of line) {
    if (c === ' ') w++;
    else if (c === '\t') w += TAB_WIDTH;
    else break;
  }
  return w;
}

/** The first non-blank line of `text`, trimmed ('' if none). */
function firstCodeLine(text: string): string {
  for (const l of text.split('\n')) if (l.trim()) return l.trim();
  return '';
}

/**
 * Bracket depth over `text`, skipping quoted strings and `//` comments (roughly: enough for stop decisions).
 * Calls `onClose(index, char, depthAfter)` at each closing bracket.
 */
function scanBrackets(text: string, onClose: (index: number, char: string, depth: number) => boolean | void): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote || (c === '\n' && quote !== '`')) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '/' && text[i + 1] === '/') {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl;
    } else if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c)) {
      depth--;
      if (onClose(i, c, depth) === true) break;
    }
  }
  return depth;
}

/**
 * What is shown once generation has ended: trailing blank lines and spaces dropped, except that a completion in
 * the middle of a line keeps its trailing space (it separates it from the text after the cursor).
 */
export function finishCompletion(text: string, ctx: StopContext): string {
  const lineSuffix = ctx.suffix.split('\n', 1)[0];
  return lineSuffix.trim() && !text.includes('\n') ? text : text.replace(/\s+$/, '');
}

/**
 * Applies every stop rule to the whole text generated so far. Cheap enough to call after each token (the
 * text is at most a few hundred characters).
 */
export function applyStopRules(text: string, ctx: StopContext): StopResult {
  const suffixStart = ctx.suffix.trimStart();
  const lineSuffix = ctx.suffix.split('\n', 1)[0];

  // A closing bracket that closes something from before the cursor, which the text after the cursor already
  // closes: stop just before it (so it is not written twice).
  let cut = -1;
  scanBrackets(text, (i, c, depth) => {
    if (depth < 0 && suffixStart.startsWith(c)) {
      cut = i;
      return true;
    }
    return false;
  });
  if (cut >= 0) return { done: true, text: applyStopRules(text.slice(0, cut), ctx).text };

  if (ctx.mode === 'line') {
    const nl = text.indexOf('\n');
    let line = nl >= 0 ? text.slice(0, nl) : text;
    // The model rewrote what already follows the cursor on this line: keep only the new part.
    const rest = lineSuffix.trim();
    if (rest && line.trimEnd().endsWith(rest)) {
      line = line.trimEnd().slice(0, line.trimEnd().length - rest.length);
      return { done: true, text: line };
    }
    return { done: nl >= 0, text: line };
  }

  // Block mode: line 0 continues the cursor's line; every later line must stay inside the block.
  const lines = text.split('\n');
  const cursorIndent = indentWidth(ctx.linePrefix);
  const blockIndent = ctx.linePrefix.trim() === '' ? cursorIndent : cursorIndent + 1;
  const suffixLine = firstCodeLine(ctx.suffix);
  let offset = lines[0].length + 1; // start of line i in text
  let blanks = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const complete = i < lines.length - 1;
    const start = offset;
    offset += line.length + 1;
    if (i >= ctx.maxLines) return { done: true, text: text.slice(0, start - 1) };
    if (line.trim() === '') {
      if (complete && ++blanks >= 2) return { done: true, text: text.slice(0, start - 1) };
      continue;
    }
    blanks = 0;
    if (indentWidth(line) < blockIndent) {
      // The block ends here. A line of closing brackets that closes the enclosing block (the text before it
      // is balanced) is kept, unless the text after the cursor already has that bracket (handled above).
      const body = line.trim();
      if (!CLOSE.includes(body[0])) return { done: true, text: text.slice(0, start - 1) };
      if (scanBrackets(text.slice(0, start), () => false) > 0) continue; // closes a bracket the completion opened
      const closers = /^[)\]}]+[;,]?/.exec(body)![0];
      return { done: true, text: text.slice(0, start) + line.slice(0, line.indexOf(body[0]) + closers.length) };
    }
    // A line that the text after the cursor already starts with: the completion has caught up with it. (Not for
    // a line of bare brackets: `}` repeats everywhere.)
    if (complete && /\w/.test(suffixLine) && line.trim() === suffixLine) return { done: true, text: text.slice(0, start - 1) };
  }
  return { done: false, text };
}
