// `files`: what the model would read from a workspace, in ingest order, and what it would leave out (contract in
// cli.ts's header).
//   sidewinder files --workspace DIR [--json] [--max-file-kb N] [--ignore GLOB[,GLOB...]]

import { UsageError } from '../engine/errors';
import { walkWorkspace, type WorkspaceListing } from '../workspace';
import { intValue, parseArgs } from './args';

/** `out` is for tests; the command writes to stdout. */
export async function cmdFiles(argv: string[], out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const args = parseArgs(argv, { values: ['workspace', 'max-file-kb', 'ignore'], flags: ['json'] });
  const ws = args.values.get('workspace');
  if (!ws) throw new UsageError('--workspace DIR is required.');
  if (args.positionals.length > 0) throw new UsageError(`files takes no positional arguments, got ${JSON.stringify(args.positionals[0])}.`);
  // gitignore lines, comma-separated (parseArgs keeps only the last of a repeated option).
  const extraIgnore = (args.values.get('ignore') ?? '').split(',').map((g) => g.trim()).filter((g) => g.length > 0);
  const listing = await walkWorkspace(ws, { maxFileBytes: intValue(args, 'max-file-kb', 512) * 1024, extraIgnore });
  if (args.flags.has('json')) {
    const json = {
      files: listing.files.map((f) => ({ path: f.path, bytes: f.bytes, mtimeMs: f.mtimeMs })),
      skipped: listing.skipped.map((s) => ({ path: s.path, reason: s.reason })),
    };
    out.write(JSON.stringify(json) + '\n');
  } else out.write(table(listing));
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1 << 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/** One line per file (path, size) in ingest order, then totals and the skipped files counted by reason. */
function table(listing: WorkspaceListing): string {
  const width = Math.min(72, Math.max(4, ...listing.files.map((f) => f.path.length)));
  const lines = listing.files.map((f) => `${f.path.padEnd(width)}  ${size(f.bytes).padStart(10)}`);
  const total = listing.files.reduce((n, f) => n + f.bytes, 0);
  lines.push(`${listing.files.length} files, ${size(total)}`);
  const byReason = new Map<string, number>();
  for (const s of listing.skipped) byReason.set(s.reason, (byReason.get(s.reason) ?? 0) + 1);
  if (byReason.size > 0) {
    const parts = [...byReason].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([r, n]) => `${n} ${r}`);
    lines.push(`skipped: ${parts.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}
