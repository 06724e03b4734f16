// `download`: fetch a model from the Hugging Face Hub (contract in cli.ts's header):
//   sidewinder download REPO_ID [--revision REV] [--dest DIR] [--endpoint URL] [--json]
//       -> progress on stderr; the model folder on stdout, or with --json {"dir","files","bytes"}.
// HF_TOKEN and HF_ENDPOINT are honoured. Ctrl-C stops cleanly; running the same command again resumes.

import * as path from 'path';
import { defaultModelDir, downloadModel, formatBytes, type DownloadProgress } from '../engine/download';
import { SidewinderError, UsageError } from '../engine/errors';
import { parseArgs } from './args';

const USAGE = 'usage: sidewinder download REPO_ID [--revision REV] [--dest DIR] [--endpoint URL] [--json]';

export async function cmdDownload(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['revision', 'dest', 'endpoint'], flags: ['json'] });
  if (args.positionals.length !== 1) throw new UsageError(`give exactly one model id, e.g. ibm-granite/granite-4.0-h-tiny.\n${USAGE}`);
  const repoId = args.positionals[0];
  const dest = path.resolve(args.values.get('dest') ?? defaultModelDir(repoId));

  // First Ctrl-C: abort and keep the part files; a second one exits at once.
  const ac = new AbortController();
  const onSigint = () => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = progressPrinter();
  try {
    const r = await downloadModel(repoId, {
      revision: args.values.get('revision'),
      dest,
      endpoint: args.values.get('endpoint'),
      onProgress: progress.update,
      signal: ac.signal,
    });
    progress.end();
    if (args.flags.has('json')) process.stdout.write(JSON.stringify({ dir: r.dir, files: r.files, bytes: r.bytes }) + '\n');
    else process.stdout.write(r.dir + '\n');
  } catch (e) {
    progress.end();
    if (ac.signal.aborted) throw new SidewinderError(`interrupted. The partial download in ${dest} is kept: run the same command again to resume.`);
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** A one-line bar redrawn on a TTY; otherwise a line per finished file and one every 5 s. */
function progressPrinter(): { update: (p: DownloadProgress) => void; end: () => void } {
  const tty = !!process.stderr.isTTY;
  const samples: { t: number; bytes: number }[] = [];
  let lastFilesDone = -1;
  let lastLine = 0;
  let drawn = false;

  const rate = (p: DownloadProgress): number => {
    const now = Date.now();
    samples.push({ t: now, bytes: p.bytesDone });
    while (samples.length > 2 && now - samples[0].t > 5000) samples.shift();
    const dt = (now - samples[0].t) / 1000;
    return dt > 0.5 ? (p.bytesDone - samples[0].bytes) / dt : 0;
  };

  const update = (p: DownloadProgress) => {
    const speed = rate(p);
    const frac = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0;
    const sizes = `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}`;
    const files = `${Math.min(p.filesDone + 1, p.filesTotal)}/${p.filesTotal}`;
    if (tty) {
      const eta = speed > 0 ? ` ETA ${Math.ceil((p.bytesTotal - p.bytesDone) / speed)}s` : '';
      const line = `${bar(frac)} ${(frac * 100).toFixed(0).padStart(3)}% ${sizes} ${speed > 0 ? `${formatBytes(speed)}/s` : ''}${eta}  [${files}] ${p.file}`;
      process.stderr.write(`\r\x1b[2K${line.slice(0, Math.max(20, (process.stderr.columns || 100) - 1))}`);
      drawn = true;
      return;
    }
    const now = Date.now();
    if (p.filesDone !== lastFilesDone && p.filesDone > 0 && p.bytes === p.total) {
      lastFilesDone = p.filesDone;
      lastLine = now;
      process.stderr.write(`[${p.filesDone}/${p.filesTotal}] ${p.file} (${formatBytes(p.total)}) done; ${sizes}\n`);
    } else if (now - lastLine >= 5000) {
      lastLine = now;
      process.stderr.write(`[${files}] ${p.file}: ${formatBytes(p.bytes)} / ${formatBytes(p.total)}; ${sizes}${speed > 0 ? `, ${formatBytes(speed)}/s` : ''}\n`);
    }
  };

  const end = () => {
    if (drawn) process.stderr.write('\n');
    drawn = false;
  };
  return { update, end };
}

function bar(frac: number): string {
  const n = 24;
  const k = Math.round(Math.min(1, Math.max(0, frac)) * n);
  return `[${'#'.repeat(k)}${'.'.repeat(n - k)}]`;
}
