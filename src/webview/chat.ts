// The chat webview (a browser bundle): question box, streamed answers rendered as sanitised Markdown, code
// block actions (copy / insert at cursor / new file), links that open workspace files. It talks to the host
// only through the messages in protocol.ts.

import './litNonce';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textarea/index.js';
import '@vscode-elements/elements/dist/vscode-toolbar-button/index.js';
import './chat.css';
import type { WindowLike } from 'dompurify';
import { createMarkdownRenderer } from './markdown';
import type { ChatToHost, ChatTurn, HostToChat } from './protocol';

interface VsCodeApi {
  postMessage(m: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();
const send = (m: ChatToHost) => api.postMessage(m);
const markdown = createMarkdownRenderer(window as unknown as WindowLike);

const log = document.getElementById('log') as HTMLDivElement;
const status = document.getElementById('status') as HTMLDivElement;
const question = document.getElementById('question') as HTMLElement & { value: string; focus(): void };
const sendButton = document.getElementById('send') as HTMLElement & { disabled: boolean };
const stopButton = document.getElementById('stop') as HTMLElement & { disabled: boolean };

/** Answers being streamed: their text so far and a pending render. */
const live = new Map<string, { text: string; frame: number | null }>();

function nearBottom(): boolean {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

function scrollIfFollowing(following: boolean): void {
  if (following) log.scrollTop = log.scrollHeight;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Adds copy / insert / new-file buttons to each code block of a rendered answer. */
function decorateCodeBlocks(root: HTMLElement): void {
  for (const pre of Array.from(root.querySelectorAll<HTMLPreElement>('pre.code-block'))) {
    const code = () => pre.querySelector('code')?.textContent ?? '';
    const bar = el('div', 'code-actions');
    const button = (icon: string, label: string, onClick: () => void) => {
      const b = document.createElement('vscode-toolbar-button');
      b.setAttribute('icon', icon);
      b.setAttribute('label', label);
      b.title = label;
      b.addEventListener('click', onClick);
      bar.append(b);
    };
    button('copy', 'Copy', () => send({ type: 'copy', text: code() }));
    button('insert', 'Insert at Cursor', () => send({ type: 'insert', code: code() }));
    button('new-file', 'New File', () => send({ type: 'newFile', code: code(), language: pre.dataset.lang ?? '' }));
    pre.before(bar);
  }
}

function renderAnswer(target: HTMLElement, text: string): void {
  target.innerHTML = markdown.render(text); // sanitised by DOMPurify
  decorateCodeBlocks(target);
}

function turnElement(turn: ChatTurn): HTMLElement {
  const section = el('section', 'turn');
  section.dataset.id = turn.id;
  section.append(el('div', 'question', turn.question));
  const answer = el('div', 'answer markdown');
  renderAnswer(answer, turn.answer);
  section.append(answer, el('div', 'meta'));
  setMeta(section, turn.error, turn.stopped, turn.note);
  return section;
}

function setMeta(section: HTMLElement, error?: string, stopped?: boolean, note?: string): void {
  const meta = section.querySelector<HTMLElement>('.meta')!;
  meta.textContent = error ? `Error: ${error}` : stopped ? 'Stopped.' : (note ?? '');
  meta.classList.toggle('error', !!error);
}

function findTurn(id: string): HTMLElement | null {
  return Array.from(log.querySelectorAll<HTMLElement>('section.turn')).find((s) => s.dataset.id === id) ?? null;
}

function setGenerating(on: boolean): void {
  stopButton.disabled = !on;
  sendButton.disabled = on;
}

function submit(): void {
  const q = question.value.trim();
  if (!q) return;
  question.value = '';
  send({ type: 'ask', question: q });
}

window.addEventListener('message', (event: MessageEvent) => {
  const m = event.data as HostToChat;
  if (!m || typeof m !== 'object') return;
  const following = nearBottom();
  switch (m.type) {
    case 'history':
      log.replaceChildren(...m.turns.map(turnElement));
      live.clear();
      log.scrollTop = log.scrollHeight;
      break;
    case 'turnStart': {
      log.append(turnElement(m.turn));
      live.set(m.turn.id, { text: '', frame: null });
      setGenerating(true);
      scrollIfFollowing(true);
      break;
    }
    case 'delta': {
      const t = live.get(m.id);
      const section = findTurn(m.id);
      if (!t || !section) break;
      t.text += m.text;
      // Re-render at most once per frame: Markdown of a partial answer changes as it grows.
      t.frame ??= requestAnimationFrame(() => {
        t.frame = null;
        const f = nearBottom();
        renderAnswer(section.querySelector<HTMLElement>('.answer')!, t.text);
        scrollIfFollowing(f);
      });
      break;
    }
    case 'turnEnd': {
      const t = live.get(m.id);
      if (t?.frame) cancelAnimationFrame(t.frame);
      live.delete(m.id);
      const section = findTurn(m.id);
      if (section) {
        renderAnswer(section.querySelector<HTMLElement>('.answer')!, m.answer);
        setMeta(section, m.error, m.stopped, m.note);
      }
      setGenerating(live.size > 0);
      scrollIfFollowing(following);
      break;
    }
    case 'status':
      status.textContent = m.text;
      status.classList.toggle('busy', m.busy);
      break;
    case 'focusInput':
      question.focus();
      break;
  }
});

// Links to workspace files: the host checks the path and opens it.
log.addEventListener('click', (e) => {
  const link = (e.target as Element).closest<HTMLElement>('a.file-link');
  if (!link) return;
  e.preventDefault();
  const path = link.dataset.path;
  const line = link.dataset.line ? Number(link.dataset.line) : undefined;
  if (path) send(line ? { type: 'openFile', path, line } : { type: 'openFile', path });
});

question.addEventListener('keydown', (e: KeyboardEvent) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
sendButton.addEventListener('click', submit);
stopButton.addEventListener('click', () => send({ type: 'stop' }));
setGenerating(false);
send({ type: 'ready' });
