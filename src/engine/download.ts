// Model download from the Hugging Face Hub (or a mirror with the same HTTP API): only the files the engine
// reads (config, generation config, tokenizer files, safetensors weights and their index), resumable, verified
// and written atomically.
//
//   GET {endpoint}/api/models/{owner}/{name}/revision/{rev}?blobs=true   -> { sha, siblings: [{ rfilename, size,
//                                                                            blobId, lfs?: { sha256, size } }] }
//   GET {endpoint}/{owner}/{name}/resolve/{commit}/{file}                -> the file, often through a redirect to a
//                                                                            CDN on another host (no token sent there)
//
// Each file is written to `{dest}/.{file}.part`, resumed with `Range` after a dropped connection or on the next
// run, checked (sha256 for LFS files, the git blob sha1 for small ones, size for all) and then fsynced and renamed
// into place. `{dest}/.sidewinder-download.json` records the repo, revision, commit and the finished files, so a
// re-run skips them without hashing gigabytes again.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { setTimeout as sleep } from 'timers/promises';
import { SidewinderError, UsageError } from './errors';

export type DownloadErrorKind = 'not-found' | 'unauthorized' | 'gated' | 'disk-full' | 'hash-mismatch' | 'network' | 'bad-response';

/** A download failed; `kind` says why, the message says what to do about it. */
export class DownloadError extends SidewinderError {
  constructor(
    readonly kind: DownloadErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export interface DownloadProgress {
  file: string; // the file being fetched (or just checked)
  bytes: number; // bytes of `file` on disk so far
  total: number; // size of `file`, 0 while unknown
  filesDone: number;
  filesTotal: number;
  bytesDone: number; // over all files, `bytes` included
  bytesTotal: number;
}

export interface DownloadOptions {
  revision?: string; // branch, tag or commit; default 'main'
  dest?: string; // default <cache>/models/<owner>--<name>
  endpoint?: string; // default HF_ENDPOINT, else https://huggingface.co
  token?: string; // default HF_TOKEN
  onProgress?: (p: DownloadProgress) => void; // at most every 100 ms, and once as each file finishes
  signal?: AbortSignal; // abort: part files are kept, the next run resumes them
  retries?: number; // attempts after a network failure without progress, per file; default 5
  retryDelayMs?: number; // first backoff delay, doubled each retry (capped at 16x); default 500
  idleTimeoutMs?: number; // a connection silent this long counts as dropped; default 30000
}

export interface DownloadResult {
  dir: string;
  files: string[]; // names inside dir, in download order
  bytes: number; // their total size
}

/** The files the engine reads, besides the weight shards. config.json is required, the rest optional. */
const SMALL_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'model.safetensors.index.json',
] as const;
const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
const MANIFEST = '.sidewinder-download.json';

const MAX_REDIRECTS = 10;
const PROGRESS_INTERVAL_MS = 100;
const WRITE_BATCH = 1 << 20; // coalesce network chunks into 1 MiB writes
const USER_AGENT = `sidewinder/0.1 (node ${process.version})`;

// ---------------------------------------------------------------------------------------------------------------
// Names: repo ids, revisions, file names.

const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const SAFE_FILE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Checks `owner/name` (Hub rules: letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters). */
export function parseRepoId(repoId: string): { owner: string; name: string } {
  const parts = repoId.split('/');
  const ok =
    parts.length === 2 &&
    repoId.length <= 96 + 1 + 96 &&
    parts.every((p) => p.length <= 96 && REPO_PART.test(p) && !p.includes('--') && !p.includes('..'));
  if (!ok) {
    throw new UsageError(
      `${JSON.stringify(repoId)} is not a Hugging Face model id: expected owner/name, e.g. ibm-granite/granite-4.0-h-tiny ` +
        `(letters, digits, '-', '_', '.').`,
    );
  }
  return { owner: parts[0], name: parts[1] };
}

/** A branch, tag, commit or `refs/pr/N`: sent as one encoded URL segment, so only traversal needs refusing. */
export function checkRevision(rev: string): string {
  const bad =
    rev.length === 0 ||
    rev.length > 256 ||
    /[\x00-\x20\x7f\\]/.test(rev) ||
    rev.startsWith('/') ||
    rev.endsWith('/') ||
    rev.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) throw new UsageError(`${JSON.stringify(rev)} is not a valid revision: give a branch, tag or commit hash.`);
  return rev;
}

