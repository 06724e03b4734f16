// Snapshots: round trip, every kind of bad file rejected with its reason (a missing or short block file too),
// K/V blocks read lazily and checked one by one (a damaged block is found when read, and the snapshot set
// aside), incremental saves (only blocks the block file lacks are appended; past half unreferenced, a new
// block file), and a save killed midway (a real child process, SIGKILL) never damages the previous snapshot.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ModelState } from '../../src/engine/model';
import { SNAPSHOT_FORMAT_VERSION, SnapshotError, loadSnapshot, modelIdentity, saveSnapshot, snapshotBlockFile, type Snapshot } from '../../src/engine/memory/snapshot';
import { BLOCK_ROWS, HostBudget, KvBlockStore, readDense, type KvBlockSource } from '../../src/engine/memory/kvBlocks';

function state(position: number, seed: number, kvRows = position, big = 1): ModelState {
  const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed + k));
  return {
    position,
    mamba: [0, 1, 2].map((l) => ({ conv: fill(24 * big, l), ssm: fill(512 * big, l + 10) })),
    kv: [0].map((l) => ({ k: fill(kvRows * 16, l + 20), v: fill(kvRows * 16, l + 30) })),
  };
}

const BLOCK_BYTES = 2 * BLOCK_ROWS * 16 * 4; // K and V of one block of state()'s K/V (16 floats a row)

/** A state restored from `back`, cut at `cut` rows and continued with the rows of `next` after it (an edit). */
function continued(back: Snapshot<unknown>, cut: number, next: ModelState): { state: ModelState; store: KvBlockStore } {
  const store = new KvBlockStore(16, new HostBudget(Infinity), null);
  store.adopt(back.state.kvBlocks![0], cut);
  store.append(next.kv[0].k.subarray(cut * 16), next.kv[0].v.subarray(cut * 16));
  return { state: { position: next.position, mamba: next.mamba, kv: [], kvBlocks: [store] }, store };
}

/** The dense state `continued` makes. */
function spliced(a: ModelState, cut: number, next: ModelState): ModelState {
  const join = (x: Float32Array, y: Float32Array) => {
    const out = y.slice();
    out.set(x.subarray(0, cut * 16));
    return out;
  };
  return { position: next.position, mamba: next.mamba, kv: [{ k: join(a.kv[0].k, next.kv[0].k), v: join(a.kv[0].v, next.kv[0].v) }] };
}

// The killed child's states: a dense one (all blocks written), and that one continued after an edit (the
// blocks before the edit referred to, the rest appended).
const CHILD_ROWS = 512 * BLOCK_ROWS;
const CHILD_CUT = CHILD_ROWS - 1000;
const childA = () => state(CHILD_ROWS, 99, CHILD_ROWS, 1000);
const childB = () => state(CHILD_ROWS + 3000, 77, CHILD_ROWS + 3000, 1000);

// Child mode: write large snapshots to the given path in a loop until killed.
if (process.env.SW_SNAPSHOT_CHILD) {
  const file = process.env.SW_SNAPSHOT_CHILD;
  const a = childA();
  const b = childB();
  process.stdout.write('ready\n');
  for (;;) {
    saveSnapshot(file, 'model-a', a, { files: ['b'] }, [{ position: 100, mamba: b.mamba }]);
    const back = loadSnapshot(file, 'model-a');
    saveSnapshot(file, 'model-a', continued(back, CHILD_CUT, b).state, { files: ['c'] }, back.checkpoints);
  }
}

/** The state as saved, with the lazily read K/V made dense for comparison. */
function dense(back: Snapshot<unknown>): ModelState {
  const st = back.state;
  return { position: st.position, mamba: st.mamba, kv: (st.kvBlocks ?? []).map((src) => readDense(src, st.position)) };
}

function tmpFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sw-snap-')), 'workspace.swsnap');
}

function rejects(file: string, modelId: string, kind: SnapshotError['kind']): void {
  assert.throws(() => loadSnapshot(file, modelId), (e: unknown) => e instanceof SnapshotError && e.kind === kind);
}

