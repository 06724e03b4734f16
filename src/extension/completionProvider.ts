// Inline completions: fill-in-the-middle on a fork of the workspace state. The editor glue is here; the
// decisions (cache, prompt, stop rules, debounce) are in ./completion and run in the engine process.

import * as path from 'path';
import * as vscode from 'vscode';
import { delay, LatestOnly } from './completion/debounce';
import { CompletionCache, type CompletionKey } from './completion/lru';
import type { EngineHost } from './engineHost';
import type { WorkspaceIndexer } from './indexer';
import { folderOf } from './paths';
import type { Settings } from './settings';

/** Characters of context sent on each side of the cursor (the state already holds the rest of the code). */
const PREFIX_CHARS = 6000;
const SUFFIX_CHARS = 2000;

export class InlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  private readonly cache = new CompletionCache(64);
  private readonly latest = new LatestOnly();

  constructor(
    private readonly engine: EngineHost,
    private readonly indexer: WorkspaceIndexer,
    private readonly settings: () => Settings,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** Forgets cached completions (after a re-ingest the state may suggest differently). */
  clearCache(): void {
    this.cache.clear();
  }

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[]> {
    const s = this.settings();
    if (!s.completion.enabled || !vscode.workspace.isTrusted || document.uri.scheme !== 'file') return [];
    // While the suggest widget is open, its item is what the user is choosing; do not compete with it.
    if (context.selectedCompletionInfo) return [];
    const folder = folderOf(document.uri.fsPath, this.indexer.folders());
    const client = this.engine.ready;
    // While the folder is being read, the engine completes on what it has read so far (never "busy").
    if (!folder || !client || !this.indexer.holds(folder)) return [];

    const offset = document.offsetAt(position);
    const key: CompletionKey = {
      document: document.uri.toString(),
      prefix: document.getText(new vscode.Range(document.positionAt(Math.max(0, offset - PREFIX_CHARS)), position)),
      suffix: document.getText(new vscode.Range(position, document.positionAt(offset + SUFFIX_CHARS))),
    };
    const range = new vscode.Range(position, position);
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached ? [new vscode.InlineCompletionItem(cached, range)] : [];

    // A new request (the user typed) aborts the previous one, and the editor's token aborts this one.
    const cancelled = new AbortController();
    const sub = token.onCancellationRequested(() => cancelled.abort());
    const signal = this.latest.next(cancelled.signal);
    try {
      if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic && !(await delay(s.completion.debounceMs, signal))) return [];
      if (token.isCancellationRequested) return [];
      const r = await client.request(
        'complete',
        { folder, path: path.relative(folder, document.uri.fsPath).split(path.sep).join('/'), prefix: key.prefix, suffix: key.suffix, maxTokens: s.completion.maxTokens, maxLines: s.completion.maxLines },
        { signal },
      );
      this.log.trace(`completion: ${r.reason}, ${r.text.length} chars, ${r.mode ?? '-'}, ${r.ms.toFixed(0)} ms`);
      if (r.reason === 'done' || r.reason === 'length' || r.reason === 'empty') this.cache.set(key, r.text);
      if (token.isCancellationRequested || !r.text) return [];
      return [new vscode.InlineCompletionItem(r.text, range)];
    } catch (e) {
      this.log.debug(`completion failed: ${e instanceof Error ? e.message : String(e)}`);
      return [];
    } finally {
      sub.dispose();
    }
  }
}
