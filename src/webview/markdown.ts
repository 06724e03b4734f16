// Model output to safe HTML: markdown-it with raw HTML off, then DOMPurify with a small allowlist. The model
// has read the whole workspace, so its output is treated as hostile: no script, no event handler, no
// `javascript:` or other non-web link, and no element that loads anything by itself (images become their alt
// text), so nothing it writes can run or send data anywhere. The webview's CSP (img-src limited to the
// extension) is the second line of defence.
//
// Links to workspace files (`src/a.ts`, `src/a.ts:12` as a link target or in inline code) become
// `<a class="file-link" data-path data-line>` without an href; the chat asks the host to open them, and the
// host checks the path is inside the workspace.

import createDOMPurify, { type Config, type WindowLike } from 'dompurify';
import MarkdownIt from 'markdown-it';

export interface FileRef {
  path: string;
  line?: number;
}

/** A relative or absolute file path with an extension, optionally `:line` or `#Lline`. */
const FILE_REF = /^((?:\.{1,2}\/|\/)?(?:[\w@+-][\w.@+-]*\/)*[\w@+-][\w.@+-]*\.[A-Za-z0-9]{1,10})(?::(\d{1,7})(?::\d{1,5})?|#L(\d{1,7}))?$/;

/** `src/a.ts:12` -> { path: 'src/a.ts', line: 12 }; null when the text does not look like a file path. */
export function parseFileRef(text: string): FileRef | null {
  const m = FILE_REF.exec(text.trim());
  if (!m || m[1].includes('..') || /^\d+(\.\d+)+$/.test(m[1])) return null; // no parent escapes, no "1.2.3"
  const line = m[2] ?? m[3];
  return line ? { path: m[1], line: Number(line) } : { path: m[1] };
}

const WEB_URL = /^https?:\/\//i;

const PURIFY: Config = {
  ALLOWED_TAGS: [
    'a', 'blockquote', 'br', 'code', 'del', 'div', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'li', 'ol', 'p', 'pre', 's', 'span',
    'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul',
  ],
  ALLOWED_ATTR: ['href', 'title', 'class', 'data-path', 'data-line', 'data-lang', 'start'],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOWED_URI_REGEXP: /^https?:\/\//i,
  // Values of these are not URLs (the URI check would drop a plain path); nothing loads or runs from them.
  ADD_URI_SAFE_ATTR: ['data-path', 'data-line', 'data-lang', 'start'],
  FORBID_TAGS: ['img', 'picture', 'source', 'video', 'audio', 'iframe', 'object', 'embed', 'svg', 'math', 'style', 'link', 'meta', 'form', 'input', 'button'],
  FORBID_ATTR: ['style', 'src', 'srcset', 'action', 'formaction', 'background', 'poster', 'xlink:href'],
  KEEP_CONTENT: true,
};

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function fileLink(ref: FileRef, inner: string): string {
  const line = ref.line ? ` data-line="${ref.line}"` : '';
  return `<a class="file-link" data-path="${escapeHtml(ref.path)}"${line} title="Open ${escapeHtml(ref.path)}">${inner}</a>`;
}

export interface MarkdownRenderer {
  /** Markdown -> sanitised HTML. */
  render(markdown: string): string;
  /** Any HTML -> sanitised HTML (the second stage alone). */
  sanitize(html: string): string;
}

/** A renderer for the given window (the webview's own, or a DOM implementation in tests). */
export function createMarkdownRenderer(win: WindowLike): MarkdownRenderer {
  const purify = createDOMPurify(win);
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName !== 'A') return;
    const el = node as Element;
    const href = el.getAttribute('href');
    if (href && WEB_URL.test(href)) {
      el.setAttribute('title', href);
      el.setAttribute('rel', 'noopener noreferrer');
    } else el.removeAttribute('href');
    const line = el.getAttribute('data-line');
    if (line !== null && !/^\d{1,7}$/.test(line)) el.removeAttribute('data-line');
  });

  const md = new MarkdownIt({ html: false, linkify: true, typographer: false, breaks: false });
  // Links: web pages and workspace files only (markdown-it renders a refused link as its source text).
  md.validateLink = (url: string) => WEB_URL.test(url) || parseFileRef(url) !== null;
  const rules = md.renderer.rules;
  rules.link_open = (tokens, idx, options, _env, self) => {
    const href = String(tokens[idx].attrGet('href') ?? '');
    let ref: FileRef | null = null;
    if (!WEB_URL.test(href)) {
      try {
        ref = parseFileRef(decodeURI(href));
      } catch {
        ref = null; // malformed %-escape
      }
    }
    if (ref) {
      tokens[idx].attrs = [
        ['class', 'file-link'],
        ['data-path', ref.path],
        ...(ref.line ? ([['data-line', String(ref.line)]] as [string, string][]) : []),
      ];
    }
    return self.renderToken(tokens, idx, options);
  };
  // Images never load: the alt text stands in for them.
  rules.image = (tokens, idx) => escapeHtml(tokens[idx].content || '');
  rules.code_inline = (tokens, idx) => {
    const code = tokens[idx].content;
    const inner = `<code>${escapeHtml(code)}</code>`;
    const ref = parseFileRef(code);
    return ref ? fileLink(ref, inner) : inner;
  };
  rules.fence = (tokens, idx) => {
    const t = tokens[idx];
    const lang = (t.info.trim().split(/\s+/)[0] || '').replace(/[^\w+#.-]/g, '').slice(0, 32);
    return `<pre class="code-block" data-lang="${escapeHtml(lang)}"><code>${escapeHtml(t.content)}</code></pre>\n`;
  };
  rules.code_block = (tokens, idx) => `<pre class="code-block" data-lang=""><code>${escapeHtml(tokens[idx].content)}</code></pre>\n`;

  const sanitize = (html: string) => purify.sanitize(html, { ...PURIFY, RETURN_DOM: false, RETURN_DOM_FRAGMENT: false }) as string;
  return { render: (markdown) => sanitize(md.render(markdown)), sanitize };
}
