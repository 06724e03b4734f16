"""Peer measurement for `npm run bench`: transformers (eager attention, the pure-torch Mamba paths unless
mamba_ssm / causal_conv1d are installed) at the same shape with random weights, on the same GPU, in the same run.

    python3 bench/peer_transformers.py --shape granite-4.0-h-350m --prompt 2048 --decode 64 [--dtype bf16]
    python3 bench/peer_transformers.py --shape all-families --prompt 512 --decode 16 --json peer.json
    python3 bench/peer_transformers.py --config test/fixtures/zamba2/config.json --device cpu --prompt 16 --decode 4 --check

--shape: a name from bench/families.json (or tiny), all-families, or several, comma-separated; --config FILE (any
family: AutoConfig from its model_type, AutoModelForCausalLM.from_config, random init) may be repeated.
--layers N keeps the first N layers (as bench.ts --layers; absent, a family shape's own `layers`, 0: all).
Prints one JSON object per model: prefill and decode tokens/s; --json writes them all.
"""
import argparse
import gc
import importlib.util
import json
import math
import os
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Zyphra's pre-transformers spelling of Zamba2 configs (as src/engine/config.ts ZAMBA2_LEGACY maps them).
ZAMBA2_LEGACY = [
    ("ffn_hidden_size", "intermediate_size"),
    ("lora_rank", "adapter_rank"),
    ("state_size", "mamba_d_state"),
    ("conv_dimension", "mamba_d_conv"),
    ("expansion_factor", "mamba_expand"),
    ("use_shared_attention_lora", "use_shared_attention_adapter"),
]
# Keys of those legacy configs that transformers' Zamba2Config does not take.
ZAMBA2_LEGACY_ONLY = ["add_bias_linear", "ft_lora", "gated_linear_unit", "kv_channels", "num_query_groups",
                      "use_shared_block_lora"]


def load_json(path):
    """config.json, with transformers 5.x's {"__float__": "Infinity"} for non-finite floats read as floats."""
    with open(path) as f:
        return json.load(f, object_hook=lambda d: float(d["__float__"]) if set(d) == {"__float__"} else d)


def families():
    with open(os.path.join(HERE, "families.json")) as f:
        return json.load(f)["shapes"]


def resolve(shape_args, config_args):
    """[(name, raw config dict, provenance, default layers)] for --shape and --config."""
    known = families() + [{"name": "tiny", "family": "granitemoehybrid", "file": "bench/shapes/tiny.json",
                           "provenance": "a small granitemoehybrid for smoke runs"}]
    out = []
    for arg in shape_args:
        for part in [p.strip() for p in arg.split(",") if p.strip()]:
            named = families() if part == "all-families" else [s for s in known if s["name"] == part]
            if not named and os.path.exists(part):  # a config.json path (or its folder), as bench.ts takes it
                config_args = list(config_args) + [part]
                continue
            if not named:
                raise SystemExit(f"unknown --shape {part}; known: all-families, {', '.join(s['name'] for s in known)}, or a config.json path")
            for s in named:
                out.append((s["name"], load_json(os.path.join(ROOT, s["file"])), s["provenance"], s.get("layers", 0)))
    for path in config_args:
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        raw = load_json(path)
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) if os.path.basename(path) == "config.json" \
            else os.path.splitext(os.path.basename(path))[0]
        out.append((name, raw, f"config file {path}", 0))
    return out


def truncate_layers(raw, n):
    """The config with only its first n layers, as bench/shapes.ts truncateLayers does."""
    pattern = raw.get("hybrid_override_pattern")
    L = raw.get("num_hidden_layers")
    if not isinstance(L, int):
        L = len(pattern) if isinstance(pattern, str) else None
    if L is None or n >= L:
        return raw
    out = dict(raw, num_hidden_layers=n)
    for k, v in raw.items():
        if isinstance(v, list) and len(v) == L:
            out[k] = v[:n]
        elif k == "hybrid_override_pattern" and isinstance(v, str):
            out[k] = v[:n]
        elif k in ("attn_layer_indices", "hybrid_layer_ids") and isinstance(v, list):
            out[k] = [i for i in v if isinstance(i, int) and i < n]
    return out


def hf_config(raw):
    raw = dict(raw)
    mt = raw.pop("model_type")
    raw.pop("architectures", None)
    raw.pop("transformers_version", None)
    if mt == "zamba2":
        for legacy, key in ZAMBA2_LEGACY:
            if legacy in raw:
                v = raw.pop(legacy)
                raw.setdefault(key, v)
        for k in ZAMBA2_LEGACY_ONLY:
            raw.pop(k, None)
        # Legacy files give mamba_headdim, not n_mamba_heads (the engine: heads = mamba_expand x H / mamba_headdim).
        if "n_mamba_heads" not in raw and "mamba_headdim" in raw:
            raw["n_mamba_heads"] = int(raw.get("mamba_expand", 2) * raw["hidden_size"]) // raw["mamba_headdim"]
    if mt == "falcon_h1" and raw.get("mamba_d_ssm") is None and raw.get("mamba_d_head") not in (None, "auto"):
        # Copies without mamba_d_ssm (Falcon-H1-0.5B's) have heads x d_head channels, as the engine reads them.
        raw["mamba_d_ssm"] = raw.get("mamba_n_heads", 128) * raw["mamba_d_head"]
    if mt == "nemotron_h" and "hybrid_override_pattern" in raw:
        raw.pop("num_hidden_layers", None)  # derived from the pattern
    return AutoConfig.for_model(mt, **raw)


