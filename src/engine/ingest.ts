// Streaming a whole workspace into the model: read -> tokenize -> chunked prefill that carries the Mamba state
// and appends KV, with progress, cancellation, snapshots and a checkpoint ladder.
//
// The snapshot holds the state after the last file plus the Mamba state at file boundaries every few thousand
// tokens (the ladder). When files change, they move to the end of the ingest order (it is by mtime), so the
// files before the first change are untouched: the state is restored at the last checkpoint before that
// change (KV truncated there) and only the tail is read again.

import { createHash } from 'crypto';
import * as path from 'path';
import { saveSnapshotLending, loadSnapshot, SnapshotError, type Checkpoint, type SaveReport, type Snapshot } from './memory/snapshot';
import type { LanguageModel, MemoryReport, ModelState } from './model';
import { chatFormat, preambleTokens } from './chat';
import type { TextTokenizer } from './tokenizer';
import { DEFAULT_MAX_FILE_BYTES, FRAME_VERSION, frameFile, readWorkspaceFile, walkWorkspace, type WorkspaceOptions } from '../workspace';

export interface ManifestFile {
  path: string;
  sha256: string;
  start: number; // first token position
  end: number; // one past the last token position
}

export interface WorkspaceManifest {
  root: string;
  files: ManifestFile[];
  /** A file cut short by cancellation: its first `done` tokens are in the state. */
  partial: { path: string; sha256: string; start: number; done: number } | null;
  /** FRAME_VERSION of the framing the files were read with (absent: before versions). */
  frame?: number;
}

export interface IngestProgress {
  phase: 'scanning' | 'restoring' | 'ingesting' | 'saving' | 'done';
  files: number; // files ingested so far in this pass (including restored ones)
  filesTotal: number;
  tokens: number; // tokens in the state
  tokensPerSecond: number;
  etaSeconds: number | null;
  path?: string;
}

export interface IngestReport {
  files: number;
  skipped: Record<string, number>;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  resumedFromSnapshot: boolean;
  reingestedTokens: number;
  snapshot: string | null;
  snapshotProblem: string | null; // why an existing snapshot could not be used
  /** Seconds from the start of the sync until the state was restored (scan, hash, snapshot open, import). */
  restoreSeconds: number;
  /** Seconds spent writing the snapshot (0 when nothing changed). */
  saveSeconds: number;
  /** What the save wrote (bytes of the snapshot, of its block file, appended to it); null when nothing was saved. */
  save: SaveReport | null;
  cancelled: boolean;
  memory: MemoryReport;
}

export interface SyncOptions {
  signal?: AbortSignal;
  onProgress?: (p: IngestProgress) => void;
  /**
   * Called at every point where the model's state is consistent and may be lent out (forked, used, rolled back)
   * before the sync goes on: while files are read (the previous state), after the restore, after each chunk, and
   * before and during the save (every 32 MiB written). Completions are served there, so they never wait for a whole sync.
   */
  yieldPoint?: () => Promise<void>;
  /** Tokens of the next chunk, asked before each one (default: IngestOptions.chunkTokens): smaller while typing. */
  chunkTokens?: () => number;
  /**
   * The model still holds exactly the state this ingest's last sync left (nothing else ran on it since): when no
   * file changed, the sync returns at once, without resetting or restoring anything.
   */
  stateHeld?: boolean;
}

export interface IngestOptions {
  workspace: string;
  cacheDir: string | null; // null: no snapshot
  modelId: string;
  /** Keep a Mamba checkpoint at the first file boundary after every this many tokens. */
  checkpointEvery?: number;
  /** Tokens per prefill call. */
  chunkTokens?: number;
  /**
   * Checkpoints kept (each is a whole Mamba state, 22 MB at the Granite-4.0-H-350m shape): past this many the
   * ladder is thinned away from the end, where edits happen (recently modified files are ingested last).
   */
  maxCheckpoints?: number;
  /** Stop adding files once the workspace holds this many tokens (the rest are skipped as 'token-limit'). */
  maxTokens?: number;
  walk?: WorkspaceOptions;
}

