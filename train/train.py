"""Train Sidewinder's bundled default model on the GPU machine (transformers 5.17, torch 2.11).

A small granitemoehybrid (Mamba-2 layers + 2 attention layers, no positional encoding, like Granite 4.0-H)
with a 16K byte-level BPE tokenizer, on real source code (train/data.py): next-token, FIM (~50%) and the
synthetic "Where is NAME defined?" workspace task at lengths growing to 16K tokens. One command runs for at
most --minutes and saves a checkpoint (weights + optimizer) under --work; the next command resumes from it.

    python3 train/train.py --work /tmp/sw-train --minutes 8 [--js train/js_corpus.jsonl.xz]
    python3 train/export.py --work /tmp/sw-train --out models/default
"""
import argparse
import json
import math
import os
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM

import data

# ~11.3M parameters: 21.6 MiB in bf16, inside the 24 MiB budget for the bundled weights.
MODEL = dict(
    vocab_size=16384, hidden_size=256, num_hidden_layers=8,
    layer_types=["mamba", "mamba", "mamba", "attention", "mamba", "mamba", "mamba", "attention"],
    num_attention_heads=4, num_key_value_heads=2, position_embedding_type="nope",
    mamba_n_heads=8, mamba_d_head=64, mamba_expand=2, mamba_n_groups=1, mamba_d_state=64, mamba_d_conv=4,
    mamba_chunk_size=64, shared_intermediate_size=640, num_local_experts=0, tie_word_embeddings=True,
    embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.125, logits_scaling=2.0,
    rms_norm_eps=1e-5, max_position_embeddings=131072,
)


def build_tokenizer(files, path):
    if os.path.exists(path):
        return Tokenizer.from_file(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=MODEL["vocab_size"], special_tokens=data.SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    sample = [t for _, _, t in random.Random(0).sample(files, min(len(files), 20000))]
    tok.train_from_iterator(sample, trainer)
    tok.save(path)
    return tok


def schedule(step):
    """Sequence length and task mix grow with training: short next-token/FIM first, then long lookups."""
    length = min(16384, 1024 * 2 ** (step // 400))
    return length


def batch(ex, step, tokens_per_batch, device):
    length = schedule(step)
    bs = max(1, tokens_per_batch // length)
    xs, ms = [], []
    for _ in range(bs):
        r = ex.rng.random()
        kind = ex.fim if r < 0.45 else ex.lookup if r < 0.75 else ex.next_token
        x, m = kind(length)
        x, m = x[: length + 1], m[: length + 1]
        pad = length + 1 - len(x)
        xs.append(x + [ex.sp["<fim_pad>"]] * pad)
        ms.append(m + [0] * pad)
    x = torch.tensor(xs, device=device)
    m = torch.tensor(ms, device=device, dtype=torch.float32)
    return x[:, :-1], x[:, 1:], m[:, 1:], length


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, default=8)
    ap.add_argument("--js", default=os.path.join(os.path.dirname(__file__), "js_corpus.jsonl.xz"))
    ap.add_argument("--tokens-per-batch", type=int, default=65536)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--corpus-mb", type=float, default=None, help="read at most this much Python source (smoke runs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    t_end = time.time() + a.minutes * 60
    corpus = data.load_corpus(a.js, limit_chars=a.corpus_mb * 2**20 if a.corpus_mb else None)
    print({k: len(v) for k, v in corpus.items()}, flush=True)
    tok = build_tokenizer(corpus["train"], os.path.join(a.work, "tokenizer.json"))
    ex = data.Examples(tok, corpus["train"], seed=int(time.time()))
    cfg = GraniteMoeHybridConfig(**MODEL, bos_token_id=None, eos_token_id=tok.token_to_id("<|endoftext|>"),
                                 pad_token_id=tok.token_to_id("<fim_pad>"))
    dev = a.device
    model = GraniteMoeHybridForCausalLM(cfg).to(dev)
    print("params", sum(p.numel() for p in model.parameters()), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    step = 0
    ckpt = os.path.join(a.work, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print("resumed at step", step, flush=True)
    fwd = torch.compile(model) if a.compile else model
    model.train()
    while time.time() < t_end and step < a.max_steps:
        x, y, m, length = batch(ex, step, a.tokens_per_batch, dev)
        lr = a.lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / a.max_steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(dev.split(":")[0], dtype=torch.bfloat16, enabled=dev.startswith("cuda")):
            logits = fwd(input_ids=x).logits.float()
        loss = (torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none") * m.reshape(-1)).sum() / m.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(json.dumps({"step": step, "len": length, "loss": round(loss.item(), 4), "lr": round(lr, 6)}), flush=True)
        step += 1
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": MODEL}, ckpt + ".tmp")
    os.replace(ckpt + ".tmp", ckpt)
    print("saved", ckpt, "step", step, flush=True)


if __name__ == "__main__":
    main()
