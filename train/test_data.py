"""Checks of train/data.py: the five question kinds' ground truth (on the fixtures and expectations of
test/workspace/symbols.test.ts, since src/workspace/symbols.ts is the reference these rules mirror), the FIM cuts,
and (with the tokenizers package and models/default/tokenizer.json) whole training rows. No torch needed:

    python3 train/test_data.py
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

CLI_PY = '''import argparse
from pkg.util import load_config, Config


def parse_args(
    argv: list[str] | None = None,
    *,
    prog: str = "tool",
) -> argparse.Namespace:
    r"""Parse the command line.

    Returns the namespace.
    """
    parser = argparse.ArgumentParser(prog=prog)
    return parser.parse_args(argv)


class Runner(Base):
    \'\'\'Runs jobs. Each job gets a fresh Config.\'\'\'

    def __init__(self, config: Config):
        self.config = config


async def fetch_all(urls):  # no docstring
    return [await fetch(u) for u in urls]


class Plain:
    x = 1


def main() -> None:
    # a comment before the docstring
    """Entry point for the tool"""
    args = parse_args()
    Runner(load_config(args))
'''

UTIL_PY = '''"""Helpers."""
import json

MAX = 3


def load_config(path: str, *, strict: bool = False) -> Dict[str,
                                                            "Config"]:
    u"""Load a config file.  Missing keys
    get defaults."""
    with open(path) as f:
        return Config(**json.load(f))


@dataclass
class Config:
    """Settings for a run: the model, its dtype, e.g. bf16 and more."""
    model: str


def _helper(x): return x
'''

TOKENIZE_TS = r'''import { Config } from './config';

/**
 * Splits `text` into tokens. The split is greedy.
 * @param text the input
 */
export function tokenize<T extends string>(
  text: T,
  opts: { lower?: boolean } = {},
): string[] {
  return text.split(/\s+/);
}

// Joins tokens back.
// Spaces between.
export const detokenize = (tokens: string[]) => tokens.join(' ');

export interface TokenizerOptions {
  lower: boolean;
}

/* A plain block comment without a period */
export default class Tokenizer extends Base {
  constructor(private readonly config: Config) {
    super();
  }
}

/** The service. */
@injectable()
@scoped('app')
export class Service {}

/**
 * @internal
 */
export abstract class Shape {}

function helperFn(x: number) {
  return tokenize(String(x));
}
'''

MAIN_TS = '''import Tokenizer, { tokenize, detokenize } from './engine/tokenize';

const t = new Tokenizer(config);
console.log(detokenize(tokenize('a b')), tokenize('c'));
'''

WS = [("pkg/cli.py", CLI_PY), ("pkg/util.py", UTIL_PY), ("src/engine/tokenize.ts", TOKENIZE_TS), ("src/main.ts", MAIN_TS)]


def sig(name, files=WS):
    a = data.answer("signature", name, files)
    return a if a is None else a[1:-1]


def summ(name, files=WS):
    a = data.answer("summary", name, files)
    return None if a is None or a.startswith("no docstring (") else a[:a.rindex(" (`")]


def check_definition_and_outline():
    defined = lambda name, files=WS: data.defining_file(files, name)  # noqa: E731
    assert defined("parse_args") == "pkg/cli.py"
    assert defined("Config") == "pkg/util.py"  # an import is no definition
    assert defined("Tokenizer") == "src/engine/tokenize.ts"  # export default class
    assert defined("Shape") == "src/engine/tokenize.ts"  # abstract class
    assert defined("__init__") is None and defined("MAX") is None and defined("missing") is None
    twice = [("a.py", "def shared():\n    pass\n"), ("b.py", "def shared():\n    pass\n")]
    assert defined("shared", twice) == "a.py"
    assert data.listed_names(CLI_PY) == ["parse_args", "Runner", "fetch_all", "Plain", "main"]
    assert data.listed_names(TOKENIZE_TS) == ["tokenize", "detokenize", "TokenizerOptions", "Tokenizer", "Service", "Shape", "helperFn"]
    many = "".join(f"def func{i}():\n    pass\n" for i in range(50)) + "def func0():\n    pass\n"
    files = [("many.py", many), ("late.py", "def func49():\n    pass\n")]
    assert len(data.listed_names(many)) == data.MAX_LISTED_DEFINITIONS and defined("func49", files) == "late.py"
    assert data.answer("outline", "src/main.ts", WS) == "nothing"
    assert data.answer("outline", "pkg/cli.py", WS) == "`parse_args` `Runner` `fetch_all` `Plain` `main`"
    assert data.answer("outline", "pkg/util.py", WS) == "`load_config` `Config` `_helper`"
    assert data.answer("outline", "nope.py", WS) is None
    assert data.definitions("def déjà_vu():\n    pass\n") == []  # ASCII names, as JS reads \w


def check_usages():
    assert data.usages(WS, "Config") == ["pkg/cli.py", "src/engine/tokenize.ts"]
    assert data.usages(WS, "tokenize") == ["src/main.ts"]  # './engine/tokenize' counts too
    assert data.answer("usages", "parse_args", WS) == "none"
    assert data.answer("usages", "Config", WS) == "`pkg/cli.py` `src/engine/tokenize.ts`"
    files = [("def.ts", "export function fetchIt() {}\n"), ("a.ts", "fetchItAll(); _fetchIt(); $fetchIt; fetchIt2; fetchIt_\n"),
             ("b.ts", 'x.fetchIt(); (fetchIt)\n"fetchIt"\n')]
    assert data.usages(files, "fetchIt") == ["b.ts"]  # whole words only
    assert data.usages([("d.js", "export function $emit() {}"), ("e.js", "a.$emit(); b.$emitter()")], "$emit") == ["e.js"]
    counts = [1, 3, 1, 2, 3, 1, 1]
    files = [("home.py", "def target():\n    target()\n")] + [(f"f{i}.py", "target(x)\n" * n) for i, n in enumerate(counts)]
    assert data.usages(files, "target") == ["f1.py", "f4.py", "f3.py", "f0.py", "f2.py"]  # count, then row order, 5
    assert data.answer("usages", "nowhere_defined", [("a.py", "nowhere_defined()")]) == "`a.py`"


def check_signatures():
    assert sig("parse_args") == 'parse_args(argv: list[str] | None = None, *, prog: str = "tool",) -> argparse.Namespace'
    assert sig("load_config") == 'load_config(path: str, *, strict: bool = False) -> Dict[str, "Config"]'
    assert sig("Runner") == "Runner(Base)"
    assert sig("fetch_all") == "fetch_all(urls)"  # a comment after the header is no return annotation
    assert sig("Plain") == "Plain" and sig("main") == "main() -> None" and sig("_helper") == "_helper(x)"
    assert data.answer("signature", "main", WS) == "`main() -> None`" and sig("missing") is None
    assert sig("tokenize") == "tokenize<T extends string>(text: T, opts: { lower?: boolean } = {},)"
    assert sig("detokenize") == "detokenize"  # `export const NAME = (...) =>`: the name
    assert sig("TokenizerOptions") == "TokenizerOptions" and sig("Tokenizer") == "Tokenizer" and sig("Service") == "Service"
    assert sig("helperFn") == "helperFn(x: number)"

    def lines(n):
        return "def many(\n" + "".join(f"    a{i},\n" for i in range(n - 2)) + "):\n    pass\n"
    assert sig("many", [("m.py", lines(12))]) == "many(" + " ".join(f"a{i}," for i in range(10)) + ")"
    assert sig("many", [("m.py", lines(13))]) == "many"  # 13 lines: the name alone

    def wide(n):
        return [("w.ts", f"export function wide({params(n)}) {{}}\n")]

    def params(n):
        return ", ".join(f"p{i:02d}" for i in range(n))
    assert sig("wide", wide(39)) == f"wide({params(39)})"  # 199 characters
    assert sig("wide", wide(40)) == f"wide({params(40)})"[:200]
    assert sig("wide", wide(59)) == f"wide({params(59)})"[:200]  # 299 characters of source: kept, then cut
    assert sig("wide", wide(60)) == "wide"  # 304 characters of source
    assert sig("open", [("o.py", "def open_(x:\n")]) is None
    assert sig("unclosed", [("u.py", "def unclosed(x,\n    y:\n")]) == "unclosed"
    assert sig("annots", [("a.py", "def annots(a) -> 'x:y' :\n    pass\n")]) == "annots(a) -> 'x"  # strings are not parsed
    # JS measures in UTF-16 units: 200 of them end inside a pair, whose first half the engine reads as U+FFFD
    smile = "\U0001F600"
    assert sig("smile", [("s.py", f"def smile(a='{smile * 120}'):\n    pass\n")]) == "smile(a='" + smile * 95 + "\ufffd"


def check_summaries():
    assert summ("parse_args") == "Parse the command line."
    assert summ("Runner") == "Runs jobs."
    assert summ("load_config") == "Load a config file."  # a header across lines, then u"""
    assert summ("main") == "Entry point for the tool"  # no period: the paragraph; a comment before it skipped
    assert summ("fetch_all") is None and summ("Plain") is None and summ("_helper") is None
    assert summ("Config") == "Settings for a run: the model, its dtype, e.g."
    assert data.answer("summary", "missing", WS) is None
    assert data.answer("summary", "parse_args", WS) == "Parse the command line. (`pkg/cli.py`)"
    assert data.answer("summary", "fetch_all", WS) == "no docstring (`pkg/cli.py`)"
    odd = [("a.py", 'def unclosed():\n    """never closed\n'), ("b.py", "def empty():\n    '''   '''\n"),
           ("c.py", 'def rb_prefix():\n    Rb"""Bytes doc. More."""\n'), ("d.py", 'def single():\n    "single quotes are no docstring here."\n')]
    assert summ("unclosed", odd) is None and summ("empty", odd) is None and summ("single", odd) is None
    assert summ("rb_prefix", odd) == "Bytes doc."
    assert summ("tokenize") == "Splits `text` into tokens." and summ("detokenize") == "Joins tokens back."
    assert summ("Tokenizer") == "A plain block comment without a period"
    assert summ("Service") == "The service."  # above the decorators
    assert summ("Shape") is None and summ("TokenizerOptions") is None and summ("helperFn") is None
    ts = [("x.ts", "const a = 1; /* trailing */\nexport function afterCode() {}\n/** One line. */ \nexport function oneLine() {}\n"
                   "/// Triple slash, no period\nexport function triple() {}\n")]
    assert summ("afterCode", ts) is None and summ("oneLine", ts) == "One line." and summ("triple", ts) == "Triple slash, no period"
    first = data.first_sentence
    assert first("  Does   a\n  thing.\n\nMore.") == "Does a thing."
    assert first("No period here\nstill the paragraph\n\nNext one.") == "No period here still the paragraph"
    assert first("Version 1.5 is the one.") == "Version 1.5 is the one." and first("Text\n@param x\nmore.") == "Text"
    long = " ".join(f"word{i}" for i in range(60))
    assert first(long) == long[:long[:201].rindex(" ")] and first("x" * 250) == "x" * 200 and first("   \n  ") == ""


