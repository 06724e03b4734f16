#!/bin/bash
# Definition lookup on real code with `ask` as shipped (the bundled model):
#   bash bench/lookup-here.sh DIR N
# ingests DIR, then asks "Where is NAME defined?" (typed without backticks, as a user would) about N top-level
# names that the footer regex (src/workspace/frame.ts) finds in exactly one file of DIR (drawn with a fixed
# seed), and prints each answer and the score: the answer must be that file's path exactly.
set -euo pipefail
DIR=$(realpath "$1"); N=$2
cd "$(dirname "$0")/.."
NAMES=$(mktemp)
trap 'rm -f "$NAMES"' EXIT
node dist/cli.js ingest --workspace "$DIR" 2>&1 | tail -1
python3 - "$DIR" "$N" <<'PY' > "$NAMES"
import os,sys,random
sys.path.insert(0, "train")
from data import definitions  # the trainer's copy of the footer regex (src/workspace/frame.ts)
d,n=sys.argv[1],int(sys.argv[2])
defs={}
for root,_,fs in os.walk(d):
  for f in fs:
    p=os.path.join(root,f); t=open(p).read()
    for name in definitions(t): defs.setdefault(name,set()).add(os.path.relpath(p,d))
one=sorted(k for k,v in defs.items() if len(v)==1)
random.Random(1).shuffle(one)
for k in one[:n]: print(k, next(iter(defs[k])))
PY
hit=0; tot=0
while read name path; do
  a=$(node dist/cli.js ask --workspace "$DIR" --max-new-tokens 24 "Where is $name defined?" 2>/dev/null | tr -d ' ')
  tot=$((tot+1)); [ "$a" = "\`$path\`" ] && hit=$((hit+1))
  echo "$name expected $path got $a"
done < "$NAMES"
echo "score $hit / $tot"
