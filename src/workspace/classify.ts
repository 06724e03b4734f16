// What the workspace reader keeps out of the model, and how it tells: first by name (before any open), then by
// content (one read of a file that passed every name check).

import { compileLine, ruleMatches, type IgnoreRule } from './ignore';

/** Why a file is left out of the listing. */
export type SkipReason =
  | 'ignored' // .gitignore, .git/info/exclude, .sidewinderignore or opts.extraIgnore
  | 'secret' // its name looks like a credential: never opened
  | 'binary' // a known binary extension, or a NUL byte in the first 8 KiB
  | 'invalid-utf8' // not valid UTF-8
  | 'too-large' // over maxFileBytes (by stat, never read)
  | 'generated' // minified, a source map, very long lines, or a generated-code header
  | 'lockfile' // a package manager's lockfile
  | 'unreadable' // a permission or I/O error, a dangling link, or not a regular file (FIFO, socket, device)
  | 'symlink-outside' // a link whose real path leaves the workspace: never followed
  | 'symlink-loop' // a link back to a directory it is inside (or a link chain that never ends)
  | 'vanished'; // deleted between listing and reading

/**
 * Names that are never opened. gitignore syntax, matched case-insensitively on the path relative to the root;
 * a pattern with a '/' in the middle matches at any depth ('.aws/credentials' also matches 'x/.aws/credentials').
 * Patterns apply to files, except dir-only ones ('.ssh/'), which skip a whole directory.
 */
export const DEFAULT_SECRET_PATTERNS: readonly string[] = Object.freeze([
  '.env', '.env.*', '*.pem', '*.key', '*.p12', '*.pfx', 'id_rsa*', 'id_dsa*', 'id_ecdsa*', 'id_ed25519*',
  '.npmrc', '.pypirc', '.netrc', '.git-credentials', 'credentials', 'credentials.json', '*.keystore', '*.jks',
  '.htpasswd', 'secrets.*', '*.secret', '.aws/credentials', '.docker/config.json', '*.kdbx', 'service-account*.json',
]);

const LOCKFILES = new Set([
  'package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock', 'pnpm-lock.yaml', 'bun.lockb', 'bun.lock', 'Cargo.lock',
  'poetry.lock', 'Pipfile.lock', 'uv.lock', 'pdm.lock', 'composer.lock', 'Gemfile.lock', 'go.sum', 'flake.lock',
  'Podfile.lock', 'pubspec.lock', 'mix.lock', 'packages.lock.json',
]);

const BINARY_EXTENSIONS = new Set([
  // images
  'png', 'jpg', 'jpeg', 'gif', 'bmp', 'ico', 'icns', 'webp', 'tif', 'tiff', 'psd', 'avif', 'heic', 'svgz', 'xcf',
  // archives and packages
  'zip', 'tar', 'gz', 'tgz', 'bz2', 'xz', 'zst', 'lz4', '7z', 'rar', 'jar', 'war', 'ear', 'whl', 'egg', 'apk',
  'ipa', 'dmg', 'iso', 'deb', 'rpm', 'nupkg', 'vsix', 'crx',
  // compiled code and libraries
  'wasm', 'so', 'dylib', 'dll', 'exe', 'o', 'obj', 'a', 'lib', 'class', 'pyc', 'pyo', 'pyd', 'node', 'bin',
  // documents
  'pdf', 'doc', 'docx', 'xls', 'xlsx', 'ppt', 'pptx', 'odt', 'ods', 'odp', 'epub',
  // fonts
  'ttf', 'otf', 'woff', 'woff2', 'eot',
  // audio and video
  'mp3', 'mp4', 'm4a', 'wav', 'ogg', 'flac', 'aac', 'opus', 'mov', 'avi', 'mkv', 'webm',
  // data and model weights
  'sqlite', 'sqlite3', 'db', 'npy', 'npz', 'pt', 'pth', 'safetensors', 'onnx', 'gguf', 'ckpt', 'h5', 'pkl', 'parquet',
]);

/** Minified bundles and source maps, by name. */
const GENERATED_NAME = /\.min\.(?:js|mjs|cjs|css)$|\.map$/i;

/** Compiles secret patterns (see DEFAULT_SECRET_PATTERNS for how they match). */
export function compileSecretPatterns(patterns: readonly string[]): IgnoreRule[] {
  return patterns.map((p) => compileLine(p, { caseInsensitive: true, floating: true })).filter((r) => r !== null);
}

/** Does the path look like a secret? Only dir-only rules apply to directories. Last matching rule wins. */
export function isSecret(rules: readonly IgnoreRule[], rel: string, isDir: boolean): boolean {
  for (let i = rules.length - 1; i >= 0; i--) {
    const r = rules[i];
    if (isDir && !r.dirOnly) continue;
    if (ruleMatches(r, rel, isDir)) return !r.negated;
  }
  return false;
}

/** Is the path, or a directory it is in, a secret? (For link targets, whose directories the walk may not have entered.) */
export function isSecretPath(rules: readonly IgnoreRule[], rel: string, isDir: boolean): boolean {
  if (isSecret(rules, rel, isDir)) return true;
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) if (isSecret(rules, rel.slice(0, i), true)) return true;
  return false;
}

/** The checks that need only the name (path relative to the root), in order of precedence. */
export function reasonByName(secrets: readonly IgnoreRule[], rel: string): SkipReason | null {
  if (isSecretPath(secrets, rel, false)) return 'secret';
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  if (LOCKFILES.has(base)) return 'lockfile';
  const dot = base.lastIndexOf('.');
  if (dot > 0 && BINARY_EXTENSIONS.has(base.slice(dot + 1).toLowerCase())) return 'binary';
  if (GENERATED_NAME.test(base)) return 'generated';
  return null;
}

export interface ContentLimits {
  maxLineLength: number; // any longer line marks the file as generated
}

/** A file longer than this is generated when its average line is longer than AVERAGE_LINE_LIMIT. */
const AVERAGE_LINE_MIN_BYTES = 4096;
const AVERAGE_LINE_LIMIT = 300;
/** How many leading lines may carry a generated-code header. */
const HEADER_LINES = 5;
const COMMENT_LEADER = /^(?:\/\/|\/\*|\*|#|<!--|--|;|%|\(\*|"""|\{-)/;
const GENERATED_MARKERS = [/@generated\b/i, /\bauto-?generated\b/i, /\bDO NOT EDIT\b/];

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a file's bytes, or says why the file is not source text. */
export function classifyContent(bytes: Uint8Array, limits: ContentLimits): { text: string } | { reason: SkipReason } {
  if (bytes.subarray(0, 8192).includes(0)) return { reason: 'binary' };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { reason: 'invalid-utf8' };
  }
  // Line lengths (in UTF-16 units; close enough to characters for this purpose).
  let lines = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (end - start > limits.maxLineLength) return { reason: 'generated' };
    lines++;
    start = end + 1;
  }
  if (bytes.length > AVERAGE_LINE_MIN_BYTES && text.length / lines > AVERAGE_LINE_LIMIT) return { reason: 'generated' };
  if (hasGeneratedHeader(text)) return { reason: 'generated' };
  return { text };
}

/** A marker such as '@generated' or 'DO NOT EDIT' in a comment among the first lines. */
function hasGeneratedHeader(text: string): boolean {
  const head = text.slice(0, 4096).split('\n', HEADER_LINES);
  return head.some((line) => {
    const t = line.trim();
    return COMMENT_LEADER.test(t) && GENERATED_MARKERS.some((m) => m.test(t));
  });
}
