"""Training data for the bundled model, built on the GPU machine from real source code.

- Python: the .py files of the packages installed there (site-packages), split by package: a fixed set of
  packages is held out for evaluation (HELD_OUT), never trained on.
- JS/TS: carried from the development machine as train/js_corpus.jsonl.xz (made by train/pack_js.sh), split by
  package the same way.

Three kinds of examples, mixed by the trainer:
- next-token: files framed as a workspace (<filename>path\\n text <file_sep>), packed into sequences;
- FIM (about half): <filename>path\\n <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle <|endoftext|>;
- definition lookup: a synthetic workspace (many real files plus one that defines NAME), then
  <file_sep>Question: Where is `NAME` defined?\\nAnswer: path<|endoftext|>, at lengths growing to >= 16K tokens,
  the same framing the engine uses for `ask` (src/engine/ask.ts questionTokens).
"""
import json
import lzma
import os
import random
import re
import site
import sys

HELD_OUT = {"numpy", "sympy", "networkx", "jinja2", "markupsafe", "idna", "react", "vue", "lodash"}
MAX_FILE_CHARS = 24_000

SPECIAL = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<file_sep>", "<filename>"]


def _python_files():
    roots = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    for root in roots:
        for pkg in sorted(os.listdir(root)):
            top = os.path.join(root, pkg)
            if not os.path.isdir(top) or pkg.endswith((".dist-info", ".egg-info")) or pkg.startswith(("_", ".")):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "tests", "test"))
                for f in sorted(filenames):
                    if f.endswith(".py"):
                        yield pkg.lower(), os.path.join(dirpath, f), os.path.relpath(os.path.join(dirpath, f), root)


def load_corpus(js_path=None, limit_chars=None):
    """Returns {"train": [(package, relpath, text)], "eval": [...]} split by package."""
    out = {"train": [], "eval": []}
    total = 0
    for pkg, path, rel in _python_files():
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip() or len(text) > MAX_FILE_CHARS or max((len(l) for l in text.splitlines()), default=0) > 400:
            continue
        out["eval" if pkg in HELD_OUT else "train"].append((pkg, rel.replace(os.sep, "/"), text))
        total += len(text)
        if limit_chars and total > limit_chars:
            break
    if js_path and os.path.exists(js_path):
        with lzma.open(js_path, "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                out["eval" if r["package"] in HELD_OUT else "train"].append((r["package"], r["path"], r["text"]))
    return out


DEF_RE = re.compile(r"^(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]{3,})|^(?:export\s+)?(?:function|class)\s+([A-Za-z_$][\w$]{3,})", re.M)


def definitions(text):
    return [m.group(1) or m.group(2) for m in DEF_RE.finditer(text)]


class Examples:
    """Token sequences of the three kinds, from a corpus split, with a tokenizer (tokenizers.Tokenizer)."""

    def __init__(self, tok, files, seed=0):
        self.tok = tok
        self.files = files
        self.rng = random.Random(seed)
        self.sp = {s: tok.token_to_id(s) for s in SPECIAL}

    def enc(self, s):
        return self.tok.encode(s, add_special_tokens=False).ids

    def frame(self, path, text):
        return [self.sp["<filename>"]] + self.enc(path + "\n") + self.enc(text) + [self.sp["<file_sep>"]]

    def workspace(self, n_tokens):
        """Random real files framed as a workspace, about n_tokens long."""
        ids, paths = [], []
        while len(ids) < n_tokens:
            _, path, text = self.rng.choice(self.files)
            ids += self.frame(path, text)
            paths.append(path)
        return ids, paths

    def next_token(self, length):
        ids, _ = self.workspace(length + 1)
        start = self.rng.randrange(0, max(1, len(ids) - length - 1))
        x = ids[start:start + length + 1]
        return x, [1] * len(x)

    def fim(self, length):
        """A context workspace then one FIM example; loss only on the middle."""
        for _ in range(20):
            _, path, text = self.rng.choice(self.files)
            lines = text.splitlines(keepends=True)
            if len(lines) >= 4:
                break
        a = self.rng.randrange(1, len(lines) - 1)
        b = min(len(lines), a + self.rng.choice([1, 1, 1, 2, 3, 5]))
        pre, mid, suf = "".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:])
        tail = ([self.sp["<filename>"]] + self.enc(path + "\n") + [self.sp["<fim_prefix>"]] + self.enc(pre)[-1500:] +
                [self.sp["<fim_suffix>"]] + self.enc(suf)[:500] + [self.sp["<fim_middle>"]])
        target = self.enc(mid) + [self.sp["<|endoftext|>"]]
        ctx, _ = self.workspace(max(0, length - len(tail) - len(target)))
        ctx = ctx[-max(0, length - len(tail) - len(target)):] if length - len(tail) - len(target) > 0 else []
        x = ctx + tail + target
        mask = [0] * (len(ctx) + len(tail)) + [1] * len(target)
        return x[: length + 1], mask[: length + 1]

    def lookup(self, length):
        """Where is NAME defined? over a workspace of ~length tokens; loss only on the answer."""
        for _ in range(50):
            _, path, text = self.rng.choice(self.files)
            names = definitions(text)
            if names:
                break
        name = self.rng.choice(names)
        q = [self.sp["<file_sep>"]] + self.enc(f"Question: Where is `{name}` defined?\nAnswer:")
        ans = self.enc(" " + path) + [self.sp["<|endoftext|>"]]
        target = self.frame(path, text)[: length // 2]
        room = length - len(q) - len(ans) - len(target)
        files = []
        while room > 0 and sum(len(f) for f in files) < room:
            _, p2, t2 = self.rng.choice(self.files)
            if p2 != path:
                files.append(self.frame(p2, t2))
        while files and sum(len(f) for f in files) > room:
            files.pop(0)  # whole files only, so every file in the context is complete
        files.insert(self.rng.randrange(0, len(files) + 1), target)
        x = [t for f in files for t in f]
        seq = x + q + ans
        mask = [0] * (len(x) + len(q)) + [1] * len(ans)
        return seq, mask


if __name__ == "__main__":
    c = load_corpus(sys.argv[1] if len(sys.argv) > 1 else None, limit_chars=5_000_000)
    print({k: len(v) for k, v in c.items()}, sum(len(t) for _, _, t in c["train"]), "chars")
