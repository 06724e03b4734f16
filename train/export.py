"""Export the trained checkpoint as a Hugging Face folder the engine loads: config.json, model.safetensors
(bf16), tokenizer.json, tokenizer_config.json, generation_config.json.

    python3 train/export.py --work /tmp/sw-train --out models/default
"""
import argparse
import json
import os
import shutil

import torch
from transformers import GenerationConfig, GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    st = torch.load(os.path.join(a.work, "ckpt.pt"), map_location="cpu")
    tok = Tokenizer.from_file(os.path.join(a.work, "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    cfg = GraniteMoeHybridConfig(**st["config"], bos_token_id=None, eos_token_id=eos, pad_token_id=tok.token_to_id("<fim_pad>"))
    model = GraniteMoeHybridForCausalLM(cfg)
    model.load_state_dict(st["model"])
    model = model.to(torch.bfloat16).eval()
    os.makedirs(a.out, exist_ok=True)
    # Shards of at most 15 MB: files come back from the GPU machine in pieces of at most 16 MiB.
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="15MB")
    GenerationConfig(eos_token_id=eos, pad_token_id=cfg.pad_token_id).save_pretrained(a.out)
    shutil.copy(os.path.join(a.work, "tokenizer.json"), os.path.join(a.out, "tokenizer.json"))
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as fh:
        json.dump({"eos_token": "<|endoftext|>", "pad_token": "<fim_pad>", "bos_token": None,
                   "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
                   **({"sidewinder_file_footer": True} if st.get("file_footer") else {}),
                   **({"sidewinder_file_defs": True} if st.get("file_defs") else {}),
                   **({"sidewinder_file_index": True} if st.get("file_index") else {})}, fh, indent=2)
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    weights = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out) if f.endswith(".safetensors"))
    if weights > 24 * 2**20:
        print(f"warning: {weights / 2**20:.1f} MiB of weights, over the bundled model's 24 MiB budget", flush=True)
    print(json.dumps({"out": a.out, "step": st["step"], "bytes": size, "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
