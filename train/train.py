"""Train Sidewinder's bundled default model on the GPU machine (transformers 5.17, torch 2.11).

A granitemoehybrid (Mamba-2 layers + a few attention layers, no positional encoding, like Granite 4.0-H) with a
16K byte-level BPE tokenizer (the bundled model's, models/default/tokenizer.json), on real source code
(train/data.py): next-token, FIM and five kinds of workspace questions, all inside 16K-token rows
(train/data.py Examples.row). --size base (the default) is the bundled model from issue 17 on: ~41.8M parameters,
trained quantization-aware (--qat q4, train/quant.py) for the engine's 4-bit weights; --size small is the 11.1M
model of runs 1-10 (bf16). One command runs for at most --minutes and saves checkpoints (weights + optimizer)
under --work; the next command resumes from it, and the learning-rate schedule follows --total-minutes of
training over all of them.

    python3 train/train.py --work /tmp/sw-train --compile --minutes 9 --total-minutes 18
    python3 train/export.py --work /tmp/sw-train --out models/default --check

On a machine with several GPUs, `torchrun --nproc_per_node N train/train.py ...` trains data-parallel (DDP):
each rank builds its own rows (its own seed), gradients are averaged, rank 0 prints and saves, and the ranks
agree on the schedule, on QAT and on when to stop at every step.
"""
import argparse
import array
import json
import math
import multiprocessing as mp
import os
import queue
import random
import shutil
import threading
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the data workers fork; a forked Rust pool would hang

import torch
import torch.distributed as dist
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM

import data
import quant

_SHARED = dict(
    vocab_size=16384, position_embedding_type="nope", num_key_value_heads=2, mamba_d_head=64, mamba_expand=2,
    mamba_n_groups=1, mamba_d_state=64, mamba_d_conv=4, mamba_chunk_size=64, num_local_experts=0,
    tie_word_embeddings=True, embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.125,
    logits_scaling=2.0, rms_norm_eps=1e-5, max_position_embeddings=131072,
)
SIZES = {
    # 41,763,376 parameters; q4 (all linear weights and the tied embedding): 23.6 MB of weights, inside the
    # 24 MiB budget (train/quant.py budget; export.py asserts it). 9 Mamba-2 layers (16 heads x 64, d_state 64)
    # and 3 attention layers (8 query heads x 64, 2 KV heads), hidden 512, MLP 896.
    "base": dict(_SHARED, hidden_size=512, num_hidden_layers=12, layer_types=["mamba", "mamba", "mamba", "attention"] * 3,
                 num_attention_heads=8, mamba_n_heads=16, shared_intermediate_size=896),
    # 11,114,640 parameters: 21.2 MiB in bf16, the bundled model of runs 1-10 (BENCHMARKS.md)
    "small": dict(_SHARED, hidden_size=256, num_hidden_layers=8,
                  layer_types=["mamba", "mamba", "mamba", "attention", "mamba", "mamba", "mamba", "attention"],
                  num_attention_heads=4, mamba_n_heads=8, shared_intermediate_size=640),
    # a few hundred thousand parameters besides the embedding: CPU smoke runs
    "tiny": dict(_SHARED, hidden_size=64, num_hidden_layers=4, layer_types=["mamba", "attention", "mamba", "attention"],
                 num_attention_heads=4, mamba_n_heads=2, shared_intermediate_size=128),
}
BASE_KINDS = "definition=0.3,usages=0.15,signature=0.2,summary=0.2,outline=0.15"
BASE_FIM = "span=0.1,line=0.2,infill=0.15,next_line=0.25,lines=0.15,block=0.15"
# What the flags left unset mean for each size: small keeps the recipe of runs 1-10 (definitions only, whole-line
# FIM on half the files, bf16), base adds the five question kinds, FIM cut as completions ask and QAT.
RECIPES = {
    "small": dict(qat="none", kinds="definition=1", fim_kinds="span=1", fim_rate=0.5, fim_weight=1.0,
                  fim_budget="0,0", fim_budget_rate=0.0, answer_cap=0),
    "base": dict(qat="q4", kinds=BASE_KINDS, fim_kinds=BASE_FIM, fim_rate=0.7, fim_weight=2.0,
                 fim_budget="512,2048", fim_budget_rate=0.5, answer_cap=32),
}
RECIPES["tiny"] = RECIPES["base"]
BUNDLED_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "default", "tokenizer.json")


