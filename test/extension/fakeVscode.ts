// A small stand-in for the `vscode` module: just the API surface the extension uses, recording what it is asked
// to do, so activate() and the host glue run under node:test. Real VS Code is exercised by the e2e tests.

import * as path from 'path';

type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
  private listeners = new Set<Listener<T>>();
  event = (l: Listener<T>) => {
    this.listeners.add(l);
    return { dispose: () => this.listeners.delete(l) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class Uri {
  constructor(
    readonly scheme: string,
    readonly fsPath: string,
  ) {}
  static file(p: string): Uri {
    return new Uri('file', path.resolve(p));
  }
  static joinPath(u: Uri, ...parts: string[]): Uri {
    return new Uri(u.scheme, path.join(u.fsPath, ...parts));
  }
  get path(): string {
    return this.fsPath;
  }
  toString(): string {
    return `${this.scheme}://${this.fsPath}`;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === 'number') {
      this.start = new Position(a, b as number);
      this.end = new Position(c!, d!);
    } else {
      this.start = a;
      this.end = b as Position;
    }
  }
}

export class RelativePattern {
  constructor(
    readonly base: Uri,
    readonly pattern: string,
  ) {}
}

export class MarkdownString {
  value = '';
  isTrusted = false;
  supportHtml = false;
  constructor(value?: string, readonly supportThemeIcons = false) {
    this.value = value ?? '';
  }
  appendMarkdown(s: string): this {
    this.value += s;
    return this;
  }
  appendText(s: string): this {
    this.value += s.replace(/[\\`*_{}[\]()#+\-.!|]/g, '\\$&');
    return this;
  }
}

export class InlineCompletionItem {
  constructor(
    readonly insertText: string,
    readonly range: Range,
  ) {}
}

export const StatusBarAlignment = { Left: 1, Right: 2 };
export const ProgressLocation = { SourceControl: 1, Window: 10, Notification: 15 };
export const ConfigurationTarget = { Global: 1, Workspace: 2, WorkspaceFolder: 3 };
export const ViewColumn = { Active: -1, Beside: -2, One: 1 };
export const InlineCompletionTriggerKind = { Invoke: 0, Automatic: 1 };

/** One fake window + workspace; tests read what was recorded and drive events. */
export function createFakeVscode(opts: { trusted: boolean; folders: (string | Uri)[]; settings: Record<string, unknown> }) {
  const log: string[] = [];
  const messages: { level: 'info' | 'warning' | 'error'; text: string; items: string[] }[] = [];
  const commands = new Map<string, (...a: unknown[]) => unknown>();
  const executed: string[] = [];
  const statusItems: { text: string; tooltip: unknown; command?: string; shown: boolean; disposed: boolean }[] = [];
  const viewProviders = new Map<string, { resolveWebviewView(v: unknown): void }>();
  const inlineProviders: unknown[] = [];
  const panels: { viewType: string; title: string; options: { enableScripts?: boolean; localResourceRoots?: Uri[] }; html: string; posted: { type: string; [k: string]: unknown }[]; reveals: number; disposed: boolean; send(m: unknown): void }[] = [];
  /** What was written to the clipboard, and every showTextDocument call. */
  const clipboard: string[] = [];
  const shown: { doc: unknown; opts?: unknown }[] = [];
  const progress: { title: string; location: number; cancellable: boolean; reports: { message?: string; increment?: number }[] }[] = [];
  const settings = { ...opts.settings };
  /** Every configuration update, with its target (1: user settings). */
  const updates: { key: string; value: unknown; target?: number }[] = [];
  let inputBoxAnswer: string | undefined;
  let cancelWhen: RegExp | null = null;
  let openDialogAnswer: Uri[] | undefined;
  const grantTrust = new EventEmitter<void>();
  const configChange = new EventEmitter<{ affectsConfiguration(s: string): boolean }>();
  const renameFiles = new EventEmitter<{ files: { oldUri: Uri; newUri: Uri }[] }>();
  const activeEditorChange = new EventEmitter<unknown>();
  /** File system watchers the extension made (one per folder), with their pattern's base. */
  const watchers: { base: string; created: EventEmitter<Uri>; changed: EventEmitter<Uri>; deleted: EventEmitter<Uri>; disposed: boolean }[] = [];
  const workspace = {
    isTrusted: opts.trusted,
    workspaceFolders: opts.folders.map((f, index) => {
      const uri = typeof f === 'string' ? Uri.file(f) : f;
      return { uri, name: path.basename(uri.fsPath), index };
    }),
    getConfiguration: (section: string) => ({
      get: (key: string) => settings[`${section}.${key}`],
      update: async (key: string, value: unknown, target?: number) => {
        updates.push({ key: `${section}.${key}`, value, target });
        settings[`${section}.${key}`] = value;
        configChange.fire({ affectsConfiguration: (s: string) => `${section}.${key}`.startsWith(s) });
      },
    }),
    onDidGrantWorkspaceTrust: grantTrust.event,
    onDidChangeWorkspaceFolders: new EventEmitter<unknown>().event,
    onDidRenameFiles: renameFiles.event,
    onDidChangeConfiguration: configChange.event,
    createFileSystemWatcher: (pattern: RelativePattern) => {
      const w = { base: pattern.base.fsPath, created: new EventEmitter<Uri>(), changed: new EventEmitter<Uri>(), deleted: new EventEmitter<Uri>(), disposed: false };
      watchers.push(w);
      return {
        onDidCreate: w.created.event,
        onDidChange: w.changed.event,
        onDidDelete: w.deleted.event,
        dispose: () => {
          w.disposed = true;
          for (const e of [w.created, w.changed, w.deleted]) e.dispose();
        },
      };
    },
    openTextDocument: async (o: unknown) => ({ uri: Uri.file('/untitled'), options: o }),
  };
  /** Scripted clicks: the first item of a message whose text matches is picked. */
  const answers: { pattern: RegExp; item: string }[] = [];
  const message =
    (level: 'info' | 'warning' | 'error') =>
    async (text: string, ...items: unknown[]) => {
      const strings = items.filter((i): i is string => typeof i === 'string');
      messages.push({ level, text, items: strings });
      const a = answers.find((x) => x.pattern.test(text) && strings.includes(x.item));
      return a?.item;
    };
  const logChannel = (name: string) => {
    const w = (level: string) => (m: string) => log.push(`${level} ${m}`);
    return { name, trace: w('trace'), debug: w('debug'), info: w('info'), warn: w('warn'), error: w('error'), show: () => undefined, dispose: () => undefined };
  };
  const window = {
    activeTextEditor: undefined as unknown,
    visibleTextEditors: [] as unknown[],
    createOutputChannel: logChannel,
    createStatusBarItem: () => {
      const item = { text: '', tooltip: undefined as unknown, name: '', command: undefined as string | undefined, shown: false, disposed: false, show() { item.shown = true; }, dispose() { item.disposed = true; } };
      statusItems.push(item);
      return item;
    },
    registerWebviewViewProvider: (id: string, p: { resolveWebviewView(v: unknown): void }) => {
      viewProviders.set(id, p);
      return { dispose: () => viewProviders.delete(id) };
    },
    showInformationMessage: message('info'),
    showWarningMessage: message('warning'),
    showErrorMessage: message('error'),
    setStatusBarMessage: () => ({ dispose: () => undefined }),
    showInputBox: async () => inputBoxAnswer,
    showOpenDialog: async () => openDialogAnswer,
    showTextDocument: async (doc: unknown, opts?: unknown) => void shown.push({ doc, opts }),
    onDidChangeActiveTextEditor: activeEditorChange.event,
    withProgress: async <R>(o: { title: string; location: number; cancellable?: boolean }, task: (p: unknown, t: unknown) => Promise<R>) => {
      const rec = { title: o.title, location: o.location, cancellable: !!o.cancellable, reports: [] as { message?: string }[] };
      progress.push(rec);
      const cancel = new EventEmitter<void>();
      const token = { isCancellationRequested: false, onCancellationRequested: cancel.event };
      const report = (r: { message?: string }) => {
        rec.reports.push(r);
        // The user clicks Cancel on a cancellable notification once it shows a matching message.
        if (o.cancellable && cancelWhen && cancelWhen.test(r.message ?? '') && !token.isCancellationRequested) {
          cancelWhen = null;
          token.isCancellationRequested = true;
          cancel.fire();
        }
      };
      return task({ report }, token);
    },
    createWebviewPanel: (viewType: string, title: string, _show: unknown, options: { enableScripts?: boolean; localResourceRoots?: Uri[] }) => {
      const receive = new EventEmitter<unknown>();
      const disposed = new EventEmitter<void>();
      const rec = {
        viewType,
        title,
        options,
        html: '',
        posted: [] as { type: string; [k: string]: unknown }[],
        reveals: 0,
        disposed: false,
        /** Sends a message as the page would. */
        send: (m: unknown) => receive.fire(m),
      };
      panels.push(rec);
      return {
        webview: {
          cspSource: 'https://fake.vscode-cdn.net',
          asWebviewUri: (u: Uri) => `https://fake.vscode-cdn.net${u.fsPath}`,
          postMessage: async (m: { type: string }) => (rec.disposed ? false : (rec.posted.push(m), true)),
          onDidReceiveMessage: receive.event,
          set html(h: string) {
            rec.html = h;
          },
          get html() {
            return rec.html;
          },
        },
        iconPath: undefined as unknown,
        reveal: () => void rec.reveals++,
        onDidDispose: disposed.event,
        dispose: () => {
          if (rec.disposed) return;
          rec.disposed = true;
          disposed.fire();
        },
      };
    },
  };
  const vscode = {
    EventEmitter,
    Uri,
    Position,
    Range,
    RelativePattern,
    MarkdownString,
    InlineCompletionItem,
    StatusBarAlignment,
    ProgressLocation,
    ConfigurationTarget,
    ViewColumn,
    InlineCompletionTriggerKind,
    workspace,
    window,
    env: { clipboard: { writeText: async (t: string) => void clipboard.push(t) } },
    languages: {
      registerInlineCompletionItemProvider: (_sel: unknown, p: unknown) => {
        inlineProviders.push(p);
        return { dispose: () => undefined };
      },
    },
    commands: {
      registerCommand: (id: string, fn: (...a: unknown[]) => unknown) => {
        commands.set(id, fn);
        return { dispose: () => commands.delete(id) };
      },
      executeCommand: async (id: string, ...args: unknown[]) => {
        executed.push(id);
        if (id === 'sidewinder.chat.focus') resolveChatView();
        return commands.get(id)?.(...args);
      },
    },
  };

  /** The chat webview: what the host posted to it, and a way to send it messages as the page would. */
  const chat = {
    posted: [] as { type: string; [k: string]: unknown }[],
    html: '',
    send: (_m: unknown) => undefined as unknown,
    resolved: false,
  };
  function resolveChatView(): void {
    if (chat.resolved) return;
    chat.resolved = true;
    const receive = new EventEmitter<unknown>();
    chat.send = (m: unknown) => receive.fire(m);
    const webview = {
      options: {},
      cspSource: 'https://fake.vscode-cdn.net',
      asWebviewUri: (u: Uri) => `https://fake.vscode-cdn.net${u.fsPath}`,
      postMessage: async (m: { type: string }) => {
        chat.posted.push(m);
        return true;
      },
      onDidReceiveMessage: receive.event,
      set html(h: string) {
        chat.html = h;
      },
      get html() {
        return chat.html;
      },
    };
    viewProviders.get('sidewinder.chat')!.resolveWebviewView({ webview, show: () => undefined, onDidDispose: new EventEmitter<void>().event });
  }

  return {
    vscode,
    log,
    messages,
    commands,
    executed,
    statusItems,
    viewProviders,
    inlineProviders,
    progress,
    settings,
    chat,
    resolveChatView,
    setInputBox: (v: string | undefined) => (inputBoxAnswer = v),
    /** Cancels the next cancellable progress notification when it reports a message matching `pattern`. */
    cancelProgressWhen: (pattern: RegExp) => (cancelWhen = pattern),
    /** What the next open dialogs return (undefined: cancelled). */
    setOpenDialog: (v: Uri[] | undefined) => (openDialogAnswer = v),
    grantTrust: () => {
      workspace.isTrusted = true;
      grantTrust.fire();
    },
    watchers,
    updates,
    /** The user will click `item` on the next messages whose text matches `pattern`. */
    answerMessage: (pattern: RegExp, item: string) => answers.push({ pattern, item }),
    clipboard,
    shown,
    /** Webview panels the extension opened. */
    panels,
    /** Files renamed in the editor (workspace.onDidRenameFiles). */
    renameFiles: (files: { oldUri: Uri; newUri: Uri }[]) => renameFiles.fire({ files }),
    /** Makes `file` the active editor's document (null: no editor) and says so. */
    setActiveEditor: (file: string | null) => {
      window.activeTextEditor = file ? { document: { uri: Uri.file(file) } } : undefined;
      activeEditorChange.fire(window.activeTextEditor);
    },
  };
}

export type FakeVscode = ReturnType<typeof createFakeVscode>;
