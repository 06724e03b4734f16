#!/usr/bin/env python3
"""Generate small random-weight reference fixtures for the hybrid families of issue 18.

This extends scripts/make_fixtures.py (same folder layout, same expected.json
layout, same tokenizer, same weight randomisation, same reference settings:
CPU, float32, eager attention, re-loaded from the saved folder) to the other
Mamba / hybrid families that transformers ships:

  mamba1-pure          MambaForCausalLM, f32, conv bias, explicit time_step_rank 8, tied.
  mamba1-bf16          MambaForCausalLM, bf16, time_step_rank "auto" (saved resolved), use_bias.
  falcon-mamba         FalconMambaForCausalLM, f32, weightless RMSNorms on B / C / dt (mixer_rms_eps).
  jamba-moe            JambaForCausalLM, f32, 4 layers: attention at layer 2
                       (attn_layer_period 4, offset 2), MoE 4 experts top-2 at layers 1, 3.
  jamba-dense          JambaForCausalLM, f32, num_experts 1, attention at layers 1, 3.
  bamba                BambaForCausalLM, f32, attention at layer 2, RoPE default
                       (partial_rotary_factor 0.5), n_groups 1.
  bamba-f16            BambaForCausalLM, f16, attention at layer 0, n_groups 2, tied.
  nemotron-h           NemotronHForCausalLM, f32, pattern "M-*-M-" (Mamba-2 / attention /
                       squared-ReLU MLP blocks), n_groups 1.
  nemotron-h-groups2   NemotronHForCausalLM, f32, pattern "*-M-MM-", n_groups 2, MQA; config.json
                       rewritten in the Hub spelling (hybrid_override_pattern + num_hidden_layers).
  falcon-h1            FalconH1ForCausalLM, f32, parallel attention + Mamba-2, all mup multipliers
                       != 1, gated RMSNorm (mamba_rms_norm, 2 groups, norm after gate).
  falcon-h1-nonorm     FalconH1ForCausalLM, f32, mamba_rms_norm false (z gate in the scan),
                       mamba_d_ssm 96 != expand * hidden, other multipliers, tied.
  zamba2               Zamba2ForCausalLM, f32, hidden 48, Mamba-2 backbone, 3 hybrid layers sharing
                       num_mem_blocks 2 transformer blocks (third tied to first), attention +
                       MLP LoRA adapters, embedding concat, use_mem_rope.
  zamba2-single        Zamba2ForCausalLM, f32, num_mem_blocks 1 (one block at hybrid layers 0, 2, 3),
                       no attention adapters (gate_up LoRA only), no RoPE, GQA (2 KV heads), SiLU MLP,
                       mamba_ngroups 2, chunk_size 8, untied lm_head.
  zamba2-wide          Zamba2ForCausalLM, f32, hidden 80, one attention head of 160 (2 * hidden / heads, as
                       Zamba2-2.7B's), RoPE, 2 layers (a hybrid first), Mamba-2 heads of 40.
  zamba                ZambaForCausalLM, f32, hidden 48, Mamba-1 (2 mamba heads) + one shared transformer
                       block used twice; config.json in the Hub spelling ("mamba"/"hybrid").
  zamba-heads3         ZambaForCausalLM, f32, 3 mamba heads of 32, in/out proj biases, no conv bias, dt rank 4,
                       the shared block at layers 0 and 3 (a hybrid first layer), GQA (2 KV heads), SiLU MLP,
                       untied lm_head.
  recurrent-gemma      RecurrentGemmaForCausalLM, f32, block_types recurrent/recurrent/attention
                       over 4 layers, attention_window_size 16 < seq_len, MQA, logits_soft_cap 3.
  recurrent-gemma-wide RecurrentGemmaForCausalLM, f32, block_types attention/recurrent over 3 layers,
                       window 64 > seq_len, lru_width 96 != hidden, conv width 3, 2 KV heads, full RoPE,
                       attention_bias, untied lm_head.

Decoding goes through each model's own cache:
  * Mamba / FalconMamba: ``cache_params`` returned by the prefill, passed back each step
    (transformers 5.x has no ``cache_position`` any more).
  * Jamba / Bamba / NemotronH / FalconH1 / Zamba / Zamba2: the hybrid ``DynamicCache``
    (built from config.layer_types) returned as ``past_key_values``, passed back with
    ``position_ids``.
  * RecurrentGemma keeps its conv / RG-LRU state inside its modules and does not return
    a cache, so the caller creates ``DynamicCache(config=...)`` (what generate() does) and
    passes it to the prefill and every step, with ``position_ids``.
If a decode raises or disagrees with the prefill, expected.json gets
``"decode_logits": null`` plus a ``"note"`` and the fixture is still written.

At the start the script writes <out>/model_types.json: the transformers model types
whose names match mamba / rwkv / jamba / zamba / bamba / nemotron / falcon /
recurrent / gemma / xlstm / hymba / lfm / plamo / minimax.

Everything else uses hidden 64, vocab 384, 2-7 layers, 36 ids (40 for recurrent-gemma),
decode from 20; about 12 MiB in all (less as a tarball).

Needs torch, transformers (written against 5.17), safetensors, tokenizers; no
network; CPU.  Run, e.g. on the device machine:

    set -o pipefail; PYTHONUNBUFFERED=1 python3 scripts/make_family_fixtures.py --out /tmp/fx \\
        2>&1 | tee $OUT/family-log.txt; tar czf $OUT/family-fixtures.tar.gz -C /tmp/fx .

and unpack the tarball into test/fixtures/.  ``--only NAME`` (repeatable) makes a subset.
Exit status is nonzero only if every requested fixture failed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import make_fixtures as mf  # noqa: E402  (reused helpers: tokenizer, randomisation, dumps)
import transformers  # noqa: E402

EOS = mf.EOS_ID
COMMON = dict(vocab_size=384, hidden_size=64, bos_token_id=EOS, eos_token_id=EOS, pad_token_id=EOS)
ROPE = {"rope_type": "default", "rope_theta": 10000.0}

MODEL_TYPE_PATTERNS = [
    "mamba", "rwkv", "jamba", "zamba", "bamba", "nemotron", "falcon",
    "recurrent", "gemma", "xlstm", "hymba", "lfm", "plamo", "minimax",
]

NEMOTRON_PATTERN = {"linear_attention": "M", "moe": "E", "full_attention": "*", "mlp": "-"}
NEMOTRON_FROM_PATTERN = {v: k for k, v in NEMOTRON_PATTERN.items()}


def nemotron_types(pattern: str) -> list[str]:
    return [NEMOTRON_FROM_PATTERN[c] for c in pattern]


MAMBA1_KEYS = [
    "state_size", "expand", "intermediate_size", "conv_kernel", "use_bias", "use_conv_bias",
    "time_step_rank", "layer_norm_epsilon", "residual_in_fp32", "hidden_act",
]
JAMBA_KEYS = [
    "num_attention_heads", "num_key_value_heads", "intermediate_size", "hidden_act", "rms_norm_eps",
    "num_experts", "num_experts_per_tok", "expert_layer_period", "expert_layer_offset",
    "attn_layer_period", "attn_layer_offset", "layers_num_experts", "mamba_d_state", "mamba_d_conv",
    "mamba_expand", "mamba_dt_rank", "mamba_conv_bias", "mamba_proj_bias",
]
BAMBA_KEYS = [
    "num_attention_heads", "num_key_value_heads", "intermediate_size", "hidden_act", "rms_norm_eps",
    "attn_layer_indices", "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_d_state",
    "mamba_d_conv", "mamba_expand", "mamba_chunk_size", "mamba_conv_bias", "mamba_proj_bias",
    "time_step_limit", "rope_parameters", "attention_bias", "mlp_bias",
]
NEMOTRON_KEYS = [
    "hybrid_override_pattern", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "mlp_hidden_act", "mlp_bias", "attention_bias", "mamba_num_heads",
    "mamba_head_dim", "mamba_hidden_act", "n_groups", "ssm_state_size", "conv_kernel", "expand",
    "chunk_size", "use_conv_bias", "mamba_proj_bias", "use_bias", "layer_norm_epsilon",
    "residual_in_fp32", "time_step_min", "time_step_limit",
]
FALCON_H1_KEYS = [
    "num_attention_heads", "num_key_value_heads", "intermediate_size", "hidden_act", "rms_norm_eps",
    "mamba_d_ssm", "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_d_state", "mamba_d_conv",
    "mamba_expand", "mamba_chunk_size", "mamba_conv_bias", "mamba_proj_bias", "mamba_norm_before_gate",
    "mamba_rms_norm", "projectors_bias", "time_step_limit", "rope_parameters", "attention_bias", "mlp_bias",
    "embedding_multiplier", "lm_head_multiplier", "mlp_multipliers", "key_multiplier",
    "attention_in_multiplier", "attention_out_multiplier", "ssm_multipliers", "ssm_in_multiplier",
    "ssm_out_multiplier",
]
ZAMBA2_KEYS = [
    "hybrid_layer_ids", "num_mem_blocks", "use_shared_attention_adapter", "adapter_rank", "use_mem_rope",
    "rope_parameters", "num_attention_heads", "num_key_value_heads", "attention_hidden_size",
    "attention_head_dim", "intermediate_size", "hidden_act", "rms_norm_eps", "add_bias_linear",
    "n_mamba_heads", "mamba_headdim", "mamba_ngroups", "mamba_d_state", "mamba_d_conv", "mamba_expand",
    "chunk_size", "use_conv_bias", "time_step_min",
]
ZAMBA_KEYS = [
    "num_attention_heads", "num_key_value_heads", "attention_hidden_size", "attention_head_dim",
    "intermediate_size", "hidden_act", "hidden_mamba_act", "rms_norm_eps", "n_mamba_heads",
    "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank", "mamba_conv_bias", "mamba_proj_bias",
]
GEMMA_KEYS = [
    "block_types", "layers_block_type", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "lru_width", "attention_window_size", "conv1d_width", "logits_soft_cap",
    "rms_norm_eps", "hidden_activation", "rope_parameters", "attention_bias",
]

FIXTURES = {
    # ------------------------------------------------------------------ Mamba-1
    "mamba1-pure": dict(
        config_class="MambaConfig", model_class="MambaForCausalLM", decode="cache_params",
        seed=2001, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=MAMBA1_KEYS,
        config=dict(
            COMMON, num_hidden_layers=3, state_size=16, expand=2, conv_kernel=4, use_bias=False,
            use_conv_bias=True, time_step_rank=8, layer_norm_epsilon=1e-5, residual_in_fp32=True,
            hidden_act="silu", tie_word_embeddings=True,
        ),
        exercises=["Mamba-1 selective scan", "conv1d bias", "time_step_rank 8 (not the auto 4)",
                   "dt_proj bias around -3.5", "tied lm_head"],
    ),
    "mamba1-bf16": dict(
        config_class="MambaConfig", model_class="MambaForCausalLM", decode="cache_params",
        seed=2002, save_dtype=torch.bfloat16, seq_len=36, decode_from=20, summary=MAMBA1_KEYS,
        config=dict(
            COMMON, num_hidden_layers=2, state_size=8, expand=2, conv_kernel=4, use_bias=True,
            use_conv_bias=True, time_step_rank="auto", layer_norm_epsilon=1e-5, residual_in_fp32=True,
            hidden_act="silu", tie_word_embeddings=False,
        ),
        exercises=["bf16 checkpoint", "time_step_rank 'auto' (config.json holds the resolved int)",
                   "in_proj / out_proj bias (use_bias)", "untied lm_head"],
    ),
    "falcon-mamba": dict(
        config_class="FalconMambaConfig", model_class="FalconMambaForCausalLM", decode="cache_params",
        seed=2003, save_dtype=torch.float32, seq_len=36, decode_from=20,
        summary=MAMBA1_KEYS + ["mixer_rms_eps", "use_falcon_mambapy"],
        config=dict(
            COMMON, num_hidden_layers=3, state_size=16, expand=2, conv_kernel=4, use_bias=False,
            use_conv_bias=True, time_step_rank="auto", layer_norm_epsilon=1e-5, residual_in_fp32=True,
            hidden_act="silu", mixer_rms_eps=1e-6, use_falcon_mambapy=False, tie_word_embeddings=True,
        ),
        exercises=["weightless RMSNorm (eps mixer_rms_eps) on dt (before dt_proj), B and C",
                   "no such weights in the checkpoint"],
    ),
    # ------------------------------------------------------------------ Jamba
    "jamba-moe": dict(
        config_class="JambaConfig", model_class="JambaForCausalLM", decode="past_key_values",
        seed=2004, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=JAMBA_KEYS,
        load_kwargs=dict(experts_implementation="eager"),
        config=dict(
            COMMON, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
            hidden_act="silu", rms_norm_eps=1e-6, max_position_embeddings=256,
            num_experts=4, num_experts_per_tok=2, expert_layer_period=2, expert_layer_offset=1,
            attn_layer_period=4, attn_layer_offset=2, use_mamba_kernels=False,
            mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank="auto",
            mamba_conv_bias=True, mamba_proj_bias=False, tie_word_embeddings=False,
        ),
        exercises=["Mamba-1 mixer with dt / B / C RMSNorms (weights, eps rms_norm_eps)",
                   "attention without positional encoding, GQA 4/2", "softmax-then-top-2 router over 4 experts "
                   "(no renormalisation), experts as fused 3-D gate_up_proj / down_proj",
                   "MoE at layers 1 and 3, dense MLP elsewhere"],
    ),
    "jamba-dense": dict(
        config_class="JambaConfig", model_class="JambaForCausalLM", decode="past_key_values",
        seed=2005, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=JAMBA_KEYS,
        config=dict(
            COMMON, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, intermediate_size=96,
            hidden_act="silu", rms_norm_eps=1e-6, max_position_embeddings=256,
            num_experts=1, num_experts_per_tok=1, expert_layer_period=2, expert_layer_offset=1,
            attn_layer_period=2, attn_layer_offset=1, use_mamba_kernels=False,
            mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=6,
            mamba_conv_bias=True, mamba_proj_bias=False, tie_word_embeddings=True,
        ),
        exercises=["num_experts 1: every layer a dense MLP", "attention at layers 1 and 3 (MHA)",
                   "explicit mamba_dt_rank 6", "tied lm_head"],
    ),
    # ------------------------------------------------------------------ Bamba
    "bamba": dict(
        config_class="BambaConfig", model_class="BambaForCausalLM", decode="past_key_values",
        seed=2006, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=BAMBA_KEYS,
        config=dict(
            COMMON, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
            hidden_act="silu", rms_norm_eps=1e-5, max_position_embeddings=256, attn_layer_indices=[2],
            mamba_n_heads=8, mamba_d_head="auto", mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4,
            mamba_expand=2, mamba_chunk_size=16, mamba_conv_bias=True, mamba_proj_bias=False,
            tie_word_embeddings=False,
        ),
        exercises=["Mamba-2 + attention at attn_layer_indices [2]",
                   "RoPE theta 10000 on half of each head (partial_rotary_factor 0.5, hard-wired)",
                   "gated RMSNorm over the whole intermediate (not per group)", "chunked scan, chunk 16"],
    ),
    "bamba-f16": dict(
        config_class="BambaConfig", model_class="BambaForCausalLM", decode="past_key_values",
        seed=2007, save_dtype=torch.float16, seq_len=36, decode_from=20, summary=BAMBA_KEYS,
        config=dict(
            COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            hidden_act="silu", rms_norm_eps=1e-5, max_position_embeddings=256, attn_layer_indices=[0],
            mamba_n_heads=8, mamba_d_head="auto", mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=4,
            mamba_expand=2, mamba_chunk_size=8, mamba_conv_bias=True, mamba_proj_bias=False,
            tie_word_embeddings=True,
        ),
        exercises=["f16 checkpoint", "attention first (layer 0)", "n_groups 2 (B/C groups; the gated "
                   "norm still spans the whole intermediate)", "chunk 8", "tied lm_head"],
    ),
    # ------------------------------------------------------------------ Nemotron-H
    "nemotron-h": dict(
        config_class="NemotronHConfig", model_class="NemotronHForCausalLM", decode="past_key_values",
        seed=2008, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=NEMOTRON_KEYS,
        pattern="M-*-M-",
        config=dict(
            COMMON, layers_block_type=nemotron_types("M-*-M-"), num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, intermediate_size=128, mlp_hidden_act="relu2", mlp_bias=False, attention_bias=False,
            max_position_embeddings=256, use_mamba_kernels=False, mamba_num_heads=8, mamba_head_dim=16,
            mamba_hidden_act="silu", n_groups=1, ssm_state_size=16, conv_kernel=4, expand=2, chunk_size=16,
            use_conv_bias=True, mamba_proj_bias=False, use_bias=False, layer_norm_epsilon=1e-5,
            residual_in_fp32=False, tie_word_embeddings=False,
        ),
        exercises=["blocks M (Mamba-2), * (attention, no positional encoding), - (MLP relu2 = squared "
                   "ReLU, up/down only)", "one pre-norm per block",
                   "gated RMSNorm per group (group_size = intermediate / n_groups), gate applied before the norm",
                   "prefill clamps softplus(dt) below at time_step_min (time_step_limit (time_step_min, inf)); "
                   "transformers' single-token update does not clamp"],
    ),
    "nemotron-h-groups2": dict(
        config_class="NemotronHConfig", model_class="NemotronHForCausalLM", decode="past_key_values",
        seed=2009, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=NEMOTRON_KEYS,
        pattern="*-M-MM-", config_style="hub_hybrid_override_pattern",
        config=dict(
            COMMON, layers_block_type=nemotron_types("*-M-MM-"), num_attention_heads=4, num_key_value_heads=1,
            head_dim=16, intermediate_size=96, mlp_hidden_act="relu2", mlp_bias=False, attention_bias=False,
            max_position_embeddings=256, use_mamba_kernels=False, mamba_num_heads=4, mamba_head_dim=32,
            mamba_hidden_act="silu", n_groups=2, ssm_state_size=8, conv_kernel=4, expand=2, chunk_size=8,
            use_conv_bias=True, mamba_proj_bias=False, use_bias=False, layer_norm_epsilon=1e-5,
            residual_in_fp32=False, tie_word_embeddings=True,
        ),
        exercises=["pattern *-M-MM- (attention first, two Mamba blocks in a row)", "n_groups 2 (per-group gated norm)",
                   "MQA (1 kv head)", "config.json with hybrid_override_pattern + num_hidden_layers "
                   "instead of layers_block_type (Hub spelling)", "tied lm_head"],
    ),
    # ------------------------------------------------------------------ Falcon-H1
    "falcon-h1": dict(
        config_class="FalconH1Config", model_class="FalconH1ForCausalLM", decode="past_key_values",
        seed=2010, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=FALCON_H1_KEYS,
        config=dict(
            COMMON, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
            hidden_act="silu", rms_norm_eps=1e-5, max_position_embeddings=256,
            mamba_d_ssm=128, mamba_n_heads=8, mamba_d_head="auto", mamba_n_groups=2, mamba_d_state=16,
            mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, mamba_conv_bias=True, mamba_proj_bias=False,
            mamba_norm_before_gate=False, mamba_rms_norm=True, projectors_bias=False,
            rope_parameters=dict(ROPE), attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
            embedding_multiplier=2.0, lm_head_multiplier=0.5, mlp_multipliers=[0.75, 1.5], key_multiplier=0.8,
            attention_in_multiplier=1.25, attention_out_multiplier=0.6,
            ssm_multipliers=[0.9, 1.1, 0.7, 1.3, 0.5], ssm_in_multiplier=1.2, ssm_out_multiplier=0.7,
        ),
        exercises=["attention and Mamba-2 in parallel on the same normed input, outputs summed",
                   "mup: embedding, lm_head, key, attention in/out, ssm in/out multipliers, MLP gate/down "
                   "multipliers, per-segment in_proj multipliers (z, x, B, C, dt), all != 1",
                   "gated RMSNorm per group (2), gate applied before the norm (mamba_norm_before_gate false)",
                   "RoPE theta 10000, full head"],
    ),
    "falcon-h1-nonorm": dict(
        config_class="FalconH1Config", model_class="FalconH1ForCausalLM", decode="past_key_values",
        seed=2011, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=FALCON_H1_KEYS,
        config=dict(
            COMMON, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, intermediate_size=64,
            hidden_act="silu", rms_norm_eps=1e-5, max_position_embeddings=256,
            mamba_d_ssm=96, mamba_n_heads=6, mamba_d_head="auto", mamba_n_groups=1, mamba_d_state=16,
            mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, mamba_conv_bias=True, mamba_proj_bias=False,
            mamba_norm_before_gate=True, mamba_rms_norm=False, projectors_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 5000.0}, attention_bias=False, mlp_bias=False,
            tie_word_embeddings=True,
            embedding_multiplier=0.5, lm_head_multiplier=1.75, mlp_multipliers=[1.25, 0.6], key_multiplier=1.3,
            attention_in_multiplier=0.9, attention_out_multiplier=1.4,
            ssm_multipliers=[1.2, 0.8, 1.5, 0.6, 1.1], ssm_in_multiplier=0.75, ssm_out_multiplier=1.3,
        ),
        exercises=["mamba_rms_norm false: y * silu(z), no gated norm", "mamba_d_ssm 96 (not expand * hidden)",
                   "RoPE theta 5000", "tied lm_head, other multipliers"],
    ),
    # ------------------------------------------------------------------ Zamba
    "zamba2": dict(
        config_class="Zamba2Config", model_class="Zamba2ForCausalLM", decode="past_key_values",
        seed=2012, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=ZAMBA2_KEYS,
        config=dict(
            COMMON, hidden_size=48, num_hidden_layers=5,
            layers_block_type=["linear_attention", "hybrid", "hybrid", "linear_attention", "hybrid"],
            mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_ngroups=1, n_mamba_heads=6,
            use_mamba_kernels=False, use_conv_bias=True, chunk_size=16, add_bias_linear=False,
            intermediate_size=96, hidden_act="gelu", num_attention_heads=4, num_key_value_heads=4,
            num_mem_blocks=2, use_shared_attention_adapter=True, adapter_rank=8, use_mem_rope=True,
            rope_parameters=dict(ROPE), rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=True,
        ),
        exercises=["hybrid layer = shared transformer on concat(hidden, embeddings) (2 * hidden wide, "
                   "scaling (head_dim / 2) ** -0.5) -> linear -> added to the Mamba-2 input",
                   "num_mem_blocks 2: hybrid layers 1, 2, 4 use blocks 0, 1, 0 (layer 4 tied to layer 1, "
                   "its weights stored once)",
                   "per-hybrid-layer LoRA adapters on q/k/v (use_shared_attention_adapter) and on gate_up",
                   "RoPE on the shared attention (use_mem_rope)", "per-group gated norm (eps 1e-5)",
                   "prefill clamps softplus(dt) below at time_step_min"],
    ),
    "zamba2-single": dict(
        config_class="Zamba2Config", model_class="Zamba2ForCausalLM", decode="past_key_values",
        seed=2015, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=ZAMBA2_KEYS,
        config=dict(
            COMMON, hidden_size=48, num_hidden_layers=4,
            layers_block_type=["hybrid", "linear_attention", "hybrid", "hybrid"],
            mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_ngroups=2, n_mamba_heads=4,
            use_mamba_kernels=False, use_conv_bias=True, chunk_size=8, add_bias_linear=False,
            intermediate_size=80, hidden_act="silu", num_attention_heads=4, num_key_value_heads=2,
            num_mem_blocks=1, use_shared_attention_adapter=False, adapter_rank=4, use_mem_rope=False,
            rms_norm_eps=1e-6, max_position_embeddings=256, tie_word_embeddings=False,
        ),
        exercises=["num_mem_blocks 1: one shared block used by hybrid layers 0, 2 and 3 (a hybrid first layer)",
                   "no attention adapters (use_shared_attention_adapter false): the gate_up LoRA only",
                   "no positional encoding (use_mem_rope false)", "GQA: 2 KV heads for 4 query heads",
                   "SiLU MLP (hidden_act silu)", "mamba_ngroups 2 (gated norm per group, eps 1e-5 while "
                   "rms_norm_eps is 1e-6)", "chunk_size 8", "untied lm_head"],
    ),
    "zamba2-wide": dict(
        config_class="Zamba2Config", model_class="Zamba2ForCausalLM", decode="past_key_values",
        seed=2017, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=ZAMBA2_KEYS,
        config=dict(
            COMMON, hidden_size=80, num_hidden_layers=2,
            layers_block_type=["hybrid", "linear_attention"],
            mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_ngroups=1, n_mamba_heads=4,
            use_mamba_kernels=False, use_conv_bias=True, chunk_size=16, add_bias_linear=False,
            intermediate_size=96, hidden_act="gelu", num_attention_heads=1, num_key_value_heads=1,
            num_mem_blocks=1, use_shared_attention_adapter=True, adapter_rank=4, use_mem_rope=True,
            rope_parameters=dict(ROPE), rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=True,
        ),
        exercises=["attention head dim 160 (2 * hidden / heads, above the 128 of the first prefill kernels: "
                   "Zamba2-2.7B's head dim)", "RoPE over the 160 channels", "Mamba-2 heads of 40"],
    ),
    "zamba": dict(
        config_class="ZambaConfig", model_class="ZambaForCausalLM", decode="past_key_values",
        seed=2013, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=ZAMBA_KEYS,
        config_style="hub_legacy_layer_names",
        config=dict(
            COMMON, hidden_size=48, num_hidden_layers=5,
            layers_block_type=["linear_attention", "linear_attention", "hybrid", "linear_attention", "hybrid"],
            intermediate_size=96, num_attention_heads=4, num_key_value_heads=4, n_mamba_heads=2,
            hidden_act="gelu", hidden_mamba_act="silu", rms_norm_eps=1e-5, max_position_embeddings=256,
            use_mamba_kernels=False, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank="auto",
            mamba_conv_bias=True, mamba_proj_bias=False, tie_word_embeddings=True,
        ),
        exercises=["Mamba-1 split into 2 heads with per-head x_proj / dt_proj (3-D weights)",
                   "in_proj output interleaved per channel as (x, z) pairs",
                   "one shared transformer block (weights stored once) at layers 2 and 4 on "
                   "concat(hidden, embeddings), no positional encoding",
                   "config.json layers_block_type in the Hub spelling mamba / hybrid"],
    ),
    "zamba-heads3": dict(
        config_class="ZambaConfig", model_class="ZambaForCausalLM", decode="past_key_values",
        seed=2016, save_dtype=torch.float32, seq_len=36, decode_from=20, summary=ZAMBA_KEYS,
        config=dict(
            COMMON, hidden_size=48, num_hidden_layers=4,
            layers_block_type=["hybrid", "linear_attention", "linear_attention", "hybrid"],
            intermediate_size=80, num_attention_heads=4, num_key_value_heads=2, n_mamba_heads=3,
            hidden_act="silu", hidden_mamba_act="silu", rms_norm_eps=1e-6, max_position_embeddings=256,
            use_mamba_kernels=False, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=4,
            mamba_conv_bias=False, mamba_proj_bias=True, tie_word_embeddings=False,
        ),
        exercises=["3 Mamba-1 heads of 32 channels (per-head x_proj / dt_proj)", "in_proj and out_proj biases "
                   "(in_proj's bias interleaved per channel like its rows), no conv bias", "dt rank 4",
                   "the shared block at layers 0 and 3 (untied: each hybrid layer keeps its own copy)",
                   "GQA: 2 KV heads", "SiLU MLP", "untied lm_head"],
    ),
    # ------------------------------------------------------------------ RecurrentGemma
    "recurrent-gemma": dict(
        config_class="RecurrentGemmaConfig", model_class="RecurrentGemmaForCausalLM", decode="own_cache",
        seed=2014, save_dtype=torch.float32, seq_len=40, decode_from=20, summary=GEMMA_KEYS,
        norm_plus_one=True,
        config=dict(
            COMMON, num_hidden_layers=4, intermediate_size=192, num_attention_heads=4, num_key_value_heads=1,
            lru_width=64, attention_window_size=16, conv1d_width=4, logits_soft_cap=3.0, rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh", rope_parameters=dict(ROPE),
            block_types=["recurrent", "recurrent", "attention"], attention_bias=False, tie_word_embeddings=True,
        ),
        exercises=["RG-LRU recurrent blocks (conv1d width 4 with bias, gates per head block-diagonal)",
                   "local attention, window 16 < seq_len 40 (decode starts after the window is full), MQA",
                   "RoPE on half of each head (partial_rotary_factor 0.5)", "embeddings * sqrt(hidden) (bf16 constant)",
                   "RMSNorm scale (1 + weight)", "MLP intermediate_size // 2 wide, gelu tanh, biases",
                   "logits soft cap 3", "block_types cycle over 4 layers: r, r, a, r"],
    ),
    "recurrent-gemma-wide": dict(
        config_class="RecurrentGemmaConfig", model_class="RecurrentGemmaForCausalLM", decode="own_cache",
        seed=2015, save_dtype=torch.float32, seq_len=40, decode_from=20, summary=GEMMA_KEYS,
        norm_plus_one=True,
        config=dict(
            COMMON, num_hidden_layers=3, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
            lru_width=96, attention_window_size=64, conv1d_width=3, logits_soft_cap=30.0, rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh", rope_parameters=dict(ROPE, partial_rotary_factor=1.0),
            block_types=["attention", "recurrent"], attention_bias=True, tie_word_embeddings=False,
        ),
        exercises=["block_types attention first (a, r, a over 3 layers)", "window 64 > seq_len 40 (full causal)",
                   "lru_width 96 != hidden_size 64 (gate blocks of 24)", "conv1d_width 3",
                   "GQA with 2 KV heads", "RoPE on every channel (partial_rotary_factor 1.0)",
                   "q/k/v biases (attention_bias)", "untied lm_head", "logits soft cap 30"],
    ),
}


# --------------------------------------------------------------------------- helpers


def jsonable(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)


def layer_types_of(cfg) -> list | None:
    for attr in ("layer_types", "layers_block_type"):
        try:
            v = getattr(cfg, attr, None)
        except Exception:  # noqa: BLE001 - a property that cannot be computed
            v = None
        if v:
            return list(v)
    return None


@torch.no_grad()
def family_fixups(model: torch.nn.Module, spec: dict) -> None:
    """Adjust what mf.randomize_parameters leaves unrealistic for these families.

    Mamba-1 style dt biases (dt_proj.bias, Zamba's dt_proj_bias) ~ -3.5 + 0.5 N so that
    softplus(dt) is small and the state survives; RG-LRU recurrent_param ~ U(-6.9, -2.2)
    (its init range: a = exp(-8 r softplus(param)) near 0.9-0.999); Gemma-style norms,
    which scale by (1 + weight), get weight ~ 0.1 N.
    """
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        shape = p.shape
        if name.endswith("dt_proj.bias") or leaf == "dt_proj_bias":
            v = -3.5 + 0.5 * torch.randn(shape, generator=g)
        elif leaf == "recurrent_param":
            v = -6.9 + 4.7 * torch.rand(shape, generator=g)
        elif "conv_1d" in name:  # RecurrentGemma's conv, missed by mf's "conv1d" rule
            v = (0.3 if leaf == "weight" else 0.1) * torch.randn(shape, generator=g)
        elif spec.get("norm_plus_one") and "norm" in name and p.dim() == 1:
            v = 0.1 * torch.randn(shape, generator=g)
        else:
            continue
        p.copy_(v.to(p.dtype))


def load_reference(spec: dict, model_cls, path: str):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    kwargs.update(spec.get("load_kwargs", {}))
    return model_cls.from_pretrained(path, **kwargs).eval()


def rewrite_config(path: str, spec: dict) -> None:
    """Rewrite config.json in the spelling the Hub checkpoints of this family use."""
    style = spec.get("config_style", "native")
    if style == "native":
        return
    with open(path) as f:
        cfg = json.load(f)
    if style == "hub_hybrid_override_pattern":
        types = cfg.pop("layers_block_type", None) or cfg.pop("layer_types", None)
        if not types:
            raise RuntimeError(f"config.json has no layers_block_type: {sorted(cfg)}")
        cfg.pop("layer_types", None)
        cfg["hybrid_override_pattern"] = "".join(NEMOTRON_PATTERN[t] for t in types)
        cfg["num_hidden_layers"] = len(types)
    elif style == "hub_legacy_layer_names":
        key = "layers_block_type" if "layers_block_type" in cfg else "layer_types"
        cfg[key] = [mf.LEGACY_SPELLING.get(t, t) for t in cfg[key]]
    else:
        raise ValueError(style)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


@torch.no_grad()
def decode_logits(model, style: str, ids: list[int], start: int) -> torch.Tensor:
    """Prefill ids[:start] with the model's cache, then feed ids[start:] one token at a time.

    Returns logits for positions start-1 .. len(ids)-1.
    """
    prompt = torch.tensor([ids[:start]])
    if style == "cache_params":  # Mamba, FalconMamba
        out = model(input_ids=prompt, use_cache=True)
        cache = out.cache_params
    elif style == "past_key_values":  # hybrid DynamicCache returned by the model
        out = model(input_ids=prompt, position_ids=torch.arange(start)[None], use_cache=True)
        cache = out.past_key_values
    elif style == "own_cache":  # RecurrentGemma: state in the modules, KV cache made by the caller
        from transformers import DynamicCache

        if hasattr(model, "_setup_cache"):
            model._setup_cache(model.config, 1, torch.device("cpu"), torch.float32)
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt, position_ids=torch.arange(start)[None], past_key_values=cache, use_cache=True)
    else:
        raise ValueError(style)
    if cache is None:
        raise RuntimeError(f"the prefill returned no cache ({style})")
    print(f"  decode cache: {type(cache).__name__}")
    got = [out.logits[0, -1].float()]
    for pos in range(start, len(ids)):
        tok = torch.tensor([[ids[pos]]])
        if style == "cache_params":
            out = model(input_ids=tok, cache_params=cache, use_cache=True)
            new = out.cache_params
        else:
            out = model(input_ids=tok, past_key_values=cache, position_ids=torch.tensor([[pos]]), use_cache=True)
            new = getattr(out, "past_key_values", None)
        if new is not None:
            cache = new
        got.append(out.logits[0, -1].float())
    return torch.stack(got).float()


@torch.no_grad()
def greedy(model, prompt: list[int]) -> tuple[list[int], bool]:
    new = mf.greedy(model, prompt)  # generate(do_sample=False), prints the cache-free comparison
    seq = list(prompt)
    for _ in range(mf.GREEDY_NEW_TOKENS):
        seq.append(int(mf.prefill_logits(model, seq)[-1].argmax()))
    return new, seq[len(prompt):] == new


def tokenizer_for(out_dir: str, vocab: int, cache: dict) -> dict:
    """mf.write_tokenizer, trained once per vocab size and copied into each fixture."""
    if vocab not in cache:
        tmp = tempfile.mkdtemp(prefix="sidewinder-tok-")
        cache[vocab] = (tmp, mf.write_tokenizer(tmp, vocab))
    tmp, info = cache[vocab]
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tmp, fn), os.path.join(out_dir, fn))
    return copy.deepcopy(info)


def config_summary(spec: dict, cfg, n_params: int) -> dict:
    s = {
        "architecture": spec["model_class"],
        "model_type": cfg.model_type,
        "saved_dtype": str(spec["save_dtype"]).replace("torch.", ""),
        "config_json_style": spec.get("config_style", "native"),
        "num_parameters": n_params,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "layer_types": layer_types_of(cfg),
        "tie_word_embeddings": getattr(cfg, "tie_word_embeddings", None),
        "decode_cache": {
            "cache_params": "cache_params returned by the prefill, passed back each step",
            "past_key_values": "hybrid DynamicCache returned as past_key_values, passed back with position_ids",
            "own_cache": "DynamicCache(config) made by the caller, passed to prefill and steps with position_ids",
        }[spec["decode"]],
    }
    if "pattern" in spec:
        s["pattern"] = spec["pattern"]
    for k in spec["summary"]:
        try:
            s[k] = jsonable(getattr(cfg, k, None))
        except Exception as e:  # noqa: BLE001
            s[k] = f"<{type(e).__name__}>"
    s["exercises"] = spec["exercises"]
    return s


# --------------------------------------------------------------------------- one fixture


def make_fixture(name: str, spec: dict, root: str, tok_cache: dict) -> str:
    """Returns "OK" or "OK with notes: ..." (decode / greedy / config style left out); raises on failure."""
    t0 = time.time()
    config_cls = getattr(transformers, spec["config_class"])  # AttributeError if 5.17 lacks it
    model_cls = getattr(transformers, spec["model_class"])
    out_dir = os.path.join(root, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    torch.manual_seed(spec["seed"])
    config = config_cls(**spec["config"])
    model = model_cls(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"  {spec['model_class']}: {n_params} parameters, layer types {layer_types_of(config)}")
    mf.randomize_parameters(model, spec["seed"])
    family_fixups(model, spec)
    model.to(spec["save_dtype"])
    model.save_pretrained(out_dir)
    del model

    tok_info = tokenizer_for(out_dir, config.vocab_size, tok_cache)

    ids_gen = torch.Generator().manual_seed(spec["seed"] + 7)
    ids = torch.randint(0, config.vocab_size, (spec["seq_len"],), generator=ids_gen).tolist()

    notes = []
    style = spec.get("config_style", "native")
    model = load_reference(spec, model_cls, out_dir)
    logits = mf.prefill_logits(model, ids)
    if style != "native":
        cfg_path = os.path.join(out_dir, "config.json")
        with open(cfg_path) as f:
            native_json = f.read()
        native_types = layer_types_of(model.config)
        try:
            rewrite_config(cfg_path, spec)
            model = load_reference(spec, model_cls, out_dir)
            again = mf.prefill_logits(model, ids)
            same_types = layer_types_of(model.config) == native_types
            diff = (again - logits).abs().max().item()
            print(f"  config style {style}: reload layer types equal={same_types}, max |dlogit|={diff:.3g}")
            if not same_types or diff != 0.0:
                raise RuntimeError(f"layer types equal={same_types}, max |dlogit|={diff:.3g}")
        except Exception as e:  # noqa: BLE001 - keep the fixture with the config.json as saved
            traceback.print_exc()
            notes.append(f"config.json kept as save_pretrained wrote it: the {style} spelling did not reload "
                         f"identically ({type(e).__name__}: {e})")
            style = "native"
            with open(cfg_path, "w") as f:
                f.write(native_json)
            model = load_reference(spec, model_cls, out_dir)
    print(f"  layer types after reload: {layer_types_of(model.config)}")

    H = spec["decode_from"]
    dec = None
    try:
        dec = decode_logits(model, spec["decode"], ids, H)
    except Exception as e:  # noqa: BLE001 - the fixture is still useful without decode
        traceback.print_exc()
        notes.append(f"decode through the cache failed in transformers {transformers.__version__}: "
                     f"{type(e).__name__}: {e}; decode_logits omitted")
    if dec is not None:
        ref = logits[H - 1 :]
        scale = logits.abs().max().item()
        dev = (dec - ref).abs().max().item()
        ok = dev <= 1e-4 * scale
        print(
            f"  decode-vs-prefill: max |d| = {dev:.3e}, max |logit| = {scale:.4f}, "
            f"relative {dev / scale:.3e} -> {'OK' if ok else 'FAIL'}"
        )
        if not ok:
            notes.append(f"decode through the cache disagrees with the prefill in transformers "
                         f"{transformers.__version__} (max |d| {dev:.3e}, relative {dev / scale:.3e}); "
                         "decode_logits omitted")
            dec = None
    print(f"  logits std {logits.std().item():.4f}, argmax spread {len(set(logits.argmax(-1).tolist()))} distinct")

    prompt = ids[: mf.GREEDY_PROMPT_LEN]
    greedy_info = None
    try:
        new_ids, matches = greedy(model, prompt)
        greedy_info = {
            "prompt_ids": prompt, "max_new_tokens": mf.GREEDY_NEW_TOKENS, "new_ids": new_ids,
            "matches_cache_free_argmax": matches,
        }
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        notes.append(f"generate() failed: {type(e).__name__}: {e}; greedy omitted")
    for n in notes:
        print(f"  NOTE: {n}")

    summary = config_summary(spec, model.config, n_params)
    summary["config_json_style"] = style
    expected = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "config_summary": summary,
        "ids": ids,
        "prefill_logits": mf.rows(logits),
        "decode_from": H,
        "decode_logits": mf.rows(dec) if dec is not None else None,
    }
    if notes:
        expected["note"] = " | ".join(notes)
    expected["greedy"] = greedy_info
    expected["tokenizer"] = tok_info
    mf.dump_expected(os.path.join(out_dir, "expected.json"), expected)

    mf.list_tensors(out_dir)
    files = sorted(os.listdir(out_dir))
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in files)
    print(f"  files: {files}  ({total / 1024:.0f} KiB, {time.time() - t0:.1f} s)")
    return "OK" if not notes else "OK with notes: " + " | ".join(notes)


# --------------------------------------------------------------------------- model types


def dump_model_types(root: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    keys = sorted(CONFIG_MAPPING_NAMES)
    by_pattern = {p: [k for k in keys if p in k.lower()] for p in MODEL_TYPE_PATTERNS}
    matches = sorted({k for v in by_pattern.values() for k in v})
    info = {
        "transformers_version": transformers.__version__,
        "patterns": MODEL_TYPE_PATTERNS,
        "matches": {k: CONFIG_MAPPING_NAMES[k] for k in matches},
        "by_pattern": by_pattern,
        "num_model_types": len(keys),
    }
    with open(os.path.join(root, "model_types.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"model types matching {'/'.join(MODEL_TYPE_PATTERNS)} ({len(matches)} of {len(keys)}):")
    for k in matches:
        print(f"  {k}: {CONFIG_MAPPING_NAMES[k]}")
    print("  no match for: " + (", ".join(p for p, v in by_pattern.items() if not v) or "-"))


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (one sub-folder per fixture)")
    ap.add_argument("--only", action="append", choices=sorted(FIXTURES), help="make only this fixture (repeatable)")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
    os.makedirs(args.out, exist_ok=True)
    try:
        dump_model_types(args.out)
    except Exception:  # noqa: BLE001
        traceback.print_exc()

    results = {}
    tok_cache: dict = {}
    for name in args.only or list(FIXTURES):
        print(f"== {name}")
        try:
            results[name] = make_fixture(name, FIXTURES[name], args.out, tok_cache)
        except Exception as e:  # noqa: BLE001 - keep going, report at the end
            traceback.print_exc()
            results[name] = f"FAILED ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
    for tmp, _ in tok_cache.values():
        shutil.rmtree(tmp, ignore_errors=True)

    total = 0
    for dirpath, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f"== summary ({time.time() - t_start:.1f} s, {total / 2**20:.2f} MiB in {args.out})")
    for name, res in results.items():
        print(f"  {name:20s} {res}")
    failed = [n for n, r in results.items() if r.startswith("FAILED")]
    print("FAILED: " + ", ".join(failed) if failed else "all fixtures OK")
    return 1 if results and len(failed) == len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
