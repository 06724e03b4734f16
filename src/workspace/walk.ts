// The workspace reader: lists the files the model should read, in ingest order (least recently modified first, so
// the files being edited sit at the end and a snapshot of everything before them stays valid), and says why every
// other file is left out.
//
// What is left out, in order of precedence:
//   ignored      .gitignore (every level, and those above the root up to the repository's top), .git/info/exclude,
//                .sidewinderignore (any level, same syntax, overrides .gitignore in its directory), opts.extraIgnore
//                (highest precedence). An excluded directory is reported once and not entered. '.git', '.hg' and
//                '.svn' are never entered nor reported. Nothing else is ignored by default (not even node_modules).
//   secret       a name that looks like a credential (DEFAULT_SECRET_PATTERNS): never opened, never stat'ed for size.
//   lockfile, binary (by extension), generated (*.min.js, *.map): by name, never opened.
//   too-large    over maxFileBytes by stat: never read.
//   binary, invalid-utf8, generated (long lines, a generated-code header): after one read of the file.
// Symbolic links are followed only when their real path is inside the root; links are resolved after the plain
// tree has been walked, so a file reachable both directly and through a link is listed once, under its own path.

import * as fs from 'fs';
import * as path from 'path';
import { SidewinderError } from '../engine/errors';
import { classifyContent, compileSecretPatterns, DEFAULT_SECRET_PATTERNS, isSecret, isSecretPath, reasonByName, type SkipReason } from './classify';
import { compileIgnore, isIgnored, lastMatch, type IgnoreRule, type IgnoreRuleSet } from './ignore';

export interface WorkspaceFile {
  path: string; // relative to the root, '/' separators
  abs: string; // real absolute path (symbolic links resolved)
  bytes: number;
  mtimeMs: number;
}

export interface SkippedFile {
  path: string; // relative to the root, '/' separators; a directory when the whole directory was skipped
  reason: SkipReason;
}

export interface WorkspaceListing {
  files: WorkspaceFile[]; // ingest order: mtimeMs ascending, ties by path (byte order)
  skipped: SkippedFile[]; // by path
}

export interface WorkspaceOptions {
  maxFileBytes?: number; // larger files are skipped unread (default 512 KiB)
  maxLineLength?: number; // a longer line marks a file as generated (default 1000)
  extraIgnore?: string[]; // gitignore lines relative to the root, applied after every ignore file
  secretPatterns?: string[]; // replaces DEFAULT_SECRET_PATTERNS (extend it with [...DEFAULT_SECRET_PATTERNS, ...])
  signal?: AbortSignal; // aborts the walk with signal.reason
  onProgress?: (n: number) => void; // number of files examined so far (listed or skipped)
  readFile?: (abs: string) => Promise<Buffer>; // replaces the file reader (tests); not used for ignore files
}

/** The workspace root is missing or not a readable directory. */
export class WorkspaceError extends SidewinderError {}

export const DEFAULT_MAX_FILE_BYTES = 512 * 1024;
export const DEFAULT_MAX_LINE_LENGTH = 1000;
/** Files read at once. */
const READ_CONCURRENCY = 16;
/** Version-control metadata: never entered, never reported. */
const VCS_DIRS = new Set(['.git', '.hg', '.svn']);
/** Ignore files read in every directory; a later one overrides an earlier one. */
const IGNORE_FILES = ['.gitignore', '.sidewinderignore'];

interface Settings {
  maxFileBytes: number;
  maxLineLength: number;
  readFile: (abs: string) => Promise<Buffer>;
  signal?: AbortSignal;
}

function settings(opts: WorkspaceOptions): Settings {
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const maxLineLength = opts.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  if (!Number.isInteger(maxFileBytes) || maxFileBytes < 0) throw new RangeError(`maxFileBytes must be a non-negative integer, got ${maxFileBytes}.`);
  if (!Number.isInteger(maxLineLength) || maxLineLength < 1) throw new RangeError(`maxLineLength must be a positive integer, got ${maxLineLength}.`);
  return { maxFileBytes, maxLineLength, readFile: opts.readFile ?? ((abs) => readCapped(abs, maxFileBytes + 1)), signal: opts.signal };
}

/**
 * Lists the workspace: every file the model should read, with the reason for each one it should not. Each
 * candidate file is read once to check its content; the text is not kept (see readWorkspaceFile). Throws
 * WorkspaceError when the root is not a readable directory, and signal.reason when aborted; a bad entry inside
 * the root is reported in `skipped` instead.
 */
