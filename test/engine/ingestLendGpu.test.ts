// On WebGPU with sparse K/V (lavapipe): an ingest that lends its state to completions at every yield point ends in
// exactly the state of one that does not. Each completion forks the state between two chunks while the previous
// chunk's K/V copy-out may still be in flight (and its blocks forwarded on the GPU), runs on it, and rolls back;
// the chunks that follow must find every row where it was.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onFork } from '../../src/engine/ask';
import { Gpu } from '../../src/engine/gpu/device';
import { GpuModel } from '../../src/engine/gpu/model';
import { WorkspaceIngest } from '../../src/engine/ingest';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { loadSnapshot, saveSnapshot, saveSnapshotLending, snapshotBlockFile } from '../../src/engine/memory/snapshot';
import { openModelFolder } from '../../src/engine/model';
import { FIXTURES, relError } from './helpers';

const PROBE = [5, 17, 42];

function makeWorkspace(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-lend-'));
  const t0 = Date.now() / 1000 - 1000;
  for (let i = 0; i < 6; i++) {
    const p = path.join(root, `m${i}.py`);
    fs.writeFileSync(p, `def g${i}(x):\n    return x * ${i} - ${i + 3}  # module ${i}\n`.repeat(10 + 3 * i));
    fs.utimesSync(p, t0 + i, t0 + i);
  }
  return root;
}

describe('ingest lending its state on WebGPU with sparse K/V', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  test('completions at every chunk boundary leave the ingested state exactly as without them', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const tok = folder.tokenizer!;
    const root = makeWorkspace();
    // A budget of 4 slots of 64 rows: the context is sparse (paged, selected) after ~6 blocks.
    const kv = { gpuBudgetBytes: 8 << 20, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 4 };
    const run = async (lend: boolean) => {
      const model = await GpuModel.load(folder, { gpu, prefillChunk: 192, kv });
      const ingest = new WorkspaceIngest(model, tok, { workspace: root, cacheDir: null, modelId: 'fixture' });
      let lent = 0;
      let chunks = 0;
      const r = await ingest.sync({
        // Chunks of changing sizes (as while the user types), the same sequence in both runs.
        chunkTokens: () => [64, 128, 192][chunks++ % 3],
        yieldPoint: lend
          ? async () => {
              const at = model.position;
              const out: number[] = [];
              for await (const id of onFork(model, tok.encode('def g2(x):\n    return'), { maxNewTokens: 4, greedy: true })) out.push(id);
              assert.equal(out.length, 4);
              assert.equal(model.position, at, 'rolled back');
              lent++;
            }
          : undefined,
      });
      const mark = await model.fork();
      const probe = await model.forward(PROBE);
      await model.rollback(mark);
      const sparse = model.attendsSparsely();
      const paged = model.kvPaging();
      model.dispose();
      return { probe, tokens: r.tokens, lent, sparse, paged };
    };
    const plain = await run(false);
    const lent = await run(true);
    assert.ok(plain.tokens > 8 * BLOCK_ROWS, `${plain.tokens} tokens: past the dense limit`);
    assert.ok(plain.sparse && lent.sparse, 'attention ran on a selection of blocks');
    assert.ok(plain.paged.fromHost > 0, 'blocks were paged in from the host stores');
    assert.ok(lent.lent > 10, `${lent.lent} completions lent the state`);
    assert.equal(lent.tokens, plain.tokens);
    const err = relError(lent.probe, plain.probe);
    console.log(`${plain.tokens} tokens, ${lent.lent} completions lent the state; probe logits differ by ${err.toExponential(2)}`);
    assert.ok(err < 1e-5, `the state after lending is the state without: ${err}`);
  });

  test('a snapshot saved in pieces with completions between them is the snapshot saved at once', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const tok = folder.tokenizer!;
    const root = makeWorkspace();
    const kv = { gpuBudgetBytes: 8 << 20, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 4 };
    const model = await GpuModel.load(folder, { gpu, prefillChunk: 192, kv });
    const ingest = new WorkspaceIngest(model, tok, { workspace: root, cacheDir: null, modelId: 'fixture' });
    await ingest.sync();
    // End the state inside a block, so that completions write into the partial block the save reads.
    await model.forward([7, 8, 9, 10, 11]);
    assert.ok(model.position % BLOCK_ROWS !== 0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-lend-save-'));
    const plainFile = path.join(dir, 'plain', 'ws.swsnap');
    saveSnapshot(plainFile, 'm', await model.exportState({ kv: 'blocks' }), { n: 1 });
    const lentFile = path.join(dir, 'lent', 'ws.swsnap');
    let pauses = 0;
    const at = model.position;
    await saveSnapshotLending(lentFile, 'm', await model.exportState({ kv: 'blocks' }), { n: 1 }, [], async () => {
      pauses++;
      for await (const _ of onFork(model, tok.encode('def g4(x):\n    return x'), { maxNewTokens: 3, greedy: true })) void _;
      assert.equal(model.position, at);
    }, 1);
    assert.ok(pauses > 10, `${pauses} pauses, a completion in each`);
    assert.ok(fs.readFileSync(snapshotBlockFile(lentFile)).equals(fs.readFileSync(snapshotBlockFile(plainFile))), 'the same block file, byte for byte');
    const a = loadSnapshot(plainFile, 'm');
    const b = loadSnapshot(lentFile, 'm');
    assert.equal(b.state.position, a.state.position);
    const probe = async (st: typeof a.state) => {
      const m = await GpuModel.load(folder, { gpu, prefillChunk: 192, kv });
      await m.importState(st);
      const out = await m.forward(PROBE);
      m.dispose();
      return out;
    };
    assert.ok(relError(await probe(b.state), await probe(a.state)) < 1e-6, 'and it resumes the same');
    model.dispose();
  });
});
