// Fuzzing workspace snapshots (loadSnapshot: the .swsnap file and its .kv block file, CRC-32 checked): raw
// bytes, bit flips and truncations of a real snapshot and of its block file, and header JSON mutations with
// the header checksum recomputed, so that odd values (negative, huge, fractional offsets and lengths, a
// header that is not an object, lists that are not lists) get past the checksum to the code that uses them.
// Each input loads to a snapshot whose every K/V block, summary and checkpoint can be read, or ends in a
// SnapshotError (kind corrupt / missing / foreign-*), when loading or when a damaged part is read.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import { BLOCK_ROWS } from '../../src/engine/memory/kvBlocks';
import { loadSnapshot, saveSnapshot, SnapshotError } from '../../src/engine/memory/snapshot';
import type { ModelState } from '../../src/engine/model';
import { bitFlips, check, corpus, fc, flipBits, named, oddJson, rarely, tmpDir } from './fuzz';

const TARGET = 'snapshot';
const MODEL = 'fuzz-model';

interface Case {
  name: string;
  /** header edits: [path, value] (path "" replaces the whole header), the checksum recomputed */
  edits: [string, unknown][];
}

function state(position: number): ModelState {
  const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k));
  return {
    position,
    mamba: [0, 1].map((l) => ({ conv: fill(12, l), ssm: fill(64, l + 10) })),
    kv: [0, 1].map((l) => ({ k: fill(position * 8, l + 20), v: fill(position * 8, l + 30) })),
  };
}

/** A real snapshot (2 Mamba layers, 2 attention layers of 3.5 blocks, 2 checkpoints): its two files' bytes. */
function makeSnapshot(): { snap: Buffer; blocks: Buffer; blockName: string } {
  const dir = tmpDir(`${TARGET}-src`);
  const file = path.join(dir, 'w.swsnap');
  const st = state(3 * BLOCK_ROWS + 32);
  const r = saveSnapshot(file, MODEL, st, { files: ['a.ts', 'b.ts'] }, [
    { position: 10, mamba: st.mamba },
    { position: 100, mamba: st.mamba },
  ]);
  return { snap: fs.readFileSync(file), blocks: fs.readFileSync(r.blockFile), blockName: path.basename(r.blockFile) };
}

const SRC = makeSnapshot();
const TRAILER = 24;

function headerOf(snap: Buffer): { offset: number; json: Record<string, unknown> } {
  const t = snap.subarray(snap.length - TRAILER);
  const offset = Number(t.readBigUInt64LE(0));
  return { offset, json: JSON.parse(snap.subarray(offset, offset + t.readUInt32LE(8)).toString('utf8')) };
}

/** The snapshot with a new header (any JSON text), trailer and checksum made to match. */
function withHeader(snap: Buffer, text: string): Buffer {
  const { offset } = headerOf(snap);
  const h = Buffer.from(text, 'utf8');
  const trailer = Buffer.from(snap.subarray(snap.length - TRAILER));
  trailer.writeUInt32LE(h.length, 8);
  trailer.writeUInt32LE(crc32(h), 12);
  return Buffer.concat([snap.subarray(0, offset), h, trailer]);
}

/** Sets `value` at a dotted path ("kv.0.rows") of a copy of `obj`; "" replaces it; undefined deletes. */
function setPath(obj: unknown, p: string, value: unknown): unknown {
  if (p === '') return value;
  const root = structuredClone(obj);
  if (typeof root !== 'object' || root === null) return root;
  const keys = p.split('.');
  let o = root as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) return root;
    o = o[k] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1];
  if (Array.isArray(o) && last === 'length') return root; // not a field
  if (value === undefined) delete o[last];
  else o[last] = value;
  return root;
}

/** Writes the two files and loads; a loaded snapshot has all its parts read. */
function load(dir: string, snap: Uint8Array, blocks: Uint8Array, blockName = SRC.blockName): boolean {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { force: true });
  fs.writeFileSync(path.join(dir, 'w.swsnap'), snap);
  fs.writeFileSync(path.join(dir, blockName), blocks);
  const out = named(() => readAll(dir), { maxAllocationBytes: snap.length + blocks.length + 4096 });
  if (!out.ok) assert.ok(out.error instanceof SnapshotError, `${out.error.name}: ${out.error.message}`);
  return out.ok;
}

/** Snapshots loaded (each keeps its block file open until it is collected); reset by each property. */
let loaded = 0;
const fdsKept = () => {
  const n = loaded;
  loaded = 0;
  return n;
};

