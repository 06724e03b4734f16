"""Training data for the bundled model, built on the GPU machine from real source code.

- Python: the .py files of the packages installed there (site-packages), split by package: a fixed set of
  packages is held out for evaluation (HELD_OUT), never trained on.
- JS/TS: carried from the development machine as train/js_corpus.jsonl.xz (made by train/pack_js.sh), split by
  package the same way.

Three kinds of examples, mixed inside every training row (Examples.row):
- next-token: files framed as a workspace (<filename>path\\n text <file_sep>);
- FIM (fim_rate of the files): <filename>path\\n <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
  <|endoftext|>, the engine's completion prompt (src/engine/completion/fim.ts), the middle cut as a completion
  asks (fim_cut: the rest of a line, a piece of one, the next line, a few lines, a block's body), optionally cut
  to the engine's token budget;
- rows are mostly workspaces: whole packages with their real directory structure, every path part renamed
  consistently within the row (so paths share prefixes as in a real repository, and answers are read, not
  remembered), else files from anywhere under made-up paths;
- questions about a file seen earlier in the row, at distances up to the row length (16K tokens), in the framing
  the engine uses for `ask` (src/engine/ask.ts questionTokens):
  <file_sep>Question: Q\\nAnswer: A<|endoftext|>, loss on A only, of five kinds (QUESTION_FORMS; the ground truth is
  answer(), whose rules src/workspace/symbols.ts mirrors): where `X` is defined, where it is used, its
  parameters, what it does (its docstring's first sentence) and what a file defines; optionally (tail) a closing
  block of many questions, one after another, as `ask` asks them after a workspace.
"""
import collections
import functools
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
# (abstract) class, and exported const/let/interface/type/enum; 4+ characters. ASCII, as JS reads \w.
DEF_RE = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]{3,})"
                    r"|^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\*?|(?:abstract\s+)?class)\s+([A-Za-z_$][\w$]{3,})"
                    r"|^export\s+(?:const|let|interface|type|enum)\s+([A-Za-z_$][\w$]{3,})", re.M | re.ASCII)


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


# ---- The five question kinds and their ground truth: src/workspace/symbols.ts is the reference, ported here rule
# for rule (its header states them). A question is encode(f"Question: {Q}\nAnswer:") after a <file_sep>, its answer
# encode(f" {A}") then <|endoftext|>, about the files of the row before it, [(path, text)] in row order. Strings
# are measured as JS measures them (UTF-16 units) and whitespace is JS's \s, so both sides cut at the same place.

QUESTION_FORMS = {
    "definition": "Where is `{}` defined?",  # A: `path`
    "usages": "Where is `{}` used?",  # A: `p1` `p2` ... (at most MAX_USAGES), or none
    "signature": "What are the parameters of `{}`?",  # A: `SIG`
    "summary": "What does `{}` do?",  # A: SENTENCE (`path`), or no docstring (`path`)
    "outline": "What is defined in `{}`?",  # about a path; A: `A` `B` ..., or nothing
}
KINDS = tuple(QUESTION_FORMS)
MAX_USAGES = 5
MAX_SIGNATURE, MAX_SIGNATURE_SOURCE, MAX_SIGNATURE_LINES = 200, 300, 12
MAX_SENTENCE = 200
_S = "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"  # JS's \s
_SPACES = re.compile(_S + "+")
_TRIM = re.compile(f"^{_S}+|{_S}+$")
_WORD_RUN = re.compile(r"[A-Za-z0-9_$]+")  # a name is a whole word when no [A-Za-z0-9_$] touches it
_SKIP_COMMENTS = re.compile(f"(?:{_S}|#[^\n]*)*")
_DOCSTRING_OPEN = re.compile(r"[rRuUbB]{0,2}(\"\"\"|''')")
_PARAGRAPH_BREAK = re.compile(f"\n{_S}*\n")
_SENTENCE = re.compile(r".*?\.(?= |\Z)")
_RETURNS = re.compile(f"{_S}*->(.*)\\Z", re.S)


def _trim(s):
    return _TRIM.sub("", s)


def _collapse(s):
    return _SPACES.sub(" ", s)


