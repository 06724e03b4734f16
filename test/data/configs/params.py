#!/usr/bin/env python3
"""Parameter counts, recurrent-state bytes and KV bytes for the hybrid families' config.json files.

stdlib only. Run from anywhere:  python3 test/data/configs/params.py [--write]
  prints a table over every test/data/configs/<model_type>/*.json and, with --write,
  rewrites test/data/configs/expected.json.

Counting follows the module layout of the transformers implementations
(src/transformers/models/<family>/modeling_<family>.py); FAMILIES.md names the classes.
Every weight tensor is counted once: embeddings, lm_head (skipped when tied), every norm
weight (RMSNorm / gated RMSNorm / Gemma's (1+w) RMSNorm: one vector each), conv weight and
bias, in/out/x/dt projections and their biases, A_log, D, dt_bias, router, experts, shared
blocks (counted once, not per use) and their per-use LoRA adapters.
Weight-free ops (Falcon-Mamba's B/C/dt RMSNorms, rotary tables) count nothing.

State and KV are in f32 bytes, batch 1:
  state_bytes       = sum over recurrent layers of (conv state + SSM/LRU state), as Sidewinder's
                      engine allocates them (src/engine/cpu/model.ts reset(), the GPU state
                      buffers): the conv state keeps the last conv_kernel - 1 inputs (transformers'
                      mamba / mamba2 caches keep conv_kernel columns, one more: 4/3 of the conv part
                      for a width-4 kernel); RecurrentGemma keeps conv1d_width - 1 as transformers does.
  kv_bytes_per_token = sum over attention uses of 2 * kv_heads * head_dim * 4 (K and V).
                      Zamba's shared blocks keep a separate cache per use (per hybrid layer).
                      RecurrentGemma's attention is local: the cache stops growing at
                      attention_window_size tokens (noted per file).
"""
import json
import math
import os
import sys

F32 = 4
HERE = os.path.dirname(os.path.abspath(__file__))


def g(c, *names, default=None):
    """First present key among names (older checkpoints spell some keys differently)."""
    for n in names:
        if n in c and c[n] is not None:
            return c[n]
    return default


def tied(c, default=True):
    return bool(g(c, "tie_word_embeddings", default=default))


def linear(i, o, bias=False):
    return i * o + (o if bias else 0)


def embed_and_head(c, default_tied):
    V, H = c["vocab_size"], c["hidden_size"]
    n = V * H
    if not tied(c, default_tied):
        n += V * H
    return n


def attn_params(H_in, H_out, nh, nkv, hd, bias=False, o_bias=None):
    o_bias = bias if o_bias is None else o_bias
    return (linear(H_in, nh * hd, bias) + 2 * linear(H_in, nkv * hd, bias)
            + linear(nh * hd, H_out, o_bias))


def kv_bytes(nkv, hd):
    return 2 * nkv * hd * F32


# ---------------------------------------------------------------- Mamba-1 mixers
def mamba1_mixer(H, I, N, R, K, use_bias, conv_bias, inner_norms=False):
    n = linear(H, 2 * I, use_bias)           # in_proj -> x, z
    n += I * K + (I if conv_bias else 0)     # depthwise conv1d (I, 1, K)
    n += linear(I, R + 2 * N)                # x_proj -> dt, B, C  (no bias)
    n += linear(R, I, True)                  # dt_proj (always biased)
    n += I * N + I                           # A_log, D
    n += linear(I, H, use_bias)              # out_proj
    if inner_norms:                          # Jamba: dt/B/C RMSNorms with weights
        n += R + 2 * N
    return n


def dt_rank(c, H, key="time_step_rank"):
    r = c.get(key, "auto")
    return math.ceil(H / 16) if r in (None, "auto") else int(r)


def count_mamba(c, falcon=False):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    I = g(c, "intermediate_size", default=int(c.get("expand", 2) * H))
    N, K = c.get("state_size", 16), c.get("conv_kernel", 4)
    R = dt_rank(c, H)
    per = mamba1_mixer(H, I, N, R, K, c.get("use_bias", False), c.get("use_conv_bias", True)) + H
    params = L * per + H + embed_and_head(c, True)
    state = L * (I * (K - 1) + I * N) * F32
    notes = f"Mamba-1 x{L}, d_inner={I}, dt_rank={R}, d_state={N}, conv={K}"
    if falcon:
        notes += "; B/C/dt RMSNorms are weight-free (mixer_rms_eps)"
    return dict(params=params, state_bytes=state, kv_bytes_per_token=0,
                attention_layers=0, recurrent_layers=L, notes=notes)