function checkEndpoint(endpoint: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new UsageError(`${JSON.stringify(endpoint)} is not a URL; set --endpoint or HF_ENDPOINT to e.g. https://huggingface.co.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`the endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}.`);
  }
  return endpoint.replace(/\/+$/, '');
}

/** A file name we are willing to write inside dest: one plain path segment. */
function isSafeFileName(name: string): boolean {
  return name.length <= 255 && SAFE_FILE.test(name) && !name.includes('..');
}

/** Where a model goes by default: `$XDG_CACHE_HOME/sidewinder/models/owner--name` (the CLI's cache root). */
export function defaultModelDir(repoId: string): string {
  const { owner, name } = parseRepoId(repoId);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'sidewinder', 'models', `${owner}--${name}`);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP: one GET through up to 10 redirects; the token goes only to the endpoint's own origin.

/** A failure worth retrying (dropped connection, 5xx, short body). Never escapes this module. */
class TransientError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

interface Opened {
  res: http.IncomingMessage;
  hub: http.IncomingHttpHeaders; // headers of the first response (the Hub's own, before any redirect)
}

function get(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method: 'GET', headers, signal }, resolve);
    req.on('error', reject);
    // Also fires while the body is streaming: a stalled transfer is destroyed and retried with Range.
    req.setTimeout(idleTimeoutMs, () => req.destroy(new TransientError(`no data for ${idleTimeoutMs / 1000} s`)));
    req.end();
  });
}

async function open(
  url: string,
  o: { headers?: Record<string, string>; token?: string; signal?: AbortSignal; idleTimeoutMs: number },
): Promise<Opened> {
  const origin = new URL(url).origin;
  let cur = new URL(url);
  let hub: http.IncomingHttpHeaders | null = null;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...o.headers };
    if (o.token && cur.origin === origin) headers.authorization = `Bearer ${o.token}`;
    const res = await get(cur, headers, o.signal, o.idleTimeoutMs);
    hub ??= res.headers;
    const status = res.statusCode ?? 0;
    if (![301, 302, 303, 307, 308].includes(status)) return { res, hub };
    res.resume();
    const loc = res.headers.location;
    if (!loc) throw new DownloadError('bad-response', `${cur.href} answered ${status} without a Location header.`);
    if (hop >= MAX_REDIRECTS) throw new DownloadError('bad-response', `more than ${MAX_REDIRECTS} redirects fetching ${url}.`);
    const next = new URL(loc, cur);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new DownloadError('bad-response', `${cur.href} redirected to an unsupported URL ${next.href}.`);
    }
    cur = next;
  }
}

async function readText(res: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.destroy();
      throw new DownloadError('bad-response', `the server's answer is larger than ${formatBytes(limit)}.`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

interface StatusContext {
  repoId: string;
  revision: string;
  endpoint: string;
  hasToken: boolean;
  file: string | null; // null: the file list
}

/** Maps a non-2xx answer to a DownloadError (or a TransientError to retry). Consumes the body. */
async function failure(res: http.IncomingMessage, hub: http.IncomingHttpHeaders, c: StatusContext): Promise<Error> {
  const status = res.statusCode ?? 0;
  let body = '';
  try {
    body = await readText(res, 64 << 10);
  } catch {
    // the body only adds detail
  }
  const code = header(hub, 'x-error-code') ?? header(res.headers, 'x-error-code') ?? '';
  const detail = (header(hub, 'x-error-message') ?? header(res.headers, 'x-error-message') ?? body).trim().slice(0, 300);
  const ref = `${c.repoId}@${c.revision}`;
  const page = `${c.endpoint}/${c.repoId}`;
  if (code === 'GatedRepo' || ((status === 401 || status === 403) && /gated|restricted|accept the (license|conditions)/i.test(detail))) {
    return new DownloadError(
      'gated',
      `${c.repoId} is a gated model: accept the license on the model page (${page}) while logged in, then set HF_TOKEN to an ` +
        `access token of that account${c.hasToken ? ' (the current token has not been granted access)' : ''}.`,
    );
  }
  if (status === 401) {
    // The Hub answers 401 both for private repos without a token and for ids that do not exist.
    return new DownloadError(
      'unauthorized',
      c.hasToken
        ? `the token was refused for ${ref} (401): check that HF_TOKEN is a valid access token with read access to it, and the id.`
        : `${ref} needs authentication or does not exist (401): check the id, and for a private repo set HF_TOKEN to an ` +
            `access token with read access.`,
    );
  }
  if (c.file === null && (status === 404 || code === 'RepoNotFound' || code === 'RevisionNotFound')) {
    return new DownloadError(
      'not-found',
      `repository or revision not found: ${ref} (check the id, or set HF_TOKEN for private repos` +
        `${c.hasToken ? '; the current token may not have access' : ''}).`,
    );
  }
  if (status === 404) {
    return new DownloadError('not-found', `${c.file} is listed in ${ref} but the server has no such file (404); try again later.`);
  }
  if (status === 403) {
    return new DownloadError(
      'unauthorized',
      `access to ${c.repoId} is forbidden (403${detail ? `: ${detail}` : ''}): set HF_TOKEN to a token with read access to it.`,
    );
  }
  if (status === 429 || status >= 500) {
    const ra = Number(header(res.headers, 'retry-after'));
    return new TransientError(`HTTP ${status} for ${c.file ?? 'the file list'}`, Number.isFinite(ra) && ra >= 0 ? Math.min(ra, 60) * 1000 : null);
  }
  return new DownloadError('bad-response', `unexpected HTTP ${status} fetching ${c.file ?? 'the file list'} of ${ref}${detail ? `: ${detail}` : ''}.`);
}

const NET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN',
  'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CHUNK_SIZE', 'UND_ERR_SOCKET',
]);

