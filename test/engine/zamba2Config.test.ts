// Zamba2 (`zamba2`, Zamba2ForCausalLM; issue 18) and Zamba (`zamba`, ZambaForCausalLM: the same shared-block path
// over a multi-head Mamba-1) configs: Mamba-2 layers and 'hybrid' layers that first run one of
// num_mem_blocks shared transformer blocks (2H-wide attention with scaling (d/2)^-0.5, per-use LoRA adapters, a KV
// per use), Zyphra's legacy key names (the published Zamba2-7B config), refusals by name, and how the shared blocks
// are loaded (once when tied; a layer's own copy where an untied checkpoint's differs). Parity with transformers is
// parity.test.ts (zamba2, zamba2-single); q8/q4 quantModel.test.ts; state ops, chunking and sparse K/V families.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { CpuModel } from '../../src/engine/cpu/model';
import { UnsupportedConfigValueError, UnsupportedModelError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { loadWeights } from '../../src/engine/models/weights';
import { toF32, writeSafetensors, type TensorToWrite } from '../../src/engine/safetensors';
import { FIXTURES, REPO } from './helpers';

type Json = Record<string, unknown>;
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'));

test('zamba2 configs: hybrid layers, shared blocks, adapters and the Mamba-2 settings', () => {
  const c = configFromJson(fixture('zamba2'));
  assert.equal(c.architecture, 'zamba2');
  assert.deepEqual(c.layerKinds, ['mamba', 'hybrid', 'hybrid', 'mamba', 'hybrid']);
  assert.deepEqual(c.zamba2, { numMemBlocks: 2, hybridLayers: [1, 2, 4], adapterRank: 8, attentionAdapters: true, intermediate: 96, activation: 'gelu' });
  // head dim 2 x 48 / 4 heads = 24, scaling (24 / 2)^-0.5
  assert.deepEqual(c.attention, { numHeads: 4, numKvHeads: 4, headDim: 24, scaling: 1 / Math.sqrt(12), bias: false, ropeTheta: 10000, rotaryDim: 24 });
  const m = c.mamba!;
  assert.deepEqual([m.numHeads, m.headDim, m.nGroups, m.dState, m.chunkSize, m.intermediate], [6, 16, 1, 16, 16, 96]);
  assert.deepEqual([m.convBias, m.projBias, m.timeStepMin, m.timeStepMax, m.dtLimitInDecode, m.gatedNormEps], [true, false, 0.001, Infinity, false, 1e-5]);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.feedForward, null);

  const s = configFromJson(fixture('zamba2-single'));
  assert.deepEqual(s.layerKinds, ['hybrid', 'mamba', 'hybrid', 'hybrid']);
  assert.deepEqual(s.zamba2, { numMemBlocks: 1, hybridLayers: [0, 2, 3], adapterRank: 4, attentionAdapters: false, intermediate: 80, activation: 'silu' });
  assert.equal(s.attention!.ropeTheta, null);
  assert.equal(s.attention!.numKvHeads, 2);
  assert.equal(s.mamba!.normGroupSize, 48); // 2 groups
  assert.equal(s.rmsNormEps, 1e-6);
  assert.equal(s.tieWordEmbeddings, false);

  // No hybrid layer: a plain Mamba-2 stack, no attention.
  const plain = configFromJson({ ...fixture('zamba2'), layers_block_type: ['mamba', 'mamba', 'mamba', 'mamba', 'mamba'], hybrid_layer_ids: [] });
  assert.equal(plain.attention, null);
  assert.equal(plain.zamba2, undefined);
});

test("zamba2: Zyphra's published Zamba2-7B config (legacy key names) parses", () => {
  const pub = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'data', 'configs', 'zamba2', 'Zyphra--Zamba2-7B.json'), 'utf8'));
  const c = configFromJson(pub);
  assert.equal(c.numLayers, 81);
  assert.equal(c.layerKinds.filter((k) => k === 'hybrid').length, 13);
  // expansion_factor 2 x 3584 over mamba_headdim 64: 112 heads; state_size 64; mamba_ngroups 2
  assert.deepEqual([c.mamba!.intermediate, c.mamba!.numHeads, c.mamba!.headDim, c.mamba!.dState, c.mamba!.nGroups, c.mamba!.dConv], [7168, 112, 64, 64, 2, 4]);
  // ffn_hidden_size, lora_rank, use_shared_attention_lora; hidden_act absent: GELU
  assert.deepEqual(c.zamba2, { ...c.zamba2, numMemBlocks: 2, adapterRank: 128, attentionAdapters: false, intermediate: 14336, activation: 'gelu' });
  assert.equal(c.attention!.headDim, 224);
  assert.equal(c.attention!.ropeTheta, 10000);
  // the current key wins over the legacy one
  assert.equal(configFromJson({ ...pub, adapter_rank: 64 }).zamba2!.adapterRank, 64);
});

