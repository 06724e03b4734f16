// A small, strict argument parser: `--name value`, `--flag`, and positionals. Unknown options are errors.

import { UsageError } from '../engine/errors';

export interface ArgSpec {
  values?: readonly string[]; // options taking a value
  flags?: readonly string[]; // boolean options
}

export interface ParsedArgs {
  values: Map<string, string>;
  flags: Set<string>;
  positionals: string[];
}

export function parseArgs(argv: readonly string[], spec: ArgSpec): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (spec.values?.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value.`);
      values.set(name, v);
    } else if (spec.flags?.includes(name)) {
      flags.add(name);
    } else {
      throw new UsageError(`unknown option --${name}.`);
    }
  }
  return { values, flags, positionals };
}

export function intValue(args: ParsedArgs, name: string, fallback?: number): number {
  const v = args.values.get(name);
  if (v === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required.`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}.`);
  return n;
}

export function idList(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new UsageError(`--ids must be a comma-separated list of token ids, got ${JSON.stringify(text)}.`);
  }
  return ids;
}
