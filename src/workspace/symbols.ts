// The ground truth of the five kinds of question a five-kind model answers (tokenizer flag
// sidewinder_question_kinds), from the workspace's text alone. This file is the reference: train/data.py mirrors
// these rules in Python to make the training answers, and bench/eval.ts scores a model against them, so a change
// here is a change of the training data (change both together).
//
// `files` is the workspace as the model reads it: {path, text} in workspace order. "Collapsed" means every run of
// whitespace (spaces, tabs, newlines, \r) replaced by one space. A file is Python when its path ends in .py or
// .pyi; any other file follows the JS/TS rules.
//
// - listed names of a file: listedNames(text) (frame.ts): the top-level names definedNames finds (its regex, names
//   of 4+ characters), each once, in order of appearance, at most MAX_LISTED_DEFINITIONS (48).
// - definition(X): the first file whose listed names include X. None: no answer.
// - the definition line of X: the first line of that file (text split at '\n') on which definedNames finds X; X's
//   position is its first whole-word occurrence on that line (whole word: not preceded or followed by
//   [A-Za-z0-9_$]). Without one (the regex matched across lines), the signature is X and there is no docstring.
// - usages(X): the files, other than definition(X), whose text holds X as a whole word, ranked by the number of
//   such occurrences (anywhere: code, comments, strings), most first, ties in workspace order; at most 5.
// - signature(X): on the definition line, after X, skip spaces and tabs and, if one starts there, a type-parameter
//   list `<...>` (angle brackets counted; not closed on that line: X alone); if the next character is not "(" it is
//   X alone (`class Foo:`, `class Foo extends Bar {`, `export const Foo = ...`, `interface Foo {`). Otherwise it
//   is the source from X through the ")" that closes that "(" (parentheses counted, strings not parsed), which
//   must lie within 300 characters of source from X and within 12 lines (the definition line included), else X
//   alone; collapsed, with the space right after each "(" and right before each ")" removed. Python only: when the
//   text between that ")" and the header's closing ":" (the first ":" after X outside (), [] and {}) starts with
//   "->" (after whitespace), " -> RET" is appended, RET being the rest of that text, collapsed and trimmed (when not
//   empty). Finally cut to its first 200 characters.
// - summary(X), the docstring: Python: after the header's closing ":", skip whitespace and `#` comments; if a
//   string literal opened with """ or ''' follows (with a prefix of at most two of r, u, b in any case), its text
//   up to the same closing delimiter (none if unclosed). JS/TS: the comment right above the definition line (the
//   lines above whose trimmed text starts with "@", decorators, are skipped): when that line ends (trimmed) with
//   "*/", the text between the "/*" of the nearest line at or above it that holds one (that line must start,
//   trimmed, with "/*") and the last "*/", each line without its leading whitespace and "*"s; when it starts
//   (trimmed) with "//", that line and the consecutive such lines above it, each without its leading whitespace
//   and "/"s. The docstring is cut before its first line that starts (trimmed) with "@" (JSDoc tags). Then the first
//   sentence: the first paragraph (the trimmed text up to the first line holding only whitespace), collapsed and
//   trimmed, up to and including the first "." followed by a space or the end; without one, the whole paragraph;
//   longer than 200 characters, cut at the last space within its first 201 characters (or at 200 without one).
//   An empty sentence is no docstring.
// - outline(path): the listed names of the file with that path.
//
// The answers, as the model writes them after "Answer:" (see answerText): definition "`path`"; usages "`p1` `p2`"
// or "none"; signature "`SIG`"; summary "SENTENCE (`path`)" or "no docstring (`path`)", path being definition(X);
// outline "`A` `B`" or "nothing".

import { definedNames, listedNames } from './frame';

/** A file of the workspace, as the model reads it. */
export interface SourceText {
  readonly path: string;
  readonly text: string;
}

/** The kinds of question a five-kind model answers; the canonical question of each is in engine/ask.ts kindQuestion. */
export type QuestionKind = 'definition' | 'usages' | 'signature' | 'summary' | 'outline';

/** The most files a usages answer lists. */
export const MAX_USAGES = 5;
const MAX_SIGNATURE = 200;
const MAX_SIGNATURE_SOURCE = 300;
const MAX_SIGNATURE_LINES = 12;
const MAX_SENTENCE = 200;

