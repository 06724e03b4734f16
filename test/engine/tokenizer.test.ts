// The model's tokenizer: special tokens found by name, and the file framing it asks for (footer or not).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TextTokenizer } from '../../src/engine/tokenizer';
import { frameFile } from '../../src/workspace';

const BUNDLED = path.join(__dirname, '..', '..', 'models', 'default'); // from dist/test

function folderWith(config: Record<string, unknown> | null): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-tok-'));
  fs.copyFileSync(path.join(BUNDLED, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  if (config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return dir;
}

test('the bundled tokenizer has FIM, file and end-of-text tokens, and no footer unless its config asks', () => {
  const tok = TextTokenizer.load(folderWith(null));
  for (const k of ['eos', 'fimPrefix', 'fimMiddle', 'fimSuffix', 'fimPad', 'fileSep', 'fileName'] as const) {
    assert.equal(typeof tok.special[k], 'number', k);
  }
  assert.equal(tok.decode([tok.special.fileSep!], false), '<file_sep>');
  assert.equal(tok.special.fileFooter, false);
  assert.equal(TextTokenizer.load(folderWith({ sidewinder_file_footer: 'yes' })).special.fileFooter, false, 'only true counts');
});

test('a model trained with file footers gets the path after <file_sep>, tokenized as in the header', () => {
  const tok = TextTokenizer.load(folderWith({ eos_token: '<|endoftext|>', sidewinder_file_footer: true }));
  assert.equal(tok.special.fileFooter, true);
  const ids = frameFile('pkg/util.py', 'def helper():\n    return 1\n', tok.special, (s) => tok.encode(s));
  const path_ = tok.encode('pkg/util.py\n');
  assert.equal(ids[0], tok.special.fileName);
  assert.deepEqual(ids.slice(1, 1 + path_.length), path_);
  const sep = ids.lastIndexOf(tok.special.fileSep!);
  assert.deepEqual(ids.slice(sep + 1), path_);
  assert.equal(tok.decode(ids, false), '<filename>pkg/util.py\ndef helper():\n    return 1\n<file_sep>pkg/util.py\n');
});

test('a model trained with a definitions line lists them after the footer path; the flag needs the footer', () => {
  assert.equal(TextTokenizer.load(folderWith({ sidewinder_file_defs: true })).special.fileDefs, false, 'no footer, no definitions line');
  const tok = TextTokenizer.load(folderWith({ eos_token: '<|endoftext|>', sidewinder_file_footer: true, sidewinder_file_defs: true }));
  assert.equal(tok.special.fileDefs, true);
  const ids = frameFile('pkg/util.py', 'def helper():\n    return 1\n', tok.special, (s) => tok.encode(s));
  assert.equal(tok.decode(ids, false), '<filename>pkg/util.py\ndef helper():\n    return 1\n<file_sep>pkg/util.py\ndefines `helper`\n');
  // The path in the footer is tokenized as in the header, and the name as a question writes it.
  const path_ = tok.encode('pkg/util.py\n');
  const sep = ids.lastIndexOf(tok.special.fileSep!);
  assert.deepEqual(ids.slice(sep + 1, sep + 1 + path_.length), path_);
  const name = tok.encode(' `helper`');
  const q = tok.encode('Where is `helper` defined?');
  const inQuestion = q.findIndex((_, i) => name.every((t, j) => q[i + j] === t));
  const inFooter = ids.findIndex((_, i) => i > sep && name.every((t, j) => ids[i + j] === t));
  assert.ok(inQuestion >= 0 && inFooter > sep, 'the same tokens for the name in the question and in the footer');
});

test('a model trained with an index gets a `NAME` `path` line per name: the answer is the tokens after the name', () => {
  assert.equal(TextTokenizer.load(folderWith({ sidewinder_file_index: true })).special.fileIndex, false, 'no footer, no index');
  const tok = TextTokenizer.load(folderWith({ eos_token: '<|endoftext|>', sidewinder_file_footer: true, sidewinder_file_index: true }));
  assert.equal(tok.special.fileIndex, true);
  const text = 'def helper():\n    return 1\nclass Loader:\n    pass\n';
  const ids = frameFile('pkg/util.py', text, tok.special, (s) => tok.encode(s));
  assert.equal(tok.decode(ids, false), `<filename>pkg/util.py\n${text}<file_sep>pkg/util.py\n \`helper\` \`pkg/util.py\`\n \`Loader\` \`pkg/util.py\`\n`);
  // The question's name and the answer as train/data.py writes them (" `path`") are the same tokens in the index,
  // one right after the other.
  const sep = ids.lastIndexOf(tok.special.fileSep!);
  const q = tok.encode('Question: Where is `Loader` defined?\nAnswer:');
  const name = tok.encode(' `Loader`');
  const answer = tok.encode(' `pkg/util.py`');
  const find = (xs: number[], ys: number[], from = 0) => xs.findIndex((_, i) => i >= from && ys.every((t, j) => xs[i + j] === t));
  assert.ok(find(q, name) >= 0, 'the name in the question');
  const at = find(ids, [...name, ...answer], sep);
  assert.ok(at > sep, 'the name then the answer, verbatim, in the footer');
});
