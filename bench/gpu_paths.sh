#!/usr/bin/env bash
# Lesson 16's path models at the `gpu` preset's shape (6 layers, 6 heads, width 384: 10.6M parameters) on one
# CUDA card, with bench/gpu_check.py beside them (RESULTS.md sections 7.6 and 12):
#
#     bash bench/gpu_paths.sh RUNS OUT MAPS       # e.g. bash bench/gpu_paths.sh /tmp/runs /tmp/out data/maps
#
# 1. The TRAINERS (default "dllm gpt"), side by side on the card: batch 64 and STEPS steps each (default 4,800: as
#    many maps as the CPU's 9,600-step run of batch 32 saw, so that size is what differs), bf16, each stopped
#    cleanly by SIGINT after LIMIT seconds if it has not finished (best.pt is then the last evaluation's best).
#    A trainer is dllm or gpt (python 16_robot_paths.py train --model ...) or mgdm (bench/paths_mgdm.py, Ye et
#    al.'s loss), with -sSEED for another seed than 1337 (dllm-s2). bench/gpu_check.py at the same time: its rows
#    pass or fail as alone, its speeds are shared ones.
# 2. bench/paths.py --device cuda on each dLLM's best checkpoint, side by side: the same test maps as section 7.6
#    (PER_KIND of each kind), beside the GPT trained here (the shipped 0.8M paths-gpt if none was), into
#    OUT/results/paths for dllm and OUT/results/paths_TRAINER for the others.
# 3. bench/ship_model.py --device cuda on the SHIP models into OUT/ship (fp16, sharded over 16 MB), then
#    OUT/ship.tar cut into 15 MB pieces (join them with `cat ship.tar.* > ship.tar`); the logs, metrics and tables
#    in OUT/results.tar.
# Other sizes and runs: SHAPE (the flags above), NAME (the shipped folders' size tag, default 10m), SHIP (which
# trainers to ship, default "dllm gpt", empty for none: a 21M model's shards are 43 MB), PATHS_EXTRA (more
# bench/paths.py flags), CHECK=0 (no gpu_check: a second call on the same code). Section 7.6's second seed and
# MGDM run: TRAINERS="mgdm dllm-s2" CHECK=0 SHIP= LIMIT=200 SMOOTH=0 PATHS_EXTRA="--repair 0 --by-length".
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
TRAINERS=${TRAINERS:-"dllm gpt"}
SHIP=${SHIP-"dllm gpt"}  # set and empty: ship none
PATHS_EXTRA=${PATHS_EXTRA:-}
CHECK=${CHECK:-1}  # 0: no gpu_check (a second session on the same code)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress bars in the logs, not thousands of them
for m in $SHIP; do
    [[ " $TRAINERS " == *" $m "* ]] || { echo "SHIP names $m, which TRAINERS does not train" >&2; exit 2; }
done
mkdir -p "$RUNS" "$OUT/results"
say() { echo "$(date +%T) $*" | tee -a "$OUT/results/session.log"; }
flags="$SHAPE --steps $STEPS --eval-every $EVAL_EVERY --warmup 300 --maps $MAPS --device $DEVICE"

declare -A command  # each trainer's command line, for its model card
beside=$([ "$DEVICE" = cuda ] && [ "$CHECK" = 1 ] && echo "; gpu_check beside them")
say "1. $TRAINERS, $flags$beside"
for t in $TRAINERS; do
    model=${t%%-s*}  # dllm-s2: the dLLM at seed 2
    seed=1337 && [ "$t" != "$model" ] && seed=${t#*-s}
    case $model in
        dllm | gpt) trainer="16_robot_paths.py train --model $model" ;;
        mgdm) trainer="bench/paths_mgdm.py" ;;
        *) echo "unknown trainer $t (dllm, gpt or mgdm, with -sSEED for a seed)" >&2 && exit 2 ;;
    esac
    command[$t]="python $trainer $flags --seed $seed"
    # shellcheck disable=SC2086  # trainer and flags are lists of words
    timeout -s INT "$LIMIT" $PY $trainer $flags --seed "$seed" --out "$RUNS/$t" --no-plot \
        > "$OUT/results/$t.log" 2>&1 &
done
if [ "$DEVICE" = cuda ] && [ "$CHECK" = 1 ]; then
    nvidia-smi > "$OUT/results/nvidia_smi.txt" 2>&1
    $PY bench/gpu_check.py > "$OUT/results/gpu_check.txt" 2>&1
    say "gpu_check done ($?)"
fi
wait
say "training done"
for t in $TRAINERS; do cp "$RUNS/$t/metrics.csv" "$OUT/results/${t}_metrics.csv"; done

say "2. bench/paths.py on each dLLM"
gpt=checkpoints/pretrained/paths-gpt && [[ " $TRAINERS " == *" gpt "* ]] && gpt=$RUNS/gpt
for t in $TRAINERS; do
    [ "${t%%-s*}" = gpt ] && continue
    dir=paths && [ "$t" != dllm ] && dir=paths_$t
    # shellcheck disable=SC2086  # PATHS_EXTRA is a list of flags
    timeout -s INT 150 $PY bench/paths.py --device "$DEVICE" --dllm "$RUNS/$t" --gpt "$gpt" \
        --per-kind "$PER_KIND" --smooth "$SMOOTH" --test "$MAPS/test.txt" --out-dir "$OUT/results/$dir" \
        $PATHS_EXTRA > "$OUT/results/$dir.log" 2>&1 &
done
wait
say "scored"

say "3. ship $SHIP"
for model in $SHIP; do
    $PY bench/ship_model.py --device "$DEVICE" --run "$RUNS/$model" --name "paths-$model-$NAME" \
        --out-root "$OUT/ship" --command "${command[$model]}" >> "$OUT/results/ship.log" 2>&1
    say "shipped paths-$model-$NAME ($?)"
done
if [ -d "$OUT/ship" ]; then
    tar -cf "$OUT/ship.tar" -C "$OUT/ship" . && rm -rf "$OUT/ship"
    split -b 15M "$OUT/ship.tar" "$OUT/ship.tar." && rm "$OUT/ship.tar"
fi
say "done"
tar -cf "$OUT/results.tar" -C "$OUT" results && rm -rf "$OUT/results"
