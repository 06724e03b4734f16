// The memory panel: a webview panel with live charts (uPlot) of memory by component over time and of the
// tokens in the state. The host keeps the history, so the charts are complete when the panel opens.

import * as vscode from 'vscode';
import { parseMemoryToHost, type HostToMemory, type MemoryBudgets } from '../webview/protocol';
import type { EngineHost } from './engineHost';
import { MemoryHistory, sampleOf } from './memoryHistory';
import type { Settings } from './settings';
import { makeNonce, webviewHtml } from './webviewHtml';

export class MemoryPanel implements vscode.Disposable {
  static readonly viewType = 'sidewinder.memory';
  private panel: vscode.WebviewPanel | null = null;
  private readonly history = new MemoryHistory();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    engine: EngineHost,
    private readonly settings: () => Settings,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      engine.onDidReportMemory((m) => {
        const s = sampleOf(m.memory, m.tokens);
        this.history.push(s);
        this.post({ type: 'sample', sample: s, budgets: this.budgets() });
      }),
    );
  }

  private budgets(): MemoryBudgets {
    const s = this.settings();
    return { kvGpuBytes: s.kvGpuBudgetMB * 1024 * 1024, kvHostBytes: s.kvHostBudgetMB * 1024 * 1024 };
  }

  private post(m: HostToMemory): void {
    void this.panel?.webview.postMessage(m);
  }

  show(): void {
    if (this.panel) {
      this.panel.reveal(undefined, true);
      return;
    }
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview');
    const panel = vscode.window.createWebviewPanel(MemoryPanel.viewType, 'Sidewinder Memory', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
      enableScripts: true,
      localResourceRoots: [dist],
      retainContextWhenHidden: false,
    });
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'sidewinder.svg');
    const w = panel.webview;
    w.html = webviewHtml({
      cspSource: w.cspSource,
      nonce: makeNonce(),
      title: 'Sidewinder Memory',
      scripts: [w.asWebviewUri(vscode.Uri.joinPath(dist, 'memory.js')).toString()],
      styles: [w.asWebviewUri(vscode.Uri.joinPath(dist, 'memory.css')).toString()],
      body: `<main>
  <h2>Memory</h2>
  <table id="current" aria-label="Memory by component"></table>
  <section><h3>Memory by component (MB)</h3><div id="memoryChart" class="chart"></div></section>
  <section><h3>Tokens in the state</h3><div id="tokenChart" class="chart"></div></section>
</main>`,
    });
    const subs = [
      w.onDidReceiveMessage((raw) => {
        const m = parseMemoryToHost(raw);
        if (!m) {
          this.log.warn(`memory panel: rejected a message: ${JSON.stringify(raw)?.slice(0, 200)}`);
          return;
        }
        // 'ready': the page (re)loaded; send the whole history.
        this.post({ type: 'init', samples: this.history.all(), budgets: this.budgets() });
      }),
    ];
    panel.onDidDispose(() => {
      for (const s of subs) s.dispose();
      this.panel = null;
    });
    this.panel = panel;
  }

  dispose(): void {
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