def _units(c):
    return 2 if ord(c) > 0xFFFF else 1  # UTF-16 code units


def _js_prefix(s, n):
    """s.slice(0, n) in JS (n UTF-16 units); a surrogate pair cut in two leaves its first half, which the engine's
    encoder (TextEncoder) reads as U+FFFD, so that is what it becomes here."""
    if len(s) <= n // 2:
        return s
    used = 0
    for i, c in enumerate(s):
        used += _units(c)
        if used > n:
            return s[:i] + ("\ufffd" if used == n + 1 and _units(c) == 2 else "")
    return s


def _js_len(s):
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def is_python(path):
    return path.endswith((".py", ".pyi"))


def word_counts(text):
    """Whole-word occurrences of every name in `text` (a name preceded or followed by [A-Za-z0-9_$] is not one)."""
    return collections.Counter(_WORD_RUN.findall(text))


def defining_file(files, name):
    """definition(X): the first file, in row order, whose listed names include X; None if none."""
    return next((p for p, t in files if name in listed_names(t)), None)


def usages(files, name, counts=None, home=None):
    """usages(X): the files other than X's defining file that contain X as a whole word, by number of occurrences
    (most first, ties in row order), at most MAX_USAGES. counts: word_counts of each file, and home: X's
    defining file, if already known."""
    home = home or defining_file(files, name)
    found = []
    for i, (p, t) in enumerate(files):
        n = (counts[i] if counts is not None else word_counts(t))[name]
        if p != home and n:
            found.append((-n, i, p))
    return [p for _, _, p in sorted(found)[:MAX_USAGES]]


@functools.lru_cache(maxsize=512)
def _definition_sites(text):
    """name -> (offset of the name, offset of its line, line index) on its definition line: the first line (text
    split at "\\n") whose first definition (DEF_RE) is the name, at the name's first whole-word occurrence there."""
    sites, offset = {}, 0
    for i, line in enumerate(text.split("\n")):
        names = definitions(line)
        if names and names[0] not in sites:
            m = re.search(r"(?<![A-Za-z0-9_$])" + re.escape(names[0]) + r"(?![A-Za-z0-9_$])", line)
            if m:
                sites[names[0]] = (offset + m.start(), offset, i)
        offset += len(line) + 1
    return sites


def _header_end(text, start):
    """Python: the header's closing ":", the first one from start outside (), [] and {}; -1 if none."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == ":" and depth == 0:
            return i
    return -1


def signature(text, name, python):
    """signature(X) in the file that defines X (symbols.ts signatureOf): on X's definition line, after X, blanks and
    an optional type-parameter list <...>, a "(" or else X alone; then the source from X through the ")" closing
    it, within 300 characters from X and 12 lines (else X alone), collapsed, no space after "(" or before ")";
    Python adds " -> RET" for a return annotation before the header's ":"; cut to 200 characters."""
    site = _definition_sites(text).get(name)
    if site is None:
        return name
    start, offset, line = site
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    i = start + len(name)

    def blanks(i):
        while i < line_end and text[i] in " \t":
            i += 1
        return i
    i = blanks(i)
    if i < len(text) and text[i] == "<":  # a type-parameter list: `function first<T>(xs: T[])`
        depth = 0
        while i < line_end:
            if text[i] == "<":
                depth += 1
            elif text[i] == ">":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if i >= line_end:
            return name
        i = blanks(i + 1)
    if i >= line_end or text[i] != "(":
        return name
    depth, close, units = 0, -1, _js_len(text[start:i])
    for j in range(i, len(text)):
        if units >= MAX_SIGNATURE_SOURCE:
            break
        c = text[j]
        units += _units(c)
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                close = j
                break
    if close < 0:
        return name
    source = text[start:close + 1]
    if source.count("\n") + 1 > MAX_SIGNATURE_LINES:
        return name
    sig = _collapse(source).replace("( ", "(").replace(" )", ")")
    if python:
        colon = _header_end(text, start)
        m = _RETURNS.match(text, close + 1, colon) if colon > close else None
        if m and _trim(m.group(1)):
            sig += " -> " + _trim(_collapse(m.group(1)))
    return _js_prefix(sig, MAX_SIGNATURE)


