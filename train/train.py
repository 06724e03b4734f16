"""Train Sidewinder's bundled default model on the GPU machine (transformers 5.17, torch 2.11).

A small granitemoehybrid (Mamba-2 layers + 2 attention layers, no positional encoding, like Granite 4.0-H)
with a 16K byte-level BPE tokenizer, on real source code (train/data.py): next-token, FIM (~50%) and the
synthetic "Where is NAME defined?" workspace task, all inside 16K-token rows (train/data.py Examples.row). One
command runs for at most --minutes and saves checkpoints (weights + optimizer) under --work; the next command
resumes from it, and the learning-rate schedule follows --total-minutes of training over all of them.

    python3 train/train.py --work /tmp/sw-train --compile --minutes 9 --total-minutes 18
    python3 train/export.py --work /tmp/sw-train --out models/default

On a machine with several GPUs, `torchrun --nproc_per_node N train/train.py ...` trains data-parallel (DDP):
each rank builds its own rows (its own seed), gradients are averaged, rank 0 prints and saves, and the ranks
agree on the schedule and on when to stop at every step.
"""
import argparse
import json
import math
import os
import queue
import random
import shutil
import threading
import time

import torch
import torch.distributed as dist
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


class Batches:
    """Rows made on a background thread (tokenizing is in Rust and releases the GIL) so the GPU never waits."""

    def __init__(self, ex, length, rows, depth=6):
        self.q = queue.Queue(maxsize=depth)
        self.ex, self.length, self.rows = ex, length, rows
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            rows = [self.ex.row(self.length) for _ in range(self.rows)]
            self.q.put((torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows], dtype=torch.float32),
                        torch.tensor([r[2] for r in rows], dtype=torch.int32)))

    def next(self, device):
        x, w, d = self.q.get()
        x, w = x.to(device, non_blocking=True), w.to(device, non_blocking=True)
        return x[:, :-1], x[:, 1:], w[:, 1:], d[:, 1:]


