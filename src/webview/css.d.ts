// CSS imported by the webview bundles: esbuild emits it as dist/webview/<entry>.css, loaded by the page.
declare module '*.css';
