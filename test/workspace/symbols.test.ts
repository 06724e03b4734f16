// The ground truth of the five question kinds (src/workspace/symbols.ts), on realistic Python and TypeScript:
// definitions, usages (whole words, ranking, cap), signatures (multi-line, type parameters, return annotations,
// limits), docstrings and comments (r""", ''', JSDoc, //, decorators, none), outlines, and the answers' text.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LISTED_DEFINITIONS } from '../../src/workspace/frame';
import {
  answerText,
  definitionOf,
  firstSentence,
  MAX_USAGES,
  outlineOf,
  signatureOf,
  summaryOf,
  usagesOf,
  type SourceText,
} from '../../src/workspace';

const CLI_PY = `import argparse
from pkg.util import load_config, Config


def parse_args(
    argv: list[str] | None = None,
    *,
    prog: str = "tool",
) -> argparse.Namespace:
    r"""Parse the command line.

    Returns the namespace.
    """
    parser = argparse.ArgumentParser(prog=prog)
    return parser.parse_args(argv)


class Runner(Base):
    '''Runs jobs. Each job gets a fresh Config.'''

    def __init__(self, config: Config):
        self.config = config


async def fetch_all(urls):  # no docstring
    return [await fetch(u) for u in urls]


class Plain:
    x = 1


def main() -> None:
    # a comment before the docstring
    """Entry point for the tool"""
    args = parse_args()
    Runner(load_config(args))
`;

const UTIL_PY = `"""Helpers."""
import json

MAX = 3


def load_config(path: str, *, strict: bool = False) -> Dict[str,
                                                            "Config"]:
    u"""Load a config file.  Missing keys
    get defaults."""
    with open(path) as f:
        return Config(**json.load(f))


@dataclass
class Config:
    """Settings for a run: the model, its dtype, e.g. bf16 and more."""
    model: str


def _helper(x): return x
`;

const TOKENIZE_TS = `import { Config } from './config';

/**
 * Splits \`text\` into tokens. The split is greedy.
 * @param text the input
 */
export function tokenize<T extends string>(
  text: T,
  opts: { lower?: boolean } = {},
): string[] {
  return text.split(/\\s+/);
}

// Joins tokens back.
// Spaces between.
export const detokenize = (tokens: string[]) => tokens.join(' ');

export interface TokenizerOptions {
  lower: boolean;
}

/* A plain block comment without a period */
export default class Tokenizer extends Base {
  constructor(private readonly config: Config) {
    super();
  }
}

/** The service. */
@injectable()
@scoped('app')
export class Service {}

/**
 * @internal
 */
export abstract class Shape {}

function helperFn(x: number) {
  return tokenize(String(x));
}
`;

const MAIN_TS = `import Tokenizer, { tokenize, detokenize } from './engine/tokenize';

const t = new Tokenizer(config);
console.log(detokenize(tokenize('a b')), tokenize('c'));
`;

const WS: SourceText[] = [
  { path: 'pkg/cli.py', text: CLI_PY },
  { path: 'pkg/util.py', text: UTIL_PY },
  { path: 'src/engine/tokenize.ts', text: TOKENIZE_TS },
  { path: 'src/main.ts', text: MAIN_TS },
];

