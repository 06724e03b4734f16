#!/usr/bin/env bash
# Trains the bundled model on the GPU machine across several device commands (each runs at most 10 minutes;
# the training process runs detached between them while the machine is held). From the project root there:
#   bash train/device.sh start MINUTES TRAIN_MINUTES   # corpus, tokenizer, compile, then training, detached
#   bash train/device.sh wait SECONDS                  # follow the log; returns early when training is over
#   bash train/device.sh finish                        # export, evaluate on the engine, results into $OUT
# TRAIN_GPUS=1,2,3 trains data-parallel on those GPUs (torchrun, one rank each), leaving the others free (the
# engine's Dawn adapter takes the first GPU, so benchmarks can run beside the training).
set -euo pipefail
W=${SW_WORK:-/tmp/sw-train}
mkdir -p "$W"
case "$1" in
  start)
    launch=(python3)
    if [ -n "${TRAIN_GPUS:-}" ]; then
      export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=$TRAIN_GPUS NCCL_NVLS_ENABLE=0
      launch=(python3 -m torch.distributed.run --standalone --nproc_per_node "$(echo "$TRAIN_GPUS" | tr ',' '\n' | wc -l)")
    fi
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
    python3 train/export.py --work "$W" --out "$W/model"
    python3 train/data.py train/js_corpus.jsonl.xz --heldout "$W/heldout"
    OUT=${OUT:-/tmp/out}
    mkdir -p "$OUT"
    cp "$W/train.log" "$OUT/train.log"
    tar -C "$W" -cf - model | split -b 15000000 - "$OUT/model.tar.part"
    source .gpu/env.sh
    node dist/eval.js --model "$W/model" --data "$W/heldout" ${EVAL_ARGS:---files 40 --fim 100 --lookup 40 \
      --lengths 4096,16384,65536} --json "$OUT/eval-h100.json" 2>&1 | tail -n 30
    ;;
esac
