// The model that ships with Sidewinder: `models/default` in the package root (the repository, the npm package or
// the installed extension). It is what every command uses when no model is given. No vscode import.

import * as fs from 'fs';
import * as path from 'path';
import { BundledModelMissingError } from './errors';

/**
 * The package root of the running bundle: the nearest folder above it with a package.json (dist/cli.js and
 * dist/extension.js -> the package, dist/test/*.js -> the same), else the bundle's parent folder. Found from the
 * script's own location, never from the current directory.
 */
export function packageRoot(from: string = __dirname): string {
  for (let dir = path.dirname(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.dirname(from);
  }
}

/** Where the bundled model lives: <root>/models/default (it may be missing from a build without it). */
export function bundledModelDir(root: string = packageRoot()): string {
  return path.join(root, 'models', 'default');
}

/** The model folder to use: `given` when set, else the bundled model, which must then exist. */
export function resolveModelDir(given: string | undefined, root: string = packageRoot()): string {
  if (given) return given;
  const dir = bundledModelDir(root);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new BundledModelMissingError(dir);
  return dir;
}