def _python_docstring(text, at):
    """The text of the docstring that opens the body of the definition at `at`: after the header's ":", whitespace
    and # comments skipped, a string opened with \"\"\" or ''' (at most two of r, u, b before it) up to the same
    delimiter; None when there is none (or it is not closed)."""
    colon = _header_end(text, at)
    if colon < 0:
        return None
    j = _SKIP_COMMENTS.match(text, colon + 1).end()
    m = _DOCSTRING_OPEN.match(text, j)
    if not m:
        return None
    end = text.find(m.group(1), m.end())
    return text[m.end():end] if end >= 0 else None


def _comment_above(lines, line):
    """JS/TS: the comment right above line `line` (decorator lines, starting with "@", skipped), without its
    markers: a /* */ block ending that line (its "/*" starting the nearest line above that holds one), each line
    without its leading whitespace and "*"s; or the run of // lines, without their leading whitespace and "/"s."""
    last = line - 1
    while last >= 0 and _trim(lines[last]).startswith("@"):
        last -= 1
    if last < 0:
        return None
    end = _trim(lines[last])
    if end.endswith("*/"):
        first = last
        while first >= 0 and "/*" not in lines[first]:
            first -= 1
        if first < 0 or not _trim(lines[first]).startswith("/*"):
            return None
        block = "\n".join(lines[first:last + 1])
        inner = block[block.index("/*") + 2:block.rindex("*/")]
        return "\n".join(re.sub(f"^{_S}*\\*+", "", l) for l in inner.split("\n"))
    if not end.startswith("//"):
        return None
    first = last
    while first > 0 and _trim(lines[first - 1]).startswith("//"):
        first -= 1
    return "\n".join(re.sub(f"^{_S}*/+", "", l) for l in lines[first:last + 1])


def first_sentence(doc):
    """A docstring's first sentence (symbols.ts firstSentence): cut before its first line starting with "@" (JSDoc
    tags), the first paragraph, collapsed, up to and including the first "." followed by a space or the end (else
    the paragraph); over 200 characters, cut at the last space within the first 201 (or at 200). '' if empty."""
    lines = doc.split("\n")
    tag = next((i for i, l in enumerate(lines) if _trim(l).startswith("@")), len(lines))
    untagged = _trim("\n".join(lines[:tag]))
    paragraph = _trim(_collapse(_PARAGRAPH_BREAK.split(untagged, 1)[0]))
    m = _SENTENCE.match(paragraph)
    s = m.group(0) if m else paragraph
    if _js_len(s) > MAX_SENTENCE:
        head = _js_prefix(s, MAX_SENTENCE + 1)
        cut = head.rfind(" ")
        s = head[:cut] if cut > 0 else _js_prefix(s, MAX_SENTENCE)
    return s


def summary(text, name, python):
    """summary(X) in the file that defines X: the first sentence of its docstring (Python) or of the comment right
    above its definition line (JS/TS); None when it has none, or an empty one."""
    site = _definition_sites(text).get(name)
    if site is None:
        return None
    at, offset, line = site
    doc = _python_docstring(text, at) if python else _comment_above(text.split("\n"), line)
    return (first_sentence(doc) or None) if doc is not None else None


def _ticks(names):
    return " ".join(f"`{n}`" for n in names)


def answer(kind, subject, files):
    """The answer text A to the question of `kind` about `subject` (a name, or for outline a path), from the files
    of the row before the question ([(path, text)] in row order); symbols.ts answerText, which is None (null) when
    the question has no answer: no file defines the name (usages aside) or has the path."""
    if kind == "outline":
        text = next((t for p, t in files if p == subject), None)
        return None if text is None else _ticks(listed_names(text)) or "nothing"
    if kind == "usages":  # a name no file defines counts in every file
        return _ticks(usages(files, subject)) or "none"
    home = defining_file(files, subject)
    if home is None:
        return None
    text = next(t for p, t in files if p == home)
    if kind == "definition":
        return f"`{home}`"
    if kind == "signature":
        return f"`{signature(text, subject, is_python(home))}`"
    if kind == "summary":
        return f"{summary(text, subject, is_python(home)) or 'no docstring'} (`{home}`)"
    raise ValueError(f"unknown question kind {kind!r}; one of {', '.join(KINDS)}")


