// The 'rows' prefill attention kernel (kernels/attention.wgsl) for head dims 132..512: private arrays of 512 / 4
// vec4s. GPUs take kernels/attentionWide.wgsl for these head dims unless SIDEWINDER_ATTN_KERNEL=rows.

const D4MAX = 128u; // 512 / 4: room in the private arrays; only DH / 4 entries are used

// #include attentionRows
