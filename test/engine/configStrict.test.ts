// Strict model types (issue 16): config.json's model_type (with architectures) selects the implementation;
// an unknown or missing type, architectures that contradict it, or a setting the engine does not implement are
// refused with a named error that says what was found, what is supported and what to do. Every config the
// repository ships (test fixtures, the bundled model, the bench shapes) still loads.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SUPPORTED_MODEL_TYPES, configFromJson, parseConfigJson } from '../../src/engine/config';
import { UnknownModelTypeError, UnsupportedConfigValueError, UnsupportedModelError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { FIXTURES, fixtureNames, REPO } from './helpers';

type Json = Record<string, unknown>;

const read = (file: string): Json => parseConfigJson(fs.readFileSync(file, 'utf8'));
const fixture = (name: string): Json => read(path.join(FIXTURES, name, 'config.json'));

function shippedConfigs(): [string, string][] {
  const out: [string, string][] = [];
  for (const n of fixtureNames()) out.push([`test/fixtures/${n}`, path.join(FIXTURES, n, 'config.json')]);
  out.push(['models/default', path.join(REPO, 'models', 'default', 'config.json')]);
  const shapes = path.join(REPO, 'bench', 'shapes');
  for (const n of fs.readdirSync(shapes).filter((x) => x.endsWith('.json')).sort()) out.push([`bench/shapes/${n}`, path.join(shapes, n)]);
  return out;
}

/** Asserts that fn throws an error of class cls whose message contains every one of parts. */
function refused<E extends Error>(fn: () => unknown, cls: new (...a: never[]) => E, parts: (string | RegExp)[], label = ''): E {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof cls, `${label}: expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  assert.ok(err instanceof UnsupportedModelError, `${label}: ${cls.name} is an UnsupportedModelError`);
  for (const p of parts) {
    if (typeof p === 'string') assert.ok(err.message.includes(p), `${label}: message lacks ${JSON.stringify(p)}: ${err.message}`);
    else assert.match(err.message, p, label);
  }
  return err;
}

const LIST = ['"granitemoehybrid"', 'GraniteMoeHybridForCausalLM', '"mamba2"', 'Mamba2ForCausalLM'];

describe('strict model types', () => {
  // Published config.json files (test/data/configs/, with their sources): those of the families the engine runs
  // load; the others are refused by name. transformers ignores mamba_ssm's norm_before_gate for these types
  // (Mamba-Codestral-7B-v0.1 writes true), and so does the engine.
  test('published configs: the families that run parse, the others are refused by model_type', () => {
    const dir = path.join(REPO, 'test', 'data', 'configs');
    const files = fs.readdirSync(dir).filter((d) => fs.statSync(path.join(dir, d)).isDirectory()).flatMap((d) => fs.readdirSync(path.join(dir, d)).map((f) => path.join(dir, d, f)));
    assert.ok(files.length >= 8, `${files.length} configs`);
    let ran = 0;
    for (const f of files) {
      const raw = read(f);
      const type = String(raw['model_type']);
      if (Object.hasOwn(SUPPORTED_MODEL_TYPES, type)) {
        const cfg = configFromJson(raw);
        assert.equal(cfg.architecture, type, f);
        assert.equal(cfg.numLayers, cfg.layerKinds.length, f);
        ran++;
      } else {
        assert.throws(() => configFromJson(raw), (e: unknown) => e instanceof UnknownModelTypeError && e.message.includes(`"${type}"`), f);
      }
    }
    assert.ok(ran >= 1, 'at least one published config of a family that runs');
    const codestral = configFromJson(read(path.join(dir, 'mamba2', 'mistralai--Mamba-Codestral-7B-v0.1.json')));
    assert.equal(codestral.numLayers, 64);
    assert.equal(codestral.mamba!.numHeads, 128);
    // transformers 5.3's file: fractional expand, no intermediate_size, {"__float__": "Infinity"} in time_step_limit
    const whiff = configFromJson(read(path.join(dir, 'mamba2', 'limloop--whiff-mamba2-20M-v2.json')));
    assert.deepEqual([whiff.numLayers, whiff.mamba!.numHeads, whiff.mamba!.headDim, whiff.mamba!.nGroups, whiff.mamba!.intermediate], [9, 12, 64, 2, 768]);
    assert.deepEqual([whiff.mamba!.timeStepMin, whiff.mamba!.timeStepMax], [0, Infinity]);
  });

  test('published configs of a block the engine lacks (test/data/configs-refused: Nemotron-3 Nano MoE) are refused by name', () => {
    const dir = path.join(REPO, 'test', 'data', 'configs-refused', 'nemotron_h');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 1);
    for (const f of files) {
      assert.throws(() => configFromJson(read(path.join(dir, f))), (e: unknown) => e instanceof Error && /MoE block/.test(e.message) && /not implemented/.test(e.message), f);
    }
  });

  test('every shipped config.json (fixtures, the bundled model, bench shapes) is accepted', () => {
    const seen = shippedConfigs();
    assert.ok(seen.length >= 7, `found ${seen.length} configs`);
    for (const [label, file] of seen) {
      const raw = read(file);
      const cfg = configFromJson(raw);
      assert.equal(cfg.architecture, raw['model_type'], label);
      // (transformers 5.x derives Nemotron-H's num_hidden_layers from its block list and may not write it.)
      assert.equal(cfg.numLayers, raw['num_hidden_layers'] ?? cfg.layerKinds.length, label);
    }
    // The values the computation reads are the ones written, not defaults.
    const rope = configFromJson(fixture('granite-moe-rope'));
    assert.equal(rope.attention!.ropeTheta, 10000);
    assert.equal(rope.attention!.scaling, 0.0625);
    assert.equal(rope.attention!.headDim, 16);
    assert.deepEqual([rope.feedForward!.numExperts, rope.feedForward!.topK, rope.feedForward!.expertIntermediate], [4, 2, 48]);
    assert.equal(rope.tieWordEmbeddings, false);
    const nope = configFromJson(fixture('granite-dense-nope'));
    assert.equal(nope.attention!.ropeTheta, null);
    assert.equal(nope.feedForward!.numExperts, 0);
    const m2 = configFromJson(fixture('mamba2-pure'));
    assert.deepEqual([m2.mamba!.nGroups, m2.mamba!.headDim, m2.mamba!.numHeads], [2, 16, 8]);
  });

  test('an unknown model_type is refused with the supported list and the fix, whatever architectures says', () => {
    for (const archs of [undefined, ['LlamaForCausalLM'], ['GraniteMoeHybridForCausalLM']]) {
      const raw = { ...fixture('granite-dense-nope'), model_type: 'llama', architectures: archs };
      const e = refused(() => configFromJson(raw), UnknownModelTypeError, ['model_type "llama" is not supported', ...LIST, 'Convert the checkpoint', 'pick another one'], String(archs));
      assert.equal(e.modelType, 'llama');
      assert.deepEqual([...e.supported], Object.keys(SUPPORTED_MODEL_TYPES));
    }
    refused(() => configFromJson({ ...fixture('mamba2-pure'), model_type: 'mamba' }), UnknownModelTypeError, ['model_type "mamba"', ...LIST]);
    refused(() => configFromJson({ ...fixture('mamba2-pure'), model_type: 42 }), UnknownModelTypeError, ['model_type 42', ...LIST]);
  });

  test('a missing model_type is refused (no guessing from architectures); a mamba_ssm config is told to convert', () => {
    const raw = fixture('granite-dense-nope');
    delete raw['model_type'];
    refused(() => configFromJson(raw), UnknownModelTypeError, ['no "model_type"', 'GraniteMoeHybridForCausalLM"]', ...LIST, 'Convert the checkpoint']);
    refused(() => configFromJson({ ...raw, model_type: '' }), UnknownModelTypeError, ['no "model_type"']);
    // state-spaces/mamba2-130m's own config.json
    const native = { d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: { layer: 'Mamba2' }, rms_norm: true, residual_in_fp32: true, tie_embeddings: true };
    refused(() => configFromJson(native), UnknownModelTypeError, ['no "model_type"', ...LIST, 'mamba_ssm', 'convert it']);
  });

  test('architectures that contradict model_type are refused', () => {
    const cases: [Json, unknown][] = [
      [fixture('granite-dense-nope'), ['Mamba2ForCausalLM']],
      [fixture('granite-dense-nope'), ['GraniteMoeHybridModel']],
      [fixture('granite-dense-nope'), ['GraniteMoeHybridForCausalLM', 'LlamaForCausalLM']],
      [fixture('mamba2-pure'), ['GraniteMoeHybridForCausalLM']],
      [fixture('mamba2-pure'), ['MambaForCausalLM']],
    ];
    for (const [base, archs] of cases) {
      const expected = SUPPORTED_MODEL_TYPES[base['model_type'] as 'mamba2'].architecture;
      refused(() => configFromJson({ ...base, architectures: archs }), UnknownModelTypeError, [
        `architectures ${JSON.stringify(archs)} do not match model_type "${base['model_type']}"`,
        expected,
        ...LIST,
      ], String(archs));
    }
    refused(() => configFromJson({ ...fixture('mamba2-pure'), architectures: 'Mamba2ForCausalLM' }), UnknownModelTypeError, ['"architectures" must be a list']);
    // absent or empty architectures are fine
    const raw = fixture('mamba2-pure');
    delete raw['architectures'];
    assert.equal(configFromJson(raw).architecture, 'mamba2');
    assert.equal(configFromJson({ ...raw, architectures: [] }).architecture, 'mamba2');
  });

  test('each setting the engine does not implement is refused by name, with its value and what is supported', () => {
    const granite = fixture('granite-moe-rope'); // rope attention + MoE: every granite path is live
    const mamba2 = fixture('mamba2-pure');
    const cases: [Json, Json, string, string][] = [
      // [base, patch, field, the value as the message shows it]
      [granite, { hidden_act: 'gelu' }, 'hidden_act', '"gelu"'],
      [granite, { hidden_activation: 'gelu_pytorch_tanh' }, 'hidden_activation', '"gelu_pytorch_tanh"'],
      [granite, { mamba_hidden_act: 'relu' }, 'mamba_hidden_act', '"relu"'],
      [granite, { position_embedding_type: 'alibi' }, 'position_embedding_type', '"alibi"'],
      [granite, { rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 10000 } }, 'rope_parameters.rope_type', '"yarn"'],
      [granite, { rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 } }, 'rope_parameters.partial_rotary_factor', '0.5'],
      [granite, { rope_parameters: undefined, rope_theta: 10000, rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling', '"linear"'],
      [granite, { partial_rotary_factor: 0.25 }, 'partial_rotary_factor', '0.25'],
      [granite, { layer_types: ['full_attention', 'sliding_attention', 'linear_attention', 'full_attention', 'linear_attention'] }, 'layer_types[1]', '"sliding_attention"'],
      [granite, { sliding_window: 4096 }, 'sliding_window', '4096'],
      [granite, { use_sliding_window: true }, 'use_sliding_window', 'true'],
      [granite, { mlp_bias: true }, 'mlp_bias', 'true'],
      [granite, { head_dim: 32 }, 'head_dim', '32'],
      [granite, { num_experts_per_tok: 5 }, 'num_experts_per_tok', '5'],
      [granite, { num_experts_per_tok: 0 }, 'num_experts_per_tok', '0'],
      [granite, { mamba_rmsnorm: false }, 'mamba_rmsnorm', 'false'],
      [granite, { quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } }, 'quantization_config.quant_method', '"fp8"'],
      [mamba2, { hidden_act: 'gelu' }, 'hidden_act', '"gelu"'],
      [mamba2, { rms_norm: false }, 'rms_norm', 'false'],
      [mamba2, { rmsnorm: false }, 'rmsnorm', 'false'],
      [mamba2, { quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true } }, 'quantization_config.quant_method', '"bitsandbytes"'],
    ];
    for (const [base, patch, field, shown] of cases) {
      const label = `${base['model_type']} ${JSON.stringify(patch)}`;
      const e = refused(() => configFromJson({ ...base, ...patch }), UnsupportedConfigValueError, [field, shown, 'is not supported for model_type', 'Sidewinder implements', 'pick another one'], label);
      assert.equal(e.field, field, label);
    }
    // the layer message keeps naming the layer
    refused(() => configFromJson({ ...granite, layer_types: ['full_attention', 'conv', 'linear_attention', 'full_attention', 'linear_attention'] }), UnsupportedConfigValueError, [
      'layer 1 has type "conv"',
      '"mamba"',
      '"attention"',
    ]);
  });

  test('inconsistent sizes and settings are refused with what is wrong', () => {
    const granite = fixture('granite-moe-rope');
    const mamba2 = fixture('mamba2-pure');
    const cases: [Json, string | RegExp][] = [
      [{ ...mamba2, n_groups: 3 }, 'must be a multiple of n_groups (3)'],
      [{ ...mamba2, n_groups: 0 }, '"n_groups" must be a positive integer'],
      [{ ...mamba2, head_dim: 8 }, 'must equal expand x hidden_size'],
      [{ ...mamba2, expand: 1.01 }, 'must be a positive integer'],
      [{ ...mamba2, time_step_limit: [0.5, 0.1] }, 'min above max'],
      [{ ...mamba2, residual_in_fp32: 'yes' }, '"residual_in_fp32" must be true or false'],
      [{ ...granite, num_attention_heads: 6 }, 'hidden_size (64) must be a multiple of num_attention_heads (6)'],
      [{ ...granite, num_key_value_heads: 3 }, 'must be a multiple of num_key_value_heads (3)'],
      [{ ...granite, layers_block_type: ['mamba', 'mamba', 'mamba', 'attention', 'mamba'] }, '"layers_block_type" and "layer_types" disagree'],
      [{ ...granite, attn_layer_indices: [0, 7] }, '"attn_layer_indices" must list layer indices in [0, 5)'],
      [{ ...granite, rope_parameters: { rope_type: 'default', rope_theta: 0 } }, 'rope_theta must be a positive number'],
    ];
    for (const [raw, want] of cases) refused(() => configFromJson(raw), UnsupportedModelError, [want], String(want));
    // rotary attention needs an even head dim: hidden 24 over 8 heads is 3
    const odd = {
      model_type: 'granitemoehybrid', vocab_size: 50, hidden_size: 24, num_hidden_layers: 2, layer_types: ['mamba', 'attention'],
      num_attention_heads: 8, num_key_value_heads: 2, mamba_n_heads: 4, mamba_d_head: 12, mamba_d_state: 4, num_local_experts: 0,
      position_embedding_type: 'rope',
    };
    refused(() => configFromJson(odd), UnsupportedModelError, ['even head dim, got 3']);
    assert.equal(configFromJson({ ...odd, position_embedding_type: 'nope' }).attention!.headDim, 3);
  });

  test('values the engine does implement are accepted', () => {
    const granite = fixture('granite-moe-rope');
    const mamba2 = fixture('mamba2-pure');
    const ok: Json[] = [
      { ...granite, hidden_act: 'swish' },
      { ...granite, hidden_act: undefined },
      { ...granite, attention_bias: true },
      { ...granite, mamba_d_head: 'auto' },
      { ...granite, head_dim: 16 },
      { ...granite, num_experts_per_tok: 4 },
      { ...granite, rope_scaling: null, sliding_window: null, mlp_bias: false, norm_before_gate: false, mamba_rmsnorm: true },
      { ...granite, rope_parameters: undefined, rope_theta: 500, rope_scaling: { rope_type: 'default' } },
      { ...granite, layers_block_type: ['attention', 'mamba', 'mamba', 'attention', 'mamba'] },
      { ...granite, layer_types: undefined, layers_block_type: ['attention', 'mamba', 'mamba', 'attention', 'mamba'] },
      { ...granite, attn_layer_indices: [0, 3] },
      { ...granite, position_embedding_type: 'nope', rope_parameters: { rope_type: 'yarn' } }, // rope settings are unused without rope
      { ...granite, attention_dropout: 0.1, initializer_range: 0.5, router_aux_loss_coef: 0, use_cache: false, dtype: 'float16', max_position_embeddings: 8 },
      { ...mamba2, residual_in_fp32: false },
      { ...mamba2, rms_norm: true, hidden_act: 'swish', use_bias: true, use_conv_bias: false, time_step_limit: [0.001, 0.1] },
      { ...mamba2, time_step_rank: 'auto', rescale_prenorm_residual: true, time_step_floor: 0.01 },
    ];
    for (const raw of ok) assert.doesNotThrow(() => configFromJson(raw), JSON.stringify(raw).slice(0, 200));
    assert.equal(configFromJson({ ...granite, mamba_d_head: 'auto' }).mamba!.headDim, 16);
    assert.equal(configFromJson({ ...granite, rope_parameters: undefined, rope_theta: 500 }).attention!.ropeTheta, 500);
    assert.deepEqual(configFromJson({ ...mamba2, time_step_limit: [0.001, 0.1] }).mamba!.timeStepMax, 0.1);
  });

  test('absent keys take transformers defaults, not other guesses', () => {
    const granite = fixture('granite-moe-rope');
    for (const k of ['attention_multiplier', 'tie_word_embeddings']) delete granite[k];
    const g = configFromJson(granite);
    assert.equal(g.attention!.scaling, 1); // GraniteMoeHybridConfig.attention_multiplier = 1.0
    assert.equal(g.tieWordEmbeddings, false); // GraniteMoeHybridConfig.tie_word_embeddings = False
    const mamba2 = fixture('mamba2-pure');
    delete mamba2['n_groups'];
    assert.equal(configFromJson(mamba2).mamba!.nGroups, 8); // Mamba2Config.n_groups = 8
  });

  test('a model folder with an unknown model_type is refused when opened', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-strict-'));
    const src = path.join(FIXTURES, 'granite-dense-nope');
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...fixture('granite-dense-nope'), model_type: 'qwen2' }));
    refused(() => openModelFolder(dir), UnknownModelTypeError, ['model_type "qwen2" is not supported', ...LIST]);
    fs.rmSync(dir, { recursive: true });
  });
});