/** The description of a retryable network failure, or null when `e` is something else. */
function transient(e: unknown): TransientError | null {
  if (e instanceof TransientError) return e;
  if (e instanceof DownloadError) return null;
  const err = e as NodeJS.ErrnoException;
  if (err && (NET_CODES.has(err.code ?? '') || err.message === 'aborted' || err.message === 'socket hang up')) {
    return new TransientError(`${err.code ?? 'network error'}: ${err.message}`);
  }
  return null;
}

/** Network failures that retrying will not fix: an unknown host, a TLS certificate the machine does not trust. */
function fatalNetwork(e: unknown, endpoint: string): DownloadError | null {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? '';
  if (code === 'ENOTFOUND') {
    return new DownloadError('network', `cannot resolve ${err.message.replace(/^getaddrinfo ENOTFOUND /, '')}: is this machine offline? (HF_ENDPOINT can point at a mirror).`);
  }
  if (/CERT|SSL|TLS/.test(code)) {
    return new DownloadError(
      'network',
      `the TLS connection to ${endpoint} failed (${code}: ${err.message}). Behind an intercepting proxy, give Node its CA with NODE_EXTRA_CA_CERTS.`,
    );
  }
  return null;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The download was aborted.', 'AbortError');
}

// ---------------------------------------------------------------------------------------------------------------
// The file list.

interface RemoteFile {
  name: string;
  size: number | null;
  sha256: string | null; // LFS files
  gitSha1: string | null; // small files: the git blob id, sha1("blob <size>\0" + content)
}

