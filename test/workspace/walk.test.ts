// The workspace reader: ignore rules (checked against git itself when git is installed), what is never read
// (secrets, oversized files, binaries by name), content checks, symbolic links, ordering, re-reading, framing,
// and the `files` command's JSON contract.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cmdFiles } from '../../src/cli/files';
import { MAX_LISTED_DEFINITIONS } from '../../src/workspace/frame';
import { UsageError } from '../../src/engine/errors';
import {
  DEFAULT_SECRET_PATTERNS,
  definedNames,
  definitionsIndex,
  definitionsLine,
  frameFile,
  readWorkspaceFile,
  walkWorkspace,
  WorkspaceError,
  type WorkspaceListing,
  type WorkspaceOptions,
} from '../../src/workspace';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sidewinder-walk-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

let dirCount = 0;
/** A fresh directory holding `files` (path -> content; directories are made as needed). */
function makeTree(files: Record<string, string | Buffer>): string {
  const root = path.join(tmpRoot, `ws${++dirCount}`);
  fs.mkdirSync(root);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  return fs.realpathSync(root);
}

/** A readFile hook that records every path it reads. */
function readSpy(): { read: string[]; readFile: (abs: string) => Promise<Buffer> } {
  const read: string[] = [];
  return { read, readFile: async (abs) => (read.push(abs), fs.promises.readFile(abs)) };
}

const paths = (l: WorkspaceListing) => l.files.map((f) => f.path).sort();
const reasons = (l: WorkspaceListing) => Object.fromEntries(l.skipped.map((s) => [s.path, s.reason]));
/** Every file the walk saw that no ignore rule excluded (listed, or skipped for another reason). */
const notIgnored = (l: WorkspaceListing) => [...l.files.map((f) => f.path), ...l.skipped.filter((s) => s.reason !== 'ignored').map((s) => s.path)].sort();

