// Streaming a workspace into the model: chunked ingest equals one-shot prefill; snapshots resume exactly;
// edits re-read only from the last checkpoint before the first changed file; cancellation leaves a state
// that a later sync completes; a corrupt snapshot is reported and rebuilt; questions leave no trace.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CpuModel } from '../../src/engine/cpu/model';
import { WorkspaceIngest, type IngestOptions, type WorkspaceManifest } from '../../src/engine/ingest';
import { onFork } from '../../src/engine/ask';
import { loadSnapshot, saveSnapshot, snapshotBlockFile } from '../../src/engine/memory/snapshot';
import { openModelFolder, type ModelFolder } from '../../src/engine/model';
import { FRAME_VERSION, frameFile, walkWorkspace } from '../../src/workspace';
import { FIXTURES, relError } from './helpers';

const folder: ModelFolder = openModelFolder(path.join(FIXTURES, 'granite-dense-nope'));
const tok = folder.tokenizer!;
const PROBE = [5, 17, 42];

function makeWorkspace(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-ingest-'));
  const t0 = Date.now() / 1000 - 1000;
  for (let i = 0; i < 8; i++) {
    const p = path.join(root, i % 2 ? `src/mod${i}.py` : `lib${i}.js`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, `def f${i}(x):\n    return x * ${i} + ${i * i}  # file ${i}\n`.repeat(3 + i));
    fs.utimesSync(p, t0 + i * 10, t0 + i * 10);
  }
  fs.writeFileSync(path.join(root, '.env'), 'SECRET=1\n');
  return root;
}

/** Logits after the whole workspace (in its current ingest order) plus PROBE, computed in one forward pass. */
async function oneShot(root: string): Promise<Float32Array> {
  const listing = await walkWorkspace(root);
  const ids: number[] = [];
  for (const f of listing.files) ids.push(...frameFile(f.path, fs.readFileSync(f.abs, 'utf8'), tok.special, (s) => tok.encode(s)));
  const m = CpuModel.load(folder);
  return m.forward([...ids, ...PROBE]);
}

async function probe(ingest: WorkspaceIngest): Promise<Float32Array> {
  const mark = await ingest.model.fork();
  const out = await ingest.model.forward(PROBE);
  await ingest.model.rollback(mark);
  return out;
}

function session(root: string, cacheDir: string, extra: Partial<IngestOptions> = {}): WorkspaceIngest {
  return new WorkspaceIngest(CpuModel.load(folder), tok, { workspace: root, cacheDir, modelId: 'fixture', checkpointEvery: 64, chunkTokens: 37, ...extra });
}

