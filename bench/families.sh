#!/usr/bin/env bash
# Issue 18's family bench, run ONCE on the GPU machine from the repo root with .gpu and dist present:
#     bash bench/families.sh            (writes $OUT/families-engine.json and $OUT/families-peer.json)
# Every family's real shape (bench/families.json; Jamba-1.5-Mini cut to its first 8 layers there), random bf16
# weights: the engine (node dist/bench.js --shape all-families, decode and prefill tok/s), then transformers eager
# (bench/peer_transformers.py --shape all-families) on the same GPU; a table of both at the end.
# Each side is one process (one device, one torch import) under its own timeout; both write their JSON after every
# shape, so a side cut short keeps the shapes it finished (smallest shapes first). Expected ~3 minutes on one H200,
# at most ENGINE_TIMEOUT + PEER_TIMEOUT (150 + 110 s) plus startup. Short counts keep the whole run near 4 minutes on an
# H200 (7B shapes: engine ~1.5K tok/s prefill / ~40 tok/s decode, transformers ~140 / ~20); override with
# PROMPT, DECODE, PEER_DECODE, ENGINE_TIMEOUT, PEER_TIMEOUT; SHAPES (names or config.json paths, comma-separated),
# PYTHON and PEER_DEVICE for a local run, e.g. on lavapipe with the fixtures:
#     SHAPES=test/fixtures/zamba2,test/fixtures/bamba PROMPT=16 DECODE=4 PEER_DECODE=4 PEER_DEVICE=cpu \
#       PYTHON=/tmp/tfenv/bin/python OUT=/tmp/fam bash bench/families.sh
set -uo pipefail
OUT=${OUT:-/tmp/families-out}
mkdir -p "$OUT"
PROMPT=${PROMPT:-512}
DECODE=${DECODE:-32}
PEER_DECODE=${PEER_DECODE:-16}
SHAPES=${SHAPES:-all-families}
PYTHON=${PYTHON:-python3}
[ -f .gpu/env.sh ] && source .gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
N="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
t0=$(date +%s)
timeout "${ENGINE_TIMEOUT:-150}" node dist/bench.js --shape "$SHAPES" --prompt "$PROMPT" --decode "$DECODE" \
  --json "$OUT/families-engine.json" > "$OUT/families-engine.jsonl" 2> >(grep -v '^Warning: ' >&2)
echo "engine: exit $? after $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
timeout "${PEER_TIMEOUT:-110}" "$PYTHON" bench/peer_transformers.py --shape "$SHAPES" --prompt "$PROMPT" --decode "$PEER_DECODE" --device "${PEER_DEVICE:-cuda}" \
  --json "$OUT/families-peer.json" > "$OUT/families-peer.jsonl" 2> >(grep -v 'falling back to its reference' >&2)
echo "peer: exit $? after $(( $(date +%s) - t1 )) s"
GPU_NAME="$N" "$PYTHON" - "$OUT/families-engine.json" "$OUT/families-peer.json" <<'PY'
import json, os, sys
def load(p):
    try:
        with open(p) as f:
            return {r["shape"]: r for r in json.load(f)["results"]}
    except (OSError, ValueError, KeyError):
        return {}
eng, peer = load(sys.argv[1]), load(sys.argv[2])
print(f"GPU: {os.environ.get('GPU_NAME') or '?'}; random bf16 weights; engine prompt/decode and peer prompt/decode as run above")
print(f"{'shape':36} {'family':17} {'layers':>6} {'prefill tok/s':>14} {'(peer)':>9} {'decode tok/s':>13} {'(peer)':>8} {'roofline':>9}")
for name in list(dict.fromkeys(list(eng) + list(peer))):
    e, p = eng.get(name, {}), peer.get(name, {})
    def f(r, k, d=0):
        if "skipped" in r: return "skipped"
        if "error" in r: return "error"
        return "-" if r.get(k) is None else f"{r[k]:.{d}f}"
    roof = f"{100 * e['decodeRooflineRatio']:.1f}%" if "decodeRooflineRatio" in e else "-"
    print(f"{name:36} {e.get('family', p.get('family', '')):17} {str(e.get('layers', p.get('layers', ''))):>6} "
          f"{f(e, 'prefillTokensPerSecond'):>14} {f(p, 'prefillTokensPerSecond'):>9} {f(e, 'decodeTokensPerSecond', 1):>13} "
          f"{f(p, 'decodeTokensPerSecond', 1):>8} {roof:>9}")
    for side, r in (("engine", e), ("peer", p)):
        if "skipped" in r or "error" in r:
            print(f"    {side}: {r.get('skipped') or r.get('error')}")
PY
echo "total: $(( $(date +%s) - t0 )) s; results in $OUT/families-engine.json and $OUT/families-peer.json"