test('zamba2 refusals by name and inconsistent sizes', () => {
  const base = fixture('zamba2');
  const refused = (patch: Json, field: string) =>
    assert.throws(
      () => configFromJson({ ...base, ...patch }),
      (e: unknown) => e instanceof UnsupportedConfigValueError && e.field === field && e.message.includes('zamba2'),
      `${JSON.stringify(patch)} -> ${field}`,
    );
  refused({ hidden_act: 'relu' }, 'hidden_act');
  refused({ add_bias_linear: true }, 'add_bias_linear');
  refused({ layers_block_type: ['mamba', 'attention', 'hybrid', 'mamba', 'hybrid'], hybrid_layer_ids: undefined }, 'layers_block_type[1]');
  refused({ use_shared_block_lora: false }, 'use_shared_block_lora');
  refused({ gated_linear_unit: false }, 'gated_linear_unit');
  refused({ sliding_window: 4096 }, 'sliding_window');
  refused({ rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 10000 } }, 'rope_parameters.rope_type');
  refused({ num_key_value_heads: 2 }, 'num_key_value_heads'); // the k/v adapters are 2H wide
  refused({ mamba_hidden_act: 'relu' }, 'mamba_hidden_act');
  // GQA without the attention adapters is fine; the RoPE settings only matter with use_mem_rope
  assert.equal(configFromJson({ ...base, num_key_value_heads: 2, use_shared_attention_adapter: false }).attention!.numKvHeads, 2);
  assert.equal(configFromJson({ ...base, use_mem_rope: false, rope_parameters: { rope_type: 'yarn' } }).attention!.ropeTheta, null);
  const bad = (patch: Json, want: RegExp) => assert.throws(() => configFromJson({ ...base, ...patch }), (e: unknown) => e instanceof UnsupportedModelError && want.test(e.message), String(want));
  bad({ mamba_headdim: 12 }, /mamba_headdim \(12\) must be/);
  bad({ n_mamba_heads: 5, mamba_headdim: undefined }, /n_mamba_heads \(5\) must divide/);
  bad({ hybrid_layer_ids: [1, 2] }, /"hybrid_layer_ids" \[1,2\] disagrees/);
  bad({ layers_block_type: ['mamba', 'hybrid'] }, /"layers_block_type" must list exactly num_hidden_layers \(5\)/);
  bad({ layers_block_type: undefined }, /"layers_block_type" is missing/);
  bad({ num_attention_heads: 5, num_key_value_heads: 5 }, /2 x hidden_size \(96\) must be a multiple of num_attention_heads \(5\)/);
  bad({ mamba_ngroups: 4 }, /multiple of n_groups|mamba_ngroups/);
});

