// The engine process: started by the extension (engineClient.forkEngine) as a Node child process with an IPC
// channel, one per VS Code window. It loads the model on the WebGPU adapter of the bundled `webgpu` binding
// (or the CPU reference backend when the user's setting says so), reads the workspace with WorkspaceIngest,
// and answers the protocol in protocol.ts through EngineServer (the engine behind it: engineBackend.ts). When
// the GPU device is lost it reports it and exits; the extension starts a new process, which gets a new device
// and restores the snapshot.

import { engineBackend } from './engineBackend';
import { EngineServer } from './engineServer';
import type { EngineToHost } from './protocol';

function main(): void {
  if (!process.send) {
    process.stderr.write('engineWorker.js is the Sidewinder engine process; it is started by the VS Code extension.\n');
    process.exit(2);
  }
  let inFlight = 0;
  let exitCode: number | null = null;
  const maybeExit = () => {
    if (exitCode !== null && inFlight === 0) process.exit(exitCode);
  };
  const send = (m: EngineToHost) => {
    if (!process.connected) return;
    inFlight++;
    process.send!(m, undefined, undefined, () => {
      inFlight--;
      maybeExit();
    });
  };
  const server = new EngineServer(send, engineBackend, {
    exit: (code) => {
      exitCode = code;
      maybeExit();
      setTimeout(() => process.exit(code), 2000).unref(); // a send that never completes
    },
  });
  process.on('message', (m) => server.handle(m));
  process.on('disconnect', () => {
    server.dispose();
    process.exit(0);
  });
  process.on('uncaughtException', (e) => {
    server.log('error', `engine crashed: ${e.stack ?? e.message}`);
    server.dispose();
    exitCode = 1;
    maybeExit();
  });
  process.on('unhandledRejection', (e) => server.log('error', `engine: unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
}

main();