def parse_mix(spec, allowed):
    """'a=0.3,b=0.7' -> {'a': 0.3, 'b': 0.7} (weights, not necessarily summing to 1); names must be in allowed."""
    out = {}
    for part in filter(None, (x.strip() for x in spec.split(","))):
        k, _, v = part.partition("=")
        if k not in allowed or not v:
            raise ValueError(f"{part!r}: expected NAME=WEIGHT with NAME one of {', '.join(allowed)}")
        out[k] = float(v)
    if not out or min(out.values()) < 0 or sum(out.values()) <= 0:
        raise ValueError(f"{spec!r}: weights must be >= 0 and not all 0")
    return out


# ---- Fill-in-the-middle cuts, as the engine's completion asks (src/engine/completion/fim.ts, complete.ts) ----
# span:      1-5 whole lines, newline included (30%: from inside the first line) -- the recipe up to run 10
# line:      the cursor inside a line after some code; the rest of the line
# infill:    the cursor inside a line; a piece of it, with code after it on the line
# next_line: a whole line (the next line of an empty line), with or without its indentation in the prefix
# lines:     2-8 whole lines, the last without its newline
# block:     the body of a block right after its opening line (ends in ":", "{", "(", "[", "=>"), at most 8 lines
# Except span, the suffix starts at the newline after the middle, as when the cursor is on a line of its own.
FIM_KINDS = ("span", "line", "infill", "next_line", "lines", "block")
_BLOCK_OPENERS = (":", "{", "(", "[", "=>")


def _indent(line):
    return len(line) - len(line.lstrip(" \t"))


def fim_cut(text, kind, rng):
    """(prefix, middle, suffix) of `text` for a FIM example of `kind`, prefix + middle + suffix == text; None when
    the file has no place for it."""
    if kind == "span":
        lines = text.splitlines(keepends=True)
        if len(lines) < 3:
            return None
        a = rng.randrange(1, len(lines) - 1)
        b = min(len(lines), a + rng.choice([1, 1, 1, 2, 3, 5]))
        pre, mid, suf = "".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:])
        if rng.random() < 0.3 and len(mid) > 2:  # cursor inside the line
            cut = rng.randrange(1, len(mid) - 1)
            pre, mid = pre + mid[:cut], mid[cut:]
        return pre, mid, suf
    lines = text.split("\n")
    starts = [0]
    for l in lines[:-1]:
        starts.append(starts[-1] + len(l) + 1)
    code = [i for i, l in enumerate(lines) if l.strip()]
    if len(lines) < 3 or not code:
        return None

    def body(i):  # where line i's code starts and ends (trailing spaces and \r left to the suffix)
        return starts[i] + _indent(lines[i]), starts[i] + len(lines[i].rstrip())

    if kind in ("line", "infill"):
        need = 2 if kind == "line" else 3
        cand = [i for i in code if body(i)[1] - body(i)[0] >= need]
        if not cand:
            return None
        a, b = body(rng.choice(cand))
        c = rng.randrange(a + 1, b) if kind == "line" else rng.randrange(a + 1, b - 1)
        e = b if kind == "line" else rng.randrange(c + 1, b)
        return text[:c], text[c:e], text[e:]
    if kind == "block":
        cand = [i for i in code if i > 0 and lines[i - 1].rstrip().endswith(_BLOCK_OPENERS)
                and _indent(lines[i]) > _indent(lines[i - 1])]
        if not cand:
            kind = "lines"
        else:
            i = rng.choice(cand)
            j = i
            while j < len(lines) and j - i < 8 and (not lines[j].strip() or _indent(lines[j]) > _indent(lines[i - 1])):
                j += 1
            while not lines[j - 1].strip():
                j -= 1
            n = j - i
    if kind in ("next_line", "lines"):
        i = rng.choice(code)
        n = 1 if kind == "next_line" else rng.randint(2, 8)
        n = min(n, len(lines) - i)
        while not lines[i + n - 1].strip():  # the last line of the middle has code
            n -= 1
    if kind not in ("next_line", "lines", "block"):
        raise ValueError(f"unknown FIM kind {kind!r}; one of {', '.join(FIM_KINDS)}")
    c = body(i)[0] if rng.random() < 0.5 else starts[i]  # the indentation typed already, or not
    e = body(i + n - 1)[1]
    if e <= c:
        return None
    return text[:c], text[c:e], text[e:]