describe('definition and outline', () => {
  test('the first file whose listed names include the name; none for names not listed', () => {
    assert.equal(definitionOf('parse_args', WS)?.path, 'pkg/cli.py');
    assert.equal(definitionOf('Config', WS)?.path, 'pkg/util.py', 'an import is no definition');
    assert.equal(definitionOf('Tokenizer', WS)?.path, 'src/engine/tokenize.ts', 'export default class');
    assert.equal(definitionOf('Shape', WS)?.path, 'src/engine/tokenize.ts', 'abstract class');
    assert.equal(definitionOf('__init__', WS), null, 'a method is not top-level');
    assert.equal(definitionOf('MAX', WS), null, 'names of 4+ characters only');
    assert.equal(definitionOf('missing', WS), null);
    const twice = [{ path: 'a.py', text: 'def shared():\n    pass\n' }, { path: 'b.py', text: 'def shared():\n    pass\n' }];
    assert.equal(definitionOf('shared', twice)?.path, 'a.py', 'the first in workspace order');
  });

  test('outline: the listed names in order, each once, at most MAX_LISTED_DEFINITIONS', () => {
    assert.deepEqual(outlineOf('pkg/cli.py', WS), ['parse_args', 'Runner', 'fetch_all', 'Plain', 'main']);
    assert.deepEqual(outlineOf('src/engine/tokenize.ts', WS), ['tokenize', 'detokenize', 'TokenizerOptions', 'Tokenizer', 'Service', 'Shape', 'helperFn']);
    assert.deepEqual(outlineOf('src/main.ts', WS), []);
    assert.equal(outlineOf('nope.py', WS), null);
    const many = Array.from({ length: 50 }, (_, i) => `def func${i}():\n    pass\n`).join('') + 'def func0():\n    pass\n';
    const files = [{ path: 'many.py', text: many }, { path: 'late.py', text: 'def func49():\n    pass\n' }];
    assert.equal(outlineOf('many.py', files)!.length, MAX_LISTED_DEFINITIONS);
    assert.equal(definitionOf('func49', files)?.path, 'late.py', 'a name past the cap is not listed where it is defined');
    assert.equal(answerText('outline', 'src/main.ts', WS), 'nothing');
    assert.equal(answerText('outline', 'pkg/cli.py', WS), '`parse_args` `Runner` `fetch_all` `Plain` `main`');
    assert.equal(answerText('outline', 'nope.py', WS), null);
  });
});

describe('usages', () => {
  test('files other than the defining one, by whole-word occurrences, most first', () => {
    assert.deepEqual(usagesOf('Config', WS), ['pkg/cli.py', 'src/engine/tokenize.ts'], 'cli.py: import, docstring, annotation; tokenize.ts: 2');
    assert.deepEqual(usagesOf('tokenize', WS), ['src/main.ts'], "'./engine/tokenize' counts too; tokenize.ts defines it");
    assert.deepEqual(usagesOf('parse_args', WS), [], 'used only where it is defined');
    assert.equal(answerText('usages', 'parse_args', WS), 'none');
    assert.equal(answerText('usages', 'Config', WS), '`pkg/cli.py` `src/engine/tokenize.ts`');
  });

  test('whole words only: not inside a longer name, $ and _ and digits included', () => {
    const files = [
      { path: 'def.ts', text: 'export function fetchIt() {}\n' },
      { path: 'a.ts', text: 'fetchItAll(); _fetchIt(); $fetchIt; fetchIt2; fetchIt_\n' },
      { path: 'b.ts', text: 'x.fetchIt(); (fetchIt)\n"fetchIt"\n' },
    ];
    assert.deepEqual(usagesOf('fetchIt', files), ['b.ts']);
    const dollar = [{ path: 'd.js', text: 'export function $emit() {}' }, { path: 'e.js', text: 'a.$emit(); b.$emitter()' }];
    assert.deepEqual(usagesOf('$emit', dollar), ['e.js'], 'a name with $ is matched literally');
  });

  test('ranked by count, ties in workspace order, at most MAX_USAGES; undefined names count everywhere', () => {
    const counts = [1, 3, 1, 2, 3, 1, 1];
    const files = [{ path: 'home.py', text: 'def target():\n    target()\n' }, ...counts.map((n, i) => ({ path: `f${i}.py`, text: 'target(x)\n'.repeat(n) }))];
    assert.equal(MAX_USAGES, 5);
    assert.deepEqual(usagesOf('target', files), ['f1.py', 'f4.py', 'f3.py', 'f0.py', 'f2.py']);
    assert.deepEqual(usagesOf('nowhere_defined', [{ path: 'a.py', text: 'nowhere_defined()' }]), ['a.py']);
  });
});

