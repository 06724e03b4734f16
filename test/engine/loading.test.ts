// Loading checkpoints: config.json variants, safetensors (single, sharded, f32/f16/bf16) and the clear errors
// that bad files must produce.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { configFromJson, parseConfigJson } from '../../src/engine/config';
import { ModelFormatError, UnsupportedModelError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { WeightStore } from '../../src/engine/safetensors';

type T = { dtype: 'F32' | 'F16' | 'BF16' | 'I64'; shape: number[]; data: Uint8Array };

function safetensors(tensors: Record<string, T>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    parts.push(t.data);
    off += t.data.byteLength;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...parts]);
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sw-load-'));
}

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u16 = (xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

describe('safetensors', () => {
  test('reads f32, f16 and bf16 tensors', () => {
    const dir = tmp();
    fs.writeFileSync(
      path.join(dir, 'model.safetensors'),
      safetensors({
        a: { dtype: 'F32', shape: [2, 2], data: f32([1, -2, 3.5, 0.25]) },
        b: { dtype: 'F16', shape: [3], data: u16([0x3c00, 0xc000, 0x3555]) }, // 1, -2, ~0.3333
        c: { dtype: 'BF16', shape: [2], data: u16([0x3f80, 0xc0a0]) }, // 1, -5
      }),
    );
    const s = WeightStore.open(dir);
    assert.deepEqual(Array.from(s.f32('a', [2, 2])), [1, -2, 3.5, 0.25]);
    const b = s.f32('b');
    assert.equal(b[0], 1);
    assert.equal(b[1], -2);
    assert.ok(Math.abs(b[2] - 1 / 3) < 1e-3);
    assert.deepEqual(Array.from(s.f32('c')), [1, -5]);
    assert.throws(() => s.info('a', [4, 1]), /shape \[2,2\], expected \[4,1\]/);
    assert.throws(() => s.info('missing'), ModelFormatError);
    s.close();
  });

  test('reads a sharded checkpoint through its index', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), safetensors({ a: { dtype: 'F32', shape: [1], data: f32([7]) } }));
    fs.writeFileSync(path.join(dir, 'model-00002-of-00002.safetensors'), safetensors({ b: { dtype: 'F32', shape: [1], data: f32([9]) } }));
    fs.writeFileSync(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }),
    );
    const s = WeightStore.open(dir);
    assert.equal(s.f32('a')[0], 7);
    assert.equal(s.f32('b')[0], 9);
    s.close();
    fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    assert.throws(() => WeightStore.open(dir), /shard model-00002-of-00002.safetensors .* is missing/);
  });

  test('rejects truncated, corrupt and unsupported files with clear messages', () => {
    const good = safetensors({ a: { dtype: 'F32', shape: [4], data: f32([1, 2, 3, 4]) } });
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, good.length - 4), /truncated/],
      [good.subarray(0, 5), /too short/],
      [Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), good.subarray(8)]), /header length/],
      [safetensors({ a: { dtype: 'I64', shape: [1], data: new Uint8Array(8) } }), /only F32, F16 and BF16/],
      [safetensors({ a: { dtype: 'F32', shape: [3], data: f32([1, 2, 3, 4]) } }), /shape and dtype need 12/],
    ];
    const bad = Buffer.from(good);
    bad.write('{', 8 + 1); // break the JSON header
    cases.push([bad, /not valid JSON/]);
    for (const [bytes, re] of cases) {
      const dir = tmp();
      fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
      assert.throws(() => WeightStore.open(dir), (e: unknown) => e instanceof ModelFormatError && re.test((e as Error).message));
    }
    assert.throws(() => WeightStore.open(tmp()), /neither model.safetensors nor/);
  });
});

describe('config.json', () => {
  const base = {
    model_type: 'granitemoehybrid',
    vocab_size: 100,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    mamba_n_heads: 4,
    mamba_d_head: 8,
    mamba_d_state: 4,
    mamba_n_groups: 1,
    shared_intermediate_size: 32,
  };

  test('accepts both layer type spellings, attn_layer_indices and Infinity', () => {
    const a = configFromJson({ ...base, layer_types: ['mamba', 'attention'] });
    const b = configFromJson({ ...base, layer_types: ['linear_attention', 'full_attention'] });
    const c = configFromJson({ ...base, attn_layer_indices: [1] });
    assert.deepEqual(a.layerKinds, ['mamba', 'attention']);
    assert.deepEqual(b.layerKinds, a.layerKinds);
    assert.deepEqual(c.layerKinds, a.layerKinds);
    const raw = parseConfigJson(JSON.stringify({ ...base, layer_types: ['mamba', 'attention'] }).replace('{', '{"time_step_limit": [0.0, Infinity],'));
    const d = configFromJson(raw);
    assert.equal(d.mamba!.timeStepMax, Infinity);
    assert.ok(Object.isFrozen(d) && Object.isFrozen(d.mamba));
  });

  test('rope settings from transformers 4.x and 5.x configs', () => {
    const v4 = configFromJson({ ...base, layer_types: ['mamba', 'attention'], position_embedding_type: 'rope', rope_theta: 5000 });
    const v5 = configFromJson({
      ...base,
      layer_types: ['mamba', 'attention'],
      position_embedding_type: 'rope',
      rope_parameters: { rope_type: 'default', rope_theta: 5000 },
    });
    assert.equal(v4.attention!.ropeTheta, 5000);
    assert.equal(v5.attention!.ropeTheta, 5000);
    assert.equal(configFromJson({ ...base, layer_types: ['mamba', 'attention'] }).attention!.ropeTheta, null);
  });

  test('names the problem in bad configs', () => {
    assert.throws(() => configFromJson({ ...base, model_type: 'llama' }), /not supported/);
    assert.throws(() => configFromJson({ ...base, layer_types: ['mamba'] }), /exactly num_hidden_layers/);
    assert.throws(() => configFromJson({ ...base, layer_types: ['mamba', 'conv'] }), /layer 1 has type "conv"/);
    assert.throws(() => configFromJson({ ...base, layer_types: ['mamba', 'attention'], mamba_d_head: 5 }), /must equal mamba_expand/);
    assert.throws(() => configFromJson({ ...base, layer_types: ['mamba', 'attention'], hidden_size: 'x' }), UnsupportedModelError);
    assert.throws(() => parseConfigJson('{not json'), /not valid JSON/);
  });

  test('a model folder without config.json or weights says what is missing', () => {
    const dir = tmp();
    assert.throws(() => openModelFolder(dir), /no config.json/);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...base, layer_types: ['mamba', 'attention'] }));
    assert.throws(() => openModelFolder(dir), /neither model.safetensors/);
    assert.throws(() => openModelFolder(path.join(dir, 'nope')), /does not exist/);
  });

  test('generation_config.json adds stop ids; a bad one is named', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-gen-'));
    const fx = path.join(__dirname, '..', '..', 'test', 'fixtures', 'granite-dense-nope');
    for (const f of fs.readdirSync(fx)) fs.copyFileSync(path.join(fx, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [0, 7] }));
    assert.deepEqual([...openModelFolder(dir).stopIds].sort((a, b) => a - b), [0, 7]);
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 'x' }));
    assert.throws(() => openModelFolder(dir), /eos_token_id "x" is not a token id/);
  });
});