interface Listing {
  commit: string | null;
  files: Map<string, RemoteFile>;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

function parseListing(text: string, url: string): Listing {
  const bad = (why: string) => new DownloadError('bad-response', `unexpected answer from ${url}: ${why}. Is the endpoint a Hugging Face Hub?`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const o = json as { sha?: unknown; siblings?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.siblings)) throw bad('no "siblings" list');
  const files = new Map<string, RemoteFile>();
  for (const s of o.siblings as unknown[]) {
    const e = s as { rfilename?: unknown; size?: unknown; blobId?: unknown; lfs?: { sha256?: unknown; size?: unknown } | null };
    if (typeof e !== 'object' || e === null || typeof e.rfilename !== 'string') throw bad('a sibling without "rfilename"');
    const lfs = typeof e.lfs === 'object' && e.lfs !== null ? e.lfs : null;
    const sha256 = lfs && typeof lfs.sha256 === 'string' && HEX64.test(lfs.sha256) ? lfs.sha256 : null;
    const size = lfs && typeof lfs.size === 'number' ? lfs.size : typeof e.size === 'number' ? e.size : null;
    const gitSha1 = !lfs && typeof e.blobId === 'string' && HEX40.test(e.blobId) && size !== null ? e.blobId : null;
    files.set(e.rfilename, { name: e.rfilename, size: size !== null && Number.isSafeInteger(size) && size >= 0 ? size : null, sha256, gitSha1 });
  }
  const commit = typeof o.sha === 'string' && HEX40.test(o.sha) ? o.sha : null;
  return { commit, files };
}

/** The shard names listed by an index file, checked to be plain names present in the repository. */
function shardsOf(indexPath: string, listing: Listing, ref: string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new DownloadError('bad-response', `${INDEX} of ${ref} is not valid JSON (${(e as Error).message}).`);
  }
  const map = (json as { weight_map?: unknown })?.weight_map;
  if (typeof map !== 'object' || map === null) throw new DownloadError('bad-response', `${INDEX} of ${ref} has no "weight_map".`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string' || !s.endsWith('.safetensors') || !isSafeFileName(s)) {
      throw new DownloadError('bad-response', `${INDEX} of ${ref} names an unsafe or invalid shard ${JSON.stringify(s)}; refusing to download.`);
    }
    if (!listing.files.has(s)) throw new DownloadError('bad-response', `${INDEX} of ${ref} names shard ${s}, which the repository does not have.`);
  }
  return shards.sort() as string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Verification and the manifest.

class ContentHash {
  private readonly h: crypto.Hash;
  constructor(
    readonly algo: 'sha256' | 'git-sha1',
    readonly expected: string,
    size: number,
  ) {
    this.h = crypto.createHash(algo === 'sha256' ? 'sha256' : 'sha1');
    if (algo === 'git-sha1') this.h.update(`blob ${size}\0`);
  }
  update(b: Buffer): void {
    this.h.update(b);
  }
  digest(): string {
    return this.h.digest('hex');
  }
}

/** Feeds bytes [0, end) of a file to `h`. */
async function hashFile(file: string, end: number, h: ContentHash, signal?: AbortSignal): Promise<void> {
  if (end === 0) return;
  for await (const c of fs.createReadStream(file, { start: 0, end: end - 1, highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>) {
    h.update(c);
  }
}

interface ManifestEntry {
  size: number;
  mtimeMs: number; // a file touched since it was verified is verified again
  sha256?: string;
  gitSha1?: string;
}

interface Manifest {
  repo: string;
  revision: string;
  commit: string | null;
  complete: boolean;
  files: Record<string, ManifestEntry>;
}

function readManifest(dest: string): Manifest | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dest, MANIFEST), 'utf8')) as Manifest;
    return typeof m === 'object' && m !== null && typeof m.files === 'object' && m.files !== null ? m : null;
  } catch {
    return null;
  }
}

async function writeManifest(dest: string, m: Manifest): Promise<void> {
  const tmp = path.join(dest, `${MANIFEST}.part`);
  await fsp.writeFile(tmp, JSON.stringify(m, null, 2) + '\n');
  await fsp.rename(tmp, path.join(dest, MANIFEST));
}

