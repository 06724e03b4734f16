// Real model shapes for benchmarks (random weights at the published sizes). The JSON files are config.json
// files, read at run time from the repository (bench/shapes/, test/data/configs/), and shared with the Python
// peer (bench/peer_transformers.py), which reads the same index (bench/families.json).

import * as fs from 'fs';
import * as path from 'path';
import { parseConfigJson } from '../src/engine/config';
import families from './families.json';

type Json = Record<string, unknown>;

export interface BenchShape {
  readonly name: string;
  readonly family: string;
  /** The config.json, relative to the repository root. */
  readonly file: string;
  readonly provenance: string;
  /** How many layers bench/families.sh keeps (--layers) when fewer than the model has. */
  readonly layers?: number;
}

/** One real shape per family (bench/families.json), in the order `--shape all-families` runs them. */
export const FAMILY_SHAPES: readonly BenchShape[] = families.shapes;

/** Shapes by name besides the families: a small granitemoehybrid for smoke runs on slow adapters (lavapipe). */
const OTHER_SHAPES: readonly BenchShape[] = [
  { name: 'tiny', family: 'granitemoehybrid', file: 'bench/shapes/tiny.json', provenance: 'a small granitemoehybrid for smoke runs' },
];

/**
 * The shapes `--shape` names: a name (bench/families.json, or tiny), `all-families`, a path to a config.json (or
 * to a folder holding one), or several of these separated by commas.
 */
export function resolveShapes(arg: string, root: string): { shape: BenchShape; raw: Json }[] {
  const out: { shape: BenchShape; raw: Json }[] = [];
  for (const part of arg.split(',').map((s) => s.trim()).filter(Boolean)) {
    const named = part === 'all-families' ? FAMILY_SHAPES : [...FAMILY_SHAPES, ...OTHER_SHAPES].filter((s) => s.name === part);
    if (named.length) {
      // the repository root next to the bundle (dist/), else the working directory (a bundle copied elsewhere)
      const at = (f: string) => [path.join(root, f), path.resolve(f)].find((p) => fs.existsSync(p)) ?? path.join(root, f);
      for (const s of named) out.push({ shape: s, raw: parseConfigJson(fs.readFileSync(at(s.file), 'utf8')) });
      continue;
    }
    let file = part;
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'config.json');
    if (!fs.existsSync(file)) {
      throw new Error(`unknown --shape ${part}; known: all-families, ${[...FAMILY_SHAPES, ...OTHER_SHAPES].map((s) => s.name).join(', ')}, or a config.json path`);
    }
    const raw = parseConfigJson(fs.readFileSync(file, 'utf8'));
    const name = path.basename(file) === 'config.json' ? path.basename(path.dirname(path.resolve(file))) : path.basename(file, '.json');
    out.push({ shape: { name, family: String(raw['model_type']), file, provenance: `config file ${file}` }, raw });
  }
  return out;
}

/**
 * The config with only its first n layers (--layers): num_hidden_layers, every per-layer list (layer_types,
 * layers_block_type, ...) and Nemotron-H's pattern string cut to n, layer-index lists (attn_layer_indices,
 * hybrid_layer_ids) filtered. Periodic settings (Jamba's periods, RecurrentGemma's block_types) need nothing.
 * bench/peer_transformers.py truncate_layers does the same, so that both sides run the same model.
 */
export function truncateLayers(raw: Json, n: number): Json {
  const pattern = raw['hybrid_override_pattern'];
  const L = typeof raw['num_hidden_layers'] === 'number' ? (raw['num_hidden_layers'] as number) : typeof pattern === 'string' ? pattern.length : NaN;
  if (!(n >= 1)) throw new Error(`--layers must be a positive integer (got ${n})`);
  if (!(n < L)) return raw;
  const out: Json = { ...raw, num_hidden_layers: n };
  for (const [k, v] of Object.entries(raw)) {
    if (Array.isArray(v) && v.length === L) out[k] = v.slice(0, n);
    else if (k === 'hybrid_override_pattern' && typeof v === 'string') out[k] = v.slice(0, n);
    else if ((k === 'attn_layer_indices' || k === 'hybrid_layer_ids') && Array.isArray(v)) out[k] = v.filter((i) => typeof i === 'number' && i < n);
  }
  return out;
}
