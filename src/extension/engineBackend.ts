// The engine behind EngineServer in the engine process (engineWorker.ts): loads the model on the WebGPU adapter of
// the bundled `webgpu` binding (or the CPU reference backend when the user's setting says so), reads each
// workspace folder with WorkspaceIngest, and downloads models. A module of its own so that tests drive
// EngineServer with the real engine in one process.

import * as os from 'os';
import * as path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';
import { CpuModel } from '../engine/cpu/model';
import { downloadModel, DownloadError, type DownloadProgress as EngineDownloadProgress } from '../engine/download';
import { DeviceLostError, GpuError, ModelFormatError, UnsupportedModelError, UsageError, WebGPUNotAvailableError } from '../engine/errors';
import { GpuModel, type GpuModelOptions } from '../engine/gpu/model';
import { quantizedModelId } from '../engine/quantLoad';
import { workspaceIngest } from '../engine/ingest';
import { modelIdentity } from '../engine/memory/snapshot';
import { openModelFolder, type LanguageModel } from '../engine/model';
import type { EngineBackend, LoadedModel } from './engineServer';
import type { DownloadProgress } from './protocol';

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

/** The real engine: models on WebGPU or the CPU, workspaces read by WorkspaceIngest, downloads from the Hub. */
export const engineBackend: EngineBackend = {
  async load(p): Promise<LoadedModel> {
    try {
      const folder = openModelFolder(p.modelDir, { requireTokenizer: true });
      const tokenizer = folder.tokenizer!;
      let model: LanguageModel;
      let adapter: string | null = null;
      let lost: Promise<string> | null = null;
      // Quantized planes are cached next to the snapshots, keyed by the model and the mode.
      const quant = { mode: p.quant ?? 'none', cacheDir: p.cacheDir };
      if (p.backend === 'cpu') model = CpuModel.load(folder, { quant });
      else {
        await preloadWebgpu();
        // Attention KV is paged under the GPU budget (0: dense, unbounded); past the host budget it spills to disk.
        const options: GpuModelOptions = {
          quant,
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
      const modelId = quantizedModelId(modelIdentity(p.modelDir), quant.mode);
      return {
        model,
        tokenizer,
        modelId,
        adapter,
        lost,
        // Read as the CLI reads it (cli/workspace.ts): the same walk and ingest options.
        createIngest: (s) => workspaceIngest(model, tokenizer, { workspace: s.folder, cacheDir: p.cacheDir, modelId, maxFileBytes: s.maxFileBytes, extraIgnore: s.extraIgnore }),
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