# ---------------------------------------------------------------- Mamba-2 mixers
def mamba2_mixer(H, I, nh, G, N, K, proj_bias, conv_bias, gated_norm=True):
    conv_dim = I + 2 * G * N
    n = linear(H, I + conv_dim + nh, proj_bias)   # in_proj -> z, xBC, dt
    n += conv_dim * K + (conv_dim if conv_bias else 0)
    n += 3 * nh                                   # dt_bias, A_log, D
    n += I if gated_norm else 0                   # gated RMSNorm weight
    n += linear(I, H, proj_bias)                  # out_proj
    state = (conv_dim * (K - 1) + nh * (I // nh) * N) * F32
    return n, state


def count_mamba2(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    I = int(c.get("expand", 2) * H)
    nh, G, N = c["num_heads"], c.get("n_groups", 1), c.get("state_size", 128)
    K = c.get("conv_kernel", 4)
    m, s = mamba2_mixer(H, I, nh, G, N, K, c.get("use_bias", False), c.get("use_conv_bias", True))
    params = L * (m + H) + H + embed_and_head(c, False)   # Mamba2Config: tie_word_embeddings=False
    return dict(params=params, state_bytes=L * s, kv_bytes_per_token=0, attention_layers=0,
                recurrent_layers=L, notes=f"Mamba-2 x{L}, d_inner={I}, heads={nh}x{I // nh}, groups={G}, d_state={N}")


# ---------------------------------------------------------------- Jamba
def count_jamba(c):
    H, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    F = c["intermediate_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nh
    I = c.get("mamba_expand", 2) * H
    N, K = c.get("mamba_d_state", 16), c.get("mamba_d_conv", 4)
    R = dt_rank(c, H, "mamba_dt_rank")
    E = c.get("num_experts", 16)
    ap, ao = c.get("attn_layer_period", 8), c.get("attn_layer_offset", 4)
    ep, eo = c.get("expert_layer_period", 2), c.get("expert_layer_offset", 1)
    mamba = mamba1_mixer(H, I, N, R, K, c.get("mamba_proj_bias", False), c.get("mamba_conv_bias", True), True)
    attn = attn_params(H, H, nh, nkv, hd)
    mlp = 3 * H * F
    params = embed_and_head(c, False) + H
    n_attn = n_moe = 0
    for i in range(L):
        is_attn = i % ap == ao
        is_moe = E > 1 and i % ep == eo
        n_attn += is_attn
        n_moe += is_moe
        params += 2 * H                       # input_layernorm, pre_ff_layernorm
        params += attn if is_attn else mamba
        params += (H * E + E * mlp) if is_moe else mlp
    n_rec = L - n_attn
    state = n_rec * (I * (K - 1) + I * N) * F32
    active = params - n_moe * (E - c.get("num_experts_per_tok", 2)) * mlp
    return dict(params=params, state_bytes=state, kv_bytes_per_token=n_attn * kv_bytes(nkv, hd),
                attention_layers=n_attn, recurrent_layers=n_rec,
                notes=f"{n_attn} attention (GQA {nh}/{nkv}x{hd}) + {n_rec} Mamba-1 (dt_rank={R}); "
                      f"{n_moe} MoE layers x{E} experts; active params/token {active}")


# ---------------------------------------------------------------- Zamba2
ZAMBA2_OLD_KEYS = {  # Zyphra's pre-transformers config spelling -> transformers Zamba2Config
    "ffn_hidden_size": "intermediate_size", "lora_rank": "adapter_rank",
    "state_size": "mamba_d_state", "conv_dimension": "mamba_d_conv",
    "expansion_factor": "mamba_expand", "use_shared_attention_lora": "use_shared_attention_adapter",
}


def count_zamba2(c):
    c = dict(c)
    old = [k for k in ZAMBA2_OLD_KEYS if k in c]
    for k in old:
        c.setdefault(ZAMBA2_OLD_KEYS[k], c[k])
    H, L = c["hidden_size"], c["num_hidden_layers"]
    F = g(c, "intermediate_size", default=4 * H)
    nh = c["num_attention_heads"]
    nkv = g(c, "num_key_value_heads", default=nh)
    A = 2 * H                                            # attention_hidden_size (concat)
    hd = g(c, "attention_head_dim", default=A // nh)
    I = int(c.get("mamba_expand", 2) * H)
    mh = c.get("mamba_headdim", 64)
    G, N, K = c.get("mamba_ngroups", 1), c.get("mamba_d_state", 64), c.get("mamba_d_conv", 4)
    r = c.get("adapter_rank", 128)
    types = c.get("layers_block_type")
    if not types:
        ids = set(c.get("hybrid_layer_ids") or [])
        types = ["hybrid" if i in ids else "mamba" for i in range(L)]
    n_h = sum(t == "hybrid" for t in types)
    M = c.get("num_mem_blocks", 1)
    m, s = mamba2_mixer(H, I, I // mh, G, N, K, c.get("add_bias_linear", False), c.get("use_conv_bias", True))
    params = embed_and_head(c, True) + H
    params += L * (m + H)                                # every layer: norm + Mamba-2
    params += n_h * H * H                                # per hybrid layer: linear H->H (no bias)
    shared = A + attn_params(A, H, nh, nkv, hd) + H + H * 2 * F + F * H
    # shared blocks, once each; transformers ties the later uses to the first only with tie_word_embeddings,
    # otherwise each hybrid layer stores its own copy (what Sidewinder's loader then reads)
    params += (M if tied(c, True) else n_h) * shared
    params += n_h * (H * r + r * 2 * F)                  # gate_up LoRA per hybrid use
    if c.get("use_shared_attention_adapter", False):
        params += n_h * (3 * A * r + r * nh * hd + 2 * r * nkv * hd)
    note = (f"{L - n_h} Mamba-2 + {n_h} hybrid (Mamba-2 + shared block); {M} shared block(s) on concat(h, emb) "
            f"{A}->{nh}x{hd}; LoRA r={r}")
    if old:
        note += "; pre-transformers key spelling (" + ", ".join(old) + ") mapped to Zamba2Config names"
    return dict(params=params, state_bytes=L * s, kv_bytes_per_token=n_h * kv_bytes(nkv, hd),
                attention_layers=n_h, recurrent_layers=L, notes=note)


# ---------------------------------------------------------------- Zamba (v1)
def count_zamba(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    F = c["intermediate_size"]
    nh = c["num_attention_heads"]
    nkv = g(c, "num_key_value_heads", default=nh)
    A = 2 * H
    hd = g(c, "attention_head_dim", default=A // nh)
    I = c.get("mamba_expand", 2) * H
    N, K = c.get("mamba_d_state", 16), c.get("mamba_d_conv", 4)
    R = dt_rank(c, H, "mamba_dt_rank")
    nmh = c.get("n_mamba_heads", 1)
    hm = I // nmh
    period, offset = c.get("attn_layer_period", 6), c.get("attn_layer_offset", 4)
    # layers_block_type absent: ZambaConfig writes mamba, mamba, hybrid, then i % period == offset over the
    # remaining L - 3 layers (Zyphra/Zamba-7B-v1's later config.json spells out the same list: hybrid at 2, 7, 13, ...)
    types = c.get("layers_block_type") or (["mamba", "mamba", "hybrid"]
                                           + ["hybrid" if i % period == offset else "mamba" for i in range(L - 3)])
    n_h = sum(t == "hybrid" for t in types)
    pb = c.get("mamba_proj_bias", False)                # ZambaConfig: mamba_proj_bias / mamba_conv_bias
    mamba = (linear(H, 2 * I, pb) + I * K + (I if c.get("mamba_conv_bias", True) else 0)
             + nmh * hm * (R + 2 * N)           # x_proj_weight (heads, R+2N, hm)
             + nmh * hm * R + nmh * hm          # dt_proj weight + bias per head
             + I * N + I                        # A_log, D
             + linear(I, H, pb))
    params = embed_and_head(c, True) + H + L * (mamba + H) + n_h * H * H
    # the one shared block (a copy per use when the embeddings are untied, as for Zamba2)
    params += (1 if tied(c, True) else n_h) * (A + attn_params(A, H, nh, nkv, hd) + H + 3 * H * F)
    return dict(params=params, state_bytes=L * (I * (K - 1) + I * N) * F32,
                kv_bytes_per_token=n_h * kv_bytes(nkv, hd), attention_layers=n_h, recurrent_layers=L,
                notes=f"{L} Mamba-1 ({nmh} heads) + shared block used at {n_h} layers")


# ---------------------------------------------------------------- RecurrentGemma
def count_recurrent_gemma(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh = c["num_attention_heads"]
    nkv = g(c, "num_key_value_heads", default=nh)
    hd = g(c, "head_dim", default=H // nh)
    lru = g(c, "lru_width", default=H)
    W = c.get("conv1d_width", 4)
    Fh = c["intermediate_size"] // 2
    bt = c.get("block_types") or c.get("_block_types") or ["recurrent", "recurrent", "attention"]
    n_attn = sum(bt[i % len(bt)] == "attention" for i in range(L))
    n_rec = L - n_attn
    bw = lru // nh
    rec = (3 * linear(H, lru, True) - lru * H - lru + linear(lru, H, True)  # linear_y, linear_x, linear_out
           + lru * W + lru                                                  # conv_1d + bias
           + lru                                                            # recurrent_param
           + 2 * (nh * bw * bw + nh * bw))                                  # input/recurrent gates
    attn = attn_params(H, H, nh, nkv, hd, c.get("attention_bias", False), True)
    mlp = 2 * linear(H, Fh, True) + linear(Fh, H, True)
    params = embed_and_head(c, True) + H + L * 2 * H + n_rec * rec + n_attn * attn + L * mlp
    win = c.get("attention_window_size", 2048)
    return dict(params=params, state_bytes=n_rec * (lru * (W - 1) + lru) * F32,
                kv_bytes_per_token=n_attn * kv_bytes(nkv, hd), attention_layers=n_attn, recurrent_layers=n_rec,
                notes=f"RG-LRU x{n_rec} + local attention x{n_attn} (window {win}: KV stops growing at {win} tokens)")


# ---------------------------------------------------------------- Bamba
def count_bamba(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    F = c["intermediate_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nh
    I = int(c.get("mamba_expand", 2) * H)
    mnh, G, N, K = c["mamba_n_heads"], c.get("mamba_n_groups", 1), c["mamba_d_state"], c.get("mamba_d_conv", 4)
    attn_idx = set(c.get("attn_layer_indices") or [])
    m, s = mamba2_mixer(H, I, mnh, G, N, K, c.get("mamba_proj_bias", False), c.get("mamba_conv_bias", True))
    a = attn_params(H, H, nh, nkv, hd)
    n_attn = len(attn_idx)
    params = embed_and_head(c, False) + H + L * (2 * H + 3 * H * F) + n_attn * a + (L - n_attn) * m
    return dict(params=params, state_bytes=(L - n_attn) * s, kv_bytes_per_token=n_attn * kv_bytes(nkv, hd),
                attention_layers=n_attn, recurrent_layers=L - n_attn,
                notes=f"Mamba-2 x{L - n_attn} + attention at {sorted(attn_idx)}; SwiGLU MLP in every layer")


# ---------------------------------------------------------------- Nemotron-H
def count_nemotron_h(c):
    H, V = c["hidden_size"], c["vocab_size"]
    pat = c.get("hybrid_override_pattern")
    if pat is None:   # transformers 5 writes layers_block_type instead
        sym = {"mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*", "mlp": "-", "moe": "E"}
        pat = "".join(sym[t] for t in c["layers_block_type"])
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = g(c, "head_dim", "attention_head_dim", default=H // nh)
    mnh, mhd = c["mamba_num_heads"], c["mamba_head_dim"]
    I = mnh * mhd
    G, N, K = c.get("n_groups", 8), c.get("ssm_state_size", 128), c.get("conv_kernel", 4)
    m, s = mamba2_mixer(H, I, mnh, G, N, K, c.get("use_bias", False), c.get("use_conv_bias", True))
    a = attn_params(H, H, nh, nkv, hd, c.get("attention_bias", False))
    mlp = linear(H, c["intermediate_size"], c.get("mlp_bias", False)) + linear(c["intermediate_size"], H, c.get("mlp_bias", False))
    E = c.get("n_routed_experts") or 0
    mf, sf = c.get("moe_intermediate_size", 0), c.get("moe_shared_expert_intermediate_size", 0)
    moe = E * H + E + E * 2 * H * mf + c.get("n_shared_experts", 1) * 2 * H * sf
    cnt = {ch: pat.count(ch) for ch in "M*-E"}
    # NemotronHForCausalLM ties nothing: lm_head is its own tensor whatever tie_word_embeddings says
    params = 2 * V * H + H + len(pat) * H
    params += cnt["M"] * m + cnt["*"] * a + cnt["-"] * mlp + cnt["E"] * moe
    return dict(params=params, state_bytes=cnt["M"] * s, kv_bytes_per_token=cnt["*"] * kv_bytes(nkv, hd),
                attention_layers=cnt["*"], recurrent_layers=cnt["M"],
                notes=f"pattern {cnt['M']} M / {cnt['*']} * / {cnt['-']} - / {cnt['E']} E; relu^2 MLP")


# ---------------------------------------------------------------- Falcon-H1
def count_falcon_h1(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    F = c["intermediate_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = g(c, "head_dim", default=H // nh)
    mnh, mhd = c["mamba_n_heads"], c["mamba_d_head"]
    d_ssm = g(c, "mamba_d_ssm", default=mnh * mhd)
    G, N, K = c.get("mamba_n_groups", 1), c["mamba_d_state"], c.get("mamba_d_conv", 4)
    pb = c.get("projectors_bias", False) or c.get("mamba_proj_bias", False)
    m, s = mamba2_mixer(H, d_ssm, mnh, G, N, K, pb, c.get("mamba_conv_bias", True), c.get("mamba_rms_norm", False))
    a = attn_params(H, H, nh, nkv, hd, c.get("attention_bias", False))
    mlp = 3 * H * F if c.get("mamba_use_mlp", True) else 0
    params = embed_and_head(c, False) + H + L * (2 * H + m + a + mlp)
    note = f"parallel attention ({nh}/{nkv}x{hd}) + Mamba-2 (d_ssm={d_ssm}) in all {L} layers"
    if "mamba_d_ssm" not in c:
        note += "; mamba_d_ssm absent, taken as mamba_n_heads*mamba_d_head"
    return dict(params=params, state_bytes=L * s, kv_bytes_per_token=L * kv_bytes(nkv, hd),
                attention_layers=L, recurrent_layers=L, notes=note)


# ---------------------------------------------------------------- GraniteMoeHybrid
def count_granitemoehybrid(c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nh
    I = int(c.get("mamba_expand", 2) * H)
    mnh, G, N, K = c["mamba_n_heads"], c.get("mamba_n_groups", 1), c["mamba_d_state"], c.get("mamba_d_conv", 4)
    types = c.get("layer_types") or ["mamba"] * L
    n_attn = sum(t in ("attention", "full_attention") for t in types)   # transformers 5: full_attention
    m, s = mamba2_mixer(H, I, mnh, G, N, K, c.get("mamba_proj_bias", False), c.get("mamba_conv_bias", True))
    a = attn_params(H, H, nh, nkv, hd, c.get("attention_bias", False))
    SF = c.get("shared_intermediate_size", 0)
    E, EF = c.get("num_local_experts", 0), c.get("intermediate_size", 0)
    ffn = (H * 2 * SF + SF * H) + ((H * E + E * (2 * EF * H + H * EF)) if E else 0)
    params = embed_and_head(c, False) + H + L * (2 * H + ffn) + n_attn * a + (L - n_attn) * m
    return dict(params=params, state_bytes=(L - n_attn) * s, kv_bytes_per_token=n_attn * kv_bytes(nkv, hd),
                attention_layers=n_attn, recurrent_layers=L - n_attn,
                notes=f"Mamba-2 x{L - n_attn} + attention x{n_attn}; shared MLP {SF}, {E} experts")


COUNTERS = {
    "mamba": count_mamba,
    "falcon_mamba": lambda c: count_mamba(c, falcon=True),
    "mamba2": count_mamba2,
    "jamba": count_jamba,
    "zamba": count_zamba,
    "zamba2": count_zamba2,
    "recurrent_gemma": count_recurrent_gemma,
    "bamba": count_bamba,
    "nemotron_h": count_nemotron_h,
    "falcon_h1": count_falcon_h1,
    "granitemoehybrid": count_granitemoehybrid,
}


def count(config):
    return COUNTERS[config["model_type"]](config)


def main():
    rows = {}
    for mt in sorted(os.listdir(HERE)):
        d = os.path.join(HERE, mt)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".json"):
                with open(os.path.join(d, fn)) as f:
                    cfg = json.load(f)   # Python's json accepts the Infinity some HF configs carry
                rows[f"{mt}/{fn}"] = count(cfg)
    print(f"{'file':58} {'params':>15} {'state MiB':>10} {'KV B/tok':>9} {'attn':>4} {'rec':>4}")
    for k, r in rows.items():
        print(f"{k:58} {r['params']:>15,} {r['state_bytes'] / 2**20:>10.2f} {r['kv_bytes_per_token']:>9} "
              f"{r['attention_layers']:>4} {r['recurrent_layers']:>4}")
    if "--write" in sys.argv:
        with open(os.path.join(HERE, "expected.json"), "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
