// Which tensors each architecture has, under which checkpoint names and with which shapes. The loader is
// generic over the tensor type, so the CPU reference (Float32Array) and the GPU engine (GpuWeight) share
// one description of the checkpoint.

import type { ModelConfig } from '../config';
import { ModelFormatError } from '../errors';

export interface MambaWeights<T> {
  inProj: T; // [inProjDim, H]: z | xBC | dt
  inProjBias: T | null;
  conv: T; // [convDim, 1, K]
  convBias: T | null; // [convDim]
  dtBias: T; // [nh]
  aLog: T; // [nh]
  D: T; // [nh]
  gatedNorm: T; // [I]
  outProj: T; // [H, I]
  outProjBias: T | null;
}

export interface AttentionWeights<T> {
  q: T; // [nH*d, H]
  k: T; // [nKv*d, H]
  v: T; // [nKv*d, H]
  o: T; // [H, nH*d]
  qBias: T | null;
  kBias: T | null;
  vBias: T | null;
  oBias: T | null;
}

export interface FeedForwardWeights<T> {
  norm: T; // post_attention_layernorm [H]
  sharedIn: T | null; // [2S, H]: gate | up
  sharedOut: T | null; // [H, S]
  router: T | null; // [E, H]
  expertsIn: T | null; // [E, 2I, H]
  expertsOut: T | null; // [E, H, I]
}

export interface LayerWeights<T> {
  kind: 'mamba' | 'attention';
  norm: T; // input_layernorm [H]
  mamba: MambaWeights<T> | null;
  attention: AttentionWeights<T> | null;
  feedForward: FeedForwardWeights<T> | null;
}

export interface ModelWeights<T> {
  embed: T; // [V, H]
  layers: LayerWeights<T>[];
  finalNorm: T; // [H]
  lmHead: T; // [V, H] (the embedding itself when tied)
}

/**
 * What a tensor is, for quantization: the matrices of linear layers (`matrix`) and the embedding table (also the
 * tied lm_head, `embedding`) may be stored or loaded quantized; everything else (norms, conv, biases, the MoE
 * router, the SSM's per-head parameters) stays in floats.
 */
export type TensorRole = 'matrix' | 'embedding' | 'other';

export type TensorLoader<T> = (name: string, shape: number[], role: TensorRole) => T;

/** Walks the checkpoint's tensors for `cfg`, calling `load` once per tensor. */
export function loadWeights<T>(cfg: ModelConfig, store: { has(name: string): boolean }, loadTensor: TensorLoader<T>): ModelWeights<T> {
  const load = (name: string, shape: number[], role: TensorRole = 'other') => loadTensor(name, shape, role);
  const H = cfg.hiddenSize;
  const m = cfg.mamba;
  const granite = cfg.architecture === 'granitemoehybrid';
  const root = granite ? 'model' : 'backbone';
  const opt = (name: string, shape: number[], role: TensorRole = 'other') => (store.has(name) ? load(name, shape, role) : null);

  const mambaAt = (p: string): MambaWeights<T> => ({
    inProj: load(`${p}.in_proj.weight`, [m.inProjDim, H], 'matrix'),
    inProjBias: m.projBias ? load(`${p}.in_proj.bias`, [m.inProjDim]) : null,
    conv: load(`${p}.conv1d.weight`, [m.convDim, 1, m.dConv]),
    convBias: m.convBias ? load(`${p}.conv1d.bias`, [m.convDim]) : null,
    dtBias: load(`${p}.dt_bias`, [m.numHeads]),
    aLog: load(`${p}.A_log`, [m.numHeads]),
    D: load(`${p}.D`, [m.numHeads]),
    gatedNorm: load(`${p}.norm.weight`, [m.intermediate]),
    outProj: load(`${p}.out_proj.weight`, [H, m.intermediate], 'matrix'),
    outProjBias: m.projBias ? load(`${p}.out_proj.bias`, [H]) : null,
  });

  const layers: LayerWeights<T>[] = cfg.layerKinds.map((kind, i) => {
    if (!granite) {
      const p = `${root}.layers.${i}`;
      return { kind, norm: load(`${p}.norm.weight`, [H]), mamba: mambaAt(`${p}.mixer`), attention: null, feedForward: null };
    }
    const p = `model.layers.${i}`;
    let attention: AttentionWeights<T> | null = null;
    if (kind === 'attention') {
      const a = cfg.attention!;
      const qd = a.numHeads * a.headDim;
      const kd = a.numKvHeads * a.headDim;
      const b = (n: string, d: number) => (a.bias ? load(`${p}.self_attn.${n}.bias`, [d]) : null);
      attention = {
        q: load(`${p}.self_attn.q_proj.weight`, [qd, H], 'matrix'),
        k: load(`${p}.self_attn.k_proj.weight`, [kd, H], 'matrix'),
        v: load(`${p}.self_attn.v_proj.weight`, [kd, H], 'matrix'),
        o: load(`${p}.self_attn.o_proj.weight`, [H, qd], 'matrix'),
        qBias: b('q_proj', qd),
        kBias: b('k_proj', kd),
        vBias: b('v_proj', kd),
        oBias: b('o_proj', H),
      };
    }
    const ff = cfg.feedForward!;
    const S = ff.sharedIntermediate;
    const E = ff.numExperts;
    const I = ff.expertIntermediate;
    return {
      kind,
      norm: load(`${p}.input_layernorm.weight`, [H]),
      mamba: kind === 'mamba' ? mambaAt(`${p}.mamba`) : null,
      attention,
      feedForward: {
        norm: load(`${p}.post_attention_layernorm.weight`, [H]),
        sharedIn: S > 0 ? load(`${p}.shared_mlp.input_linear.weight`, [2 * S, H], 'matrix') : null,
        sharedOut: S > 0 ? load(`${p}.shared_mlp.output_linear.weight`, [H, S], 'matrix') : null,
        router: E > 0 ? load(`${p}.block_sparse_moe.router.layer.weight`, [E, H]) : null,
        expertsIn: E > 0 ? load(`${p}.block_sparse_moe.input_linear.weight`, [E, 2 * I, H], 'matrix') : null,
        expertsOut: E > 0 ? load(`${p}.block_sparse_moe.output_linear.weight`, [E, H, I], 'matrix') : null,
      },
    };
  });

  const embedName = granite ? 'model.embed_tokens.weight' : 'backbone.embeddings.weight';
  const embed = load(embedName, [cfg.vocabSize, H], 'embedding');
  let lmHead: T;
  if (cfg.tieWordEmbeddings) lmHead = embed;
  else {
    const head = opt('lm_head.weight', [cfg.vocabSize, H], 'embedding');
    if (head === null) throw new ModelFormatError('config.json says tie_word_embeddings is false, but the checkpoint has no lm_head.weight.');
    lmHead = head;
  }
  return { embed, layers, finalNorm: load(granite ? 'model.norm.weight' : 'backbone.norm_f.weight', [H]), lmHead };
}