const gitAvailable = spawnSync('git', ['--version']).status === 0;
function git(cwd: string, ...args: string[]): string {
  // Isolated from the user's and the system's git configuration (no global excludes file).
  const env = { ...process.env, HOME: tmpRoot, XDG_CONFIG_HOME: tmpRoot, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
  const r = spawnSync('git', args, { cwd, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

// --- gitignore semantics --------------------------------------------------------------------------------------

interface IgnoreCase {
  name: string;
  ignore: Record<string, string>; // ignore file (relative to the case's directory) -> content
  files: string[];
  ignored: string[]; // which of `files` must be left out
}

const CASES: IgnoreCase[] = [
  { name: 'basename glob at any depth', ignore: { '.gitignore': '*.log\n' }, files: ['a.log', 'b.txt', 'sub/c.log', 'sub/d.txt'], ignored: ['a.log', 'sub/c.log'] },
  { name: 'leading slash anchors', ignore: { '.gitignore': '/root.txt\n' }, files: ['root.txt', 'sub/root.txt'], ignored: ['root.txt'] },
  { name: 'trailing slash: directories only', ignore: { '.gitignore': 'build/\n' }, files: ['build/x.js', 'src/build/y.js', 'lib/build', 'build.txt'], ignored: ['build/x.js', 'src/build/y.js'] },
  { name: 'a slash in the middle anchors', ignore: { '.gitignore': 'doc/*.txt\n' }, files: ['doc/a.txt', 'doc/sub/b.txt', 'x/doc/c.txt'], ignored: ['doc/a.txt'] },
  { name: 'leading **/', ignore: { '.gitignore': '**/foo\n' }, files: ['foo', 'a/foo', 'a/b/foo/bar.txt', 'a/foobar'], ignored: ['foo', 'a/foo', 'a/b/foo/bar.txt'] },
  { name: 'trailing /**', ignore: { '.gitignore': 'abc/**\n' }, files: ['abc/x', 'abc/d/y', 'xabc/z', 'sub/abc/w'], ignored: ['abc/x', 'abc/d/y'] },
  { name: '/**/ matches zero or more directories', ignore: { '.gitignore': 'a/**/b.txt\n' }, files: ['a/b.txt', 'a/x/b.txt', 'a/x/y/b.txt', 'a/xb.txt', 'b.txt'], ignored: ['a/b.txt', 'a/x/b.txt', 'a/x/y/b.txt'] },
  { name: 'negation re-includes', ignore: { '.gitignore': '*.txt\n!keep.txt\n' }, files: ['a.txt', 'keep.txt', 'sub/keep.txt', 'sub/b.txt'], ignored: ['a.txt', 'sub/b.txt'] },
  { name: 'no re-including inside an excluded directory', ignore: { '.gitignore': 'out/\n!out/keep.txt\n' }, files: ['out/a', 'out/keep.txt'], ignored: ['out/a', 'out/keep.txt'] },
  { name: 're-including from dir/*', ignore: { '.gitignore': 'out/*\n!out/keep.txt\n' }, files: ['out/a', 'out/keep.txt'], ignored: ['out/a'] },
  { name: 'whitelist from the top', ignore: { '.gitignore': '/*\n!/src/\n!README.md\n' }, files: ['README.md', 'LICENSE', 'src/a.ts', 'docs/b.md'], ignored: ['LICENSE', 'docs/b.md'] },
  { name: 'whitelist by extension', ignore: { '.gitignore': '*\n!*/\n!*.ts\n' }, files: ['a.ts', 'a.js', 'sub/b.ts', 'sub/c.md'], ignored: ['a.js', 'sub/c.md'] },
  { name: 'comments and escaped #', ignore: { '.gitignore': '\\#notes\n# comment\n' }, files: ['#notes', 'notes', '# comment'], ignored: ['#notes'] },
  { name: 'escaped !', ignore: { '.gitignore': '\\!important\n' }, files: ['!important', 'important'], ignored: ['!important'] },
  { name: 'trailing spaces dropped unless escaped', ignore: { '.gitignore': 'trail.txt   \nspace\\ \n' }, files: ['trail.txt', 'space ', 'space'], ignored: ['trail.txt', 'space '] },
  { name: '? matches one character but not /', ignore: { '.gitignore': '?.c\nx?y\n' }, files: ['a.c', 'ab.c', 'sub/b.c', 'xzy', 'x/y'], ignored: ['a.c', 'sub/b.c', 'xzy'] },
  { name: 'character classes and ranges', ignore: { '.gitignore': '[abc].md\n[!x-z]1.txt\n[0-9]*.out\n' }, files: ['a.md', 'd.md', 'x1.txt', 'b1.txt', '1a.out', 'a1.out'], ignored: ['a.md', 'b1.txt', '1a.out'] },
  { name: 'POSIX classes', ignore: { '.gitignore': '[[:digit:]][[:upper:]].dat\n' }, files: ['1A.dat', '1a.dat', 'AA.dat'], ignored: ['1A.dat'] },
  { name: "']' first in a class is literal", ignore: { '.gitignore': '[]x].txt\n' }, files: ['].txt', 'x.txt', 'a.txt'], ignored: ['].txt', 'x.txt'] },
  { name: 'an unclosed class never matches', ignore: { '.gitignore': '[abc\n' }, files: ['[abc', 'a'], ignored: [] },
  { name: 'a trailing backslash never matches', ignore: { '.gitignore': 'foo\\\n' }, files: ['foo', 'foo\\'], ignored: [] },
  { name: 'escaped *', ignore: { '.gitignore': '\\*.txt\n' }, files: ['*.txt', 'a.txt'], ignored: ['*.txt'] },
  { name: '* does not cross /', ignore: { '.gitignore': 'src/*.js\n' }, files: ['src/a.js', 'src/lib/b.js'], ignored: ['src/a.js'] },
  { name: '** next to other characters is *', ignore: { '.gitignore': '**.js\n?/b**/c\n' }, files: ['a.js', 'sub/b.js', 'a/bx/c', 'a/bx/y/c'], ignored: ['a.js', 'sub/b.js', 'a/bx/c'] },
  // git matches a path pattern's literal prefix first, so a '**' right after it acts as a leading '**/'.
  { name: "git's literal-prefix quirk", ignore: { '.gitignore': 'x**/y\n' }, files: ['xa/y', 'xa/b/y', 'x/y', 'z/xa/y'], ignored: ['xa/y', 'xa/b/y', 'x/y'] },
  { name: 'the last matching line wins (re-ignored)', ignore: { '.gitignore': '!a.txt\na.txt\n' }, files: ['a.txt'], ignored: ['a.txt'] },
  { name: 'the last matching line wins (re-included)', ignore: { '.gitignore': 'a.txt\n!a.txt\n' }, files: ['a.txt'], ignored: [] },
  { name: 'a deeper .gitignore overrides', ignore: { '.gitignore': '*.gen\n', 'sub/.gitignore': '!*.gen\n' }, files: ['x.gen', 'sub/y.gen', 'sub/deep/z.gen'], ignored: ['x.gen'] },
  { name: 'patterns are relative to their .gitignore', ignore: { 'sub/.gitignore': '/local.txt\na/b.txt\n' }, files: ['local.txt', 'sub/local.txt', 'sub/deeper/local.txt', 'a/b.txt', 'sub/a/b.txt'], ignored: ['sub/local.txt', 'sub/a/b.txt'] },
  { name: 'a directory re-included by name', ignore: { '.gitignore': 'logs/\n!logs/\n' }, files: ['logs/x'], ignored: [] },
  { name: 'dir/**/ matches directories inside only', ignore: { '.gitignore': 'foo/**/\n' }, files: ['foo/a/x.txt', 'foo/y.txt'], ignored: ['foo/a/x.txt'] },
  { name: 'CRLF line endings', ignore: { '.gitignore': '*.tmp\r\n*.bak\r\n' }, files: ['a.tmp', 'b.bak', 'c.txt'], ignored: ['a.tmp', 'b.bak'] },
  { name: 'a name matches files and directories at any depth', ignore: { '.gitignore': 'node_modules\n' }, files: ['node_modules/x/y.js', 'a/node_modules/z.js', 'a/node_modules_x.js'], ignored: ['node_modules/x/y.js', 'a/node_modules/z.js'] },
  { name: 'case-sensitive', ignore: { '.gitignore': '*.TXT\n' }, files: ['a.txt', 'b.TXT'], ignored: ['b.TXT'] },
  { name: '**/ with a path', ignore: { '.gitignore': '**/x/y.txt\n' }, files: ['x/y.txt', 'a/x/y.txt', 'a/b/x/y.txt', 'x/z.txt'], ignored: ['x/y.txt', 'a/x/y.txt', 'a/b/x/y.txt'] },
  { name: 'anchored dir-only path', ignore: { '.gitignore': 'foo/bar/\n' }, files: ['foo/bar/a', 'a/foo/bar/b', 'foo/barx'], ignored: ['foo/bar/a'] },
  { name: 'cache/** with an exception', ignore: { '.gitignore': 'cache/**\n!cache/keep\n' }, files: ['cache/a', 'cache/keep', 'cache/d/e'], ignored: ['cache/a', 'cache/d/e'] },
  { name: 'a blank line and a lone ! do nothing', ignore: { '.gitignore': '\n!\n   \n' }, files: ['a'], ignored: [] },
];

describe('gitignore semantics', () => {
  // One tree, one directory per case; each case's patterns are relative to its own directory.
  const files: Record<string, string> = {};
  CASES.forEach((c, i) => {
    const dir = `c${String(i).padStart(2, '0')}`;
    for (const [f, text] of Object.entries(c.ignore)) files[`${dir}/${f}`] = text;
    for (const f of c.files) files[`${dir}/${f}`] = 'x\n';
  });
  const root = makeTree(files);
  const isIgnoreFile = (p: string) => p.endsWith('/.gitignore');
  const expected = (i: number) => {
    const dir = `c${String(i).padStart(2, '0')}`;
    return CASES[i].files.filter((f) => !CASES[i].ignored.includes(f)).map((f) => `${dir}/${f}`).sort();
  };
  const inCase = (all: string[], i: number) => all.filter((p) => p.startsWith(`c${String(i).padStart(2, '0')}/`) && !isIgnoreFile(p)).sort();

  test('the walker follows every case of the table', async () => {
    const seen = notIgnored(await walkWorkspace(root));
    CASES.forEach((c, i) => assert.deepEqual(inCase(seen, i), expected(i), c.name));
  });

  test('the table agrees with git ls-files --others --exclude-standard', { skip: !gitAvailable && 'git is not installed' }, () => {
    git(root, 'init', '-q');
    const listed = git(root, 'ls-files', '-z', '--others', '--cached', '--exclude-standard').split('\0').filter((p) => p.length > 0);
    CASES.forEach((c, i) => assert.deepEqual(inCase(listed, i), expected(i), c.name));
  });
});

describe('ignore sources', () => {
  test('.git/info/exclude, and .git, .hg, .svn are never entered nor reported', async () => {
    const root = makeTree({
      '.git/info/exclude': '*.tmp\n',
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.hg/store': 'x',
      '.svn/entries': 'x',
      'sub/.git': 'gitdir: elsewhere\n',
      'a.tmp': 'x',
      'b.txt': 'x',
    });
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['b.txt']);
    assert.deepEqual(reasons(l), { 'a.tmp': 'ignored' });
  });

  test('.gitignore files above the root, up to the repository top, and its info/exclude', async () => {
    const top = makeTree({
      '.git/info/exclude': '*.bak\n',
      '.gitignore': '*.log\n/ws/skip.txt\n',
      'ws/a.log': 'x',
      'ws/skip.txt': 'x',
      'ws/x.bak': 'x',
      'ws/keep.txt': 'x',
      'ws/deep/skip.txt': 'x',
    });
    const l = await walkWorkspace(path.join(top, 'ws'));
    assert.deepEqual(paths(l), ['deep/skip.txt', 'keep.txt']);
    assert.deepEqual(reasons(l), { 'a.log': 'ignored', 'skip.txt': 'ignored', 'x.bak': 'ignored' });
  });

  test('.sidewinderignore at any level, overriding .gitignore in its directory', async () => {
    const root = makeTree({
      '.gitignore': '*.log\n',
      '.sidewinderignore': 'docs/\n',
      'sub/.sidewinderignore': '!important.log\nfixtures/\n',
      'a.log': 'x',
      'docs/guide.md': 'x',
      'sub/important.log': 'x',
      'sub/other.log': 'x',
      'sub/fixtures/x.txt': 'x',
      'sub/code.ts': 'x',
    });
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['.gitignore', '.sidewinderignore', 'sub/.sidewinderignore', 'sub/code.ts', 'sub/important.log']);
    assert.deepEqual(reasons(l), { 'a.log': 'ignored', docs: 'ignored', 'sub/fixtures': 'ignored', 'sub/other.log': 'ignored' });
  });

  test('extraIgnore: gitignore lines relative to the root, over every ignore file', async () => {
    const root = makeTree({ 'a.md': 'x', 'README.md': 'x', 'sub/.gitignore': '!*.md\n', 'sub/b.md': 'x', 'src/c.ts': 'x' });
    const l = await walkWorkspace(root, { extraIgnore: ['*.md', '!/README.md', '/src'] });
    assert.deepEqual(paths(l), ['README.md', 'sub/.gitignore']);
    assert.deepEqual(reasons(l), { 'a.md': 'ignored', 'sub/b.md': 'ignored', src: 'ignored' });
  });

  test('an ignored directory is reported once and never entered', async () => {
    const root = makeTree({ '.gitignore': 'node_modules/\n', 'node_modules/a/b.js': 'x', 'node_modules/c.js': 'x', 'i.ts': 'x' });
    const l = await walkWorkspace(root);
    assert.deepEqual(l.skipped, [{ path: 'node_modules', reason: 'ignored' }]);
  });
});

// --- what is never read ------------------------------------------------------------------------------------------

describe('never read', () => {
  test('secrets are skipped by name before any read', async () => {
    const secrets = [
      '.env', '.env.local', 'config/.env.production', 'server.pem', 'tls/private.key', 'cert.p12', 'cert.pfx', 'id_rsa',
      'keys/id_rsa.pub', 'id_ed25519', 'id_ecdsa', 'id_dsa', '.npmrc', '.pypirc', '.netrc', '.git-credentials',
      'credentials', 'gcp/credentials.json', 'release.keystore', 'app.jks', '.htpasswd', 'secrets.yaml', 'db.secret',
      'home/.aws/credentials', '.docker/config.json', 'vault.kdbx', 'service-account-prod.json', 'ID_RSA',
    ];
    const root = makeTree(Object.fromEntries([...secrets, 'app.ts', 'docker/config.json', 'env.ts'].map((p) => [p, 'TOKEN=hunter2\n'])));
    const spy = readSpy();
    const l = await walkWorkspace(root, { readFile: spy.readFile });
    assert.deepEqual(paths(l), ['app.ts', 'docker/config.json', 'env.ts']);
    assert.deepEqual(reasons(l), Object.fromEntries(secrets.map((p) => [p, 'secret'])));
    assert.deepEqual(spy.read.map((p) => path.relative(root, p)).sort(), ['app.ts', 'docker/config.json', 'env.ts']);
    assert.ok(DEFAULT_SECRET_PATTERNS.includes('.env'));
  });

  test('secretPatterns replaces the default list (and can extend it with exceptions)', async () => {
    const root = makeTree({ '.env': 'x', '.env.example': 'x', 'a.txt': 'x', 'notes/.ssh/id': 'x' });
    const spy = readSpy();
    let l = await walkWorkspace(root, { secretPatterns: ['*.txt', '.ssh/'], readFile: spy.readFile });
    assert.deepEqual(paths(l), ['.env', '.env.example']);
    assert.deepEqual(reasons(l), { 'a.txt': 'secret', 'notes/.ssh': 'secret' });
    l = await walkWorkspace(root, { secretPatterns: [...DEFAULT_SECRET_PATTERNS, '!.env.example'], readFile: spy.readFile });
    assert.deepEqual(paths(l), ['.env.example', 'a.txt', 'notes/.ssh/id']);
  });

  test('files over maxFileBytes are skipped by size, unread', async () => {
    const root = makeTree({ 'big.ts': 'x'.repeat(101), 'fits.ts': 'y'.repeat(99) + '\n' });
    const spy = readSpy();
    const l = await walkWorkspace(root, { maxFileBytes: 100, readFile: spy.readFile });
    assert.deepEqual(paths(l), ['fits.ts']);
    assert.deepEqual(reasons(l), { 'big.ts': 'too-large' });
    assert.deepEqual(spy.read, [path.join(root, 'fits.ts')]);
  });

  test('lockfiles and known binary extensions are skipped by name, unread', async () => {
    const named = ['package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'sub/Cargo.lock', 'go.sum', 'poetry.lock', 'bun.lockb', 'uv.lock', 'Gemfile.lock'];
    const binaries = ['logo.png', 'photo.JPG', 'font.woff2', 'lib.so', 'mod.wasm', 'doc.pdf', 'dist.tar.gz'];
    const minified = ['app.min.js', 'style.min.css', 'app.js.map'];
    const root = makeTree(Object.fromEntries([...named, ...binaries, ...minified, 'main.rs'].map((p) => [p, 'text\n'])));
    const spy = readSpy();
    const l = await walkWorkspace(root, { readFile: spy.readFile });
    assert.deepEqual(paths(l), ['main.rs']);
    assert.deepEqual(reasons(l), {
      ...Object.fromEntries(named.map((p) => [p, 'lockfile'])),
      ...Object.fromEntries(binaries.map((p) => [p, 'binary'])),
      ...Object.fromEntries(minified.map((p) => [p, 'generated'])),
    });
    assert.deepEqual(spy.read, [path.join(root, 'main.rs')]);
  });
});

// --- content checks ----------------------------------------------------------------------------------------------

describe('content', () => {
  test('binary (NUL), invalid UTF-8, and valid UTF-8 with a BOM', async () => {
    const root = makeTree({
      'blob.dat': Buffer.from([0x41, 0x00, 0x42]),
      'late-nul.txt': Buffer.concat([Buffer.from(('a'.repeat(99) + '\n').repeat(90)), Buffer.from([0])]), // past 8 KiB: valid UTF-8
      'latin1.txt': Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]), // 'café' in Latin-1
      'utf16.txt': Buffer.from([0xff, 0xfe, 0x41, 0x42]),
      'bom.ts': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('const s = "héllo ✓ 𝄞";\n')]),
    });
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['bom.ts', 'late-nul.txt']);
    assert.deepEqual(reasons(l), { 'blob.dat': 'binary', 'latin1.txt': 'invalid-utf8', 'utf16.txt': 'invalid-utf8' });
    const bom = l.files.find((f) => f.path === 'bom.ts')!;
    assert.deepEqual(await readWorkspaceFile(bom), { text: 'const s = "héllo ✓ 𝄞";\n' });
  });

  test('generated: long lines, long average lines, generated-code headers', async () => {
    const root = makeTree({
      'long.js': 'a\n' + 'x'.repeat(1001) + '\n',
      'edge.js': 'x'.repeat(1000) + '\n',
      'wide.json': ('"' + 'y'.repeat(400) + '",\n').repeat(20), // 8 KiB, every line 403 characters
      'short-wide.txt': ('z'.repeat(400) + '\n').repeat(5), // under 4 KiB: the average does not count
      'api.pb.go': '// Code generated by protoc-gen-go. DO NOT EDIT.\npackage api\n',
      'schema.ts': '/**\n * @generated by relay-compiler\n */\nexport {};\n',
      'conf.py': '# This file is autogenerated.\nX = 1\n',
      'hand.ts': 'export const a = 1;\n'.repeat(5) + '// DO NOT EDIT the line above\nconst doNotEdit = "DO NOT EDIT";\n',
    });
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['edge.js', 'hand.ts', 'short-wide.txt']);
    assert.deepEqual(reasons(l), { 'long.js': 'generated', 'wide.json': 'generated', 'api.pb.go': 'generated', 'schema.ts': 'generated', 'conf.py': 'generated' });
    const strict = await walkWorkspace(root, { extraIgnore: ['*', '!edge.js'], maxLineLength: 999 });
    assert.deepEqual(reasons(strict)['edge.js'], 'generated');
  });

  test('unreadable files (EACCES, EIO) are reported, and the walk goes on', async () => {
    const root = makeTree({ 'locked.ts': 'x', 'broken.ts': 'y', 'fine.ts': 'z' });
    const readFile = async (abs: string) => {
      if (abs.endsWith('locked.ts')) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      if (abs.endsWith('broken.ts')) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      return fs.promises.readFile(abs);
    };
    const l = await walkWorkspace(root, { readFile });
    assert.deepEqual(paths(l), ['fine.ts']);
    assert.deepEqual(reasons(l), { 'locked.ts': 'unreadable', 'broken.ts': 'unreadable' });
  });

  test('a FIFO is never opened', { skip: spawnSync('mkfifo', ['--version']).status !== 0 && 'mkfifo is not available' }, async () => {
    const root = makeTree({ 'a.ts': 'x' });
    assert.equal(spawnSync('mkfifo', [path.join(root, 'pipe')]).status, 0);
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['a.ts']);
    assert.deepEqual(reasons(l), { pipe: 'unreadable' });
  });
});

