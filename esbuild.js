// Bundles every entry point into dist/: the CLI, the bench, the VS Code extension, the webview code and the
// tests (one bundle per test file so `node --test dist/test/` runs them). WGSL kernels are copied next to the
// bundles (dist/kernels) and read at run time, so they stay plain .wgsl files.
const esbuild = require('esbuild');
const fs = require('fs');
const path = require('path');

const root = __dirname;
const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

function walk(dir, pred) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    // Installed tools (test/e2e/.tools) and other dependencies are not ours to build.
    if (e.name === 'node_modules' || e.name.startsWith('.')) return [];
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p, pred) : pred(p) ? [p] : [];
  });
}

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  // Native binding and the editor API are provided at run time.
  external: ['vscode', 'webgpu'],
};

async function main() {
  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'dist/kernels'), { recursive: true });
  for (const f of walk(path.join(root, 'kernels'), (p) => p.endsWith('.wgsl'))) {
    fs.copyFileSync(f, path.join(root, 'dist/kernels', path.basename(f)));
  }
  const node = [
    { in: 'src/cli/cli.ts', out: 'cli' },
    { in: 'bench/bench.ts', out: 'bench' },
    { in: 'bench/eval.ts', out: 'eval' },
    { in: 'src/extension/extension.ts', out: 'extension' },
    { in: 'src/extension/engineWorker.ts', out: 'engineWorker' },
  ].filter((e) => fs.existsSync(path.join(root, e.in)));
  const tests = walk(path.join(root, 'test'), (p) => p.endsWith('.test.ts')).map((p) => ({
    in: path.relative(root, p),
    out: 'test/' + path.relative(path.join(root, 'test'), p).replace(/[\\/]/g, '_').replace(/\.ts$/, ''),
  }));
  // Tests that run inside VS Code (@vscode/test-electron, see .vscode-test.mjs): not node:test files.
  const vscodeTests = walk(path.join(root, 'test', 'vscode'), (p) => p.endsWith('.vscode-test.ts')).map((p) => ({
    in: path.relative(root, p),
    out: 'vscode-test/' + path.basename(p).replace(/\.vscode-test\.ts$/, '.test'),
  }));
  const builds = [
    esbuild.build({ ...common, entryPoints: node, outdir: 'dist', banner: { js: '' } }),
  ];
  if (tests.length) builds.push(esbuild.build({ ...common, entryPoints: tests, outdir: 'dist' }));
  if (vscodeTests.length) builds.push(esbuild.build({ ...common, entryPoints: vscodeTests, outdir: 'dist' }));
  const web = [{ in: 'src/webview/chat.ts', out: 'webview/chat' }, { in: 'src/webview/memory.ts', out: 'webview/memory' }]
    .filter((e) => fs.existsSync(path.join(root, e.in)));
  if (web.length) builds.push(esbuild.build({ ...common, platform: 'browser', format: 'iife', external: [], entryPoints: web, outdir: 'dist' }));
  await Promise.all(builds);
  if (fs.existsSync(path.join(root, 'dist/cli.js'))) fs.chmodSync(path.join(root, 'dist/cli.js'), 0o755);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