def check_crlf():
    crlf = [(p, t.replace("\n", "\r\n")) for p, t in WS]
    for kind in ("definition", "usages", "signature", "summary"):
        for name in ("parse_args", "load_config", "tokenize", "Service", "Config"):
            assert data.answer(kind, name, crlf) == data.answer(kind, name, WS), (kind, name)


def check_mix():
    assert data.QUESTION_FORMS["usages"].format("X") == "Where is `X` used?"
    assert data.QUESTION_FORMS["outline"].format("a/b.py") == "What is defined in `a/b.py`?"
    assert data.parse_mix("definition=0.3, usages=0.7", data.KINDS) == {"definition": 0.3, "usages": 0.7}
    for bad in ("definitions=1", "usages", "usages=-1", ""):
        try:
            data.parse_mix(bad, data.KINDS)
        except ValueError:
            continue
        raise AssertionError(bad)


def check_fim_cuts():
    rng = random.Random(0)
    for text in (CLI_PY, UTIL_PY, TOKENIZE_TS, "a = 1\n\n    b = 2  \r\nc = 3"):
        for kind in data.FIM_KINDS:
            for _ in range(200):
                cut = data.fim_cut(text, kind, rng)
                assert cut is not None, kind
                pre, mid, suf = cut
                assert pre + mid + suf == text and mid, (kind, cut)
                if kind == "span":
                    continue
                if kind != "infill":  # a piece of a line may end in a space
                    assert mid == mid.rstrip() and mid.strip(), (kind, mid)  # no trailing newline or spaces
                assert suf == "" or suf[0] in " \t\r\n" or kind == "infill", (kind, suf[:5])
                if kind in ("line", "infill", "next_line"):
                    assert "\n" not in mid, (kind, mid)
                if kind == "line":
                    assert pre[-1] != "\n" and pre.rsplit("\n", 1)[-1].strip(), (kind, pre[-20:])  # code before, on the line
                if kind == "infill":
                    assert suf.split("\n", 1)[0].strip(), (kind, suf[:20])  # code after, on the line
                if kind in ("next_line", "lines", "block"):
                    assert not pre.rsplit("\n", 1)[-1].strip(), (kind, pre[-20:])  # only indentation before, on the line
    assert data.fim_cut("one line\n", "lines", rng) is None
    # a block's body: after its opening line, up to the line indented like the opener
    text = "def f(x):\n    a = 1\n\n    return a\nprint(f)\n"
    bodies = {data.fim_cut(text, "block", random.Random(i))[1].lstrip() for i in range(20)}
    assert bodies == {"a = 1\n\n    return a"}, bodies


