// How one file is laid out for the model. The convention, by what the tokenizer offers:
//   <filename> token:      [<filename>] encode(path + '\n') encode(text) [<file_sep>]?   (StarCoder / Granite style)
//     and, for a model trained with a footer (tokenizer_config.json "sidewinder_file_footer": true), the path
//     again after the <file_sep>: [<file_sep>] encode(path + '\n'). A causal model reads the header before the
//     file's code, so only the footer can tie what the file defines to its path ("where is NAME defined?").
//   only <file_sep> token: [<file_sep>] encode(path + '\n' + text)
//   neither:               encode('// File: ' + path + '\n' + text + '\n')
// The path is always the workspace-relative path with '/' separators, so the framing does not depend on where
// the workspace lives (and a snapshot stays valid when the folder moves).

export interface FileTokens {
  fileSep: number | null; // <file_sep> / <|file_sep|>
  fileName: number | null; // <filename> / <|filename|>
  fileFooter?: boolean; // the path repeated after <file_sep> (models trained so, see above)
}

export function frameFile(path: string, text: string, special: FileTokens, encode: (s: string) => number[]): number[] {
  if (special.fileName !== null) {
    const out = [special.fileName, ...encode(path + '\n'), ...encode(text)];
    if (special.fileSep !== null) {
      out.push(special.fileSep);
      if (special.fileFooter) out.push(...encode(path + '\n'));
    }
    return out;
  }
  if (special.fileSep !== null) return [special.fileSep, ...encode(path + '\n' + text)];
  return encode(`// File: ${path}\n${text}\n`);
}
