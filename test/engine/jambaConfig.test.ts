// Jamba (`jamba`, JambaForCausalLM; issue 18) configs: layer placement by period and offset (attention and the
// MoE feed-forward), transformers' defaults, the Mamba-1 mixer's weighted dt/B/C norms, the router's
// softmax-over-all-experts mode, refusals by name, and the per-expert checkpoint tensors stacked at load.
// Parity with transformers is parity.test.ts (jamba-dense, jamba-moe); q8/q4 quantModel.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { UnsupportedConfigValueError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { FIXTURES } from './helpers';

type Json = Record<string, unknown>;
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'));

test('jamba configs: attention and MoE layers by period and offset, Mamba-1 with weighted inner norms', () => {
  const c = configFromJson(fixture('jamba-moe'));
  assert.equal(c.architecture, 'jamba');
  assert.deepEqual(c.layerKinds, ['mamba1', 'mamba1', 'attention', 'mamba1']); // attn_layer_period 4, offset 2
  assert.deepEqual(c.feedForward!.expertLayers, [false, true, false, true]); // expert_layer_period 2, offset 1
  assert.equal(c.feedForward!.routing, 'topKOfSoftmax');
  assert.deepEqual([c.feedForward!.numExperts, c.feedForward!.topK, c.feedForward!.expertIntermediate, c.feedForward!.sharedIntermediate], [4, 2, 48, 48]);
  assert.deepEqual(c.mamba1, { intermediate: 128, dState: 16, dtRank: 4, dConv: 4, convBias: true, projBias: false, falconEps: 1e-6, innerNormWeights: true });
  assert.deepEqual(c.attention, { numHeads: 4, numKvHeads: 2, headDim: 16, scaling: 0.25, bias: false, ropeTheta: null, rotaryDim: 16 });
  assert.equal(c.mamba, null);
  // num_experts 1: every feed-forward is the dense SwiGLU.
  const d = configFromJson(fixture('jamba-dense'));
  assert.deepEqual(d.layerKinds, ['mamba1', 'attention', 'mamba1', 'attention']);
  assert.deepEqual(d.feedForward!.expertLayers, [false, false, false, false]);
  assert.equal(d.feedForward!.numExperts, 0);
  assert.equal(d.tieWordEmbeddings, true);
  // JambaConfig's defaults: dt rank "auto" = ceil(hidden / 16), attention every 8th layer from 4, MoE every 2nd from 1.
  const raw: Json = { model_type: 'jamba', hidden_size: 64, num_hidden_layers: 10, vocab_size: 100, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 32 };
  const e = configFromJson(raw);
  assert.equal(e.mamba1!.dtRank, 4);
  assert.deepEqual(e.layerKinds.map((k) => k === 'attention'), [false, false, false, false, true, false, false, false, false, false]);
  assert.deepEqual(e.feedForward!.expertLayers, [false, true, false, true, false, true, false, true, false, true]);
  assert.deepEqual([e.feedForward!.numExperts, e.feedForward!.topK], [16, 2]);
  // A published config parses (AI21-Jamba-1.5-Mini: 32 layers, 16 experts, dt rank 256).
  const mini = configFromJson(JSON.parse(fs.readFileSync(path.join(FIXTURES, '..', 'data', 'configs', 'jamba', 'ai21labs--AI21-Jamba-1.5-Mini.json'), 'utf8')));
  assert.equal(mini.layerKinds.filter((k) => k === 'attention').length, 4);
  assert.equal(mini.mamba1!.dtRank, 256);
});

test('jamba: unsupported values are refused by name', () => {
  const base = fixture('jamba-moe');
  const refused = (patch: Json, field: RegExp) =>
    assert.throws(() => configFromJson({ ...base, ...patch }), (e: unknown) => e instanceof UnsupportedConfigValueError && field.test(e.message), JSON.stringify(patch));
  refused({ hidden_act: 'gelu' }, /hidden_act/);
  refused({ attn_layer_offset: 4 }, /attn_layer_offset/);
  refused({ expert_layer_offset: 2 }, /expert_layer_offset/);
  refused({ num_experts_per_tok: 5 }, /num_experts_per_tok/);
  refused({ mamba_d_state: 1000 }, /mamba_d_state/);
  refused({ mamba_d_conv: 9 }, /mamba_d_conv/);
});

test('jamba: the per-expert projections are read stacked as [E, 2I, H] and [E, H, I]', () => {
  const folder = openModelFolder(path.join(FIXTURES, 'jamba-moe'));
  try {
    const f = 'model.layers.1.feed_forward.experts';
    const gu = folder.store.f32(`${f}.gate_up_proj`, [4, 96, 64]);
    const dn = folder.store.f32(`${f}.down_proj`, [4, 64, 48]);
    for (let e = 0; e < 4; e++) {
      assert.deepEqual(gu.subarray(e * 96 * 64, e * 96 * 64 + 48 * 64), folder.store.f32(`${f}.${e}.gate_proj.weight`));
      assert.deepEqual(gu.subarray(e * 96 * 64 + 48 * 64, (e + 1) * 96 * 64), folder.store.f32(`${f}.${e}.up_proj.weight`));
      assert.deepEqual(dn.subarray(e * 64 * 48, (e + 1) * 64 * 48), folder.store.f32(`${f}.${e}.down_proj.weight`));
    }
    assert.equal(folder.store.has('model.layers.0.feed_forward.experts.gate_up_proj'), false); // a dense layer
  } finally {
    folder.store.close();
  }
});