// --- symbolic links ----------------------------------------------------------------------------------------------

describe('symbolic links', () => {
  test('outside the root: never followed', async () => {
    const outside = makeTree({ 'secret.txt': 'outside\n', 'dir/x.ts': 'x' });
    const root = makeTree({ 'a.ts': 'x' });
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'file-link'));
    fs.symlinkSync(path.join(outside, 'dir'), path.join(root, 'dir-link'));
    fs.symlinkSync('../' + path.basename(outside), path.join(root, 'relative-link'));
    const spy = readSpy();
    const l = await walkWorkspace(root, { readFile: spy.readFile });
    assert.deepEqual(paths(l), ['a.ts']);
    assert.deepEqual(reasons(l), { 'dir-link': 'symlink-outside', 'file-link': 'symlink-outside', 'relative-link': 'symlink-outside' });
    assert.ok(spy.read.every((p) => !p.startsWith(outside)));
  });

  test('loops: a directory linked to its parent, and a chain of links', async () => {
    const root = makeTree({ 'sub/a.ts': 'x' });
    fs.symlinkSync('..', path.join(root, 'sub', 'up'));
    fs.symlinkSync('.', path.join(root, 'self'));
    fs.symlinkSync('l2', path.join(root, 'l1'));
    fs.symlinkSync('l1', path.join(root, 'l2'));
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['sub/a.ts']);
    assert.deepEqual(reasons(l), { 'sub/up': 'symlink-loop', self: 'symlink-loop', l1: 'symlink-loop', l2: 'symlink-loop' });
  });

  test('inside the root: followed, and a file reachable twice is listed once', async () => {
    const root = makeTree({ '.gitignore': 'build/\n', 'src/a.ts': 'x', 'build/gen/g.ts': 'g', 'real.txt': 'r' });
    fs.symlinkSync('real.txt', path.join(root, 'alias.txt'));
    fs.symlinkSync('src', path.join(root, 'src-link'));
    fs.symlinkSync('build/gen', path.join(root, 'gen'));
    fs.symlinkSync('missing', path.join(root, 'dangling'));
    fs.symlinkSync('.git', path.join(root, 'meta'));
    fs.mkdirSync(path.join(root, '.git'));
    const l = await walkWorkspace(root);
    assert.deepEqual(paths(l), ['.gitignore', 'gen/g.ts', 'real.txt', 'src/a.ts']);
    assert.deepEqual(reasons(l), { build: 'ignored', dangling: 'unreadable', meta: 'ignored' });
    assert.equal(l.files.find((f) => f.path === 'gen/g.ts')!.abs, path.join(root, 'build', 'gen', 'g.ts'));
  });

  test('a link to a secret is never read, whatever its own name', async () => {
    const root = makeTree({ '.gitignore': '.env\nkeys/\n', '.env': 'TOKEN=1', 'keys/.ssh/id': 'k', 'a.ts': 'x' });
    fs.symlinkSync('.env', path.join(root, 'notes.txt'));
    fs.symlinkSync('keys/.ssh/id', path.join(root, 'id.txt'));
    const spy = readSpy();
    const l = await walkWorkspace(root, { readFile: spy.readFile, secretPatterns: [...DEFAULT_SECRET_PATTERNS, '.ssh/'] });
    assert.deepEqual(paths(l), ['.gitignore', 'a.ts']);
    assert.deepEqual(reasons(l), { '.env': 'ignored', keys: 'ignored', 'notes.txt': 'secret', 'id.txt': 'secret' });
    assert.deepEqual(spy.read.map((p) => path.basename(p)).sort(), ['.gitignore', 'a.ts']);
  });
});