def sync(dev):
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def bench_one(name, raw, provenance, layers, a, dtype):
    dev = a.device
    full = raw.get("num_hidden_layers") or len(raw.get("hybrid_override_pattern", ""))
    note = None
    if layers and full and layers < full:
        raw = truncate_layers(raw, layers)
        note = f"first {layers} of {full} layers (--layers): not the whole model"
    cfg = hf_config(raw)
    torch.manual_seed(0)
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_build = time.perf_counter()
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=dtype).eval()
    sync(dev)
    build_s = time.perf_counter() - t_build
    params = sum(p.numel() for p in model.parameters())
    vocab = cfg.vocab_size
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, vocab, (1, a.prompt), generator=g).to(dev)
    with torch.no_grad():
        model(ids[:, : min(32, a.prompt)], use_cache=False)  # warm-up
        sync(dev)
        # Best of up to three prefills while they are short (small shapes); one for the slow ones (7B shapes).
        prefill_s, spent = float("inf"), 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            sync(dev)
            took = time.perf_counter() - t0
            prefill_s, spent = min(prefill_s, took), spent + took
            if spent > 1.5:
                break
        # Mamba / FalconMamba / Mamba-2 return their state as cache_params, the others past_key_values;
        # RecurrentGemma keeps its own (set up at cache_position 0, advanced by cache_position).
        key = next((k for k in ("cache_params", "past_key_values") if getattr(out, k, None) is not None), None)
        cache = getattr(out, key) if key else None
        tok = out.logits[:, -1:].argmax(-1)
        toks = [tok.item()] if a.check else []
        pos = a.prompt
        sync(dev)
        t1 = time.perf_counter()
        for _ in range(a.decode):
            o = model(tok, use_cache=True, cache_position=torch.tensor([pos], device=dev),
                      **({key: cache} if key else {"position_ids": torch.tensor([[pos]], device=dev)}))
            cache = getattr(o, key) if key else None
            tok = o.logits[:, -1:].argmax(-1)
            if a.check:
                toks.append(tok.item())
            pos += 1
        sync(dev)
        decode_s = time.perf_counter() - t1
        check = None
        if a.check:
            # generate() may stop at an EOS id (min_new_tokens would mask EOS instead): the tokens up to there
            ref = model.generate(ids, max_new_tokens=a.decode + 1, do_sample=False,
                                 attention_mask=torch.ones_like(ids))[0, a.prompt:].tolist()
            check = {"decodeMatchesGenerate": len(ref) > 0 and ref == toks[:len(ref)], "decodeTokens": toks, "generateTokens": ref}
    result = {
        "peer": f"transformers {transformers.__version__} eager, torch {torch.__version__}",
        "shape": name, "family": cfg.model_type, "layers": cfg.num_hidden_layers, **({"layersNote": note} if note else {}),
        "provenance": provenance, "dtype": a.dtype,
        "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else dev,
        "params": params, "buildSeconds": round(build_s, 2),
        # whether transformers could take the fused Mamba kernels instead of its pure-torch paths
        "mambaKernelsInstalled": {m: importlib.util.find_spec(m) is not None for m in ("mamba_ssm", "causal_conv1d")},
        "promptTokens": a.prompt, "prefillTokensPerSecond": round(a.prompt / prefill_s, 1),
        "decodeTokens": a.decode, "decodeTokensPerSecond": round(a.decode / decode_s, 2),
        "peakMemoryBytes": torch.cuda.max_memory_allocated() if dev.startswith("cuda") else None,
        **({"check": check} if check else {}),
    }
    del model, out, cache
    gc.collect()
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", default=None)
    ap.add_argument("--check", action="store_true", help="also check the decode loop's tokens against generate()")
    a = ap.parse_args()
    if not a.shape and not a.config:
        a.shape = ["granite-4.0-h-350m"]
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    results = []
    for name, raw, provenance, layers in resolve(a.shape, a.config):
        n = a.layers if a.layers is not None else layers
        try:
            r = bench_one(name, raw, provenance, n, a, dtype)
        except Exception as e:  # one model's failure (e.g. out of memory) does not stop the others
            r = {"shape": name, "family": raw.get("model_type"), "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            gc.collect()
            if a.device.startswith("cuda"):
                torch.cuda.empty_cache()
        results.append(r)
        print(json.dumps(r), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"mode": "families", "results": results}, f, indent=2)
                f.write("\n")


if __name__ == "__main__":
    main()
