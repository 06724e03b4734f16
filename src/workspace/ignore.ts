// .gitignore semantics, implemented from git's own definition (gitignore(5) and wildmatch.c, WM_PATHNAME mode):
//   - blank lines and lines starting with '#' are skipped; '\#' and '\!' escape a leading '#' or '!';
//   - trailing spaces are dropped unless escaped ('\ '); a CR before the LF is dropped;
//   - '!' negates; a later matching line overrides an earlier one;
//   - a trailing '/' matches directories only (and is removed before the next rule);
//   - a pattern with no other '/' matches the basename at any depth; one with a '/' at the start or in the middle
//     is anchored to the directory holding the ignore file;
//   - '*' and '?' never match '/'; '[...]' classes ('!' or '^' negates, ranges, [:alpha:] and friends) never
//     match '/'; '**/' matches zero or more directories, a trailing '/**' everything inside, and any other '**'
//     is a plain '*'.
// The walker applies rule sets from the most to the least specific directory and never descends into an excluded
// directory, which gives git's "a file cannot be re-included if a parent directory is excluded".

/** One compiled line of an ignore file. */
export interface IgnoreRule {
  readonly source: string; // the line as written, for messages
  readonly negated: boolean; // '!pattern': re-includes
  readonly dirOnly: boolean; // 'pattern/': directories only
  readonly basenameOnly: boolean; // no '/' in the pattern: matched against the last path component
  readonly re: RegExp | null; // null: a malformed pattern (unclosed '[', trailing '\'), which git never matches
}

export interface CompileOptions {
  /** Match case-insensitively (git does when core.ignoreCase is set, the default on macOS and Windows). */
  caseInsensitive?: boolean;
  /** Let patterns with a '/' in the middle match at any depth ('a/b' acts as '**\/a/b'); a leading '/' still anchors. */
  floating?: boolean;
}

/** The rules of one ignore file (or option list) and the directory they are relative to. */
export interface IgnoreRuleSet {
  readonly rules: readonly IgnoreRule[];
  /** Turns a path relative to the workspace root into one relative to the rules' directory. */
  readonly localPath: (rel: string) => string;
}

/** Parses the text of an ignore file; unusable lines are dropped, as git does. */
export function compileIgnore(text: string, opts: CompileOptions = {}): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    const rule = compileLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, opts);
    if (rule) rules.push(rule);
  }
  return rules;
}

export function compileLine(line: string, opts: CompileOptions = {}): IgnoreRule | null {
  if (line.startsWith('#')) return null;
  let p = trimTrailingSpaces(line);
  if (p === '') return null;
  const negated = p.startsWith('!');
  if (negated) p = p.slice(1);
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.slice(0, -1);
  if (p === '') return null;
  const basenameOnly = !p.includes('/');
  const anchored = p.startsWith('/');
  if (anchored) p = p.slice(1);
  const body = wildmatchSource(p, basenameOnly ? 0 : literalPrefixLength(p));
  let re: RegExp | null = null;
  if (body !== null) {
    const prefix = opts.floating && !basenameOnly && !anchored ? '(?:.*/)?' : '';
    re = new RegExp(`^${prefix}${body}$`, opts.caseInsensitive ? 'iu' : 'u');
  }
  return { source: line, negated, dirOnly, basenameOnly, re };
}

/** git's trim_trailing_spaces: drop unescaped trailing ' ' (not tabs). */
function trimTrailingSpaces(s: string): string {
  let lastSpace = -1;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === ' ') {
      if (lastSpace < 0) lastSpace = i;
      continue;
    }
    if (s[i] === '\\') i++; // the next character is escaped (a '\ ' keeps its space)
    lastSpace = -1;
  }
  return lastSpace < 0 ? s : s.slice(0, lastSpace);
}

/** Does this rule match the path (relative to the rules' directory)? */
export function ruleMatches(rule: IgnoreRule, local: string, isDir: boolean): boolean {
  if (rule.re === null || (rule.dirOnly && !isDir)) return false;
  return rule.re.test(rule.basenameOnly ? local.slice(local.lastIndexOf('/') + 1) : local);
}

/** The last rule of the list that matches, or null. */
export function lastMatch(rules: readonly IgnoreRule[], local: string, isDir: boolean): IgnoreRule | null {
  for (let i = rules.length - 1; i >= 0; i--) if (ruleMatches(rules[i], local, isDir)) return rules[i];
  return null;
}

