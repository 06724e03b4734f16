// @vscode/test-cli configuration: runs test/vscode/*.vscode-test.ts (bundled to dist/vscode-test/) inside a real
// VS Code downloaded by @vscode/test-electron. For machines that can download VS Code (`npm run test:vscode`);
// offline CI drives code-server with Playwright instead (see README, Testing).
import { defineConfig } from '@vscode/test-cli';

export default defineConfig({
  files: 'dist/vscode-test/**/*.test.js',
  workspaceFolder: './test/vscode/workspace',
  mocha: { ui: 'tdd', timeout: 180000 },
  launchArgs: ['--disable-extensions'],
});
