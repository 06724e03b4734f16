// Fuzzing a whole model folder (openModelFolder, then loadWeights through the CPU model and a short
// forward): each fixture with its config.json fields mutated, generation_config.json odd, tokenizer files
// missing, safetensors headers bit-flipped. Each input ends in a model whose logits come out finite-sized,
// or an engine error (ModelFormatError, UnsupportedModelError, ...); never a TypeError from deep inside.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { CpuModel } from '../../src/engine/cpu/model';
import { openModelFolder } from '../../src/engine/model';
import { bitFlips, checkAsync, corpus, FIXTURES, fc, flipBits, namedAsync, oddJson, rarely, tmpDir } from './fuzz';

const TARGET = 'modelFolder';

interface Case {
  name: string;
  fixture: string;
  /** files replaced (name -> text), or removed (name -> null) */
  files: Record<string, string | null>;
}

const FIXTURE_NAMES = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'config.json'))).sort();

/** One copy of each fixture; each input rewrites the files it mutates and restores them afterwards. */
function copies(): Map<string, string> {
  const m = new Map<string, string>();
  for (const name of FIXTURE_NAMES) {
    const dir = tmpDir(`${TARGET}-${name}`);
    for (const f of fs.readdirSync(path.join(FIXTURES, name))) {
      if (f !== 'expected.json') fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dir, f));
    }
    m.set(name, dir);
  }
  return m;
}

/** Opens `dir` and runs the CPU model on two tokens. */
async function openAndRun(dir: string): Promise<number> {
  const folder = openModelFolder(dir);
  try {
    const model = CpuModel.load(folder);
    const logits = await model.forward([0, 1]);
    assert.equal(logits.length, folder.config.vocabSize);
    assert.ok(folder.stopIds.every((id) => Number.isInteger(id) && id >= 0 && id < folder.config.vocabSize));
    model.dispose();
    return logits.length;
  } finally {
    folder.store.close();
  }
}

/** Writes `files` into the copy of `fixture`, runs it, and puts the fixture's own files back. */
async function withFiles(dirs: Map<string, string>, fixture: string, files: Record<string, string | Buffer | null>): Promise<void> {
  const dir = dirs.get(fixture)!;
  for (const [f, v] of Object.entries(files)) {
    if (v === null) fs.rmSync(path.join(dir, f), { force: true });
    else fs.writeFileSync(path.join(dir, f), v);
  }
  try {
    await namedAsync(() => openAndRun(dir));
  } finally {
    for (const f of Object.keys(files)) {
      const src = path.join(FIXTURES, fixture, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
      else fs.rmSync(path.join(dir, f), { force: true });
    }
  }
}

const configValue = fc.oneof(oddJson(), fc.constantFrom<unknown>(0, 1, 2, 4, 8, 16, 32, 64, 128, -1, 0.5, 2 ** 31, 1e9, 'Infinity'), fc.integer({ min: 0, max: 130 }));

describe('fuzz: model folders', () => {
  const dirs = copies();

  test('committed cases', async () => {
    for (const c of corpus<Case>(TARGET).cases) await withFiles(dirs, c.fixture, c.files);
  });

  test('mutated config.json, generation_config.json, tokenizer files and headers', async () => {
    const configs = new Map(FIXTURE_NAMES.map((n) => [n, JSON.parse(fs.readFileSync(path.join(FIXTURES, n, 'config.json'), 'utf8')) as Record<string, unknown>]));
    const keys = [...new Set([...configs.values()].flatMap((c) => Object.keys(c)))].sort();
    await checkAsync(
      TARGET,
      'folders',
      200,
      fc.asyncProperty(
        fc.constantFrom(...FIXTURE_NAMES),
        fc.array(fc.tuple(fc.constantFrom(...keys), rarely(configValue, 6)), { maxLength: 3 }),
        rarely(fc.oneof(fc.constantFrom<unknown>(null, [], 5, 'x'), oddJson(), fc.record({ eos_token_id: oddJson() }), fc.record({ eos_token_id: fc.array(fc.integer({ min: -2, max: 400 }), { maxLength: 3 }) }))),
        rarely(fc.constantFrom('tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'model.safetensors')),
        rarely(bitFlips(4)),
        async (fixture, edits, gen, remove, flips) => {
          const files: Record<string, string | Buffer | null> = {};
          if (edits.length) {
            const cfg: Record<string, unknown> = structuredClone(configs.get(fixture)!);
            for (const [k, v] of edits) {
              if (v === undefined) delete cfg[k];
              else cfg[k] = v;
            }
            files['config.json'] = JSON.stringify(cfg);
          }
          if (gen !== undefined) files['generation_config.json'] = JSON.stringify(gen) ?? '';
          if (remove) files[remove] = null;
          if (flips && !remove) {
            // Flip bits inside the (first) safetensors file's length + header.
            const st = fs.readdirSync(path.join(FIXTURES, fixture)).filter((f) => f.endsWith('.safetensors')).sort()[0];
            const bytes = fs.readFileSync(path.join(FIXTURES, fixture, st));
            const h = 8 + Number(bytes.readBigUInt64LE(0));
            files[st] = Buffer.concat([flipBits(bytes.subarray(0, h), flips.at, flips.bits), bytes.subarray(h)]);
          }
          await withFiles(dirs, fixture, files);
        },
      ),
    );
  });
});
