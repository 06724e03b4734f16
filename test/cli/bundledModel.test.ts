// The bundled model (models/default) is what every command uses when no --model is given: found from the
// script's location, not the current directory, with a clear error when it is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { bundledModelDir, packageRoot, resolveModelDir } from '../../src/engine/bundledModel';
import { BundledModelMissingError } from '../../src/engine/errors';
import { modelIdentity } from '../../src/engine/memory/snapshot';
import { REPO } from '../engine/helpers';

const run = promisify(execFile);

/** Runs a CLI script from a directory that is not the repository, so nothing can be found through the cwd. */
async function cli(script: string, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await run(process.execPath, [script, ...args], { cwd: os.tmpdir(), maxBuffer: 64 << 20 });
    return { ...r, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

test('packageRoot / bundledModelDir / resolveModelDir', () => {
  // The bundles in dist/ and dist/test/ both find the repository.
  assert.equal(packageRoot(path.join(REPO, 'dist')), REPO);
  assert.equal(packageRoot(path.join(REPO, 'dist', 'test')), REPO);
  assert.equal(bundledModelDir(REPO), path.join(REPO, 'models', 'default'));
  assert.equal(resolveModelDir('some/dir', REPO), 'some/dir');
  assert.equal(resolveModelDir(undefined, REPO), path.join(REPO, 'models', 'default'));
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-nomodel-'));
  assert.throws(() => resolveModelDir(undefined, empty), (e: Error) => e instanceof BundledModelMissingError && /--model DIR.*download REPO_ID/s.test(e.message));
  fs.rmSync(empty, { recursive: true, force: true });
});

test('ask --json without --model answers with the bundled model', async () => {
  const bundled = bundledModelDir(REPO);
  assert.ok(fs.existsSync(path.join(bundled, 'config.json')), `${bundled} is part of the repository`);
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-bundled-ws-'));
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-bundled-cache-'));
  fs.writeFileSync(path.join(ws, 'foo.py'), 'def foo(x):\n    return x + 1\n');
  fs.writeFileSync(path.join(ws, 'main.py'), 'from foo import foo\n\nprint(foo(2))\n');

  const r = await cli(path.join(REPO, 'dist', 'cli.js'), 'ask', '--workspace', ws, '--cache-dir', cache, '--kv-budget-mb', '16', '--max-new-tokens', '4', '--json', 'Where is foo defined?');
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(a), ['answer', 'ids', 'tokens', 'resumedFromSnapshot', 'reingestedTokens', 'seconds', 'memory']);
  assert.equal(typeof a.answer, 'string');
  assert.ok(a.ids.length >= 1 && a.ids.length <= 4, `ids ${a.ids}`);
  assert.ok(a.tokens > 0);
  assert.equal(a.resumedFromSnapshot, false);
  assert.equal(a.reingestedTokens, a.tokens);
  assert.ok(a.memory.weightsBytes > 0);
  // Snapshots are named by the model's identity: the one saved is the bundled model's.
  const snaps = fs.readdirSync(cache, { recursive: true }).map(String).filter((f) => f.endsWith('.swsnap'));
  assert.deepEqual(snaps.map((f) => path.basename(f)), [`${modelIdentity(bundled)}.swsnap`]);
  fs.rmSync(ws, { recursive: true, force: true });
  fs.rmSync(cache, { recursive: true, force: true });
});

test('without --model and without a bundled model: a clear error naming the fix', async () => {
  // A copy of the CLI outside any package: its models/default does not exist.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-bare-'));
  fs.mkdirSync(path.join(root, 'dist'));
  fs.copyFileSync(path.join(REPO, 'dist', 'cli.js'), path.join(root, 'dist', 'cli.js'));
  for (const args of [['logits', '--ids', '1,2'], ['ask', '--workspace', root, '--json', 'Where?']]) {
    const r = await cli(path.join(root, 'dist', 'cli.js'), ...args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /no --model was given and the bundled model is missing/);
    assert.ok(r.stderr.includes(path.join(root, 'models', 'default')), r.stderr);
    assert.match(r.stderr, /node dist\/cli\.js download REPO_ID/);
  }
  const help = await cli(path.join(REPO, 'dist', 'cli.js'), 'help');
  assert.ok(help.stdout.includes(`Default: the bundled\nmodel, ${bundledModelDir(REPO)}`), help.stdout);
  fs.rmSync(root, { recursive: true, force: true });
});
