"""Export the trained checkpoint as a Hugging Face folder the engine loads: config.json, the weights,
tokenizer.json, tokenizer_config.json, generation_config.json.

    python3 train/export.py --work /tmp/sw-train --out models/default --check

--quant q4 (the default for a model trained with --qat q4) or q8 writes the engine's quantized weights
(train/quant.py: each linear weight and the tied embedding as NAME U32 planes + NAME.scales F16, the rest bf16),
one model.safetensors or shards of at most 15 MB with transformers' index; q4 must fit the bundled model's
24 MiB. --quant none writes bf16 through transformers (perplexity comparisons, transformers parity); with
--dequantized, f32 weights that are exactly what the quantized model computes (d * q).

--check reads the written files back and asserts that every quantized tensor dequantizes bit for bit to the
fake-quantized weight QAT trained with, and that transformers' model loaded from them gives the QAT forward's
logits (1e-3).
"""
import argparse
import copy
import json
import os
import shutil

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import GenerationConfig, GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM

import quant

CHECK_TEXT = 'def load_config(path):\n    """Read the config."""\n    with open(path) as fh:\n        return json.load(fh)\n'


def quantized_entries(model, bits):
    """[(name, dtype, shape, raw bytes)] of every tensor of the model's files: quantized planes for
    quant.quantized_names(), bf16 for the rest."""
    qnames = set(quant.quantized_names(model))
    out = []
    for name, t in quant.model_tensors(model).items():
        if name in qnames:
            q, d = quant.quantize_groups(t, bits)
            planes = quant.pack(q.numpy().astype(np.int64), bits, t.shape[-1])
            scales = d.squeeze(-1).half().numpy()
            out.append((name, "U32", planes.shape, planes.tobytes()))
            out.append((name + ".scales", "F16", scales.shape, scales.tobytes()))
        else:
            out.append((name, "BF16", tuple(t.shape), t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()))
    return out