describe('workspace ingest', () => {
  test('chunked ingest equals one-shot prefill; a fresh process resumes from the snapshot exactly', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const a = session(root, cache);
    const events: string[] = [];
    const r1 = await a.sync({ onProgress: (p) => events.push(p.phase) });
    assert.equal(r1.files, 8);
    assert.equal(r1.resumedFromSnapshot, false);
    assert.equal(r1.reingestedTokens, r1.tokens);
    assert.ok(r1.skipped.secret >= 1, 'the .env file is skipped as a secret');
    assert.ok(events.includes('ingesting') && events.at(-1) === 'done');
    assert.ok(r1.snapshot && fs.existsSync(r1.snapshot));
    const want = await oneShot(root);
    assert.ok(relError(await probe(a), want) < 1e-3);

    const b = session(root, cache);
    const r2 = await b.sync();
    assert.equal(r2.resumedFromSnapshot, true);
    assert.equal(r2.reingestedTokens, 0);
    assert.equal(r2.tokens, r1.tokens);
    assert.ok(relError(await probe(b), want) < 1e-6);
  });

  test('editing the last file re-reads only the tail; editing an early file restarts at a checkpoint', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const r0 = await session(root, cache).sync();
    // The most recently modified file is last in the order.
    fs.appendFileSync(path.join(root, 'src/mod7.py'), 'def g():\n    pass\n');
    const s1 = session(root, cache);
    const r1 = await s1.sync();
    assert.equal(r1.resumedFromSnapshot, true);
    assert.ok(r1.reingestedTokens > 0 && r1.reingestedTokens < r0.tokens / 2, `re-read ${r1.reingestedTokens} of ${r1.tokens}`);
    assert.ok(relError(await probe(s1), await oneShot(root)) < 1e-3);
    // An early file changes: it moves to the end, and the state restarts at the checkpoint before it.
    fs.appendFileSync(path.join(root, 'lib2.js'), '// edited\n');
    const s2 = session(root, cache);
    const r2 = await s2.sync();
    assert.equal(r2.resumedFromSnapshot, true);
    assert.ok(r2.reingestedTokens < r2.tokens, `re-read ${r2.reingestedTokens} of ${r2.tokens}`);
    assert.ok(relError(await probe(s2), await oneShot(root)) < 1e-3);
    // A deleted file.
    fs.rmSync(path.join(root, 'src/mod5.py'));
    const s3 = session(root, cache);
    const r3 = await s3.sync();
    assert.equal(r3.files, 7);
    assert.ok(relError(await probe(s3), await oneShot(root)) < 1e-3);
  });

  test('saves after an edit append only the re-read tail to the block file; an early edit compacts it; all resume exactly', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const r0 = await session(root, cache).sync();
    const blocks = snapshotBlockFile(r0.snapshot!);
    const before = fs.readFileSync(blocks);
    assert.equal(r0.save!.appendedBytes, before.length);
    // Edit the last file: the save appends the blocks from the restart point on, and leaves the rest as it was.
    fs.appendFileSync(path.join(root, 'src/mod7.py'), 'def g():\n    return 7\n');
    const s1 = session(root, cache);
    const r1 = await s1.sync();
    assert.equal(r1.resumedFromSnapshot, true);
    assert.equal(r1.save!.compacted, false);
    assert.equal(snapshotBlockFile(r1.snapshot!), blocks, 'the same block file');
    const after = fs.readFileSync(blocks);
    assert.ok(after.subarray(0, before.length).equals(before), 'the bytes already there are untouched');
    const cfg = folder.config.attention!;
    const layers = folder.config.layerKinds.filter((k) => k === 'attention').length;
    const blockBytes = 2 * 64 * cfg.numKvHeads * cfg.headDim * 4;
    const mambaBytes = r0.memory.stateBytes;
    // The tail's blocks (one more per layer: the block the restart cut), and the checkpoints made in the tail.
    const most = layers * (Math.ceil(r1.reingestedTokens / 64) + 1) * blockBytes + Math.ceil(r1.reingestedTokens / 64) * mambaBytes;
    assert.equal(after.length - before.length, r1.save!.appendedBytes);
    assert.ok(r1.save!.appendedBytes > 0 && r1.save!.appendedBytes <= most, `appended ${r1.save!.appendedBytes} bytes for ${r1.reingestedTokens} re-read tokens (at most ${most})`);
    assert.ok(r1.save!.appendedBytes < before.length / 2, `appended ${r1.save!.appendedBytes} of ${before.length}`);
    // A fresh process resumes from the incremental snapshot exactly as the session that saved it, and as an
    // uninterrupted ingest of the edited workspace.
    const want = await probe(s1);
    const s1b = session(root, cache);
    const r1b = await s1b.sync();
    assert.equal(r1b.reingestedTokens, 0);
    assert.ok(relError(await probe(s1b), want) < 1e-6);
    const whole = session(root, fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-')));
    await whole.sync();
    assert.ok(relError(await probe(whole), want) < 1e-5, `vs an uninterrupted ingest: ${relError(await probe(whole), want)}`);

    // Edit the first file: it moves to the end and nearly everything is re-read; most of the block file is no
    // longer referenced, so the save writes a new one and deletes the old.
    fs.appendFileSync(path.join(root, 'lib0.js'), '// edited\n');
    const s2 = session(root, cache);
    const r2 = await s2.sync();
    assert.equal(r2.save!.compacted, true);
    assert.notEqual(snapshotBlockFile(r2.snapshot!), blocks);
    assert.ok(!fs.existsSync(blocks), 'the old block file is deleted');
    assert.deepEqual(fs.readdirSync(path.dirname(r2.snapshot!)).sort(), [path.basename(r2.snapshot!), path.basename(snapshotBlockFile(r2.snapshot!))]);
    const want2 = await probe(s2);
    assert.ok(relError(want2, await oneShot(root)) < 1e-3);
    const s2b = session(root, cache);
    assert.equal((await s2b.sync()).reingestedTokens, 0);
    assert.ok(relError(await probe(s2b), want2) < 1e-6);
  });

  test('a missing or truncated block file is reported and the workspace re-read', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const ref = session(root, cache);
    const r0 = await ref.sync();
    const want = await probe(ref);
    const blocks = snapshotBlockFile(r0.snapshot!);
    fs.truncateSync(blocks, fs.statSync(blocks).size - 100);
    const s1 = session(root, cache);
    const r1 = await s1.sync();
    assert.equal(r1.resumedFromSnapshot, false);
    assert.match(r1.snapshotProblem ?? '', /block file is \d+ bytes, shorter .* \(truncated\)/);
    assert.equal(r1.reingestedTokens, r1.tokens);
    assert.ok(relError(await probe(s1), want) < 1e-6);
    fs.rmSync(snapshotBlockFile(r1.snapshot!));
    const r2 = await session(root, cache).sync();
    assert.equal(r2.resumedFromSnapshot, false);
    assert.match(r2.snapshotProblem ?? '', /block file .* is missing/);
    const s3 = session(root, cache);
    const r3 = await s3.sync();
    assert.equal(r3.resumedFromSnapshot, true);
    assert.ok(relError(await probe(s3), want) < 1e-6);
  });

  test('cancellation stops at a chunk; the next sync resumes and completes exactly', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const ac = new AbortController();
    let chunks = 0;
    const r1 = await session(root, cache).sync({
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === 'ingesting' && ++chunks === 5) ac.abort();
      },
    });
    assert.equal(r1.cancelled, true);
    assert.ok(r1.tokens > 0);
    const s2 = session(root, cache);
    const r2 = await s2.sync();
    assert.equal(r2.cancelled, false);
    assert.equal(r2.resumedFromSnapshot, true);
    assert.ok(r2.reingestedTokens < r2.tokens);
    assert.ok(relError(await probe(s2), await oneShot(root)) < 1e-3);
  });

  test('a corrupt snapshot is reported and rebuilt; a snapshot of another model is not used', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const r0 = await session(root, cache).sync();
    const good = fs.readFileSync(r0.snapshot!);
    const bytes = Buffer.from(good);
    bytes[bytes.length - 30] ^= 0xff; // inside the header
    fs.writeFileSync(r0.snapshot!, bytes);
    const r1 = await session(root, cache).sync();
    assert.equal(r1.resumedFromSnapshot, false);
    assert.match(r1.snapshotProblem ?? '', /checksum/);
    const r2 = await session(root, cache).sync();
    assert.equal(r2.resumedFromSnapshot, true);
    // A damaged K/V block is only found when attention reads it: the run stops with a clear error, the
    // snapshot is set aside, and the next sync reads the workspace again and answers as before.
    const ref = session(root, cache);
    await ref.sync();
    const want = await probe(ref);
    const blocks = snapshotBlockFile(r0.snapshot!);
    const damaged = Buffer.from(fs.readFileSync(blocks));
    damaged[16 + 100] ^= 0x40; // K of block 0 of the first attention layer
    fs.writeFileSync(blocks, damaged);
    const hurt = session(root, cache);
    assert.equal((await hurt.sync()).resumedFromSnapshot, true);
    await assert.rejects(probe(hurt), /corrupt \(checksum\)/);
    const healed = session(root, cache);
    const r4 = await healed.sync();
    assert.equal(r4.resumedFromSnapshot, false);
    assert.ok(relError(await probe(healed), want) < 1e-6);
    const r3 = await session(root, cache, { modelId: 'another-model' }).sync();
    assert.equal(r3.resumedFromSnapshot, false);
  });

  test('a snapshot read with an older file framing is not used: the workspace is re-read', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const r0 = await session(root, cache).sync();
    const snap = loadSnapshot<WorkspaceManifest>(r0.snapshot!, 'fixture');
    assert.equal(snap.manifest.frame, FRAME_VERSION);
    saveSnapshot(r0.snapshot!, 'fixture', snap.state, { ...snap.manifest, frame: FRAME_VERSION - 1 }, snap.checkpoints);
    const r1 = await session(root, cache).sync();
    assert.equal(r1.resumedFromSnapshot, false);
    assert.match(r1.snapshotProblem ?? '', /older file framing/);
    const r2 = await session(root, cache).sync();
    assert.equal(r2.resumedFromSnapshot, true, 'the re-read state is saved with the current framing');
  });

  test('a question on a fork leaves the workspace state untouched', async () => {
    const root = makeWorkspace();
    const s = session(root, null as unknown as string, { cacheDir: null });
    await s.sync();
    const before = await probe(s);
    const pos = s.model.position;
    const out: number[] = [];
    for await (const id of onFork(s.model, tok.encode('Question: where is f3?\nAnswer:'), { maxNewTokens: 6, greedy: true })) out.push(id);
    assert.equal(out.length, 6);
    assert.equal(s.model.position, pos);
    assert.ok(relError(await probe(s), before) < 1e-6);
  });
});

