// Mamba-1 (`mamba`) and Falcon-Mamba (`falcon_mamba`) configs (issue 18): transformers' defaults and derived sizes
// (intermediate = expand x hidden, time_step_rank "auto" = ceil(hidden / 16)), refusals by name, and the state a
// model holds per layer (conv [I, K-1] and scan [I, N], f32) in export and the memory report. Parity with
// transformers is parity.test.ts (mamba1-pure, mamba1-bf16, falcon-mamba).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { CpuModel } from '../../src/engine/cpu/model';
import { UnknownModelTypeError, UnsupportedConfigValueError, UnsupportedModelError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { FIXTURES } from './helpers';

type Json = Record<string, unknown>;
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'));

test('mamba and falcon_mamba configs parse into Mamba-1 layers with transformers defaults', () => {
  const c = configFromJson(fixture('mamba1-pure'));
  assert.equal(c.architecture, 'mamba');
  assert.deepEqual(c.layerKinds, ['mamba1', 'mamba1', 'mamba1']);
  assert.equal(c.mamba, null);
  assert.deepEqual(c.mamba1, { intermediate: 128, dState: 16, dtRank: 8, dConv: 4, convBias: true, projBias: false, falconEps: null, innerNormWeights: false });
  assert.equal(c.tieWordEmbeddings, true);
  const bare = configFromJson({ model_type: 'mamba', hidden_size: 40, num_hidden_layers: 1, vocab_size: 10 });
  assert.equal(bare.mamba1!.dtRank, 3, 'time_step_rank "auto" is ceil(hidden_size / 16)');
  assert.equal(bare.mamba1!.intermediate, 80, 'intermediate_size is expand x hidden_size');
  assert.equal(configFromJson({ ...fixture('mamba1-pure'), time_step_rank: 'auto' }).mamba1!.dtRank, 4);
  // A written intermediate_size wins over expand x hidden_size (transformers 5.17: MambaConfig's __post_init__ sets
  // expand x hidden_size, then the base __post_init__ sets the file's key over it; falcon-mamba-7b has expand 16 and
  // intermediate_size 8192).
  assert.equal(configFromJson({ ...fixture('mamba1-pure'), intermediate_size: 7 }).mamba1!.intermediate, 7);
  assert.equal(configFromJson({ ...fixture('mamba1-pure'), intermediate_size: undefined }).mamba1!.intermediate, 128);
  const f = configFromJson(fixture('falcon-mamba'));
  assert.equal(f.architecture, 'falcon_mamba');
  assert.equal(f.mamba1!.falconEps, 1e-6);
  assert.equal(configFromJson({ ...fixture('falcon-mamba'), mixer_rms_eps: undefined }).mamba1!.falconEps, 1e-6);
});

test('unsupported Mamba-1 settings are refused by name', () => {
  const refused = (raw: Json, cls: new (...a: never[]) => Error, parts: string[]) => {
    assert.throws(
      () => configFromJson(raw),
      (e: unknown) => e instanceof cls && e instanceof UnsupportedModelError && parts.every((p) => (e as Error).message.includes(p)),
      JSON.stringify(parts),
    );
  };
  const m = fixture('mamba1-pure');
  refused({ ...m, hidden_act: 'gelu' }, UnsupportedConfigValueError, ['hidden_act', '"gelu"']);
  refused({ ...m, state_size: 300 }, UnsupportedConfigValueError, ['state_size', '300']);
  refused({ ...m, conv_kernel: 9 }, UnsupportedConfigValueError, ['conv_kernel']);
  refused({ ...m, time_step_rank: 'big' }, UnsupportedModelError, ['time_step_rank']);
  refused({ ...m, architectures: ['FalconMambaForCausalLM'] }, UnknownModelTypeError, ['MambaForCausalLM']);
  refused({ ...fixture('falcon-mamba'), mixer_rms_eps: -1 }, UnsupportedConfigValueError, ['mixer_rms_eps']);
});

test('a Mamba-1 model holds conv [I, K-1] and scan [I, N] f32 state per layer, exported and reported', async () => {
  const folder = openModelFolder(path.join(FIXTURES, 'mamba1-pure'));
  const model = CpuModel.load(folder);
  await model.forward([1, 2, 3]);
  const st = await model.exportState();
  assert.equal(st.mamba.length, 3);
  for (const s of st.mamba) {
    assert.equal(s.conv.length, 128 * 3);
    assert.equal(s.ssm.length, 128 * 16);
  }
  assert.equal(model.memory().stateBytes, 3 * 4 * (128 * 3 + 128 * 16));
  model.dispose();
  folder.store.close();
});