// --- order, re-reading, options ---------------------------------------------------------------------------------

describe('listing', () => {
  test('least recently modified first, ties by path in byte order', async () => {
    const root = makeTree({ 'c.ts': 'c', 'a.ts': 'a', 'B.ts': 'B', 'é.ts': 'e', 'z.ts': 'z', 'sub/d.ts': 'd' });
    const at = (rel: string, seconds: number) => fs.utimesSync(path.join(root, rel), seconds, seconds);
    at('c.ts', 1_000_000);
    for (const f of ['a.ts', 'B.ts', 'é.ts', 'z.ts']) at(f, 2_000_000);
    at('sub/d.ts', 3_000_000);
    const l = await walkWorkspace(root);
    assert.deepEqual(l.files.map((f) => f.path), ['c.ts', 'B.ts', 'a.ts', 'z.ts', 'é.ts', 'sub/d.ts']);
    assert.deepEqual(l.files.map((f) => f.mtimeMs), [1e9, 2e9, 2e9, 2e9, 2e9, 3e9]);
    assert.deepEqual(l.files[0], { path: 'c.ts', abs: path.join(root, 'c.ts'), bytes: 1, mtimeMs: 1e9 });
  });

  test('readWorkspaceFile: text, or why not now (vanished, grew, turned binary)', async () => {
    const root = makeTree({ 'keep.ts': 'keep\n', 'gone.ts': 'gone\n', 'grow.ts': 'g\n', 'flip.ts': 'f\n' });
    const opts: WorkspaceOptions = { maxFileBytes: 100 };
    const l = await walkWorkspace(root, opts);
    const file = (p: string) => l.files.find((f) => f.path === p)!;
    fs.unlinkSync(path.join(root, 'gone.ts'));
    fs.writeFileSync(path.join(root, 'grow.ts'), 'g'.repeat(200));
    fs.writeFileSync(path.join(root, 'flip.ts'), Buffer.from([1, 0, 2]));
    assert.deepEqual(await readWorkspaceFile(file('keep.ts'), opts), { text: 'keep\n' });
    assert.deepEqual(await readWorkspaceFile(file('gone.ts'), opts), { skipped: 'vanished' });
    assert.deepEqual(await readWorkspaceFile(file('grow.ts'), opts), { skipped: 'too-large' });
    assert.deepEqual(await readWorkspaceFile(file('flip.ts'), opts), { skipped: 'binary' });
  });

  test('a file vanishing during the walk is reported as vanished', async () => {
    const root = makeTree({ 'a.ts': 'a', 'b.ts': 'b' });
    const readFile = async (abs: string) => {
      if (abs.endsWith('b.ts')) fs.unlinkSync(abs);
      return fs.promises.readFile(abs);
    };
    const l = await walkWorkspace(root, { readFile });
    assert.deepEqual(paths(l), ['a.ts']);
    assert.deepEqual(reasons(l), { 'b.ts': 'vanished' });
  });

  test('reads are bounded to 16 at once; progress counts every file', async () => {
    const root = makeTree(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}.ts`, `${i}\n`])));
    let active = 0;
    let peak = 0;
    const readFile = async (abs: string) => {
      peak = Math.max(peak, ++active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
      return fs.promises.readFile(abs);
    };
    const seen: number[] = [];
    const l = await walkWorkspace(root, { readFile, onProgress: (n) => seen.push(n) });
    assert.equal(l.files.length, 50);
    assert.ok(peak > 1 && peak <= 16, `peak ${peak}`);
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
  });

  test('abort: the walk rejects with the signal reason', async () => {
    const root = makeTree(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d${i % 4}/f${i}.ts`, 'x'])));
    await assert.rejects(walkWorkspace(root, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    const ac = new AbortController();
    await assert.rejects(walkWorkspace(root, { signal: ac.signal, onProgress: (n) => n === 3 && ac.abort() }), { name: 'AbortError' });
  });

  test('a root that is missing or not a directory throws WorkspaceError', async () => {
    await assert.rejects(walkWorkspace(path.join(tmpRoot, 'no-such-dir')), WorkspaceError);
    const root = makeTree({ 'file.txt': 'x' });
    await assert.rejects(walkWorkspace(path.join(root, 'file.txt')), /not a directory/);
    await assert.rejects(walkWorkspace(root, { maxFileBytes: -1 }), RangeError);
  });
});