function readAll(dir: string): number {
  const s = loadSnapshot<unknown>(path.join(dir, 'w.swsnap'), MODEL);
  loaded++;
  let n = 0;
  for (const src of s.state.kvBlocks ?? []) {
    assert.ok(Number.isSafeInteger(src.length) && src.length >= 0 && Number.isSafeInteger(src.rowLen) && src.rowLen >= 0);
    for (let b = 0; b * BLOCK_ROWS < src.length; b++) {
      const { k, v } = src.block(b);
      const sum = src.summary(b);
      assert.ok(k.length === BLOCK_ROWS * src.rowLen && v.length === k.length && sum.min.length === src.rowLen);
      n++;
    }
  }
  for (const c of s.checkpoints) {
    assert.ok(Number.isSafeInteger(c.position) && c.position >= 0);
    n += c.mamba.length;
  }
  assert.ok(Number.isSafeInteger(s.state.position) && s.state.position >= 0);
  return n;
}

const HEADER = headerOf(SRC.snap).json;
const PATHS = [
  '',
  'formatVersion',
  'modelId',
  'position',
  'blockFile',
  'blockFileBytes',
  'checkpoints',
  'checkpoints.0',
  'checkpoints.0.offset',
  'checkpoints.0.length',
  'checkpoints.1.position',
  'checkpoints.1.crc32',
  'createdAt',
  'manifest',
  'tensors',
  'tensors.0',
  'tensors.0.offset',
  'tensors.0.length',
  'tensors.2.offset',
  'tensors.3.length',
  'tensors.4.name',
  'tensors.5.crc32',
  'kv',
  'kv.0',
  'kv.0.rows',
  'kv.0.rowLen',
  'kv.1.blockBytes',
  'dataBytes',
];
const value = fc.oneof(
  oddJson(),
  fc.constantFrom<unknown>(undefined, 0, 1, 16, -1, -16, -100, 0.5, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 1e300, 'w.swsnap.00000000.kv', '../x.kv', SRC.blockName, MODEL),
  fc.integer({ min: -1000, max: 100_000 }),
);

describe('fuzz: snapshots', () => {
  const dir = tmpDir(TARGET);

  test('the unmodified snapshot loads and reads back', () => {
    assert.ok(load(dir, SRC.snap, SRC.blocks));
    assert.ok(readAll(dir) > 0);
  });

  test('committed cases', () => {
    for (const c of corpus<Case>(TARGET).cases) {
      const json = c.edits.reduce<unknown>((h, [p, v]) => setPath(h, p, v), HEADER);
      assert.doesNotThrow(() => load(dir, withHeader(SRC.snap, JSON.stringify(json) ?? ''), SRC.blocks), c.name);
    }
  });

  test('raw bytes', () => {
    check(
      TARGET,
      'raw',
      300,
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, asBlocks) => void (asBlocks ? load(dir, SRC.snap, bytes) : load(dir, bytes, SRC.blocks))),
      { fdsKept },
    );
  });

  test('bit flips and truncations of both files', () => {
    check(
      TARGET,
      'bytes',
      400,
      fc.property(fc.boolean(), bitFlips(), rarely(fc.double({ min: 0, max: 1, noNaN: true }), 3), (inBlocks, flips, cut) => {
        const src = inBlocks ? SRC.blocks : SRC.snap;
        let b = flipBits(src, flips.at, flips.bits);
        if (cut !== undefined) b = b.subarray(0, Math.floor(cut * b.length));
        if (inBlocks) load(dir, SRC.snap, b);
        else load(dir, b, SRC.blocks);
      }),
      { fdsKept },
    );
  });

  test('header fields mutated, checksum recomputed', () => {
    check(
      TARGET,
      'header',
      800,
      fc.property(fc.array(fc.tuple(fc.constantFrom(...PATHS), value), { minLength: 1, maxLength: 3 }), (edits) => {
        const json = edits.reduce<unknown>((h, [p, v]) => setPath(h, p, v), HEADER);
        load(dir, withHeader(SRC.snap, JSON.stringify(json) ?? 'undefined'), SRC.blocks);
      }),
      { fdsKept },
    );
  });

  test('a header claiming huge parts is refused without allocating them', () => {
    const claims: [string, unknown][][] = [
      [['tensors.0.length', 2 ** 40]],
      [['dataBytes', 2 ** 40]],
      [['kv.0.rows', 2 ** 40]],
      [['checkpoints.0.length', 2 ** 40]],
      [['blockFileBytes', 2 ** 53]],
    ];
    // (load() fails on any allocation larger than the two files.)
    for (const edits of claims) {
      const json = edits.reduce<unknown>((h, [p, v]) => setPath(h, p, v), HEADER);
      assert.equal(load(dir, withHeader(SRC.snap, JSON.stringify(json)), SRC.blocks), false, JSON.stringify(edits));
    }
    // Also a trailer claiming a 4 GB header.
    const snap = Buffer.from(SRC.snap);
    snap.writeUInt32LE(0xffffffff, snap.length - TRAILER + 8);
    assert.equal(load(dir, snap, SRC.blocks), false);
  });
});