def answer_exact_match(hit, w, keep=None):
    """Share of lookup answers whose every token (teacher-forced) is right. The first path token alone says
    little: in workspace rows every file shares the (renamed) package root, so it is a guess, not a lookup.
    keep: a mask of the answer tokens to count (e.g. answers far from their file). Returns (share, answers)."""
    m = ((w > 1) & (keep if keep is not None else True)).int()
    starts = torch.nonzero(m[1:] > m[:-1]).flatten() + 1
    ends = torch.nonzero(m[1:] < m[:-1]).flatten() + 1
    spans = [(a, b) for a, b in zip(starts.tolist(), ends.tolist()) if b > a]
    if not spans:
        return float("nan"), 0
    return sum(bool(hit[a:b].all()) for a, b in spans) / len(spans), len(spans)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, default=8, help="wall-clock budget of this command, setup included")
    ap.add_argument("--total-minutes", type=float, default=None, help="training time of the whole run (lr schedule); default --minutes")
    ap.add_argument("--js", default=os.path.join(os.path.dirname(__file__), "js_corpus.jsonl.xz"))
    ap.add_argument("--length", type=int, default=16384, help="row length in tokens")
    ap.add_argument("--rows", type=int, default=4, help="rows per batch")
    ap.add_argument("--short", type=int, default=4096, help="batches between the long ones have rows of this length (same token count); 0: off")
    ap.add_argument("--long-every", type=int, default=2, help="with --short: one batch in this many has rows of --length")
    ap.add_argument("--tail-questions", type=float, default=0.0, help="share of each row kept for a closing block of questions (data.Examples tail)")
    ap.add_argument("--sub-root-rate", type=float, default=0.0, help="share of workspace rows read from inside the package (data.Examples)")
    ap.add_argument("--name-parts", action="store_true", help="made-up paths also use names the code defines (data.Examples)")
    ap.add_argument("--answer-weight", type=float, default=1.0, help="scales the loss weight of lookup answers (data.Examples)")
    ap.add_argument("--init", default=None, help="start from the weights of an exported model folder (train/export.py)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--save-every", type=float, default=240, help="seconds between checkpoints")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--corpus-mb", type=float, default=None, help="read at most this much Python source (smoke runs)")
    ap.add_argument("--small", action="store_true", help="a tiny model (CPU smoke runs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", default=None, help="layer pattern of a new model, m = Mamba-2, a = attention (default mmmammma)")
    ap.add_argument("--file-footer", action="store_true", help="frame files with the path after <file_sep> too (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--file-defs", action="store_true", help="with --file-footer: the footer also lists the names the file defines (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--file-index", action="store_true", help="with --file-footer: the footer indexes the names the file defines, `NAME` `path` per line (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--far-questions", action="store_true", help="questions about files at distances drawn uniformly over the row (data.Examples far)")
    ap.add_argument("--question-rate", type=float, default=0.85, help="chance of one more question after each file (geometric)")
    ap.add_argument("--snippet-rate", type=float, default=0.0, help="share of files in short rows cut to a window of lines (more files and questions per row)")
    a = ap.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if a.device == "cuda" else "gloo")
        if a.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            a.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    main0 = rank == 0

    def log(obj):
        if main0:
            print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)
    t0 = time.time()
    t_end = t0 + a.minutes * 60
    total = (a.total_minutes or a.minutes) * 60
    os.makedirs(a.work, exist_ok=True)
    corpus = data.load_corpus(a.js, limit_chars=a.corpus_mb * 2**20 if a.corpus_mb else None)
    log({k: len(v) for k, v in corpus.items()})
    if main0 and a.init and not os.path.exists(os.path.join(a.work, "tokenizer.json")):
        shutil.copy(os.path.join(a.init, "tokenizer.json"), os.path.join(a.work, "tokenizer.json"))
    if main0:
        build_tokenizer(corpus["train"], os.path.join(a.work, "tokenizer.json"))
    if world > 1:
        dist.barrier()
    tok = build_tokenizer(corpus["train"], os.path.join(a.work, "tokenizer.json"))
    seed = int(time.time()) + 1000 * rank
    framing = dict(footer=a.file_footer, defs=a.file_defs, index=a.file_index, far=a.far_questions, question_rate=a.question_rate, tail=a.tail_questions,
                   sub_root_rate=a.sub_root_rate, name_parts=a.name_parts,
                   answer_weight=4.0 * a.answer_weight, first_answer_weight=8.0 * a.answer_weight)
    ex = data.Examples(tok, corpus["train"], seed=seed, **framing)
    conf = dict(MODEL, **(dict(hidden_size=64, mamba_n_heads=2, shared_intermediate_size=128, num_hidden_layers=4,
                                layer_types=["mamba", "attention", "mamba", "attention"]) if a.small else {}))
    if a.layers:  # e.g. "mmamamma": m = Mamba-2, a = attention (a new model only; --init keeps its own)
        if set(a.layers) - {"m", "a"}:
            raise SystemExit(f"--layers takes m and a only, got {a.layers!r}")
        conf.update(num_hidden_layers=len(a.layers), layer_types=["mamba" if c == "m" else "attention" for c in a.layers])
    cfg = GraniteMoeHybridConfig(**conf, bos_token_id=None, eos_token_id=tok.token_to_id("<|endoftext|>"),
                                 pad_token_id=tok.token_to_id("<fim_pad>"))
    dev = a.device
    model = (GraniteMoeHybridForCausalLM.from_pretrained(a.init, dtype=torch.float32) if a.init else GraniteMoeHybridForCausalLM(cfg)).to(dev)
    log(f"params {sum(p.numel() for p in model.parameters())} ranks {world}")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    step, trained = 0, 0.0  # trained: seconds spent in training steps over the whole run (lr schedule)
    ckpt = os.path.join(a.work, "ckpt.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, trained = st["step"], st.get("trained", 0.0)
        log(f"resumed at step {step}")

    def save():
        if not main0:
            return
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "trained": trained,
                    "config": conf, "file_footer": a.file_footer, "file_defs": a.file_footer and a.file_defs, "file_index": a.file_footer and a.file_index}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        log({"saved": ckpt, "step": step, "trained_s": round(trained)})

    batches = Batches(ex, a.length, a.rows)
    # Short rows put more questions at short range, where the lookup is learned first; long rows teach distance.
    short = Batches(data.Examples(tok, corpus["train"], seed=seed + 1, snippet_rate=a.snippet_rate, **framing), a.short, a.rows * a.length // a.short) if a.short else None
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(dev).index] if dev.startswith("cuda") else None) if world > 1 else model
    fwd = torch.compile(ddp, dynamic=False) if a.compile else ddp
    model.train()
    last_save = time.time()
    seen = 0
    sync = torch.zeros(2, device=dev)
    t_prev = time.time()
    while True:
        # All ranks take the same decision (rank 0's clock and schedule), or DDP would wait forever.
        sync[0], sync[1] = trained, float(time.time() >= t_end or trained >= total)
        if world > 1:
            dist.broadcast(sync, 0)
        trained = sync[0].item()
        if sync[1].item():
            break
        ts = t_prev  # from the end of the last step: GPU time the CPU waited for counts too
        x, y, w, d = (short if short and step % a.long_every else batches).next(dev)
        lr = a.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, trained / total))))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(dev.split(":")[0], dtype=torch.bfloat16, enabled=dev.startswith("cuda")):
            logits = fwd(input_ids=x).logits
        flat = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        loss = (flat * w.reshape(-1)).sum() / w.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += x.numel() * world
        if step % 25 == 0 and main0:
            with torch.no_grad():
                ans = w.reshape(-1) > 4 * a.answer_weight  # first path tokens of the lookup answers
                hit = logits.reshape(-1, logits.shape[-1]).argmax(-1) == y.reshape(-1)
                acc = hit[ans].float().mean().item() if ans.any() else float("nan")
                exact, _ = answer_exact_match(hit, w.reshape(-1))
                exact_far, n_far = answer_exact_match(hit, w.reshape(-1), d.reshape(-1).to(hit.device) >= 2048)
                text = flat[w.reshape(-1) == 1].mean().item()
            log({"step": step, "len": x.shape[1], "loss": round(loss.item(), 4), "text_loss": round(text, 4),
                 "first_answer_acc": round(acc, 4), "answer_exact": round(exact, 4),
                 "answer_exact_far": round(exact_far, 4), "far_answers": n_far, "lr": round(lr, 6), "tokens": seen,
                 "tok_s": round(x.numel() * world / (time.time() - ts)), "elapsed": round(time.time() - t0)})
        step += 1
        if step > 3:  # the first steps are compile time, not training
            trained += time.time() - ts
        t_prev = time.time()
        if time.time() - last_save > a.save_every:
            save()
            last_save = time.time()
    save()
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
