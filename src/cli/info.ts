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
}

/** `out` is for tests; the command writes to stdout. */
export async function cmdInfo(argv: string[], out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'config'], flags: ['json'] });
  if (args.positionals.length > 0) throw new UsageError(`info takes no positional arguments, got ${JSON.stringify(args.positionals[0])}.`);
  if (args.values.has('model') && args.values.has('config')) throw new UsageError('give at most one of --model or --config.');
  let file: string;
  if (args.values.has('config')) {
    file = args.values.get('config')!;
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new ModelFormatError(`config file ${file} does not exist.`);
  } else {
    const dir = resolveModelDir(args.values.get('model'));
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
  if (j.kvWindowTokens !== null) lines.push(`kv window      ${count(j.kvWindowTokens)} tokens (local attention): at most ${bytes(j.kvMaxBytes!)}`);
  return lines.join('\n') + '\n';
}
