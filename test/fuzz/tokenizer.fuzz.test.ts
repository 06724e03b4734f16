// Fuzzing tokenizer.json + tokenizer_config.json (TextTokenizer.load, through @huggingface/tokenizers):
// raw text, the fixture's tokenizer with sections replaced by odd JSON, vocab and added-token ids that are
// negative, huge (2^40) or not numbers, odd model / pre-tokenizer / decoder types, and odd tokenizer configs.
// Each input loads to a tokenizer that encodes and decodes a few strings, or a ModelFormatError.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError } from '../../src/engine/errors';
import { TextTokenizer } from '../../src/engine/tokenizer';
import { check, corpus, FIXTURES, fc, named, oddJson, rarely, tmpDir } from './fuzz';

const TARGET = 'tokenizer';

interface Case {
  name: string;
  /** tokenizer.json text (absent: the fixture's) */
  tokenizer?: string;
  /** or: edits of the fixture's tokenizer.json, as the 'tokenizer' property makes them */
  edits?: Edit[];
  /** tokenizer_config.json text (null: no file; absent: the fixture's) */
  config?: string | null;
}

const SRC = path.join(FIXTURES, 'granite-dense-nope');
const TOKENIZER_TEXT = fs.readFileSync(path.join(SRC, 'tokenizer.json'), 'utf8');
const CONFIG_TEXT = fs.readFileSync(path.join(SRC, 'tokenizer_config.json'), 'utf8');
const TOKENIZER = JSON.parse(TOKENIZER_TEXT) as Record<string, unknown> & { model: Record<string, unknown> & { vocab: Record<string, number> }; added_tokens: Record<string, unknown>[] };
const TEXTS = ['def f(x):\n    return x + 1\n', '<fim_prefix>a<fim_suffix>b<fim_middle>', 'héllo wörld \u0000 \ud83d\ude00', ''];

function load(dir: string, tokenizer: string, config: string | null): void {
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), tokenizer);
  if (config === null) fs.rmSync(path.join(dir, 'tokenizer_config.json'), { force: true });
  else fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), config);
  const out = named(() => {
    const tok = TextTokenizer.load(dir);
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      assert.ok(Array.isArray(ids) && ids.every((id) => Number.isInteger(id)));
      assert.equal(typeof tok.decode(ids), 'string');
    }
    return tok;
  });
  if (!out.ok) assert.ok(out.error instanceof ModelFormatError, `${out.error.name}: ${out.error.message}`);
}

const id = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 400 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 0.5, 2 ** 31, 2 ** 40, 1e300, '3', null, NaN) },
);
const typeName = fc.constantFrom<unknown>('BPE', 'WordPiece', 'Unigram', 'WordLevel', 'ByteLevel', 'Sequence', 'Metaspace', 'Split', 'Whitespace', 'NFC', 'Replace', 'nope', '', 3, null);