describe('signatures', () => {
  test('Python: multi-line parameters collapsed, return annotations (across lines too), classes', () => {
    assert.equal(signatureOf('parse_args', WS), 'parse_args(argv: list[str] | None = None, *, prog: str = "tool",) -> argparse.Namespace');
    assert.equal(signatureOf('load_config', WS), 'load_config(path: str, *, strict: bool = False) -> Dict[str, "Config"]');
    assert.equal(signatureOf('Runner', WS), 'Runner(Base)', "a class's bases");
    assert.equal(signatureOf('fetch_all', WS), 'fetch_all(urls)', 'async def; a comment after the header is not a return annotation');
    assert.equal(signatureOf('Plain', WS), 'Plain', 'no parameters: the name');
    assert.equal(signatureOf('main', WS), 'main() -> None');
    assert.equal(signatureOf('_helper', WS), '_helper(x)');
    assert.equal(answerText('signature', 'main', WS), '`main() -> None`');
    assert.equal(signatureOf('missing', WS), null);
    assert.equal(answerText('signature', 'missing', WS), null);
  });

  test('TS: type parameters, defaults with braces, no return type; a name alone when "(" does not follow it', () => {
    assert.equal(signatureOf('tokenize', WS), 'tokenize<T extends string>(text: T, opts: { lower?: boolean } = {},)');
    assert.equal(signatureOf('detokenize', WS), 'detokenize', '`export const NAME = (...) =>`: the name');
    assert.equal(signatureOf('TokenizerOptions', WS), 'TokenizerOptions');
    assert.equal(signatureOf('Tokenizer', WS), 'Tokenizer');
    assert.equal(signatureOf('helperFn', WS), 'helperFn(x: number)');
    assert.equal(signatureOf('Service', WS), 'Service');
  });

  test('limits: 12 lines and 300 characters of source to the closing ")", then 200 characters', () => {
    const lines = (n: number) => `def many(\n${Array.from({ length: n - 2 }, (_, i) => `    a${i},\n`).join('')}):\n    pass\n`;
    assert.equal(signatureOf('many', [{ path: 'm.py', text: lines(12) }]), `many(${Array.from({ length: 10 }, (_, i) => `a${i},`).join(' ')})`);
    assert.equal(signatureOf('many', [{ path: 'm.py', text: lines(13) }]), 'many', '13 lines: the name alone');
    const params = (n: number) => Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, '0')}`).join(', ');
    // "wide(" + 3 characters a parameter + ", " between + ")": 5n + 4 characters of source.
    const wide = (n: number) => [{ path: 'w.ts', text: `export function wide(${params(n)}) {}\n` }];
    assert.equal(signatureOf('wide', wide(39)), `wide(${params(39)})`, '199 characters');
    assert.equal(signatureOf('wide', wide(40)), `wide(${params(40)})`.slice(0, 200), '204 characters: cut to the first 200');
    assert.equal(signatureOf('wide', wide(59)), `wide(${params(59)})`.slice(0, 200), '299 characters of source: kept, then cut');
    assert.equal(signatureOf('wide', wide(60)), 'wide', '304 characters of source: the name alone');
    assert.equal(signatureOf('open', [{ path: 'o.py', text: 'def open_(x:\n' }]), null, 'undefined');
    assert.equal(signatureOf('unclosed', [{ path: 'u.py', text: 'def unclosed(x,\n    y:\n' }]), 'unclosed');
  });
});

describe('summaries', () => {
  test('Python docstrings: r""", u""", \'\'\', after comments; none for other first statements', () => {
    assert.deepEqual(summaryOf('parse_args', WS), { sentence: 'Parse the command line.', path: 'pkg/cli.py' });
    assert.equal(summaryOf('Runner', WS)!.sentence, 'Runs jobs.', "''' and the first sentence of two");
    assert.equal(summaryOf('load_config', WS)!.sentence, 'Load a config file.', 'a header across lines, then u"""');
    assert.equal(summaryOf('main', WS)!.sentence, 'Entry point for the tool', 'no period: the paragraph; a comment before it skipped');
    assert.equal(summaryOf('fetch_all', WS)!.sentence, null);
    assert.equal(summaryOf('Plain', WS)!.sentence, null, 'x = 1 is no docstring');
    assert.equal(summaryOf('_helper', WS)!.sentence, null, 'a one-line body');
    assert.equal(summaryOf('Config', WS)!.sentence, 'Settings for a run: the model, its dtype, e.g.', 'the first "." followed by a space ends it');
    assert.equal(summaryOf('missing', WS), null);
    assert.equal(answerText('summary', 'parse_args', WS), 'Parse the command line. (`pkg/cli.py`)');
    assert.equal(answerText('summary', 'fetch_all', WS), 'no docstring (`pkg/cli.py`)');
    const odd = [
      { path: 'a.py', text: 'def unclosed():\n    """never closed\n' },
      { path: 'b.py', text: "def empty():\n    '''   '''\n" },
      { path: 'c.py', text: 'def rb_prefix():\n    Rb"""Bytes doc. More."""\n' },
      { path: 'd.py', text: 'def single():\n    "single quotes are no docstring here."\n' },
    ];
    assert.equal(summaryOf('unclosed', odd)!.sentence, null);
    assert.equal(summaryOf('empty', odd)!.sentence, null, 'an empty docstring is none');
    assert.equal(summaryOf('rb_prefix', odd)!.sentence, 'Bytes doc.');
    assert.equal(summaryOf('single', odd)!.sentence, null);
  });

  test('JS/TS comments right above: JSDoc (tags cut), // lines, /* */, decorators skipped, blank line = none', () => {
    assert.equal(summaryOf('tokenize', WS)!.sentence, 'Splits `text` into tokens.');
    assert.equal(summaryOf('detokenize', WS)!.sentence, 'Joins tokens back.');
    assert.equal(summaryOf('Tokenizer', WS)!.sentence, 'A plain block comment without a period');
    assert.equal(summaryOf('Service', WS)!.sentence, 'The service.', 'above the decorators');
    assert.equal(summaryOf('Shape', WS)!.sentence, null, 'only a tag');
    assert.equal(summaryOf('TokenizerOptions', WS)!.sentence, null, 'a blank line above');
    assert.equal(summaryOf('helperFn', WS)!.sentence, null);
    const ts = [
      {
        path: 'x.ts',
        text: 'const a = 1; /* trailing */\nexport function afterCode() {}\n/** One line. */ \nexport function oneLine() {}\n/// Triple slash, no period\nexport function triple() {}\n',
      },
    ];
    assert.equal(summaryOf('afterCode', ts)!.sentence, null, 'a comment after code is not a block above');
    assert.equal(summaryOf('oneLine', ts)!.sentence, 'One line.');
    assert.equal(summaryOf('triple', ts)!.sentence, 'Triple slash, no period');
  });

  test('the first sentence: first paragraph, collapsed, 200 characters cut at a word', () => {
    assert.equal(firstSentence('  Does   a\n  thing.\n\nMore.'), 'Does a thing.');
    assert.equal(firstSentence('No period here\nstill the paragraph\n\nNext one.'), 'No period here still the paragraph');
    assert.equal(firstSentence('Version 1.5 is the one.'), 'Version 1.5 is the one.', 'a "." inside a word does not end it');
    assert.equal(firstSentence('Text\n@param x\nmore.'), 'Text', 'cut before a tag line');
    const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
    const cut = firstSentence(long);
    assert.ok(cut.length <= 200 && long.startsWith(cut) && long[cut.length] === ' ', cut);
    assert.equal(cut, long.slice(0, long.slice(0, 201).lastIndexOf(' ')));
    assert.equal(firstSentence('x'.repeat(250)), 'x'.repeat(200), 'no space: 200 characters');
    assert.equal(firstSentence('   \n  '), '');
  });
});

describe('answers', () => {
  test('each kind in its canonical form; null without a ground truth', () => {
    assert.equal(answerText('definition', 'detokenize', WS), '`src/engine/tokenize.ts`');
    assert.equal(answerText('definition', 'missing', WS), null);
    assert.equal(answerText('usages', 'tokenize', WS), '`src/main.ts`');
    assert.equal(answerText('signature', 'tokenize', WS), '`tokenize<T extends string>(text: T, opts: { lower?: boolean } = {},)`');
    assert.equal(answerText('summary', 'Service', WS), 'The service. (`src/engine/tokenize.ts`)');
    assert.equal(answerText('summary', 'missing', WS), null);
    assert.equal(answerText('outline', 'pkg/util.py', WS), '`load_config` `Config` `_helper`');
  });

  test('CRLF files read as LF ones', () => {
    const crlf = WS.map((f) => ({ path: f.path, text: f.text.replace(/\n/g, '\r\n') }));
    for (const kind of ['definition', 'usages', 'signature', 'summary'] as const) {
      for (const name of ['parse_args', 'load_config', 'tokenize', 'Service', 'Config']) assert.equal(answerText(kind, name, crlf), answerText(kind, name, WS), `${kind} ${name}`);
    }
  });
});
