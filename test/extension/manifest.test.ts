// package.json's contributions, as VS Code reads them: the palette titles, the sidebar container, the
// settings with their descriptions and scopes, and what the extension declares for untrusted and virtual
// workspaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';

const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8'));

interface Command {
  command: string;
  title: string;
  category?: string;
}

test('palette commands are titled exactly as users look for them', () => {
  // The palette shows "<category>: <title>".
  const palette = new Map((pkg.contributes.commands as Command[]).map((c) => [c.command, c.category ? `${c.category}: ${c.title}` : c.title]));
  const expected: Record<string, string> = {
    'sidewinder.ask': 'Sidewinder: Ask About Codebase',
    'sidewinder.reindex': 'Sidewinder: Reindex Workspace',
    'sidewinder.showMemory': 'Sidewinder: Show Memory',
    'sidewinder.downloadModel': 'Sidewinder: Download Model',
    'sidewinder.selectModel': 'Sidewinder: Select Model',
    'sidewinder.stopGeneration': 'Sidewinder: Stop Generation',
  };
  for (const [id, title] of Object.entries(expected)) assert.equal(palette.get(id), title, id);
  // The test-only command is hidden from the palette unless the end-to-end test turns it on.
  const hidden = pkg.contributes.menus.commandPalette as { command: string; when: string }[];
  assert.deepEqual(hidden.find((m) => m.command === 'sidewinder.test.render'), { command: 'sidewinder.test.render', when: 'sidewinder.e2e' });
});

test('the chat is a webview view in its own activity-bar container', () => {
  const container = (pkg.contributes.viewsContainers.activitybar as { id: string; icon: string }[]).find((c) => c.id === 'sidewinder');
  assert.ok(container, 'an activity-bar container');
  assert.ok(fs.existsSync(path.resolve(__dirname, '..', '..', container.icon)), container.icon);
  assert.deepEqual(
    pkg.contributes.views.sidewinder.map((v: { type: string; id: string }) => [v.type, v.id]),
    [['webview', 'sidewinder.chat']],
  );
});

test('settings: each one described, the model machine-scoped, defaults as settings.ts reads them', () => {
  const props = pkg.contributes.configuration.properties as Record<string, { type: string; default: unknown; scope?: string; description?: string; markdownDescription?: string }>;
  const required = [
    'sidewinder.model',
    'sidewinder.kvGpuBudgetMB',
    'sidewinder.kvHostBudgetMB',
    'sidewinder.maxFileKB',
    'sidewinder.extraIgnore',
    'sidewinder.completion.enabled',
    'sidewinder.completion.debounceMs',
    'sidewinder.completion.maxTokens',
  ];
  for (const k of required) assert.ok(props[k], `${k} is contributed`);
  for (const [k, p] of Object.entries(props)) assert.ok((p.description ?? p.markdownDescription ?? '').length > 20, `${k} has a description`);
  // A model path belongs to the machine it is on: never synced, never taken from a workspace's settings.
  assert.equal(props['sidewinder.model'].scope, 'machine');
  assert.equal(props['sidewinder.model'].default, '');
  // The defaults in package.json are the fallbacks settings.ts uses for missing or bad values.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { readSettings } = require('../../src/extension/settings') as typeof import('../../src/extension/settings');
  const s = readSettings(() => undefined);
  assert.equal(props['sidewinder.kvGpuBudgetMB'].default, s.kvGpuBudgetMB);
  assert.equal(props['sidewinder.kvHostBudgetMB'].default, s.kvHostBudgetMB);
  assert.equal(props['sidewinder.maxFileKB'].default, s.maxFileKB);
  assert.equal(props['sidewinder.completion.enabled'].default, s.completion.enabled);
  assert.equal(props['sidewinder.completion.debounceMs'].default, s.completion.debounceMs);
  assert.equal(props['sidewinder.completion.maxTokens'].default, s.completion.maxTokens);
  assert.equal(props['sidewinder.completion.maxLines'].default, s.completion.maxLines);
  assert.equal(props['sidewinder.chat.maxAnswerTokens'].default, s.chat.maxAnswerTokens);
});

test('untrusted workspaces: limited; virtual workspaces: not supported, with the reason', () => {
  assert.equal(pkg.capabilities.untrustedWorkspaces.supported, 'limited');
  assert.match(pkg.capabilities.untrustedWorkspaces.description, /reads no files/);
  assert.equal(pkg.capabilities.virtualWorkspaces.supported, false);
  assert.match(pkg.capabilities.virtualWorkspaces.description, /not supported/);
  // Activation does not read anything by itself: activate() waits for trust (test/extension/activate.test.ts).
  assert.deepEqual(pkg.activationEvents, ['onStartupFinished']);
});