class _File:
    """A file of the row, as the questions see it."""

    def __init__(self, path, text):
        self.path, self.text = path, text
        self.listed = listed_names(text)
        self.counts = word_counts(text)
        self.python = is_python(path)
        self._summaries, self._signatures = {}, {}

    def summary(self, name):
        if name not in self._summaries:
            self._summaries[name] = summary(self.text, name, self.python)
        return self._summaries[name]

    def signature(self, name):
        if name not in self._signatures:
            self._signatures[name] = signature(self.text, name, self.python)
        return self._signatures[name]


class _Row:
    """What a row holds while it is made: tokens, their loss weights, distances and kinds, and its files."""

    def __init__(self):
        self.ids, self.w, self.dist, self.kind = [], [], [], []
        self.files = []  # _File in row order (files whose whole text is in the row)
        self.ends = {}  # path -> position after its frame
        self.defined = {}  # name -> number of files of the row defining it
        self.spread = collections.Counter()  # name -> number of files of the row that have it as a word
        self.asked = set()  # (kind, subject)

    def add(self, ids, w, dist=0, kind=0):
        self.ids += ids
        self.w += w if isinstance(w, list) else [w] * len(ids)
        self.dist += [dist] * len(ids)
        self.kind += [kind] * len(ids)


# token kinds of a row (Examples.row): 0 text or question, 1-5 the answers of KINDS, 6 a FIM middle
TOKEN_KINDS = ("text",) + KINDS + ("fim",)


