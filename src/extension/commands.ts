// The palette commands. Each is a small function over the window's services; registration is in extension.ts.

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { ChatViewProvider } from './chatView';
import type { InlineCompletionProvider } from './completionProvider';
import type { EngineHost } from './engineHost';
import type { WorkspaceIndexer } from './indexer';
import type { MemoryPanel } from './memoryPanel';
import { EngineRequestError } from './protocol';

export interface Services {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  engine: EngineHost;
  indexer: WorkspaceIndexer;
  chat: ChatViewProvider;
  memory: MemoryPanel;
  completions: InlineCompletionProvider;
}

/** Shows why nothing is read in Restricted Mode; true when the workspace is trusted. */
function requireTrust(): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window
    .showWarningMessage('Sidewinder reads the workspace only when it is trusted. Trust it to ask questions and get completions.', 'Manage Workspace Trust')
    .then((pick) => {
      if (pick) void vscode.commands.executeCommand('workbench.trust.manage');
    });
  return false;
}

export async function askAboutCodebase(s: Services): Promise<void> {
  if (!requireTrust()) return;
  const question = await vscode.window.showInputBox({
    title: 'Ask About Codebase',
    prompt: 'Sidewinder answers from the whole workspace it has read; the answer appears in the Sidewinder chat.',
    placeHolder: 'e.g. Where is the snapshot written, and how is it kept atomic?',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? null : 'Type a question.'),
  });
  if (!question?.trim()) return;
  await s.chat.ask(question);
}

export function reindex(s: Services): void {
  if (!requireTrust()) return;
  s.completions.clearCache();
  if (!s.indexer.isStarted) s.indexer.start();
  else s.indexer.syncAll(true);
}

export function stopGeneration(s: Services): void {
  if (s.chat.isGenerating) s.chat.stop();
  else void vscode.window.setStatusBarMessage('Sidewinder: nothing is being generated.', 3000);
}

export async function selectModel(s: Services): Promise<void> {
  const picked = await vscode.window.showOpenDialog({
    title: 'Select a Sidewinder model folder (config.json, *.safetensors, tokenizer.json)',
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel: 'Use This Model',
  });
  const dir = picked?.[0];
  if (!dir) return;
  if (dir.scheme !== 'file' || !fs.existsSync(path.join(dir.fsPath, 'config.json'))) {
    void vscode.window.showErrorMessage(`${dir.fsPath} has no config.json; pick the folder of a Hugging Face model checkpoint.`);
    return;
  }
  // Machine-scoped: it is stored in the user (or remote machine) settings, never in the workspace.
  await vscode.workspace.getConfiguration('sidewinder').update('model', dir.fsPath, vscode.ConfigurationTarget.Global);
  s.log.info(`model set to ${dir.fsPath}`);
}

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export async function downloadModel(s: Services): Promise<void> {
  const repoId = await vscode.window.showInputBox({
    title: 'Download Model',
    prompt: 'Hugging Face repository id of a granitemoehybrid or mamba2 checkpoint',
    placeHolder: 'owner/name',
    ignoreFocusOut: true,
    validateInput: (v) => (REPO_ID.test(v.trim()) ? null : 'Use the form owner/name.'),
  });
  if (!repoId) return;
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Sidewinder: downloading ${repoId}`, cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        const sub = token.onCancellationRequested(() => abort.abort());
        let last = 0;
        try {
          return await s.engine.download({ repoId: repoId.trim(), revision: 'main', dest: null }, abort.signal, (p) => {
            const pct = p.fraction === null ? last : p.fraction * 100;
            progress.report({ message: p.message, increment: Math.max(0, pct - last) });
            last = Math.max(last, pct);
          });
        } finally {
          sub.dispose();
        }
      },
    );
    const pick = await vscode.window.showInformationMessage(`Sidewinder: ${repoId} is downloaded to ${result.dir}.`, 'Use This Model');
    if (pick) await vscode.workspace.getConfiguration('sidewinder').update('model', result.dir, vscode.ConfigurationTarget.Global);
  } catch (e) {
    if (e instanceof EngineRequestError && e.name === 'AbortError') return;
    s.log.error(`download of ${repoId} failed: ${e instanceof Error ? e.message : String(e)}`);
    void s.engine.explain(e);
  }
}

export async function restartEngine(s: Services): Promise<void> {
  try {
    await s.engine.restart();
  } catch (e) {
    void s.engine.explain(e);
  }
}
