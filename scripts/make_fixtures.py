#!/usr/bin/env python3
"""Generate small random-weight reference fixtures for Sidewinder's engine tests.

Each fixture is a folder that looks like a Hugging Face checkpoint written by
``save_pretrained`` (config.json, model.safetensors or shards plus
model.safetensors.index.json, generation_config.json), plus a tiny trained
byte-level BPE ``tokenizer.json`` / ``tokenizer_config.json`` and an
``expected.json`` holding reference outputs computed with Hugging Face
transformers (CPU, float32, eager attention):

    {
      "transformers_version": str, "torch_version": str,
      "config_summary": {...},             # the knobs the fixture exercises
      "ids": [int] * L,                    # seeded random token ids
      "prefill_logits": [[float] * V] * L, # model(ids).logits, all positions
      "decode_from": H,
      "decode_logits": [[float] * V] * (L - H + 1),
                                           # row 0: prefill(ids[:H]) last position,
                                           # row k: after feeding ids[H + k - 1] one
                                           # token at a time through the cache
      "greedy": {"prompt_ids": [int] * 12, "max_new_tokens": 10, "new_ids": [int] * 10},
      "tokenizer": {"text": str, "ids": [int], "more": [{"text": str, "ids": [int]}]}
    }

Logits are rounded to 7 significant digits.  The reference model is always
re-loaded from the saved folder in float32, so bf16/f16 fixtures are compared
against exactly the rounded weights that the checkpoint holds.

Fixtures:
  granite-dense-nope   GraniteMoeHybrid, f32, dense MLP, no positional encoding,
                       config.json in the transformers-4.x spelling
                       (layer_types "mamba"/"attention").
  granite-moe-rope     GraniteMoeHybrid, bf16, 4 experts top-2 + shared MLP, RoPE,
                       n_groups 2, layer_types "linear_attention"/"full_attention".
  granite-sharded-f16  GraniteMoeHybrid, f16, sharded safetensors + index, plain MHA,
                       transformers-4.x style config (layer_types "mamba"/"attention",
                       top-level rope_theta / rope_scaling, torch_dtype, no time_step_limit).
  mamba2-pure          Mamba2ForCausalLM, f32, n_groups 2.

Needs torch, transformers (written against 5.17), safetensors, tokenizers; no
network.  It runs on CPU.  The lead's machine has no torch, so it is run on
the device machine, e.g.:

    set -o pipefail; PYTHONUNBUFFERED=1 python3 scripts/make_fixtures.py --out /tmp/fx \\
        --sources $OUT/sources.txt 2>&1 | tee $OUT/log.txt; \\
    tar czf $OUT/fixtures.tar.gz -C /tmp/fx .

and the tarball is unpacked into test/fixtures/.  Everything is seeded, so a
rerun with the same library versions reproduces the same files.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shutil
import sys
import traceback

import torch

import transformers
from transformers import (
    GraniteMoeHybridConfig,
    GraniteMoeHybridForCausalLM,
    Mamba2Config,
    Mamba2ForCausalLM,
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<file_sep>",
    "<filename>",
]
EOS_ID = 0  # "<|endoftext|>" is the first special token, so the trainer gives it id 0.

TOKENIZER_SAMPLE = "def héllo(x):\n    return x + 1  # ok ✓\n"
TOKENIZER_MORE = [
    "<fim_prefix>def add(a, b):\n<fim_suffix>\n    return c<fim_middle>",
    "<filename>src/ünï.py\nclass Foo:\n\tpass  # 日本語 🚀<|endoftext|>",
    "  leading spaces,\r\nCRLF and\ttabs\u00a0nbsp  ",
]

GREEDY_PROMPT_LEN = 12
GREEDY_NEW_TOKENS = 10
TOKENIZER_VOCAB_MAX = 300

# Dense ("full_attention") / Mamba ("linear_attention") spellings.
LEGACY_SPELLING = {"linear_attention": "mamba", "full_attention": "attention"}

GRANITE_COMMON = dict(
    vocab_size=384,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_act="silu",
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    attention_bias=False,
    embedding_multiplier=3.0,
    residual_multiplier=0.5,
    attention_multiplier=0.0625,  # deliberately not 1/sqrt(head_dim) = 0.25
    logits_scaling=2.0,
    num_local_experts=0,
    num_experts_per_tok=2,
    intermediate_size=48,
    shared_intermediate_size=96,
    position_embedding_type="nope",
    mamba_n_heads=4,
    mamba_d_head=32,
    mamba_expand=2,
    mamba_n_groups=1,
    mamba_d_state=16,
    mamba_d_conv=4,
    mamba_chunk_size=16,
    mamba_conv_bias=True,
    mamba_proj_bias=False,
    tie_word_embeddings=True,
    bos_token_id=EOS_ID,
    eos_token_id=EOS_ID,
    pad_token_id=EOS_ID,
)

FIXTURES = {
    "granite-dense-nope": dict(
        arch="granite",
        seed=1001,
        save_dtype=torch.float32,
        config=dict(GRANITE_COMMON, num_hidden_layers=4, layer_types=["mamba", "attention", "mamba", "mamba"]),
        config_style="legacy_layer_types",
        seq_len=40,
        decode_from=23,
    ),
    "granite-moe-rope": dict(
        arch="granite",
        seed=1002,
        save_dtype=torch.bfloat16,
        config=dict(
            GRANITE_COMMON,
            num_hidden_layers=5,
            layer_types=["attention", "mamba", "mamba", "attention", "mamba"],
            num_local_experts=4,
            num_experts_per_tok=2,
            intermediate_size=48,
            shared_intermediate_size=64,
            position_embedding_type="rope",
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            mamba_n_heads=8,
            mamba_d_head=16,
            mamba_n_groups=2,
            mamba_d_state=8,
            tie_word_embeddings=False,
        ),
        config_style="native",  # transformers 5.x writes linear_attention / full_attention
        seq_len=40,
        decode_from=23,
    ),
    "granite-sharded-f16": dict(
        arch="granite",
        seed=1003,
        save_dtype=torch.float16,
        config=dict(
            GRANITE_COMMON,
            hidden_size=48,
            num_hidden_layers=3,
            layer_types=["mamba", "mamba", "attention"],
            num_attention_heads=4,
            num_key_value_heads=4,
            mamba_n_heads=6,
            mamba_d_head=16,
            mamba_chunk_size=8,
            embedding_multiplier=1.0,
            residual_multiplier=1.0,
            logits_scaling=1.0,
        ),
        config_style="legacy_4x",
        max_shard_size=80_000,  # bytes; forces 2-3 shards
        seq_len=27,
        decode_from=13,
    ),
    "mamba2-pure": dict(
        arch="mamba2",
        seed=1004,
        save_dtype=torch.float32,
        config=dict(
            vocab_size=320,
            hidden_size=64,
            num_hidden_layers=3,
            num_heads=8,
            head_dim=16,
            expand=2,
            n_groups=2,
            state_size=16,
            conv_kernel=4,
            chunk_size=16,
            use_conv_bias=True,
            use_bias=False,
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=False,
            residual_in_fp32=True,
            bos_token_id=EOS_ID,
            eos_token_id=EOS_ID,
            pad_token_id=EOS_ID,
        ),
        config_style="native",
        seq_len=40,
        decode_from=23,
    ),
}

ARCH = {
    "granite": (GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM),
    "mamba2": (Mamba2Config, Mamba2ForCausalLM),
}


# --------------------------------------------------------------------------- weights


@torch.no_grad()
def randomize_parameters(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded noise so that nothing is trivially 0 or 1.

    Norm weights ~ 1 + 0.1 N; A_log = log U(1, 16); dt_bias ~ -3.5 + 0.5 N (small
    dt so that SSM state survives across chunk boundaries); D ~ 1 + 0.5 N;
    conv weights ~ 0.3 N, biases ~ 0.05-0.1 N; embeddings / lm_head ~ 0.1 N;
    every other matrix ~ 0.08 N.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    for name, p in model.named_parameters():  # tied weights are listed once
        leaf = name.rsplit(".", 1)[-1]
        shape = p.shape
        if leaf == "A_log":
            v = torch.log(1.0 + 15.0 * torch.rand(shape, generator=g))
        elif leaf == "dt_bias":
            v = -3.5 + 0.5 * randn(shape)
        elif leaf == "D":
            v = 1.0 + 0.5 * randn(shape)
        elif "conv1d" in name:
            v = (0.3 if leaf == "weight" else 0.1) * randn(shape)
        elif "norm" in name and p.dim() == 1:
            v = 1.0 + 0.1 * randn(shape)
        elif leaf == "bias":
            v = 0.05 * randn(shape)
        elif "embed" in name or "lm_head" in name:
            v = 0.1 * randn(shape)
        else:
            v = 0.08 * randn(shape)
        p.copy_(v.to(p.dtype))


# --------------------------------------------------------------------------- tokenizer


def tokenizer_corpus() -> list[str]:
    """Code-like training text: sources of a few stdlib modules present on any Python."""
    import collections
    import fnmatch
    import json.decoder
    import json.encoder
    import shlex
    import string
    import textwrap

    mods = [json, json.decoder, json.encoder, textwrap, string, shlex, fnmatch, collections]
    texts = [inspect.getsource(m) for m in mods]
    texts.append(TOKENIZER_SAMPLE * 3)
    return texts


def train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    assert tok.token_to_id(SPECIAL_TOKENS[0]) == EOS_ID, tok.token_to_id(SPECIAL_TOKENS[0])
    assert tok.get_vocab_size() <= vocab_size
    return tok


def write_tokenizer(out_dir: str, model_vocab: int) -> dict:
    vocab = min(model_vocab, TOKENIZER_VOCAB_MAX)
    tok = train_tokenizer(vocab)
    again = train_tokenizer(vocab)
    if tok.to_str() != again.to_str():
        print("  WARNING: BPE training is not deterministic")
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": SPECIAL_TOKENS[0],
                "pad_token": SPECIAL_TOKENS[0],
                "unk_token": None,
                "add_bos_token": False,
                "add_prefix_space": False,
                "additional_special_tokens": SPECIAL_TOKENS[1:],
                "model_max_length": 4096,
            },
            f,
            indent=2,
        )
        f.write("\n")

    def enc(text):
        ids = tok.encode(text).ids
        back = tok.decode(ids, skip_special_tokens=False)
        if back != text:
            print(f"  WARNING: tokenizer round trip differs: {text!r} -> {back!r}")
        return {"text": text, "ids": ids}

    info = enc(TOKENIZER_SAMPLE)
    info["more"] = [enc(t) for t in TOKENIZER_MORE]
    print(f"  tokenizer: vocab {tok.get_vocab_size()}, sample -> {len(info['ids'])} ids")
    return info


# --------------------------------------------------------------------------- config.json styles


def rewrite_config(path: str, style: str) -> None:
    """Rewrite the saved config.json in the spelling that a fixture wants to exercise."""
    if style == "native":
        return
    with open(path) as f:
        cfg = json.load(f)
    cfg["layer_types"] = [LEGACY_SPELLING.get(t, t) for t in cfg["layer_types"]]
    if style == "legacy_4x":
        # transformers 4.x wrote rope_theta / rope_scaling at top level (no rope_parameters),
        # "torch_dtype" rather than "dtype", and no time_step_limit (5.x writes its upper
        # bound as {"__float__": "Infinity"}).
        rope = cfg.pop("rope_parameters", None) or {}
        cfg["rope_theta"] = float(rope.get("rope_theta", 10000.0))
        cfg["rope_scaling"] = None
        if "dtype" in cfg:
            cfg["torch_dtype"] = cfg.pop("dtype")
        cfg.pop("time_step_limit", None)
        cfg["transformers_version"] = "4.56.0"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


# --------------------------------------------------------------------------- reference outputs


def load_reference(arch: str, path: str):
    _, model_cls = ARCH[arch]
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    if arch == "granite":
        kwargs["experts_implementation"] = "eager"
    model = model_cls.from_pretrained(path, **kwargs)
    return model.eval()


def round7(x: float) -> float:
    return float(f"{x:.7g}")


def rows(t: torch.Tensor) -> list[list[float]]:
    return [[round7(v) for v in row] for row in t.tolist()]


@torch.no_grad()
def prefill_logits(model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


@torch.no_grad()
def decode_logits(model, arch: str, ids: list[int], start: int) -> torch.Tensor:
    """Prefill ids[:start] with a cache, then feed ids[start:] one token at a time.

    Returns logits for positions start-1 .. len(ids)-1.
    """
    out = model(input_ids=torch.tensor([ids[:start]]), use_cache=True)
    cache = out.cache_params if arch == "mamba2" else out.past_key_values
    got = [out.logits[0, -1]]
    for pos in range(start, len(ids)):
        tok = torch.tensor([[ids[pos]]])
        if arch == "mamba2":
            out = model(input_ids=tok, cache_params=cache, use_cache=True)
            cache = out.cache_params
        else:
            out = model(
                input_ids=tok,
                past_key_values=cache,
                position_ids=torch.tensor([[pos]]),
                use_cache=True,
            )
            cache = out.past_key_values
        got.append(out.logits[0, -1])
    return torch.stack(got).float()


@torch.no_grad()
def greedy(model, prompt: list[int]) -> list[int]:
    model.generation_config.eos_token_id = None  # never stop early: exactly N new tokens
    model.generation_config.pad_token_id = EOS_ID
    out = model.generate(
        input_ids=torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False,
        max_new_tokens=GREEDY_NEW_TOKENS,
    )
    new = out[0, len(prompt):].tolist()
    # Self-check: the same rollout by argmax over full (cache-free) forwards.
    seq = list(prompt)
    for _ in range(GREEDY_NEW_TOKENS):
        seq.append(int(prefill_logits(model, seq)[-1].argmax()))
    manual = seq[len(prompt):]
    print(f"  greedy: {new}  (cache-free argmax rollout {'matches' if manual == new else 'DIFFERS: ' + str(manual)})")
    return new


def config_summary(arch: str, cfg, spec: dict) -> dict:
    s = {
        "architecture": type(cfg).__name__.replace("Config", "ForCausalLM"),
        "model_type": cfg.model_type,
        "saved_dtype": str(spec["save_dtype"]).replace("torch.", ""),
        "config_json_style": spec["config_style"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "layer_types": list(cfg.layer_types),
        "tie_word_embeddings": cfg.tie_word_embeddings,
        # transformers' torch path normalises the gated RMSNorm over the whole
        # intermediate dimension (not per n_groups group).
        "gated_norm": "whole_intermediate",
    }
    if arch == "granite":
        for k in (
            "num_attention_heads", "num_key_value_heads", "position_embedding_type",
            "rms_norm_eps", "embedding_multiplier", "residual_multiplier",
            "attention_multiplier", "logits_scaling", "num_local_experts",
            "num_experts_per_tok", "intermediate_size", "shared_intermediate_size",
            "mamba_n_heads", "mamba_d_head", "mamba_expand", "mamba_n_groups",
            "mamba_d_state", "mamba_d_conv", "mamba_chunk_size", "mamba_conv_bias",
            "mamba_proj_bias",
        ):
            s[k] = getattr(cfg, k)
        rp = getattr(cfg, "rope_parameters", None) or {}
        s["rope_theta"] = rp.get("rope_theta") if cfg.position_embedding_type == "rope" else None
    else:
        for k in (
            "num_heads", "head_dim", "expand", "n_groups", "state_size", "conv_kernel",
            "chunk_size", "use_conv_bias", "use_bias", "layer_norm_epsilon", "residual_in_fp32",
        ):
            s[k] = getattr(cfg, k)
    tl = getattr(cfg, "time_step_limit", None)
    s["time_step_limit"] = [x if math.isfinite(x) else str(x) for x in tl] if tl else None
    return s


def dump_expected(path: str, expected: dict) -> None:
    """JSON with one logits row per line: compact but diffable."""
    parts = []
    for k, v in expected.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            body = "[\n" + ",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in v) + "\n ]"
        else:
            body = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        parts.append(f" {json.dumps(k)}: {body}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")


def list_tensors(out_dir: str) -> None:
    from safetensors import safe_open

    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))
    for fn in files:
        with safe_open(os.path.join(out_dir, fn), "pt") as st:
            for k in st.keys():
                t = st.get_slice(k)
                print(f"    {fn}: {k} {t.get_dtype()} {list(t.get_shape())}")


# --------------------------------------------------------------------------- one fixture


def make_fixture(name: str, spec: dict, root: str) -> None:
    arch = spec["arch"]
    config_cls, model_cls = ARCH[arch]
    out_dir = os.path.join(root, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    torch.manual_seed(spec["seed"])
    config = config_cls(**spec["config"])
    model = model_cls(config)
    randomize_parameters(model, spec["seed"])
    model.to(spec["save_dtype"])
    save_kwargs = {}
    if "max_shard_size" in spec:
        save_kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(out_dir, **save_kwargs)
    del model

    tok_info = write_tokenizer(out_dir, config.vocab_size)

    ids_gen = torch.Generator().manual_seed(spec["seed"] + 7)
    ids = torch.randint(0, config.vocab_size, (spec["seq_len"],), generator=ids_gen).tolist()

    # Logits with the config.json exactly as save_pretrained wrote it ...
    native_logits = prefill_logits(load_reference(arch, out_dir), ids)
    native_layer_types = list(config_cls.from_pretrained(out_dir).layer_types)
    # ... then in the spelling this fixture is meant to exercise; must load identically.
    rewrite_config(os.path.join(out_dir, "config.json"), spec["config_style"])
    model = load_reference(arch, out_dir)
    logits = prefill_logits(model, ids)
    if spec["config_style"] != "native":
        same_types = list(model.config.layer_types) == native_layer_types
        diff = (logits - native_logits).abs().max().item()
        print(f"  config style {spec['config_style']}: reload layer_types equal={same_types}, max |dlogit|={diff:.3g}")
        if not same_types or diff != 0.0:
            raise RuntimeError(f"{spec['config_style']} config.json does not reload identically")
    print(f"  layer_types after reload: {list(model.config.layer_types)}")

    H = spec["decode_from"]
    dec = decode_logits(model, arch, ids, H)
    ref = logits[H - 1 :]
    scale = logits.abs().max().item()
    dev = (dec - ref).abs().max().item()
    ok = dev <= 1e-4 * scale
    print(
        f"  decode-vs-prefill: max |d| = {dev:.3e}, max |logit| = {scale:.4f}, "
        f"relative {dev / scale:.3e} -> {'OK' if ok else 'FAIL'}"
    )
    if not ok:
        raise RuntimeError("decode logits disagree with prefill logits")
    print(f"  logits std {logits.std().item():.4f}, argmax spread {len(set(logits.argmax(-1).tolist()))} distinct")

    prompt = ids[:GREEDY_PROMPT_LEN]
    new_ids = greedy(model, prompt)

    expected = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "config_summary": config_summary(arch, model.config, spec),
        "ids": ids,
        "prefill_logits": rows(logits),
        "decode_from": H,
        "decode_logits": rows(dec),
        "greedy": {"prompt_ids": prompt, "max_new_tokens": GREEDY_NEW_TOKENS, "new_ids": new_ids},
        "tokenizer": tok_info,
    }
    dump_expected(os.path.join(out_dir, "expected.json"), expected)

    list_tensors(out_dir)
    files = sorted(os.listdir(out_dir))
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in files)
    print(f"  files: {files}  ({total / 1024:.0f} KiB)")
    if "max_shard_size" in spec and sum(f.endswith(".safetensors") for f in files) < 2:
        raise RuntimeError("expected a sharded checkpoint")


# --------------------------------------------------------------------------- sources dump


def dump_sources(path: str) -> None:
    """Write the transformers sources that define the reference semantics."""
    import importlib

    targets = [
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridRMSNormGated"),
        ("transformers.models.mamba2.modeling_mamba2", "MambaRMSNormGated"),
        ("transformers.models.mamba2.modeling_mamba2", "Mamba2Mixer.__init__"),
        ("transformers.models.mamba2.modeling_mamba2", "Mamba2Mixer.torch_forward"),
        ("transformers.models.mamba2.modeling_mamba2", "Mamba2Mixer.forward"),
        ("transformers.models.mamba2.modeling_mamba2", "mamba2_chunk_scan"),
        ("transformers.models.mamba2.modeling_mamba2", "mamba2_selective_state_update"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridMambaLayer.forward"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridAttention"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridTopKRouter"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridExperts"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridDecoderLayer.forward"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridModel.forward"),
        ("transformers.models.granitemoehybrid.configuration_granitemoehybrid", "GraniteMoeHybridConfig"),
        ("transformers.configuration_utils", "remap_legacy_layer_types"),
        ("transformers.configuration_utils", "_LEGACY_LAYER_TYPE_REMAP"),
        ("transformers.models.mamba2.configuration_mamba2", "Mamba2Config"),
        ("transformers.models.granitemoehybrid.modeling_granitemoehybrid", "GraniteMoeHybridForCausalLM.forward"),
    ]
    with open(path, "w") as f:
        f.write(f"# transformers {transformers.__version__}, torch {torch.__version__}\n")
        for mod_name, qual in targets:
            f.write(f"\n{'=' * 100}\n# {mod_name}.{qual}\n{'=' * 100}\n")
            try:
                obj = importlib.import_module(mod_name)
                for part in qual.split("."):
                    obj = getattr(obj, part)
                try:
                    f.write(inspect.getsource(obj))
                except TypeError:  # plain data, e.g. a dict
                    f.write(repr(obj) + "\n")
            except Exception as e:  # noqa: BLE001 - report and continue
                f.write(f"# not available: {type(e).__name__}: {e}\n")
    print(f"sources written to {path}")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (one sub-folder per fixture)")
    ap.add_argument("--only", action="append", choices=sorted(FIXTURES), help="make only this fixture (repeatable)")
    ap.add_argument("--sources", help="also write the relevant transformers sources to this file")
    args = ap.parse_args()

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
    if args.sources:
        try:
            dump_sources(args.sources)
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    os.makedirs(args.out, exist_ok=True)
    failed = []
    for name in args.only or list(FIXTURES):
        print(f"== {name}")
        try:
            make_fixture(name, FIXTURES[name], args.out)
        except Exception:  # noqa: BLE001 - keep going, report at the end
            traceback.print_exc()
            failed.append(name)
    print("FAILED: " + ", ".join(failed) if failed else "all fixtures OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
