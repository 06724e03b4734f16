"""Toy check of the file-footer framing (src/workspace/frame.ts) on CPU: does a small granitemoehybrid learn
"where is NAME defined?" faster when each file's path is repeated after the file?

Synthetic rows in the engine's layout: <filename> path \\n body <file_sep> [path \\n] ... then questions
<file_sep> Q NAME A -> path <eot>. Paths are 3 tokens from a small pool (files share directories, so the answer
must name the right one among look-alikes); bodies are random tokens with 1-2 definitions "def NAME" (2-token
names, unique in the row). Loss on the answers only. Reports the teacher-forced exact match of whole answers
on fresh rows.

    python3 train/experiments/footer_toy.py --footer 0|1 --minutes 20 --seed 0 [--device cuda --rows 64]
"""
import argparse
import json
import random
import time

import torch
from transformers import GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM

PAD, FN, SEP, NL, DEF, Q, A, EOT = range(8)
DIRS, FILES, BODY, NAMES = (10, 30), (30, 50), (50, 450), (450, 512)


def row(rng, footer, length):
    ids, w = [], []
    tops = rng.sample(range(*DIRS), 2)
    subs = rng.sample(range(*DIRS), 3)
    defined = []
    used_paths, used_names = set(), set()
    while True:
        path = (rng.choice(tops), rng.choice(subs), rng.randrange(*FILES))
        if path in used_paths:
            continue
        body = [rng.randrange(*BODY) for _ in range(rng.randint(20, 60))]
        names = []
        for _ in range(rng.randint(1, 2)):
            n = (rng.randrange(*NAMES), rng.randrange(*NAMES))
            if n in used_names:
                continue
            used_names.add(n)
            names.append(n)
            at = rng.randrange(len(body) + 1)
            body[at:at] = [DEF, *n]
        f = [FN, *path, NL, *body, SEP] + ([*path, NL] if footer else [])
        qs = 3
        if len(ids) + len(f) + qs * 9 > length:
            break
        used_paths.add(path)
        ids += f
        w += [0.0] * len(f)
        defined += [(n, path) for n in names]
    for n, path in rng.sample(defined, min(3, len(defined))):
        q = [SEP, Q, *n, A]
        a = [*path, EOT]
        ids += q + a
        w += [0.0] * len(q) + [1.0] * len(a)
    pad = length + 1 - len(ids)
    return ids + [PAD] * pad, w + [0.0] * pad


def batch(rng, footer, length, rows):
    rs = [row(rng, footer, length) for _ in range(rows)]
    x = torch.tensor([r[0] for r in rs])
    w = torch.tensor([r[1] for r in rs])
    return x[:, :-1], x[:, 1:], w[:, 1:]


def exact(logits, y, w):
    hit = (logits.argmax(-1) == y) | (w == 0)
    ok, n = 0, 0
    for b in range(y.shape[0]):
        pos = torch.nonzero(w[b]).flatten().tolist()
        for i in range(0, len(pos), 4):  # 3 path tokens + <eot> per answer
            ok += bool(hit[b, pos[i:i + 4]].all())
            n += 1
    return ok / max(1, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--footer", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--length", type=int, default=192)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    rng = random.Random(a.seed)
    cfg = GraniteMoeHybridConfig(
        vocab_size=512, hidden_size=96, num_hidden_layers=4, layer_types=["mamba", "attention", "mamba", "attention"],
        num_attention_heads=4, num_key_value_heads=2, position_embedding_type="nope", mamba_n_heads=4, mamba_d_head=48,
        mamba_expand=2, mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4, mamba_chunk_size=64,
        shared_intermediate_size=192, num_local_experts=0, tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=EOT, pad_token_id=PAD)
    model = GraniteMoeHybridForCausalLM(cfg).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    test = [t.to(a.device) for t in batch(random.Random(10_000 + a.seed), a.footer, a.length, 24)]
    t0, step = time.time(), 0
    while time.time() - t0 < a.minutes * 60:
        x, y, w = (t.to(a.device) for t in batch(rng, a.footer, a.length, a.rows))
        logits = model(input_ids=x).logits
        loss = (torch.nn.functional.cross_entropy(logits.reshape(-1, 512), y.reshape(-1), reduction="none") * w.reshape(-1)).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                em = exact(model(input_ids=test[0]).logits, test[1], test[2])
            model.train()
            print(json.dumps({"footer": a.footer, "step": step, "loss": round(loss.item(), 4), "exact": round(em, 3), "s": round(time.time() - t0)}), flush=True)
        step += 1


if __name__ == "__main__":
    main()
