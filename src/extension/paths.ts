// Paths the host is handed by others (a webview link, a settings value) checked before use. No vscode import.

import * as fs from 'fs';
import * as path from 'path';
import { bundledModelDir } from '../engine/bundledModel';

/** True when `file` is `dir` or inside it (both absolute, compared after normalisation). */
export function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The workspace folder that holds `file` (the deepest, for nested folders), or null. */
export function folderOf(file: string, folders: readonly string[]): string | null {
  let best: string | null = null;
  for (const f of folders) if (isInside(f, file) && (!best || f.length > best.length)) best = f;
  return best;
}

/**
 * Resolves a path from model output (relative to a workspace folder, or absolute) to an existing file inside
 * one of the workspace folders; null for anything else. Symbolic links are resolved first, so a link inside the
 * workspace that points outside it is refused too.
 */
export function resolveWorkspaceFile(p: string, folders: readonly string[]): string | null {
  const cleaned = p.trim().replace(/^\.[\\/]/, '');
  if (!cleaned || cleaned.includes('\0')) return null;
  const candidates = path.isAbsolute(cleaned) ? [cleaned] : folders.map((f) => path.join(f, cleaned));
  for (const c of candidates) {
    let real: string;
    try {
      real = fs.realpathSync(c);
      if (!fs.statSync(real).isFile()) continue;
    } catch {
      continue;
    }
    for (const f of folders) {
      let realFolder: string;
      try {
        realFolder = fs.realpathSync(f);
      } catch {
        continue;
      }
      if (isInside(realFolder, real)) return real;
    }
  }
  return null;
}

export type ModelLocation = { dir: string; source: 'setting' | 'bundled' } | { problem: 'not-configured' | 'missing'; dir: string };

/** Where the model is: the `sidewinder.model` setting, else the bundled default at <extension>/models/default. */
export function locateModel(setting: string, extensionPath: string): ModelLocation {
  const dir = setting ? path.resolve(setting) : bundledModelDir(extensionPath);
  if (fs.existsSync(path.join(dir, 'config.json'))) return { dir, source: setting ? 'setting' : 'bundled' };
  return { problem: setting ? 'missing' : 'not-configured', dir };
}
