// The work per decoded token at a long context, counted, not timed: K/V blocks paged in, blocks scored on the
// host, host round trips (buffers mapped for reading) and bytes read back. A decode step over a sparse context
// may cost a few round trips and a few bytes per block, but nothing that grows with the context beyond the block
// scores (4 bytes a block). The guard behind it: decode at 1M tokens fell from ~62 to ~7 tok/s on an H200 when
// every step's selection scored every block on the host (the summaries' reserve was sized for exactly 2^20 tokens,
// and the branch and bound over group summaries visited nearly all groups).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { configFromJson } from '../../src/engine/config';
import { Gpu } from '../../src/engine/gpu/device';
import { summaryReserve } from '../../src/engine/gpu/kvPager';
import { GpuModel } from '../../src/engine/gpu/model';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { openModelFolder } from '../../src/engine/model';
import { rng } from '../../src/engine/sampling';
import { FIXTURES, REPO } from './helpers';

const CHUNK = 256;
const SLOTS = 4;

describe('work per decoded token at a long context', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  for (const grouped of [false, true]) {
    test(`${grouped ? 'summaries of groups of blocks (past the reserve)' : 'a summary per block'}: bounded paging, host scoring and read-backs per token`, async () => {
      const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
      const cfg = folder.config;
      const a = cfg.attention!;
      const kd = a.numKvHeads * a.headDim;
      const nAttn = cfg.layerKinds.filter((k) => k === 'attention').length;
      const blocks = 160;
      // Grouped: summaries reserved for 16 blocks, so that 160 blocks go 16 to a GPU summary.
      const kv = { gpuBudgetBytes: 64 << 20, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: SLOTS, ...(grouped ? { maxContextTokens: 16 * BLOCK_ROWS } : {}) };
      const model = await GpuModel.load(folder, { gpu, prefillChunk: CHUNK, kv });
      const random = rng(17);
      const ids = Array.from({ length: blocks * BLOCK_ROWS + 7 }, () => Math.floor(random() * cfg.vocabSize));
      await model.forward(ids, { skipLogits: true });
      await model.decodeGreedy(2, 1); // settles the paging of the prompt's last chunk
      const w0 = model.workCounters();
      const n = 24;
      await model.decodeGreedy(n, 5);
      const w1 = model.workCounters();
      const per = (k: keyof typeof w0) => (w1[k] - w0[k]) / n;
      const group = grouped ? 16 : 1;
      const entries = Math.ceil((blocks + 1) / group);
      console.log(
        `${grouped ? `groups of ${group}` : 'per block'}: ${per('blocksPaged').toFixed(2)} blocks paged, ${per('hostScoredBlocks').toFixed(1)} scored on the host, ` +
          `${per('readBackMaps').toFixed(2)} read-backs, ${per('readBackBytes').toFixed(0)} bytes read back per token`,
      );
      assert.ok(per('blocksPaged') <= nAttn * SLOTS, `blocks paged per token: ${per('blocksPaged')}`);
      // One read-back for the logits, then per attention layer the block scores (and the query range when grouped),
      // and the token's K/V rows on their way to the host stores.
      assert.ok(per('readBackMaps') <= 2 + nAttn * (grouped ? 2 : 1), `read-backs per token: ${per('readBackMaps')}`);
      const bytes = 4 * cfg.vocabSize + nAttn * (4 * entries + 2 * kd * 4) + nAttn * (2 * kd * 4 + 2 * 2 * kd * 4);
      assert.ok(per('readBackBytes') <= bytes, `bytes read back per token: ${per('readBackBytes')} (bound ${bytes})`);
      if (grouped) {
        // At most 16 blocks per slot once the selection is full, plus the groups that filled it.
        const cap = 16 * SLOTS + (SLOTS + 1) * group;
        assert.ok(per('hostScoredBlocks') > 0, 'group summaries are refined on the host');
        assert.ok(per('hostScoredBlocks') <= nAttn * cap, `blocks scored on the host per token: ${per('hostScoredBlocks')} (bound ${nAttn * cap})`);
        assert.ok(model.kvPaging().groupedSelections > 0);
      } else assert.equal(per('hostScoredBlocks'), 0, 'every block is scored on the GPU');
      model.dispose();
    });
  }

  test('the default summaries\' reserve scores every block on the GPU far past 1M tokens (350m shape, 1 GiB)', () => {
    const cfg = configFromJson(JSON.parse(fs.readFileSync(path.join(REPO, 'bench', 'shapes', 'granite-4.0-h-350m.json'), 'utf8')));
    const a = cfg.attention!;
    const kd = a.numKvHeads * a.headDim;
    const nAttn = cfg.layerKinds.filter((k) => k === 'attention').length;
    const perBlock = nAttn * (2 * kd + 1) * 4;
    for (const chunk of [2048, 8192]) {
      const reserve = summaryReserve(kd, nAttn, chunk, { gpuBudgetBytes: 2 ** 30 }, 2 ** 31 - 4);
      const tokens = Math.floor(reserve / perBlock) * BLOCK_ROWS;
      assert.ok(tokens >= 2_000_000, `chunk ${chunk}: summaries for ${tokens} tokens`);
      assert.ok(reserve <= 2 ** 28, 'at most a quarter of the budget');
    }
    // An explicit context is honoured, and one layer's summaries never exceed the adapter's largest binding.
    assert.equal(summaryReserve(kd, nAttn, 2048, { gpuBudgetBytes: 2 ** 30, maxContextTokens: 4096 }, 2 ** 31), nAttn * 64 * (2 * kd + 1) * 4);
    const small = summaryReserve(kd, nAttn, 2048, { gpuBudgetBytes: 2 ** 34 }, 2 ** 20);
    assert.ok(small / nAttn / ((2 * kd + 1) * 4) <= 2 ** 20 / (2 * kd * 4));
  });
});