describe('snapshots', () => {
  test('round trip keeps state and manifest exactly', () => {
    const file = tmpFile();
    const s = state(37, 1);
    const ckpt = { position: 20, mamba: state(20, 5).mamba };
    saveSnapshot(file, 'model-a', s, { files: [{ path: 'a.ts', sha: 'x' }] }, [ckpt]);
    const back = loadSnapshot<{ files: { path: string }[] }>(file, 'model-a');
    assert.equal(back.state.position, 37);
    assert.deepEqual(dense(back), s);
    assert.deepEqual(back.checkpoints.map((c) => ({ position: c.position, mamba: c.mamba })), [ckpt]);
    assert.equal(back.manifest.files[0].path, 'a.ts');
    assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), [path.basename(file), path.basename(snapshotBlockFile(file))], 'the snapshot and its block file; no temp files left behind');
  });

  test('corrupt, truncated, foreign and missing snapshots are rejected with their reason', () => {
    const file = tmpFile();
    saveSnapshot(file, 'model-a', state(10, 2), {});
    const good = fs.readFileSync(file);
    rejects(file, 'model-b', 'foreign-model');
    fs.writeFileSync(file, good.subarray(0, good.length - 7));
    rejects(file, 'model-a', 'corrupt');
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3] ^= 0xff;
    fs.writeFileSync(file, flipped);
    rejects(file, 'model-a', 'corrupt');
    const version = Buffer.from(good);
    version.writeUInt32LE(SNAPSHOT_FORMAT_VERSION + 1, 8);
    fs.writeFileSync(file, version);
    rejects(file, 'model-a', 'foreign-version');
    version.writeUInt32LE(SNAPSHOT_FORMAT_VERSION - 1, 8);
    fs.writeFileSync(file, version);
    rejects(file, 'model-a', 'foreign-version');
    fs.writeFileSync(file, 'not a snapshot at all');
    rejects(file, 'model-a', 'corrupt');
    fs.rmSync(file);
    rejects(file, 'model-a', 'missing');

    // The block file: short, missing, or not a block file.
    saveSnapshot(file, 'model-a', state(5 * BLOCK_ROWS, 2), {});
    const blocks = snapshotBlockFile(file);
    const kv = fs.readFileSync(blocks);
    const reason = (re: RegExp) =>
      assert.throws(() => loadSnapshot(file, 'model-a'), (e: unknown) => e instanceof SnapshotError && e.kind === 'corrupt' && re.test(e.message));
    fs.writeFileSync(blocks, kv.subarray(0, kv.length - 1));
    reason(/block file is \d+ bytes, shorter than the \d+ it needs \(truncated\)/);
    const magic = Buffer.from(kv);
    magic[0] ^= 1;
    fs.writeFileSync(blocks, magic);
    reason(/not a Sidewinder block file/);
    fs.rmSync(blocks);
    reason(/block file .* is missing/);
    // A save after any of these starts a new block file, and the snapshot is whole again.
    saveSnapshot(file, 'model-a', state(5 * BLOCK_ROWS, 2), {});
    assert.deepEqual(dense(loadSnapshot(file, 'model-a')), state(5 * BLOCK_ROWS, 2));
  });

  test('opening reads the summaries, not the K/V blocks; a damaged block is found when read and the file set aside', () => {
    const file = tmpFile();
    const rows = 40 * BLOCK_ROWS + 5;
    const s = state(rows, 4);
    saveSnapshot(file, 'model-a', s, {});
    const back = loadSnapshot(file, 'model-a');
    assert.equal(back.blockFileBytes, 16 + 41 * BLOCK_BYTES);
    assert.ok(back.bytesRead <= back.fileBytes + 16, `read ${back.bytesRead} bytes to open a snapshot of ${back.fileBytes} (+ ${back.blockFileBytes} of blocks)`);
    // A store adopting the source reads blocks only when asked, and gives the same rows.
    const store = new KvBlockStore(16, new HostBudget(Infinity), null);
    store.adopt(back.state.kvBlocks![0], rows - 3);
    assert.deepEqual(store.bytes().host, 2 * BLOCK_ROWS * 16 * 4, 'only the cut last block is in memory');
    assert.deepEqual(store.dense(), { k: s.kv[0].k.subarray(0, (rows - 3) * 16), v: s.kv[0].v.subarray(0, (rows - 3) * 16) });
    // Appending after an adopted state continues it exactly.
    store.append(s.kv[0].k.subarray((rows - 3) * 16), s.kv[0].v.subarray((rows - 3) * 16));
    assert.deepEqual(store.dense(), s.kv[0]);

    // Damage block 7's values: opening still works (blocks are not read), reading block 7 fails clearly.
    const blocks = snapshotBlockFile(file);
    const bytes = fs.readFileSync(blocks);
    bytes[16 + (2 * 7 + 1) * BLOCK_ROWS * 16 * 4 + 100] ^= 0x40;
    fs.writeFileSync(blocks, bytes);
    const hurt = loadSnapshot(file, 'model-a');
    const src = hurt.state.kvBlocks![0];
    assert.deepEqual(src.block(6).k, s.kv[0].k.slice(6 * BLOCK_ROWS * 16, 7 * BLOCK_ROWS * 16));
    assert.throws(() => src.block(7), (e: unknown) => e instanceof SnapshotError && e.kind === 'corrupt' && /block 7 of attention layer 0/.test(e.message));
    assert.ok(!fs.existsSync(file) && fs.existsSync(`${file}.corrupt`), 'the damaged snapshot is set aside');
    rejects(file, 'model-a', 'missing');
  });

  test('an incremental save appends only the new blocks; past half unreferenced, a new block file', () => {
    const file = tmpFile();
    const rows = 40 * BLOCK_ROWS + 5;
    const a = state(rows, 4);
    const ckpt = { position: 7, mamba: state(7, 8).mamba };
    const first = saveSnapshot(file, 'model-a', a, {}, [ckpt]);
    const mambaBytes = a.mamba.reduce((n, m) => n + m.conv.byteLength + m.ssm.byteLength, 0);
    assert.equal(first.appendedBytes, 16 + 41 * BLOCK_BYTES + mambaBytes);
    const blocks = snapshotBlockFile(file);
    const before = fs.readFileSync(blocks);

    // An edit near the end: the state is restored, cut inside block 37, and continued for 200 rows.
    const cut = 37 * BLOCK_ROWS + 20;
    const b = state(rows + 200, 5);
    const back = loadSnapshot(file, 'model-a');
    const second = saveSnapshot(file, 'model-a', continued(back, cut, b).state, {}, back.checkpoints);
    const newBlocks = Math.ceil((rows + 200) / BLOCK_ROWS) - 37; // the cut block and the ones after it
    assert.equal(second.compacted, false);
    assert.equal(snapshotBlockFile(file), blocks, 'the same block file');
    assert.equal(second.appendedBytes, newBlocks * BLOCK_BYTES, 'only the blocks from the edit on are written (the checkpoint is referred to)');
    const after = fs.readFileSync(blocks);
    assert.equal(after.length, before.length + newBlocks * BLOCK_BYTES);
    assert.ok(after.subarray(0, before.length).equals(before), 'the bytes already there are untouched');
    const again = loadSnapshot(file, 'model-a');
    assert.deepEqual(dense(again), spliced(a, cut, b));
    assert.deepEqual(again.checkpoints[0].mamba, ckpt.mamba);

    // An edit near the start leaves most of the block file unreferenced: the save writes a new one.
    const c = state(rows + 300, 6);
    const third = saveSnapshot(file, 'model-a', continued(again, 2 * BLOCK_ROWS, c).state, {}, again.checkpoints);
    assert.equal(third.compacted, true);
    assert.notEqual(snapshotBlockFile(file), blocks);
    assert.ok(!fs.existsSync(blocks), 'the old block file is deleted after the switch');
    assert.equal(third.blockFileBytes, 16 + Math.ceil((rows + 300) / BLOCK_ROWS) * BLOCK_BYTES + mambaBytes, 'only referenced parts are in the new file');
    const last = loadSnapshot(file, 'model-a');
    assert.deepEqual(dense(last), spliced(spliced(a, cut, b), 2 * BLOCK_ROWS, c));
    assert.deepEqual(last.checkpoints[0].mamba, ckpt.mamba);
    // `again` still reads its blocks from the deleted file (it is open).
    assert.deepEqual(dense(again), spliced(a, cut, b));
  });

  test('a save that fails midway leaves the previous snapshot and its block file as they were', () => {
    const file = tmpFile();
    const a = state(10 * BLOCK_ROWS, 4);
    saveSnapshot(file, 'model-a', a, {});
    const blocks = fs.readFileSync(snapshotBlockFile(file));
    const back = loadSnapshot(file, 'model-a');
    const { store } = continued(back, 5 * BLOCK_ROWS, state(12 * BLOCK_ROWS, 5));
    const failing: KvBlockSource = {
      rowLen: 16,
      length: store.length,
      block: (b) => {
        if (b === 8) throw new Error('disk gone');
        return store.block(b);
      },
      summary: (b) => store.summary(b),
      stored: (b) => store.stored(b),
    };
    assert.throws(() => saveSnapshot(file, 'model-a', { position: 12 * BLOCK_ROWS, mamba: a.mamba, kv: [], kvBlocks: [failing] }, {}), /disk gone/);
    assert.deepEqual(dense(loadSnapshot(file, 'model-a')), a);
    assert.ok(fs.readFileSync(snapshotBlockFile(file)).subarray(0, blocks.length).equals(blocks), 'the block file is only appended to');
    assert.ok(!fs.existsSync(`${file}.lock`), 'the lock is released');
  });

  test('a save killed midway leaves the previous snapshot valid', async () => {
    const file = tmpFile();
    const previous = state(12, 3);
    saveSnapshot(file, 'model-a', previous, { files: ['a'] });
    const a = childA();
    const known = new Map([
      [12, previous],
      [CHILD_ROWS, a],
      [CHILD_ROWS + 3000, spliced(a, CHILD_CUT, childB())],
    ]);
    const seen = new Set<number>();
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, [__filename], { env: { ...process.env, SW_SNAPSHOT_CHILD: file }, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 60 + 53 * round)); // inside a save (4 MB of blocks, 6.5 MB of Mamba state)
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // Either the old snapshot or a complete new one, every block intact: never a broken file.
      const back = loadSnapshot<{ files: string[] }>(file, 'model-a');
      const want = known.get(back.state.position);
      assert.ok(want, `position ${back.state.position}`);
      const got = dense(back);
      const same = (x: Float32Array, y: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
      assert.ok(same(got.kv[0].k, want.kv[0].k) && same(got.kv[0].v, want.kv[0].v), 'K/V as saved');
      assert.ok(got.mamba.every((m, i) => same(m.conv, want.mamba[i].conv) && same(m.ssm, want.mamba[i].ssm)), 'Mamba state as saved');
      seen.add(back.state.position);
    }
    console.log(`killed saves left snapshots at positions ${[...seen].join(', ')}`);
    // Temp files, block files and locks of killed writers are never mistaken for the snapshot, and the next
    // save clears them.
    for (const f of fs.readdirSync(path.dirname(file))) if (f !== path.basename(file)) assert.match(f, /\.tmp$|\.kv$|\.lock$/);
    saveSnapshot(file, 'model-a', previous, { files: ['a'] });
    assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), [path.basename(file), path.basename(snapshotBlockFile(file))]);
  });
});

describe('modelIdentity', () => {
  test('a model retrained at the same shapes (same headers, same sizes) gets another identity; a copy the same one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-identity-'));
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [65536], data_offsets: [0, 262144] } }));
    const weights = (seed: number, at: number) => {
      const data = Buffer.alloc(262144, seed);
      data[at] ^= 1; // one byte differs between the two "trainings"
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      return Buffer.concat([len, header, data]);
    };
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type":"mamba2"}');
    const ids = [0, 100, 262143].map((at) => {
      fs.writeFileSync(path.join(dir, 'model.safetensors'), weights(7, at));
      return modelIdentity(dir);
    });
    assert.notEqual(ids[0], ids[2], 'a change in the last bytes');
    assert.notEqual(ids[0], ids[1], 'a change in the first bytes');
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-identity-'));
    for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(copy, f));
    assert.equal(modelIdentity(copy), ids[2], 'the identity depends on the contents, not on the folder');
    fs.rmSync(dir, { recursive: true });
    fs.rmSync(copy, { recursive: true });
  });
});
