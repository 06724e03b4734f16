// Fuzzing config.json: parseConfigJson on raw and mutated text (Python's Infinity/NaN literals, deep
// nesting, cuts), configFromJson on each fixture's config with fields set to odd values, removed or renamed.
// Each input ends in a config whose basic invariants hold, or an engine error (UnsupportedModelError and its
// subclasses): which settings are supported is config.ts's business, not this test's.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { SUPPORTED_MODEL_TYPES, configFromJson, parseConfigJson, type ModelConfig } from '../../src/engine/config';
import { check, corpus, FIXTURES, fc, named, oddJson } from './fuzz';
import { fixtureNames } from '../engine/helpers';

const TARGET = 'config';

interface Case {
  name: string;
  /** config.json text */
  text: string;
  /** a known issue of config.ts: run in a child process, as a todo */
  todo?: string;
  /** also check checkSizes (as a todo when `todo` is set) */
  sizes?: boolean;
}

// The fixtures of the model types the engine runs (those of families still to come are refused by name: parity.test.ts).
const FIXTURE_TEXTS = fixtureNames().map((d) => fs.readFileSync(path.join(FIXTURES, d, 'config.json'), 'utf8'));
const FIXTURE_CONFIGS = FIXTURE_TEXTS.map((t) => parseConfigJson(t));
const KEYS = [...new Set(FIXTURE_CONFIGS.flatMap((c) => Object.keys(c)))].sort();
// Keys some configs have and the fixtures lack.
const OTHER_KEYS = ['layers_block_type', 'attn_layer_indices', 'head_dim', 'rope_theta', 'rope_scaling', 'num_experts_per_tok', 'rms_norm', 'model_type', 'architectures', '__proto__', 'constructor'];

/** Invariants of any config configFromJson returns, whatever it decides to support. */
function checkConfig(c: ModelConfig): void {
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.mamba) && Object.isFrozen(c.layerKinds));
  assert.ok(Object.keys(SUPPORTED_MODEL_TYPES).includes(c.architecture));
  for (const [k, v] of Object.entries({ vocab: c.vocabSize, hidden: c.hiddenSize, layers: c.numLayers })) {
    assert.ok(Number.isInteger(v) && v > 0, `${k} = ${v}`);
  }
  assert.equal(c.layerKinds.length, c.numLayers);
  assert.ok(c.layerKinds.every((k) => k === 'mamba' || k === 'mamba1' || k === 'attention' || k === 'mlp' || k === 'parallel' || k === 'hybrid' || k === 'rglru' || k === 'local'));
  assert.equal(c.mamba1 === null, !c.layerKinds.includes('mamba1'));
  assert.equal(c.attention === null, !c.layerKinds.some((k) => k === 'attention' || k === 'parallel' || k === 'hybrid' || k === 'local'));
  assert.equal(c.griffin === undefined, !c.layerKinds.some((k) => k === 'rglru' || k === 'local'));
  assert.equal(c.zamba2 === undefined, !c.layerKinds.includes('hybrid'));
  assert.equal(c.mlp === null, !c.layerKinds.includes('mlp'));
  assert.ok(c.eosTokenIds.every((id) => typeof id === 'number'));
}

/** Sizes every buffer is made from: finite, safe integers (config.ts bounds every size field). */
function checkSizes(c: ModelConfig): void {
  const m = c.mamba;
  for (const [k, v] of Object.entries({ ...(m ?? {}), ...(c.mamba1 ?? {}), vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, numLayers: c.numLayers, ...(c.attention ?? {}), ...(c.feedForward ?? {}), ...(c.mlp ?? {}) })) {
    if (typeof v !== 'number' || ['timeStepMin', 'timeStepMax', 'scaling', 'ropeTheta', 'falconEps', 'gatedNormEps'].includes(k)) continue;
    assert.ok(Number.isSafeInteger(v) && v >= 0, `${k} = ${v}`);
  }
  if (m) assert.equal(m.intermediate, m.numHeads * m.headDim);
}

function parseAndBuild(text: string, opts: { sizes?: boolean } = {}): void {
  named(() => {
    const raw = parseConfigJson(text);
    const c = configFromJson(raw);
    checkConfig(c);
    checkSizes(c);
    return c;
  });
}