describe('ingest that lends its state out (completions while it runs)', () => {
  test('a completion at every yield point (files read, restore, each chunk, before the save) changes nothing; the state grows between them', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const s = session(root, cache);
    const positions: number[] = [];
    const prompt = tok.encode('def f3(x):\n    return');
    const r = await s.sync({
      yieldPoint: async () => {
        positions.push(s.model.position);
        const out: number[] = [];
        for await (const id of onFork(s.model, prompt, { maxNewTokens: 3, greedy: true })) out.push(id);
        assert.equal(out.length, 3);
        assert.equal(s.model.position, positions.at(-1), 'the completion rolled back');
      },
      chunkTokens: () => 29 + (positions.length % 3) * 20, // chunks of changing sizes, as while typing
    });
    assert.ok(positions.length > 8, `${positions.length} yield points`);
    assert.ok(positions.some((p) => p > 0 && p < r.tokens), 'completions ran on a partly read state');
    for (let i = 1; i < positions.length; i++) assert.ok(positions[i] >= positions[i - 1], 'the state only grows while it is lent out');
    assert.equal(positions.at(-1), r.tokens, 'the last one before the save sees the whole workspace');
    assert.ok(relError(await probe(s), await oneShot(root)) < 1e-3, 'the ingested state is exactly the workspace');
    // And the snapshot it saved resumes exactly.
    const again = session(root, cache);
    assert.equal((await again.sync()).reingestedTokens, 0);
    assert.ok(relError(await probe(again), await probe(s)) < 1e-6);
  });

  test('a sync of the state it already holds, with nothing changed, restores nothing; a change is re-read', async () => {
    const root = makeWorkspace();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cache-'));
    const s = session(root, cache);
    await s.sync();
    const want = await probe(s);
    const phases: string[] = [];
    let resets = 0;
    const reset = s.model.reset.bind(s.model);
    s.model.reset = () => (resets++, reset());
    const r = await s.sync({ stateHeld: true, onProgress: (p) => phases.push(p.phase) });
    assert.equal(resets, 0, 'the state was not reset');
    assert.ok(!phases.includes('restoring') && !phases.includes('saving'), `phases: ${phases.join(',')}`);
    assert.equal(r.reingestedTokens, 0);
    assert.equal(r.resumedFromSnapshot, true);
    assert.ok(relError(await probe(s), want) < 1e-6);
    // Held, but a file changed: the usual re-read of the tail, exact.
    fs.appendFileSync(path.join(root, 'src/mod7.py'), 'def h():\n    return 1\n');
    const r2 = await s.sync({ stateHeld: true });
    assert.ok(r2.reingestedTokens > 0);
    assert.ok(relError(await probe(s), await oneShot(root)) < 1e-3);
    // Not held (another folder ran meanwhile): restored even though nothing changed.
    phases.length = 0;
    await s.sync({ stateHeld: false, onProgress: (p) => phases.push(p.phase) });
    assert.ok(phases.includes('restoring'));
  });
});

describe('checkpoint ladder', () => {
  test('thinning keeps the count bounded, the newest checkpoints dense and older ones sparser', async () => {
    const { thinLadder } = await import('../../src/engine/ingest');
    const ladder = Array.from({ length: 100 }, (_, i) => ({ position: (i + 1) * 1000, mamba: [] }));
    thinLadder(ladder, 24);
    assert.equal(ladder.length, 24);
    const pos = ladder.map((c) => c.position);
    assert.deepEqual(pos.slice(-6), [95000, 96000, 97000, 98000, 99000, 100000]);
    const gaps = pos.slice(1).map((p, i) => p - pos[i]);
    assert.ok(gaps[0] > gaps[gaps.length - 1], `older gaps are wider: ${gaps.join(',')}`);
  });
});
