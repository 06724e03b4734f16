// How one file is laid out for the model. The convention, by what the tokenizer offers:
//   <filename> token:      [<filename>] encode(path + '\n') encode(text) [<file_sep>]?   (StarCoder / Granite style)
//   only <file_sep> token: [<file_sep>] encode(path + '\n' + text)
//   neither:               encode('// File: ' + path + '\n' + text + '\n')
// The path is always the workspace-relative path with '/' separators, so the framing does not depend on where
// the workspace lives (and a snapshot stays valid when the folder moves).

export interface FileTokens {
  fileSep: number | null; // <file_sep> / <|file_sep|>
  fileName: number | null; // <filename> / <|filename|>
}

export function frameFile(path: string, text: string, special: FileTokens, encode: (s: string) => number[]): number[] {
  if (special.fileName !== null) {
    const out = [special.fileName, ...encode(path + '\n'), ...encode(text)];
    if (special.fileSep !== null) out.push(special.fileSep);
    return out;
  }
  if (special.fileSep !== null) return [special.fileSep, ...encode(path + '\n' + text)];
  return encode(`// File: ${path}\n${text}\n`);
}
