"""Pack JS/TS sources available on the development machine (its npm packages) into train/js_corpus.jsonl.xz,
which travels to the GPU machine with the repository: {"package", "path", "text"} per file, split later by
package (train/data.py HELD_OUT). Minified and generated files and files over 24K characters are left out.

    python3 train/pack_js.py [--root node_modules] [--max-mb 40]
"""
import argparse
import json
import lzma
import os


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="node_modules")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "js_corpus.jsonl.xz"))
    ap.add_argument("--max-mb", type=float, default=40)
    a = ap.parse_args()
    total = 0
    n = 0
    with lzma.open(a.out, "wt", encoding="utf-8", preset=6) as out:
        for dirpath, dirnames, filenames in os.walk(a.root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("test", "tests", "__tests__", "dist-test"))
            for f in sorted(filenames):
                if not f.endswith((".ts", ".tsx", ".js", ".mjs")) or f.endswith((".min.js", ".d.ts.map")):
                    continue
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, a.root)
                parts = rel.split(os.sep)
                pkg = "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
                try:
                    text = open(p, encoding="utf-8").read()
                except (UnicodeDecodeError, OSError):
                    continue
                if not text.strip() or len(text) > 24_000 or max(len(l) for l in text.splitlines() or [""]) > 400:
                    continue
                out.write(json.dumps({"package": pkg.lower(), "path": rel.replace(os.sep, "/"), "text": text}) + "\n")
                total += len(text)
                n += 1
                if total > a.max_mb * 2**20:
                    break
            if total > a.max_mb * 2**20:
                break
    print(json.dumps({"files": n, "chars": total, "bytes_xz": os.path.getsize(a.out)}))


if __name__ == "__main__":
    main()