export async function walkWorkspace(root: string, opts: WorkspaceOptions = {}): Promise<WorkspaceListing> {
  const s = settings(opts);
  const rootAbs = path.resolve(root);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(rootAbs);
  } catch (e) {
    throw new WorkspaceError(`The workspace ${rootAbs} cannot be opened (${errorCode(e)}). Pass an existing directory.`);
  }
  if (!st.isDirectory()) throw new WorkspaceError(`The workspace ${rootAbs} is not a directory. Pass the folder that holds the code.`);
  const realRoot = await fs.promises.realpath(rootAbs);
  const walker = new Walker(realRoot, s, {
    secrets: compileSecretPatterns(opts.secretPatterns ?? DEFAULT_SECRET_PATTERNS),
    extra: compileIgnore((opts.extraIgnore ?? []).join('\n')),
    onProgress: opts.onProgress,
  });
  await walker.run(await outerRuleSets(realRoot));
  return walker.listing();
}

/**
 * Reads a listed file again for ingestion; it may have changed since the walk, so size and content are checked
 * again. A file deleted since is { skipped: 'vanished' }. Pass the options given to walkWorkspace.
 */
export async function readWorkspaceFile(file: WorkspaceFile, opts: WorkspaceOptions = {}): Promise<{ text: string } | { skipped: SkipReason }> {
  const r = await inspectFile(file.abs, settings(opts));
  return 'reason' in r ? { skipped: r.reason } : { text: r.text };
}

/** stat, size check, one read, content check. */
async function inspectFile(abs: string, s: Settings): Promise<{ text: string; bytes: number; mtimeMs: number } | { reason: SkipReason }> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(abs); // abs is a real path: a link here was put there after the walk
  } catch (e) {
    return { reason: errorReason(e) };
  }
  if (!st.isFile()) return { reason: 'unreadable' };
  if (st.size > s.maxFileBytes) return { reason: 'too-large' };
  let bytes: Buffer;
  try {
    bytes = await s.readFile(abs);
  } catch (e) {
    s.signal?.throwIfAborted();
    return { reason: errorReason(e) };
  }
  if (bytes.length > s.maxFileBytes) return { reason: 'too-large' }; // it grew since the stat
  const c = classifyContent(bytes, s);
  return 'reason' in c ? c : { text: c.text, bytes: bytes.length, mtimeMs: st.mtimeMs };
}

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

/** Reads at most `cap` bytes; does not follow a final symbolic link and does not block on a FIFO. */
async function readCapped(abs: string, cap: number): Promise<Buffer> {
  const fh = await fs.promises.open(abs, OPEN_FLAGS);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < cap) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 16, cap - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? String(e);
}

/** A file that disappeared (or whose directory did) is 'vanished'; every other failure is 'unreadable'. */
function errorReason(e: unknown): SkipReason {
  const code = errorCode(e);
  return code === 'ENOENT' || code === 'ENOTDIR' ? 'vanished' : 'unreadable';
}

/** `abs` relative to `dir` with '/' separators, or null when it is outside. */
function relInside(dir: string, abs: string): string | null {
  const r = path.relative(dir, abs);
  if (r === '') return '';
  if (r === '..' || r.startsWith('..' + path.sep) || path.isAbsolute(r)) return null;
  return r.split(path.sep).join('/');
}

/** The rule set of one ignore file in the directory `base` (relative to the root). */
function ruleSet(rules: IgnoreRule[], base: string): IgnoreRuleSet {
  return { rules, localPath: base === '' ? (rel) => rel : (rel) => rel.slice(base.length + 1) };
}

/** The rule set of an ignore file above the root; `below` is the root relative to the file's directory. */
function outerRuleSet(rules: IgnoreRule[], below: string): IgnoreRuleSet {
  return { rules, localPath: below === '' ? (rel) => rel : (rel) => `${below}/${rel}` };
}