test('zamba2 shared blocks: loaded once when tied; an untied copy is its own unless identical', () => {
  const load = (dir: string) => {
    const folder = openModelFolder(dir);
    try {
      return loadWeights(folder.config, folder.store, (name, shape) => toF32(folder.store.bytes(name, shape), folder.store.info(name, shape).dtype));
    } finally {
      folder.store.close();
    }
  };
  // zamba2: uses 0 and 2 (layers 1, 4) share block 0, stored once under layer 1; each use has its own adapters
  const tied = load(path.join(FIXTURES, 'zamba2')).layers;
  assert.equal(tied[1].hybrid!.block.q, tied[4].hybrid!.block.q);
  assert.notEqual(tied[1].hybrid!.block.q, tied[2].hybrid!.block.q);
  assert.notEqual(tied[1].hybrid!.qAdapter!.down, tied[4].hybrid!.qAdapter!.down);
  // zamba2-single (untied): transformers keeps each hybrid layer's own copy, and they differ
  const untied = load(path.join(FIXTURES, 'zamba2-single')).layers;
  assert.notEqual(untied[0].hybrid!.block.q, untied[2].hybrid!.block.q);
  assert.equal(untied[0].hybrid!.qAdapter, null);

  // The same checkpoint with every block copy made identical to the first use's (adapters left their own): the
  // block is loaded once.
  const src = path.join(FIXTURES, 'zamba2-single');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-zamba2-'));
  try {
    const folder = openModelFolder(src);
    const list: TensorToWrite[] = [];
    for (const name of folder.store.names()) {
      const from = name.replace(/^model\.layers\.[23]\.shared_transformer\.(?!feed_forward\.gate_up_proj_adapter_list)/, 'model.layers.0.shared_transformer.');
      const info = folder.store.info(from);
      list.push({ name, dtype: 'F32', shape: [...info.shape], data: toF32(folder.store.bytes(from), info.dtype) });
    }
    folder.store.close();
    fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
    writeSafetensors(path.join(dir, 'model.safetensors'), list);
    const same = load(dir).layers;
    assert.equal(same[0].hybrid!.block.q, same[3].hybrid!.block.q);
    assert.equal(same[0].hybrid!.block.gateUp, same[2].hybrid!.block.gateUp);
    assert.notEqual(same[0].hybrid!.gateUpAdapter!.down, same[2].hybrid!.gateUpAdapter!.down);
    const fa = openModelFolder(dir);
    const fb = openModelFolder(src);
    const a = CpuModel.load(fa).memory().weightsBytes;
    const b = CpuModel.load(fb).memory().weightsBytes;
    fa.store.close();
    fb.store.close();
    assert.ok(a < b, `identical copies are held once (${a} < ${b} bytes)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('zamba configs: multi-head Mamba-1, the one shared block, refusals by name', () => {
  const c = configFromJson(fixture('zamba'));
  assert.equal(c.architecture, 'zamba');
  assert.deepEqual(c.layerKinds, ['mamba1', 'mamba1', 'hybrid', 'mamba1', 'hybrid']);
  assert.deepEqual(c.mamba1, { intermediate: 96, dState: 16, dtRank: 3, dConv: 4, convBias: true, projBias: false, falconEps: null, innerNormWeights: false, numHeads: 2 });
  assert.deepEqual(c.zamba2, { numMemBlocks: 1, hybridLayers: [2, 4], adapterRank: 0, attentionAdapters: false, intermediate: 96, activation: 'gelu' });
  assert.deepEqual(c.attention, { numHeads: 4, numKvHeads: 4, headDim: 24, scaling: 1 / Math.sqrt(12), bias: false, ropeTheta: null, rotaryDim: 24 });
  assert.equal(c.mamba, null);
  const h = configFromJson(fixture('zamba-heads3'));
  assert.deepEqual([h.mamba1!.numHeads, h.mamba1!.dtRank, h.mamba1!.convBias, h.mamba1!.projBias], [3, 4, false, true]);
  assert.equal(h.attention!.numKvHeads, 2);
  assert.equal(h.tieWordEmbeddings, false);
  // ZambaConfig's default layers from attn_layer_period / attn_layer_offset: mamba, mamba, hybrid, then period 6 offset 4
  const d = configFromJson({ ...fixture('zamba'), layers_block_type: undefined, num_hidden_layers: 10 });
  assert.deepEqual(d.layerKinds, ['mamba1', 'mamba1', 'hybrid', 'mamba1', 'mamba1', 'mamba1', 'mamba1', 'hybrid', 'mamba1', 'mamba1']);

  const base = fixture('zamba');
  const refused = (patch: Json, field: string) =>
    assert.throws(() => configFromJson({ ...base, ...patch }), (e: unknown) => e instanceof UnsupportedConfigValueError && e.field === field && e.message.includes('zamba'), `${JSON.stringify(patch)} -> ${field}`);
  refused({ hidden_act: 'relu' }, 'hidden_act');
  refused({ hidden_mamba_act: 'gelu' }, 'hidden_mamba_act');
  refused({ attention_hidden_size: 64 }, 'attention_hidden_size');
  refused({ layers_block_type: ['mamba', 'attention', 'hybrid', 'mamba', 'hybrid'] }, 'layers_block_type[1]');
  refused({ mamba_d_state: 512 }, 'mamba_d_state');
  assert.throws(() => configFromJson({ ...base, n_mamba_heads: 5 }), /n_mamba_heads \(5\) must divide/);
  assert.throws(() => configFromJson({ ...base, num_key_value_heads: 3 }), /multiple of num_key_value_heads \(3\)/);
});

test("zamba checkpoints are read through views: in_proj's rows de-interleaved, per-head x_proj / dt_proj", () => {
  const folder = openModelFolder(path.join(FIXTURES, 'zamba-heads3'));
  try {
    const f32 = (n: string) => toF32(folder.store.bytes(n), folder.store.info(n).dtype);
    const p = 'model.layers.1.mamba';
    const raw = f32(`${p}.in_proj.weight`); // [2I, H], rows x0 z0 x1 z1 ...
    const xz = f32(`${p}.in_proj.xz.weight`); // x rows, then z rows
    const H = 48;
    const I = 96;
    for (const [r, from] of [[0, 0], [1, 2], [I, 1], [I + 5, 11]]) assert.deepEqual(xz.subarray(r * H, (r + 1) * H), raw.subarray(from * H, (from + 1) * H));
    const bias = f32(`${p}.in_proj.xz.bias`);
    assert.equal(bias[I + 2], f32(`${p}.in_proj.bias`)[5]);
    const xp = f32(`${p}.x_proj_weight`); // [3, 4 + 32, 32]
    assert.deepEqual(f32(`${p}.x_proj_weight.2`), xp.subarray(2 * 36 * 32, 3 * 36 * 32));
    assert.deepEqual([...folder.store.info(`${p}.dt_proj_weight.1`).shape], [32, 4]);
    // the shared block's gate_proj | up_proj as one gate_up [2F, H]
    const gu = folder.store.info('model.layers.3.shared_transf.feed_forward.gate_up_proj.weight');
    assert.deepEqual([...gu.shape], [160, 48]);
  } finally {
    folder.store.close();
  }
});
