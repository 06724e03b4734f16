// The window's one engine: started lazily on first use, restarted when it dies or loses its GPU device (the
// workspace state comes back from the snapshot on the next sync), stopped on deactivate. Failures reach the
// user as a message with the action that fixes them, never as a dead extension.

import * as path from 'path';
import * as vscode from 'vscode';
import type { MemoryReport } from '../engine/model';
import { EngineClient, EngineExitedError, forkEngine } from './engineClient';
import { formatBytes, weightFormats } from './format';
import { locateModel } from './paths';
import { EngineRequestError, PROTOCOL_VERSION, type DownloadParams, type DownloadProgress, type DownloadResult, type LoadResult } from './protocol';
import type { Settings } from './settings';

export type EngineState =
  | { kind: 'stopped' }
  | { kind: 'starting' }
  | { kind: 'ready'; info: LoadResult }
  | { kind: 'failed'; message: string };

export interface MemoryUpdate {
  memory: MemoryReport;
  tokens: number;
  folder: string | null;
}

/** No usable model: nothing is configured and none is bundled, or the configured folder has no config.json. */
export class NoModelError extends Error {
  override name = 'NoModelError';
}

const CRASH_WINDOW_MS = 5 * 60_000;
const MAX_AUTO_RESTARTS = 3;

