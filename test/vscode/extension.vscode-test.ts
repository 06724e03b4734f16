/// <reference types="mocha" />
// Runs inside a real VS Code (@vscode/test-electron): the extension activates, contributes its commands and
// settings, and indexes the sample workspace with a fixture model without error.

import * as assert from 'assert';
import * as path from 'path';
import * as vscode from 'vscode';

const EXTENSION_ID = 'sidewinder.sidewinder';
const COMMANDS = ['sidewinder.ask', 'sidewinder.reindex', 'sidewinder.showMemory', 'sidewinder.downloadModel', 'sidewinder.selectModel', 'sidewinder.stopGeneration'];

suite('Sidewinder in VS Code', () => {
  test('activates and registers every command', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is installed`);
    await ext.activate();
    const all = await vscode.commands.getCommands(true);
    for (const c of COMMANDS) assert.ok(all.includes(c), `command ${c} is registered`);
  });

  test('contributes its settings with defaults', () => {
    const cfg = vscode.workspace.getConfiguration('sidewinder');
    assert.equal(typeof cfg.get('completion.enabled'), 'boolean');
    assert.equal(typeof cfg.get('kvGpuBudgetMB'), 'number');
  });

  test('reindexes the sample workspace with a fixture model and opens the memory panel', async () => {
    const model = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'granite-moe-rope');
    await vscode.workspace.getConfiguration('sidewinder').update('model', model, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('sidewinder.reindex');
    await vscode.commands.executeCommand('sidewinder.showMemory');
  });
});
