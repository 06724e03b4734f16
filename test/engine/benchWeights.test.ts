// The family bench's random weights (bench/randomWeights.ts) and shapes (bench/shapes.ts, bench/families.json):
// large tensors repeated on the GPU hold the same bytes as drawn on the host; every family's fixture shape builds
// and runs one forward with them; the per-token counts take shared-block uses, top-k experts and local windows.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson, parseConfigJson, SUPPORTED_MODEL_TYPES, type ModelConfig } from '../../src/engine/config';
import { Gpu, type GpuWeight } from '../../src/engine/gpu/device';
import { GpuModel } from '../../src/engine/gpu/model';
import { perTokenCounts, plannedWeightBytes, randomTensor, randomWeights, uploadRandom, weightBytes } from '../../bench/randomWeights';
import { FAMILY_SHAPES, resolveShapes, truncateLayers } from '../../bench/shapes';
import { FIXTURES, REPO } from './helpers';

const fixture = (name: string): ModelConfig => configFromJson(parseConfigJson(fs.readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8')));

// One fixture per family.
const FAMILY_FIXTURES = ['granite-moe-rope', 'mamba1-pure', 'mamba2-pure', 'bamba', 'nemotron-h', 'falcon-mamba', 'jamba-moe', 'falcon-h1', 'zamba2', 'zamba', 'recurrent-gemma'];

describe('family bench: shapes', () => {
  test('one real shape per family, each a config the engine takes', () => {
    const all = resolveShapes('all-families', REPO);
    assert.deepEqual([...new Set(all.map((s) => configFromJson(s.raw).architecture))].sort(), Object.keys(SUPPORTED_MODEL_TYPES).sort());
    assert.equal(all.length, FAMILY_SHAPES.length);
    for (const s of all) assert.ok(s.shape.provenance.length > 0, s.shape.name);
  });

  test('the weights the bench builds are, tensor for tensor, the parameters transformers builds at each shape', () => {
    // sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters()) on the meta device, transformers
    // 5.17.0 (bench/peer_transformers.py hf_config; Jamba-1.5-Mini at its first 8 layers)
    const params: Record<string, number> = {
      'granite-4.0-h-350m': 340_332_224,
      'mamba-130m': 129_135_360,
      'falcon-h1-0.5b': 521_411_104,
      'recurrentgemma-2b-library-default': 2_010_263_040,
      'mamba-codestral-7b': 7_285_403_648,
      'falcon-mamba-7b': 7_272_665_088,
      'zamba2-7b': 7_356_749_648,
      'zamba-library-default': 7_232_490_496,
      'nemotron-h-library-default': 8_100_852_736,
      'bamba-library-default': 9_808_584_064,
      'jamba-1.5-mini': 13_295_237_088,
    };
    for (const { shape, raw } of resolveShapes('all-families', REPO)) {
      const cfg = configFromJson(shape.layers ? truncateLayers(raw, shape.layers) : raw);
      assert.equal(plannedWeightBytes(cfg, ['bf16']) / 2, params[shape.name], shape.name);
    }
  });

  test('--layers keeps the first N layers of every layer list and pattern', () => {
    const byName = (n: string) => resolveShapes(n, REPO)[0].raw;
    const jamba = configFromJson(truncateLayers(byName('jamba-1.5-mini'), 8));
    assert.equal(jamba.numLayers, 8);
    assert.deepEqual(jamba.layerKinds.map((k) => (k === 'attention' ? '*' : 'M')).join(''), 'MMMM*MMM');
    assert.equal(jamba.feedForward!.expertLayers.filter(Boolean).length, 4);
    const nemotron = configFromJson(truncateLayers(byName('nemotron-h-library-default'), 9));
    assert.equal(nemotron.layerKinds.join(), 'mamba,mlp,mamba,mlp,mamba,mlp,mamba,attention,mlp');
    const zamba2 = configFromJson(truncateLayers(byName('zamba2-7b'), 12));
    assert.deepEqual(zamba2.zamba2!.hybridLayers, [6, 11]);
    assert.equal(configFromJson(truncateLayers(byName('granite-4.0-h-350m'), 64)).numLayers, 32);
  });
});

describe('family bench: random weights on the GPU', () => {
  let gpu: Gpu;
  before(async () => {
    // a small binding limit: a large tensor in several parts, each starting at another phase of the repeated values
    gpu = await Gpu.create({ maxBinding: 3 << 20 });
  });
  after(() => gpu?.destroy());

  test('a large tensor repeated on the GPU holds the bytes drawn on the host, part by part', async () => {
    for (const [dtype, shape] of [['BF16', [2600, 3460]], ['F32', [1300, 6916]]] as const) {
      const sources: GPUBuffer[] = [];
      const tiled = uploadRandom(gpu, 'model.layers.0.mixer.in_proj.weight', [...shape], dtype, 5, sources);
      const host = gpu.uploadWeight('x', randomTensor('model.layers.0.mixer.in_proj.weight', [...shape], dtype, 5), dtype, [...shape]);
      assert.ok(tiled.parts.length > 2, `${dtype}: ${tiled.parts.length} parts`);
      assert.deepEqual(tiled.parts.map((p) => [p.rowStart, p.rows]), host.parts.map((p) => [p.rowStart, p.rows]));
      assert.equal(tiled.bytes, host.bytes);
      for (let i = 0; i < host.parts.length; i++) {
        const size = host.parts[i].buffer.size;
        const [a, b] = [new Uint8Array(await gpu.read(tiled.parts[i].buffer, size)), new Uint8Array(await gpu.read(host.parts[i].buffer, size))];
        assert.ok(Buffer.compare(a, b) === 0, `${dtype} part ${i} differs`);
      }
      for (const w of [tiled, host]) for (const p of w.parts) gpu.free(p.buffer);
      for (const s of sources) gpu.free(s);
    }
  });

  for (const name of FAMILY_FIXTURES) {
    test(`${name}: random weights build and run a forward; per-token counts`, async () => {
      const cfg = fixture(name);
      const w = randomWeights(gpu, cfg, 'BF16');
      const model = GpuModel.fromWeights(gpu, cfg, w, { prefillChunk: 8, kvCapacity: 32 });
      const logits = await model.forward([1, 2, 3, 4, 5]);
      assert.ok(logits.every((v) => Number.isFinite(v)));
      const pt = perTokenCounts(cfg, w);
      const H = cfg.hiddenSize;
      const a = cfg.attention;
      const row = a ? 2 * 4 * a.numKvHeads * a.headDim : 0;
      const kinds = (k: string) => cfg.layerKinds.filter((x) => x === k).length;
      assert.equal(pt.kvFullBytes, row * (kinds('attention') + kinds('parallel') + kinds('hybrid')));
      assert.equal(pt.kvLocalBytes, row * kinds('local'));
      if (kinds('local')) assert.equal(pt.kvWindow, cfg.griffin!.window);
      assert.ok(pt.matmulFlops >= 2 * cfg.vocabSize * H);
      if (cfg.zamba2) {
        // every use of a shared block reads and multiplies its weights again
        const uses = cfg.zamba2.hybridLayers.length;
        assert.ok(uses > cfg.zamba2.numMemBlocks);
        assert.ok(pt.decodeWeightBytes > weightBytes(w) - (w.embed === w.lmHead ? 0 : w.embed.bytes), 'shared blocks count per use');
      }
      if (cfg.feedForward && cfg.feedForward.numExperts > 0) {
        const ff = cfg.feedForward;
        const moeLayers = w.layers.filter((l) => l.feedForward?.expertsIn);
        const expertBytes = moeLayers.reduce((n, l) => n + (l.feedForward!.expertsIn as GpuWeight).bytes + (l.feedForward!.expertsOut as GpuWeight).bytes, 0);
        const rest = weightBytes(w) - expertBytes - (w.embed === w.lmHead ? 0 : w.embed.bytes - w.embed.bytes / cfg.vocabSize);
        assert.ok(Math.abs(pt.decodeWeightBytes - (rest + (expertBytes * ff.topK) / ff.numExperts)) < 1, 'experts count top-k of E');
      }
      if (cfg.architecture === 'granitemoehybrid' && !cfg.feedForward?.numExperts) {
        const m = cfg.mamba!;
        const ff = cfg.feedForward!;
        const attn = a!.numHeads * a!.headDim * H + 2 * a!.numKvHeads * a!.headDim * H + a!.numHeads * a!.headDim * H;
        const macs = cfg.vocabSize * H + kinds('mamba') * (H * m.inProjDim + m.intermediate * H) + kinds('attention') * attn + cfg.numLayers * 3 * H * ff.sharedIntermediate;
        assert.equal(pt.matmulFlops, 2 * macs);
      }
      model.dispose();
    });
  }

  test('tiny: the matmul FLOPs of a dense granitemoehybrid, in closed form', () => {
    const cfg = configFromJson(resolveShapes('tiny', REPO)[0].raw);
    const w = randomWeights(gpu, cfg, 'BF16');
    // 2 Mamba-2 (in 584 x 128, out 128 x 256), 2 attention (q/k/v/o 8 x 32 x 128 + 4 x 32 x 128), 4 SwiGLU (3 x 128 x 256), lm_head 512 x 128
    assert.equal(perTokenCounts(cfg, w).matmulFlops, 2 * (512 * 128 + 2 * (584 * 128 + 128 * 256) + 2 * (8 * 32 * 128 + 4 * 32 * 128) + 4 * 3 * 128 * 256));
  });
});
