// The status-bar memory gauge: total memory in use, the breakdown against the budgets in its tooltip, ingest
// progress while the workspace is read. A click opens the memory panel.

import * as vscode from 'vscode';
import type { EngineHost, MemoryUpdate } from './engineHost';
import { gaugeText, memoryTable, type GaugeState } from './format';
import type { IngestStatus, WorkspaceIndexer } from './indexer';
import type { Settings } from './settings';

export class StatusGauge implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private last: MemoryUpdate | null = null;
  private ingest: IngestStatus | null = null;

  constructor(
    private readonly engine: EngineHost,
    indexer: WorkspaceIndexer,
    private readonly settings: () => Settings,
  ) {
    this.item = vscode.window.createStatusBarItem('sidewinder.memory', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Sidewinder Memory';
    this.item.command = 'sidewinder.showMemory';
    this.disposables.push(
      this.item,
      engine.onDidChangeState(() => this.render()),
      engine.onDidReportMemory((m) => {
        this.last = m;
        this.render();
      }),
      indexer.onDidProgress((p) => {
        this.ingest = p;
        this.render();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.render()),
    );
    this.render();
    this.item.show();
  }

  private state(): GaugeState {
    if (!vscode.workspace.isTrusted) return { kind: 'restricted' };
    if (this.ingest && this.ingest.progress.phase !== 'done') {
      const p = this.ingest.progress;
      return { kind: 'ingesting', fraction: p.filesTotal > 0 ? p.files / p.filesTotal : null, tokens: p.tokens };
    }
    const s = this.engine.engineState;
    if (s.kind === 'starting') return { kind: 'loading', what: 'model' };
    if (s.kind === 'failed') return { kind: 'error', message: s.message };
    if (this.last && s.kind === 'ready') return { kind: 'ready', memory: this.last.memory, tokens: this.last.tokens };
    return { kind: 'idle' };
  }

  private render(): void {
    const st = this.state();
    this.item.text = gaugeText(st);
    const md = new vscode.MarkdownString(undefined, true);
    md.isTrusted = false;
    md.supportHtml = false;
    switch (st.kind) {
      case 'restricted':
        md.appendMarkdown('**Sidewinder** reads nothing in Restricted Mode. Trust this workspace to let it read the code.');
        break;
      case 'error':
        md.appendText(`Sidewinder: ${st.message}`);
        break;
      case 'loading':
        md.appendMarkdown('**Sidewinder** is loading the model…');
        break;
      case 'idle':
        md.appendMarkdown('**Sidewinder** · the engine starts when the workspace is read.');
        break;
      case 'ingesting':
      case 'ready': {
        if (st.kind === 'ingesting') md.appendMarkdown(`Reading the workspace… ${this.ingest?.progress.files ?? 0}/${this.ingest?.progress.filesTotal ?? 0} files\n\n`);
        if (this.last) {
          const s = this.settings();
          md.appendMarkdown(memoryTable(this.last.memory, { kvGpuBytes: s.kvGpuBudgetMB * 1024 * 1024, kvHostBytes: s.kvHostBudgetMB * 1024 * 1024 }, this.last.tokens));
        }
        break;
      }
    }
    md.appendMarkdown('\n\nClick for the memory panel.');
    this.item.tooltip = md;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