def check(model, out, bits, tok):
    """The files at `out` against the checkpoint's model (see the module docstring). Returns a summary."""
    qnames = quant.quantized_names(model)
    tensors = quant.model_tensors(model)
    arrays, dtypes, meta = quant.read_model(out)
    assert meta.get("sidewinder_quant") == f"q{bits}" and meta.get("sidewinder_quant_group") == str(quant.GROUP), meta
    for name in qnames:
        t = tensors[name]
        assert dtypes[name] == "U32" and dtypes[name + ".scales"] == "F16", (name, dtypes[name])
        got = quant.dequantize(arrays[name], arrays[name + ".scales"], bits, t.shape[-1])
        want = quant.fake_quant(t, bits).numpy()
        assert got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
            f"{name}: the stored planes do not dequantize to the fake-quantized weight"
    for name, t in tensors.items():
        if name not in qnames:
            want = t.detach().to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            assert dtypes[name] == "BF16" and np.array_equal(arrays[name], want), name
    # transformers' model from the files (planes dequantized, the rest bf16) against the QAT forward of the
    # checkpoint, its other tensors rounded to bf16 as stored
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, t in quant.model_tensors(ref).items():
            if name not in qnames:
                t.copy_(t.to(torch.bfloat16).float())
    quant.enable_qat(ref, bits)
    quant.set_qat(ref, True)
    loaded = GraniteMoeHybridForCausalLM(GraniteMoeHybridConfig.from_pretrained(out)).float().eval()
    quant.load_folder(loaded, out)
    full = copy.deepcopy(model)
    quant.enable_qat(full, bits)
    quant.set_qat(full, True)
    ids = torch.tensor([tok.encode(CHECK_TEXT, add_special_tokens=False).ids[:64]])
    with torch.no_grad():
        want = ref.eval()(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
        unrounded = full.eval()(input_ids=ids).logits
    diff = (got - want).abs().max().item()
    assert diff <= 1e-3, f"logits of the files differ from the QAT forward by {diff}"
    return {"quantized_tensors": len(qnames), "bit_exact": True, "logits_max_diff": diff,
            "logits_max_diff_vs_f32_other_tensors": (got - unrounded).abs().max().item(), "tokens": ids.shape[1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quant", choices=["none", *quant.BITS], default=None, help="default: the checkpoint's --qat (q4 for the base model), else none")
    ap.add_argument("--dequantized", action="store_true", help="with --quant none: f32 weights equal to what the checkpoint's --qat format computes")
    ap.add_argument("--check", action="store_true", help="read the files back and compare (see the module docstring)")
    a = ap.parse_args()
    st = torch.load(os.path.join(a.work, "ckpt.pt"), map_location="cpu")
    qat = st.get("qat", "none")
    a.quant = a.quant or qat
    tok = Tokenizer.from_file(os.path.join(a.work, "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    if os.path.exists(os.path.join(a.work, "config.json")):
        cfg = GraniteMoeHybridConfig.from_pretrained(a.work)
    else:  # checkpoints of train.py before issue 17
        cfg = GraniteMoeHybridConfig(**st["config"], bos_token_id=None, eos_token_id=eos, pad_token_id=tok.token_to_id("<fim_pad>"))
    model = GraniteMoeHybridForCausalLM(cfg).float()
    model.load_state_dict(st["model"])
    model.eval()
    os.makedirs(a.out, exist_ok=True)
    if a.quant != "none" and a.quant != qat:
        print(f"note: quantizing to {a.quant} a model trained with --qat {qat} (no quantization-aware training for it)", flush=True)
    summary = {}
    if a.quant == "none":
        if a.dequantized:
            if qat == "none":
                raise SystemExit("--dequantized needs a checkpoint trained with --qat (this one was not): export --quant q4 or q8 to quantize it")
            with torch.no_grad():
                tensors = quant.model_tensors(model)
                for name in quant.quantized_names(model):
                    tensors[name].copy_(quant.fake_quant(tensors[name], quant.bits_of(qat)))
        else:
            model = model.to(torch.bfloat16)
        for f in os.listdir(a.out):
            if f.startswith("model") and ".safetensors" in f:
                os.remove(os.path.join(a.out, f))
        # Shards of at most 15 MB: files come back from the GPU machine in pieces of at most 16 MiB.
        model.save_pretrained(a.out, safe_serialization=True, max_shard_size="15MB")
    else:
        bits = quant.bits_of(a.quant)
        meta = {"format": "pt", "sidewinder_quant": a.quant, "sidewinder_quant_group": str(quant.GROUP)}
        files = quant.write_model(a.out, quantized_entries(model, bits), meta, sum(p.numel() for p in model.parameters()))
        cfg.save_pretrained(a.out)
        summary["files"] = {f: os.path.getsize(os.path.join(a.out, f)) for f in files}
    GenerationConfig(eos_token_id=eos, pad_token_id=cfg.pad_token_id).save_pretrained(a.out)
    shutil.copy(os.path.join(a.work, "tokenizer.json"), os.path.join(a.out, "tokenizer.json"))
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as fh:
        json.dump({"eos_token": "<|endoftext|>", "pad_token": "<fim_pad>", "bos_token": None,
                   "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
                   **({"sidewinder_file_footer": True} if st.get("file_footer") else {}),
                   **({"sidewinder_file_defs": True} if st.get("file_defs") else {}),
                   **({"sidewinder_file_index": True} if st.get("file_index") else {}),
                   **({"sidewinder_question_kinds": True} if st.get("question_kinds") else {})}, fh, indent=2)
    size = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    weights = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out) if f.endswith(".safetensors"))
    over = weights > quant.BUDGET_BYTES
    if over and a.quant == "q4":
        raise SystemExit(f"{weights} bytes of q4 weights, over the bundled model's {quant.BUDGET_BYTES} (24 MiB): make the model smaller (train.py SIZES)")
    if over:
        print(f"note: {weights / 2**20:.1f} MiB of weights, over the bundled model's 24 MiB budget ({a.quant})", flush=True)
    if a.check and a.quant != "none":
        summary["check"] = check(model, a.out, quant.bits_of(a.quant), tok)
    print(json.dumps({"out": a.out, "step": st["step"], "quant": a.quant, "bytes": size, "weight_bytes": weights,
                      "budget_bytes": quant.BUDGET_BYTES, "params": sum(p.numel() for p in model.parameters()), **summary}))


if __name__ == "__main__":
    main()
