// Sidewinder's VS Code extension: activate() only creates the window's services and registers them, each
// pushed to context.subscriptions. The engine runs in a child process (engineHost.ts), started on first use;
// deactivate() asks it to stop and the subscriptions end whatever is left.
//
//   EngineHost        the engine process: start, load, restart after a crash or a lost GPU device
//   WorkspaceIndexer  ingest on start (trusted workspaces), re-ingest on file changes, multi-root
//   ChatViewProvider  the sidebar chat (webview view)
//   MemoryPanel       live memory charts (webview panel)
//   StatusGauge       the status-bar memory gauge
//   InlineCompletionProvider  fill-in-the-middle completions

import * as fs from 'fs';
import * as vscode from 'vscode';
import { ChatViewProvider } from './chatView';
import * as commands from './commands';
import { InlineCompletionProvider } from './completionProvider';
import { EngineHost } from './engineHost';
import { WorkspaceIndexer } from './indexer';
import { MemoryPanel } from './memoryPanel';
import { needsEngineRestart, needsReingest, readSettings, type Settings } from './settings';
import { StatusGauge } from './statusGauge';

let engineHost: EngineHost | null = null;

function currentSettings(): Settings {
  const cfg = vscode.workspace.getConfiguration('sidewinder');
  return readSettings((key) => cfg.get(key));
}

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Sidewinder', { log: true });
  let settings = currentSettings();
  const getSettings = () => settings;

  const engine = new EngineHost(context, log, getSettings);
  const indexer = new WorkspaceIndexer(engine, log, getSettings);
  const chat = new ChatViewProvider(context, engine, indexer, getSettings, log);
  const memory = new MemoryPanel(context.extensionUri, engine, getSettings, log);
  const gauge = new StatusGauge(engine, indexer, getSettings);
  const completions = new InlineCompletionProvider(engine, indexer, getSettings, log);
  const s: commands.Services = { context, log, engine, indexer, chat, memory, completions };
  engineHost = engine;

  if (process.env.SIDEWINDER_E2E === '1') void vscode.commands.executeCommand('setContext', 'sidewinder.e2e', true);
  context.subscriptions.push(
    log,
    engine,
    indexer,
    chat,
    memory,
    gauge,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewType, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, completions),
    vscode.commands.registerCommand('sidewinder.ask', () => commands.askAboutCodebase(s)),
    vscode.commands.registerCommand('sidewinder.reindex', () => commands.reindex(s)),
    vscode.commands.registerCommand('sidewinder.showMemory', () => memory.show()),
    vscode.commands.registerCommand('sidewinder.downloadModel', () => commands.downloadModel(s)),
    vscode.commands.registerCommand('sidewinder.selectModel', () => commands.selectModel(s)),
    vscode.commands.registerCommand('sidewinder.stopGeneration', () => commands.stopGeneration(s)),
    vscode.commands.registerCommand('sidewinder.restartEngine', () => commands.restartEngine(s)),
    vscode.commands.registerCommand('sidewinder.clearChat', () => chat.clearHistory()),
    // Test-only: the end-to-end test renders hostile model output (a file named by SIDEWINDER_E2E_MARKDOWN)
    // through the real chat webview. The command shows in the palette only when SIDEWINDER_E2E=1.
    vscode.commands.registerCommand('sidewinder.test.render', () => {
      const file = process.env.SIDEWINDER_E2E_MARKDOWN;
      if (process.env.SIDEWINDER_E2E !== '1' || !file) return;
      chat.renderForTest('hostile markdown (end-to-end test)', fs.readFileSync(file, 'utf8'));
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('sidewinder')) return;
      const before = settings;
      settings = currentSettings();
      if (needsEngineRestart(before, settings)) {
        completions.clearCache();
        if (indexer.isStarted || engine.engineState.kind !== 'stopped') void commands.restartEngine(s);
      } else if (needsReingest(before, settings) && indexer.isStarted) indexer.syncAll(false);
    }),
  );

  // Reads the workspace in the background now if it is trusted, else when trust is granted.
  indexer.start();
  log.info(`Sidewinder ${context.extension.packageJSON.version} activated (${vscode.workspace.isTrusted ? 'trusted' : 'restricted'} workspace)`);
}

export async function deactivate(): Promise<void> {
  const e = engineHost;
  engineHost = null;
  await e?.stop();
}
