// Every family the engine runs goes through the product's long-context path (issue 18): a workspace streamed in
// chunks (WorkspaceIngest, chunks of 37 tokens, checkpoints every 64) gives the same logits as one forward pass
// over all of it, and a fresh session resumes from the snapshot on disk with nothing re-read and the same logits
// after the state. On the CPU reference and on WebGPU (chunks of 16 tokens inside the model too), for one
// transformers fixture of each model_type (helpers.ts fixtureNames()). Families with growing K/V also run on WebGPU
// with sparse K/V under a GPU budget of a few blocks a layer (older blocks paged in from the host, Quest selection),
// against the CPU reference under the same block policy, and resume from a snapshot that holds the K/V as blocks.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CpuModel } from '../../src/engine/cpu/model';
import { Gpu } from '../../src/engine/gpu/device';
import { GpuModel } from '../../src/engine/gpu/model';
import { WorkspaceIngest } from '../../src/engine/ingest';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { openModelFolder, type LanguageModel, type ModelFolder } from '../../src/engine/model';
import { frameFile, walkWorkspace } from '../../src/workspace';
import { FIXTURES, fixtureModelType, fixtureNames, relError } from './helpers';

const PROBE = [5, 17, 42];

/** One fixture per model_type: the first by name. */
function onePerFamily(): string[] {
  const seen = new Map<string, string>();
  for (const n of fixtureNames()) if (!seen.has(fixtureModelType(n))) seen.set(fixtureModelType(n), n);
  return [...seen.values()];
}

function makeWorkspace(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-fam-ingest-'));
  const t0 = Date.now() / 1000 - 1000;
  for (let i = 0; i < 5; i++) {
    const p = path.join(root, i % 2 ? `src/m${i}.py` : `l${i}.js`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, `def f${i}(x):\n    return x * ${i}\n`.repeat(8 + 3 * i));
    fs.utimesSync(p, t0 + i * 10, t0 + i * 10);
  }
  return root;
}

async function probe(model: LanguageModel): Promise<Float32Array> {
  const mark = await model.fork();
  const out = await model.forward(PROBE);
  await model.rollback(mark);
  mark.release();
  return out;
}

/** The workspace's framed tokens in ingest order, then PROBE, in one forward pass of the CPU reference. */
async function oneShot(folder: ModelFolder, root: string): Promise<Float32Array> {
  const tok = folder.tokenizer!;
  const listing = await walkWorkspace(root);
  const ids: number[] = [];
  for (const f of listing.files) ids.push(...frameFile(f.path, fs.readFileSync(f.abs, 'utf8'), tok.special, (s) => tok.encode(s)));
  assert.ok(ids.length > 150, `the workspace spans several chunks (${ids.length} tokens)`);
  return CpuModel.load(folder).forward([...ids, ...PROBE]);
}

async function ingestAndResume(folder: ModelFolder, load: () => Promise<LanguageModel>, label: string, tol: number, reference?: (root: string) => Promise<Float32Array>): Promise<void> {
  const root = makeWorkspace();
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-fam-cache-'));
  try {
    const want = reference ? await reference(root) : await oneShot(folder, root);
    const session = async () => new WorkspaceIngest(await load(), folder.tokenizer!, { workspace: root, cacheDir: cache, modelId: label, checkpointEvery: 64, chunkTokens: 37 });
    const a = await session();
    const r1 = await a.sync();
    assert.equal(r1.resumedFromSnapshot, false);
    assert.ok(r1.snapshot && fs.existsSync(r1.snapshot), `${label}: a snapshot is saved`);
    const e1 = relError(await probe(a.model), want);
    assert.ok(e1 < tol, `${label}: chunked ingest vs one-shot prefill ${e1}`);

    const b = await session();
    const r2 = await b.sync();
    assert.equal(r2.resumedFromSnapshot, true, `${label}: resumed from the snapshot`);
    assert.equal(r2.reingestedTokens, 0, `${label}: nothing re-read`);
    assert.equal(r2.tokens, r1.tokens);
    const e2 = relError(await probe(b.model), want);
    assert.ok(e2 < tol, `${label}: after resume ${e2}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

describe('every family: chunked ingest equals one-shot prefill, a snapshot resumes exactly', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => {
    gpu?.destroy();
  });

  const names = onePerFamily();
  test('one fixture of each supported model_type', () => {
    assert.ok(names.length >= 11, `fixtures for ${names.length} model types: ${names.join(', ')}`);
  });
  for (const name of names) {
    test(`${fixtureModelType(name)} (${name}): CPU reference and WebGPU`, async () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      await ingestAndResume(folder, async () => CpuModel.load(folder), `cpu ${name}`, 1e-4);
      await ingestAndResume(folder, () => GpuModel.load(folder, { gpu, prefillChunk: 16, kvCapacity: 8 }), `webgpu ${name}`, 1e-3);
      const cfg = folder.config;
      const kvLayers = cfg.layerKinds.filter((k) => k === 'attention' || k === 'parallel' || k === 'hybrid').length;
      if (kvLayers === 0) return; // no growing K/V (Mamba only, or RecurrentGemma's window ring)
      // A GPU budget of `slots` selectable blocks a layer (as families.test.ts sizes it), chunks of 64 in the model.
      const CHUNK = 64;
      const MAX_CONTEXT = 1024;
      const slots = 4;
      const kd = cfg.attention!.numKvHeads * cfg.attention!.headDim;
      const tailBlocks = Math.ceil((BLOCK_ROWS - 1 + CHUNK) / BLOCK_ROWS);
      const budget = kvLayers * (slots + tailBlocks) * 2 * BLOCK_ROWS * kd * 4 + kvLayers * Math.ceil(MAX_CONTEXT / BLOCK_ROWS) * (2 * kd + 1) * 4 + kvLayers * 2 * kd * 4;
      const kvPolicy = { sinkBlocks: 1, recentBlocks: 2, maxBlocks: slots, denseRows: (slots + tailBlocks) * BLOCK_ROWS };
      let sparse = false;
      // The reference: the CPU under the same block policy, fed the same chunks (37 tokens) by the same ingest.
      const reference = async (root: string) => {
        const cpu = new WorkspaceIngest(CpuModel.load(folder, { kvPolicy }), folder.tokenizer!, { workspace: root, cacheDir: null, modelId: 'ref', chunkTokens: 37 });
        await cpu.sync();
        return probe(cpu.model);
      };
      await ingestAndResume(
        folder,
        async () => {
          const g = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: budget, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 1000, maxContextTokens: MAX_CONTEXT } });
          const forward = g.forward.bind(g);
          g.forward = async (ids, opts) => {
            const out = await forward(ids, opts);
            sparse ||= g.attendsSparsely();
            return out;
          };
          return g;
        },
        `webgpu sparse K/V ${name}`,
        1e-3,
        reference,
      );
      assert.ok(sparse, `${name}: the workspace outgrew the K/V working buffers (sparse attention ran)`);
    });
  }
});
