// Decoding with the token choice on the GPU (GpuModel.decodeStream, the path generate / ask / completions take):
// the ids equal those chosen on the CPU from read-back logits, a stop leaves the state where it would be token
// by token (with steps queued ahead: undone, or left to the caller's rollback), sampling on the GPU is seeded,
// and a context that outgrows the sparse KV working rows mid-stream goes on token by token with the same ids.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'path';
import { onFork } from '../../src/engine/ask';
import { generateTokens } from '../../src/engine/generate';
import { DeviceLostError } from '../../src/engine/errors';
import { Gpu } from '../../src/engine/gpu/device';
import { GpuModel, chunkLengths } from '../../src/engine/gpu/model';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { openModelFolder } from '../../src/engine/model';
import { rng, sampleToken } from '../../src/engine/sampling';
import { FIXTURES, loadExpected, relError, withEnv } from './helpers';

/** Greedy ids token by token the old way: logits read back, argmax on the CPU. Feeds `first` and n - 1 more. */
async function byForward(model: GpuModel, first: number, n: number): Promise<number[]> {
  const out: number[] = [];
  let id = first;
  for (let i = 0; i < n; i++) {
    id = sampleToken(await model.forward([id]), { greedy: true }, () => 0);
    out.push(id);
  }
  return out;
}

async function take(stream: AsyncGenerator<number>, k: number): Promise<number[]> {
  const got: number[] = [];
  for await (const id of stream) {
    got.push(id);
    if (got.length === k) break;
  }
  return got;
}