/** Characters that continue a name: an occurrence of X next to one is part of another name. */
const NAME_CHAR = '[A-Za-z0-9_$]';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const wholeWord = (name: string, flags = '') => new RegExp(`(?<!${NAME_CHAR})${escapeRegExp(name)}(?!${NAME_CHAR})`, flags);
const collapse = (s: string) => s.replace(/\s+/g, ' ');
const isPython = (path: string) => /\.pyi?$/.test(path);

/** The file that defines `name`: the first whose listed names include it; null when none does. */
export function definitionOf(name: string, files: readonly SourceText[]): SourceText | null {
  return files.find((f) => listedNames(f.text).includes(name)) ?? null;
}

/** Paths of the files that use `name` (other than its defining file), most occurrences first; at most MAX_USAGES. */
export function usagesOf(name: string, files: readonly SourceText[]): string[] {
  const home = definitionOf(name, files);
  const word = wholeWord(name, 'g');
  return files
    .map((f, order) => ({ path: f.path, order, count: f.path === home?.path ? 0 : (f.text.match(word)?.length ?? 0) }))
    .filter((u) => u.count > 0)
    .sort((a, b) => b.count - a.count || a.order - b.order)
    .slice(0, MAX_USAGES)
    .map((u) => u.path);
}

/** Where `name` is defined in `text`: the offset of the name on its definition line, and of that line (its index in `lines`). */
function definitionSite(name: string, text: string): { at: number; offset: number; line: number; lines: string[] } | null {
  const lines = text.split('\n');
  let offset = 0;
  for (let line = 0; line < lines.length; line++) {
    if (definedNames(lines[line])[0] === name) {
      const col = lines[line].search(wholeWord(name));
      if (col >= 0) return { at: offset + col, offset, line, lines };
    }
    offset += lines[line].length + 1;
  }
  return null;
}

/** Python: the offset of a header's closing ':', the first one after `from` outside (), [] and {}; -1 if none. */
function headerEnd(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1);
    else if (c === ':' && depth === 0) return i;
  }
  return -1;
}

