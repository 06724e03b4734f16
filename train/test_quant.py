"""Checks of train/quant.py against the engine's format (src/engine/quant.ts): the packing of the planes, the files
(safetensors, shards), and, with torch, the fake quantization against a plain-Python transcription of quant.ts's
quantize() (f64 arithmetic, Math.round, f32ToF16), ties included:

    python3 train/test_quant.py
"""
import json
import math
import os
import random
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant  # noqa: E402


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def js_round(x):
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r  # Math.round: the nearest integer, halves toward +inf


def reference_quantize(w, bits):
    """quant.ts quantize() line by line: w [[float]] (f32 values) -> (q [[int]] per row, padded), scales [[float]]."""
    qmax, qmin = quant.QMAX[bits], quant.QMIN[bits]
    qs, ds = [], []
    for row in w:
        groups = -(-len(row) // 32)
        qrow, drow = [], []
        for g in range(groups):
            part = row[32 * g:32 * g + 32]
            d = f16(f32(max(abs(v) for v in part) / qmax))  # f32ToF16(amax / qmax): to f32, then to f16
            inv = 1 / d if d > 0 else 0
            qrow += [max(qmin, min(qmax, js_round(v * inv))) for v in part] + [0] * (32 - len(part))
            drow.append(d)
        qs.append(qrow)
        ds.append(drow)
    return qs, ds


def check_packing():
    rng = np.random.default_rng(0)
    for bits in (4, 8):
        q = rng.integers(quant.QMIN[bits] + (1 if bits == 4 else 0), quant.QMAX[bits] + 1, size=(3, 2, 32))
        data = quant.pack(q, bits, 64)
        assert data.shape == (3, 2, quant.WORDS_PER_GROUP[bits]) and data.dtype == np.uint32
        assert np.array_equal(quant.unpack(data, bits), q)
        w = int(data[1, 1, 2])
        if bits == 4:  # word 2 of a group holds weights 16..23, weight j in bits 4 * (j % 8), as q + 8
            assert all((w >> (4 * j)) & 15 == q[1, 1, 16 + j] + 8 for j in range(8))
        else:  # word 2 holds weights 8..11, byte j % 4 = q as int8
            assert all(((w >> (8 * j)) & 255) == (int(q[1, 1, 8 + j]) & 255) for j in range(4))
    # a row's last group is padded with zero bits (quant.ts leaves them 0; a stored 0 is not q = 0 in q4)
    q = np.zeros((1, 2, 32), dtype=np.int64)
    data = quant.pack(q, 4, 40)
    assert data[0, 0].tolist() == [0x88888888] * 4 and data[0, 1].tolist() == [0x88888888, 0, 0, 0]
    scales = np.array([[0.5, 0.25]], dtype=np.float16)
    assert quant.dequantize(data, scales, 4, 40).shape == (1, 40) and not quant.dequantize(data, scales, 4, 40).any()


def check_files():
    rng = np.random.default_rng(1)
    entries = []
    for i in range(6):
        a = rng.integers(0, 2**32, size=(64, 4, 4), dtype=np.uint32)
        s = rng.standard_normal((64, 4)).astype(np.float16)
        entries += [(f"w{i}", "U32", a.shape, a.tobytes()), (f"w{i}.scales", "F16", s.shape, s.tobytes())]
    b = rng.integers(0, 2**16, size=(7,), dtype=np.uint16)
    entries.append(("norm", "BF16", b.shape, b.tobytes()))
    meta = {"format": "pt", "sidewinder_quant": "q4", "sidewinder_quant_group": "32"}
    with tempfile.TemporaryDirectory() as d:
        assert quant.write_model(d, entries, meta, 99) == ["model.safetensors"]
        raw = open(os.path.join(d, "model.safetensors"), "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        head = json.loads(raw[8:8 + n])
        assert n % 8 == 0 and head["__metadata__"] == meta and len(raw) == 8 + n + sum(len(e[3]) for e in entries)
        assert head["w0"] == {"dtype": "U32", "shape": [64, 4, 4], "data_offsets": [0, 4096]}
        files = quant.write_model(d, entries, meta, 99, max_file=6000)  # a plane and its scales: 4,608 bytes
        assert files == [f"model-{i:05d}-of-00006.safetensors" for i in range(1, 7)], files  # the norm joins the last
        assert not os.path.exists(os.path.join(d, "model.safetensors"))  # the single file of before is gone
        index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
        assert index["metadata"] == {"total_parameters": 99, "total_size": sum(len(e[3]) for e in entries)}
        assert all(index["weight_map"][f"w{i}"] == index["weight_map"][f"w{i}.scales"] for i in range(6))
        arrays, dtypes, got = quant.read_model(d)
        assert got == meta and dtypes["w3"] == "U32" and dtypes["norm"] == "BF16"
        assert all(np.array_equal(arrays[e[0]].view(np.uint8).reshape(-1), np.frombuffer(e[3], np.uint8)) for e in entries)
        w = quant.folder_weights(d, {"w2": (64, 128), "norm": (7,)})
        assert np.array_equal(w["w2"], quant.dequantize(arrays["w2"], arrays["w2.scales"], 4, 128))
        assert np.array_equal(w["norm"], (b.astype(np.uint32) << 16).view(np.float32))


def check_budget():
    conf = dict(vocab_size=16384, hidden_size=512, layer_types=["mamba", "mamba", "mamba", "attention"] * 3,
                num_attention_heads=8, num_key_value_heads=2, mamba_n_heads=16, mamba_d_head=64, mamba_expand=2,
                mamba_n_groups=1, mamba_d_state=64, mamba_d_conv=4, shared_intermediate_size=896, num_local_experts=0,
                tie_word_embeddings=True)
    b = quant.budget(quant.model_shapes(conf))
    assert b["params"] == 41_763_376 and b["q4_bytes"] == 23_598_688 and b["q4_bytes"] < quant.BUDGET_BYTES, b


def check_fake_quant():
    import torch
    rng = random.Random(2)
    rows = [[f32(rng.gauss(0, 0.02)) for _ in range(72)] for _ in range(6)]  # K = 72: a padded last group
    d0 = 3 / 256  # exact in f16; 1 / d0 is not exact in f64, yet w * (1 / d0) lands on halves: Math.round decides
    rows.append([f32(7 * d0)] + [f32((k + 0.5) * d0) for k in range(-7, 7)] * 4 + [0.0] * 15)
    rows.append([f32(rng.gauss(0, 1e-6)) for _ in range(72)])  # subnormal f16 scales
    rows.append([0.0] * 72)
    w = torch.tensor(rows, dtype=torch.float32)
    x = torch.tensor([v for r in rows for v in r] + [65504.0, 65520.0, 2**-25, 2**-24 * 1.5], dtype=torch.float32).abs()
    assert torch.equal(quant.round_f16(x).view(torch.int32), x.half().float().view(torch.int32))
    for bits in (4, 8):
        qs, ds = reference_quantize(rows, bits)
        q, d = quant.quantize_groups(w, bits)
        assert q.reshape(len(rows), -1).tolist() == qs and d.reshape(len(rows), -1).tolist() == ds, bits
        fq = quant.fake_quant(w, bits)
        want = [[f32(ds[r][k // 32] * qs[r][k]) for k in range(72)] for r in range(len(rows))]
        assert fq.tolist() == want and fq.shape == w.shape
        planes = quant.pack(q.numpy().astype(np.int64), bits, 72)
        assert np.array_equal(quant.dequantize(planes, d.squeeze(-1).half().numpy(), bits, 72), fq.numpy())
        if bits == 4:
            assert qs[6][1:15] == list(range(-6, 8)), qs[6][1:15]  # halves up: -6.5 -> -6, 6.5 -> 7


def main():
    check_packing()
    check_files()
    check_budget()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("fake quantization: skipped (no torch)")
    else:
        check_fake_quant()
    print("train/test_quant.py: all checks passed")


if __name__ == "__main__":
    main()
