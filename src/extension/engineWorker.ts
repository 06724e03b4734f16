// The engine process: started by the extension (engineClient.forkEngine) as a Node child process with an IPC
// channel, one per VS Code window. It loads the model on the WebGPU adapter of the bundled `webgpu` binding
// (or the CPU reference backend when the user's setting says so), reads the workspace with WorkspaceIngest,
// and answers the protocol in protocol.ts through EngineServer. When the GPU device is lost it reports it
// and exits; the extension starts a new process, which gets a new device and restores the snapshot.

import * as os from 'os';
import * as path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';
import { CpuModel } from '../engine/cpu/model';
import { downloadModel, DownloadError, type DownloadProgress as EngineDownloadProgress } from '../engine/download';
import { DeviceLostError, GpuError, ModelFormatError, UnsupportedModelError, UsageError, WebGPUNotAvailableError } from '../engine/errors';
import { GpuModel, type GpuModelOptions } from '../engine/gpu/model';
import { WorkspaceIngest } from '../engine/ingest';
import { modelIdentity } from '../engine/memory/snapshot';
import { openModelFolder, type LanguageModel } from '../engine/model';
import type { WorkspaceOptions } from '../workspace';
import { EngineServer, type EngineBackend, type LoadedModel } from './engineServer';
import type { DownloadProgress, EngineToHost } from './protocol';

/** Error class names survive minification only as literals: name each error by its class. */
function stableName(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const classes: [new (...a: never[]) => Error, string][] = [
    [WebGPUNotAvailableError, 'WebGPUNotAvailableError'],
    [DeviceLostError, 'DeviceLostError'],
    [ModelFormatError, 'ModelFormatError'],
    [UnsupportedModelError, 'UnsupportedModelError'],
    [GpuError, 'GpuError'],
    [DownloadError, 'DownloadError'],
    [UsageError, 'UsageError'],
  ];
  for (const [cls, name] of classes) if (e instanceof cls) e.name = name;
  return e;
}

/**
 * `webgpu` is an ES module; the engine loads it with require(), which Node runs natively only from 20.19 /
 * 22.12. Older runtimes (VS Code's Electron before that) get it through import() put into require's cache.
 */
async function preloadWebgpu(): Promise<void> {
  const req = createRequire(__filename);
  let id: string;
  try {
    id = req.resolve('webgpu');
  } catch (e) {
    throw new WebGPUNotAvailableError(`the bundled 'webgpu' package is missing (${(e as Error).message})`);
  }
  if (req.cache[id]) return;
  try {
    req('webgpu');
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw new WebGPUNotAvailableError(`the 'webgpu' binding could not be loaded: ${(e as Error).message}`);
  }
  const ns = await import(pathToFileURL(id).href);
  const ModuleCtor = req('module') as new (id: string) => NodeJS.Module;
  const m = new ModuleCtor(id);
  m.filename = id;
  m.exports = ns;
  m.loaded = true;
  req.cache[id] = m;
}

function progressOf(p: EngineDownloadProgress): DownloadProgress {
  const mb = (n: number) => `${(n / (1 << 20)).toFixed(1)} MB`;
  const amount = p.bytesTotal > 0 ? `${mb(p.bytesDone)} / ${mb(p.bytesTotal)}` : mb(p.bytesDone);
  return { message: `${p.file} · ${amount} · file ${Math.min(p.filesDone + 1, p.filesTotal)} of ${p.filesTotal}`, fraction: p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : null };
}

const backend: EngineBackend = {
  async load(p): Promise<LoadedModel> {
    try {
      const folder = openModelFolder(p.modelDir, { requireTokenizer: true });
      const tokenizer = folder.tokenizer!;
      let model: LanguageModel;
      let adapter: string | null = null;
      let lost: Promise<string> | null = null;
      if (p.backend === 'cpu') model = CpuModel.load(folder);
      else {
        await preloadWebgpu();
        // Attention KV is paged under the GPU budget (0: dense, unbounded); past the host budget it spills to disk.
        const options: GpuModelOptions = {
          kv:
            p.kvGpuBudgetBytes > 0
              ? {
                  gpuBudgetBytes: p.kvGpuBudgetBytes,
                  hostBudgetBytes: p.kvHostBudgetBytes > 0 ? p.kvHostBudgetBytes : undefined,
                  spillDir: path.join(os.tmpdir(), 'sidewinder-kv'),
                }
              : undefined,
        };
        const gpuModel = await GpuModel.load(folder, options);
        const info = gpuModel.gpu.adapterInfo;
        adapter = [info.vendor, info.architecture, info.description || info.device].filter(Boolean).join(' ') || 'WebGPU adapter';
        lost = gpuModel.gpu.lost;
        model = gpuModel;
      }
      const modelId = modelIdentity(p.modelDir);
      return {
        model,
        tokenizer,
        modelId,
        adapter,
        lost,
        createIngest: (s) => {
          const walk: WorkspaceOptions = { maxFileBytes: s.maxFileBytes, extraIgnore: s.extraIgnore };
          return new WorkspaceIngest(model, tokenizer, { workspace: s.folder, cacheDir: p.cacheDir, modelId, walk });
        },
        dispose: () => model.dispose(),
      };
    } catch (e) {
      throw stableName(e);
    }
  },

  async download(p, onProgress, signal) {
    try {
      const r = await downloadModel(p.repoId, { revision: p.revision, dest: p.dest ?? undefined, onProgress: (x) => onProgress(progressOf(x)), signal });
      return { dir: r.dir, files: r.files.length, bytes: r.bytes };
    } catch (e) {
      throw stableName(e);
    }
  },
};

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
  const server = new EngineServer(send, backend, {
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
