// Keeps the engine's state in step with the workspace: ingest when the window opens (trusted workspaces only,
// and only after trust is granted), again after saves, creations, deletions and renames (debounced, and only
// what changed is re-read: WorkspaceIngest.sync restarts from its last checkpoint before the first change).
//
// Multi-root: one WorkspaceIngest per folder, each with its own snapshot. The model holds one folder's state
// at a time; at start every folder is synced in turn (so each has a snapshot) ending with the active one (the
// folder of the active editor, else the first). Questions and completions use the active folder; switching
// editors to another folder syncs that one, which restores its snapshot.

import * as path from 'path';
import * as vscode from 'vscode';
import type { IngestProgress } from '../engine/ingest';
import { KeyedDebouncer } from './completion/debounce';
import type { EngineHost } from './engineHost';
import { formatDuration, formatTokens } from './format';
import { folderOf } from './paths';
import type { SyncResult } from './protocol';
import { syncParams, type Settings } from './settings';

const CHANGE_DEBOUNCE_MS = 1500;
const SWITCH_DEBOUNCE_MS = 1000;
/** Changes here never affect what is ingested (and happen all the time). */
const NOISE = /(^|[\\/])(\.git|node_modules|\.vscode-test)([\\/]|$)/;

export interface IngestStatus {
  folder: string;
  progress: IngestProgress;
}

type Job = { folder: string; notify: boolean };

