// The command-line contracts that scripts depend on: `logits` and `generate` output shapes and values.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { FIXTURES, REPO, fixtureNames, loadExpected, relError } from '../engine/helpers';

const run = promisify(execFile);
const CLI = path.join(REPO, 'dist', 'cli.js');

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { maxBuffer: 64 << 20 });
    return { ...r, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

const name = fixtureNames().includes('granite-moe-rope') ? 'granite-moe-rope' : fixtureNames()[0];

describe('cli', () => {
  test('logits: one row per position, equal to transformers', async () => {
    const exp = loadExpected(name);
    for (const backend of ['webgpu', 'cpu']) {
      const r = await cli('logits', '--model', path.join(FIXTURES, name), '--ids', exp.ids.join(','), '--backend', backend);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { logits: number[][] };
      assert.deepEqual(Object.keys(out), ['logits']);
      assert.equal(out.logits.length, exp.ids.length);
      assert.ok(relError(out.logits.flat(), exp.prefill_logits) < 1e-3, backend);
    }
  });

  test('--quant q4|q8: quantized at load (WebGPU = CPU reference), cached; `quantize` stores it; bad values refused', async () => {
    const exp = loadExpected(name);
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-quant-'));
    try {
      const model = path.join(FIXTURES, name);
      const ids = exp.ids.join(',');
      const rowsOf = (r: { stdout: string; stderr: string; code: number }) => {
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { logits: number[][] }).logits.flat();
      };
      for (const mode of ['q8', 'q4']) {
        const gpu = rowsOf(await cli('logits', '--model', model, '--ids', ids, '--quant', mode, '--cache-dir', cacheDir));
        const cpu = rowsOf(await cli('logits', '--model', model, '--ids', ids, '--quant', mode, '--backend', 'cpu', '--cache-dir', cacheDir));
        assert.ok(relError(gpu, cpu) < 1e-3, `${mode}: WebGPU vs CPU`);
        assert.ok(relError(gpu, exp.prefill_logits) > 1e-5, `${mode}: the logits should differ from full precision`);
        const out = path.join(cacheDir, `stored-${mode}`);
        const q = await cli('quantize', '--model', model, '--out', out, '--quant', mode, '--json');
        assert.equal(q.code, 0, q.stderr);
        const info = JSON.parse(q.stdout) as { out: string; quant: string; bytes: number; quantizedTensors: number };
        assert.deepEqual(Object.keys(info), ['out', 'quant', 'bytes', 'quantizedTensors']);
        assert.equal(info.quant, mode);
        assert.deepEqual(rowsOf(await cli('logits', '--model', out, '--ids', ids)), gpu, `${mode}: stored = quantized at load`);
      }
      assert.ok(fs.readdirSync(path.join(cacheDir, 'quantized')).length === 2, 'one cache file per mode');
      const bad = await cli('logits', '--model', model, '--ids', ids, '--quant', 'int4');
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--quant must be one of q4, q8, none; got "int4"/);
    } finally {
      fs.rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test('logits --decode-from H: rows for positions H-1 .. end', async () => {
    const exp = loadExpected(name);
    const r = await cli('logits', '--model', path.join(FIXTURES, name), '--ids', exp.ids.join(','), '--decode-from', String(exp.decode_from));
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[][] };
    assert.equal(out.logits.length, exp.ids.length - exp.decode_from + 1);
    assert.ok(relError(out.logits.flat(), exp.decode_logits) < 1e-3);
  });

  test('generate --json: greedy ids equal transformers, text decodes them', async () => {
    const exp = loadExpected(name);
    const r = await cli(
      'generate', '--model', path.join(FIXTURES, name), '--ids', exp.greedy.prompt_ids.join(','),
      '--max-new-tokens', String(exp.greedy.max_new_tokens), '--greedy', '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
    assert.deepEqual(Object.keys(out).sort(), ['ids', 'text']);
    // Generation stops early at an end-of-text id; otherwise it must match transformers token for token.
    assert.deepEqual(out.ids, exp.greedy.new_ids.slice(0, out.ids.length));
    assert.equal(typeof out.text, 'string');
  });

  test('generate --prompt: text in, text out', async () => {
    const r = await cli('generate', '--model', path.join(FIXTURES, name), '--prompt', 'def main(', '--max-new-tokens', '5', '--json', '--seed', '3');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
    assert.ok(out.ids.length >= 1 && out.ids.length <= 5);
  });

  test('bad usage gets a clear message and exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['logits', '--model', path.join(FIXTURES, name), '--ids', 'a,b'], /comma-separated list/],
      [['logits', '--model', path.join(FIXTURES, name), '--ids', '999999'], /outside the model's vocabulary/],
      [['logits', '--model', path.join(FIXTURES, name), '--ids', '1,2', '--decode-from', '5'], /--decode-from must be between/],
      [['generate', '--model', path.join(FIXTURES, name), '--max-new-tokens', '3'], /exactly one of --ids or --prompt/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re);
    }
    const missing = await cli('logits', '--model', path.join(FIXTURES, 'does-not-exist'), '--ids', '1');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });

  test('a model folder whose config.json the engine does not implement is refused: exit 1, the reason, no stack trace', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-strict-'));
    const src = path.join(FIXTURES, 'granite-dense-nope');
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const config = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
    const cases: [Record<string, unknown>, RegExp[]][] = [
      [{ model_type: 'llama' }, [/model_type "llama" is not supported/, /"granitemoehybrid"/, /"mamba2"/, /Convert the checkpoint/]],
      [{ model_type: undefined }, [/no "model_type"/, /"granitemoehybrid"/, /"mamba2"/]],
      [{ architectures: ['Mamba2ForCausalLM'] }, [/do not match model_type "granitemoehybrid"/, /GraniteMoeHybridForCausalLM/]],
      [{ hidden_act: 'gelu' }, [/hidden_act = "gelu" is not supported/, /"silu" only/]],
    ];
    for (const [patch, res] of cases) {
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
      for (const backend of ['webgpu', 'cpu']) {
        const r = await cli('logits', '--model', dir, '--ids', '1,2', '--backend', backend);
        const label = `${JSON.stringify(patch)} ${backend}`;
        assert.equal(r.code, 1, label);
        assert.equal(r.stdout, '', label);
        assert.match(r.stderr, /^sidewinder: config\.json/, label);
        for (const re of res) assert.match(r.stderr, re, label);
        assert.doesNotMatch(r.stderr, /\n\s+at /, `${label}: no stack trace`);
      }
    }
    fs.rmSync(dir, { recursive: true });
  });

  test('info: the estimate from config.json (--model or --config), text or --json; bad input refused as the loader refuses it', async () => {
    const keys = ['model_type', 'architecture', 'layers', 'layersByKind', 'attentionLayers', 'recurrentLayers', 'params', 'activeParams', 'tensors', 'weightBytes', 'stateBytes', 'kvBytesPerToken', 'kvWindowTokens', 'kvMaxBytes', 'stored'];
    for (const n of ['jamba-moe', 'recurrent-gemma', 'zamba2']) {
      const r = await cli('info', '--model', path.join(FIXTURES, n), '--json');
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as Record<string, unknown> & { params: number; weightBytes: Record<string, number>; kvWindowTokens: number | null };
      assert.deepEqual(Object.keys(j), keys, n);
      const cfg = JSON.parse(fs.readFileSync(path.join(FIXTURES, n, 'config.json'), 'utf8'));
      assert.equal(j.model_type, cfg.model_type, n);
      assert.deepEqual(Object.keys(j.weightBytes), ['bf16', 'q8', 'q4', 'f32'], n);
      assert.equal(j.weightBytes.bf16, 2 * j.params, n);
      assert.equal(j.kvWindowTokens, n === 'recurrent-gemma' ? cfg.attention_window_size : null, n);
      const t = await cli('info', '--model', path.join(FIXTURES, n));
      assert.equal(t.code, 0, t.stderr);
      for (const re of [/^model_type +/m, /^layers +/m, /^params +[\d,]+/m, /^weights +bf16 .* q8 .* q4 /m, /^state +/m, /^kv +/m]) assert.match(t.stdout, re, n);
      assert.ok(t.stdout.includes(j.params.toLocaleString('en-US')), n);
      if (n === 'recurrent-gemma') assert.match(t.stdout, /^kv window +\d+ tokens/m);
      const st = (j as unknown as { stored: { files: number; bytes: number; format: string } }).stored;
      assert.deepEqual(st, { files: 1, bytes: fs.statSync(path.join(FIXTURES, n, 'model.safetensors')).size, format: 'float' }, n);
    }
    // the bundled model is stored q4: info says so, and its bytes are the file's
    const bundled = JSON.parse((await cli('info', '--json')).stdout) as { stored: { bytes: number; format: string }; weightBytes: { q4: number } };
    assert.equal(bundled.stored.format, 'q4');
    assert.equal(bundled.stored.bytes, fs.statSync(path.join(REPO, 'models', 'default', 'model.safetensors')).size);
    assert.equal((JSON.parse((await cli('info', '--config', path.join(FIXTURES, 'zamba2', 'config.json'), '--json')).stdout) as { stored: unknown }).stored, null);
    // a published config by file: Jamba 1.5 Mini, 52B total / 12B active as AI21 states it
    const jamba = await cli('info', '--config', path.join(REPO, 'test', 'data', 'configs', 'jamba', 'ai21labs--AI21-Jamba-1.5-Mini.json'), '--json');
    assert.equal(jamba.code, 0, jamba.stderr);
    const jj = JSON.parse(jamba.stdout) as { params: number; activeParams: number; attentionLayers: number };
    assert.equal(jj.params, 51570323328);
    assert.equal(jj.activeParams, 12110311296);
    assert.equal(jj.attentionLayers, 4);
    // refusals: the loader's messages, exit 1 (a bad config) or 2 (bad usage), no stack trace
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-info-'));
    try {
      const base = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'granite-dense-nope', 'config.json'), 'utf8'));
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ model_type: 'llama' }, /model_type "llama" is not supported/],
        [{ hidden_act: 'gelu' }, /hidden_act = "gelu" is not supported/],
      ];
      for (const [patch, re] of cases) {
        const f = path.join(dir, 'config.json');
        fs.writeFileSync(f, JSON.stringify({ ...base, ...patch }));
        for (const how of [['--config', f], ['--model', dir]]) {
          const r = await cli('info', ...how);
          assert.equal(r.code, 1, JSON.stringify(patch));
          assert.equal(r.stdout, '');
          assert.match(r.stderr, /^sidewinder: config\.json/);
          assert.match(r.stderr, re);
          assert.doesNotMatch(r.stderr, /\n\s+at /);
        }
      }
      fs.writeFileSync(path.join(dir, 'config.json'), '{not json');
      const broken = await cli('info', '--config', path.join(dir, 'config.json'));
      assert.equal(broken.code, 1);
      assert.match(broken.stderr, /config\.json is not valid JSON/);
      const missing = await cli('info', '--model', path.join(dir, 'nope'));
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /does not exist/);
      const both = await cli('info', '--model', dir, '--config', path.join(dir, 'config.json'));
      assert.equal(both.code, 2);
      assert.match(both.stderr, /at most one of --model or --config/);
      const unknown = await cli('info', '--frobnicate');
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown option --frobnicate/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
    const help = await cli('help');
    assert.match(help.stdout, /sidewinder info +\[--model DIR \| --config FILE\] \[--json\]/);
  });

  test('files / ingest / ask --json: the workspace contracts', async () => {
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-ws-'));
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-cache-'));
    fs.writeFileSync(path.join(ws, 'a.py'), 'def alpha():\n    return 1\n');
    fs.mkdirSync(path.join(ws, 'pkg'));
    fs.writeFileSync(path.join(ws, 'pkg', 'b.js'), 'export const beta = 2;\n');
    fs.writeFileSync(path.join(ws, '.env'), 'TOKEN=x\n');
    const files = await cli('files', '--workspace', ws, '--json');
    assert.equal(files.code, 0, files.stderr);
    const f = JSON.parse(files.stdout);
    assert.deepEqual(Object.keys(f), ['files', 'skipped']);
    assert.deepEqual(f.files.map((x: { path: string }) => x.path).sort(), ['a.py', 'pkg/b.js']);
    assert.deepEqual(Object.keys(f.files[0]), ['path', 'bytes', 'mtimeMs']);
    assert.deepEqual(f.skipped, [{ path: '.env', reason: 'secret' }]);

    const model = path.join(FIXTURES, 'granite-dense-nope');
    const ingest = await cli('ingest', '--workspace', ws, '--model', model, '--cache-dir', cache, '--json');
    assert.equal(ingest.code, 0, ingest.stderr);
    const r = JSON.parse(ingest.stdout);
    assert.deepEqual(Object.keys(r), ['files', 'skipped', 'tokens', 'seconds', 'tokensPerSecond', 'resumedFromSnapshot', 'reingestedTokens', 'snapshot', 'memory']);
    assert.deepEqual(Object.keys(r.memory), ['weightsBytes', 'weightsByFormat', 'stateBytes', 'kvGpuBytes', 'kvHostBytes', 'kvDiskBytes', 'scratchBytes', 'kvBudgetBytes']);
    // The weights' bytes by how they are stored (this fixture: all f32): they add up.
    const byFormat = r.memory.weightsByFormat as Record<string, number>;
    assert.equal(Object.values(byFormat).reduce((a, b) => a + b, 0), r.memory.weightsBytes);
    assert.deepEqual(Object.keys(byFormat), ['f32'], JSON.stringify(byFormat));
    assert.equal(r.files, 2);
    assert.equal(r.skipped.secret, 1);
    assert.equal(r.resumedFromSnapshot, false);
    assert.equal(r.reingestedTokens, r.tokens);

    const ask = await cli('ask', '--workspace', ws, '--model', model, '--cache-dir', cache, '--max-new-tokens', '4', '--json', 'Where is beta defined?');
    assert.equal(ask.code, 0, ask.stderr);
    const a = JSON.parse(ask.stdout);
    assert.deepEqual(Object.keys(a), ['answer', 'ids', 'tokens', 'resumedFromSnapshot', 'reingestedTokens', 'seconds', 'memory']);
    assert.equal(a.resumedFromSnapshot, true);
    assert.equal(a.reingestedTokens, 0);
    assert.equal(a.tokens, r.tokens);
    assert.ok(a.ids.length <= 4);
  });

  test('complete --json: {"completion"} at an offset, with and without a workspace', async () => {
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-complete-'));
    const file = path.join(ws, 'm.py');
    fs.writeFileSync(file, 'def add(a, b):\n    return \n\nprint(add(1, 2))\n');
    const model = path.join(FIXTURES, 'granite-moe-rope');
    for (const extra of [[], ['--workspace', ws, '--cache-dir', fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cc-'))]]) {
      const r = await cli('complete', '--file', file, '--offset', '26', '--model', model, '--max-new-tokens', '6', '--json', ...extra);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(Object.keys(out), ['completion']);
      assert.equal(typeof out.completion, 'string');
    }
    const bad = await cli('complete', '--file', file, '--offset', '9999', '--model', model, '--json');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /past the end of the file/);
  });
});
