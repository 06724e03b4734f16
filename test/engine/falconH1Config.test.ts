// Falcon-H1 (`falcon_h1`, FalconH1ForCausalLM; issue 18) configs: every layer 'parallel' (Mamba-2 and attention on
// one normed input), the mixer width (mamba_d_ssm), the optional gated norm, refusals by name, and the muP
// multipliers folded into the projections as virtual store tensors. Parity with transformers is parity.test.ts
// (falcon-h1, falcon-h1-nonorm); q8/q4 quantModel.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { UnsupportedConfigValueError } from '../../src/engine/errors';
import { openModelFolder } from '../../src/engine/model';
import { toF32 } from '../../src/engine/safetensors';
import { FIXTURES, REPO } from './helpers';

type Json = Record<string, unknown>;
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8'));

test('falcon_h1 configs: parallel layers, mixer width, gated norm and multipliers', () => {
  const c = configFromJson(fixture('falcon-h1'));
  assert.equal(c.architecture, 'falcon_h1');
  assert.deepEqual(c.layerKinds, ['parallel', 'parallel', 'parallel']);
  assert.equal(c.mamba!.intermediate, 128);
  assert.equal(c.mamba!.normGroupSize, 64); // n_groups 2
  assert.equal(c.falconH1!.gatedNorm, true);
  assert.equal(c.logitsScaling, 2); // lm_head_multiplier 0.5
  assert.equal(c.embeddingMultiplier, 2);
  assert.deepEqual(c.attention, { numHeads: 4, numKvHeads: 2, headDim: 16, scaling: 0.25, bias: false, ropeTheta: 10000, rotaryDim: 16 });
  const n = configFromJson(fixture('falcon-h1-nonorm'));
  assert.equal(n.mamba!.intermediate, 96);
  assert.equal(n.falconH1!.gatedNorm, false);
  // Falcon-H1-0.5B's published config has no mamba_d_ssm: 24 heads of 64 channels.
  const pub = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'data', 'configs', 'falcon_h1', 'tiiuae--Falcon-H1-0.5B.json'), 'utf8'));
  const p = configFromJson(pub);
  assert.equal(p.mamba!.intermediate, 1536);
  assert.equal(p.numLayers, 36);
});

test('falcon_h1 refusals by name', () => {
  const base = fixture('falcon-h1');
  const refused = (patch: Json, field: string) =>
    assert.throws(() => configFromJson({ ...base, ...patch }), (e: unknown) => e instanceof UnsupportedConfigValueError && e.message.includes(field));
  refused({ mamba_norm_before_gate: true }, 'mamba_norm_before_gate');
  refused({ attention_bias: true }, 'attention_bias');
  refused({ projectors_bias: true }, 'projectors_bias');
  // norm_before_gate only matters with the norm
  assert.equal(configFromJson({ ...base, mamba_rms_norm: false, mamba_norm_before_gate: true }).falconH1!.gatedNorm, false);
  assert.throws(() => configFromJson({ ...base, mamba_d_ssm: 100 }), /mamba_n_heads/);
});

test('falcon_h1 muP multipliers are folded into the projections as virtual tensors', () => {
  const folder = openModelFolder(path.join(FIXTURES, 'falcon-h1'));
  try {
    const raw = (n: string) => toF32(folder.store.bytes(n), folder.store.info(n).dtype);
    const p = 'model.layers.0';
    const k = raw(`${p}.self_attn.k_proj.weight`);
    const ks = raw(`${p}.self_attn.k_proj.mup.weight`);
    assert.ok(Math.abs(ks[5] - k[5] * 1.25 * 0.8) < 1e-6);
    const ip = raw(`${p}.mamba.in_proj.weight`);
    const ips = raw(`${p}.mamba.in_proj.mup.weight`);
    const H = 64;
    // row 0 is z (0.9), row 128 x (1.1), row 256 B (0.7), row 288 C (1.3), row 320 dt (0.5); all x ssm_in 1.2
    for (const [row, m] of [[0, 0.9], [128, 1.1], [256, 0.7], [288, 1.3], [320, 0.5]]) assert.ok(Math.abs(ips[row * H + 3] - ip[row * H + 3] * m * 1.2) < 1e-6, `row ${row}`);
  } finally {
    folder.store.close();
  }
});
