// Snapshots: round trip, every kind of bad file rejected with its reason, K/V blocks read lazily and checked
// one by one (a damaged block is found when read, and the file set aside), and a save killed midway (a real
// child process, SIGKILL) never damages the previous snapshot.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ModelState } from '../../src/engine/model';
import { SNAPSHOT_FORMAT_VERSION, SnapshotError, loadSnapshot, saveSnapshot, type Snapshot } from '../../src/engine/memory/snapshot';
import { BLOCK_ROWS, HostBudget, KvBlockStore, readDense } from '../../src/engine/memory/kvBlocks';

function state(position: number, seed: number, kvRows = position, big = 1): ModelState {
  const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed + k));
  return {
    position,
    mamba: [0, 1, 2].map((l) => ({ conv: fill(24 * big, l), ssm: fill(512 * big, l + 10) })),
    kv: [0].map((l) => ({ k: fill(kvRows * 16, l + 20), v: fill(kvRows * 16, l + 30) })),
  };
}

// Child mode: write large snapshots to the given path in a loop until killed.
if (process.env.SW_SNAPSHOT_CHILD) {
  const file = process.env.SW_SNAPSHOT_CHILD;
  const big = state(4096, 99, 4096, 2000);
  process.stdout.write('ready\n');
  for (;;) saveSnapshot(file, 'model-a', big, { files: ['b'] });
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
    assert.equal(fs.readdirSync(path.dirname(file)).length, 1, 'no temp files left behind');
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
    fs.writeFileSync(file, 'not a snapshot at all');
    rejects(file, 'model-a', 'corrupt');
    fs.rmSync(file);
    rejects(file, 'model-a', 'missing');
  });

  test('opening reads the summaries, not the K/V blocks; a damaged block is found when read and the file set aside', () => {
    const file = tmpFile();
    const rows = 40 * BLOCK_ROWS + 5;
    const s = state(rows, 4);
    saveSnapshot(file, 'model-a', s, {});
    const size = fs.statSync(file).size;
    const back = loadSnapshot(file, 'model-a');
    const kvBytes = 2 * rows * 16 * 4;
    assert.ok(back.bytesRead < size - kvBytes + 4096, `read ${back.bytesRead} of ${size} bytes to open`);
    // A store adopting the source reads blocks only when asked, and gives the same rows.
    const store = new KvBlockStore(16, new HostBudget(Infinity), null);
    store.adopt(back.state.kvBlocks![0], rows - 3);
    assert.deepEqual(store.bytes().host, 2 * BLOCK_ROWS * 16 * 4, 'only the cut last block is in memory');
    assert.deepEqual(store.dense(), { k: s.kv[0].k.subarray(0, (rows - 3) * 16), v: s.kv[0].v.subarray(0, (rows - 3) * 16) });
    // Appending after an adopted state continues it exactly.
    store.append(s.kv[0].k.subarray((rows - 3) * 16), s.kv[0].v.subarray((rows - 3) * 16));
    assert.deepEqual(store.dense(), s.kv[0]);

    // Damage block 7's values: opening still works (blocks are not read), reading block 7 fails clearly.
    const bytes = fs.readFileSync(file);
    bytes[16 + (2 * 7 + 1) * BLOCK_ROWS * 16 * 4 + 100] ^= 0x40;
    fs.writeFileSync(file, bytes);
    const hurt = loadSnapshot(file, 'model-a');
    const src = hurt.state.kvBlocks![0];
    assert.deepEqual(src.block(6).k, s.kv[0].k.slice(6 * BLOCK_ROWS * 16, 7 * BLOCK_ROWS * 16));
    assert.throws(() => src.block(7), (e: unknown) => e instanceof SnapshotError && e.kind === 'corrupt' && /block 7 of attention layer 0/.test(e.message));
    assert.ok(!fs.existsSync(file) && fs.existsSync(`${file}.corrupt`), 'the damaged snapshot is set aside');
    rejects(file, 'model-a', 'missing');
  });

  test('a save killed midway leaves the previous snapshot valid', async () => {
    const file = tmpFile();
    const previous = state(12, 3);
    saveSnapshot(file, 'model-a', previous, { files: ['a'] });
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [__filename], { env: { ...process.env, SW_SNAPSHOT_CHILD: file }, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 150 + 120 * round)); // inside a ~66 MB write
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // Either the old snapshot or a complete new one: never a broken file.
      const back = loadSnapshot<{ files: string[] }>(file, 'model-a');
      assert.ok(back.state.position === 12 || back.state.position === 4096);
      if (back.state.position === 12) assert.deepEqual(dense(back), previous);
    }
    // Temp files of killed writers are never mistaken for the snapshot, and the next save clears them.
    for (const f of fs.readdirSync(path.dirname(file))) if (f !== path.basename(file)) assert.match(f, /\.tmp$/);
    saveSnapshot(file, 'model-a', previous, { files: ['a'] });
    assert.deepEqual(fs.readdirSync(path.dirname(file)), [path.basename(file)]);
  });
});
