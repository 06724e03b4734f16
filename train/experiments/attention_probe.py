# Where do a model's attention layers look when it answers a far definition lookup? Teacher-forced, on the CPU
# with transformers' eager attention. A workspace of held-out files (train/data.py --heldout DIR) of about L
# tokens, the target file FAR tokens before the question; per sample: which answer tokens are wrong, and for each
# attention layer the attention mass (best head) on the definition line, the target's header and its footer,
# averaged over the answer and at the first wrong answer token ("at_k").
#   N=16 L=4096 FAR=2500 MODEL=models/default HELDOUT=/tmp/heldout python3 train/experiments/attention_probe.py SEED
import os, random, re, sys, json
import torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer
M = os.environ.get("MODEL", os.path.join(os.path.dirname(__file__), "..", "..", "models", "default"))
tok = Tokenizer.from_file(M + "/tokenizer.json")
model = AutoModelForCausalLM.from_pretrained(M, torch_dtype=torch.float32, attn_implementation="eager").eval()
sp = {s: tok.token_to_id(s) for s in ["<filename>", "<file_sep>", "<|endoftext|>"]}
enc = lambda s: tok.encode(s, add_special_tokens=False).ids
DEF = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w{3,})|^(?:export\s+)?(?:function|class)\s+([A-Za-z_$][\w$]{3,})", re.M)
root = os.environ.get("HELDOUT", "/tmp/heldout")
files = []
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        try:
            t = open(p, encoding="utf-8").read()
        except Exception:
            continue
        if 4 <= t.count("\n") and len(t) < 20000:
            files.append((os.path.relpath(p, root), t))
rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
L, far = int(os.environ.get("L", 4096)), int(os.environ.get("FAR", 2500))
attn_layers = [i for i, t in enumerate(model.config.layer_types) if t in ("attention", "full_attention")]
res = []
for trial in range(int(os.environ.get("N", 16))):
    cands = [(p, t, [m.group(1) or m.group(2) for m in DEF.finditer(t)]) for p, t in rng.sample(files, 200)]
    cands = [c for c in cands if c[2]]
    tp, tt, names = cands[0]
    name = rng.choice(names)
    if sum(1 for p, t in files if re.search(r"^(?:def|class|function|export function|export class)\s+" + re.escape(name) + r"\b", t, re.M)) > 1:
        continue
    def frame(p, t):
        return [sp["<filename>"]] + enc(p + "\n") + enc(t) + [sp["<file_sep>"]] + enc(p + "\n")
    tgt = frame(tp, tt)
    before, after = [], []
    while sum(map(len, after)) < far:
        p, t = rng.choice(files)
        if p != tp: after.append(frame(p, t))
    while sum(map(len, before)) + len(tgt) + sum(map(len, after)) < L:
        p, t = rng.choice(files)
        if p != tp: before.append(frame(p, t))
    ids, spans = [], []
    for f in before: spans.append(("other", len(ids), len(ids) + len(f))); ids += f
    t0 = len(ids); ids += tgt; spans.append(("target", t0, len(ids)))
    for f in after: spans.append(("other", len(ids), len(ids) + len(f))); ids += f
    q = [sp["<file_sep>"]] + enc(f"Question: Where is `{name}` defined?\nAnswer:")
    a = enc(" `" + tp + "`")
    full = ids + q + a
    # where the definition sits in the target: the token span of the def line
    off = tt.index(next(m.group(0) for m in DEF.finditer(tt) if (m.group(1) or m.group(2)) == name))
    pre = [sp["<filename>"]] + enc(tp + "\n") + enc(tt[:off])
    def_at = t0 + len(pre)
    hdr = (t0, t0 + 1 + len(enc(tp + "\n")))
    ftr = (t0 + len(tgt) - len(enc(tp + "\n")), t0 + len(tgt))
    with torch.no_grad():
        out = model(torch.tensor([full]), output_attentions=True)
    logits = out.logits[0]
    qa0 = len(ids) + len(q)  # first answer token position
    pred = logits[qa0 - 1: qa0 - 1 + len(a)].argmax(-1).tolist()
    exact = pred == a
    ok_tokens = sum(int(x == y) for x, y in zip(pred, a))
    row = {"name": name, "path": tp, "dist": len(ids) - (t0 + len(tgt)), "exact": exact, "tokens_right": f"{ok_tokens}/{len(a)}",
           "wrong": [(i, tok.decode([a[i]]), tok.decode([pred[i]])) for i in range(len(a)) if a[i] != pred[i]]}
    # attention at the positions predicting answer tokens 1..: mass on def line (+-8 tokens), header, footer
    for li, layer in enumerate(attn_layers):
        A = out.attentions[li][0] if len(out.attentions) == len(attn_layers) else out.attentions[layer][0]  # [heads, T, T]
        rows = A[:, qa0 - 1: qa0 - 1 + len(a), :]  # heads x answer x keys
        m_def = rows[:, :, max(0, def_at - 2): def_at + 10].sum(-1).max(0).values.mean().item()
        m_hdr = rows[:, :, hdr[0]: hdr[1]].sum(-1).max(0).values.mean().item()
        m_ftr = rows[:, :, ftr[0]: ftr[1]].sum(-1).max(0).values.mean().item()
        w = [i for i in range(len(a)) if a[i] != pred[i]]
        k = w[0] if w else 1
        first = rows[:, k, :]  # heads x keys, at the first wrong answer token (or the second token)
        row[f"L{layer}"] = {"def": round(m_def, 3), "hdr": round(m_hdr, 3), "ftr": round(m_ftr, 3),
                            "at_k": {"hdr": round(first[:, hdr[0]:hdr[1]].sum(-1).max().item(), 3), "ftr": round(first[:, ftr[0]:ftr[1]].sum(-1).max().item(), 3), "def": round(first[:, max(0, def_at - 2): def_at + 10].sum(-1).max().item(), 3)}}
    res.append(row)
    print(json.dumps(row), flush=True)
ex = sum(r["exact"] for r in res)
print(json.dumps({"n": len(res), "exact": ex, "L": L, "far": far}))
