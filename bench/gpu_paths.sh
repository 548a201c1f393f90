#!/usr/bin/env bash
# Lesson 16's path dLLM and path GPT at the `gpu` preset's shape (6 layers, 6 heads, width 384: 10.6M parameters)
# on one CUDA card, with bench/gpu_check.py beside them (RESULTS.md sections 7.6 and 12):
#
#     bash bench/gpu_paths.sh RUNS OUT MAPS       # e.g. bash bench/gpu_paths.sh /tmp/runs /tmp/out data/maps
#
# 1. python 16_robot_paths.py train --model dllm and --model gpt, side by side on the card: batch 64 and STEPS
#    steps each (default 4,800: as many maps as the CPU's 9,600-step run of batch 32 saw, so that size is what
#    differs), bf16, each stopped cleanly by SIGINT after LIMIT seconds if it has not finished (best.pt is then
#    the last evaluation's best). bench/gpu_check.py at the same time: its rows pass or fail as alone, its speeds
#    are shared ones.
# 2. bench/paths.py --device cuda on both best checkpoints: the same test maps as section 7.6 (40 of each kind).
# 3. bench/ship_model.py --device cuda on both into OUT/ship (fp16, sharded over 16 MB), then OUT/ship.tar cut
#    into 15 MB pieces (join them with `cat ship.tar.* > ship.tar`); the logs, metrics and tables in
#    OUT/results.tar.
# Other sizes: SHAPE (the flags above), NAME (the shipped folders' size tag, default 10m), SHIP (which models
# to ship, default "dllm gpt": a 21M model's shards are 43 MB), PATHS_EXTRA (more bench/paths.py flags).
# To check the script on a CPU (about two minutes):
#     SHAPE="--n-layer 1 --n-head 2 --n-embd 32 --batch-size 8" STEPS=4 EVAL_EVERY=2 PER_KIND=2 SMOOTH=2 \
#         DEVICE=cpu bash bench/gpu_paths.sh RUNS OUT data/maps
set -u
RUNS=$1
OUT=$2
MAPS=$3
SHAPE=${SHAPE:-"--n-layer 6 --n-head 6 --n-embd 384 --batch-size 64"}
STEPS=${STEPS:-4800}
EVAL_EVERY=${EVAL_EVERY:-600}
LIMIT=${LIMIT:-300}
PER_KIND=${PER_KIND:-40}
SMOOTH=${SMOOTH:-60}
DEVICE=${DEVICE:-cuda}
NAME=${NAME:-10m}
SHIP=${SHIP:-"dllm gpt"}
PATHS_EXTRA=${PATHS_EXTRA:-}
CHECK=${CHECK:-1}  # 0: no gpu_check (a second session on the same code)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress bars in the logs, not thousands of them
mkdir -p "$RUNS" "$OUT/results"
say() { echo "$(date +%T) $*" | tee -a "$OUT/results/session.log"; }
flags="$SHAPE --steps $STEPS --eval-every $EVAL_EVERY --warmup 300 --maps $MAPS --device $DEVICE"

say "1. the path dLLM and GPT, $flags$([ "$CHECK" = 1 ] && echo "; gpu_check beside them")"
for model in dllm gpt; do
    # shellcheck disable=SC2086  # flags is a list of flags
    timeout -s INT "$LIMIT" $PY 16_robot_paths.py train --model $model $flags --out "$RUNS/$model" --no-plot \
        > "$OUT/results/$model.log" 2>&1 &
done
if [ "$DEVICE" = cuda ] && [ "$CHECK" = 1 ]; then
    nvidia-smi > "$OUT/results/nvidia_smi.txt" 2>&1
    $PY bench/gpu_check.py > "$OUT/results/gpu_check.txt" 2>&1
    say "gpu_check done ($?)"
fi
wait
say "training done"
for model in dllm gpt; do cp "$RUNS/$model/metrics.csv" "$OUT/results/${model}_metrics.csv"; done

say "2. bench/paths.py on both"
# shellcheck disable=SC2086  # PATHS_EXTRA is a list of flags
timeout -s INT 150 $PY bench/paths.py --device "$DEVICE" --dllm "$RUNS/dllm" --gpt "$RUNS/gpt" \
    --per-kind "$PER_KIND" --smooth "$SMOOTH" --test "$MAPS/test.txt" --out-dir "$OUT/results/paths" \
    $PATHS_EXTRA > "$OUT/results/paths.log" 2>&1
say "paths done ($?)"

say "3. ship $SHIP"
for model in $SHIP; do
    $PY bench/ship_model.py --device "$DEVICE" --run "$RUNS/$model" --name "paths-$model-$NAME" \
        --out-root "$OUT/ship" --command "python 16_robot_paths.py train --model $model $flags" \
        >> "$OUT/results/ship.log" 2>&1
    say "shipped paths-$model-$NAME ($?)"
done
tar -cf "$OUT/ship.tar" -C "$OUT/ship" . && rm -rf "$OUT/ship"
split -b 15M "$OUT/ship.tar" "$OUT/ship.tar." && rm "$OUT/ship.tar"
say "done"
tar -cf "$OUT/results.tar" -C "$OUT" results && rm -rf "$OUT/results"