/**
 * Is `rel` (relative to the workspace root, '/' separators) excluded by its own name? `sets` run from the least to
 * the most specific; the most specific set with a matching rule decides. Parent directories are not checked here:
 * the walker never enters an excluded directory.
 */
export function isIgnored(sets: readonly IgnoreRuleSet[], rel: string, isDir: boolean): boolean {
  for (let i = sets.length - 1; i >= 0; i--) {
    const hit = lastMatch(sets[i].rules, sets[i].localPath(rel), isDir);
    if (hit) return !hit.negated;
  }
  return false;
}

// --- wildmatch -> RegExp -------------------------------------------------------------------------------------

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  blank: ' \\t',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e',
  space: ' \\t\\n\\r\\f\\v',
  upper: 'A-Z',
  xdigit: '0-9A-Fa-f',
};

function escapeChar(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** Length of the pattern's leading run without '*', '?', '[' or '\\' (git's simple_length), in code points. */
function literalPrefixLength(pattern: string): number {
  const m = /[*?[\\]/.exec(pattern);
  return Array.from(m ? pattern.slice(0, m.index) : pattern).length;
}

/**
 * Regex source for a wildmatch pattern in WM_PATHNAME mode, or null when git would never match it. git matches a
 * path pattern's literal prefix first and runs wildmatch on the rest, so a '**' right after that prefix counts as
 * the start of a pattern ('x**\/y' matches 'xa/b/y'): `restart` is that position.
 */
function wildmatchSource(pattern: string, restart: number): string | null {
  const p = Array.from(pattern); // by code point
  let out = '';
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === '*') {
      let j = i;
      while (p[j] === '*') j++;
      const special = j - i >= 2 && (i === 0 || i === restart || p[i - 1] === '/') && (j === p.length || p[j] === '/');
      if (special && j === p.length) {
        out += '.*'; // trailing '**': everything below
        i = j;
      } else if (special) {
        out += '(?:.*/)?'; // '**/': zero or more directories
        i = j + 1;
      } else {
        out += '[^/]*';
        i = j;
      }
    } else if (c === '?') {
      out += '[^/]';
      i++;
    } else if (c === '[') {
      const cls = bracketSource(p, i);
      if (cls === null) return null;
      out += cls.source;
      i = cls.end;
    } else if (c === '\\') {
      if (i + 1 >= p.length) return null; // a trailing backslash never matches
      out += escapeChar(p[i + 1]);
      i += 2;
    } else {
      out += escapeChar(c);
      i++;
    }
  }
  return out;
}

/** A '[...]' class starting at p[start], following wildmatch.c's parsing quirks ('[]a]', '[!]]', 'a-]'). */
function bracketSource(p: string[], start: number): { source: string; end: number } | null {
  let i = start + 1;
  let negated = false;
  if (p[i] === '!' || p[i] === '^') {
    negated = true;
    i++;
  }
  const items: string[] = [];
  let prev: string | null = null; // the previous literal, which may start a range
  for (let first = true; first || p[i] !== ']'; first = false) {
    let c = p[i];
    if (c === undefined) return null; // unclosed class
    if (c === '\\') {
      c = p[++i];
      if (c === undefined) return null;
      items.push(escapeChar(c));
      prev = c;
    } else if (c === '-' && prev !== null && p[i + 1] !== undefined && p[i + 1] !== ']') {
      let hi = p[++i];
      if (hi === '\\') {
        hi = p[++i];
        if (hi === undefined) return null;
      }
      items.pop(); // the range replaces its lower end
      if (prev.codePointAt(0)! <= hi.codePointAt(0)!) items.push(`${escapeChar(prev)}-${escapeChar(hi)}`);
      else items.push(escapeChar(prev)); // a reversed range matches only what was already there
      prev = null;
    } else if (c === '[' && p[i + 1] === ':') {
      const close = p.indexOf(']', i + 2);
      if (close < 0) return null;
      if (p[close - 1] !== ':' || close - 1 < i + 2) {
        items.push(escapeChar('[')); // no ':]': a literal '['
        prev = '[';
      } else {
        const cls = POSIX_CLASSES[p.slice(i + 2, close - 1).join('')];
        if (cls === undefined) return null; // git aborts on an unknown class
        items.push(cls);
        prev = null;
        i = close;
      }
    } else {
      items.push(escapeChar(c));
      prev = c;
    }
    i++;
  }
  const body = items.join('');
  const source = negated ? `[^/${body}]` : `(?:(?!/)[${body}])`;
  return { source, end: i + 1 };
}