// --- framing -----------------------------------------------------------------------------------------------------

describe('frameFile', () => {
  const encode = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
  test('with <filename> (and <file_sep> when there is one)', () => {
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: 900, fileSep: 901 }, encode), [900, ...encode('a/b.ts\n'), ...encode('xy'), 901]);
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: 900, fileSep: null }, encode), [900, ...encode('a/b.ts\n'), ...encode('xy')]);
    // A model trained with a footer gets the path again after <file_sep>; without <file_sep> there is no footer.
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: 900, fileSep: 901, fileFooter: true }, encode), [900, ...encode('a/b.ts\n'), ...encode('xy'), 901, ...encode('a/b.ts\n')]);
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: 900, fileSep: null, fileFooter: true }, encode), [900, ...encode('a/b.ts\n'), ...encode('xy')]);
  });
  test('a model trained with a definitions line gets, after the footer path, the names the file defines', () => {
    const text = 'import os\nclass Reader:\n    def read(self): pass\ndef load_all(x):\n    pass\ndef load_all(y): pass\ndef ab(): pass\n';
    // top level only (not the method), 4+ characters, each once, in order, in backticks
    assert.deepEqual(definedNames(text), ['Reader', 'load_all', 'load_all']);
    assert.equal(definitionsLine(text), 'defines `Reader` `load_all`\n');
    assert.equal(definitionsLine('export function parseArgs() {}\nexport class Walker {}\nfunction $helper() {}\n'), 'defines `parseArgs` `Walker` `$helper`\n');
    assert.equal(
      definitionsLine('export async function completeAt() {}\nexport default class Main {}\nexport abstract class Base {}\nexport interface FileTokens {}\nexport type Kind = 1;\nexport const LIMIT = 2;\nconst local = 3;\nasync def fetch_all(): pass\nfunction* walkTree() {}\n'),
      'defines `completeAt` `Main` `Base` `FileTokens` `Kind` `LIMIT` `fetch_all` `walkTree`\n',
      'async, default, abstract, generators, exported interfaces, types and constants',
    );
    assert.equal(definitionsLine('x = 1\n'), '', 'no line when nothing is defined');
    const many = Array.from({ length: 60 }, (_, i) => `def name_${i}(): pass\n`).join('');
    assert.equal(definitionsLine(many).split('`').length - 1, 2 * MAX_LISTED_DEFINITIONS, 'at most MAX_LISTED_DEFINITIONS names');
    const special = { fileName: 900, fileSep: 901, fileFooter: true, fileDefs: true };
    assert.deepEqual(frameFile('a/b.py', text, special, encode), [900, ...encode('a/b.py\n'), ...encode(text), 901, ...encode('a/b.py\ndefines `Reader` `load_all`\n')]);
    assert.deepEqual(frameFile('a/b.py', 'x = 1\n', special, encode), [900, ...encode('a/b.py\n'), ...encode('x = 1\n'), 901, ...encode('a/b.py\n')]);
  });
  test('a model trained with an index gets, after the footer path, a `NAME` `path` line per name', () => {
    const text = 'class Reader:\n    def read(self): pass\ndef load_all(x):\n    pass\ndef load_all(y): pass\n';
    assert.equal(definitionsIndex(text, 'a/b.py'), ' `Reader` `a/b.py`\n `load_all` `a/b.py`\n');
    assert.equal(definitionsIndex('x = 1\n', 'a/b.py'), '', 'nothing when nothing is defined');
    const many = Array.from({ length: 60 }, (_, i) => `def name_${i}(): pass\n`).join('');
    assert.equal(definitionsIndex(many, 'p').split('\n').length - 1, MAX_LISTED_DEFINITIONS, 'at most MAX_LISTED_DEFINITIONS lines');
    // The index takes the place of the definitions line when a model was trained with it.
    const special = { fileName: 900, fileSep: 901, fileFooter: true, fileDefs: true, fileIndex: true };
    assert.deepEqual(frameFile('a/b.py', text, special, encode), [900, ...encode('a/b.py\n'), ...encode(text), 901, ...encode('a/b.py\n `Reader` `a/b.py`\n `load_all` `a/b.py`\n')]);
  });
  test('with <file_sep> only', () => {
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: null, fileSep: 901 }, encode), [901, ...encode('a/b.ts\nxy')]);
  });
  test('with neither: a plain header line', () => {
    assert.deepEqual(frameFile('a/b.ts', 'xy', { fileName: null, fileSep: null }, encode), encode('// File: a/b.ts\nxy\n'));
  });
});

