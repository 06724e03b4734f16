"""The engine's group-wise quantized weights (src/engine/quant.ts) on the training side: fake quantization for
quantization-aware training (QAT), the weights' files (safetensors, written and read here), and the budget.

Format (quant.ts): a weight [..., N, K] is quantized row by row in groups of GROUP (32) consecutive weights along
K, the last group zero-padded, with one scale per group d = f16(max|w| / qmax) (round to nearest even) and
q = clamp(round(w / d), qmin, qmax), round = JS Math.round (halves up, toward +inf), q = 0 when d = 0:
    q8: qmax 127, qmin -127;  q4: qmax 7, qmin -8 (symmetric, so q in [-7, 7])
Stored under the tensor's own name (safetensors):
    NAME         U32 [..., N, G, WPG], G = ceil(K / 32); q4: WPG 4, word w of a group holds weights 8w..8w+7,
                 weight j in bits 4 * (j % 8) as q + 8; q8: WPG 8, word w holds weights 4w..4w+3, byte j % 4 = q
                 as int8; the padding of a row's last group is zero bits
    NAME.scales  F16 [..., N, G]
and the file's __metadata__ says {"sidewinder_quant": "q4", "sidewinder_quant_group": "32"}. What QAT quantizes
and what the export stores quantized is one list (quantized_names): the weights of every nn.Linear (the tied
lm_head is the embedding) and nn.Embedding of the model, and of its experts; norms, conv, A_log, D, dt_bias and
biases stay bf16.

The fake-quantized weight is exactly (bit for bit) what the engine computes from the stored planes: d * q in f32.
The rounding is done in f64 as JS does it (w * (1 / d), then Math.round), with no add after the product that a
compiler could fuse into an FMA, so the compiled training forward rounds the same way.
"""
import json
import math
import os
import struct

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # the format and the files (numpy) work without torch
    torch = nn = F = None

GROUP = 32
QMAX = {4: 7, 8: 127}
QMIN = {4: -8, 8: -127}
WORDS_PER_GROUP = {4: 4, 8: 8}
BYTES_PER_GROUP = {b: 4 * w + 2 for b, w in WORDS_PER_GROUP.items()}  # data words and one f16 scale
BITS = {"q4": 4, "q8": 8}
BUDGET_BYTES = 24 * 2**20  # the bundled model's weights (.safetensors files, headers included)
MAX_FILE_BYTES = 15_000_000  # files come back from the GPU machine in pieces of at most 16 MiB
FIX = "train/export.py --quant q4|q8|none"


def bits_of(quant):
    if quant not in BITS:
        raise ValueError(f"quantization {quant!r}: one of {', '.join(BITS)} (or none)")
    return BITS[quant]


# ---- the format, in numpy (export, loading) ----

def pack(q, bits, k):
    """q: int [..., N, G, 32] (padding included) -> the data plane u32 [..., N, G, WPG]; the padding past k is 0."""
    q = np.asarray(q, dtype=np.int64)
    stored = (q + 8) if bits == 4 else (q & 0xFF)
    stored = stored.astype(np.uint32)
    pad = q.shape[-2] * GROUP - k
    if pad:
        flat = stored.reshape(*q.shape[:-2], -1)
        flat[..., k:] = 0
        stored = flat.reshape(q.shape)
    per = 32 // bits
    stored = stored.reshape(*q.shape[:-1], WORDS_PER_GROUP[bits], per)
    shifts = (np.arange(per, dtype=np.uint32) * bits).astype(np.uint32)
    return np.bitwise_or.reduce(stored << shifts, axis=-1).astype(np.uint32)