def check_rows(tok):
    """Whole rows: every answer checked against data.answer() on the row's files (Examples.check_answers), the
    arrays aligned, the weights and kinds where they belong, all five kinds and the FIM middles present."""
    files = []
    for pkg in range(12):
        for i in range(8):
            text = CLI_PY.replace("parse_args", f"parse_args{pkg}_{i}").replace("Runner", f"Runner{pkg}_{i}")
            text += f"\n\ndef user_{pkg}_{i}():\n    return parse_args{pkg}_{(i + 1) % 8}() + fetch_all()\n"
            files.append((f"p{pkg}", f"p{pkg}/mod{i}.py", text))
            files.append((f"p{pkg}", f"p{pkg}/src/m{i}.ts", TOKENIZE_TS.replace("helperFn", f"helperFn{pkg}x{i}")))
    kinds = {"definition": 0.3, "usages": 0.15, "signature": 0.2, "summary": 0.2, "outline": 0.15}
    fim = {"span": 0.1, "line": 0.2, "infill": 0.15, "next_line": 0.25, "lines": 0.15, "block": 0.15}
    ex = data.Examples(tok, files, seed=1, footer=True, index=True, far=True, question_rate=0.5, kinds=kinds,
                       fim_rate=0.7, fim_kinds=fim, fim_weight=2.0, fim_budget=(256, 2048), fim_budget_rate=0.5,
                       answer_cap=32, tail=0.25)
    ex.check_answers = True
    seen = {k: 0 for k in data.TOKEN_KINDS}
    eot, sep = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<file_sep>")
    for length in (2048, 16384):
        for _ in range(3):
            ids, w, dist, kind = ex.row(length)
            assert len(ids) == len(w) == len(dist) == len(kind) == length + 1
            for i, k in enumerate(kind):
                if k == 0:
                    assert w[i] in (0.0, 1.0)
                    continue
                if i == 0 or kind[i - 1] != k:  # an answer or middle starts
                    seen[data.TOKEN_KINDS[k]] += 1
                    if data.TOKEN_KINDS[k] == "fim":
                        assert ids[i - 1] == tok.token_to_id("<fim_middle>")
                    else:
                        assert tok.decode(ids[max(0, i - 8):i]).endswith("\nAnswer:") and w[i] > 0
                        assert dist[i] > 0
                if i + 1 < len(kind) and kind[i + 1] != k:  # it ends with <|endoftext|>
                    assert ids[i] == eot, tok.decode(ids[i - 10:i + 1])
    for k in data.TOKEN_KINDS[1:]:
        assert seen[k] > 0, seen
    print("rows:", seen)
    assert ids.count(sep) > 0


def main():
    check_definition_and_outline()
    check_usages()
    check_signatures()
    check_summaries()
    check_crlf()
    check_mix()
    check_fim_cuts()
    path = os.path.join(os.path.dirname(__file__), "..", "models", "default", "tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("rows with the real tokenizer: skipped (no tokenizers package)")
    else:
        check_rows(Tokenizer.from_file(path))
    print("train/test_data.py: all checks passed")


if __name__ == "__main__":
    main()
