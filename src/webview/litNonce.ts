// Imported first by each webview bundle: Lit reads `window.litNonce` when it has to fall back to <style>
// elements (browsers without constructable stylesheets), and the page's CSP only allows styles with the nonce.

const script = document.currentScript as HTMLScriptElement | null;
(window as unknown as { litNonce?: string }).litNonce = script?.nonce || undefined;

export {};
