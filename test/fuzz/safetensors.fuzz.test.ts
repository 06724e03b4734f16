// Fuzzing the safetensors reader (WeightStore.open): raw bytes, generated headers with mutated fields (huge
// header lengths, tensors claiming a terabyte, negative / overlapping / out-of-file offsets, wrong dtypes,
// non-integer shapes), string-level mutations of a real header, bit flips and truncations of a fixture file,
// and mutated shard indexes. Each input opens to a store whose every tensor reads back, or a ModelFormatError;
// no allocation is larger than the file, and no file descriptor is left open (also when the open fails).
// modelIdentity (which reads the same headers to key snapshots) gets each file too.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ModelFormatError } from '../../src/engine/errors';
import { modelIdentity } from '../../src/engine/memory/snapshot';
import { numel, WeightStore } from '../../src/engine/safetensors';
import { bitFlips, check, corpus, FIXTURES, fc, flipBits, named, oddJson, rarely, rssMB, tmpDir } from './fuzz';

const TARGET = 'safetensors';

interface Case {
  name: string;
  /** the whole file, hex */
  hex?: string;
  /** or: a header (JSON text) and data bytes, with an optional claimed header length */
  header?: string;
  dataBytes?: number;
  headerLength?: string; // decimal u64
  /** or: model.safetensors.index.json's text, next to the granite-sharded-f16 shards */
  index?: string;
}

function file(header: string | Buffer, data: Uint8Array, headerLength?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

/** Opens `bytes` as dir/model.safetensors; a store's every tensor is read back and checked. */
function openBytes(dir: string, bytes: Uint8Array): void {
  const f = path.join(dir, 'model.safetensors');
  fs.writeFileSync(f, bytes);
  const out = named(() => openAndRead(dir), { maxAllocationBytes: bytes.length + 4096 });
  if (!out.ok) assert.ok(out.error instanceof ModelFormatError, `${out.error.name}: ${out.error.message}`);
  // The model's identity (snapshots are keyed by it) reads every safetensors header, checked or not.
  const id = named(() => modelIdentity(dir), { maxAllocationBytes: bytes.length + 4096 });
  assert.ok(id.ok && /^[0-9a-f]{32}$/.test(id.value));
}

function openAndRead(dir: string): number {
  const s = WeightStore.open(dir);
  try {
    let total = 0;
    for (const n of s.names()) {
      const t = s.info(n);
      const size = fs.statSync(t.file).size;
      assert.ok(t.offset >= 8 && t.offset + t.byteLength <= size, `${n} lies outside its file`);
      assert.equal(s.f32(n).length, numel(t.shape));
      total += t.byteLength;
    }
    return total;
  } finally {
    s.close();
  }
}

const FIXTURE = fs.readFileSync(path.join(FIXTURES, 'granite-dense-nope', 'model.safetensors'));
const FIXTURE_HEADER_LEN = Number(FIXTURE.readBigUInt64LE(0));
const FIXTURE_HEADER = FIXTURE.subarray(8, 8 + FIXTURE_HEADER_LEN).toString('utf8');
const FIXTURE_DATA = FIXTURE.subarray(8 + FIXTURE_HEADER_LEN);

const dtype = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('F32', 'F16', 'BF16') },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('I64', 'F64', 'U8', 'f32', '', 7, null, undefined, ['F32'], { F32: 1 }) },
);
const dim = fc.oneof(
  { weight: 8, arbitrary: fc.nat({ max: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(2 ** 20, 2 ** 31, 2 ** 40, 2 ** 53, 1e300, -1, 0.5, NaN, '4', null, [2]) },
);
const offset = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 600 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, -4096, 0.5, 2 ** 32, 2 ** 40, 2 ** 53 + 2, 1e300, '0', null, true) },
);