class Examples:
    """Training rows built from a corpus split with a tokenizer (tokenizers.Tokenizer).

    A row is one workspace stream of a fixed length (one compiled shape for the whole run): files framed as in
    the engine, some FIM-transformed (fim_rate; PSM, the middle cut by fim_kinds), and after files, questions of
    the five kinds (kinds: a mix) about files seen earlier in the row, loss only on the answer. Questions land at
    every distance from their file, from a few tokens to the whole row, so one row teaches them at every context
    length up to its own.
    """

    def __init__(self, tok, files, seed=0, fim_rate=0.5, question_rate=0.85, answer_weight=4.0, first_answer_weight=8.0, fake_path_rate=0.8, workspace_rate=0.7, snippet_rate=0.0, footer=False, far=False, defs=False, index=False, tail=0.0, sub_root_rate=0.0, name_parts=False,
                 kinds=None, fim_kinds=None, fim_weight=1.0, fim_budget=(0, 0), fim_budget_rate=0.0, answer_cap=0):
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
        # the middles' mix (FIM_KINDS) and the weight of their tokens (and of the <|endoftext|> that ends them)
        self.fim_kinds = self._mix(fim_kinds or {"span": 1.0}, FIM_KINDS)
        self.fim_weight = fim_weight
        # fim_budget (lo, hi): with chance fim_budget_rate a FIM example is the engine's completion prompt of a
        # budget drawn in [lo, hi] tokens (fim.ts buildFimPrompt: the prefix cut from the left, the suffix from the
        # right), not a whole file: shorter, so more of them per row, and starting where the engine's start
        self.fim_budget, self.fim_budget_rate = fim_budget, fim_budget_rate
        self.fake_path_rate = fake_path_rate
        self.question_rate = question_rate
        self.kinds = self._mix(kinds or {"definition": 1.0}, KINDS)
        self.answer_weight = answer_weight
        self.first_answer_weight = first_answer_weight  # the path's first token is the retrieval; the rest is copying
        # answer_cap: an answer of more tokens has its weights scaled to the total of this many (an outline of 48
        # names would otherwise outweigh ten lookups); 0: off
        self.answer_cap = answer_cap
        self.workspace_rate = workspace_rate
        self.check_answers = False  # tests: every answer checked against answer() on the row's files
        self.by_package = {}
        for f in files:
            self.by_package.setdefault(f[0], []).append(f)
        self.packages = sorted(self.by_package)

    @staticmethod
    def _mix(mix, allowed):
        bad = set(mix) - set(allowed)
        if bad:
            raise ValueError(f"unknown kinds {sorted(bad)}; one of {', '.join(allowed)}")
        return [(k, mix[k]) for k in allowed if mix.get(k, 0) > 0]

    def _pick(self, mix):
        return self.rng.choices([k for k, _ in mix], [v for _, v in mix])[0]

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
        """The file as the engine's completion prompt (src/engine/completion/fim.ts) plus the middle:
        (ids, weights, kinds, whole) or None; whole: the prompt holds the whole file (then it is a file of the
        row, with its footer), else it was cut to a budget as the engine cuts it (a completion, no footer)."""
        cut = fim_cut(text, self._pick(self.fim_kinds), self.rng)
        if cut is None or not cut[1].strip():
            return None
        pre, mid, suf = cut
        head = [self.sp["<filename>"]] + self.enc(path + "\n")
        p, s = self.enc(pre), self.enc(suf)
        whole = True
        if self.fim_budget[1] and self.rng.random() < self.fim_budget_rate:
            room = max(0, self.rng.randint(*self.fim_budget) - len(head) - 3)
            suf_room = min(len(s), room // 4)
            pre_room = min(len(p), room - suf_room)
            suf_keep = min(len(s), room - pre_room)
            whole = pre_room == len(p) and suf_keep == len(s)
            p, s = p[len(p) - pre_room:], s[:suf_keep]
        prompt = head + [self.sp["<fim_prefix>"]] + p + [self.sp["<fim_suffix>"]] + s + [self.sp["<fim_middle>"]]
        m = self.enc(mid) + [self.sp["<|endoftext|>"]]
        foot = [self.sp["<file_sep>"]] + self.tail(path, text) if self.footer and whole else []
        ids = prompt + m + foot
        return (ids, [1.0] * len(prompt) + [self.fim_weight] * len(m) + [1.0] * len(foot),
                [0] * len(prompt) + [TOKEN_KINDS.index("fim")] * len(m) + [0] * len(foot), whole)

    def snippet(self, text):
        """A window of 6-60 lines, starting at a top-level definition when the file has one."""
        lines = text.splitlines(keepends=True)
        starts = [i for i, l in enumerate(lines) if DEF_RE.match(l)]
        a = self.rng.choice(starts) if starts and self.rng.random() < 0.95 else self.rng.randrange(len(lines))
        a = max(0, a - self.rng.randrange(0, 6))
        return "".join(lines[a:a + self.rng.randint(6, 60)])

    def question(self, kind, subject, answer_text):
        """(question ids, answer ids). A path in the answer is in backticks: after " `" it is tokenized exactly as
        in the file's header (" path" would merge the space into the first part, a different token), so it is a copy."""
        q = [self.sp["<file_sep>"]] + self.enc(f"Question: {QUESTION_FORMS[kind].format(subject)}\nAnswer:")
        return q, self.enc(" " + answer_text) + [self.sp["<|endoftext|>"]]

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

    def _subject(self, kind, f, names, row):
        """The name of f to ask about, drawn so the answers are varied: usages mostly of names used elsewhere,
        signatures mostly of names with parameters, summaries about half with a docstring."""
        pick = self.rng.choice
        if kind == "usages":
            used = [n for n in names if row.spread[n] > 1]  # the defining file has it too
            return pick(used) if used and self.rng.random() < 0.8 else pick(names)
        if kind == "signature":
            calls = [n for n in names if f.signature(n) != n]
            return pick(calls) if calls and self.rng.random() < 0.8 else pick(names)
        if kind == "summary":
            doc = [n for n in names if f.summary(n)]
            bare = [n for n in names if not f.summary(n)]
            return pick(doc if doc and (not bare or self.rng.random() < 0.5) else bare)
        return pick(names)

    def _ask(self, row, far):
        """Appends a question about a file seen earlier in the row and its answer; False when none is left. No
        question is repeated (the answer could be copied) and no name defined in two files is asked about. far:
        about the file whose end is nearest to a distance drawn uniformly over the row so far. The kind is drawn
        from the mix; one with nothing left to ask gives way to the others."""
        kinds = [self._pick(self.kinds)] + [k for k, _ in self.kinds]
        for kind in dict.fromkeys(kinds):
            if kind == "outline":
                # files that define nothing ("nothing") are a tenth of the outlines
                open_ = [(f, [f.path]) for f in row.files if ("outline", f.path) not in row.asked]
                bare = self.rng.random() < 0.1
                open_ = [e for e in open_ if bool(e[0].listed) != bare]
            else:
                open_ = [(f, [n for n in f.listed if row.defined[n] == 1 and (kind, n) not in row.asked]) for f in row.files]
                open_ = [(f, ns) for f, ns in open_ if ns]
                if kind == "usages":  # mostly about names used elsewhere in the row ("none" would be most answers)
                    used = [(f, ns) for f, ns in open_ if any(row.spread[n] > 1 for n in ns)]
                    if used and self.rng.random() < 0.8:
                        open_ = used
                    elif not used and self.rng.random() < 0.9:
                        open_ = []
            if open_:
                break
        else:
            return False
        if far:
            at = len(row.ids) - self.rng.randrange(len(row.ids) + 1)
            f, ns = min(open_, key=lambda e: abs(row.ends[e[0].path] - at))
        else:
            f, ns = self.rng.choice(open_)
        subject = ns[0] if kind == "outline" else self._subject(kind, f, ns, row)
        row.asked.add((kind, subject))
        # answer()'s rules, from what the row's files already know (answer() would read every file again)
        if kind == "outline":
            text = _ticks(f.listed) or "nothing"
        elif kind == "definition":
            text = f"`{f.path}`"
        elif kind == "usages":
            before = [(g.path, g.text) for g in row.files]
            text = _ticks(usages(before, subject, [g.counts for g in row.files], home=f.path)) or "none"
        elif kind == "signature":
            text = f"`{f.signature(subject)}`"
        else:
            text = f"{f.summary(subject) or 'no docstring'} (`{f.path}`)"
        if self.check_answers:
            assert text == answer(kind, subject, [(g.path, g.text) for g in row.files]), (kind, subject, text)
        q, a = self.question(kind, subject, text)
        row.add(q, 0.0)
        scale = min(1.0, self.answer_cap / len(a)) if self.answer_cap else 1.0
        w = [self.answer_weight * scale] * len(a)
        if kind == "definition" and len(a) > 1:
            w[1] = self.first_answer_weight * scale
        row.add(a, w, dist=len(row.ids) - row.ends[f.path], kind=TOKEN_KINDS.index(kind))
        return True

    def row(self, length):
        """(ids, weights, distances, kinds) of length + 1 tokens; distances: on answer tokens, how far (in tokens)
        the question is from the end of the file it asks about, else 0; kinds: TOKEN_KINDS index of each token."""
        row = _Row()
        paths = set()
        files = self._files()
        while len(row.ids) < length + 1:
            if self.closing and len(row.ids) >= length * (1 - self.closing):
                if self._ask(row, far=False):
                    continue
            path, text = next(files)
            if path in paths:
                continue
            if self.snippet_rate and self.rng.random() < self.snippet_rate:
                text = self.snippet(text)
            paths.add(path)
            fim = self.fim_frame(path, text) if self.rng.random() < self.fim_rate else None
            if fim:
                ids, w, kinds, whole = fim
                row.ids += ids
                row.w += w
                row.kind += kinds
                row.dist += [0] * len(ids)
            else:
                whole = True
                row.add(self.frame(path, text), 1.0)
            if not whole:  # a completion prompt, not a file of the workspace
                continue
            row.ends[path] = len(row.ids)
            f = _File(path, text)
            row.files.append(f)
            for n in set(definitions(text)):
                row.defined[n] = row.defined.get(n, 0) + 1
            row.spread.update(f.counts.keys())
            # far: questions come more often as the row fills, so that many are asked at long range
            rate = self.question_rate * (min(1.0, 2 * len(row.ids) / length) if self.far else 1.0)
            while self.rng.random() < rate and self._ask(row, far=self.far):
                pass
        n = length + 1
        return row.ids[:n], row.w[:n], row.dist[:n], row.kind[:n]


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