export class WorkspaceIndexer implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private watchers: vscode.Disposable[] = [];
  private readonly changes: KeyedDebouncer<string>;
  private readonly switcher: KeyedDebouncer<string>;
  private chain: Promise<void> = Promise.resolve();
  private readonly queued = new Map<string, Job>();
  private running: { folder: string; abort: AbortController } | null = null;
  private started = false;
  private warnedVirtual = false;
  /** The folder whose state the engine holds (null: none complete). */
  loadedFolder: string | null = null;
  private readonly progressEmitter = new vscode.EventEmitter<IngestStatus | null>();
  /** Ingest progress, and null when no ingest is running. */
  readonly onDidProgress = this.progressEmitter.event;

  constructor(
    private readonly engine: EngineHost,
    private readonly log: vscode.LogOutputChannel,
    private readonly settings: () => Settings,
  ) {
    this.changes = new KeyedDebouncer(CHANGE_DEBOUNCE_MS, (folder) => {
      if (folder === this.activeFolder()) this.enqueue({ folder, notify: false });
    });
    this.switcher = new KeyedDebouncer(SWITCH_DEBOUNCE_MS, (folder) => {
      if (folder === this.activeFolder() && !this.holds(folder)) this.enqueue({ folder, notify: false });
    });
    this.disposables.push(
      this.progressEmitter,
      { dispose: () => this.changes.dispose() },
      { dispose: () => this.switcher.dispose() },
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.info('workspace trust granted: reading the workspace');
        this.start();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        if (!this.started) return;
        this.watch();
        this.syncAll(false);
      }),
      vscode.workspace.onDidRenameFiles((e) => e.files.forEach((f) => this.onChange(f.newUri))),
      vscode.window.onDidChangeActiveTextEditor(() => {
        // Opening a file of the folder the engine holds (or is reading) reads nothing again.
        const f = this.activeFolder();
        if (this.started && f && !this.holds(f)) this.switcher.schedule(f);
      }),
      engine.onDidRestart(() => {
        // A new engine has an empty state: bring the active folder back (restored from its snapshot).
        this.loadedFolder = null;
        const f = this.activeFolder();
        if (this.started && f) this.enqueue({ folder: f, notify: false });
      }),
    );
  }

  /**
   * Whether the engine's state is (or is becoming) `folder`'s: it holds it, or a sync of it is running or queued.
   * Completions are asked for then (while a sync runs they use what it has read so far).
   */
  holds(folder: string): boolean {
    return this.loadedFolder === folder || this.running?.folder === folder || this.queued.has(folder);
  }

  /** Local folders of the workspace (virtual ones are skipped with a message). */
  folders(): string[] {
    const all = vscode.workspace.workspaceFolders ?? [];
    const virtual = all.filter((f) => f.uri.scheme !== 'file');
    if (virtual.length && !this.warnedVirtual) {
      this.warnedVirtual = true;
      void vscode.window.showWarningMessage(
        `Sidewinder reads only folders on this machine's disk; ${virtual.map((f) => `${f.name} (${f.uri.scheme}:)`).join(', ')} ` +
          `${virtual.length === 1 ? 'is' : 'are'} not read.`,
      );
    }
    return all.filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  }

  /** The folder questions and completions use: the active editor's, else the first. */
  activeFolder(): string | null {
    const folders = this.folders();
    const doc = vscode.window.activeTextEditor?.document;
    if (doc?.uri.scheme === 'file') {
      const f = folderOf(doc.uri.fsPath, folders);
      if (f) return f;
    }
    return folders[0] ?? null;
  }

  /** Starts reading the workspace, now if it is trusted, else once trust is granted. */
  start(): void {
    if (this.started) return;
    if (!vscode.workspace.isTrusted) {
      this.log.info('the workspace is not trusted: Sidewinder reads nothing until it is');
      return;
    }
    this.started = true;
    this.watch();
    this.syncAll(true);
  }

  get isStarted(): boolean {
    return this.started;
  }

  /** Re-reads every folder, ending with the active one (the Reindex command, a settings change). */
  syncAll(notify: boolean): void {
    const active = this.activeFolder();
    const folders = this.folders();
    for (const f of [...folders.filter((f) => f !== active), ...(active ? [active] : [])]) this.enqueue({ folder: f, notify });
  }

  private watch(): void {
    for (const w of this.watchers) w.dispose();
    this.watchers = [];
    for (const folder of this.folders()) {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(folder), '**/*'));
      w.onDidCreate((u) => this.onChange(u));
      w.onDidChange((u) => this.onChange(u));
      w.onDidDelete((u) => this.onChange(u));
      this.watchers.push(w);
    }
  }

  private onChange(uri: vscode.Uri): void {
    if (!this.started || uri.scheme !== 'file') return;
    const folder = folderOf(uri.fsPath, this.folders());
    if (!folder || NOISE.test(path.relative(folder, uri.fsPath))) return;
    this.changes.schedule(folder);
  }

  /** Queues a sync of `folder` (a sync already queued for it is not repeated). */
  private enqueue(job: Job): Promise<void> {
    const queued = this.queued.get(job.folder);
    if (queued) {
      queued.notify ||= job.notify;
      return this.chain;
    }
    this.queued.set(job.folder, job);
    this.chain = this.chain.then(async () => {
      this.queued.delete(job.folder);
      try {
        await this.run(job);
      } catch (e) {
        this.log.error(`sync of ${job.folder} failed: ${e instanceof Error ? e.message : String(e)}`);
        if (job.notify) void this.engine.explain(e);
      }
    });
    return this.chain;
  }

  /** Resolves once the engine holds `folder`, syncing it first if needed (for questions). */
  async ensureLoaded(folder: string): Promise<void> {
    await this.chain;
    if (this.loadedFolder !== folder || !this.engine.ready) {
      await this.enqueue({ folder, notify: false });
      if (this.loadedFolder !== folder) throw new Error(`the workspace folder ${path.basename(folder)} could not be read; see the Sidewinder log.`);
    }
  }

  /** Stops a running ingest (its state stays usable up to where it stopped). */
  cancel(): void {
    this.running?.abort.abort();
  }

  private async run(job: Job): Promise<void> {
    if (!vscode.workspace.isTrusted) return;
    // A background re-read does not retry an engine that failed to start (the user has been told once).
    if (!job.notify && this.engine.engineState.kind === 'failed') return;
    const client = await this.engine.client();
    const s = this.settings();
    const name = path.basename(job.folder);
    const abort = new AbortController();
    this.running = { folder: job.folder, abort };
    this.loadedFolder = null;
    const title = `Sidewinder: reading ${name}`;
    try {
      const result = await vscode.window.withProgress(
        { location: job.notify ? vscode.ProgressLocation.Notification : vscode.ProgressLocation.Window, title, cancellable: job.notify },
        async (progress, token): Promise<SyncResult> => {
          const sub = token.onCancellationRequested(() => abort.abort());
          let reported = 0;
          try {
            const stream = client.stream('sync', syncParams(job.folder, s), abort.signal);
            for (;;) {
              const step = await stream.next();
              if (step.done) return step.value;
              const p = step.value;
              this.progressEmitter.fire({ folder: job.folder, progress: p });
              const pct = p.filesTotal > 0 ? (100 * p.files) / p.filesTotal : 0;
              progress.report({ increment: Math.max(0, pct - reported), message: progressMessage(p) });
              reported = Math.max(reported, pct);
            }
          } finally {
            sub.dispose();
          }
        },
      );
      this.loadedFolder = job.folder;
      const skipped = Object.entries(result.skipped)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ');
      this.log.info(
        `${name}: ${result.files} files, ${result.tokens} tokens in the state (${result.reingestedTokens} read now in ${result.seconds.toFixed(1)} s` +
          `${result.resumedFromSnapshot ? ', resumed from snapshot' : ''}${result.cancelled ? ', cancelled' : ''})${skipped ? `; skipped ${skipped}` : ''}`,
      );
      if (result.snapshotProblem) this.log.warn(`${name}: ${result.snapshotProblem}`);
    } finally {
      this.running = null;
      this.progressEmitter.fire(null);
    }
  }

  dispose(): void {
    this.cancel();
    for (const w of this.watchers) w.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

function progressMessage(p: IngestProgress): string {
  switch (p.phase) {
    case 'scanning':
      return 'scanning files…';
    case 'restoring':
      return 'restoring the snapshot…';
    case 'saving':
      return 'saving the snapshot…';
    case 'done':
      return `${p.files} files, ${formatTokens(p.tokens)} tokens`;
    case 'ingesting': {
      const eta = p.etaSeconds !== null ? ` · ${formatDuration(p.etaSeconds)} left` : '';
      return `${p.files}/${p.filesTotal} files · ${formatTokens(p.tokens)} tokens · ${formatTokens(p.tokensPerSecond)} tok/s${eta}`;
    }
  }
}