/** A header of a few tensors, each either consistent with its data or mutated in one field. */
const header = fc
  .array(
    fc.record({
      name: fc.oneof(fc.constantFrom('a', 'b.weight', '__metadata__', '__proto__', 'constructor', ''), fc.string({ maxLength: 6 })),
      dtype,
      shape: fc.oneof({ weight: 4, arbitrary: fc.array(dim, { maxLength: 4 }) }, { weight: 1, arbitrary: oddJson() }),
      offsets: fc.oneof(
        { weight: 4, arbitrary: fc.constant('consistent' as const) },
        { weight: 2, arbitrary: fc.tuple(offset, offset) },
        { weight: 1, arbitrary: fc.oneof(fc.array(offset, { maxLength: 3 }), oddJson()) },
      ),
      overlap: fc.boolean(),
      extra: fc.option(oddJson(), { nil: undefined }),
    }),
    { maxLength: 5 },
  )
  .map((ts) => {
    const h: Record<string, unknown> = {};
    let end = 0;
    for (const t of ts) {
      const per = t.dtype === 'F32' ? 4 : 2;
      const n = Array.isArray(t.shape) ? t.shape.reduce((a: number, d) => a * (typeof d === 'number' ? d : 1), 1) : 1;
      let offs: unknown = t.offsets;
      if (t.offsets === 'consistent') {
        const begin = t.overlap && end > 0 ? end - per : end;
        offs = [begin, begin + n * per];
        end = begin + n * per;
      }
      h[t.name] = t.extra === undefined ? { dtype: t.dtype, shape: t.shape, data_offsets: offs } : { dtype: t.dtype, shape: t.shape, data_offsets: offs, extra: t.extra };
    }
    return { json: JSON.stringify(h), end };
  });

/** String-level mutations of a real header: cut, insert a token, replace a number. */
const headerText = fc
  .record({
    op: fc.constantFrom('cut', 'insert', 'number', 'swap'),
    at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
    len: fc.nat({ max: 40 }),
    token: fc.constantFrom('-1', '1e999', '2e40', 'null', '{', '}', '[', ']', ',', '"', '"F64"', '0.5', 'NaN', '\\u0000', '\u00e9', ':', '[[[[[[[['),
  })
  .map(({ op, at, len, token }) => {
    const s = FIXTURE_HEADER;
    const p = Math.floor(at * s.length);
    switch (op) {
      case 'cut':
        return s.slice(0, p) + s.slice(p + len);
      case 'insert':
        return s.slice(0, p) + token + s.slice(p);
      case 'number': {
        // Replace the number nearest after p.
        const m = /\d+/.exec(s.slice(p));
        return m ? s.slice(0, p + m.index) + token + s.slice(p + m.index + m[0].length) : s;
      }
      default:
        return s.slice(p) + s.slice(0, p);
    }
  });

/** The u64 header length a file claims: the true one (null) mostly, else one of the edge cases. */
const claimedLength = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constantFrom<bigint | 'minus1' | 'plus1'>(0n, 1n, 2n, 'minus1', 'plus1', 2n ** 40n, 2n ** 53n + 1n, 2n ** 64n - 1n, 100n * 1024n * 1024n) },
);
function lengthFor(claim: bigint | 'minus1' | 'plus1' | null, text: string): bigint {
  const actual = BigInt(Buffer.byteLength(text));
  return claim === null ? actual : claim === 'minus1' ? actual - 1n : claim === 'plus1' ? actual + 1n : claim;
}

