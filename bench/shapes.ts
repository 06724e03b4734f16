// Real model shapes for benchmarks (random weights at the published sizes). The JSON files are
// config.json-style and shared with the Python peer (bench/peer_transformers.py).

import granite350m from './shapes/granite-4.0-h-350m.json';
import tiny from './shapes/tiny.json';

export const SHAPES: Record<string, Record<string, unknown>> = {
  // ibm-granite/granite-4.0-h-350m: 32 layers, 4 of them attention (no positional encoding), dense SwiGLU MLP.
  'granite-4.0-h-350m': granite350m,
  // A small granitemoehybrid for smoke runs of the bench itself on slow adapters (lavapipe).
  tiny,
};