async function readRules(file: string): Promise<IgnoreRule[] | null> {
  try {
    return compileIgnore(await fs.promises.readFile(file, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * The ignore rules that apply from outside the walk: .git/info/exclude of the repository holding the root, and the
 * .gitignore / .sidewinderignore files between that repository's top and the root. Least specific first.
 */
async function outerRuleSets(realRoot: string): Promise<IgnoreRuleSet[]> {
  let top: string | null = null;
  for (let d = realRoot; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, '.git'))) {
      top = d;
      break;
    }
    if (path.dirname(d) === d) break;
  }
  if (top === null) return [];
  const toRoot = relInside(top, realRoot)!;
  const sets: IgnoreRuleSet[] = [];
  const gitDir = await resolveGitDir(path.join(top, '.git'));
  const exclude = gitDir && (await readRules(path.join(gitDir, 'info', 'exclude')));
  if (exclude) sets.push(outerRuleSet(exclude, toRoot));
  const segs = toRoot === '' ? [] : toRoot.split('/');
  for (let i = 0; i < segs.length; i++) {
    for (const name of IGNORE_FILES) {
      const rules = await readRules(path.join(top, ...segs.slice(0, i), name));
      if (rules) sets.push(outerRuleSet(rules, segs.slice(i).join('/')));
    }
  }
  return sets;
}

/** The directory holding info/exclude: .git itself, or for a worktree or submodule the one its 'gitdir:' names. */
async function resolveGitDir(dotGit: string): Promise<string | null> {
  try {
    if ((await fs.promises.stat(dotGit)).isDirectory()) return dotGit;
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(await fs.promises.readFile(dotGit, 'utf8'));
    if (!m) return null;
    const gitDir = path.resolve(path.dirname(dotGit), m[1]);
    const common = await fs.promises.readFile(path.join(gitDir, 'commondir'), 'utf8').catch(() => null);
    return common === null ? gitDir : path.resolve(gitDir, common.trim());
  } catch {
    return null;
  }
}

/** A symbolic link met during the walk; followed once the plain tree is done. */
interface PendingLink {
  rel: string;
  abs: string;
  sets: readonly IgnoreRuleSet[]; // the ignore rules in force where the link is
  ancestors: readonly string[]; // real paths of the directories containing it, root first
}

/** Runs at most `n` tasks at once. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

class Walker {
  private readonly files: WorkspaceFile[] = [];
  private readonly skipped: SkippedFile[] = [];
  private readonly visitedDirs = new Set<string>(); // real paths
  private readonly seenFiles = new Set<string>(); // real paths of files already examined
  private readonly links: PendingLink[] = [];
  private readonly reads: Promise<void>[] = [];
  private readonly pool = limiter(READ_CONCURRENCY);
  private failure: unknown = null; // the first error a read task threw (an abort)
  private examined = 0;

  constructor(
    private readonly realRoot: string,
    private readonly s: Settings,
    private readonly rules: { secrets: IgnoreRule[]; extra: IgnoreRule[]; onProgress?: (n: number) => void },
  ) {}

  async run(outer: IgnoreRuleSet[]): Promise<void> {
    this.visitedDirs.add(this.realRoot);
    await this.walkDir(this.realRoot, '', outer, [this.realRoot]);
    // Links last, in the order met (following one may add more).
    for (let i = 0; i < this.links.length; i++) await this.followLink(this.links[i]);
    await Promise.all(this.reads);
    if (this.failure !== null) throw this.failure;
  }

  listing(): WorkspaceListing {
    const files = this.files
      .map((f) => ({ f, key: Buffer.from(f.path) }))
      .sort((a, b) => a.f.mtimeMs - b.f.mtimeMs || Buffer.compare(a.key, b.key))
      .map((x) => x.f);
    const skipped = this.skipped
      .map((f) => ({ f, key: Buffer.from(f.path) }))
      .sort((a, b) => Buffer.compare(a.key, b.key) || (a.f.reason < b.f.reason ? -1 : a.f.reason > b.f.reason ? 1 : 0))
      .map((x) => x.f);
    return { files, skipped };
  }

  private skip(rel: string, reason: SkipReason): void {
    this.skipped.push({ path: rel, reason });
    this.rules.onProgress?.(++this.examined);
  }

  /** extraIgnore first (highest precedence), then the ignore files from the most specific directory up. */
  private ignored(sets: readonly IgnoreRuleSet[], rel: string, isDir: boolean): boolean {
    const hit = lastMatch(this.rules.extra, rel, isDir);
    return hit ? !hit.negated : isIgnored(sets, rel, isDir);
  }

  private async walkDir(real: string, rel: string, parentSets: readonly IgnoreRuleSet[], ancestors: readonly string[]): Promise<void> {
    this.s.signal?.throwIfAborted();
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(real, { withFileTypes: true });
    } catch (e) {
      if (rel === '') throw new WorkspaceError(`The workspace ${real} cannot be read (${errorCode(e)}).`);
      this.skip(rel, errorReason(e) === 'vanished' ? 'vanished' : 'unreadable');
      return;
    }
    entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));

    // This directory's ignore files (not followed when they are links, as git does).
    let sets = parentSets;
    for (const name of IGNORE_FILES) {
      if (!entries.some((e) => e.name === name && e.isFile())) continue;
      const rules = await readRules(path.join(real, name));
      if (rules === null) this.skip(rel === '' ? name : `${rel}/${name}`, 'unreadable');
      else if (rules.length > 0) sets = [...sets, ruleSet(rules, rel)];
    }

    for (const e of entries) {
      if (VCS_DIRS.has(e.name)) continue;
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      const childReal = path.join(real, e.name);
      if (e.isSymbolicLink()) {
        this.links.push({ rel: childRel, abs: childReal, sets, ancestors });
        continue;
      }
      const isDir = e.isDirectory();
      if (this.ignored(sets, childRel, isDir)) this.skip(childRel, 'ignored');
      else if (isDir && isSecret(this.rules.secrets, childRel, true)) this.skip(childRel, 'secret');
      else if (isDir) {
        this.visitedDirs.add(childReal);
        await this.walkDir(childReal, childRel, sets, [...ancestors, childReal]);
      } else if (e.isFile()) this.examineFile(childRel, childReal, childRel);
      else this.skip(childRel, 'unreadable'); // FIFO, socket, device: never opened
    }
  }

  private async followLink(link: PendingLink): Promise<void> {
    this.s.signal?.throwIfAborted();
    let target: string;
    let st: fs.Stats;
    try {
      target = await fs.promises.realpath(link.abs);
      st = await fs.promises.stat(target);
    } catch (e) {
      if (this.ignored(link.sets, link.rel, false)) this.skip(link.rel, 'ignored');
      else this.skip(link.rel, errorCode(e) === 'ELOOP' ? 'symlink-loop' : 'unreadable'); // a chain of links, or a dangling one
      return;
    }
    const isDir = st.isDirectory();
    const realRel = relInside(this.realRoot, target);
    if (this.ignored(link.sets, link.rel, isDir)) this.skip(link.rel, 'ignored');
    else if (realRel === null) this.skip(link.rel, 'symlink-outside');
    else if (realRel.split('/').some((seg) => VCS_DIRS.has(seg))) this.skip(link.rel, 'ignored');
    else if (isDir) {
      if (isSecretPath(this.rules.secrets, link.rel, true) || isSecretPath(this.rules.secrets, realRel, true)) this.skip(link.rel, 'secret');
      else if (!this.visitedDirs.has(target)) {
        this.visitedDirs.add(target);
        await this.walkDir(target, link.rel, link.sets, [...link.ancestors, target]);
      } else if (link.ancestors.includes(target)) this.skip(link.rel, 'symlink-loop');
      // else: a second way into a directory already listed; its files are listed once, under the first path.
    } else if (st.isFile()) this.examineFile(link.rel, target, realRel);
    else this.skip(link.rel, 'unreadable');
  }

  /** Name checks now (on the path and, for a link, the target's path too); the content check in the read pool. */
  private examineFile(rel: string, real: string, realRel: string): void {
    if (this.seenFiles.has(real)) return; // reached twice: listed (or skipped) once
    this.seenFiles.add(real);
    const byName = reasonByName(this.rules.secrets, rel) ?? (realRel !== rel ? reasonByName(this.rules.secrets, realRel) : null);
    if (byName !== null) {
      this.skip(rel, byName);
      return;
    }
    const task = this.pool(async () => {
      this.s.signal?.throwIfAborted();
      const r = await inspectFile(real, this.s);
      if ('reason' in r) this.skip(rel, r.reason);
      else {
        this.files.push({ path: rel, abs: real, bytes: r.bytes, mtimeMs: r.mtimeMs });
        this.rules.onProgress?.(++this.examined);
      }
    });
    // Never left rejected while the walk goes on; the first failure is rethrown at the end.
    this.reads.push(task.catch((e: unknown) => void (this.failure ??= e)));
  }
}
