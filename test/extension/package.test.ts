// The platform-specific .vsix (linux-x64, with Dawn's binary): packaged with @vscode/vsce from the current
// build, its contents checked against an allowlist, its size reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

const REPO = path.resolve(__dirname, '..', '..');

interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflated
  compressed: number;
  size: number;
  offset: number; // of the local header
}

/** The central directory of a zip file (enough of the format for a .vsix). */
function zipEntries(buf: Buffer): ZipEntry[] {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  assert.ok(eocd >= 0, 'not a zip file (no end of central directory)');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    assert.equal(buf.readUInt32LE(p), 0x02014b50, 'bad central directory entry');
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    out.push({
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
      method: buf.readUInt16LE(p + 10),
      compressed: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      offset: buf.readUInt32LE(p + 42),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

function readEntry(buf: Buffer, e: ZipEntry): Buffer {
  const start = e.offset + 30 + buf.readUInt16LE(e.offset + 26) + buf.readUInt16LE(e.offset + 28);
  const data = buf.subarray(start, start + e.compressed);
  return e.method === 8 ? zlib.inflateRawSync(data) : Buffer.from(data);
}

/** Everything a .vsix may hold. */
const ALLOWED: RegExp[] = [
  /^\[Content_Types\]\.xml$/,
  /^extension\.vsixmanifest$/,
  /^extension\/(package\.json|readme\.md|LICENSE\.txt|changelog\.md)$/,
  /^extension\/dist\/(extension|engineWorker|cli)\.js$/,
  /^extension\/dist\/kernels\/[A-Za-z0-9_]+\.wgsl$/,
  /^extension\/dist\/webview\/(chat|memory)\.(js|css)$/,
  /^extension\/media\/(icon\.png|sidewinder\.svg)$/,
  /^extension\/node_modules\/webgpu\/(package\.json|index\.js|LICENSE\.md|dist\/linux-x64\/dawn\.node)$/,
  /^extension\/node_modules\/@vscode\/codicons\/dist\/codicon\.(css|ttf)$/,
  // The bundled default model: config, tokenizer, and safetensors (single, or shards with their index).
  /^extension\/models\/default\/(config|generation_config|tokenizer|tokenizer_config)\.json$/,
  /^extension\/models\/default\/model(-\d{5}-of-\d{5})?\.safetensors$/,
  /^extension\/models\/default\/model\.safetensors\.index\.json$/,
];

/** The bundled model in the repository, which the .vsix must carry as is (used when `sidewinder.model` is empty). */
const MODEL_DIR = path.join(REPO, 'models', 'default');
const MODEL_REQUIRED = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];

/** The safetensors files the bundled model loads: the shards named by its index, else model.safetensors. */
function modelWeightFiles(): string[] {
  const index = path.join(MODEL_DIR, 'model.safetensors.index.json');
  if (!fs.existsSync(index)) return ['model.safetensors'];
  const weightMap = JSON.parse(fs.readFileSync(index, 'utf8')).weight_map as Record<string, string>;
  return ['model.safetensors.index.json', ...new Set(Object.values(weightMap))].sort();
}

/** What the extension cannot run without. */
const REQUIRED = [
  'extension/package.json',
  'extension/LICENSE.txt',
  'extension/dist/extension.js',
  'extension/dist/engineWorker.js',
  'extension/dist/webview/chat.js',
  'extension/dist/webview/chat.css',
  'extension/dist/webview/memory.js',
  'extension/dist/webview/memory.css',
  'extension/media/icon.png',
  'extension/media/sidewinder.svg',
  'extension/node_modules/webgpu/package.json',
  'extension/node_modules/webgpu/index.js',
  'extension/node_modules/webgpu/dist/linux-x64/dawn.node',
  'extension/node_modules/@vscode/codicons/dist/codicon.css',
  'extension/node_modules/@vscode/codicons/dist/codicon.ttf',
];

/** Without the bundled model, the package stays small. */
const MAX_BYTES_WITHOUT_MODEL = 40 * 1024 * 1024;
/** The .vsix on disk, model included (24 MB with the 11.1M-parameter model): a bigger model needs a decision. */
const MAX_VSIX_BYTES = 48 * 1024 * 1024;

test('vsce packages a linux-x64 .vsix with only the allowed files', { timeout: 300_000 }, (t) => {
  assert.ok(fs.existsSync(path.join(REPO, 'dist', 'extension.js')), 'build first (node esbuild.js)');
  const vsce = path.join(REPO, 'node_modules', '@vscode', 'vsce', 'vsce');
  assert.ok(fs.existsSync(vsce), '@vscode/vsce is a devDependency: run npm ci');
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sw-vsix-')), 'sidewinder.vsix');
  try {
    execFileSync(process.execPath, [vsce, 'package', '--target', 'linux-x64', '--no-rewrite-relative-links', '--allow-missing-repository', '--out', out], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
    });
    const buf = fs.readFileSync(out);
    const entries = zipEntries(buf);
    const names = entries.map((e) => e.name);

    const unexpected = names.filter((n) => !ALLOWED.some((re) => re.test(n)));
    assert.deepEqual(unexpected, [], 'files outside the allowlist (adjust .vscodeignore or the allowlist)');
    const missing = REQUIRED.filter((n) => !names.includes(n));
    assert.deepEqual(missing, [], 'files the extension needs');
    assert.ok(names.some((n) => n.startsWith('extension/dist/kernels/')), 'WGSL kernels');

    // The bundled model, complete and the same size as in the repository.
    assert.ok(fs.existsSync(path.join(MODEL_DIR, 'config.json')), `no bundled model in ${MODEL_DIR}`);
    const modelFiles = [...MODEL_REQUIRED, ...modelWeightFiles()];
    const missingModel = modelFiles.filter((f) => !names.includes(`extension/models/default/${f}`));
    assert.deepEqual(missingModel, [], 'bundled model files missing from the .vsix (see .vscodeignore)');
    for (const f of modelFiles) {
      const e = entries.find((x) => x.name === `extension/models/default/${f}`)!;
      assert.equal(e.size, fs.statSync(path.join(MODEL_DIR, f)).size, `size of models/default/${f} in the .vsix`);
    }

    const manifest = readEntry(buf, entries.find((e) => e.name === 'extension.vsixmanifest')!).toString('utf8');
    assert.match(manifest, /TargetPlatform="linux-x64"/);
    const pkg = JSON.parse(readEntry(buf, entries.find((e) => e.name === 'extension/package.json')!).toString('utf8'));
    assert.equal(pkg.main, './dist/extension.js');
    const titles = pkg.contributes.commands.map((c: { category: string; title: string }) => `${c.category}: ${c.title}`);
    for (const title of ['Ask About Codebase', 'Reindex Workspace', 'Show Memory', 'Download Model', 'Select Model', 'Stop Generation']) {
      assert.ok(titles.includes(`Sidewinder: ${title}`), title);
    }
    assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
    assert.equal(pkg.capabilities.virtualWorkspaces.supported, false);

    const size = entries.reduce((n, e) => n + e.size, 0);
    const model = entries.filter((e) => e.name.startsWith('extension/models/')).reduce((n, e) => n + e.size, 0);
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    t.diagnostic(`vsix: ${mb(buf.length)} on disk, ${mb(size)} unpacked, ${entries.length} files (bundled model ${mb(model)} unpacked)`);
    for (const e of [...entries].sort((a, b) => b.size - a.size).slice(0, 5)) t.diagnostic(`  ${mb(e.size).padStart(9)}  ${e.name}`);
    assert.ok(buf.length < MAX_VSIX_BYTES, `the .vsix is ${mb(buf.length)}, over ${mb(MAX_VSIX_BYTES)}`);
    assert.ok(size - model < MAX_BYTES_WITHOUT_MODEL, `unpacked size without the model ${mb(size - model)} is over ${mb(MAX_BYTES_WITHOUT_MODEL)}`);
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
});
