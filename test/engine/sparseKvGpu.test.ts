// Sparse KV on the GPU: the same selection and logits as the CPU reference's sparse attention, dense results
// when the budget holds the context, exact continuation across export/import, and the working buffers within
// the GPU budget.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CpuModel } from '../../src/engine/cpu/model';
import { Gpu } from '../../src/engine/gpu/device';
import { DeviceLostError, UsageError } from '../../src/engine/errors';
import { GpuModel } from '../../src/engine/gpu/model';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { loadSnapshot, saveSnapshot } from '../../src/engine/memory/snapshot';
import { openModelFolder } from '../../src/engine/model';
import { rng } from '../../src/engine/sampling';
import { FIXTURES, relError } from './helpers';

const CHUNK = 64;
const MAX_CONTEXT = 1024;

/**
 * A GPU budget that gives `slots` selectable blocks per attention layer with CHUNK-token chunks, with room for
 * the forwarding buffers (a chunk's rows kept on the GPU for the next one) when `forward` is set.
 */
function budgetFor(slots: number, kd: number, layers: number, forward = false): number {
  const block = 2 * BLOCK_ROWS * kd * 4;
  const tailBlocks = Math.ceil((BLOCK_ROWS - 1 + CHUNK) / BLOCK_ROWS);
  const summaries = layers * Math.ceil(MAX_CONTEXT / BLOCK_ROWS) * (2 * kd + 1) * 4;
  const queryRanges = layers * 2 * kd * 4;
  const forwardBuffers = forward ? layers * 2 * CHUNK * kd * 4 : 0;
  return layers * (slots + tailBlocks) * block + summaries + queryRanges + forwardBuffers;
}