export class EngineHost implements vscode.Disposable {
  private current: EngineClient | null = null;
  /** Short-lived engine processes (downloads), ended on dispose too. */
  private readonly helpers = new Set<EngineClient>();
  private starting: Promise<EngineClient> | null = null;
  private state: EngineState = { kind: 'stopped' };
  private crashes: number[] = [];
  private lostReason: string | null = null;
  private stopping = false;
  private disposed = false;
  private readonly stateEmitter = new vscode.EventEmitter<EngineState>();
  private readonly memoryEmitter = new vscode.EventEmitter<MemoryUpdate>();
  private readonly restartEmitter = new vscode.EventEmitter<void>();
  /** The engine's state changed (starting, ready, failed, stopped). */
  readonly onDidChangeState = this.stateEmitter.event;
  /**
   * A memory report pushed by the engine whenever its memory changes (load, ingest chunks, snapshot restored
   * or saved, answers, completions), and every few seconds when nothing happens. Nothing polls.
   */
  readonly onDidReportMemory = this.memoryEmitter.event;
  /** A new engine replaced one that died: its state is empty until the workspace is synced again. */
  readonly onDidRestart = this.restartEmitter.event;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly settings: () => Settings,
  ) {}

  get engineState(): EngineState {
    return this.state;
  }

  /** The running engine with its model loaded, or null (does not start one). */
  get ready(): EngineClient | null {
    return this.state.kind === 'ready' && this.current?.alive ? this.current : null;
  }

  private setState(s: EngineState): void {
    this.state = s;
    this.stateEmitter.fire(s);
  }

  /** The engine, started and with the model loaded; starts it on first use. */
  client(): Promise<EngineClient> {
    if (this.disposed) return Promise.reject(new Error('Sidewinder is shutting down.'));
    const r = this.ready;
    if (r) return Promise.resolve(r);
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  private async start(): Promise<EngineClient> {
    const s = this.settings();
    const where = locateModel(s.model, this.context.extensionPath);
    if ('problem' in where) {
      const message =
        where.problem === 'missing'
          ? `The model folder ${where.dir} has no config.json. Select a model folder or download a model.`
          : 'No Sidewinder model is configured and none is bundled with this build. Select a model folder or download a model.';
      this.setState({ kind: 'failed', message });
      throw new NoModelError(message);
    }
    this.setState({ kind: 'starting' });
    const workerPath = path.join(this.context.extensionPath, 'dist', 'engineWorker.js');
    this.log.info(`starting the engine (${workerPath}) with ${s.backend} on ${where.dir}`);
    const client = new EngineClient(forkEngine(workerPath, { onStderr: (line) => this.log.debug(`[engine] ${line}`) }));
    this.current = client;
    client.onEvent((e) => {
      if (e.kind === 'log') this.log[e.level](`[engine] ${e.message}`);
      else if (e.kind === 'memory') this.memoryEmitter.fire({ memory: e.memory, tokens: e.tokens, folder: e.folder });
      else if (e.kind === 'deviceLost') {
        this.lostReason = e.reason;
        this.log.error(`the GPU device was lost: ${e.reason}`);
      }
    });
    client.onExit((e) => this.onExit(client, e));
    try {
      const hello = await client.request('hello', { protocolVersion: PROTOCOL_VERSION });
      if (hello.protocolVersion !== PROTOCOL_VERSION) throw new Error(`engine protocol ${hello.protocolVersion} is not ${PROTOCOL_VERSION}; reinstall the extension.`);
      this.log.info(`engine process ${hello.pid} (Node ${hello.node}) is up; loading the model`);
      const cacheDir = path.join(this.context.globalStorageUri.fsPath, 'snapshots');
      const info = await client.request('load', {
        modelDir: where.dir,
        backend: s.backend,
        cacheDir,
        kvGpuBudgetBytes: s.kvGpuBudgetMB * 1024 * 1024,
        kvHostBudgetBytes: s.kvHostBudgetMB * 1024 * 1024,
        quant: s.quantization,
      });
      this.log.info(
        `model ${info.architecture} loaded on ${info.backend}${info.adapter ? ` (${info.adapter})` : ''}: ${info.layers.mamba} Mamba + ` +
          `${info.layers.attention} attention layers, ${info.fim ? 'fill-in-the-middle' : 'prefix-only'} completions, weights ` +
          `${formatBytes(info.memory.weightsBytes)}${weightFormats(info.memory)}${s.quantization !== 'none' ? ` (sidewinder.quantization ${s.quantization})` : ''}`,
      );
      this.setState({ kind: 'ready', info });
      this.memoryEmitter.fire({ memory: info.memory, tokens: 0, folder: null });
      return client;
    } catch (e) {
      if (this.current === client) this.current = null;
      client.kill();
      const message = e instanceof Error ? e.message : String(e);
      this.setState({ kind: 'failed', message });
      this.log.error(`the engine could not start: ${message}`);
      throw e;
    }
  }

  private onExit(client: EngineClient, e: EngineExitedError): void {
    if (this.current !== client) return;
    this.current = null;
    // A start that fails (the process died while loading) is reported by start() itself.
    if (this.stopping || this.disposed || this.state.kind === 'starting') {
      this.setState({ kind: 'stopped' });
      return;
    }
    const lost = this.lostReason;
    this.lostReason = null;
    const why = lost ? `the GPU device was lost (${lost})` : e.message;
    this.log.error(`engine stopped: ${why}`);
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    if (this.crashes.length > MAX_AUTO_RESTARTS) {
      const message = `Sidewinder's engine stopped ${this.crashes.length} times in a few minutes (last: ${why}).`;
      this.setState({ kind: 'failed', message });
      void vscode.window.showErrorMessage(message, 'Restart Engine', 'Show Log').then((pick) => {
        if (pick === 'Restart Engine') void vscode.commands.executeCommand('sidewinder.restartEngine');
        else if (pick === 'Show Log') this.log.show();
      });
      return;
    }
    // Recover: a new process gets a new device; the next sync restores the workspace from its snapshot.
    this.setState({ kind: 'stopped' });
    void vscode.window.setStatusBarMessage(`$(debug-restart) Sidewinder: ${lost ? 'GPU device lost' : 'engine stopped'}; restarting…`, 5000);
    setTimeout(() => {
      if (this.disposed || this.current) return;
      this.client().then(
        () => {
          this.restartEmitter.fire();
          if (lost) void vscode.window.showInformationMessage(`Sidewinder: ${why}. A new device was opened; the workspace is restored from its snapshot.`);
        },
        (err) => void this.explain(err),
      );
    }, 1000);
  }

  /** Stops the engine and starts a new one (settings changed, or the user asked). */
  async restart(): Promise<void> {
    this.crashes = [];
    await this.stop();
    await this.client();
    this.restartEmitter.fire();
  }

  /** Asks the engine to shut down, and kills it if it does not within two seconds. */
  async stop(): Promise<void> {
    const c = this.current;
    if (!c) return;
    this.stopping = true;
    try {
      await Promise.race([c.request('shutdown', {}).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    } finally {
      c.kill();
      this.current = null;
      this.stopping = false;
      this.setState({ kind: 'stopped' });
    }
  }

  /**
   * Downloads a model in a short-lived engine process of its own (the model's process, if any, keeps
   * serving), then ends that process.
   */
  async download(params: DownloadParams, signal: AbortSignal, onProgress: (p: DownloadProgress) => void): Promise<DownloadResult> {
    const workerPath = path.join(this.context.extensionPath, 'dist', 'engineWorker.js');
    const client = new EngineClient(forkEngine(workerPath, { onStderr: (line) => this.log.debug(`[download] ${line}`) }));
    client.onEvent((e) => e.kind === 'log' && this.log[e.level](`[download] ${e.message}`));
    this.helpers.add(client);
    try {
      await client.request('hello', { protocolVersion: PROTOCOL_VERSION });
      return await client.request('download', params, { signal, onStream: onProgress });
    } finally {
      await Promise.race([client.request('shutdown', {}).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
      client.kill();
      this.helpers.delete(client);
    }
  }

  /** Tells the user why the engine is not available, with the button that fixes it. */
  async explain(e: unknown): Promise<void> {
    if (e instanceof NoModelError) {
      const pick = await vscode.window.showWarningMessage(e.message, 'Select Model', 'Download Model');
      if (pick === 'Select Model') await vscode.commands.executeCommand('sidewinder.selectModel');
      else if (pick === 'Download Model') await vscode.commands.executeCommand('sidewinder.downloadModel');
      return;
    }
    if (e instanceof EngineRequestError && e.name === 'WebGPUNotAvailableError') {
      const pick = await vscode.window.showErrorMessage(
        `Sidewinder: ${e.message} You can switch to the (much slower) CPU backend in the meantime.`,
        'Use CPU Backend',
        'Retry',
        'Show Log',
      );
      if (pick === 'Use CPU Backend') {
        await vscode.workspace.getConfiguration('sidewinder').update('backend', 'cpu', vscode.ConfigurationTarget.Global);
      } else if (pick === 'Retry') await vscode.commands.executeCommand('sidewinder.restartEngine');
      else if (pick === 'Show Log') this.log.show();
      return;
    }
    if (e instanceof EngineRequestError && e.name === 'AbortError') return;
    const message = e instanceof Error ? e.message : String(e);
    const pick = await vscode.window.showErrorMessage(`Sidewinder: ${message}`, 'Show Log');
    if (pick === 'Show Log') this.log.show();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const c = this.current;
    this.current = null;
    // deactivate() has already asked the engine to stop; whatever is left ends now (snapshots are written
    // atomically, so a kill mid-save leaves the previous one).
    c?.kill();
    for (const h of this.helpers) h.kill();
    this.stateEmitter.dispose();
    this.memoryEmitter.dispose();
    this.restartEmitter.dispose();
  }
}
