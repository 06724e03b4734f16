#!/usr/bin/env bash
# Installs what the end-to-end test needs, idempotently: Debian's chromium and ripgrep (plus the headers
# code-server's native modules build against), and code-server 4.100.3 + playwright-core from the npm registry
# into test/e2e/.tools (git-ignored, outside the extension's dependencies). No browser or VS Code download.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export DEBIAN_FRONTEND=noninteractive
need=()
for p in chromium ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# @vscode/ripgrep downloads a binary at install time: pre-place Debian's rg where it looks first.
tmp=$(mktemp -d)
mkdir -p "$tmp/rg" && cp /usr/bin/rg "$tmp/rg/rg"
for v in 1.15.9 1.15.10 1.15.11 1.15.12 1.15.13 1.15.14 1.15.15 1.15.16; do
  d=/tmp/vscode-ripgrep-cache-$v
  mkdir -p "$d"
  [ -f "$d/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" ] || tar czf "$d/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$tmp/rg" rg
done
rm -rf "$tmp"
if [ ! -x .tools/node_modules/.bin/code-server ] || [ ! -d .tools/node_modules/playwright-core ]; then
  mkdir -p .tools
  [ -f .tools/package.json ] || cat > .tools/package.json <<'JSON'
{ "name": "sidewinder-e2e-tools", "private": true, "allowScripts": { "code-server": true, "argon2": true } }
JSON
  (cd .tools && npm_config_unsafe_perm=true npm_config_yes=true npm install --no-audit --no-fund code-server@4.100.3 playwright-core@1 >/dev/null)
fi
echo "e2e tools ready: $(.tools/node_modules/.bin/code-server --version | head -1)"