interface FileText {
  path: string;
  sha256: string;
  text: string;
  tokens: number[] | null; // framed tokens, made when needed
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Keeps at most `max` checkpoints: drops the one (never among the newest quarter) whose removal leaves the
 * smallest gap, so spacing grows towards the start of the workspace and stays fine near its end.
 */
export function thinLadder(ladder: Checkpoint[], max: number): void {
  while (ladder.length > max && ladder.length > 2) {
    const protect = Math.max(1, Math.floor(ladder.length / 4));
    let best = -1;
    let bestGap = Infinity;
    for (let i = 0; i < ladder.length - protect; i++) {
      const prev = i > 0 ? ladder[i - 1].position : 0;
      const gap = ladder[i + 1].position - prev;
      if (gap < bestGap) {
        bestGap = gap;
        best = i;
      }
    }
    ladder.splice(best, 1);
  }
}

export class WorkspaceIngest {
  private checkpoints: Checkpoint[] = [];
  manifest: WorkspaceManifest | null = null;
  private heldPosition = -1; // the model's position when the last sync returned

  constructor(
    readonly model: LanguageModel,
    readonly tokenizer: TextTokenizer,
    readonly opts: IngestOptions,
  ) {}

  /** Paths of the files the state holds after sync (a file cut short by cancellation included). */
  statePaths(): string[] {
    const m = this.manifest;
    return m ? [...m.files.map((f) => f.path), ...(m.partial ? [m.partial.path] : [])] : [];
  }

  snapshotPath(): string | null {
    if (!this.opts.cacheDir) return null;
    const ws = createHash('sha256').update(path.resolve(this.opts.workspace)).digest('hex').slice(0, 16);
    return path.join(this.opts.cacheDir, `${path.basename(path.resolve(this.opts.workspace))}-${ws}`, `${this.opts.modelId}.swsnap`);
  }

