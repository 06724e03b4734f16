// downloadModel against a local fake of the Hugging Face Hub: an API server (file list, resolve with redirects) and
// a second "CDN" server on another port for LFS files, which honours Range and can drop or stall a transfer.
// Nothing here leaves 127.0.0.1.

import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { cmdDownload } from '../../src/cli/download';
import { DownloadError, downloadModel, type DownloadProgress } from '../../src/engine/download';
import { UsageError } from '../../src/engine/errors';

delete process.env.HF_TOKEN;
delete process.env.HF_ENDPOINT;

const TOKEN = 'hf_secret';

interface FakeRepo {
  files: Record<string, Buffer>;
  lfs: Set<string>; // served through the CDN, listed with lfs.sha256
  sha: string;
  private?: boolean; // 401 without the token
  gated?: boolean; // 403 GatedRepo, even with the token
  noBlobs?: boolean; // siblings without size / lfs: the client must use X-Linked-Etag
  serve?: Record<string, Buffer>; // served instead of files[name] (a corrupt download)
}

interface LogEntry {
  server: 'api' | 'cdn';
  url: string;
  auth: string | undefined;
  range: string | undefined;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** Deterministic pseudo-random bytes, so a shard's content is not trivially equal to another's. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const json = (o: unknown) => Buffer.from(JSON.stringify(o));
const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];

function shardedRepo(extra: Partial<FakeRepo> = {}): FakeRepo {
  return {
    sha: 'a'.repeat(40),
    files: {
      'config.json': json({ model_type: 'granitemoehybrid', hidden_size: 64 }),
      'generation_config.json': json({ eos_token_id: 0 }),
      'tokenizer.json': json({ model: { type: 'BPE' } }),
      'tokenizer_config.json': json({ model_max_length: 4096 }),
      'special_tokens_map.json': json({ eos_token: '<|end|>' }),
      'model.safetensors.index.json': json({ metadata: {}, weight_map: { 'a.weight': SHARDS[0], 'b.weight': SHARDS[1], 'c.weight': SHARDS[1] } }),
      [SHARDS[0]]: bytes(3_000_000, 1),
      [SHARDS[1]]: bytes(2_500_000, 2),
      // Never downloaded:
      'README.md': Buffer.from('# tiny\n'),
      '.gitattributes': Buffer.from('*.safetensors filter=lfs\n'),
      'pytorch_model.bin': bytes(1000, 3),
      'model.gguf': bytes(1000, 4),
      'onnx/model.onnx': bytes(1000, 5),
      'onnx/model.safetensors': bytes(1000, 6),
      'consolidated.safetensors': bytes(1000, 7),
    },
    lfs: new Set([...SHARDS, 'pytorch_model.bin', 'model.gguf', 'onnx/model.onnx', 'onnx/model.safetensors', 'consolidated.safetensors']),
    ...extra,
  };
}

function singleRepo(extra: Partial<FakeRepo> = {}): FakeRepo {
  return {
    sha: 'b'.repeat(40),
    files: {
      'config.json': json({ model_type: 'granitemoehybrid' }),
      'tokenizer.json': json({ model: { type: 'BPE' } }),
      'model.safetensors': bytes(1_500_000, 11),
    },
    lfs: new Set(['model.safetensors']),
    ...extra,
  };
}