/** A copy of the sharded fixture (and a subdirectory, a name an index may give) to write indexes into. */
function shardedDir(): { dir: string; shards: string[]; index: { weight_map: Record<string, string> } } {
  const src = path.join(FIXTURES, 'granite-sharded-f16');
  const shards = fs.readdirSync(src).filter((f) => f.endsWith('.safetensors'));
  const index = JSON.parse(fs.readFileSync(path.join(src, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const dir = tmpDir(`${TARGET}-sharded`);
  for (const f of shards) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.mkdirSync(path.join(dir, 'subdir'));
  return { dir, shards, index };
}

function openIndex(dir: string, text: string): void {
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), text);
  const out = named(() => openAndRead(dir), { maxAllocationBytes: 1 << 20 });
  if (!out.ok) assert.ok(out.error instanceof ModelFormatError, out.error.message);
}

describe('fuzz: safetensors', () => {
  const dir = tmpDir(TARGET);
  const sharded = shardedDir();

  test('committed cases', () => {
    for (const c of corpus<Case>(TARGET).cases) {
      if (c.index !== undefined) {
        assert.doesNotThrow(() => openIndex(sharded.dir, c.index!), c.name);
        continue;
      }
      const bytes = c.hex !== undefined ? Buffer.from(c.hex, 'hex') : file(c.header!, Buffer.alloc(c.dataBytes ?? 0), c.headerLength ? BigInt(c.headerLength) : undefined);
      assert.doesNotThrow(() => openBytes(dir, bytes), c.name);
    }
  });

  test('a header claiming 1 TB, or a 2^40-byte header, is refused before anything is allocated', () => {
    const claims = [
      file(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 18, 2 ** 20], data_offsets: [0, 2 ** 40] } }), Buffer.alloc(64)),
      file(JSON.stringify({ w: { dtype: 'BF16', shape: [2 ** 39], data_offsets: [0, 2 ** 40] } }), Buffer.alloc(64)),
      file('{}', Buffer.alloc(64), 2n ** 40n),
      file('{}', Buffer.alloc(64), 2n ** 64n - 1n),
      file(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 26, 2 ** 26], data_offsets: [0, 2 ** 54] } }), Buffer.alloc(64)),
    ];
    const rss0 = rssMB();
    for (const bytes of claims) {
      fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
      const t0 = performance.now();
      const out = named(() => openAndRead(dir), { maxAllocationBytes: bytes.length + 4096 });
      assert.ok(!out.ok && out.error instanceof ModelFormatError);
      assert.ok(performance.now() - t0 < 1000, 'refused quickly');
    }
    assert.ok(rssMB() - rss0 < 200, `rss grew by ${(rssMB() - rss0).toFixed(0)} MB`);
  });

  test('raw bytes', () => {
    const r = check(
      TARGET,
      'raw',
      300,
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom('raw', 'framed', 'json'),
        (bytes, how) => {
          // Raw; or framed with a correct length; or JSON-ish text with a correct length.
          const b = how === 'raw' ? bytes : how === 'framed' ? file(Buffer.from(bytes), Buffer.alloc(0)) : file(`{"t":${Buffer.from(bytes).toString('latin1')}}`, Buffer.alloc(16));
          openBytes(dir, b);
        },
      ),
    );
    assert.ok(r.runs > 0);
  });

  test('generated headers with mutated fields', () => {
    check(
      TARGET,
      'headers',
      600,
      fc.property(header, claimedLength, fc.nat({ max: 700 }), rarely(oddJson()), ({ json, end }, claim, dataBytes, top) => {
        // The data section: exactly what the header needs (when that is small), or a random size; sometimes
        // the whole header is odd JSON.
        const text = top === undefined ? json : (JSON.stringify(top) ?? 'null');
        const data = dataBytes % 2 && end >= 0 && end <= 1 << 16 ? end : dataBytes;
        openBytes(dir, file(text, Buffer.alloc(data), lengthFor(claim, text)));
      }),
    );
  });

  test('mutations of a real header', () => {
    check(
      TARGET,
      'headerText',
      400,
      fc.property(headerText, claimedLength, (text, claim) => {
        openBytes(dir, file(text, FIXTURE_DATA, lengthFor(claim, text)));
      }),
    );
  });

  test('bit flips and truncations of a fixture file', () => {
    check(
      TARGET,
      'fixtureBytes',
      200,
      fc.property(bitFlips(), fc.boolean(), rarely(fc.double({ min: 0, max: 1, noNaN: true })), (flips, inHeader, cut) => {
        // Flips land in the length + header (most interesting) or anywhere; then maybe truncate.
        const region = inHeader ? FIXTURE.subarray(0, 8 + FIXTURE_HEADER_LEN) : FIXTURE;
        const flipped = Buffer.concat([flipBits(region, flips.at, flips.bits), FIXTURE.subarray(region.length)]);
        openBytes(dir, cut === undefined ? flipped : flipped.subarray(0, Math.floor(cut * flipped.length)));
      }),
    );
  });

  test('sharded checkpoints with mutated indexes', () => {
    const { dir: sdir, shards, index } = sharded;
    const names = Object.keys(index.weight_map);
    const shardName = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...shards) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('', '.', '..', 'subdir', '../x', 'a/b', 'missing.safetensors', 'model.safetensors.index.json', '\u0000', 5, null, ['x'], {}) },
    );
    check(
      TARGET,
      'index',
      150,
      fc.property(
        fc.oneof(
          { weight: 4, arbitrary: fc.array(fc.tuple(fc.nat({ max: names.length - 1 }), shardName), { maxLength: 4 }).map((edits) => ({ edits, whole: undefined })) },
          { weight: 1, arbitrary: oddJson().map((whole) => ({ edits: [], whole })) },
        ),
        fc.boolean(),
        ({ edits, whole }, dropEntry) => {
          let text: string;
          if (whole !== undefined) text = JSON.stringify(whole) ?? '';
          else {
            const wm: Record<string, unknown> = { ...index.weight_map };
            for (const [i, s] of edits) wm[names[i]] = s;
            if (dropEntry) delete wm[names[0]];
            text = JSON.stringify({ ...index, weight_map: wm });
          }
          openIndex(sdir, text);
        },
      ),
    );
  });
});
