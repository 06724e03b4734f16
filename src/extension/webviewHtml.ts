// The HTML shell of every Sidewinder webview, with its Content Security Policy. No vscode import: the caller
// passes webview.cspSource and URIs already made with asWebviewUri.
//
// The policy lets the page load only the extension's own bundles, styles and fonts, runs only scripts that
// carry this page's nonce, and allows images only from the extension itself: model output rendered as
// Markdown cannot fetch an external image (or any URL) to leak what it read. @vscode-elements styles its
// components through constructable stylesheets and CSSOM properties, so no 'unsafe-inline' is needed.

import { randomBytes } from 'crypto';

export interface WebviewPage {
  cspSource: string;
  nonce: string;
  title: string;
  scripts: string[]; // URIs of the bundles
  styles: string[]; // URIs of the stylesheets
  /** The codicon stylesheet; @vscode-elements finds it by the id "vscode-codicon-stylesheet". */
  codicons?: string;
  body: string; // static markup (no scripts)
}

export function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

function attr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  if (!/^[A-Za-z0-9+/=]+$/.test(nonce)) throw new RangeError('a CSP nonce must be base64.');
  // VS Code gives one source (https://*.vscode-cdn.net); code-server gives a list ('self' https://...). Each
  // entry must be 'self' or a host source: anything else (a ';', another quoted keyword) would widen the policy.
  const ok = cspSource
    .split(' ')
    .every((t) => t === "'self'" || /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[A-Za-z0-9*-]*\.[A-Za-z0-9*.:_\-\/]*$/.test(t));
  if (!cspSource.trim() || !ok || /\s{2,}|^\s|\s$/.test(cspSource)) throw new RangeError(`cspSource ${cspSource} would break the policy.`);
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource}`,
    `font-src ${cspSource}`,
    "connect-src 'none'",
    "frame-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function webviewHtml(p: WebviewPage): string {
  const n = attr(p.nonce);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(p.cspSource, p.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${attr(p.title)}</title>
${p.codicons ? `<link rel="stylesheet" href="${attr(p.codicons)}" id="vscode-codicon-stylesheet" nonce="${n}">\n` : ''}${p.styles
    .map((s) => `<link rel="stylesheet" href="${attr(s)}" nonce="${n}">`)
    .join('\n')}
</head>
<body>
${p.body}
${p.scripts.map((s) => `<script nonce="${n}" src="${attr(s)}"></script>`).join('\n')}
</body>
</html>`;
}