/** The signature of `name` as its definition writes it (rules in the header); null when no file defines it. */
export function signatureOf(name: string, files: readonly SourceText[]): string | null {
  const file = definitionOf(name, files);
  if (!file) return null;
  const site = definitionSite(name, file.text);
  if (!site) return name;
  const { text } = file;
  const start = site.at;
  const lineEnd = site.offset + site.lines[site.line].length;
  let i = start + name.length;
  const skipBlanks = () => {
    while (i < lineEnd && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  skipBlanks();
  if (text[i] === '<') {
    // A type-parameter list (`function first<T>(xs: T[])`) sits between the name and its parameters.
    let depth = 0;
    for (; i < lineEnd; i++) {
      if (text[i] === '<') depth++;
      else if (text[i] === '>' && --depth === 0) break;
    }
    if (i >= lineEnd) return name;
    i++;
    skipBlanks();
  }
  if (i >= lineEnd || text[i] !== '(') return name;
  let depth = 0;
  let close = -1;
  for (let j = i; j < text.length && j < start + MAX_SIGNATURE_SOURCE; j++) {
    if (text[j] === '(') depth++;
    else if (text[j] === ')' && --depth === 0) {
      close = j;
      break;
    }
  }
  if (close < 0) return name;
  const source = text.slice(start, close + 1);
  if (source.split('\n').length > MAX_SIGNATURE_LINES) return name;
  let sig = collapse(source).replace(/\( /g, '(').replace(/ \)/g, ')');
  if (isPython(file.path)) {
    const colon = headerEnd(text, start);
    const ret = colon > close ? /^\s*->([\s\S]*)$/.exec(text.slice(close + 1, colon)) : null;
    if (ret && ret[1].trim()) sig += ` -> ${collapse(ret[1]).trim()}`;
  }
  return sig.slice(0, MAX_SIGNATURE);
}

/** Python: the text of the docstring that opens the body of the definition at `at`; null when there is none. */
function pythonDocstring(text: string, at: number): string | null {
  const colon = headerEnd(text, at);
  if (colon < 0) return null;
  const body = text.slice(colon + 1).replace(/^(?:\s|#[^\n]*)*/, '');
  const open = /^[rRuUbB]{0,2}("""|''')/.exec(body);
  if (!open) return null;
  const end = body.indexOf(open[1], open[0].length);
  return end < 0 ? null : body.slice(open[0].length, end);
}

/** JS/TS: the comment right above line `line` (decorators skipped), without its markers; null when there is none. */
function commentAbove(lines: readonly string[], line: number): string | null {
  let last = line - 1;
  while (last >= 0 && lines[last].trim().startsWith('@')) last--;
  if (last < 0) return null;
  const end = lines[last].trim();
  if (end.endsWith('*/')) {
    let first = last;
    while (first >= 0 && !lines[first].includes('/*')) first--;
    if (first < 0 || !lines[first].trim().startsWith('/*')) return null;
    const block = lines.slice(first, last + 1).join('\n');
    const inner = block.slice(block.indexOf('/*') + 2, block.lastIndexOf('*/'));
    return inner
      .split('\n')
      .map((l) => l.replace(/^\s*\*+/, ''))
      .join('\n');
  }
  if (!end.startsWith('//')) return null;
  let first = last;
  while (first > 0 && lines[first - 1].trim().startsWith('//')) first--;
  return lines
    .slice(first, last + 1)
    .map((l) => l.replace(/^\s*\/+/, ''))
    .join('\n');
}

/** A docstring's first sentence (rules in the header); '' for an empty one. */
export function firstSentence(doc: string): string {
  const lines = doc.split('\n');
  const tag = lines.findIndex((l) => l.trim().startsWith('@'));
  const untagged = (tag < 0 ? lines : lines.slice(0, tag)).join('\n').trim();
  const paragraph = collapse(untagged.split(/\n\s*\n/)[0]).trim();
  let s = /^.*?\.(?= |$)/.exec(paragraph)?.[0] ?? paragraph;
  if (s.length > MAX_SENTENCE) {
    const cut = s.slice(0, MAX_SENTENCE + 1).lastIndexOf(' ');
    s = cut > 0 ? s.slice(0, cut) : s.slice(0, MAX_SENTENCE);
  }
  return s;
}

/**
 * What `name` does, from its docstring (Python) or the comment above it (JS/TS): the first sentence, or null when it
 * has none; with the defining file's path. null when no file defines it.
 */
export function summaryOf(name: string, files: readonly SourceText[]): { sentence: string | null; path: string } | null {
  const file = definitionOf(name, files);
  if (!file) return null;
  const site = definitionSite(name, file.text);
  const doc = !site ? null : isPython(file.path) ? pythonDocstring(file.text, site.at) : commentAbove(site.lines, site.line);
  return { sentence: doc === null ? null : firstSentence(doc) || null, path: file.path };
}

/** The names the file at `path` defines (its listed names); null when no file has that path. */
export function outlineOf(path: string, files: readonly SourceText[]): string[] | null {
  const file = files.find((f) => f.path === path);
  return file ? listedNames(file.text) : null;
}

const code = (s: string) => `\`${s}\``;

/**
 * The canonical answer to a question of `kind` about `subject` (a name, or for outline a path), as the model is
 * trained to write it after "Answer:"; null when the question has no answer in `files` (no file defines the name,
 * or has the path).
 */
export function answerText(kind: QuestionKind, subject: string, files: readonly SourceText[]): string | null {
  switch (kind) {
    case 'definition': {
      const file = definitionOf(subject, files);
      return file ? code(file.path) : null;
    }
    case 'usages': {
      const paths = usagesOf(subject, files);
      return paths.length ? paths.map(code).join(' ') : 'none';
    }
    case 'signature': {
      const sig = signatureOf(subject, files);
      return sig === null ? null : code(sig);
    }
    case 'summary': {
      const s = summaryOf(subject, files);
      return s === null ? null : `${s.sentence ?? 'no docstring'} (${code(s.path)})`;
    }
    case 'outline': {
      const names = outlineOf(subject, files);
      return names === null ? null : names.length ? names.map(code).join(' ') : 'nothing';
    }
  }
}