describe('decode with the token choice on the GPU', () => {
  let gpu: Gpu;
  before(async () => {
    gpu = await Gpu.create();
  });
  after(() => gpu?.destroy());

  for (const name of ['granite-moe-rope', 'zamba2', 'mamba1-pure']) {
    test(`${name}: greedy ids equal the CPU's choice from read-back logits, with 0 and 2 steps ahead`, async () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      const prompt = Array.from({ length: 13 }, (_, i) => (i * 37 + 5) % folder.config.vocabSize);
      const ref = await GpuModel.load(folder, { gpu });
      await ref.forward(prompt, { skipLogits: true });
      const want = await byForward(ref, 3, 20);
      for (const lookahead of [0, 2]) {
        const m = await GpuModel.load(folder, { gpu });
        await m.forward(prompt, { skipLogits: true });
        const got = await take(m.decodeStream(3, { greedy: true, maxNewTokens: 20, lookahead }), 20);
        assert.deepEqual(got, want, `lookahead ${lookahead}`);
        // Run to the limit: the last id is not fed, as token by token.
        assert.equal(m.position, prompt.length + 20);
        m.dispose();
      }
      ref.dispose();
    });
  }

  for (const name of ['granite-moe-rope', 'bamba', 'nemotron-h', 'falcon-h1', 'zamba2']) {
    test(`${name}: the decode step's conv runs in the in_proj GEMV (a dispatch fewer per Mamba-2 layer), logits unchanged`, async () => {
      const folder = openModelFolder(path.join(FIXTURES, name));
      const exp = loadExpected(name);
      const run = async (g: Gpu) => {
        const m = await GpuModel.load(folder, { gpu: g });
        const rows: number[] = [...(await m.forward(exp.ids.slice(0, exp.decode_from)))];
        for (const id of exp.ids.slice(exp.decode_from)) rows.push(...(await m.forward([id])));
        const dispatches = m.dispatchesPerToken();
        m.dispose();
        return { rows, dispatches };
      };
      assert.ok(gpu.gemvConv, 'this adapter has the 9 storage bindings per stage the conv epilogue needs');
      const fused = await run(gpu);
      const plain = await withEnv({ SIDEWINDER_GEMV_CONV: '0' }, async () => {
        const g = await Gpu.create();
        try {
          assert.equal(g.gemvConv, false);
          return await run(g);
        } finally {
          g.destroy();
        }
      });
      const mamba2 = folder.config.layerKinds.filter((k) => k === 'mamba' || k === 'parallel' || k === 'hybrid').length;
      assert.ok(mamba2 > 0);
      assert.equal(plain.dispatches - fused.dispatches, mamba2, 'one causalConv1d dispatch fewer per Mamba-2 layer');
      assert.ok(relError(fused.rows, plain.rows) < 1e-6, `decode logits off by ${relError(fused.rows, plain.rows)}`);
      assert.ok(relError(fused.rows, exp.decode_logits) < 1e-3, `against transformers: ${relError(fused.rows, exp.decode_logits)}`);
    });
  }

  test('prompts of any length run in a bounded set of pass sizes (no new pass recorded per length), same logits', async () => {
    for (const [n, chunk] of [[600, 512], [1, 512], [15, 512], [16, 512], [1023, 512], [5000, 2048], [77, 64], [300, 300]] as const) {
      const parts = chunkLengths(n, chunk);
      assert.equal(parts.reduce((a, b) => a + b, 0), n, `${n} in chunks of ${chunk}: ${parts}`);
      for (const p of parts) assert.ok(p === chunk || p < 16 || (p < chunk && (p & (p - 1)) === 0), `${n}/${chunk}: size ${p}`);
    }
    assert.deepEqual(chunkLengths(600, 512), [512, 64, 16, 8]);
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const V = folder.config.vocabSize;
    const random = rng(5);
    const cut = await GpuModel.load(folder, { gpu, prefillChunk: 64 });
    const whole = await GpuModel.load(folder, { gpu, prefillChunk: 1024 });
    const passes = () => (cut as unknown as { passes: Map<string, unknown> }).passes.size;
    let recorded = 0;
    for (const n of [100, 117, 93, 126, 101, 99]) {
      const ids = Array.from({ length: n }, () => Math.floor(random() * V));
      const mark = await cut.fork();
      const markWhole = await whole.fork();
      const a = await cut.forward(ids);
      const b = await whole.forward(ids);
      assert.ok(relError(a, b) < 1e-4, `${n} tokens: cut into ${chunkLengths(n, 64)} vs one pass: ${relError(a, b)}`);
      await cut.rollback(mark);
      await whole.rollback(markWhole);
      mark.release();
      markWhole.release();
      if (n === 100) recorded = passes();
    }
    // After the first prompts every size is recorded: the later ones (other lengths) add at most the small residual sizes.
    assert.ok(passes() <= recorded + 6, `${passes()} passes after six lengths (${recorded} after the first)`);
    cut.dispose();
    whole.dispose();
  });

  test('a stop mid-stream leaves the state where token-by-token decoding would (steps ahead undone)', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const prompt = Array.from({ length: 9 }, (_, i) => (i * 11 + 2) % folder.config.vocabSize);
    const ref = await GpuModel.load(folder, { gpu });
    await ref.forward(prompt, { skipLogits: true });
    const seq = await byForward(ref, 4, 6); // feeds 4 and the first five chosen ids
    const wantNext = await ref.forward([seq[5]]);
    for (const lookahead of [0, 3]) {
      const m = await GpuModel.load(folder, { gpu });
      await m.forward(prompt, { skipLogits: true });
      const got = await take(m.decodeStream(4, { greedy: true, maxNewTokens: 40, lookahead }), 6);
      assert.deepEqual(got, seq);
      assert.equal(m.position, prompt.length + 6, `lookahead ${lookahead}: position after the stop`);
      const next = await m.forward([got[5]]);
      const err = relError(next, wantNext);
      // lookahead 0 ran exactly the same steps; with steps undone the kept ids were fed again as one prefill chunk.
      assert.ok(err < (lookahead === 0 ? 1e-7 : 1e-4), `lookahead ${lookahead}: next logits off by ${err}`);
      m.dispose();
    }
    ref.dispose();
  });

  test('onFork (the state is rolled back anyway): steps run ahead are left, the fork restores the state', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const prompt = Array.from({ length: 9 }, (_, i) => (i * 5 + 1) % folder.config.vocabSize);
    const m = await GpuModel.load(folder, { gpu });
    await m.forward(prompt.slice(0, 5), { skipLogits: true });
    const before = await m.fork();
    const want: number[] = [];
    for await (const id of generateTokens(m, prompt.slice(5), { greedy: true, maxNewTokens: 12 })) want.push(id);
    await m.rollback(before);
    const wantAfter = await m.forward([7]);
    await m.rollback(before);
    const got: number[] = [];
    for await (const id of onFork(m, prompt.slice(5), { greedy: true, maxNewTokens: 12, stopIds: [want[6]] })) got.push(id);
    assert.deepEqual(got, want.slice(0, want.indexOf(want[6]) + 1), 'ids up to the stop id');
    assert.equal(m.position, 5);
    assert.ok(relError(await m.forward([7]), wantAfter) < 1e-7, 'the fork restored the state');
    before.release();
    m.dispose();
  });

  test('sampling on the GPU: seeded, reproducible, a near-zero temperature is greedy', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const prompt = [1, 2, 3, 4, 5];
    const run = async (opts: { temperature: number; topP?: number; seed?: number; greedy?: boolean }) => {
      const m = await GpuModel.load(folder, { gpu });
      await m.forward(prompt, { skipLogits: true });
      const ids = await take(m.decodeStream(9, { maxNewTokens: 24, lookahead: 1, ...opts }), 24);
      m.dispose();
      return ids;
    };
    const a = await run({ temperature: 1.5, seed: 7 });
    assert.deepEqual(await run({ temperature: 1.5, seed: 7 }), a, 'same seed, same ids');
    const b = await run({ temperature: 1.5, seed: 8 });
    assert.notDeepEqual(b, a, 'another seed draws other ids (random weights: a flat distribution)');
    assert.ok(a.every((id) => Number.isInteger(id) && id >= 0 && id < folder.config.vocabSize));
    assert.ok(new Set(a).size > 4, `a temperature of 1.5 over random weights spreads: ${a}`);
    assert.deepEqual(await run({ temperature: 1e-5, topP: 1 }), await run({ temperature: 0, greedy: true }));
    assert.deepEqual(await run({ temperature: 1.5, topP: 1e-6, seed: 3 }), await run({ temperature: 0, greedy: true }), 'a tiny nucleus keeps the argmax');
  });

  test('a device lost mid-stream: the stream rejects with DeviceLostError (no hang), with steps queued ahead', async () => {
    const own = await Gpu.create();
    const folder = openModelFolder(path.join(FIXTURES, 'granite-moe-rope'));
    const m = await GpuModel.load(folder, { gpu: own });
    await m.forward([1, 2, 3, 4], { skipLogits: true });
    const got: number[] = [];
    const run = (async () => {
      for await (const id of m.decodeStream(5, { greedy: true, maxNewTokens: 200, lookahead: 2, discardsState: true })) {
        got.push(id);
        if (got.length === 3) own.device.destroy(); // as on a driver reset, under the running stream
      }
    })();
    await assert.rejects(run, DeviceLostError);
    assert.ok(got.length >= 3 && got.length < 200, `${got.length} ids before the loss was reported`);
    own.destroy();
  });

  test('sparse KV: a stream that outgrows the working rows goes on token by token with the same ids', async () => {
    const folder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
    const chunk = 64;
    const kv = { gpuBudgetBytes: 64 << 20, sinkBlocks: 1, recentBlocks: 2, attentionBlocks: 4 };
    const random = rng(3);
    const load = () => GpuModel.load(folder, { gpu, prefillChunk: chunk, kv });
    const ref = await load();
    // The slots for the selected blocks and the tail: the prompt stops a few tokens short of them.
    const working = (ref as unknown as { sparseKv: { workingRows: number } }).sparseKv.workingRows;
    assert.ok(working >= 4 * BLOCK_ROWS && working < 64 * BLOCK_ROWS, `working rows ${working}`);
    const ids = Array.from({ length: working - 5 }, () => Math.floor(random() * folder.config.vocabSize));
    await ref.forward(ids, { skipLogits: true });
    const want = await byForward(ref, 2, 12);
    assert.equal(ref.attendsSparsely?.(), true, 'the reference went past the working rows');
    const m = await load();
    await m.forward(ids, { skipLogits: true });
    const got = await take(m.decodeStream(2, { greedy: true, maxNewTokens: 12, lookahead: 2 }), 12);
    assert.deepEqual(got, want);
    assert.equal(m.attendsSparsely?.(), true);
    ref.dispose();
    m.dispose();
  });
});