def build_tokenizer(files, path, vocab_size):
    if os.path.exists(path):
        return Tokenizer.from_file(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=data.SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    sample = [t for _, _, t in random.Random(0).sample(files, min(len(files), 20000))]
    tok.train_from_iterator(sample, trainer)
    tok.save(path)
    return tok


class Batches:
    """Rows made off the training loop so the GPU never waits: by `workers` forked processes (each its own
    Examples and seed; rows are Python work, one thread made 16K-token rows slower than a GPU trains the 11M
    model), or with workers=0 by a background thread. `wait` accumulates the seconds next() blocked (logged as
    data_wait, the share of step time spent waiting for rows)."""

    def __init__(self, make, seed, length, rows, workers=0, depth=6):
        self.length, self.rows, self.wait = length, rows, 0.0
        if workers:
            ctx = mp.get_context("fork")
            self.q = ctx.Queue(maxsize=depth + workers)
            self.procs = [ctx.Process(target=self._work, args=(make, seed + 7919 * i), daemon=True) for i in range(workers)]
            for p in self.procs:
                p.start()
        else:
            self.q = queue.Queue(maxsize=depth)
            ex = make(seed)
            threading.Thread(target=self._fill, args=(ex,), daemon=True).start()

    def _batch(self, ex):
        rows = [ex.row(self.length) for _ in range(self.rows)]
        return tuple(array.array(t, [v for r in rows for v in r[i]]) for i, t in enumerate("ifib"))

    def _fill(self, ex):
        while True:
            self.q.put(self._batch(ex))

    def _work(self, make, seed):
        torch.set_num_threads(1)
        ex = make(seed)
        while True:
            self.q.put(self._batch(ex))

    def next(self, device):
        """(inputs, targets, target weights, target distances, target kinds: data.TOKEN_KINDS indices)."""
        t = time.time()
        ids, w, d, k = self.q.get()
        self.wait += time.time() - t
        shape = (self.rows, self.length + 1)
        x = torch.frombuffer(ids, dtype=torch.int32).view(shape).long()
        w = torch.frombuffer(w, dtype=torch.float32).view(shape)
        d = torch.frombuffer(d, dtype=torch.int32).view(shape)
        k = torch.frombuffer(k, dtype=torch.int8).view(shape)
        x, w, k = x.to(device, non_blocking=True), w.to(device, non_blocking=True), k.to(device, non_blocking=True)
        return x[:, :-1], x[:, 1:], w[:, 1:], d[:, 1:], k[:, 1:]


def span_exact_match(hit, mask):
    """Share of the spans of consecutive mask tokens (answers, FIM middles) whose every token (teacher-forced) is
    right. The first path token alone says little: in workspace rows every file shares the (renamed) package
    root, so it is a guess, not a lookup. Returns (share, spans)."""
    m = mask.int()
    m = torch.cat([m.new_zeros(1), m, m.new_zeros(1)])
    starts = torch.nonzero(m[1:] > m[:-1]).flatten()
    ends = torch.nonzero(m[1:] < m[:-1]).flatten()
    spans = [(a, b) for a, b in zip(starts.tolist(), ends.tolist()) if b > a]
    if not spans:
        return float("nan"), 0
    return sum(bool(hit[a:b].all()) for a, b in spans) / len(spans), len(spans)


def config_of(conf, tok):
    return GraniteMoeHybridConfig(**conf, bos_token_id=None, eos_token_id=tok.token_to_id("<|endoftext|>"),
                                  pad_token_id=tok.token_to_id("<fim_pad>"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, default=8, help="wall-clock budget of this command, setup included")
    ap.add_argument("--total-minutes", type=float, default=None, help="training time of the whole run (lr schedule); default --minutes")
    ap.add_argument("--size", choices=sorted(SIZES), default="base", help="shape of a new model and the defaults of the recipe flags below (RECIPES)")
    ap.add_argument("--js", default=os.path.join(os.path.dirname(__file__), "js_corpus.jsonl.xz"))
    ap.add_argument("--length", type=int, default=16384, help="row length in tokens")
    ap.add_argument("--rows", type=int, default=4, help="rows per batch")
    ap.add_argument("--short", type=int, default=4096, help="batches between the long ones have rows of this length (same token count); 0: off")
    ap.add_argument("--long-every", type=int, default=2, help="with --short: one batch in this many has rows of --length")
    ap.add_argument("--tail-questions", type=float, default=0.0, help="share of each row kept for a closing block of questions (data.Examples tail)")
    ap.add_argument("--sub-root-rate", type=float, default=0.0, help="share of workspace rows read from inside the package (data.Examples)")
    ap.add_argument("--name-parts", action="store_true", help="made-up paths also use names the code defines (data.Examples)")
    ap.add_argument("--answer-weight", type=float, default=1.0, help="scales the loss weight of answers (data.Examples)")
    ap.add_argument("--answer-cap", type=int, default=None, help="answers longer than this many tokens get the weight of this many in all (data.Examples); 0: off")
    ap.add_argument("--kinds", default=None, help=f"question kinds and their shares, e.g. {BASE_KINDS} (data.KINDS)")
    ap.add_argument("--fim-rate", type=float, default=None, help="share of files made FIM examples")
    ap.add_argument("--fim-kinds", default=None, help=f"FIM middles and their shares, e.g. {BASE_FIM} (data.fim_cut)")
    ap.add_argument("--fim-weight", type=float, default=None, help="loss weight of a FIM middle's tokens (text: 1)")
    ap.add_argument("--fim-budget", default=None, help="LO,HI: FIM prompts cut to a token budget drawn in [LO, HI], as the engine cuts them (fim.ts); 0,0: whole files")
    ap.add_argument("--fim-budget-rate", type=float, default=None, help="share of FIM examples cut to --fim-budget")
    ap.add_argument("--qat", choices=["none", *quant.BITS], default=None, help="quantization-aware training in the engine's format (train/quant.py); base: q4")
    ap.add_argument("--qat-start", type=float, default=None, help="share of the run's training time before QAT starts; default 0.3, 0 with --init")
    ap.add_argument("--qat-gap-every", type=int, default=500, help="about every N steps with QAT on, rank 0 also logs the loss of a short batch without it; 0: never")
    ap.add_argument("--init", default=None, help="start from the weights of an exported model folder (train/export.py: bf16, q4 or q8)")
    ap.add_argument("--tokenizer", default=BUNDLED_TOKENIZER, help="tokenizer.json of a new model (default the bundled model's); 'new' trains one")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--save-every", type=float, default=240, help="seconds between checkpoints")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--data-workers", type=int, default=-1, help="processes making rows (-1: from the CPU count and ranks; 0: one thread)")
    ap.add_argument("--corpus-mb", type=float, default=None, help="read at most this much Python source (smoke runs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", default=None, help="layer pattern of a new model, m = Mamba-2, a = attention (default: the size's)")
    ap.add_argument("--file-footer", action="store_true", help="frame files with the path after <file_sep> too (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--file-defs", action="store_true", help="with --file-footer: the footer also lists the names the file defines (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--file-index", action="store_true", help="with --file-footer: the footer indexes the names the file defines, `NAME` `path` per line (src/workspace/frame.ts); export marks the model so")
    ap.add_argument("--far-questions", action="store_true", help="questions about files at distances drawn uniformly over the row (data.Examples far)")
    ap.add_argument("--question-rate", type=float, default=0.85, help="chance of one more question after each file (geometric)")
    ap.add_argument("--snippet-rate", type=float, default=0.0, help="share of files in short rows cut to a window of lines (more files and questions per row)")
    a = ap.parse_args()
    for k, v in RECIPES[a.size].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.qat_start is None:
        a.qat_start = 0.0 if a.init else 0.3
    kinds = data.parse_mix(a.kinds, data.KINDS)
    fim_kinds = data.parse_mix(a.fim_kinds, data.FIM_KINDS)
    fim_budget = tuple(int(x) for x in a.fim_budget.split(","))
    qat_bits = quant.BITS.get(a.qat)
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
    ckpt = os.path.join(a.work, "ckpt.pt")
    work_tok, work_cfg = os.path.join(a.work, "tokenizer.json"), os.path.join(a.work, "config.json")
    resuming = os.path.exists(ckpt) and os.path.exists(work_cfg)
    # The tokenizer: the run's own when resuming, else the --init model's, else --tokenizer, else a new one.
    if main0 and not os.path.exists(work_tok):
        src = os.path.join(a.init, "tokenizer.json") if a.init else a.tokenizer if a.tokenizer != "new" else None
        if src:
            shutil.copy(src, work_tok)
    conf = dict(SIZES[a.size])
    if a.layers:  # e.g. "mmamamma": m = Mamba-2, a = attention (a new model only; --init keeps its own)
        if set(a.layers) - {"m", "a"}:
            raise SystemExit(f"--layers takes m and a only, got {a.layers!r}")
        conf.update(num_hidden_layers=len(a.layers), layer_types=["mamba" if c == "m" else "attention" for c in a.layers])
    if main0:
        build_tokenizer(corpus["train"], work_tok, conf["vocab_size"])
    if world > 1:
        dist.barrier()
    tok = build_tokenizer(corpus["train"], work_tok, conf["vocab_size"])
    seed = int(time.time()) + 1000 * rank
    framing = dict(footer=a.file_footer, defs=a.file_defs, index=a.file_index, far=a.far_questions, question_rate=a.question_rate, tail=a.tail_questions,
                   sub_root_rate=a.sub_root_rate, name_parts=a.name_parts,
                   answer_weight=4.0 * a.answer_weight, first_answer_weight=8.0 * a.answer_weight, answer_cap=a.answer_cap,
                   kinds=kinds, fim_rate=a.fim_rate, fim_kinds=fim_kinds, fim_weight=a.fim_weight, fim_budget=fim_budget,
                   fim_budget_rate=a.fim_budget_rate)
    dev = a.device
    # The model's shape: the run's own config when resuming, else the --init folder's, else the size's.
    if resuming:
        cfg = GraniteMoeHybridConfig.from_pretrained(a.work)
    elif a.init:
        cfg = GraniteMoeHybridConfig.from_pretrained(a.init)
    else:
        cfg = config_of(conf, tok)
    model = GraniteMoeHybridForCausalLM(cfg).float()
    if a.init and not resuming:
        quant.load_folder(model, a.init)
    model = model.to(dev)
    if main0 and not resuming:
        cfg.save_pretrained(a.work)  # export.py builds the model from it (not rewritten while other ranks read it)
    shapes = {n: tuple(t.shape) for n, t in quant.model_tensors(model).items()}
    size = quant.budget(shapes, quant.quantized_names(model))
    if not (resuming or a.init) and quant.model_shapes(conf) != shapes:
        log({"warning": "train/quant.py model_shapes differs from the model: its budget is off",
             "differ": sorted(set(quant.model_shapes(conf).items()) ^ set(shapes.items()))[:6]})
    log({"params": size["params"], "quantized_params": size["quantized_params"], "bf16_bytes": size["bf16_bytes"],
         "q4_bytes": size["q4_bytes"], "q8_bytes": size["q8_bytes"], "q4_budget_bytes": quant.BUDGET_BYTES,
         "ranks": world, "attention": getattr(cfg, "_attn_implementation", None), "qat": a.qat, "qat_start": a.qat_start,
         "kinds": kinds, "fim_kinds": fim_kinds})
    if qat_bits:
        quant.enable_qat(model, qat_bits)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    step, trained = 0, 0.0  # trained: seconds spent in training steps over the whole run (lr schedule)
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, trained = st["step"], st.get("trained", 0.0)
        log(f"resumed at step {step}")
    question_kinds = any(k != "definition" for k in kinds)

    def save():
        if not main0:
            return
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "trained": trained,
                    "config": conf, "size": a.size, "qat": a.qat, "question_kinds": question_kinds,
                    "file_footer": a.file_footer, "file_defs": a.file_footer and a.file_defs, "file_index": a.file_footer and a.file_index}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        log({"saved": ckpt, "step": step, "trained_s": round(trained)})

    # Forked workers build their own tokenizer (a Rust object is not shared across fork) and Examples.
    def make(snippets):
        return lambda s: data.Examples(Tokenizer.from_file(work_tok), corpus["train"], seed=s, snippet_rate=snippets, **framing)
    workers = a.data_workers if a.data_workers >= 0 else max(0, min(12, (os.cpu_count() or 2) // world - 2))
    long_workers = (workers + a.long_every - 1) // a.long_every if a.short else workers
    batches = Batches(make(0.0), seed, a.length, a.rows, long_workers)
    # Short rows put more questions at short range, where the lookup is learned first; long rows teach distance.
    short = Batches(make(a.snippet_rate), seed + 1, a.short, a.rows * a.length // a.short, workers - long_workers) if a.short else None
    log({"data_workers": workers})
    # broadcast_buffers off: the only buffers are QAT's switches, set alike on every rank
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(dev).index] if dev.startswith("cuda") else None,
                                                    broadcast_buffers=False) if world > 1 else model
    fwd = torch.compile(ddp, dynamic=False) if a.compile else ddp
    model.train()
    last_save = time.time()
    seen = 0
    sync = torch.zeros(2, device=dev)
    t_prev = time.time()
    t_log, waited = time.time(), 0.0  # data_wait: share of the time since the last log spent waiting for rows
    qat_on = None
    gap_due = step  # the next step at which to log loss_without_qat
    autocast = dict(device_type=dev.split(":")[0], dtype=torch.bfloat16, enabled=dev.startswith("cuda"))
    while True:
        # All ranks take the same decision (rank 0's clock and schedule), or DDP would wait forever.
        sync[0], sync[1] = trained, float(time.time() >= t_end or trained >= total)
        if world > 1:
            dist.broadcast(sync, 0)
        trained = sync[0].item()
        if sync[1].item():
            break
        on = bool(qat_bits) and trained >= a.qat_start * total
        if on != qat_on:
            if qat_bits:
                quant.set_qat(model, on)
            if qat_on is not None or on:
                log({"step": step, "qat": a.qat if on else "off"})
            qat_on = on
        ts = t_prev  # from the end of the last step: GPU time the CPU waited for counts too
        x, y, w, d, k = (short if short and step % a.long_every else batches).next(dev)
        lr = a.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, trained / total))))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(**autocast):
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
                kk, ww = k.reshape(-1), w.reshape(-1)
                hit = logits.reshape(-1, logits.shape[-1]).argmax(-1) == y.reshape(-1)
                first = (kk == data.TOKEN_KINDS.index("definition")) & (ww > 4 * a.answer_weight)  # first path tokens of definitions
                acc = hit[first].float().mean().item() if first.any() else float("nan")
                answers = (kk > 0) & (kk < data.TOKEN_KINDS.index("fim"))
                exact, _ = span_exact_match(hit, answers)
                exact_far, n_far = span_exact_match(hit, answers & (d.reshape(-1).to(hit.device) >= 2048))
                per_kind = {}
                for i, name in enumerate(data.TOKEN_KINDS[1:], start=1):
                    share, n = span_exact_match(hit, kk == i)
                    if n:
                        per_kind[name] = [round(share, 3), n]
                fim = kk == data.TOKEN_KINDS.index("fim")
                text = flat[(kk == 0) & (ww == 1)].mean().item()
                fim_loss = flat[fim].mean().item() if fim.any() else float("nan")
            rec = {"step": step, "len": x.shape[1], "loss": round(loss.item(), 4), "text_loss": round(text, 4), "fim_loss": round(fim_loss, 4),
                   "first_answer_acc": round(acc, 4), "answer_exact": round(exact, 4), "answer_exact_far": round(exact_far, 4),
                   "far_answers": n_far, "exact": per_kind, "qat": qat_on, "lr": round(lr, 6), "tokens": seen,
                   "tok_s": round(x.numel() * world / (time.time() - ts)), "gpus": world, "elapsed": round(time.time() - t0)}
            wait = batches.wait + (short.wait if short else 0.0)
            rec["data_wait"] = round((wait - waited) / max(1e-9, time.time() - t_log), 3)
            t_log, waited = time.time(), wait
            if qat_on and a.qat_gap_every and step >= gap_due and x.shape[1] <= 4096:
                rec["loss_without_qat"] = loss_without_qat(model, x, y, w, autocast)
                gap_due = step + a.qat_gap_every
            log(rec)
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


def loss_without_qat(model, x, y, w, autocast):
    """The batch's loss with the full-precision weights (eager, no gradient): the QAT loss minus this is what
    4-bit costs. Rank 0 alone, on the bare model (no DDP collective)."""
    try:
        quant.set_qat(model, False)
        with torch.no_grad(), torch.autocast(**autocast):
            logits = model(input_ids=x).logits
        flat = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        return round(((flat * w.reshape(-1)).sum() / w.sum().clamp(min=1)).item(), 4)
    except torch.cuda.OutOfMemoryError:
        return "out of memory"
    finally:
        quant.set_qat(model, True)


if __name__ == "__main__":
    main()