/** Structured mutations of the fixture's tokenizer.json. */
const tokenizerEdit = fc.oneof(
  // A top-level section replaced.
  fc.record({ kind: fc.constant('section' as const), key: fc.constantFrom('normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'added_tokens', 'model', 'truncation', 'padding', 'version'), value: fc.oneof(oddJson(), fc.record({ type: typeName }, { requiredKeys: [] })) }),
  // A model field replaced.
  fc.record({ kind: fc.constant('model' as const), key: fc.constantFrom('type', 'vocab', 'merges', 'unk_token', 'dropout', 'byte_fallback', 'continuing_subword_prefix', 'fuse_unk'), value: fc.oneof(oddJson(), typeName) }),
  // Some vocab ids changed.
  fc.record({ kind: fc.constant('vocab' as const), edits: fc.array(fc.tuple(fc.nat({ max: 299 }), id), { minLength: 1, maxLength: 4 }) }),
  // Some added tokens changed.
  fc.record({ kind: fc.constant('added' as const), edits: fc.array(fc.tuple(fc.nat({ max: 5 }), fc.constantFrom('id', 'content', 'special', 'normalized'), fc.oneof(id, oddJson())), { minLength: 1, maxLength: 3 }) }),
  // Some merges replaced.
  fc.record({ kind: fc.constant('merges' as const), edits: fc.array(fc.tuple(fc.nat({ max: 36 }), fc.oneof(fc.string({ maxLength: 6 }), oddJson())), { minLength: 1, maxLength: 3 }) }),
);

type Edit = typeof tokenizerEdit extends fc.Arbitrary<infer E> ? E : never;
type TokenizerJson = typeof TOKENIZER;

/** `base` with one edit applied (a copy). */
function applyEdit(base: TokenizerJson, e: Edit): TokenizerJson {
  const t = structuredClone(base);
  if (typeof t.model !== 'object' || t.model === null) t.model = { vocab: {} };
  if (typeof t.model.vocab !== 'object' || t.model.vocab === null) t.model.vocab = {};
  if (!Array.isArray(t.model['merges'])) t.model['merges'] = [];
  if (!Array.isArray(t.added_tokens)) t.added_tokens = [];
  switch (e.kind) {
    case 'section':
      (t as Record<string, unknown>)[e.key] = e.value;
      break;
    case 'model':
      (t.model as Record<string, unknown>)[e.key] = e.value;
      break;
    case 'vocab': {
      const names = Object.keys(t.model.vocab);
      for (const [i, v] of e.edits) (t.model.vocab as Record<string, unknown>)[names[i % names.length] ?? 'x'] = v;
      break;
    }
    case 'added':
      for (const [i, k, v] of e.edits) {
        const tok = t.added_tokens[i % t.added_tokens.length];
        if (tok && typeof tok === 'object') tok[k] = v;
      }
      break;
    case 'merges': {
      const merges = t.model['merges'] as unknown[];
      for (const [i, v] of e.edits) merges[merges.length ? i % merges.length : 0] = v;
      break;
    }
  }
  return t;
}

const configEdit = fc.oneof(
  fc.constantFrom<unknown>(null, [], 5, 'x', {}),
  oddJson(),
  fc.record(
    {
      eos_token: fc.oneof(fc.constantFrom<unknown>('<|endoftext|>', '<fim_pad>', 'missing', '', null, 7, { content: '<|endoftext|>' })),
      bos_token: fc.oneof(fc.constantFrom<unknown>(null, '<|endoftext|>', { content: 5 }), oddJson()),
      sidewinder_file_footer: fc.oneof(fc.boolean(), oddJson()),
      sidewinder_file_index: fc.oneof(fc.boolean(), oddJson()),
      added_tokens_decoder: oddJson(),
      model_max_length: fc.constantFrom<unknown>(2 ** 60, -1, 'x', 1e308),
      chat_template: fc.oneof(fc.string({ maxLength: 20 }), oddJson()),
    },
    { requiredKeys: [] },
  ),
);

describe('fuzz: tokenizer.json and tokenizer_config.json', () => {
  const dir = tmpDir(TARGET);

  test('committed cases', () => {
    for (const c of corpus<Case>(TARGET).cases) {
      const tokenizer = c.edits ? JSON.stringify(c.edits.reduce(applyEdit, TOKENIZER)) : (c.tokenizer ?? TOKENIZER_TEXT);
      assert.doesNotThrow(() => load(dir, tokenizer, c.config === undefined ? CONFIG_TEXT : c.config), c.name);
    }
  });

  test('raw text', () => {
    check(
      TARGET,
      'raw',
      300,
      fc.property(fc.oneof(fc.string({ maxLength: 100, unit: 'binary' }), fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? '')), fc.boolean(), (text, asConfig) =>
        asConfig ? load(dir, TOKENIZER_TEXT, text) : load(dir, text, CONFIG_TEXT),
      ),
    );
  });

  test('mutated tokenizer.json', () => {
    check(
      TARGET,
      'tokenizer',
      400,
      fc.property(fc.array(tokenizerEdit, { minLength: 1, maxLength: 3 }), (edits) => {
        let t = TOKENIZER;
        for (const e of edits) t = applyEdit(t, e);
        load(dir, JSON.stringify(t), CONFIG_TEXT);
      }),
    );
  });

  test('mutated tokenizer_config.json', () => {
    check(
      TARGET,
      'config',
      300,
      fc.property(configEdit, rarely(fc.constant(null)), (cfg, none) => load(dir, TOKENIZER_TEXT, none === null ? null : (JSON.stringify(cfg) ?? ''))),
    );
  });
});
