// How one file is laid out for the model. The convention, by what the tokenizer offers:
//   <filename> token:      [<filename>] encode(path + '\n') encode(text) [<file_sep>]?   (StarCoder / Granite style)
//     and, for a model trained with a footer (tokenizer_config.json "sidewinder_file_footer": true), the path
//     again after the <file_sep>: [<file_sep>] encode(path + '\n'). A causal model reads the header before the
//     file's code, so only the footer can tie what the file defines to its path ("where is NAME defined?").
//     A model trained with a definitions line too ("sidewinder_file_defs": true) gets, after that footer, the
//     names the file defines at top level, in backticks as a question writes them: encode('defines `A` `B`\n'):
//     a lookup then matches the question's name against a line that sits right after the file's path.
//   only <file_sep> token: [<file_sep>] encode(path + '\n' + text)
//   neither:               encode('// File: ' + path + '\n' + text + '\n')
// The path is always the workspace-relative path with '/' separators, so the framing does not depend on where
// the workspace lives (and a snapshot stays valid when the folder moves).

export interface FileTokens {
  fileSep: number | null; // <file_sep> / <|file_sep|>
  fileName: number | null; // <filename> / <|filename|>
  fileFooter?: boolean; // the path repeated after <file_sep> (models trained so, see above)
  fileDefs?: boolean; // and a line of the names the file defines (models trained so, see above)
}

/** Top-level definitions that the footer lists: Python def/class, JS/TS (exported) function/class; 4+ characters. */
const DEF_RE = /^(?:def|class)\s+([A-Za-z_]\w{3,})|^(?:export\s+)?(?:function|class)\s+([A-Za-z_$][\w$]{3,})/gm;

/** The most names a definitions line lists (a file of many small functions stays a few hundred tokens). */
export const MAX_LISTED_DEFINITIONS = 48;

/** Names a file defines at top level, in order of appearance (repeats included). */
export function definedNames(text: string): string[] {
  return [...text.matchAll(DEF_RE)].map((m) => m[1] ?? m[2]);
}

/** The footer's definitions line: each name once, in order, at most MAX_LISTED_DEFINITIONS; '' when none. */
export function definitionsLine(text: string): string {
  const names = [...new Set(definedNames(text))].slice(0, MAX_LISTED_DEFINITIONS);
  return names.length ? `defines ${names.map((n) => `\`${n}\``).join(' ')}\n` : '';
}

export function frameFile(path: string, text: string, special: FileTokens, encode: (s: string) => number[]): number[] {
  if (special.fileName !== null) {
    const out = [special.fileName, ...encode(path + '\n'), ...encode(text)];
    if (special.fileSep !== null) {
      out.push(special.fileSep);
      if (special.fileFooter) out.push(...encode(path + '\n' + (special.fileDefs ? definitionsLine(text) : '')));
    }
    return out;
  }
  if (special.fileSep !== null) return [special.fileSep, ...encode(path + '\n' + text)];
  return encode(`// File: ${path}\n${text}\n`);
}