  /** Brings the model's state up to date with the workspace, reading only what changed since the snapshot. */
  async sync(opts: SyncOptions = {}): Promise<IngestReport> {
    const t0 = performance.now();
    const progress = opts.onProgress ?? (() => undefined);
    const everyOpt = this.opts.checkpointEvery;
    const chunkOf = () => Math.max(1, Math.floor(opts.chunkTokens?.() ?? this.opts.chunkTokens ?? 2048));
    const yieldPoint = opts.yieldPoint ?? (() => Promise.resolve());
    const held = opts.stateHeld === true && this.manifest !== null && this.model.position === this.heldPosition;
    progress({ phase: 'scanning', files: 0, filesTotal: 0, tokens: 0, tokensPerSecond: 0, etaSeconds: null });
    const listing = await walkWorkspace(this.opts.workspace, { ...this.opts.walk, signal: opts.signal });
    const skipped: Record<string, number> = {};
    for (const s of listing.skipped) skipped[s.reason] = (skipped[s.reason] ?? 0) + 1;

    // Read and hash every file. Tokens are made only for files that are (re)ingested: those the snapshot
    // already holds unchanged are known by their token span in its manifest.
    const texts: FileText[] = [];
    let lastYield = performance.now();
    for (const f of listing.files) {
      if (opts.signal?.aborted) break;
      if (performance.now() - lastYield > 20) {
        await yieldPoint(); // the model still holds the previous state: completions run on it
        lastYield = performance.now();
      }
      const r = await readWorkspaceFile(f, this.opts.walk);
      if ('skipped' in r) {
        skipped[r.skipped] = (skipped[r.skipped] ?? 0) + 1;
        continue;
      }
      texts.push({ path: f.path, sha256: sha256(r.text), text: r.text, tokens: null });
    }
    const tokensOf = (t: FileText): number[] => (t.tokens ??= frameFile(t.path, t.text, this.tokenizer.special, (s) => this.tokenizer.encode(s)));

    // The state is this ingest's own and no file changed: nothing to restore or read.
    const unchanged = (m: WorkspaceManifest) =>
      !m.partial &&
      m.frame === FRAME_VERSION &&
      m.files.length === texts.length &&
      m.files.every((f, i) => f.path === texts[i].path && f.sha256 === texts[i].sha256);
    if (held && !opts.signal?.aborted && unchanged(this.manifest!)) {
      const m = this.manifest!;
      progress({ phase: 'done', files: m.files.length, filesTotal: texts.length, tokens: this.model.position, tokensPerSecond: 0, etaSeconds: 0 });
      return {
        files: m.files.length,
        skipped,
        tokens: this.model.position,
        seconds: (performance.now() - t0) / 1000,
        tokensPerSecond: 0,
        resumedFromSnapshot: true,
        reingestedTokens: 0,
        snapshot: this.snapshotPath(),
        snapshotProblem: null,
        restoreSeconds: 0,
        saveSeconds: 0,
        save: null,
        cancelled: false,
        memory: this.model.memory(),
      };
    }

    // Restore what the snapshot still covers.
    const snapFile = this.snapshotPath();
    let snapshotProblem: string | null = null;
    let resumed = false;
    let startFile = 0; // index into texts of the first file to (re)ingest
    let skipTokens = 0; // tokens of texts[startFile] already in the state (restart inside a file)
    this.model.reset();
    this.checkpoints = [];
    const manifest: WorkspaceManifest = { root: path.resolve(this.opts.workspace), files: [], partial: null, frame: FRAME_VERSION };
    let snap: Snapshot<WorkspaceManifest> | null = null;
    if (snapFile) {
      try {
        progress({ phase: 'restoring', files: 0, filesTotal: texts.length, tokens: 0, tokensPerSecond: 0, etaSeconds: null });
        snap = loadSnapshot<WorkspaceManifest>(snapFile, this.opts.modelId);
      } catch (e) {
        if (!(e instanceof SnapshotError)) throw e;
        if (e.kind !== 'missing') snapshotProblem = e.message;
      }
      if (snap && snap.manifest.frame !== FRAME_VERSION) {
        // Same files, same model, but read with another framing (e.g. a footer that lists more definitions).
        snapshotProblem = 'the snapshot was read with an older file framing; the workspace will be re-read.';
        snap = null;
      }
    }
    // The token limit: files the snapshot holds count by their span, the others are tokenized.
    const old = snap?.manifest;
    let common = 0; // files at the start unchanged since the snapshot
    while (old && common < old.files.length && common < texts.length && old.files[common].path === texts[common].path && old.files[common].sha256 === texts[common].sha256) common++;
    if (this.opts.maxTokens !== undefined) {
      let total = 0;
      let keep = texts.length;
      for (let i = 0; i < texts.length; i++) {
        if (total >= this.opts.maxTokens) {
          keep = i;
          break;
        }
        total += i < common ? old!.files[i].end - old!.files[i].start : tokensOf(texts[i]).length;
      }
      if (keep < texts.length) skipped['token-limit'] = (skipped['token-limit'] ?? 0) + texts.length - keep;
      texts.length = keep;
      common = Math.min(common, keep);
    }
    if (snap && old) {
      try {
        const k = common;
        let position: number;
        let mamba: ModelState['mamba'];
        const partialOk = k === old.files.length && old.partial && texts[k] && old.partial.path === texts[k].path && old.partial.sha256 === texts[k].sha256;
        if (k === old.files.length) {
          // Nothing before the end changed: keep the whole state (and continue a partial file if it is unchanged).
          position = partialOk ? snap.state.position : old.partial ? old.partial.start : snap.state.position;
          if (position === snap.state.position) mamba = snap.state.mamba;
          else {
            const c = [...snap.checkpoints].reverse().find((x) => x.position <= position);
            position = c ? c.position : 0;
            mamba = c ? c.mamba : [];
          }
        } else {
          const limit = old.files[k].start;
          const c = [...snap.checkpoints].reverse().find((x) => x.position <= limit);
          position = c ? c.position : 0;
          mamba = c ? c.mamba : [];
        }
        if (position > 0) {
          // The K/V stays in the snapshot file; blocks are read when attention selects them.
          await this.model.importState({ position, mamba, kv: [], kvBlocks: snap.state.kvBlocks });
          manifest.files = old.files.filter((f) => f.end <= position);
          this.checkpoints = snap.checkpoints.filter((c) => c.position <= position);
          // The position may fall inside a file (checkpoints sit at chunk boundaries): skip what is in the state.
          startFile = manifest.files.length;
          const fileStart = startFile < old.files.length ? old.files[startFile].start : old.partial ? old.partial.start : position;
          skipTokens = position - fileStart;
          resumed = true;
        }
      } catch (e) {
        if (!(e instanceof SnapshotError)) throw e;
        snapshotProblem = e.message;
        this.model.reset();
        this.checkpoints = [];
        manifest.files = [];
        startFile = 0;
        skipTokens = 0;
      }
    }
    const restoreSeconds = (performance.now() - t0) / 1000;
    this.manifest = null; // until this sync is done, the state is not a whole sync's
    await yieldPoint();

    // Ingest the tail as one token stream cut into equal chunks (one recorded GPU pass serves them all),
    // keeping a Mamba checkpoint at a chunk boundary every `every` tokens. A checkpoint may fall inside a
    // file: a restart from it re-reads that file from the right token, which is exact since the files
    // before the first change are unchanged.
    const startPos = this.model.position;
    let lastCheckpoint = this.checkpoints.at(-1)?.position ?? 0;
    let cancelled = false;
    const totalTail = texts.slice(startFile).reduce((n, t) => n + tokensOf(t).length, 0) - skipTokens;
    const tIngest = performance.now(); // prefill only: reading and tokenizing are done
    // Checkpoints every 4,096 tokens, or sparser for a large workspace (the ladder keeps a bounded number anyway).
    const every = everyOpt ?? Math.max(4096, Math.ceil(totalTail / (this.opts.maxCheckpoints ?? 24)));
    const queued: ManifestFile[] = []; // files fed into `pending`, not yet wholly in the state
    // A chat model's workspace sits inside the first user turn: its preamble comes first, at position 0.
    let pending: number[] = this.model.position === 0 ? preambleTokens(this.tokenizer, chatFormat(this.tokenizer.config)) : [];
    let fedEnd = this.model.position + pending.length;
    let current = '';
    // Checkpoints are taken as the chunks are fed and land in order once their copies are read back (the next
    // chunk is not held up by them); all have landed before the snapshot is written.
    let checkpointsTaken: Promise<void> = Promise.resolve();
    const feed = async (n: number): Promise<boolean> => {
      if (opts.signal?.aborted) return false;
      const ids = pending.slice(0, n);
      pending = pending.slice(n);
      // No logits: on WebGPU the chunk is only queued, and the next one is prepared while it runs (a read of
      // the last row's logits made every chunk wait for the whole GPU queue, then left the GPU idle while
      // the host stored the chunk's K/V).
      await this.model.forward(ids, { skipLogits: true });
      // Let the event loop run (a cancel message, progress output) between chunks, also on the CPU backend, and
      // lend the state out (a completion on what is read so far) at this chunk boundary.
      await new Promise((r) => setImmediate(r));
      await yieldPoint();
      while (queued.length && queued[0].end <= this.model.position) manifest.files.push(queued.shift()!);
      if (this.model.position - lastCheckpoint >= every && (pending.length > 0 || queued.length > 0)) {
        const taken = this.model.exportState({ kv: false });
        lastCheckpoint = this.model.position;
        checkpointsTaken = checkpointsTaken.then(async () => {
          const st = await taken;
          this.checkpoints.push({ position: st.position, mamba: st.mamba });
          thinLadder(this.checkpoints, this.opts.maxCheckpoints ?? 24);
        });
        checkpointsTaken.catch(() => undefined); // reported where it is awaited, after the last chunk
      }
      const done = this.model.position - startPos;
      const tps = done / Math.max((performance.now() - tIngest) / 1000, 1e-6);
      progress({
        phase: 'ingesting',
        files: manifest.files.length,
        filesTotal: texts.length,
        tokens: this.model.position,
        tokensPerSecond: tps,
        etaSeconds: tps > 0 ? (totalTail - done) / tps : null,
        path: current,
      });
      return true;
    };
    for (let i = startFile; i < texts.length && !cancelled; i++) {
      const t = texts[i];
      const skip = i === startFile ? skipTokens : 0;
      const tokens = tokensOf(t);
      queued.push({ path: t.path, sha256: t.sha256, start: fedEnd - skip, end: fedEnd - skip + tokens.length });
      fedEnd += tokens.length - skip;
      pending = pending.concat(skip ? tokens.slice(skip) : tokens);
      current = t.path;
      for (let n = chunkOf(); pending.length >= n; n = chunkOf()) {
        if (!(await feed(n))) {
          cancelled = true;
          break;
        }
      }
    }
    if (!cancelled && pending.length > 0 && !(await feed(pending.length))) cancelled = true;
    await checkpointsTaken;
    if (cancelled && queued.length) {
      const f = queued[0];
      manifest.partial = { path: f.path, sha256: f.sha256, start: f.start, done: this.model.position - f.start };
    }
    const reingested = this.model.position - startPos;
    await yieldPoint();
    this.manifest = manifest;

    let saved: string | null = null;
    let save: SaveReport | null = null;
    const tSave = performance.now();
    if (snapFile && (reingested > 0 || !resumed || snapshotProblem)) {
      progress({ phase: 'saving', files: manifest.files.length, filesTotal: texts.length, tokens: this.model.position, tokensPerSecond: 0, etaSeconds: 0 });
      // Only what the snapshot's block file lacks is written (after an edit of the last file: its blocks).
      // Written in pieces, the state lent out between them (a completion there forks it, runs and rolls back).
      const state = await this.model.exportState({ kv: 'blocks' });
      save = await saveSnapshotLending(snapFile, this.opts.modelId, state, manifest, this.checkpoints, yieldPoint);
      saved = snapFile;
      // The K/V now lives in the new snapshot: take it from there (host memory held for it is released), and
      // the checkpoints too.
      try {
        const fresh = loadSnapshot<WorkspaceManifest>(snapFile, this.opts.modelId);
        await this.model.importState({ position: this.model.position, mamba: (await this.model.exportState({ kv: false })).mamba, kv: [], kvBlocks: fresh.state.kvBlocks });
        this.checkpoints = fresh.checkpoints;
      } catch (e) {
        if (!(e instanceof SnapshotError)) throw e;
      }
    } else if (snapFile) saved = snapFile;
    const saveSeconds = (performance.now() - tSave) / 1000;
    this.heldPosition = this.model.position;
    const seconds = (performance.now() - t0) / 1000;
    const ingestSecs = (performance.now() - tIngest) / 1000;
    progress({ phase: 'done', files: manifest.files.length, filesTotal: texts.length, tokens: this.model.position, tokensPerSecond: reingested / Math.max(ingestSecs, 1e-6), etaSeconds: 0 });
    return {
      files: manifest.files.length,
      skipped,
      tokens: this.model.position,
      seconds,
      tokensPerSecond: reingested / Math.max(ingestSecs, 1e-6),
      resumedFromSnapshot: resumed,
      reingestedTokens: reingested,
      snapshot: saved,
      snapshotProblem,
      restoreSeconds,
      saveSeconds,
      save,
      cancelled,
      memory: this.model.memory(),
    };
  }
}

/** A workspace folder as the user's settings say to read it. */
export interface WorkspaceParams {
  workspace: string;
  cacheDir: string | null; // null: no snapshot
  modelId: string;
  /** Larger files are not read (default DEFAULT_MAX_FILE_BYTES, 512 KiB: CLI --max-file-kb, setting sidewinder.maxFileKB). */
  maxFileBytes?: number;
  /** gitignore lines applied after every ignore file (CLI --ignore, setting sidewinder.extraIgnore). */
  extraIgnore?: readonly string[];
}

/**
 * The ingest of a workspace folder, made the same way for the CLI (ingest, ask, complete) and the engine process
 * (the chat and completions): the same walk and ingest options, so the same files become the same tokens.
 */
export function workspaceIngest(model: LanguageModel, tokenizer: TextTokenizer, p: WorkspaceParams): WorkspaceIngest {
  return new WorkspaceIngest(model, tokenizer, {
    workspace: path.resolve(p.workspace),
    cacheDir: p.cacheDir,
    modelId: p.modelId,
    walk: { maxFileBytes: p.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, extraIgnore: [...(p.extraIgnore ?? [])] },
  });
}
