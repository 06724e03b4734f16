// `info`: what a model costs, from its config.json alone (engine/estimate.ts): the layers by kind, the parameter
// count, the weights' bytes in each load format, the recurrent state per sequence and the KV bytes per token.
//   sidewinder info [--model DIR | --config FILE] [--json]
// The config is validated as the loader does (configFromJson): a model_type or setting the engine does not run
// is refused with the loader's message (exit 1).

import * as fs from 'fs';
import * as path from 'path';
import { resolveModelDir } from '../engine/bundledModel';
import { SUPPORTED_MODEL_TYPES, configFromJson, parseConfigJson } from '../engine/config';
import { ModelFormatError, UsageError } from '../engine/errors';
import { estimateModel, type ModelEstimate } from '../engine/estimate';
import { parseArgs } from './args';

/** The info --json object (keys in this order). */
export interface InfoJson {
  model_type: string;
  architecture: string;
  layers: number;
  layersByKind: ModelEstimate['layersByKind'];
  attentionLayers: number;
  recurrentLayers: number;
  params: number;
  activeParams: number;
  tensors: number;
  weightBytes: ModelEstimate['weightBytes'];
  stateBytes: number;
  kvBytesPerToken: number;
  kvWindowTokens: number | null;
  kvMaxBytes: number | null;
  /** With --model: the checkpoint's own weight files, their bytes and how they are stored (q4 / q8 as written by
   * `quantize` or the training export, else float: loaded as is or quantized at load under --quant). */
  stored: { files: number; bytes: number; format: 'q4' | 'q8' | 'float' } | null;
}

/** The *.safetensors files of `dir`, their bytes, and the sidewinder_quant format their headers name. */
function storedWeights(dir: string): InfoJson['stored'] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  if (files.length === 0) return null;
  let bytes = 0;
  let format: 'q4' | 'q8' | 'float' = 'float';
  for (const f of files) {
    const p = path.join(dir, f);
    bytes += fs.statSync(p).size;
    const fd = fs.openSync(p, 'r');
    try {
      const len = Buffer.alloc(8);
      if (fs.readSync(fd, len, 0, 8, 0) !== 8) continue;
      const n = Number(len.readBigUInt64LE(0));
      if (!(n > 0 && n < 100 * 2 ** 20)) continue; // not a safetensors header: the loader reports it
      const head = Buffer.alloc(n);
      fs.readSync(fd, head, 0, n, 8);
      const meta = (JSON.parse(head.toString('utf8')) as Record<string, { sidewinder_quant?: string } | undefined>)['__metadata__'];
      if (meta?.sidewinder_quant === 'q4' || meta?.sidewinder_quant === 'q8') format = meta.sidewinder_quant;
    } catch {
      // an unreadable header: `info` reports the config; loading reports the file
    } finally {
      fs.closeSync(fd);
    }
  }
  return { files: files.length, bytes, format };
}

/** `out` is for tests; the command writes to stdout. */
export async function cmdInfo(argv: string[], out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'config'], flags: ['json'] });
  if (args.positionals.length > 0) throw new UsageError(`info takes no positional arguments, got ${JSON.stringify(args.positionals[0])}.`);
  if (args.values.has('model') && args.values.has('config')) throw new UsageError('give at most one of --model or --config.');
  let file: string;
  let dir: string | null = null;
  if (args.values.has('config')) {
    file = args.values.get('config')!;
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new ModelFormatError(`config file ${file} does not exist.`);
  } else {
    dir = resolveModelDir(args.values.get('model'));
    // (openModelFolder's messages)
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ModelFormatError(`model folder ${dir} does not exist.`);
    file = path.join(dir, 'config.json');
    if (!fs.existsSync(file)) throw new ModelFormatError(`${dir} has no config.json; is this a Hugging Face model folder?`);
  }
  const cfg = configFromJson(parseConfigJson(fs.readFileSync(file, 'utf8')));
  const e = estimateModel(cfg);
  const json: InfoJson = {
    model_type: cfg.architecture,
    architecture: SUPPORTED_MODEL_TYPES[cfg.architecture].architecture,
    layers: e.numLayers,
    layersByKind: e.layersByKind,
    attentionLayers: e.attentionLayers,
    recurrentLayers: e.recurrentLayers,
    params: e.params,
    activeParams: e.activeParams,
    tensors: e.tensors,
    weightBytes: e.weightBytes,
    stateBytes: e.stateBytes,
    kvBytesPerToken: e.kvBytesPerToken,
    kvWindowTokens: e.kvWindowTokens,
    kvMaxBytes: e.kvMaxBytes,
    stored: dir ? storedWeights(dir) : null,
  };
  if (args.flags.has('json')) out.write(JSON.stringify(json) + '\n');
  else out.write(text(json));
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function short(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

function text(j: InfoJson): string {
  const kinds = Object.entries(j.layersByKind).map(([k, n]) => `${n} ${k}`).join(', ');
  const w = j.weightBytes;
  const lines = [
    `model_type     ${j.model_type} (${j.architecture}, ${SUPPORTED_MODEL_TYPES[j.model_type as keyof typeof SUPPORTED_MODEL_TYPES].description})`,
    `layers         ${j.layers}: ${kinds} (${j.attentionLayers} with attention, ${j.recurrentLayers} with a recurrent state)`,
    `params         ${count(j.params)} (${short(j.params)})${j.activeParams !== j.params ? `, ${count(j.activeParams)} active per token` : ''}, ${j.tensors} tensors`,
    `weights        bf16 ${bytes(w.bf16)}, q8 ${bytes(w.q8)}, q4 ${bytes(w.q4)} (f32 on the CPU reference: ${bytes(w.f32)})`,
    `state          ${bytes(j.stateBytes)} per sequence (f32, constant in the context length)`,
    `kv             ${j.kvBytesPerToken === 0 ? 'none (no attention layer)' : `${count(j.kvBytesPerToken)} B per token (f32 K and V)`}`,
  ];
  if (j.stored) lines.splice(4, 0, `stored         ${bytes(j.stored.bytes)} in ${j.stored.files} safetensors file${j.stored.files === 1 ? '' : 's'} (${j.stored.format === 'float' ? 'float: loaded as is, or quantized at load with --quant' : `${j.stored.format} as stored: loads as is`})`);
  if (j.kvWindowTokens !== null) lines.push(`kv window      ${count(j.kvWindowTokens)} tokens (local attention): at most ${bytes(j.kvMaxBytes!)}`);
  return lines.join('\n') + '\n';
}