// --- the `files` command -----------------------------------------------------------------------------------------

/** Runs `files` with its output collected (the test runner itself talks to its parent over stdout). */
async function runFiles(argv: string[]): Promise<string> {
  let out = '';
  await cmdFiles(argv, { write: (s: string) => (out += s) });
  return out;
}

describe('cli files', () => {
  const root = makeTree({ '.gitignore': 'out/\n', 'out/x.js': 'x', 'src/a.ts': 'aa\n', 'b.md': 'b\n', '.env': 'T=1', 'big.txt': ('x'.repeat(63) + '\n').repeat(32), 'notes.md': 'n\n' });
  fs.utimesSync(path.join(root, 'src/a.ts'), 1000, 1000);
  fs.utimesSync(path.join(root, 'b.md'), 2000, 2000);

  test('--json: the contract, files in ingest order', async () => {
    const out = await runFiles(['--workspace', root, '--json', '--max-file-kb', '1', '--ignore', 'notes.md, *.none']);
    const j = JSON.parse(out);
    assert.deepEqual(Object.keys(j), ['files', 'skipped']);
    assert.deepEqual(j.files.slice(0, 2), [{ path: 'src/a.ts', bytes: 3, mtimeMs: 1e6 }, { path: 'b.md', bytes: 2, mtimeMs: 2e6 }]);
    assert.deepEqual(j.files.map((f: { path: string }) => f.path).sort(), ['.gitignore', 'b.md', 'src/a.ts']);
    for (const f of j.files) assert.deepEqual(Object.keys(f), ['path', 'bytes', 'mtimeMs']);
    assert.deepEqual(j.skipped, [
      { path: '.env', reason: 'secret' },
      { path: 'big.txt', reason: 'too-large' },
      { path: 'notes.md', reason: 'ignored' },
      { path: 'out', reason: 'ignored' },
    ]);
  });

  test('without --json: a table and a summary of what was skipped', async () => {
    const out = await runFiles(['--workspace', root]);
    const lines = out.trimEnd().split('\n');
    assert.match(lines[0], /^src\/a\.ts\s+3 B$/);
    assert.match(out, /^5 files, /m);
    assert.match(out, /^skipped: 1 ignored, 1 secret$/m);
  });

  test('usage errors', async () => {
    await assert.rejects(cmdFiles(['--json']), UsageError);
    await assert.rejects(cmdFiles(['--workspace', root, '--max-file-kb', 'lots']), UsageError);
    await assert.rejects(cmdFiles(['--workspace', root, '--bogus']), UsageError);
    await assert.rejects(cmdFiles(['--workspace', path.join(root, 'nope')]), WorkspaceError);
  });
});