// Child mode (the todo tests below): build one config text from the environment; exit 0 if it ends in a
// config or an engine error, 1 otherwise (a crash also exits non-zero).
if (process.env.SIDEWINDER_FUZZ_CONFIG_CHILD !== undefined) {
  try {
    const parsed = parseConfigJson(process.env.SIDEWINDER_FUZZ_CONFIG_CHILD);
    named(() => configFromJson(parsed));
    process.exit(0);
  } catch (e) {
    console.error(e);
    process.exit(1);
  }
}

/** Runs `text` through config parsing in a child process with a 96 MB heap and a 20 s limit. */
function inChild(text: string): { ok: boolean; detail: string } {
  const r = spawnSync(process.execPath, ['--max-old-space-size=96', __filename], {
    env: { ...process.env, SIDEWINDER_FUZZ_CONFIG_CHILD: text },
    timeout: 20_000,
    encoding: 'utf8',
  });
  return { ok: r.status === 0, detail: `status ${r.status} signal ${r.signal}: ${(r.stderr ?? '').split('\n').slice(0, 3).join(' ')}` };
}

/** An odd value for a config field: the shared odd JSON plus sizes and floats that break arithmetic. */
const fieldValue = fc.oneof(
  oddJson(),
  fc.constantFrom<unknown>(0, 1, 2, 3, -1, 0.5, 1e-300, 2 ** 31, 2 ** 40, 1e9, 2 ** 53, 'Infinity', '-inf', 'nan', { __float__: '-Infinity' }),
  fc.integer({ min: -4, max: 300 }),
  fc.array(fc.constantFrom<unknown>('mamba', 'attention', 'full_attention', 'linear_attention', 'moe', 0, 1, null), { maxLength: 8 }),
);

const mutation = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...KEYS, ...OTHER_KEYS), value: fieldValue }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
  fc.record({ op: fc.constant('scale' as const), key: fc.constantFrom(...KEYS), by: fc.constantFrom(0, -1, 2, 1000, 2 ** 30, 0.5) }),
);

describe('fuzz: config.json', () => {
  const cases = corpus<Case>(TARGET).cases;
  test('committed cases', () => {
    for (const c of cases.filter((c) => !c.todo)) assert.doesNotThrow(() => parseAndBuild(c.text, { sizes: c.sizes }), c.name);
  });

  for (const c of cases.filter((c) => c.todo)) {
    test(`known issue: ${c.name}`, { todo: c.todo }, () => {
      if (c.sizes) parseAndBuild(c.text, { sizes: true });
      else {
        const r = inChild(c.text);
        assert.ok(r.ok, r.detail);
      }
    });
  }

  test('raw text', () => {
    check(
      TARGET,
      'raw',
      500,
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200, unit: 'binary' }),
          fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
          fc.array(fc.constantFrom('{', '}', '[', ']', '"', ':', ',', 'NaN', '-Infinity', 'Infinity', '"a"', '1', '\\', 'null'), { maxLength: 60 }).map((a) => a.join('')),
          fc.nat({ max: 20000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
          fc.nat({ max: 20000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
        ),
        (text) => parseAndBuild(text),
      ),
    );
  });

  test('fixture configs with mutated fields', () => {
    check(
      TARGET,
      'fields',
      1500,
      fc.property(fc.nat({ max: FIXTURE_CONFIGS.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 5 }), (which, muts) => {
        const raw: Record<string, unknown> = structuredClone(FIXTURE_CONFIGS[which]);
        for (const m of muts) {
          if (m.op === 'set') Object.defineProperty(raw, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
          else if (m.op === 'delete') delete raw[m.key];
          else if (typeof raw[m.key] === 'number') raw[m.key] = (raw[m.key] as number) * m.by;
        }
        // Through text, as it arrives from disk (undefined values drop out, as in a real file).
        parseAndBuild(JSON.stringify(raw));
      }),
    );
  });

  test('text mutations of fixture configs (Python literals, cuts)', () => {
    check(
      TARGET,
      'text',
      400,
      fc.property(
        fc.nat({ max: FIXTURE_TEXTS.length - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        fc.nat({ max: 30 }),
        fc.constantFrom('', 'NaN', 'Infinity', '-Infinity', '"', '\\', '{', '[', '1e999', '-0', ',', '"NaN"'),
        (which, at, cut, insert) => {
          const t = FIXTURE_TEXTS[which];
          const p = Math.floor(at * t.length);
          parseAndBuild(t.slice(0, p) + insert + t.slice(p + cut));
        },
      ),
    );
  });
});
