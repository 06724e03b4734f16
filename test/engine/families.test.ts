// Bamba and Nemotron-H (issue 18), before transformers fixtures exist: small random-weight checkpoints written
// here under the tensor names and shapes transformers' BambaForCausalLM and NemotronHForCausalLM save, and the
// Zamba2 and Zamba transformers fixtures (shared blocks with a KV per use), run on the CPU reference and on WebGPU. WebGPU equals the CPU (1e-3 of the largest logit) for a prefill, a
// prefill then decode and a greedy continuation; chunked prefill equals one-shot; fork/rollback, export/import
// and a snapshot on disk continue exactly; sparse K/V runs. The configs parse into the right layer kinds and
// bad ones are refused by name. (Parity with transformers itself is parity.test.ts, once the fixtures exist.)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { CpuModel } from '../../src/engine/cpu/model';
import { UnsupportedConfigValueError, UnsupportedModelError } from '../../src/engine/errors';
import { generateTokens } from '../../src/engine/generate';
import { Gpu } from '../../src/engine/gpu/device';
import { GpuModel } from '../../src/engine/gpu/model';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { loadSnapshot, saveSnapshot } from '../../src/engine/memory/snapshot';
import { openModelFolder, type LanguageModel, type ModelFolder } from '../../src/engine/model';
import { writeSafetensors, type TensorToWrite } from '../../src/engine/safetensors';
import { FIXTURES, relError } from './helpers';

type Json = Record<string, unknown>;
const TOL = 1e-3;

/** A seeded normal generator (mulberry32 + Box-Muller). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  const uni = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uni() + 1e-12)) * Math.cos(2 * Math.PI * uni());
}

class Tensors {
  readonly list: TensorToWrite[] = [];
  private readonly r: () => number;
  constructor(seed: number) {
    this.r = rng(seed);
  }
  add(name: string, shape: number[], f: (i: number) => number): void {
    const n = shape.reduce((a, b) => a * b, 1);
    this.list.push({ name, dtype: 'F32', shape, data: Float32Array.from({ length: n }, (_, i) => f(i)) });
  }
  /** A linear layer's weight [out, in], scaled so activations stay O(1). */
  matrix(name: string, out: number, inDim: number, gain = 1): void {
    this.add(name, [out, inDim], () => (gain * this.r()) / Math.sqrt(inDim));
  }
  norm(name: string, d: number): void {
    this.add(name, [d], () => 1 + 0.2 * this.r());
  }
  vec(name: string, d: number, scale: number, mean = 0): void {
    this.add(name, [d], () => mean + scale * this.r());
  }
  /** Mamba-2 mixer tensors (transformers' names), dt_bias spread so that softplus(dt) spans [1e-3, 0.3]. */
  mamba(p: string, H: number, nh: number, hd: number, ng: number, N: number, K: number): void {
    const I = nh * hd;
    const convDim = I + 2 * ng * N;
    this.matrix(`${p}.in_proj.weight`, 2 * I + 2 * ng * N + nh, H);
    this.add(`${p}.conv1d.weight`, [convDim, 1, K], () => 0.4 * this.r());
    this.vec(`${p}.conv1d.bias`, convDim, 0.1);
    this.add(`${p}.dt_bias`, [nh], (h) => {
      const dt = Math.exp(Math.log(1e-3) + ((h + 0.5) / nh) * (Math.log(0.3) - Math.log(1e-3)));
      return dt + Math.log(-Math.expm1(-dt)); // inverse softplus
    });
    this.add(`${p}.A_log`, [nh], (h) => Math.log(1 + h));
    this.vec(`${p}.D`, nh, 0.2, 1);
    this.norm(`${p}.norm.weight`, I);
    this.matrix(`${p}.out_proj.weight`, H, I);
  }
  attention(p: string, H: number, nH: number, nKv: number, d: number): void {
    this.matrix(`${p}.q_proj.weight`, nH * d, H, 2);
    this.matrix(`${p}.k_proj.weight`, nKv * d, H, 2);
    this.matrix(`${p}.v_proj.weight`, nKv * d, H);
    this.matrix(`${p}.o_proj.weight`, H, nH * d);
  }
}

const V = 96;
const VOCAB = V;

