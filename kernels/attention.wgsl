// Causal grouped-query attention for a batch of T new queries (prefill) on CPU adapters (GPUs take
// kernels/attentionTiled.wgsl: see attentionKernel in src/engine/gpu/ops.ts), flash style with the softmax in
// registers: a workgroup takes WG / SPLIT consecutive queries of one head; SPLIT neighbouring invocations share
// a query, each taking every SPLIT-th key of a tile (more invocations in flight when T x heads is small), and
// merge their partial results at the end. Keys and values are staged BK rows at a time in workgroup memory;
// each invocation keeps its query, its partial output row and its running max and sum in registers, so a tile
// costs two barriers and no reduction across invocations.
// Query t sits at position pos0 + t (pos0 from `step`) and sees cache rows 0..pos0 + t.
// q: [T, nH, d] (offset/stride), k, v caches: [capacity, nKv, d], out: [T, nH * d] (offset/stride).

const D4MAX = 32u; // 128 / 4: room in the private arrays; only DH / 4 entries are used

// #include attentionRows
