// How one file is laid out for the model. The convention, by what the tokenizer offers:
//   <filename> token:      [<filename>] encode(path + '\n') encode(text) [<file_sep>]?   (StarCoder / Granite style)
//     and, for a model trained with a footer (tokenizer_config.json "sidewinder_file_footer": true), the path
//     again after the <file_sep>: [<file_sep>] encode(path + '\n'). A causal model reads the header before the
//     file's code, so only the footer can tie what the file defines to its path ("where is NAME defined?").
//     A model trained with a definitions line too ("sidewinder_file_defs": true) gets, after that footer, the
//     names the file defines at top level, in backticks as a question writes them: encode('defines `A` `B`\n'):
//     a lookup then matches the question's name against a line that sits right after the file's path.
//     A model trained with an index ("sidewinder_file_index": true) gets instead one line per name with the path
//     after it, as an answer writes it: encode(' `A` `path`\n `B` `path`\n') (the space before the name makes it
//     the same tokens as in a question). Answering "where is `A` defined?" is then a copy of what follows the
//     question's name where it was seen last (what induction heads do).
//   only <file_sep> token: [<file_sep>] encode(path + '\n' + text)
//   neither:               encode('// File: ' + path + '\n' + text + '\n')
// The path is always the workspace-relative path with '/' separators, so the framing does not depend on where
// the workspace lives (and a snapshot stays valid when the folder moves).

export interface FileTokens {
  fileSep: number | null; // <file_sep> / <|file_sep|>
  fileName: number | null; // <filename> / <|filename|>
  fileFooter?: boolean; // the path repeated after <file_sep> (models trained so, see above)
  fileDefs?: boolean; // and a line of the names the file defines (models trained so, see above)
  fileIndex?: boolean; // or an index line per name, `NAME` `path` (models trained so, see above)
}

/**
 * Bumped whenever the same file text is framed into other tokens (snapshots read with another framing are
 * re-read). 2: the footer lists async, default-exported and abstract definitions and exported
 * const/let/interface/type/enum too.
 */
export const FRAME_VERSION = 2;

/**
 * Top-level definitions that the footer lists, 4+ characters: Python (async) def/class; JS/TS (async, generator,
 * default-exported) function and (abstract) class, and exported const/let/interface/type/enum.
 */
const DEF_RE =
  /^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w{3,})|^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\*?|(?:abstract\s+)?class)\s+([A-Za-z_$][\w$]{3,})|^export\s+(?:const|let|interface|type|enum)\s+([A-Za-z_$][\w$]{3,})/gm;

/** The most names a definitions line lists (a file of many small functions stays a few hundred tokens). */
export const MAX_LISTED_DEFINITIONS = 48;

/** Names a file defines at top level, in order of appearance (repeats included). */
export function definedNames(text: string): string[] {
  return [...text.matchAll(DEF_RE)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The names a footer lists: each defined name once, in order, at most MAX_LISTED_DEFINITIONS. */
export function listedNames(text: string): string[] {
  return [...new Set(definedNames(text))].slice(0, MAX_LISTED_DEFINITIONS);
}

/** The footer's definitions line: the listed names in backticks; '' when none. */
export function definitionsLine(text: string): string {
  const names = listedNames(text);
  return names.length ? `defines ${names.map((n) => `\`${n}\``).join(' ')}\n` : '';
}

/** The footer's index: one line ' `NAME` `path`' per listed name. */
export function definitionsIndex(text: string, path: string): string {
  return listedNames(text)
    .map((n) => ` \`${n}\` \`${path}\`\n`)
    .join('');
}

/** What follows the path in the footer of a model trained with definitions (a line, or an index). */
function footerDefinitions(path: string, text: string, special: FileTokens): string {
  if (special.fileIndex) return definitionsIndex(text, path);
  return special.fileDefs ? definitionsLine(text) : '';
}

export function frameFile(path: string, text: string, special: FileTokens, encode: (s: string) => number[]): number[] {
  if (special.fileName !== null) {
    const out = [special.fileName, ...encode(path + '\n'), ...encode(text)];
    if (special.fileSep !== null) {
      out.push(special.fileSep);
      if (special.fileFooter) out.push(...encode(path + '\n' + footerDefinitions(path, text, special)));
    }
    return out;
  }
  if (special.fileSep !== null) return [special.fileSep, ...encode(path + '\n' + text)];
  return encode(`// File: ${path}\n${text}\n`);
}
