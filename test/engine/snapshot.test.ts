// Snapshots: round trip, every kind of bad file rejected with its reason, and a save killed midway (a real
// child process, SIGKILL) never damages the previous snapshot.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ModelState } from '../../src/engine/model';
import { SNAPSHOT_FORMAT_VERSION, SnapshotError, loadSnapshot, saveSnapshot } from '../../src/engine/memory/snapshot';

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
    assert.deepEqual(back.state, s);
    assert.deepEqual(back.checkpoints, [ckpt]);
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
      if (back.state.position === 12) assert.deepEqual(back.state, previous);
    }
    // Temp files of killed writers are never mistaken for the snapshot, and the next save clears them.
    for (const f of fs.readdirSync(path.dirname(file))) if (f !== path.basename(file)) assert.match(f, /\.tmp$/);
    saveSnapshot(file, 'model-a', previous, { files: ['a'] });
    assert.deepEqual(fs.readdirSync(path.dirname(file)), [path.basename(file)]);
  });
});
