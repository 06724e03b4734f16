"""Peer measurement for `npm run bench`: transformers (eager attention, pure-torch Mamba-2 path) at the same
shape with random weights, on the same GPU, in the same run.

    python3 bench/peer_transformers.py --shape granite-4.0-h-350m --prompt 2048 --decode 64 [--dtype bf16]

Prints one JSON object: prefill and decode tokens/s.
"""
import argparse
import json
import os
import time

import torch
import transformers
from transformers import GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="granite-4.0-h-350m")
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "shapes", a.shape + ".json")) as f:
        raw = json.load(f)
    raw.pop("architectures", None)
    raw.pop("model_type", None)
    cfg = GraniteMoeHybridConfig(**raw)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    dev = "cuda"
    model = GraniteMoeHybridForCausalLM(cfg).to(device=dev, dtype=dtype).eval()
    model.config._attn_implementation = "eager"
    ids = torch.randint(0, cfg.vocab_size, (1, a.prompt), device=dev)
    with torch.no_grad():
        model(ids[:, :256], use_cache=False)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        torch.cuda.synchronize()
        prefill_s = time.perf_counter() - t0
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        pos = a.prompt
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        for _ in range(a.decode):
            o = model(tok, past_key_values=past, use_cache=True,
                      cache_position=torch.tensor([pos], device=dev))
            past = o.past_key_values
            tok = o.logits[:, -1:].argmax(-1)
            pos += 1
        torch.cuda.synchronize()
        decode_s = time.perf_counter() - t1
    print(json.dumps({
        "peer": f"transformers {transformers.__version__} eager, torch {torch.__version__}",
        "shape": a.shape, "dtype": a.dtype, "gpu": torch.cuda.get_device_name(0),
        "promptTokens": a.prompt, "prefillTokensPerSecond": round(a.prompt / prefill_s, 1),
        "decodeTokens": a.decode, "decodeTokensPerSecond": round(a.decode / decode_s, 2),
        "peakMemoryBytes": torch.cuda.max_memory_allocated(),
    }))


if __name__ == "__main__":
    main()