describe('sparse KV on WebGPU', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  const cases = [
    ['granite-moe-rope', false, false],
    ['granite-dense-nope', false, false],
    ['granite-moe-rope', true, false],
    ['granite-dense-nope', false, true],
  ] as const;
  for (const [name, forward, grouped] of cases) {
    const how = forward
      ? ' (chunks forwarded on the GPU while their copy-out runs)'
      : grouped
        ? ' (a context past the summaries\' reserve: GPU summaries of groups of blocks, refined on the host)'
        : '';
    test(`${name}: GPU selection and logits follow the CPU reference; export/import continues exactly${how}`, async () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      const cfg = folder.config;
      const kd = cfg.attention!.numKvHeads * cfg.attention!.headDim;
      const layers = cfg.layerKinds.filter((k) => k === 'attention').length;
      const slots = 4;
      const budget = budgetFor(slots, kd, layers, forward);
      // Forwarding takes only budget the slots leave over: the slots are capped to leave it.
      // Grouped: summaries reserved for 4 blocks only, so that the 12 blocks of the context go 4 to a summary.
      const attentionBlocks = forward || grouped ? slots : 1000;
      const maxContextTokens = grouped ? 4 * BLOCK_ROWS : MAX_CONTEXT;
      const g = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: budget, sinkBlocks: 1, recentBlocks: 2, attentionBlocks, maxContextTokens } });
      const gpuBytesAtStart = g.memory().kvGpuBytes;
      assert.equal(g.kvForwarding, forward, 'forwarding buffers only with budget to spare beyond the slots');
      const workingRows = (slots + Math.ceil((BLOCK_ROWS - 1 + CHUNK) / BLOCK_ROWS)) * BLOCK_ROWS;
      const c = CpuModel.load(folder, { kvPolicy: { sinkBlocks: 1, recentBlocks: 2, maxBlocks: slots, denseRows: workingRows } });
      const dense = CpuModel.load(folder);
      const random = rng(5);
      const ids = Array.from({ length: 12 * BLOCK_ROWS + 21 }, () => Math.floor(random() * cfg.vocabSize));
      let worst = 0;
      let deviation = 0;
      for (let o = 0; o < ids.length; o += CHUNK) {
        const chunk = ids.slice(o, o + CHUNK);
        const a = await g.forward(chunk);
        const b = await c.forward(chunk);
        const d = await dense.forward(chunk);
        worst = Math.max(worst, relError(a, b));
        deviation = Math.max(deviation, relError(a, d));
      }
      for (let i = 0; i < 6; i++) {
        const id = Math.floor(random() * cfg.vocabSize);
        const a = await g.forward([id]);
        worst = Math.max(worst, relError(a, await c.forward([id])));
        deviation = Math.max(deviation, relError(a, await dense.forward([id])));
      }
      console.log(`${name}: ${slots} slots, GPU vs CPU sparse ${worst.toExponential(2)}, sparse vs dense ${deviation.toExponential(2)}`);
      assert.ok(worst < 1e-3, `GPU vs CPU sparse attention: ${worst}`);
      const paged = g.kvPaging();
      assert.ok(paged.fromHost > 0, 'older blocks are paged in from the host');
      assert.equal(paged.fromForward > 0, forward, 'the previous chunk\'s blocks come from the forwarding buffers');
      assert.equal(paged.groupedSelections > 0, grouped, 'selections from group summaries only past the reserve');
      const mem = g.memory();
      assert.ok(mem.kvHostBytes > 0, 'all blocks are kept on the host');
      assert.equal(mem.kvBudgetBytes, budget);
      assert.ok(mem.kvGpuBytes <= budget, `GPU KV ${mem.kvGpuBytes} within the budget ${budget}`);
      assert.equal(mem.kvGpuBytes, gpuBytesAtStart, 'the GPU K/V buffers (summaries included) never grow');

      // Export / import into a fresh model continues exactly, and so does a snapshot on disk whose K/V blocks
      // are paged in lazily (nothing but the summaries is read until attention selects a block).
      const opts = { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: budget, sinkBlocks: 1, recentBlocks: 2, attentionBlocks, maxContextTokens } };
      const state = await g.exportState();
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sw-gpu-snap-')), 'ws.swsnap');
      saveSnapshot(file, 'm', await g.exportState({ kv: 'blocks' }), {});
      const g2 = await GpuModel.load(folder, opts);
      await g2.importState(state);
      const g3 = await GpuModel.load(folder, opts);
      const snap = loadSnapshot(file, 'm');
      await g3.importState(snap.state);
      assert.equal(g3.memory().kvHostBytes, 0, 'no K/V block is read at import');
      assert.ok(g3.memory().kvDiskBytes > 0, 'the blocks are counted where they are: on disk');
      const probe = [3, 4, 5];
      const want = await g.forward(probe);
      assert.ok(relError(await g2.forward(probe), want) < 1e-5, 'after import');
      assert.ok(relError(await g3.forward(probe), want) < 1e-5, 'after a lazy snapshot import');
      g.dispose();
      g2.dispose();
      g3.dispose();
    });
  }

  test('prefill without logits (skipLogits): chunks queued back to back continue exactly, on both backends', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
    const cfg = folder.config;
    const kd = cfg.attention!.numKvHeads * cfg.attention!.headDim;
    const layers = cfg.layerKinds.filter((k) => k === 'attention').length;
    const opts = { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: budgetFor(4, kd, layers), sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 1000, maxContextTokens: MAX_CONTEXT } };
    const forwardOpts = { ...opts, kv: { ...opts.kv, gpuBudgetBytes: budgetFor(4, kd, layers, true), attentionBlocks: 4 } };
    const random = rng(13);
    const ids = Array.from({ length: 10 * BLOCK_ROWS + 7 }, () => Math.floor(random() * cfg.vocabSize));
    const probe = [7, 8, 9];
    // Reading the logits after every chunk, as before, against queuing every chunk without them (the
    // context outgrows the 4-block budget, so the queued chunks also page K/V blocks in and out). The queued
    // model forwards each chunk's rows on the GPU, so its next chunk pages them from there while the copy-out
    // to the host is still in flight (two copy-outs overlap).
    const read = await GpuModel.load(folder, opts);
    const queued = await GpuModel.load(folder, forwardOpts);
    assert.ok(!read.kvForwarding && queued.kvForwarding);
    for (let o = 0; o < ids.length; o += CHUNK) {
      const chunk = ids.slice(o, o + CHUNK);
      assert.equal((await read.forward(chunk)).length, cfg.vocabSize);
      assert.equal((await queued.forward(chunk, { skipLogits: true })).length, 0, 'no logits');
    }
    assert.equal(queued.position, ids.length);
    assert.ok(queued.kvPaging().fromForward > 0 && read.kvPaging().fromForward === 0);
    assert.ok(relError(await queued.forward(probe), await read.forward(probe)) < 1e-6, 'GPU: same continuation');
    read.dispose();
    queued.dispose();
    const cpu = CpuModel.load(folder);
    const cpuSkip = CpuModel.load(folder);
    assert.equal((await cpuSkip.forward(ids, { skipLogits: true })).length, 0);
    await cpu.forward(ids);
    assert.ok(relError(await cpuSkip.forward(probe), await cpu.forward(probe)) < 1e-6, 'CPU: same continuation');
  });

  test('chunks stored on the host in slices (between score read-backs) hold the same rows and continue the same', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
    const cfg = folder.config;
    const random = rng(17);
    const ids = Array.from({ length: 12 * BLOCK_ROWS + 5 }, () => Math.floor(random() * cfg.vocabSize));
    // 256-token chunks, 4 selected blocks (sparse from the third chunk on), forwarding on (a large budget).
    const kv = { gpuBudgetBytes: 64 << 20, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 4, maxContextTokens: MAX_CONTEXT };
    const whole = await GpuModel.load(folder, { gpu, prefillChunk: 256, kv });
    const sliced = await GpuModel.load(folder, { gpu, prefillChunk: 256, kv: { ...kv, appendRows: BLOCK_ROWS } });
    assert.ok(sliced.kvForwarding);
    for (let o = 0; o < ids.length; o += 256) {
      await whole.forward(ids.slice(o, o + 256), { skipLogits: true });
      await sliced.forward(ids.slice(o, o + 256), { skipLogits: true });
    }
    const a = await whole.exportState();
    const b = await sliced.exportState();
    assert.equal(a.kv.length, b.kv.length);
    a.kv.forEach((l, i) => {
      assert.equal(l.k.length, ids.length * cfg.attention!.numKvHeads * cfg.attention!.headDim);
      assert.deepEqual(b.kv[i].k, l.k, `layer ${i} keys`);
      assert.deepEqual(b.kv[i].v, l.v, `layer ${i} values`);
    });
    const probe = [5, 6, 7];
    assert.ok(relError(await sliced.forward(probe), await whole.forward(probe)) < 1e-6);
    whole.dispose();
    sliced.dispose();
  });

  test('a fork taken while dense, run past the working rows and rolled back, then grown sparse again: as if never forked', async () => {
    // The rollback rewrites the working rows in order (dense again); the slots then hold blocks 0, 1, ... and the
    // pager must not go on believing its older slot table when the context turns sparse again.
    const folder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
    const random = rng(4); // (a seed whose first sparse selection puts block 2 in slot 1: the stale table of the past)
    const V = folder.config.vocabSize;
    const kv = { gpuBudgetBytes: 64 << 20, sinkBlocks: 1, recentBlocks: 1, attentionBlocks: 4, maxContextTokens: MAX_CONTEXT };
    const base = Array.from({ length: 3 * BLOCK_ROWS + 9 }, () => Math.floor(random() * V)); // under 4 slots + tail
    const detour = Array.from({ length: 12 * BLOCK_ROWS }, () => Math.floor(random() * V)); // past them: sparse, selections churn
    const more = Array.from({ length: 5 * BLOCK_ROWS + 3 }, () => Math.floor(random() * V)); // past them again
    const m = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv });
    await m.forward(base, { skipLogits: true });
    assert.equal(m.attendsSparsely?.(), false);
    const mark = await m.fork();
    await m.forward(detour, { skipLogits: true });
    assert.equal(m.attendsSparsely?.(), true, 'the detour went sparse');
    for (const id of [1, 2, 3, 4, 5, 6]) await m.forward([id]);
    await m.rollback(mark);
    mark.release();
    assert.equal(m.attendsSparsely?.(), false, 'back under the working rows');
    // The working rows hold block s in slot s again: the pager's slot table must say so, or know nothing.
    const slots = (m as unknown as { sparseKv: { layers: { slotBlock: Int32Array }[] } }).sparseKv.layers.map((l) => Array.from(l.slotBlock));
    for (const table of slots) table.forEach((b, s) => assert.ok(b === -1 || b === s, `slot ${s} claims block ${b}: ${table}`));
    const ref = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv });
    await ref.forward(base, { skipLogits: true });
    for (let o = 0; o < more.length; o += CHUNK) {
      const chunk = more.slice(o, o + CHUNK);
      const err = relError(await m.forward(chunk), await ref.forward(chunk));
      assert.ok(err < 1e-5, `chunk at ${base.length + o}: logits off by ${err}`);
    }
    assert.equal(m.attendsSparsely?.(), true);
    m.dispose();
    ref.dispose();
  });

  test('prefill without logits still reports a lost device', async () => {
    const own = await Gpu.create();
    const folder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
    const m = await GpuModel.load(folder, { gpu: own, prefillChunk: CHUNK, kv: { gpuBudgetBytes: 64 << 20 } });
    await m.forward([1, 2, 3], { skipLogits: true });
    own.device.destroy(); // the device goes away under the model (as on a driver reset), not through Gpu.destroy()
    await own.lost;
    await assert.rejects(m.forward([4, 5, 6], { skipLogits: true }), DeviceLostError);
    own.destroy();
  });

  test('a budget too small for the working blocks: a clear error naming the least budget, which then works', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    let least = 0;
    await assert.rejects(GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: 4096 } }), (e: Error) => {
      assert.ok(e instanceof UsageError, `${e}`);
      const m = /at least ([\d.]+) MiB/.exec(e.message);
      assert.ok(m, e.message);
      least = Number(m[1]);
      return true;
    });
    const g = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: least * 2 ** 20 } });
    assert.ok(g.memory().kvGpuBytes <= least * 2 ** 20);
    g.dispose();
  });

  test('a budget that holds the whole context: identical to the dense engine', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const cfg = folder.config;
    const random = rng(9);
    const ids = Array.from({ length: 5 * BLOCK_ROWS + 3 }, () => Math.floor(random() * cfg.vocabSize));
    const a = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv: { gpuBudgetBytes: 64 << 20 } });
    const b = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK });
    const x = await a.forward(ids, { allLogits: true });
    const y = await b.forward(ids, { allLogits: true });
    assert.ok(relError(x, y) < 1e-6);
    a.dispose();
    b.dispose();
  });
});
