// The sidebar chat: a webview view in Sidewinder's activity-bar container. Questions go to the engine on a
// fork of the workspace state; answers stream back token by token and are rendered (sanitised Markdown) in
// the webview. History is kept per workspace. Every message from the webview is checked before use.

import * as vscode from 'vscode';
import { parseChatToHost, type ChatToHost, type ChatTurn, type HostToChat } from '../webview/protocol';
import { StoppedError, unlessAborted } from './completion/debounce';
import type { EngineHost } from './engineHost';
import type { WorkspaceIndexer } from './indexer';
import { resolveWorkspaceFile } from './paths';
import { askParams, type Settings } from './settings';
import { makeNonce, webviewHtml } from './webviewHtml';

const HISTORY_KEY = 'sidewinder.chatHistory';
const MAX_TURNS = 100;
const MAX_HISTORY_CHARS = 400_000;

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewType = 'sidewinder.chat';
  private view: vscode.WebviewView | null = null;
  private generating: { id: string; abort: AbortController } | null = null;
  private readonly disposables: vscode.Disposable[] = [];
  private viewDisposables: vscode.Disposable[] = [];
  /** Questions asked before the view resolved (the palette command opens the view and asks at once). */
  private pendingQuestions: string[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly engine: EngineHost,
    private readonly indexer: WorkspaceIndexer,
    private readonly settings: () => Settings,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      engine.onDidChangeState(() => this.postStatus()),
      indexer.onDidProgress(() => this.postStatus()),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    for (const d of this.viewDisposables) d.dispose();
    this.view = view;
    const ext = this.context.extensionUri;
    const dist = vscode.Uri.joinPath(ext, 'dist', 'webview');
    const codicons = vscode.Uri.joinPath(ext, 'node_modules', '@vscode', 'codicons', 'dist');
    view.webview.options = { enableScripts: true, enableCommandUris: false, localResourceRoots: [dist, codicons] };
    const w = view.webview;
    w.html = webviewHtml({
      cspSource: w.cspSource,
      nonce: makeNonce(),
      title: 'Sidewinder Chat',
      codicons: w.asWebviewUri(vscode.Uri.joinPath(codicons, 'codicon.css')).toString(),
      styles: [w.asWebviewUri(vscode.Uri.joinPath(dist, 'chat.css')).toString()],
      scripts: [w.asWebviewUri(vscode.Uri.joinPath(dist, 'chat.js')).toString()],
      body: `<div id="log" role="log" aria-live="polite"></div>
<div id="status" class="status"></div>
<div id="askForm" class="ask">
  <vscode-textarea id="question" rows="3" resize="vertical" aria-label="Question" placeholder="Ask about the codebase (Enter to send, Shift+Enter for a new line)"></vscode-textarea>
  <div class="actions">
    <vscode-button id="send" icon="send">Ask</vscode-button>
    <vscode-button id="stop" icon="debug-stop" secondary disabled>Stop</vscode-button>
  </div>
</div>`,
    });
    this.viewDisposables = [
      w.onDidReceiveMessage((raw) => {
        const m = parseChatToHost(raw);
        if (!m) {
          this.log.warn(`chat: rejected a message from the webview: ${JSON.stringify(raw)?.slice(0, 200)}`);
          return;
        }
        void this.onMessage(m);
      }),
      view.onDidDispose(() => {
        if (this.view === view) this.view = null;
      }),
    ];
  }

  private post(m: HostToChat): void {
    void this.view?.webview.postMessage(m);
  }

  private history(): ChatTurn[] {
    return this.context.workspaceState.get<ChatTurn[]>(HISTORY_KEY, []);
  }

  private async saveTurn(turn: ChatTurn): Promise<void> {
    let turns = [...this.history().filter((t) => t.id !== turn.id), turn].slice(-MAX_TURNS);
    while (turns.length > 1 && JSON.stringify(turns).length > MAX_HISTORY_CHARS) turns = turns.slice(1);
    await this.context.workspaceState.update(HISTORY_KEY, turns);
  }

  private postStatus(): void {
    const s = this.engine.engineState;
    let text = '';
    let busy = false;
    if (!vscode.workspace.isTrusted) text = 'Restricted Mode: trust this workspace to let Sidewinder read it.';
    else if (s.kind === 'starting') (text = 'Loading the model…'), (busy = true);
    else if (s.kind === 'failed') text = s.message;
    this.post({ type: 'status', text, busy });
  }

  private async onMessage(m: ChatToHost): Promise<void> {
    switch (m.type) {
      case 'ready': {
        this.post({ type: 'history', turns: this.history() });
        this.postStatus();
        const queued = this.pendingQuestions;
        this.pendingQuestions = [];
        for (const q of queued) await this.ask(q);
        return;
      }
      case 'ask':
        return this.ask(m.question);
      case 'stop':
        return this.stop();
      case 'clearHistory':
        return this.clearHistory();
      case 'copy':
        await vscode.env.clipboard.writeText(m.text);
        void vscode.window.setStatusBarMessage('$(copy) Copied', 2000);
        return;
      case 'insert': {
        const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
        if (!editor) {
          void vscode.window.showInformationMessage('Sidewinder: open an editor to insert the code into.');
          return;
        }
        await editor.edit((e) => editor.selections.forEach((sel) => e.replace(sel, m.code)));
        await vscode.window.showTextDocument(editor.document, editor.viewColumn);
        return;
      }
      case 'newFile': {
        const doc = await vscode.workspace.openTextDocument({ content: m.code, language: m.language || 'plaintext' });
        await vscode.window.showTextDocument(doc, { preview: false });
        return;
      }
      case 'openFile': {
        const file = resolveWorkspaceFile(m.path, this.indexer.folders());
        if (!file) {
          void vscode.window.showWarningMessage(`Sidewinder: ${m.path} is not a file in this workspace.`);
          return;
        }
        const line = Math.max(0, (m.line ?? 1) - 1);
        await vscode.window.showTextDocument(vscode.Uri.file(file), { selection: new vscode.Range(line, 0, line, 0), preview: true });
        return;
      }
    }
  }

  /** Asks a question; the answer streams into the view (which is opened if needed). */
  async ask(question: string): Promise<void> {
    if (!this.view) {
      this.pendingQuestions.push(question);
      await vscode.commands.executeCommand(`${ChatViewProvider.viewType}.focus`);
      return;
    }
    this.view.show?.(true);
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('Sidewinder reads the workspace only when it is trusted.', 'Manage Workspace Trust').then((p) => {
        if (p) void vscode.commands.executeCommand('workbench.trust.manage');
      });
      return;
    }
    this.stop();
    const turn: ChatTurn = { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, question: question.trim(), answer: '', at: Date.now() };
    const abort = new AbortController();
    this.generating = { id: turn.id, abort };
    void vscode.commands.executeCommand('setContext', 'sidewinder.generating', true);
    this.post({ type: 'turnStart', turn });
    try {
      const folder = this.indexer.activeFolder();
      if (!folder) throw new Error('open a folder first: Sidewinder answers questions about the workspace.');
      // Stop ends the turn at once, also while the model loads or the workspace is read (those go on).
      const client = await unlessAborted(this.engine.client(), abort.signal);
      if (!this.indexer.isStarted) this.indexer.start();
      this.post({ type: 'status', text: 'Reading the workspace…', busy: true });
      await unlessAborted(this.indexer.ensureLoaded(folder), abort.signal);
      this.post({ type: 'status', text: '', busy: true });
      const stream = client.stream('ask', askParams(folder, turn.question, this.settings()), abort.signal);
      for (;;) {
        const step = await stream.next();
        if (step.done) {
          turn.answer = step.value.answer;
          turn.stopped = step.value.stoppedBy === 'cancelled';
          if (step.value.note) turn.note = step.value.note;
          break;
        }
        turn.answer += step.value.text;
        this.post({ type: 'delta', id: turn.id, text: step.value.text });
      }
    } catch (e) {
      if (e instanceof StoppedError) turn.stopped = true;
      else {
        turn.error = e instanceof Error ? e.message : String(e);
        this.log.error(`question failed: ${turn.error}`);
        void this.engine.explain(e);
      }
    } finally {
      if (this.generating?.id === turn.id) {
        this.generating = null;
        void vscode.commands.executeCommand('setContext', 'sidewinder.generating', false);
      }
      this.post({ type: 'turnEnd', id: turn.id, answer: turn.answer, error: turn.error, stopped: turn.stopped, note: turn.note });
      this.postStatus();
      await this.saveTurn(turn);
    }
  }

  /**
   * Shows a turn with a given answer, as if the model had written it. Only for the end-to-end test of the
   * webview's sanitising (registered as a command when SIDEWINDER_E2E=1 is in the extension host's
   * environment); nothing reaches the model.
   */
  renderForTest(question: string, answer: string): void {
    const turn: ChatTurn = { id: `test-${Date.now().toString(36)}`, question, answer: '', at: Date.now() };
    this.post({ type: 'turnStart', turn });
    this.post({ type: 'delta', id: turn.id, text: answer });
    this.post({ type: 'turnEnd', id: turn.id, answer });
  }

  /** Forgets this workspace's chat history. */
  async clearHistory(): Promise<void> {
    await this.context.workspaceState.update(HISTORY_KEY, []);
    this.post({ type: 'history', turns: [] });
  }

  /** Stops the answer being generated, if any. */
  stop(): void {
    this.generating?.abort.abort();
  }

  get isGenerating(): boolean {
    return this.generating !== null;
  }

  focusInput(): void {
    this.post({ type: 'focusInput' });
  }

  dispose(): void {
    this.stop();
    for (const d of [...this.viewDisposables, ...this.disposables]) d.dispose();
  }
}