class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly log: LogEntry[] = [];
  readonly dropOnce = new Map<string, number>(); // file name -> drop the connection after this many bytes, once
  readonly stall = new Map<string, number>(); // file name -> send this many bytes, then hang, once
  ignoreRange = false;
  private readonly hanging = new Set<http.ServerResponse>();
  private api = http.createServer((q, r) => this.handleApi(q, r));
  private cdn = http.createServer((q, r) => this.handleCdn(q, r));
  endpoint = '';
  private cdnBase = '';

  async start(): Promise<void> {
    const listen = (s: http.Server) => new Promise<number>((res) => s.listen(0, '127.0.0.1', () => res((s.address() as AddressInfo).port)));
    this.endpoint = `http://127.0.0.1:${await listen(this.api)}`;
    this.cdnBase = `http://127.0.0.1:${await listen(this.cdn)}`;
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    for (const s of [this.api, this.cdn]) {
      s.closeAllConnections();
      await new Promise((res) => s.close(res));
    }
  }

  reset(): void {
    this.log.length = 0;
    this.dropOnce.clear();
    this.stall.clear();
    this.ignoreRange = false;
    for (const r of this.hanging) r.destroy();
    this.hanging.clear();
  }

  requests(server: 'api' | 'cdn', file?: string): LogEntry[] {
    return this.log.filter((e) => e.server === server && (!file || decodeURIComponent(e.url.replace(/\?.*$/, '')).endsWith('/' + file)));
  }

  /** Hub behaviour for access: 401 for a private repo without the token, 403 GatedRepo for a gated one. */
  private denied(repo: FakeRepo, id: string, q: http.IncomingMessage, r: http.ServerResponse): boolean {
    const authed = q.headers.authorization === `Bearer ${TOKEN}`;
    if (repo.private && !authed) {
      r.writeHead(401, { 'x-error-code': 'RepoNotFound', 'content-type': 'application/json' }).end('{"error":"Invalid credentials in Authorization header"}');
      return true;
    }
    if (repo.gated) {
      r.writeHead(403, { 'x-error-code': 'GatedRepo', 'x-error-message': `Access to model ${id} is restricted.` });
      r.end(JSON.stringify({ error: `Access to model ${id} is restricted and you are not in the authorized list.` }));
      return true;
    }
    return false;
  }

  private handleApi(q: http.IncomingMessage, r: http.ServerResponse): void {
    this.log.push({ server: 'api', url: q.url!, auth: q.headers.authorization, range: q.headers.range });
    const u = new URL(q.url!, this.endpoint);
    const list = /^\/api\/models\/([^/]+)\/([^/]+)\/revision\/([^/]+)$/.exec(u.pathname);
    const resolve = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    const m = list ?? resolve;
    const id = m ? `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}` : '';
    const repo = this.repos.get(id);
    if (!m || !repo) {
      r.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
      return;
    }
    if (this.denied(repo, id, q, r)) return;
    if (list) {
      assert.equal(u.searchParams.get('blobs'), 'true');
      const siblings = Object.entries(repo.files).map(([name, b]) =>
        repo.noBlobs
          ? { rfilename: name }
          : repo.lfs.has(name)
            ? { rfilename: name, size: b.length, blobId: '0'.repeat(40), lfs: { sha256: sha256(b), size: b.length, pointerSize: 130 } }
            : { rfilename: name, size: b.length, blobId: gitSha1(b) },
      );
      r.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, sha: repo.sha, siblings }));
      return;
    }
    const file = decodeURIComponent(resolve![4]);
    const content = repo.files[file];
    if (!content) {
      r.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    if (repo.lfs.has(file)) {
      // LFS files live on the CDN: a redirect to another host, with the sha256 in X-Linked-Etag.
      r.writeHead(302, {
        location: `${this.cdnBase}/cdn/${encodeURIComponent(id)}/${encodeURIComponent(file)}?sig=x`,
        'x-linked-etag': `"${sha256(content)}"`,
        'x-linked-size': String(content.length),
        'x-repo-commit': repo.sha,
      });
      r.end();
      return;
    }
    this.send(q, r, file, repo.serve?.[file] ?? content, { etag: `"${gitSha1(content)}"` });
  }

  private handleCdn(q: http.IncomingMessage, r: http.ServerResponse): void {
    this.log.push({ server: 'cdn', url: q.url!, auth: q.headers.authorization, range: q.headers.range });
    const m = /^\/cdn\/([^/]+)\/([^/?]+)/.exec(q.url!);
    const repo = m && this.repos.get(decodeURIComponent(m[1]));
    const file = m ? decodeURIComponent(m[2]) : '';
    if (!repo || !repo.files[file]) {
      r.writeHead(404).end();
      return;
    }
    this.send(q, r, file, repo.serve?.[file] ?? repo.files[file], {});
  }

  /** Serves `body`, honouring `Range: bytes=N-`, and applies any drop or stall set up for `file`. */
  private send(q: http.IncomingMessage, r: http.ServerResponse, file: string, body: Buffer, headers: http.OutgoingHttpHeaders): void {
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(q.headers.range ?? '');
    if (range && !this.ignoreRange) {
      start = Number(range[1]);
      if (start >= body.length) {
        r.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      r.writeHead(206, { ...headers, 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      r.writeHead(200, { ...headers, 'content-length': body.length });
    }
    const rest = body.subarray(start);
    const drop = this.dropOnce.get(file);
    if (drop !== undefined && drop < rest.length) {
      this.dropOnce.delete(file);
      r.write(rest.subarray(0, drop), () => setTimeout(() => r.socket?.destroy(), 50));
      return;
    }
    const stall = this.stall.get(file);
    if (stall !== undefined && stall < rest.length) {
      this.stall.delete(file);
      this.hanging.add(r);
      r.write(rest.subarray(0, stall));
      return;
    }
    r.end(rest);
  }
}

const hub = new FakeHub();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sidewinder-dl-'));
let n = 0;
const freshDir = () => path.join(tmpRoot, `d${n++}`);
const fast = { retryDelayMs: 10 };

async function rejectsWith(p: Promise<unknown>, kind: string, message?: RegExp): Promise<DownloadError> {
  let err: unknown = null;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DownloadError, `expected a DownloadError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  if (message) assert.match(err.message, message);
  return err;
}

function partFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.part')) : [];
}

describe('downloadModel', () => {
  before(async () => {
    await hub.start();
    hub.repos.set('acme/tiny', shardedRepo({ private: true }));
    hub.repos.set('acme/pub', singleRepo());
    hub.repos.set('acme/gated', singleRepo({ gated: true }));
    hub.repos.set('acme/bin-only', {
      sha: 'c'.repeat(40),
      files: { 'config.json': json({}), 'pytorch_model.bin': bytes(1000, 1), 'README.md': Buffer.from('hi') },
      lfs: new Set(['pytorch_model.bin']),
    });
    const pub = singleRepo();
    hub.repos.set('acme/corrupt', singleRepo({ serve: { 'model.safetensors': bytes(pub.files['model.safetensors'].length, 99) } }));
    hub.repos.set('acme/corrupt-small', singleRepo({ serve: { 'tokenizer.json': json({ model: { type: 'XXX' } }) } }));
    hub.repos.set('acme/noblobs', singleRepo({ noBlobs: true }));
    hub.repos.set('acme/noblobs-corrupt', singleRepo({ noBlobs: true, serve: { 'model.safetensors': bytes(1_500_000, 98) } }));
    const evil = shardedRepo();
    evil.files['model.safetensors.index.json'] = json({ weight_map: { a: '../evil.safetensors' } });
    evil.files['../evil.safetensors'] = bytes(10, 1);
    hub.repos.set('acme/evil', evil);
  });
  after(async () => {
    await hub.stop();
    fs.rmSync(tmpRoot, { recursive: true, force: true });
  });
  beforeEach(() => hub.reset());

  test('downloads only what the engine needs, verified; the token never reaches the CDN', async () => {
    const dest = freshDir();
    const events: DownloadProgress[] = [];
    const r = await downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest, onProgress: (p) => events.push(p) });
    const repo = hub.repos.get('acme/tiny')!;
    const want = [
      'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
      'model.safetensors.index.json', ...SHARDS,
    ];
    assert.equal(r.dir, dest);
    assert.deepEqual(r.files, want);
    assert.equal(r.bytes, want.reduce((s, f) => s + repo.files[f].length, 0));
    for (const f of want) assert.ok(fs.readFileSync(path.join(dest, f)).equals(repo.files[f]), f);
    assert.deepEqual(fs.readdirSync(dest).sort(), [...want, '.sidewinder-download.json'].sort());

    // Unwanted files were never requested.
    for (const f of ['README.md', '.gitattributes', 'pytorch_model.bin', 'model.gguf', 'onnx/model.onnx', 'onnx/model.safetensors', 'consolidated.safetensors']) {
      assert.equal(hub.log.filter((e) => decodeURIComponent(e.url).includes(f)).length, 0, f);
    }
    // Files pinned to the listed commit; the token goes to the Hub only.
    assert.ok(hub.requests('api').every((e) => e.auth === `Bearer ${TOKEN}`));
    assert.ok(hub.requests('api', SHARDS[0])[0].url.includes(`/resolve/${repo.sha}/`));
    assert.equal(hub.requests('cdn').length, 2);
    assert.ok(hub.requests('cdn').every((e) => e.auth === undefined));

    const manifest = JSON.parse(fs.readFileSync(path.join(dest, '.sidewinder-download.json'), 'utf8'));
    assert.equal(manifest.repo, 'acme/tiny');
    assert.equal(manifest.revision, 'main');
    assert.equal(manifest.commit, repo.sha);
    assert.equal(manifest.complete, true);

    const last = events[events.length - 1];
    assert.equal(last.filesDone, want.length);
    assert.equal(last.filesTotal, want.length);
    assert.equal(last.bytesDone, r.bytes);
    assert.equal(last.bytesTotal, r.bytes);
    for (let i = 1; i < events.length; i++) assert.ok(events[i].bytesDone >= events[i - 1].bytesDone);

    // A second run checks and skips everything: only the file list is fetched.
    hub.reset();
    const again = await downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest });
    assert.deepEqual(again, r);
    assert.equal(hub.log.length, 1);
    assert.match(hub.log[0].url, /^\/api\/models\/acme\/tiny\/revision\/main\?blobs=true$/);

    // A changed file on disk is noticed (size and hash), and fetched again.
    hub.reset();
    const shard = path.join(dest, SHARDS[1]);
    const b = fs.readFileSync(shard);
    b[100] ^= 0xff;
    fs.writeFileSync(shard, b);
    await downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest });
    assert.ok(fs.readFileSync(shard).equals(repo.files[SHARDS[1]]));
    assert.equal(hub.requests('cdn').length, 1);
  });

  test('HF_TOKEN and HF_ENDPOINT are the defaults', async () => {
    process.env.HF_TOKEN = TOKEN;
    process.env.HF_ENDPOINT = hub.endpoint + '/';
    try {
      const r = await downloadModel('acme/tiny', { dest: freshDir() });
      assert.equal(r.files.length, 8);
      assert.ok(hub.requests('cdn').every((e) => e.auth === undefined));
    } finally {
      delete process.env.HF_TOKEN;
      delete process.env.HF_ENDPOINT;
    }
  });

  test('a dropped connection resumes with Range and ends with the right hash', async () => {
    const dest = freshDir();
    hub.dropOnce.set(SHARDS[0], 1_700_000);
    await downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest, ...fast });
    const shard = hub.requests('cdn', SHARDS[0]);
    assert.equal(shard.length, 2);
    assert.equal(shard[0].range, undefined);
    const from = Number(/^bytes=(\d+)-$/.exec(shard[1].range ?? '')?.[1]);
    assert.ok(from > 0 && from <= 1_700_000, shard[1].range);
    assert.ok(fs.readFileSync(path.join(dest, SHARDS[0])).equals(hub.repos.get('acme/tiny')!.files[SHARDS[0]]));
    assert.deepEqual(partFiles(dest), []);
  });

  test('an aborted download keeps its part file; the next run resumes it with Range', async () => {
    const dest = freshDir();
    const part = path.join(dest, `.${SHARDS[1]}.part`);
    hub.stall.set(SHARDS[1], 1_200_000);
    const ac = new AbortController();
    const poll = setInterval(() => {
      if (fs.existsSync(part) && fs.statSync(part).size > 0) ac.abort();
    }, 5);
    try {
      await assert.rejects(downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest, signal: ac.signal }), (e: Error) => e.name === 'AbortError');
    } finally {
      clearInterval(poll);
    }
    const kept = fs.statSync(part).size;
    assert.ok(kept > 0);
    assert.ok(!fs.existsSync(path.join(dest, SHARDS[1])));
    assert.ok(fs.existsSync(path.join(dest, SHARDS[0]))); // finished files stay

    hub.reset();
    await downloadModel('acme/tiny', { endpoint: hub.endpoint, token: TOKEN, dest });
    assert.deepEqual(hub.requests('cdn').map((e) => e.range), [`bytes=${kept}-`]);
    assert.ok(fs.readFileSync(path.join(dest, SHARDS[1])).equals(hub.repos.get('acme/tiny')!.files[SHARDS[1]]));
    assert.deepEqual(partFiles(dest), []);
  });

  test('a stalled transfer times out and resumes with Range', async () => {
    const dest = freshDir();
    hub.stall.set('model.safetensors', 500_000);
    await downloadModel('acme/pub', { endpoint: hub.endpoint, dest, idleTimeoutMs: 300, ...fast });
    const ranges = hub.requests('cdn').map((e) => e.range);
    assert.equal(ranges.length, 2);
    assert.match(ranges[1] ?? '', /^bytes=\d+-$/);
    assert.ok(fs.readFileSync(path.join(dest, 'model.safetensors')).equals(hub.repos.get('acme/pub')!.files['model.safetensors']));
  });

  test('a server that ignores Range (200) restarts the file from zero', async () => {
    const dest = freshDir();
    fs.mkdirSync(dest, { recursive: true });
    fs.writeFileSync(path.join(dest, '.model.safetensors.part'), bytes(1000, 55)); // a stale, wrong part
    hub.ignoreRange = true;
    await downloadModel('acme/pub', { endpoint: hub.endpoint, dest });
    assert.equal(hub.requests('cdn')[0].range, 'bytes=1000-');
    assert.ok(fs.readFileSync(path.join(dest, 'model.safetensors')).equals(hub.repos.get('acme/pub')!.files['model.safetensors']));
  });

  test('a stale part from an earlier run that fails the hash is discarded once and fetched afresh', async () => {
    const dest = freshDir();
    fs.mkdirSync(dest, { recursive: true });
    fs.writeFileSync(path.join(dest, '.model.safetensors.part'), bytes(1000, 56)); // server will honour Range
    await downloadModel('acme/pub', { endpoint: hub.endpoint, dest });
    assert.deepEqual(hub.requests('cdn').map((e) => e.range), ['bytes=1000-', undefined]);
    assert.ok(fs.readFileSync(path.join(dest, 'model.safetensors')).equals(hub.repos.get('acme/pub')!.files['model.safetensors']));
  });

  test('a complete part file is verified and moved into place without a request', async () => {
    const dest = freshDir();
    fs.mkdirSync(dest, { recursive: true });
    const content = hub.repos.get('acme/pub')!.files['model.safetensors'];
    fs.writeFileSync(path.join(dest, '.model.safetensors.part'), content);
    await downloadModel('acme/pub', { endpoint: hub.endpoint, dest });
    assert.equal(hub.requests('cdn').length, 0);
    assert.ok(fs.readFileSync(path.join(dest, 'model.safetensors')).equals(content));
  });

  test('a wrong hash fails with hash-mismatch and leaves no file behind', async () => {
    for (const [id, file, algo] of [['acme/corrupt', 'model.safetensors', 'sha256'], ['acme/corrupt-small', 'tokenizer.json', 'git-sha1']]) {
      const dest = freshDir();
      const e = await rejectsWith(downloadModel(id, { endpoint: hub.endpoint, dest }), 'hash-mismatch', new RegExp(`${file}.*${algo}`));
      assert.match(e.message, /run again/);
      assert.ok(!fs.existsSync(path.join(dest, file)), file);
      assert.deepEqual(partFiles(dest), []);
    }
  });

  test('without sizes and hashes in the list, X-Linked-Etag and the Content-Range total are used', async () => {
    const dest = freshDir();
    const r = await downloadModel('acme/noblobs', { endpoint: hub.endpoint, dest });
    assert.equal(r.bytes, Object.values(hub.repos.get('acme/noblobs')!.files).reduce((s, b) => s + b.length, 0));
    await rejectsWith(downloadModel('acme/noblobs-corrupt', { endpoint: hub.endpoint, dest: freshDir() }), 'hash-mismatch');
    // A part file whose size equals the file: the server answers 416, and the part is checked by hash.
    const dest2 = freshDir();
    fs.mkdirSync(dest2, { recursive: true });
    const content = hub.repos.get('acme/noblobs')!.files['model.safetensors'];
    fs.writeFileSync(path.join(dest2, '.model.safetensors.part'), content);
    hub.reset();
    await downloadModel('acme/noblobs', { endpoint: hub.endpoint, dest: dest2 });
    assert.deepEqual(hub.requests('cdn').map((e) => e.range), [`bytes=${content.length}-`]);
    assert.ok(fs.readFileSync(path.join(dest2, 'model.safetensors')).equals(content));
  });

  test('clear errors: unknown repo, private without token, gated, no safetensors', async () => {
    await rejectsWith(downloadModel('acme/nope', { endpoint: hub.endpoint, dest: freshDir() }), 'not-found', /acme\/nope@main.*HF_TOKEN/);
    await rejectsWith(downloadModel('acme/tiny', { endpoint: hub.endpoint, dest: freshDir() }), 'unauthorized', /set HF_TOKEN/);
    await rejectsWith(downloadModel('acme/tiny', { endpoint: hub.endpoint, dest: freshDir(), token: 'wrong' }), 'unauthorized', /token was refused/);
    await rejectsWith(downloadModel('acme/gated', { endpoint: hub.endpoint, dest: freshDir(), token: TOKEN }), 'gated', /accept the license.*HF_TOKEN/);
    const dest = freshDir();
    await rejectsWith(downloadModel('acme/bin-only', { endpoint: hub.endpoint, dest }), 'not-found', /this repository has no safetensors weights.*pytorch_model\.bin/);
    assert.equal(hub.requests('api').filter((e) => e.url.includes('/resolve/')).length, 0);
    assert.equal(hub.requests('cdn').length, 0);
  });

  test('5xx is retried, then reported as a network error', async () => {
    const server = http.createServer((_q, r) => r.writeHead(503).end());
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await rejectsWith(downloadModel('acme/down', { endpoint, dest: freshDir(), retries: 2, retryDelayMs: 1 }), 'network', /503.*2 retries/);
    } finally {
      server.closeAllConnections();
      await new Promise((res) => server.close(res));
    }
  });

  test('a connection refused is retried, then reported as a network error', async () => {
    const server = http.createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await new Promise((res) => server.close(res));
    await rejectsWith(downloadModel('acme/pub', { endpoint, dest: freshDir(), retries: 1, retryDelayMs: 1 }), 'network', /ECONNREFUSED/);
  });

  test('an index naming a shard outside the folder is refused', async () => {
    const dest = freshDir();
    await rejectsWith(downloadModel('acme/evil', { endpoint: hub.endpoint, dest }), 'bad-response', /unsafe/);
    assert.ok(!fs.existsSync(path.join(dest, '..', 'evil.safetensors')));
    assert.equal(hub.log.filter((e) => decodeURIComponent(e.url).includes('evil.safetensors')).length, 0);
  });

  test('bad repo ids and revisions are refused before any request', async () => {
    for (const id of ['acme', 'a/b/c', '../etc', 'acme/..', 'acme/na me', 'acme/a--b', '/abs', 'acme/x.']) {
      await assert.rejects(downloadModel(id, { endpoint: hub.endpoint, dest: freshDir() }), UsageError, id);
    }
    for (const rev of ['', '..', '../main', 'a/../b', '/main', 'main\n']) {
      await assert.rejects(downloadModel('acme/pub', { endpoint: hub.endpoint, dest: freshDir(), revision: rev }), UsageError, rev);
    }
    await assert.rejects(downloadModel('acme/pub', { endpoint: 'ftp://x', dest: freshDir() }), UsageError);
    assert.equal(hub.log.length, 0);
    // A revision with a slash is one encoded path segment.
    await rejectsWith(downloadModel('acme/nope', { endpoint: hub.endpoint, dest: freshDir(), revision: 'refs/pr/1' }), 'not-found');
    assert.match(hub.log[0].url, /\/revision\/refs%2Fpr%2F1\?/);
  });

  test('a full disk is reported with the space needed, and the part is kept', { skip: !fs.existsSync('/dev/full') && 'no /dev/full' }, async () => {
    const dest = freshDir();
    fs.mkdirSync(dest, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(dest, '.model.safetensors.part')); // every write fails with ENOSPC
    const e = await rejectsWith(downloadModel('acme/pub', { endpoint: hub.endpoint, dest }), 'disk-full', /disk is full.*model\.safetensors.*1\.50 MB more is needed.*free/);
    assert.match(e.message, /run again/);
    assert.ok(fs.existsSync(path.join(dest, 'config.json'))); // files before it are finished
  });

  test('cli: --json prints {dir, files, bytes}', async () => {
    const dest = freshDir();
    let out = '';
    const write = process.stdout.write.bind(process.stdout);
    const errWrite = process.stderr.write.bind(process.stderr);
    // Only cmdDownload's text is captured: the test runner's own (binary) messages go through.
    process.stdout.write = ((s: string | Uint8Array, ...rest: never[]) =>
      typeof s === 'string' ? ((out += s), true) : write(s, ...rest)) as typeof process.stdout.write;
    process.stderr.write = ((s: string | Uint8Array, ...rest: never[]) =>
      typeof s === 'string' ? true : errWrite(s, ...rest)) as typeof process.stderr.write;
    try {
      await cmdDownload(['acme/pub', '--dest', dest, '--endpoint', hub.endpoint, '--json']);
    } finally {
      process.stdout.write = write;
      process.stderr.write = errWrite;
    }
    const r = JSON.parse(out);
    assert.deepEqual(Object.keys(r), ['dir', 'files', 'bytes']);
    assert.equal(r.dir, dest);
    assert.deepEqual(r.files, ['config.json', 'tokenizer.json', 'model.safetensors']);
    await assert.rejects(cmdDownload([]), UsageError);
    await assert.rejects(cmdDownload(['acme/pub', '--bogus']), UsageError);
  });
});