function bambaConfig(): Json {
  return {
    architectures: ['BambaForCausalLM'],
    model_type: 'bamba',
    vocab_size: V,
    hidden_size: 64,
    intermediate_size: 80,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    attn_layer_indices: [1, 3],
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    mamba_n_heads: 8,
    mamba_d_head: 'auto',
    mamba_n_groups: 2,
    mamba_d_state: 16,
    mamba_d_conv: 4,
    mamba_expand: 2,
    mamba_chunk_size: 16,
    mamba_conv_bias: true,
    mamba_proj_bias: false,
    tie_word_embeddings: false,
    rope_parameters: { rope_theta: 10000.0, rope_type: 'default', partial_rotary_factor: 0.5 },
    time_step_limit: [0.0, { __float__: 'Infinity' }],
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

function bambaTensors(seed: number): TensorToWrite[] {
  const t = new Tensors(seed);
  const H = 64;
  t.add('model.embed_tokens.weight', [V, H], () => rng(seed + 1)());
  for (let i = 0; i < 4; i++) {
    const p = `model.layers.${i}`;
    t.norm(`${p}.input_layernorm.weight`, H);
    if (i === 1 || i === 3) t.attention(`${p}.self_attn`, H, 4, 2, 16);
    else t.mamba(`${p}.mamba`, H, 8, 16, 2, 16, 4);
    t.norm(`${p}.pre_ff_layernorm.weight`, H);
    t.matrix(`${p}.feed_forward.gate_proj.weight`, 80, H);
    t.matrix(`${p}.feed_forward.up_proj.weight`, 80, H);
    t.matrix(`${p}.feed_forward.down_proj.weight`, H, 80);
  }
  t.norm('model.final_layernorm.weight', H);
  t.matrix('lm_head.weight', V, H, 3);
  return t.list;
}

const PATTERN = 'M*-M-*M';

function nemotronConfig(): Json {
  return {
    architectures: ['NemotronHForCausalLM'],
    model_type: 'nemotron_h',
    vocab_size: V,
    hidden_size: 64,
    hybrid_override_pattern: PATTERN,
    num_hidden_layers: PATTERN.length,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    intermediate_size: 96,
    mlp_hidden_act: 'relu2',
    mlp_bias: false,
    mamba_num_heads: 8,
    mamba_head_dim: 16,
    mamba_hidden_act: 'silu',
    n_groups: 2,
    ssm_state_size: 16,
    conv_kernel: 4,
    chunk_size: 16,
    use_conv_bias: true,
    use_bias: false,
    time_step_min: 0.001,
    time_step_max: 0.1,
    layer_norm_epsilon: 1e-5,
    residual_in_fp32: false,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

function nemotronTensors(seed: number, root = 'backbone'): TensorToWrite[] {
  const t = new Tensors(seed);
  const H = 64;
  t.add(`${root}.embeddings.weight`, [V, H], () => rng(seed + 1)());
  [...PATTERN].forEach((c, i) => {
    const p = `${root}.layers.${i}`;
    t.norm(`${p}.norm.weight`, H);
    if (c === 'M') t.mamba(`${p}.mixer`, H, 8, 16, 2, 16, 4);
    else if (c === '*') t.attention(`${p}.mixer`, H, 4, 2, 16);
    else {
      t.matrix(`${p}.mixer.up_proj.weight`, 96, H, 2);
      t.matrix(`${p}.mixer.down_proj.weight`, H, 96);
    }
  });
  t.norm(`${root}.norm_f.weight`, H);
  t.matrix('lm_head.weight', V, H, 3);
  return t.list;
}

/** A family's checkpoint: written here from random weights, or a transformers fixture copied (test/fixtures). */
type Family = { name: string; config: () => Json; tensors: (seed: number) => TensorToWrite[] } | { name: string; fixture: string };

const FAMILIES: Family[] = [
  { name: 'bamba', config: bambaConfig, tensors: bambaTensors },
  { name: 'nemotron_h', config: nemotronConfig, tensors: nemotronTensors },
  // transformers 5.x loads Nemotron-H's backbone.* as model.*; a checkpoint saved under that name loads too.
  { name: 'nemotron_h (model.)', config: nemotronConfig, tensors: (s) => nemotronTensors(s, 'model') },
  // Zamba2: shared blocks reused at several depths, each use with its own KV (tied blocks; untied per-layer copies)
  { name: 'zamba2', fixture: 'zamba2' },
  { name: 'zamba2-single', fixture: 'zamba2-single' },
  // Zamba: the same shared-block path over a multi-head Mamba-1
  { name: 'zamba', fixture: 'zamba' },
  { name: 'zamba-heads3', fixture: 'zamba-heads3' },
];

function writeFamily(dir: string, fam: Family, seed: number): void {
  if ('fixture' in fam) {
    fs.mkdirSync(dir, { recursive: true });
    const src = path.join(FIXTURES, fam.fixture);
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  } else writeModel(dir, fam.config(), fam.tensors(seed));
}

function writeModel(dir: string, config: Json, tensors: TensorToWrite[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

const IDS = Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % V);
const SPLIT = 13;

async function runs(model: LanguageModel): Promise<{ prefill: Float32Array; decode: Float32Array; greedy: number[] }> {
  model.reset();
  const prefill = await model.forward(IDS, { allLogits: true });
  model.reset();
  const rows: number[] = Array.from(await model.forward(IDS.slice(0, SPLIT)));
  for (const id of IDS.slice(SPLIT)) rows.push(...(await model.forward([id])));
  model.reset();
  const greedy: number[] = [];
  for await (const id of generateTokens(model, IDS.slice(0, 9), { maxNewTokens: 12, greedy: true })) greedy.push(id);
  return { prefill, decode: Float32Array.from(rows), greedy };
}

/** fork, a detour, rollback; export/import into a fresh model; both continue as one uninterrupted prefill. */
async function stateOps(model: LanguageModel, fresh: () => Promise<LanguageModel>, whole: Float32Array, label: string, dir: string, V = VOCAB): Promise<void> {
  model.reset();
  await model.forward(IDS.slice(0, SPLIT));
  const mark = await model.fork();
  await model.forward([3, 1, 4, 1, 5, 9, 2, 6, 5, 3]);
  await model.rollback(mark);
  mark.release();
  assert.equal(model.position, SPLIT);
  const rest = await model.forward(IDS.slice(SPLIT), { allLogits: true });
  const e1 = relError(rest, whole.subarray(SPLIT * model.config.vocabSize));
  assert.ok(e1 < 1e-4, `${label}: after rollback ${e1}`);

  model.reset();
  await model.forward(IDS.slice(0, SPLIT));
  const st = await model.exportState();
  const other = await fresh();
  await other.importState(st);
  const cont = await other.forward(IDS.slice(SPLIT), { allLogits: true });
  const e2 = relError(cont, whole.subarray(SPLIT * model.config.vocabSize));
  assert.ok(e2 < 1e-4, `${label}: after export/import ${e2}`);
  other.dispose();

  // A snapshot on disk, K/V as blocks, into another fresh model.
  model.reset();
  await model.forward(IDS.slice(0, SPLIT));
  const file = path.join(dir, `${label.replace(/\W+/g, '_')}.swsnap`);
  saveSnapshot(file, 'm', await model.exportState({ kv: 'blocks' }), {});
  const back = loadSnapshot(file, 'm');
  const third = await fresh();
  await third.importState(back.state);
  const e3 = relError(await third.forward(IDS.slice(SPLIT), { allLogits: true }), whole.subarray(SPLIT * model.config.vocabSize));
  assert.ok(e3 < 1e-4, `${label}: after a snapshot ${e3}`);
  third.dispose();
}

describe('bamba and nemotron_h: config', () => {
  test('a Bamba config parses into its layer kinds, partial rotary and feed-forward', () => {
    const cfg = configFromJson(bambaConfig());
    assert.equal(cfg.architecture, 'bamba');
    assert.deepEqual(cfg.layerKinds, ['mamba', 'attention', 'mamba', 'attention']);
    assert.equal(cfg.attention!.headDim, 16);
    assert.equal(cfg.attention!.rotaryDim, 8);
    assert.equal(cfg.attention!.ropeTheta, 10000);
    assert.equal(cfg.attention!.scaling, 0.25);
    assert.equal(cfg.feedForward!.sharedIntermediate, 80);
    assert.equal(cfg.feedForward!.numExperts, 0);
    assert.equal(cfg.mamba!.headDim, 16);
    assert.equal(cfg.mamba!.normGroupSize, 128, 'BambaRMSNormGated normalises the whole intermediate');
    assert.equal(cfg.mamba!.dtLimitInDecode, false);
    // partial_rotary_factor is 0.5 unless rope_parameters says otherwise (a top-level one is overwritten).
    const noRope = { ...bambaConfig(), rope_parameters: undefined, partial_rotary_factor: 1.0, rope_theta: 5e5 };
    const c2 = configFromJson(noRope);
    assert.deepEqual([c2.attention!.rotaryDim, c2.attention!.ropeTheta], [8, 5e5]);
    const c3 = configFromJson({ ...bambaConfig(), rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 1.0 }, head_dim: 32 });
    assert.deepEqual([c3.attention!.headDim, c3.attention!.rotaryDim], [32, 32]);
    // No attn_layer_indices: all Mamba.
    const c4 = configFromJson({ ...bambaConfig(), attn_layer_indices: undefined });
    assert.deepEqual(c4.layerKinds, ['mamba', 'mamba', 'mamba', 'mamba']);
    assert.equal(c4.attention, null);
  });

  test('a Nemotron-H pattern parses into blocks; layers_block_type says the same', () => {
    const cfg = configFromJson(nemotronConfig());
    assert.equal(cfg.architecture, 'nemotron_h');
    assert.deepEqual(cfg.layerKinds, ['mamba', 'attention', 'mlp', 'mamba', 'mlp', 'attention', 'mamba']);
    assert.equal(cfg.numLayers, 7);
    assert.equal(cfg.feedForward, null);
    assert.deepEqual(cfg.mlp, { intermediate: 96, bias: false });
    assert.equal(cfg.attention!.ropeTheta, null);
    assert.equal(cfg.attention!.scaling, 0.25);
    assert.equal(cfg.mamba!.intermediate, 128);
    assert.equal(cfg.mamba!.normGroupSize, 64, 'the gated norm is per group of intermediate / n_groups');
    assert.deepEqual([cfg.mamba!.timeStepMin, cfg.mamba!.timeStepMax], [0.001, Infinity]);
    assert.equal(cfg.rmsNormEps, 1e-5);
    const types = ['linear_attention', 'full_attention', 'mlp', 'mamba', 'mlp', 'attention', 'mamba'];
    const viaList = { ...nemotronConfig(), hybrid_override_pattern: undefined, layers_block_type: types };
    assert.deepEqual(configFromJson(viaList).layerKinds, cfg.layerKinds);
    // Legacy names win (NemotronHConfig.__post_init__).
    const legacy = configFromJson({ ...nemotronConfig(), mamba_n_groups: 4, mamba_dt_min: 0.01, mamba_d_conv: 3 });
    assert.deepEqual([legacy.mamba!.nGroups, legacy.mamba!.timeStepMin, legacy.mamba!.dConv, legacy.mamba!.normGroupSize], [4, 0.01, 3, 32]);
    // NemotronHForCausalLM never ties its lm_head (transformers 5.18 saves lm_head.weight even when asked to tie).
    assert.equal(configFromJson({ ...nemotronConfig(), tie_word_embeddings: true }).tieWordEmbeddings, false);
  });

  test('a bad pattern character, an MoE block, inconsistent heads and unsupported settings are refused by name', () => {
    const refused = (raw: Json, cls: new (...a: never[]) => Error, parts: string[]) => {
      assert.throws(
        () => configFromJson(raw),
        (e: unknown) => e instanceof cls && e instanceof UnsupportedModelError && parts.every((p) => (e as Error).message.includes(p)),
        `${JSON.stringify(parts)}`,
      );
    };
    const n = nemotronConfig();
    refused({ ...n, hybrid_override_pattern: 'M*X-' }, UnsupportedConfigValueError, ['hybrid_override_pattern', 'block 2', '"X"', 'M (Mamba-2)']);
    refused({ ...n, hybrid_override_pattern: 'M*E-' }, UnsupportedConfigValueError, ['block 2 is an MoE block', 'not implemented']);
    refused({ ...n, hybrid_override_pattern: undefined, layers_block_type: ['mamba', 'moe'] }, UnsupportedConfigValueError, ['MoE']);
    refused({ ...n, layers_block_type: ['mamba', 'attention'] }, UnsupportedModelError, ['disagree']);
    refused({ ...n, hybrid_override_pattern: undefined }, UnsupportedModelError, ['hybrid_override_pattern']);
    refused({ ...n, num_attention_heads: 6, num_key_value_heads: 4 }, UnsupportedModelError, ['num_attention_heads (6) must be a multiple of num_key_value_heads (4)']);
    refused({ ...n, mlp_hidden_act: 'gelu' }, UnsupportedConfigValueError, ['mlp_hidden_act', '"gelu"', 'relu2']);
    refused({ ...n, mamba_hidden_act: 'gelu' }, UnsupportedConfigValueError, ['mamba_hidden_act']);
    refused({ ...n, n_groups: 3 }, UnsupportedModelError, ['n_groups']);
    const b = bambaConfig();
    refused({ ...b, num_attention_heads: 3 }, UnsupportedModelError, ['num_attention_heads (3) must be a multiple of num_key_value_heads (2)']);
    refused({ ...b, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 1e4 } }, UnsupportedConfigValueError, ['rope_parameters.rope_type', '"linear"']);
    refused({ ...b, rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.1 } }, UnsupportedConfigValueError, ['partial_rotary_factor']);
    refused({ ...b, mamba_n_heads: 7 }, UnsupportedModelError, ['mamba_n_heads']);
    refused({ ...b, hidden_act: 'gelu' }, UnsupportedConfigValueError, ['hidden_act']);
    refused({ ...b, mlp_bias: true }, UnsupportedConfigValueError, ['mlp_bias']);
    refused({ ...b, attn_layer_indices: [1, 9] }, UnsupportedModelError, ['attn_layer_indices']);
    refused({ ...b, architectures: ['NemotronHForCausalLM'] }, UnsupportedModelError, ['BambaForCausalLM']);
  });
});

describe('bamba and nemotron_h: WebGPU vs the CPU reference (random weights)', () => {
  let gpu: Gpu;
  let tmp: string;
  before(async () => {
    gpu = await Gpu.create();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-families-'));
  });
  after(() => {
    gpu?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  FAMILIES.forEach((fam, k) => {
    test(`${fam.name}: prefill, decode, greedy, chunked prefill, fork/rollback, export/import, snapshot`, async () => {
      const dir = path.join(tmp, `m${k}`);
      writeFamily(dir, fam, 100 + k);
      const folder: ModelFolder = openModelFolder(dir);
      const Vm = folder.config.vocabSize;
      const cpu = CpuModel.load(folder);
      const opts = { gpu, prefillChunk: 16, kvCapacity: 8 };
      const g = await GpuModel.load(folder, opts);
      try {
        const c = await runs(cpu);
        const w = await runs(g);
        let maxLogit = 0;
        for (const v of c.prefill) maxLogit = Math.max(maxLogit, Math.abs(v));
        assert.ok(maxLogit > 0.5, `${fam.name}: logits too small to compare (${maxLogit})`);
        const e1 = relError(w.prefill, c.prefill);
        const e2 = relError(w.decode, c.decode);
        assert.ok(e1 < TOL, `${fam.name}: prefill GPU vs CPU ${e1}`);
        assert.ok(e2 < TOL, `${fam.name}: decode GPU vs CPU ${e2}`);
        // The decode rows are the prefill's rows (the dt limit aside, which these weights hardly reach).
        const e3 = relError(c.decode, c.prefill.subarray((SPLIT - 1) * Vm));
        assert.ok(e3 < 1e-3, `${fam.name}: CPU decode vs CPU prefill ${e3}`);
        assert.deepEqual(w.greedy, c.greedy, `${fam.name}: greedy tokens`);

        // Chunked prefill equals one-shot: the CPU in uneven chunks, the GPU with chunks of 5 and of 512.
        cpu.reset();
        let last: Float32Array = new Float32Array(0);
        for (const [a, b] of [[0, 7], [7, 9], [9, 23], [23, 30]]) last = await cpu.forward(IDS.slice(a, b));
        const e4 = relError(last, c.prefill.subarray((IDS.length - 1) * Vm));
        assert.ok(e4 < 1e-5, `${fam.name}: CPU chunked vs one-shot ${e4}`);
        for (const prefillChunk of [5, 512]) {
          const other = await GpuModel.load(folder, { gpu, prefillChunk });
          const e5 = relError(await other.forward(IDS, { allLogits: true }), w.prefill);
          other.dispose();
          assert.ok(e5 < 1e-4, `${fam.name}: GPU prefillChunk ${prefillChunk} vs 16: ${e5}`);
        }

        await stateOps(cpu, async () => CpuModel.load(folder), c.prefill, `cpu ${fam.name}`, tmp);
        await stateOps(g, () => GpuModel.load(folder, opts), w.prefill, `webgpu ${fam.name}`, tmp);

        // Recurrent state per Mamba layer, K/V per attention layer (Zamba2: per use of a shared block), nothing for
        // the MLP blocks; the memory report counts the same.
        const st = await g.exportState();
        const kinds = g.config.layerKinds;
        assert.equal(st.mamba.length, kinds.filter((x) => x === 'mamba' || x === 'mamba1' || x === 'hybrid').length);
        assert.equal(st.kv.length, kinds.filter((x) => x === 'attention' || x === 'hybrid').length);
        const stateBytes = st.mamba.reduce((n, m) => n + m.conv.byteLength + m.ssm.byteLength, 0);
        assert.equal(g.memory().stateBytes, stateBytes);
        assert.equal(cpu.memory().stateBytes, stateBytes);
        const a = g.config.attention;
        if (a) {
          cpu.reset();
          await cpu.forward(IDS);
          assert.equal(cpu.memory().kvHostBytes, st.kv.length * 2 * 4 * Math.ceil(IDS.length / BLOCK_ROWS) * BLOCK_ROWS * a.numKvHeads * a.headDim);
        }
        console.log(`${fam.name}: GPU vs CPU prefill ${e1.toExponential(2)}, decode ${e2.toExponential(2)}; greedy ${JSON.stringify(c.greedy)}`);
      } finally {
        g.dispose();
        cpu.dispose();
        folder.store.close();
      }
    });
  });

  for (const fam of [FAMILIES[1], FAMILIES[3]]) test(`${fam.name} with sparse K/V: GPU selection and logits follow the CPU reference`, async () => {
    const dir = path.join(tmp, `sparse-${fam.name}`);
    writeFamily(dir, fam, 7);
    const folder = openModelFolder(dir);
    const cfg = folder.config;
    const CHUNK = 64;
    const MAX_CONTEXT = 1024;
    const kd = cfg.attention!.numKvHeads * cfg.attention!.headDim;
    const layers = cfg.layerKinds.filter((x) => x === 'attention' || x === 'hybrid').length;
    const slots = 4;
    // The budget that gives `slots` selectable blocks per attention layer (as sparseKvGpu.test.ts sizes it).
    const block = 2 * BLOCK_ROWS * kd * 4;
    const tailBlocks = Math.ceil((BLOCK_ROWS - 1 + CHUNK) / BLOCK_ROWS);
    const budget = layers * (slots + tailBlocks) * block + layers * Math.ceil(MAX_CONTEXT / BLOCK_ROWS) * (2 * kd + 1) * 4 + layers * 2 * kd * 4;
    const g = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: budget, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 1000, maxContextTokens: MAX_CONTEXT } });
    const c = CpuModel.load(folder, { kvPolicy: { sinkBlocks: 1, recentBlocks: 2, maxBlocks: slots, denseRows: (slots + tailBlocks) * BLOCK_ROWS } });
    try {
      const ids = Array.from({ length: 10 * BLOCK_ROWS + 21 }, (_, i) => (i * 53 + 5) % V);
      let worst = 0;
      for (let o = 0; o < ids.length; o += CHUNK) worst = Math.max(worst, relError(await g.forward(ids.slice(o, o + CHUNK)), await c.forward(ids.slice(o, o + CHUNK))));
      for (let i = 0; i < 4; i++) worst = Math.max(worst, relError(await g.forward([i + 7]), await c.forward([i + 7])));
      console.log(`${fam.name} sparse K/V: sparse ${g.attendsSparsely()}, paged ${JSON.stringify(g.kvPaging())}, GPU vs CPU ${worst.toExponential(2)}`);
      assert.ok(g.attendsSparsely(), 'the context is past the working buffers');
      assert.ok(g.kvPaging().fromHost > 0, 'older blocks are paged in from the host');
      assert.ok(worst < TOL, `sparse K/V GPU vs CPU: ${worst}`);
    } finally {
      g.dispose();
      c.dispose();
      folder.store.close();
    }
  });
});

// RecurrentGemma (issue 18) on its transformers fixtures: WebGPU equals the CPU reference, chunked prefill (chunks
// shorter and longer than the attention window) equals one-shot, fork/rollback, export/import and a snapshot
// continue exactly, and the local attention layers' K/V stays bounded by the window in the memory report.
describe('recurrent_gemma: WebGPU vs the CPU reference, chunks, state, the window-bounded K/V', () => {
  let gpu: Gpu;
  let tmp: string;
  before(async () => {
    gpu = await Gpu.create();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-rgemma-'));
  });
  after(() => {
    gpu?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const name of ['recurrent-gemma', 'recurrent-gemma-wide']) {
    test(`${name}: prefill, decode, greedy, chunked prefill, fork/rollback, export/import, snapshot, memory`, async () => {
      const folder: ModelFolder = openModelFolder(path.join(__dirname, '..', '..', 'test', 'fixtures', name));
      const cfg = folder.config;
      const cpu = CpuModel.load(folder);
      const opts = { gpu, prefillChunk: 16 };
      const g = await GpuModel.load(folder, opts);
      try {
        const Vr = cfg.vocabSize;
        const c = await runs(cpu);
        const w = await runs(g);
        const e1 = relError(w.prefill, c.prefill);
        const e2 = relError(w.decode, c.decode);
        assert.ok(e1 < TOL, `${name}: prefill GPU vs CPU ${e1}`);
        assert.ok(e2 < TOL, `${name}: decode GPU vs CPU ${e2}`);
        assert.deepEqual(w.greedy, c.greedy, `${name}: greedy tokens`);
        const e3 = relError(c.decode, c.prefill.subarray((SPLIT - 1) * Vr));
        assert.ok(e3 < 1e-5, `${name}: CPU decode vs CPU prefill ${e3}`);

        // Chunked prefill equals one-shot: the CPU in uneven chunks, the GPU with chunks of 5 and of 512.
        cpu.reset();
        let last: Float32Array = new Float32Array(0);
        for (const [a, b] of [[0, 7], [7, 9], [9, 23], [23, 30]]) last = await cpu.forward(IDS.slice(a, b));
        const e4 = relError(last, c.prefill.subarray((IDS.length - 1) * Vr));
        assert.ok(e4 < 1e-5, `${name}: CPU chunked vs one-shot ${e4}`);
        for (const prefillChunk of [5, 512]) {
          const other = await GpuModel.load(folder, { gpu, prefillChunk });
          const e5 = relError(await other.forward(IDS, { allLogits: true }), w.prefill);
          other.dispose();
          assert.ok(e5 < 1e-4, `${name}: GPU prefillChunk ${prefillChunk} vs 16: ${e5}`);
        }

        await stateOps(cpu, async () => CpuModel.load(folder), c.prefill, `cpu ${name}`, tmp, Vr);
        await stateOps(g, () => GpuModel.load(folder, opts), w.prefill, `webgpu ${name}`, tmp, Vr);

        // The state: conv + h per recurrent layer and the K/V rings per local attention layer, no growing K/V.
        const kinds = cfg.layerKinds;
        const gr = cfg.griffin!;
        const a = cfg.attention!;
        const st = await g.exportState();
        assert.equal(st.mamba.length, kinds.length);
        assert.equal(st.kv.length, 0);
        const nLocal = kinds.filter((k) => k === 'local').length;
        const nRec = kinds.filter((k) => k === 'rglru').length;
        const ringBytes = nLocal * 2 * 4 * gr.window * a.numKvHeads * a.headDim;
        const recBytes = nRec * 4 * gr.lruWidth * gr.convWidth; // conv [L, K-1] + h [L]
        for (const model of [cpu, g] as LanguageModel[]) {
          const seen: number[] = [];
          for (const n of [3, 40, 80]) {
            model.reset();
            await model.forward(Array.from({ length: n }, (_, i) => (i * 13 + 5) % Vr), { skipLogits: true });
            const m = model.memory();
            assert.equal(m.kvWindowTokens, gr.window);
            assert.equal(m.stateBytes, recBytes);
            seen.push(m.kvGpuBytes + m.kvHostBytes + m.kvDiskBytes);
          }
          assert.deepEqual(seen, [ringBytes, ringBytes, ringBytes], `${name}: K/V bytes stay at the window's bound`);
        }
        console.log(`${name}: GPU vs CPU prefill ${e1.toExponential(2)}, decode ${e2.toExponential(2)}; K/V ${ringBytes} bytes (window ${gr.window})`);
      } finally {
        g.dispose();
        cpu.dispose();
        folder.store.close();
      }
    });
  }
});