def unpack(data, bits):
    """The data plane u32 [..., N, G, WPG] -> q int32 [..., N, G, 32] (as quant.ts dequantizeGroup reads it)."""
    per = 32 // bits
    shifts = (np.arange(per, dtype=np.uint32) * bits).astype(np.uint32)
    v = (data[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    v = v.reshape(*data.shape[:-1], GROUP).astype(np.int32)
    return v - 8 if bits == 4 else (v ^ 0x80) - 0x80


def dequantize(data, scales, bits, k):
    """Planes -> f32 [..., N, k]: d * q, as the engine's kernels compute it."""
    q = unpack(data, bits).astype(np.float32)
    d = scales.astype(np.float32)[..., None]
    w = (q * d).reshape(*data.shape[:-2], -1)
    return np.ascontiguousarray(w[..., :k])


# ---- fake quantization, in torch (training, export) ----

def round_f16(x):
    """x (f32, >= 0) rounded to the nearest f16 value (ties to even), as f32: the scale quant.ts f32ToF16 stores.
    In bits, not with .half().float(): torch.compile may drop an f32 -> f16 -> f32 round trip inside a fused
    kernel (pytorch/pytorch#179561)."""
    b = x.view(torch.int32)
    # a normal f16: the f32 mantissa rounded to 10 bits, to nearest even (a carry moves to the exponent)
    normal = (b + 0x0FFF + ((b >> 13) & 1)) & ~0x1FFF
    normal = torch.where(normal > 0x477FE000, torch.full_like(normal, 0x7F800000), normal)  # past 65504: inf
    # below 2^-14, a subnormal f16: a multiple of 2^-24 (the scalings by powers of two are exact)
    sub = torch.round(x * 2.0**24) * 2.0**-24
    return torch.where(b < (113 << 23), sub, normal.view(torch.float32))


def quantize_groups(w, bits):
    """w [..., N, K] -> (q f64 [..., N, G, 32], d f32 [..., N, G, 1], the f16 scale as f32), quant.ts's quantize()."""
    k = w.shape[-1]
    g = -(-k // GROUP)
    x = w.detach().float()
    if g * GROUP != k:
        x = F.pad(x, (0, g * GROUP - k))
    x = x.reshape(*x.shape[:-1], g, GROUP)
    amax = x.abs().amax(-1, keepdim=True)
    # f32ToF16(amax / qmax): the f64 quotient rounded to f32, then to f16 (nearest even), as quant.ts does
    d = round_f16((amax.double() / QMAX[bits]).float())
    dd = d.double()
    inv = torch.where(dd > 0, 1.0 / torch.where(dd > 0, dd, torch.ones_like(dd)), torch.zeros_like(dd))
    t = x.double() * inv
    f = torch.floor(t)
    q = f + (t >= f + 0.5).double()  # Math.round: halves toward +inf (compare, not add, after the product)
    return q.clamp(QMIN[bits], QMAX[bits]), d


def fake_quant(w, bits):
    """The weights the engine computes from w's planes: d * q, f32, w's shape. No gradient (see qat_weight)."""
    q, d = quantize_groups(w, bits)
    out = (q.float() * d).reshape(*w.shape[:-1], -1)
    return out[..., :w.shape[-1]]


def qat_weight(w, bits, on):
    """The weight a QAT forward uses: fake_quant(w) where on (a bool tensor), else w; the gradient goes straight
    through to w (straight-through estimator). The value is exactly fake_quant(w): x + (w - w) is x."""
    x = torch.where(on, fake_quant(w, bits), w.detach())
    return x + (w - w.detach())


def _qat_classes():
    class QatLinear(nn.Linear):
        def forward(self, x):
            return F.linear(x, qat_weight(self.weight, self.qat_bits, self.qat_on > 0), self.bias)

    class QatEmbedding(nn.Embedding):
        def forward(self, x):
            w = qat_weight(self.weight, self.qat_bits, self.qat_on > 0)
            return F.embedding(x, w, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)

    return QatLinear, QatEmbedding


_CLASSES = None


def _is_experts(m):
    return type(m).__name__.endswith("ParallelExperts")  # transformers' GraniteMoeHybridParallelExperts


def quantized_names(model):
    """Names (state_dict) of the weights stored quantized and fake-quantized in training: every nn.Linear and
    nn.Embedding weight, and the experts' [E, N, K] weights. A tied lm_head appears once, as the embedding."""
    out, seen = [], set()
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Embedding)) or _is_experts(m):
            if id(m.weight) not in seen:
                seen.add(id(m.weight))
                out.append(f"{name}.weight" if name else "weight")
    return out


def enable_qat(model, bits):
    """Makes every module of quantized_names() use qat_weight() in its forward (compatible with DDP and
    torch.compile: the parameters and the state_dict are unchanged, the switch is a non-persistent buffer), off
    until set_qat(model, True). The tied embedding is fake-quantized by both of its users from the same
    parameter, so both see the same table. Returns the names."""
    global _CLASSES
    _CLASSES = _CLASSES or _qat_classes()
    QatLinear, QatEmbedding = _CLASSES
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            m.__class__ = QatLinear
        elif isinstance(m, nn.Embedding):
            m.__class__ = QatEmbedding
        elif _is_experts(m):
            m.__class__ = _qat_experts(type(m))
        else:
            continue
        m.qat_bits = bits
        m.register_buffer("qat_on", torch.zeros((), device=m.weight.device), persistent=False)
    _no_fused_mamba()
    return quantized_names(model)


def _qat_experts(base):
    class QatExperts(base):
        def forward(self, inputs, expert_size):  # as transformers' GraniteMoeHybridParallelExperts
            w = qat_weight(self.weight, self.qat_bits, self.qat_on > 0)
            return torch.cat([F.linear(x, w[i]) for i, x in enumerate(inputs.split(expert_size, dim=0))], dim=0)

    return QatExperts


def _no_fused_mamba():
    """transformers' fused Mamba kernels (mamba_ssm, when installed) read out_proj.weight themselves, past the
    module's forward and so past QAT: keep the PyTorch path, which calls the modules."""
    try:
        from transformers.models.granitemoehybrid import modeling_granitemoehybrid as mod
    except ImportError:
        return
    if getattr(mod, "is_fast_path_available", False):
        print("quant: mamba_ssm kernels found; QAT uses transformers' PyTorch Mamba path instead", flush=True)
        mod.is_fast_path_available = False


def set_qat(model, on):
    for m in model.modules():
        if hasattr(m, "qat_on"):
            m.qat_on.fill_(1.0 if on else 0.0)


# ---- the budget ----

def model_shapes(conf):
    """name -> shape of every parameter of a GraniteMoeHybridForCausalLM with this config (the MODEL dict of
    train.py), computed here so the budget is known without building the model (train.py checks it against the
    model). Tied embeddings: no lm_head.weight."""
    h, v = conf["hidden_size"], conf["vocab_size"]
    out = {"model.embed_tokens.weight": (v, h)}
    inner = int(conf["mamba_expand"] * h)
    gn = conf["mamba_n_groups"] * conf["mamba_d_state"]
    nh = conf["mamba_n_heads"]
    hd = conf.get("head_dim") or h // conf["num_attention_heads"]
    for i, kind in enumerate(conf["layer_types"]):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
        if kind in ("mamba", "linear_attention"):
            conv = inner + 2 * gn
            out[p + "mamba.in_proj.weight"] = (inner + conv + nh, h)
            out[p + "mamba.conv1d.weight"] = (conv, 1, conf["mamba_d_conv"])
            out[p + "mamba.conv1d.bias"] = (conv,)
            out[p + "mamba.dt_bias"] = (nh,)
            out[p + "mamba.A_log"] = (nh,)
            out[p + "mamba.D"] = (nh,)
            out[p + "mamba.norm.weight"] = (inner,)
            out[p + "mamba.out_proj.weight"] = (h, inner)
        else:
            q, kv = conf["num_attention_heads"] * hd, conf["num_key_value_heads"] * hd
            out[p + "self_attn.q_proj.weight"] = (q, h)
            out[p + "self_attn.k_proj.weight"] = (kv, h)
            out[p + "self_attn.v_proj.weight"] = (kv, h)
            out[p + "self_attn.o_proj.weight"] = (h, q)
        i_ = conf["shared_intermediate_size"]
        out[p + "shared_mlp.input_linear.weight"] = (2 * i_, h)
        out[p + "shared_mlp.output_linear.weight"] = (h, i_)
        if conf.get("num_local_experts", 0) > 0:
            e, ie = conf["num_local_experts"], conf["intermediate_size"]
            out[p + "block_sparse_moe.input_linear.weight"] = (e, 2 * ie, h)
            out[p + "block_sparse_moe.output_linear.weight"] = (e, h, ie)
            out[p + "block_sparse_moe.router.layer.weight"] = (e, h)
    out["model.norm.weight"] = (h,)
    if not conf.get("tie_word_embeddings", True):
        out["lm_head.weight"] = (v, h)
    return out


def is_quantized_shape(name, shape):
    """The rule quantized_names() follows, by name: the weights of Linear, Embedding and expert modules."""
    return name.endswith(".weight") and len(shape) >= 2 and ".conv1d." not in name


def budget(shapes, quantized=None):
    """Parameter count and weight bytes (data only, headers not included) of the model in each format."""
    quantized = set(quantized) if quantized is not None else {n for n, s in shapes.items() if is_quantized_shape(n, s)}
    numel = {n: math.prod(s) for n, s in shapes.items()}
    groups = sum(math.prod(s[:-1]) * -(-s[-1] // GROUP) for n, s in shapes.items() if n in quantized)
    rest = sum(c for n, c in numel.items() if n not in quantized)
    out = {"params": sum(numel.values()), "quantized_params": sum(numel[n] for n in quantized), "bf16_bytes": 2 * sum(numel.values())}
    for q, b in BITS.items():
        out[f"{q}_bytes"] = groups * BYTES_PER_GROUP[b] + 2 * rest
    return out


# ---- safetensors, written and read here (U32 and F16 planes beside BF16 tensors) ----

_NP = {"F32": np.float32, "F16": np.float16, "U32": np.uint32, "I32": np.int32, "U8": np.uint8, "I8": np.int8, "BF16": np.uint16, "I64": np.int64}


def _header(entries, metadata):
    head, off = {"__metadata__": metadata}, 0
    for name, dtype, shape, raw in entries:
        head[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(head, separators=(",", ":")).encode()
    return h + b" " * (-len(h) % 8)


def file_bytes(entries, metadata):
    return 8 + len(_header(entries, metadata)) + sum(len(e[3]) for e in entries)


def write_file(path, entries, metadata):
    """entries: [(name, dtype, shape, raw bytes)] -> one .safetensors file (8-byte header length, JSON header padded
    with spaces to a multiple of 8, then the data, in order)."""
    h = _header(entries, metadata)
    with open(path + ".tmp", "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for e in entries:
            fh.write(e[3])
    os.replace(path + ".tmp", path)


def write_model(folder, entries, metadata, params, max_file=MAX_FILE_BYTES):
    """model.safetensors, or shards model-0000K-of-0000N.safetensors of at most max_file bytes each plus
    model.safetensors.index.json as transformers writes them (params: the model's parameter count, for the
    index's total_parameters). Returns the files written."""
    for f in os.listdir(folder):
        if f.startswith("model") and (f.endswith(".safetensors") or f.endswith(".safetensors.index.json")):
            os.remove(os.path.join(folder, f))  # no shard of an earlier export left to confuse a loader
    if file_bytes(entries, metadata) <= max_file:
        write_file(os.path.join(folder, "model.safetensors"), entries, metadata)
        return ["model.safetensors"]
    units = []  # a quantized tensor's planes stay in one file
    for e in entries:
        if e[0].endswith(".scales") and units and units[-1][0][0] == e[0][:-len(".scales")]:
            units[-1].append(e)
        else:
            units.append([e])
    shards, cur = [], []
    for u in units:
        if cur and file_bytes(cur + u, metadata) > max_file:
            shards.append(cur)
            cur = []
        cur += u
    shards.append(cur)
    names, weight_map = [], {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_file(os.path.join(folder, fname), shard, metadata)
        names.append(fname)
        weight_map.update({e[0]: fname for e in shard})
    index = {"metadata": {"total_parameters": params, "total_size": sum(len(e[3]) for e in entries)}, "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return names


def read_file(path):
    """-> ({name: numpy array in its stored dtype; BF16 as uint16 bits}, metadata, {name: dtype})."""
    with open(path, "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {}) or {}
    out = {}
    for name, t in head.items():
        if t["dtype"] not in _NP:
            raise ValueError(f"{path}: tensor {name} has dtype {t['dtype']}, not one this reader knows")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw, dtype=_NP[t["dtype"]], count=(b - a) // np.dtype(_NP[t["dtype"]]).itemsize,
                                  offset=8 + n + a).reshape(t["shape"])
    return out, meta, {name: t["dtype"] for name, t in head.items()}


def read_model(folder):
    """All tensors of an exported folder (one file or shards) -> ({name: array}, {name: dtype}, metadata)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    arrays, dtypes, meta = {}, {}, {}
    for f in files:
        a, m, d = read_file(os.path.join(folder, f))
        arrays.update(a)
        dtypes.update(d)
        meta.update(m)
    return arrays, dtypes, meta


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def folder_weights(folder, shapes):
    """The weights of an exported folder as f32 numpy arrays of the model's shapes (name -> shape): bf16/f16/f32
    tensors converted, quantized planes (NAME U32 + NAME.scales) dequantized as the engine does."""
    arrays, dtypes, meta = read_model(folder)
    out = {}
    for name, shape in shapes.items():
        if name not in arrays:
            continue
        a, dt = arrays[name], dtypes[name]
        if dt == "U32":
            if name + ".scales" not in arrays:
                raise ValueError(f"{folder}: {name} is U32 without {name}.scales; expected the format of {FIX}")
            bits = {WORDS_PER_GROUP[b]: b for b in WORDS_PER_GROUP}[a.shape[-1]]
            if meta.get("sidewinder_quant") and BITS.get(meta["sidewinder_quant"]) != bits:
                raise ValueError(f"{folder}: {name} has {a.shape[-1]} words a group but the file says {meta['sidewinder_quant']}")
            w = dequantize(a, arrays[name + ".scales"], bits, shape[-1])
        elif dt == "BF16":
            w = bf16_to_f32(a)
        else:
            w = a.astype(np.float32)
        if tuple(w.shape) != tuple(shape):
            raise ValueError(f"{folder}: {name} is {list(w.shape)}, the model's is {list(shape)}")
        out[name] = w
    return out


def model_tensors(model):
    """name -> tensor of what a model's files hold: its state_dict, a tied lm_head once (as the embedding)."""
    keys = set(model.state_dict())
    out = {}
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        if n in keys and not any(t is u for u in out.values()):
            out[n] = t
    return out


def load_folder(model, folder):
    """Fills the model's weights from an exported folder (train/export.py: bf16, or q4/q8 planes dequantized as
    the engine does, or transformers' own files); every tensor of the model must be there."""
    targets = model_tensors(model)
    weights = folder_weights(folder, {n: tuple(t.shape) for n, t in targets.items()})
    missing = sorted(set(targets) - set(weights))
    if missing:
        raise ValueError(f"{folder} lacks {len(missing)} tensors of the model ({', '.join(missing[:4])}...): "
                         f"is it a folder of the same shape, written by {FIX}?")
    with torch.no_grad():
        for n, t in targets.items():
            t.copy_(torch.from_numpy(weights[n]))
    return sorted(targets)
