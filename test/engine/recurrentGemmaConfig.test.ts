// RecurrentGemma (`recurrent_gemma`, RecurrentGemmaForCausalLM, Griffin; issue 18) configs: block_types cycled into
// 'rglru' / 'local' layers, the attention window, lru_width in gate blocks, partial rotary, the bf16 embedding
// normalizer, the soft cap, transformers' defaults for absent keys, refusals by name, and the Gemma norms'
// (1 + weight) folded into virtual store tensors. Parity with transformers is parity.test.ts (recurrent-gemma,
// recurrent-gemma-wide); chunks, state and the window-bounded K/V families.test.ts; q8/q4 quantModel.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { bf16Round, configFromJson } from '../../src/engine/config';
import { UnsupportedConfigValueError, UnsupportedModelError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { toF32 } from '../../src/engine/safetensors';
import { FIXTURES } from './helpers';

type Json = Record<string, unknown>;
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'));

test('recurrent_gemma configs: layer kinds, window, gate blocks, rotary, normalizer and soft cap', () => {
  const c = configFromJson(fixture('recurrent-gemma'));
  assert.equal(c.architecture, 'recurrent_gemma');
  assert.deepEqual(c.layerKinds, ['rglru', 'rglru', 'local', 'rglru']); // (r, r, a) cycled over 4 layers
  assert.deepEqual(c.griffin, { lruWidth: 64, numHeads: 4, blockWidth: 16, convWidth: 4, window: 16, mlpIntermediate: 96, logitsSoftCap: 3 });
  assert.deepEqual(c.attention, { numHeads: 4, numKvHeads: 1, headDim: 16, scaling: 0.25, bias: false, ropeTheta: 10000, rotaryDim: 8 });
  assert.equal(c.embeddingMultiplier, 8);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.mamba, null);
  assert.equal(c.feedForward, null);

  const w = configFromJson(fixture('recurrent-gemma-wide'));
  assert.deepEqual(w.layerKinds, ['local', 'rglru', 'local']);
  assert.equal(w.griffin!.lruWidth, 96);
  assert.equal(w.griffin!.blockWidth, 24);
  assert.equal(w.griffin!.window, 64);
  assert.equal(w.attention!.rotaryDim, 16); // partial_rotary_factor 1
  assert.equal(w.attention!.numKvHeads, 2);
  assert.equal(w.attention!.bias, true);
  assert.equal(w.tieWordEmbeddings, false);

  // Recurrent layers only: no attention settings at all.
  const hawk = configFromJson({ ...fixture('recurrent-gemma'), block_types: ['recurrent'] });
  assert.deepEqual(hawk.layerKinds, ['rglru', 'rglru', 'rglru', 'rglru']);
  assert.equal(hawk.attention, null);
});

test('recurrent_gemma: absent keys take RecurrentGemmaConfig defaults (recurrentgemma-2b)', () => {
  const c = configFromJson({ model_type: 'recurrent_gemma', architectures: ['RecurrentGemmaForCausalLM'] });
  assert.equal(c.hiddenSize, 2560);
  assert.equal(c.numLayers, 26);
  assert.equal(c.vocabSize, 256000);
  assert.equal(c.layerKinds.filter((k) => k === 'local').length, 8);
  assert.deepEqual(c.griffin, { lruWidth: 2560, numHeads: 10, blockWidth: 256, convWidth: 4, window: 2048, mlpIntermediate: 3840, logitsSoftCap: 30 });
  assert.deepEqual(c.attention, { numHeads: 10, numKvHeads: 10, headDim: 256, scaling: 1 / 16, bias: false, ropeTheta: 10000, rotaryDim: 128 });
  // the normalizer is a bfloat16 tensor: sqrt(2560) = 50.596... is held as 50.5
  assert.equal(c.embeddingMultiplier, 50.5);
  assert.equal(bf16Round(Math.sqrt(2560)), 50.5);
  assert.equal(bf16Round(1), 1);
});

test('recurrent_gemma refusals by name', () => {
  const base = fixture('recurrent-gemma');
  const refused = (patch: Json, field: string) =>
    assert.throws(
      () => configFromJson({ ...base, ...patch }),
      (e: unknown) => e instanceof UnsupportedConfigValueError && e.message.includes(field) && e.message.includes('recurrent_gemma'),
      field,
    );
  refused({ hidden_activation: 'gelu' }, 'hidden_activation');
  refused({ hidden_act: 'silu' }, 'hidden_act');
  refused({ block_types: ['recurrent', 'mlp'] }, 'block_types[1]');
  refused({ block_types: [] }, 'block_types');
  refused({ num_key_value_heads: 3 }, 'num_key_value_heads');
  refused({ num_key_value_heads: 8 }, 'num_key_value_heads');
  refused({ lru_width: 66 }, 'lru_width');
  refused({ conv1d_width: 9 }, 'conv1d_width');
  refused({ head_dim: 32 }, 'head_dim');
  refused({ logits_soft_cap: 0 }, 'logits_soft_cap');
  refused({ rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 2 } }, 'rope_parameters.rope_type');
  refused({ rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.1 } }, 'partial_rotary_factor');
  refused({ quantization_config: { quant_method: 'gptq' } }, 'quantization_config');
  assert.throws(() => configFromJson({ ...base, hidden_size: 66 }), (e: unknown) => e instanceof UnsupportedModelError && /num_attention_heads/.test((e as Error).message));
  assert.throws(() => configFromJson({ ...base, architectures: ['GemmaForCausalLM'] }), /RecurrentGemmaForCausalLM/);
});

test('recurrent_gemma: the (1 + weight) norms are virtual f32 tensors of the store', () => {
  const folder = openModelFolder(path.join(FIXTURES, 'recurrent-gemma'));
  try {
    const raw = (n: string) => toF32(folder.store.bytes(n), folder.store.info(n).dtype);
    for (const base of ['model.final_norm', 'model.layers.0.temporal_pre_norm', 'model.layers.3.channel_pre_norm']) {
      const w = raw(`${base}.weight`);
      const p = raw(`${base}.plus1.weight`);
      assert.equal(p.length, w.length);
      for (let j = 0; j < w.length; j++) assert.equal(p[j], Math.fround(1 + w[j]));
    }
  } finally {
    folder.store.close();
  }
});
