"""Training data for the bundled model, built on the GPU machine from real source code.

- Python: the .py files of the packages installed there (site-packages), split by package: a fixed set of
  packages is held out for evaluation (HELD_OUT), never trained on.
- JS/TS: carried from the development machine as train/js_corpus.jsonl.xz (made by train/pack_js.sh), split by
  package the same way.

Three kinds of examples, mixed inside every training row (Examples.row):
- next-token: files framed as a workspace (<filename>path\\n text <file_sep>);
- FIM (about half the files): <filename>path\\n <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
  <|endoftext|>, the engine's completion prompt (src/engine/completion/fim.ts);
- rows are mostly workspaces: whole packages with their real directory structure, every path part renamed
  consistently within the row (so paths share prefixes as in a real repository, and answers are read, not
  remembered), else files from anywhere under made-up paths;
- definition lookup: after files, <file_sep>Question: Where is `NAME` defined?\\nAnswer: `path`<|endoftext|>
  about a file seen earlier in the row, at distances up to the row length (16K tokens), the same framing
  the engine uses for `ask` (src/engine/ask.ts questionTokens); optionally (tail) a closing block of many
  questions, one after another, as `ask` asks them after a workspace.
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


# as src/workspace/frame.ts: Python (async) def/class; JS/TS (async, generator, default-exported) function and
# (abstract) class, and exported const/let/interface/type/enum; 4+ characters
DEF_RE = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]{3,})"
                    r"|^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\*?|(?:abstract\s+)?class)\s+([A-Za-z_$][\w$]{3,})"
                    r"|^export\s+(?:const|let|interface|type|enum)\s+([A-Za-z_$][\w$]{3,})", re.M)


def definitions(text):
    return [m.group(1) or m.group(2) or m.group(3) for m in DEF_RE.finditer(text)]


MAX_LISTED_DEFINITIONS = 48  # as src/workspace/frame.ts


def listed_names(text):
    """The names a footer lists (src/workspace/frame.ts listedNames): each top-level name once, in order."""
    return list(dict.fromkeys(definitions(text)))[:MAX_LISTED_DEFINITIONS]


def definitions_line(text):
    """The footer's definitions line (src/workspace/frame.ts definitionsLine): the listed names in backticks as a
    question writes them; '' when the file defines none."""
    names = listed_names(text)
    return "defines " + " ".join(f"`{n}`" for n in names) + "\n" if names else ""


def definitions_index(text, path):
    """The footer's index (src/workspace/frame.ts definitionsIndex): one line ' `NAME` `path`' per top-level name, each
    once, in order: the answer to "where is `NAME` defined?" is what follows the name there."""
    return "".join(f" `{n}` `{path}`\n" for n in listed_names(text))


class Examples:
    """Training rows built from a corpus split with a tokenizer (tokenizers.Tokenizer).

    A row is one workspace stream of a fixed length (one compiled shape for the whole run):
    files framed as in the engine, about half of them FIM-transformed (PSM, loss on every token), and after
    files, questions "Where is `NAME` defined?" about any file seen earlier in the row, answered with its path
    (loss only on the answer). Questions land at every distance from their file, from a few tokens to the
    whole row, so one row teaches the lookup at every context length up to its own.
    """

    def __init__(self, tok, files, seed=0, fim_rate=0.5, question_rate=0.85, answer_weight=4.0, first_answer_weight=8.0, fake_path_rate=0.8, workspace_rate=0.7, snippet_rate=0.0, footer=False, far=False, defs=False, index=False, tail=0.0, sub_root_rate=0.0, name_parts=False):
        self.tok = tok
        # tail: the share of each row kept for a closing block of questions about the files before it, one after
        # another as `ask` puts them after a workspace (many answers per row, at every distance up to the row's)
        self.closing = tail
        # far: each question is about the file whose end lies nearest to a distance drawn uniformly over the row
        # so far, and questions come more often in the row's second half (otherwise, asked about any open file
        # right after each file, a file's names run out while it is recent: 71% of the questions of a 16K row
        # landed within 512 tokens of their file, none 8K away).
        self.far = far
        self.footer = footer  # the path again after <file_sep> (src/workspace/frame.ts, "sidewinder_file_footer")
        # and, after it, the line of names the file defines ("sidewinder_file_defs"): a lookup matches the question's
        # `NAME` against that line, a few tokens after the file's path
        self.defs = defs and footer
        # or, instead, an index line per name with the path after it ("sidewinder_file_index"): the answer is a copy of
        # what follows the question's `NAME` where the index wrote it
        self.index = index and footer
        self.snippet_rate = snippet_rate  # files cut to a window of lines: many short files, many questions
        self.files = files
        self.rng = random.Random(seed)
        self.sp = {s: tok.token_to_id(s) for s in SPECIAL}
        # Path parts of the whole corpus: files in rows get made-up paths from them, so that "where is NAME
        # defined?" cannot be answered from memory (NAME -> path pairs repeat across training), only by reading.
        parts = set()
        for _, p, t in files:
            parts.update(x for x in p.rsplit(".", 1)[0].split("/") if x.isidentifier())
            if name_parts:  # names the code defines too: many more, and spelled as held-out file names are
                parts.update(definitions(t))
        self.parts = sorted(parts)
        # sub_root_rate: share of workspace rows read from inside the package (no shared first folder; a file at the
        # top is a bare name like `walk.ts`), as when a user opens a folder of a repository
        self.sub_root_rate = sub_root_rate
        self.fim_rate = fim_rate
        self.fake_path_rate = fake_path_rate
        self.question_rate = question_rate
        self.answer_weight = answer_weight
        self.first_answer_weight = first_answer_weight  # the path's first token is the retrieval; the rest is copying
        self.workspace_rate = workspace_rate
        self.by_package = {}
        for f in files:
            self.by_package.setdefault(f[0], []).append(f)
        self.packages = sorted(self.by_package)

    def enc(self, s):
        return self.tok.encode(s, add_special_tokens=False).ids

    def frame(self, path, text):
        return [self.sp["<filename>"]] + self.enc(path + "\n") + self.enc(text) + [self.sp["<file_sep>"]] + self.tail(path, text)

    def tail(self, path, text):
        """The footer: a causal model reads the header before the code, so only a path after the code can be
        bound to what the file defines; answering a lookup is then a copy from the right footer. With defs, the
        names the file defines follow the path (tokenized together, as the engine does)."""
        if not self.footer:
            return []
        defs = definitions_index(text, path) if self.index else definitions_line(text) if self.defs else ""
        return self.enc(path + "\n" + defs)

    def fim_frame(self, path, text):
        """The file as the engine's completion prompt (src/engine/completion/fim.ts) plus the middle: a span
        of 1-5 whole lines (or part of a line) cut out."""
        lines = text.splitlines(keepends=True)
        if len(lines) < 3:
            return None
        a = self.rng.randrange(1, len(lines) - 1)
        b = min(len(lines), a + self.rng.choice([1, 1, 1, 2, 3, 5]))
        pre, mid, suf = "".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:])
        if self.rng.random() < 0.3 and len(mid) > 2:  # cursor inside the line
            cut = self.rng.randrange(1, len(mid) - 1)
            pre, mid = pre + mid[:cut], mid[cut:]
        return ([self.sp["<filename>"]] + self.enc(path + "\n") + [self.sp["<fim_prefix>"]] + self.enc(pre) +
                [self.sp["<fim_suffix>"]] + self.enc(suf) + [self.sp["<fim_middle>"]] + self.enc(mid) +
                [self.sp["<|endoftext|>"]] + ([self.sp["<file_sep>"]] + self.tail(path, text) if self.footer else []))

    def snippet(self, text):
        """A window of 6-60 lines, starting at a top-level definition when the file has one."""
        lines = text.splitlines(keepends=True)
        starts = [i for i, l in enumerate(lines) if DEF_RE.match(l)]
        a = self.rng.choice(starts) if starts and self.rng.random() < 0.95 else self.rng.randrange(len(lines))
        a = max(0, a - self.rng.randrange(0, 6))
        return "".join(lines[a:a + self.rng.randint(6, 60)])

    def question(self, name, path):
        """The answer is the path in backticks: after " `" it is tokenized exactly as in the file's header
        (" path" would merge the space into the first part, a different token), so the answer is a copy."""
        q = [self.sp["<file_sep>"]] + self.enc(f"Question: Where is `{name}` defined?\nAnswer:")
        return q, self.enc(" `" + path + "`") + [self.sp["<|endoftext|>"]]

    def _renamer(self):
        """A made-up name for every path part, the same one all through a row: paths keep the shape of a real
        package (files share directories, so the answer must name the right one among look-alikes) but no
        NAME -> path pair can be learned by heart."""
        names, used = {}, set()

        def rename(path):
            *dirs, base = path.split("/")
            stem, dot, ext = base.rpartition(".") if "." in base else (base, "", "")
            out = []
            for part in dirs + [stem]:
                if part not in names:
                    for _ in range(20):
                        cand = self.rng.choice(self.parts)
                        if cand not in used:
                            break
                    used.add(cand)
                    names[part] = cand
                out.append(names[part])
            return "/".join(out) + (dot + ext if dot else "")
        return rename

    def _files(self):
        """Files of one row: mostly a workspace (whole packages, one after another, real paths renamed per row),
        else files from anywhere under paths of 1-4 random parts."""
        if self.rng.random() < self.workspace_rate:
            rename = self._renamer()
            inside = self.rng.random() < self.sub_root_rate
            while True:
                pkg = self.by_package[self.rng.choice(self.packages)]
                for f in self.rng.sample(pkg, len(pkg)):
                    path = rename(f[1])
                    yield (path.split("/", 1)[-1] if inside else path), f[2]
        while True:
            _, path, text = self.rng.choice(self.files)
            if self.rng.random() < self.fake_path_rate:
                ext = "." + path.rsplit(".", 1)[1] if "." in path.rsplit("/", 1)[-1] else ""
                path = "/".join(self.rng.choice(self.parts) for _ in range(self.rng.randint(1, 4))) + ext
            yield path, text

    def _ask(self, ids, w, dist, ends, seen, defined, asked, far):
        """Appends a question about a file seen earlier in the row and its answer; False when none is left. No
        question is repeated (the answer could be copied) and no name defined in two files is asked about. far:
        about the file whose end is nearest to a distance drawn uniformly over the row so far."""
        open_ = [(p, [n for n in ns if defined[n] == 1 and n not in asked]) for p, ns in seen]
        open_ = [(p, ns) for p, ns in open_ if ns]
        if not open_:
            return False
        if far:
            at = len(ids) - self.rng.randrange(len(ids) + 1)
            p, ns = min(open_, key=lambda e: abs(ends[e[0]] - at))
        else:
            p, ns = self.rng.choice(open_)
        name = self.rng.choice(ns)
        asked.add(name)
        q, a = self.question(name, p)
        ids += q
        dist += [0] * len(q) + [len(ids) - ends[p]] * len(a)
        ids += a
        w += [0.0] * len(q) + [self.answer_weight, self.first_answer_weight] + [self.answer_weight] * (len(a) - 2)
        return True

    def row(self, length):
        """(ids, weights, distances) of length + 1 tokens; distances: on answer tokens, how far (in tokens) the
        question is from the end of the file it asks about, else 0."""
        ids, w, dist = [], [], []
        ends = {}  # path -> position after its frame
        seen = []  # (path, [names]) of files in the row
        defined = {}  # name -> number of files in the row defining it
        paths, asked = set(), set()
        files = self._files()
        while len(ids) < length + 1:
            if self.closing and len(ids) >= length * (1 - self.closing):
                if self._ask(ids, w, dist, ends, seen, defined, asked, far=False):
                    continue
            path, text = next(files)
            if path in paths:
                continue
            if self.snippet_rate and self.rng.random() < self.snippet_rate:
                text = self.snippet(text)
            paths.add(path)
            f = self.fim_frame(path, text) if self.rng.random() < self.fim_rate else None
            f = f or self.frame(path, text)
            ids += f
            w += [1.0] * len(f)
            dist += [0] * len(f)
            ends[path] = len(ids)
            names = definitions(text)
            for n in set(names):
                defined[n] = defined.get(n, 0) + 1
            if names:
                seen.append((path, names))
            # far: questions come more often as the row fills, so that many are asked at long range
            rate = self.question_rate * (min(1.0, 2 * len(ids) / length) if self.far else 1.0)
            while self.rng.random() < rate and self._ask(ids, w, dist, ends, seen, defined, asked, far=self.far):
                pass
        return ids[: length + 1], w[: length + 1], dist[: length + 1]


def write_heldout(out, js_path=None):
    """Writes the held-out split (packages never trained on) as files under `out`, for `npm run eval --data`."""
    n = 0
    for _, rel, text in load_corpus(js_path)["eval"]:
        dest = os.path.join(out, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as fh:
            fh.write(text)
        n += 1
    return n


if __name__ == "__main__":
    # python3 train/data.py [JS_CORPUS] [--heldout DIR]
    js = next((x for x in sys.argv[1:] if not x.startswith("--") and x.endswith(".xz")), None)
    if "--heldout" in sys.argv:
        out = sys.argv[sys.argv.index("--heldout") + 1]
        print(json.dumps({"heldout": out, "files": write_heldout(out, js)}))
        sys.exit(0)
    c = load_corpus(js, limit_chars=5_000_000)
    print({k: len(v) for k, v in c.items()}, sum(len(t) for _, _, t in c["train"]), "chars")
