#!/usr/bin/env bash
# Trains the bundled model on the GPU machine across several device commands (each runs at most 10 minutes;
# the training process runs detached between them while the machine is held). From the project root there:
#   bash train/device.sh smoke [MINUTES]               # the train/test_*.py checks, a short base run (QAT on after a quarter), q4 export --check
#   bash train/device.sh start MINUTES TRAIN_MINUTES   # corpus, tokenizer, compile, then training, detached
#   bash train/device.sh wait SECONDS                  # follow the log; returns early when training is over
#   bash train/device.sh finish                        # export (q4 for the base model, --check), evaluate on the engine, results into $OUT
# TRAIN_GPUS=0,1,2,3,4,5,6,7 trains data-parallel on those GPUs (torchrun, one rank each); leaving GPU 0 out
# (TRAIN_GPUS=1,2,3) keeps it free for the engine's Dawn adapter, which takes the first GPU, so benchmarks can
# run beside the training. TRAIN_ARGS: more train.py flags. EVAL_MODEL=model-bf16 evaluates the bf16 export
# (written beside the q4 one) instead of the bundled format; EVAL=0 skips the evaluation (no .gpu needed), BF16_OUT=1
# also returns the bf16 export in $OUT.
set -euo pipefail
W=${SW_WORK:-/tmp/sw-train}
mkdir -p "$W"
launch=(python3)
if [ -n "${TRAIN_GPUS:-}" ]; then
  export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=$TRAIN_GPUS NCCL_NVLS_ENABLE=0
  launch=(python3 -m torch.distributed.run --standalone --nproc_per_node "$(echo "$TRAIN_GPUS" | tr ',' '\n' | wc -l)")
fi
case "$1" in
  smoke)
    python3 train/test_data.py
    python3 train/test_quant.py
    S=/tmp/sw-smoke
    rm -rf "$S"
    "${launch[@]}" train/train.py --work "$S" --compile --minutes "${2:-4}" --total-minutes "${2:-4}" --qat-start 0.25 \
      --qat-gap-every 25 ${TRAIN_ARGS:-} 2>&1 | grep -v '^\[rank' | tail -n 40
    python3 train/export.py --work "$S" --out "$S/model" --check
    ;;
  start)
    setsid nohup "${launch[@]}" train/train.py --work "$W" --compile --minutes "$2" --total-minutes "$3" ${TRAIN_ARGS:-} \
      >"$W/train.log" 2>&1 </dev/null &
    echo $! >"$W/pid"
    bash "$0" wait "${4:-540}"
    ;;
  wait)
    end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ] && kill -0 "$(cat "$W/pid")" 2>/dev/null; do
      sleep 15
      tail -n 1 "$W/train.log"
    done
    tail -n 4 "$W/train.log"
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader || true
    ;;
  finish)
    while kill -0 "$(cat "$W/pid")" 2>/dev/null; do sleep 5; done
    tail -n 3 "$W/train.log"
    python3 train/export.py --work "$W" --out "$W/model" --check
    python3 train/export.py --work "$W" --out "$W/model-bf16" --quant none
    python3 train/data.py train/js_corpus.jsonl.xz --heldout "$W/heldout"
    OUT=${OUT:-/tmp/out}
    mkdir -p "$OUT"
    cp "$W/train.log" "$OUT/train.log"
    tar -C "$W" -cf - model | split -b 15000000 - "$OUT/model.tar.part"
    [ "${BF16_OUT:-0}" = 0 ] || tar -C "$W" -cf - model-bf16 | split -b 15000000 - "$OUT/model-bf16.tar.part"
    [ "${EVAL:-1}" = 0 ] && exit 0  # EVAL=0: evaluate elsewhere (the exports come back in $OUT)
    source .gpu/env.sh
    node dist/eval.js --model "$W/${EVAL_MODEL:-model}" --data "$W/heldout" ${EVAL_ARGS:---files 40 --fim 100 --lookup 40 \
      --lengths 4096,16384,65536} --json "$OUT/eval-h100.json" 2>&1 | tail -n 30
    ;;
  *)
    echo "usage: bash train/device.sh smoke [MINUTES] | start MINUTES TRAIN_MINUTES [WAIT_SECONDS] | wait SECONDS | finish" >&2
    exit 2
    ;;
esac
