// The estimate (src/engine/estimate.ts, issue 18): from a config alone, the parameter count, weight bytes per
// load format, recurrent state and KV bytes. Checked three ways: against params.py's independent count of every
// published config (test/data/configs/expected.json), against the tensors the engine really loads from each
// fixture's model.safetensors, and against the CPU model's own memory() report.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SUPPORTED_MODEL_TYPES, configFromJson, parseConfigJson } from '../../src/engine/config';
import { CpuModel } from '../../src/engine/cpu/model';
import { estimateModel, loadedTensors } from '../../src/engine/estimate';
import { openModelFolder } from '../../src/engine/model';
import { loadWeights } from '../../src/engine/models/weights';
import { quantizedBytes } from '../../src/engine/quant';
import { writeQuantizedCheckpoint } from '../../src/engine/quantLoad';
import { WeightStore } from '../../src/engine/safetensors';
import { FIXTURES, fixtureNames, REPO } from './helpers';

const CONFIGS = path.join(REPO, 'test', 'data', 'configs');

interface Row {
  params: number;
  state_bytes: number;
  kv_bytes_per_token: number;
  attention_layers: number;
  recurrent_layers: number;
  notes: string;
}

describe('model estimate', () => {
  test('published configs: agrees with params.py (expected.json) on every file', () => {
    const expected = JSON.parse(fs.readFileSync(path.join(CONFIGS, 'expected.json'), 'utf8')) as Record<string, Row>;
    const files = fs.readdirSync(CONFIGS).filter((d) => fs.statSync(path.join(CONFIGS, d)).isDirectory()).flatMap((d) => fs.readdirSync(path.join(CONFIGS, d)).filter((f) => f.endsWith('.json')).map((f) => `${d}/${f}`));
    assert.deepEqual(Object.keys(expected).sort(), files.sort(), 'expected.json has a row for every config (python3 test/data/configs/params.py --write)');
    let checked = 0;
    for (const f of files) {
      const raw = parseConfigJson(fs.readFileSync(path.join(CONFIGS, f), 'utf8'));
      if (!Object.hasOwn(SUPPORTED_MODEL_TYPES, String(raw['model_type']))) continue;
      const want = expected[f];
      const cfg = configFromJson(raw);
      // tiiuae/falcon-mamba-7b writes expand 16 with intermediate_size 8192: the file's width is the weights' (7.27B)
      if (f.startsWith('falcon_mamba/')) assert.equal(cfg.mamba1!.intermediate, 8192, f);
      const e = estimateModel(cfg);
      assert.equal(e.params, want.params, `${f}: params`);
      assert.equal(e.stateBytes, want.state_bytes, `${f}: state bytes`);
      assert.equal(e.kvBytesPerToken, want.kv_bytes_per_token, `${f}: KV bytes per token`);
      assert.equal(e.attentionLayers, want.attention_layers, `${f}: attention layers`);
      assert.equal(e.recurrentLayers, want.recurrent_layers, `${f}: recurrent layers`);
      assert.equal(e.weightBytes.bf16, 2 * e.params, f);
      assert.equal(e.weightBytes.f32, 4 * e.params, f);
      assert.ok(e.weightBytes.q4 < e.weightBytes.q8 && e.weightBytes.q8 < e.weightBytes.bf16, `${f}: q4 < q8 < bf16`);
      checked++;
    }
    assert.equal(checked, files.length, 'every published config is of a family the engine runs');
  });

  for (const name of fixtureNames()) {
    test(`${name}: the estimate is what the engine loads and allocates`, () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      try {
        const e = estimateModel(folder.config);
        // every tensor the loader reads from the checkpoint, each once
        const seen = new Map<string, number>();
        loadWeights(folder.config, folder.store, (n, shape) => {
          if (!seen.has(n)) seen.set(n, folder.store.info(n, shape).shape.reduce((a, d) => a * d, 1));
          return n;
        });
        const loaded = [...seen.values()].reduce((a, b) => a + b, 0);
        assert.equal(e.params, loaded, `${name}: params vs the tensors loaded from model.safetensors`);
        assert.equal(e.tensors, seen.size, `${name}: tensor count`);
        // the CPU reference holds each loaded tensor once in f32
        const cpu = CpuModel.load(folder);
        try {
          const mem = cpu.memory();
          assert.equal(e.stateBytes, mem.stateBytes, `${name}: state bytes vs CpuModel.memory()`);
          assert.equal(e.weightBytes.f32, mem.weightsBytes, `${name}: f32 weight bytes vs CpuModel.memory()`);
          assert.equal(e.kvWindowTokens ?? undefined, mem.kvWindowTokens, `${name}: KV window`);
          if (e.kvMaxBytes !== null) assert.equal(e.kvMaxBytes, mem.kvHostBytes, `${name}: the local attention rings`);
        } finally {
          cpu.dispose();
        }
      } finally {
        folder.store.close();
      }
    });
  }

  // params.py (independent of the engine's loader) over the fixtures' configs too: the families with no published
  // config here yet (zamba, recurrent_gemma, bamba, nemotron_h, granitemoehybrid) are checked this way.
  test('params.py agrees with the estimate on every fixture config', (t) => {
    const script = 'import json, sys\nsys.path.insert(0, sys.argv[1])\nimport params\nprint(json.dumps([params.count(json.load(open(f))) for f in sys.argv[2:]]))';
    const files = fixtureNames().map((n) => path.join(FIXTURES, n, 'config.json'));
    let rows: Row[];
    try {
      rows = JSON.parse(execFileSync('python3', ['-c', script, CONFIGS, ...files], { encoding: 'utf8' }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return t.skip('no python3');
      throw e;
    }
    files.forEach((f, i) => {
      const e = estimateModel(configFromJson(parseConfigJson(fs.readFileSync(f, 'utf8'))));
      const r = rows[i];
      assert.deepEqual([e.params, e.stateBytes, e.kvBytesPerToken, e.attentionLayers, e.recurrentLayers], [r.params, r.state_bytes, r.kv_bytes_per_token, r.attention_layers, r.recurrent_layers], f);
    });
  });

  // The checkpoint stored quantized by the engine (what the loader reads back as is): its tensors' bytes are the
  // estimate's, but for the f16 scales, which the file stores unpadded and the estimate, as the GPU holds them,
  // packed two to a u32 (at most 2 bytes a tensor more).
  for (const name of ['granite-moe-rope', 'mamba1-bf16']) {
    test(`${name}: q8 / q4 bytes are those of the checkpoint the engine writes quantized`, () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-estimate-'));
      try {
        const e = estimateModel(folder.config);
        for (const mode of ['q8', 'q4'] as const) {
          const out = path.join(tmp, mode);
          const r = writeQuantizedCheckpoint(folder, out, mode);
          const stored = WeightStore.openFile(path.join(out, 'model.safetensors'));
          try {
            const bytes = stored.names().reduce((a, n) => a + stored.info(n).byteLength, 0);
            const slack = e.weightBytes[mode] - bytes;
            assert.ok(slack >= 0 && slack <= 2 * r.quantized, `${name} ${mode}: estimate ${e.weightBytes[mode]} vs stored ${bytes} (${r.quantized} quantized tensors)`);
          } finally {
            stored.close();
          }
        }
      } finally {
        folder.store.close();
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  }

  test('q8 / q4 bytes follow the quantized layout (groups of 32, f16 scales; the embedding q8 under q4)', () => {
    const folder = openModelFolder(path.join(FIXTURES, 'mamba2-pure'));
    try {
      const e = estimateModel(folder.config);
      let q8 = 0;
      let q4 = 0;
      for (const t of loadedTensors(folder.config)) {
        const n = t.shape.reduce((a, d) => a * d, 1);
        const K = t.shape[t.shape.length - 1];
        const float = t.role === 'other' || t.shape.length < 2;
        q8 += float ? 2 * n : quantizedBytes(8, n / K, K);
        q4 += float ? 2 * n : quantizedBytes(t.role === 'embedding' ? 8 : 4, n / K, K);
      }
      assert.equal(e.weightBytes.q8, q8);
      assert.equal(e.weightBytes.q4, q4);
      assert.ok(loadedTensors(folder.config).some((t) => t.role === 'embedding'));
    } finally {
      folder.store.close();
    }
  });
});