async function syncPath(p: string, flags: string): Promise<void> {
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(p, flags);
    await fh.sync();
  } catch (e) {
    // Directories cannot be opened or fsynced on every platform (Windows); the rename is still atomic.
    if (flags === 'r+') throw e;
  } finally {
    await fh?.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The download.

/** Downloads the files the engine needs from `repoId` into a folder, resuming and verifying; returns the folder. */
export async function downloadModel(repoId: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const { owner, name } = parseRepoId(repoId);
  const revision = checkRevision(opts.revision ?? 'main');
  const endpoint = checkEndpoint(opts.endpoint ?? (process.env.HF_ENDPOINT || 'https://huggingface.co'));
  const token = opts.token ?? (process.env.HF_TOKEN || undefined);
  const dest = path.resolve(opts.dest ?? defaultModelDir(repoId));
  const signal = opts.signal;
  const retries = opts.retries ?? 5;
  const retryDelayMs = opts.retryDelayMs ?? 500;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
  signal?.throwIfAborted();
  const ref = `${repoId}@${revision}`;
  const status = (file: string | null): StatusContext => ({ repoId, revision, endpoint, hasToken: !!token, file });

  /** Runs `attempt` again after transient failures, with exponential backoff; `progressed` resets the count. */
  async function withRetries<T>(what: string, attempt: () => Promise<T>, progressed: () => boolean = () => false): Promise<T> {
    let failures = 0;
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        if (signal?.aborted) throw abortReason(signal);
        const t = transient(e);
        if (!t) throw fatalNetwork(e, endpoint) ?? e;
        failures = progressed() ? 1 : failures + 1;
        if (failures > retries) {
          throw new DownloadError(
            'network',
            `${what}: ${t.message}; gave up after ${retries} retries. Check the connection (or HF_ENDPOINT) and run again: ` +
              `finished and partial files are kept and resumed.`,
          );
        }
        await sleep(t.retryAfterMs ?? retryDelayMs * 2 ** Math.min(failures - 1, 4), undefined, { signal });
      }
    }
  }

  // 1. The file list.
  const listUrl = `${endpoint}/api/models/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const listing = await withRetries('the file list', async () => {
    const { res, hub } = await open(listUrl, { token, signal, idleTimeoutMs });
    if (res.statusCode !== 200) throw await failure(res, hub, status(null));
    return parseListing(await readText(res, 64 << 20), listUrl);
  });
  if (!listing.files.has('config.json')) {
    throw new DownloadError('not-found', `${ref} has no config.json at its top level; it is not a transformers model repository.`);
  }
  if (!listing.files.has(INDEX) && !listing.files.has(SINGLE)) {
    const names = [...listing.files.keys()];
    const other = names.filter((n) => /\.(bin|pt|pth|gguf|ggml|h5|msgpack|ckpt|safetensors)$/.test(n)).slice(0, 3);
    throw new DownloadError(
      'not-found',
      `this repository has no safetensors weights (neither ${SINGLE} nor ${INDEX} in ${ref}` +
        `${other.length ? `; it has ${other.join(', ')}` : ''}). Sidewinder reads safetensors only: look for a safetensors ` +
        `version of the model, or convert the weights with transformers (save_pretrained(safe_serialization=True)).`,
    );
  }
  const resolveRev = listing.commit ?? revision; // pin every file to one commit, even if the branch moves meanwhile
  const fileUrl = (f: string) =>
    `${endpoint}/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/resolve/${encodeURIComponent(resolveRev)}/${encodeURIComponent(f)}`;

  await fsp.mkdir(dest, { recursive: true });
  const old = readManifest(dest);
  const manifest: Manifest = {
    repo: repoId,
    revision,
    commit: listing.commit,
    complete: false,
    files: old && old.repo === repoId ? old.files : {},
  };
  const sameCommit = listing.commit !== null && old?.commit === listing.commit;
  const record = (rf: RemoteFile, st: fs.Stats) => {
    manifest.files[rf.name] = {
      size: st.size,
      mtimeMs: st.mtimeMs,
      ...(rf.sha256 ? { sha256: rf.sha256 } : rf.gitSha1 ? { gitSha1: rf.gitSha1 } : {}),
    };
  };

  // Progress over the whole plan; `plan` grows once the index has named the shards.
  const plan: string[] = SMALL_FILES.filter((f) => listing.files.has(f));
  let filesDone = 0;
  let bytesDone = 0; // finished files
  let lastEmit = 0;
  const bytesTotal = () => plan.reduce((s, f) => s + (listing.files.get(f)?.size ?? 0), 0);
  /** `bytes` of `file` are on disk; `finished`: the file is already counted in filesDone and bytesDone. */
  const emit = (file: string, bytes: number, total: number, force: boolean, finished = false) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - lastEmit < PROGRESS_INTERVAL_MS) return;
    lastEmit = now;
    const p = { file, bytes, total, filesDone, filesTotal: plan.length, bytesDone: bytesDone + (finished ? 0 : bytes), bytesTotal: bytesTotal() };
    opts.onProgress(p);
  };

  /** Bytes still to fetch, for the disk-full message. */
  const remaining = () => Math.max(0, bytesTotal() - bytesDone);

  async function diskError(e: unknown, file: string, written: number): Promise<unknown> {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') return e;
    let free = '';
    try {
      const s = await fsp.statfs(dest);
      free = `, ${formatBytes(s.bavail * s.bsize)} free`;
    } catch {
      // the message is still useful without it
    }
    return new DownloadError(
      'disk-full',
      `the disk is full while writing ${file} to ${dest}: about ${formatBytes(Math.max(0, remaining() - written))} more is ` +
        `needed${free}. Free some space or choose another --dest, then run again: finished and partial files are kept.`,
    );
  }

  /** Is the finished file at `final` already the remote file? */
  async function alreadyComplete(rf: RemoteFile, final: string): Promise<boolean> {
    let st: fs.Stats;
    try {
      st = await fsp.stat(final);
    } catch {
      return false;
    }
    if (!st.isFile()) return false;
    // Verified before and untouched since: trust it if it has the listed hash (or, with no hash, the same commit).
    const rec = manifest.files[rf.name];
    const sizeOk = rf.size === null || st.size === rf.size;
    if (rec && rec.size === st.size && rec.mtimeMs === st.mtimeMs && sizeOk) {
      if (rf.sha256 ? rec.sha256 === rf.sha256 : rf.gitSha1 ? rec.gitSha1 === rf.gitSha1 : sameCommit) return true;
    }
    if (rf.size === null || !sizeOk) return false;
    const h = rf.sha256 ? new ContentHash('sha256', rf.sha256, rf.size) : rf.gitSha1 ? new ContentHash('git-sha1', rf.gitSha1, rf.size) : null;
    if (h) {
      emit(rf.name, 0, rf.size, true);
      await hashFile(final, st.size, h, signal);
      if (h.digest() !== h.expected) return false;
    }
    record(rf, st);
    return true;
  }

  /** Fetches one file into `{dest}/.{file}.part`, resuming, then verifies it and renames it into place. */
  async function fetchFile(file: string): Promise<void> {
    const rf = listing.files.get(file)!;
    const final = path.join(dest, file);
    const part = path.join(dest, `.${file}.part`);
    if (await alreadyComplete(rf, final)) {
      await fsp.rm(part, { force: true });
      return;
    }

    // State kept across attempts: `hash` covers exactly bytes [0, offset) of the part file when set.
    let offset = 0;
    try {
      offset = (await fsp.stat(part)).size;
    } catch {
      // no part file: start from zero
    }
    let hash: ContentHash | null = null;
    const resumedFromEarlierRun = offset > 0;
    let restartedFresh = false;
    let progressed = false;

    const reset = async () => {
      await fsp.rm(part, { force: true });
      offset = 0;
      hash = null;
    };
    const ensureHash = async () => {
      if (hash || rf.size === null) return;
      if (rf.sha256) hash = new ContentHash('sha256', rf.sha256, rf.size);
      else if (rf.gitSha1) hash = new ContentHash('git-sha1', rf.gitSha1, rf.size);
      if (hash) await hashFile(part, offset, hash, signal);
    };

    /** The part holds the whole file: check it, then move it into place. False: it was bad and was deleted. */
    const finish = async (): Promise<boolean> => {
      if (rf.size !== null && offset !== rf.size) throw new Error(`internal: finishing ${file} at ${offset} of ${rf.size}`);
      await ensureHash();
      if (hash) {
        const { algo, expected } = hash;
        const got = hash.digest();
        if (got !== expected) {
          await reset();
          // A part left by an earlier run may come from another commit of the file: start over once.
          if (resumedFromEarlierRun && !restartedFresh) {
            restartedFresh = true;
            return false;
          }
          throw new DownloadError(
            'hash-mismatch',
            `${file} is corrupt: its ${algo} is ${got}, but ${ref} says ${expected}. The partial file was deleted; ` +
              `run again to download it afresh. If this repeats, something between you and ${endpoint} alters the download.`,
          );
        }
      }
      await syncPath(part, 'r+');
      await fsp.rename(part, final);
      await syncPath(dest, 'r');
      record(rf, await fsp.stat(final));
      return true;
    };

    const attempt = async (): Promise<void> => {
      progressed = false;
      for (;;) {
        if (rf.size !== null && offset > rf.size) await reset();
        if (rf.size !== null && offset === rf.size && offset > 0) {
          if (await finish()) return;
          continue;
        }
        const { res, hub } = await open(fileUrl(file), { headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, token, signal, idleTimeoutMs });
        const code = res.statusCode ?? 0;
        const contentRange = header(res.headers, 'content-range');
        const crTotal = contentRange ? Number(/\/(\d+)$/.exec(contentRange)?.[1]) : NaN;

        // Learn what the listing did not say from the Hub's own headers (as huggingface_hub does).
        const learn = (total: number) => {
          if (rf.size === null && Number.isSafeInteger(total) && total >= 0) rf.size = total;
          if (!rf.sha256 && !rf.gitSha1) {
            const etag = (header(hub, 'x-linked-etag') ?? header(hub, 'etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
            if (HEX64.test(etag)) rf.sha256 = etag;
          }
        };

        if (code === 416) {
          res.resume();
          if (offset === 0) throw new DownloadError('bad-response', `${fileUrl(file)} answered 416 to a request without Range.`);
          learn(crTotal);
          if (rf.size !== null && offset === rf.size) {
            if (await finish()) return;
          } else {
            await reset();
          }
          continue;
        }
        if (code !== 200 && code !== 206) throw await failure(res, hub, status(file));
        if (code === 200 && offset > 0) await reset(); // the server ignored the Range: start over
        if (code === 206) {
          const start = Number(/^bytes (\d+)-/.exec(contentRange ?? '')?.[1]);
          if (start !== offset) {
            res.destroy();
            await reset();
            throw new TransientError(`the server resumed ${file} at ${contentRange ?? '?'} instead of byte ${offset}`);
          }
        }
        const length = Number(header(res.headers, 'content-length'));
        learn(code === 206 ? crTotal : Number(header(hub, 'x-linked-size') ?? (Number.isFinite(length) ? length : NaN)));
        emit(file, offset, rf.size ?? 0, true);
        await ensureHash();

        const fh = await fsp.open(part, offset > 0 ? 'a' : 'w');
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async () => {
          if (pendingBytes === 0) return;
          const buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          try {
            for (let off = 0; off < buf.length; ) {
              const { bytesWritten } = await fh.write(buf, off, buf.length - off);
              if (bytesWritten <= 0) throw Object.assign(new Error(`no progress writing ${part}`), { code: 'ENOSPC' });
              off += bytesWritten;
            }
          } catch (e) {
            throw await diskError(e, file, offset);
          }
          hash?.update(buf);
          offset += buf.length;
          progressed = true;
          emit(file, offset, rf.size ?? 0, false);
        };
        try {
          try {
            for await (const chunk of res as AsyncIterable<Buffer>) {
              pending.push(chunk);
              pendingBytes += chunk.length;
              if (rf.size !== null && offset + pendingBytes > rf.size) {
                throw new DownloadError('bad-response', `${file}: the server sent more than the ${rf.size} bytes ${ref} lists.`);
              }
              if (pendingBytes >= WRITE_BATCH) await flush();
            }
          } catch (e) {
            // Keep what arrived before the connection dropped, so the retry resumes after it.
            if (transient(e) && !signal?.aborted) await flush();
            throw e;
          }
          await flush();
        } catch (e) {
          res.destroy();
          if (e instanceof DownloadError && e.kind === 'bad-response') await fh.close().then(reset, reset);
          throw e;
        } finally {
          await fh.close().catch(() => {});
        }
        if (rf.size === null) rf.size = offset; // no size anywhere: trust a body that ended cleanly
        if (offset < rf.size) throw new TransientError(`the connection closed after ${offset} of ${rf.size} bytes of ${file}`);
        if (await finish()) return;
      }
    };

    await withRetries(file, attempt, () => progressed);
  }

  // 2. The small files (the index first: it names the shards), then the weights.
  const doFile = async (file: string) => {
    const rf = listing.files.get(file)!;
    emit(file, 0, rf.size ?? 0, true);
    await fetchFile(file);
    filesDone++;
    bytesDone += rf.size ?? 0;
    emit(file, rf.size ?? 0, rf.size ?? 0, true, true);
    await writeManifest(dest, manifest);
  };
  const shards = listing.files.has(INDEX)
    ? await (async () => {
        await fetchFile(INDEX);
        return shardsOf(path.join(dest, INDEX), listing, ref);
      })()
    : [SINGLE];
  plan.push(...shards);
  for (const f of plan) await doFile(f);

  manifest.complete = true;
  await writeManifest(dest, manifest);
  return { dir: dest, files: [...plan], bytes: plan.reduce((s, f) => s + (listing.files.get(f)?.size ?? 0), 0) };
}
