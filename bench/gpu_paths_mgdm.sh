#!/usr/bin/env bash
# Lesson 16's path dLLM at 10.6M (the `gpu` preset's shape) on one CUDA card, two runs side by side (RESULTS.md 7.6):
# Ye et al. 2024's MGDM loss (bench/paths_mgdm.py) at seed 1337, and the plain loss at seed 2 (how far a second
# seed moves the 10.6M's 70.5%); batch 64 for 4,800 steps as bench/gpu_paths.sh, each stopped cleanly by SIGINT
# after LIM seconds if it has not finished. Then bench/paths.py --by-length on both (the shipped 0.8M GPT fills the
# GPT rows), and OUT/results2.tar with the logs, metrics and tables.
#
#     bash bench/gpu_paths_mgdm.sh OUT MAPS        # e.g. bash bench/gpu_paths_mgdm.sh /tmp/out data/maps
#
# To check the script on a CPU (about three minutes):
#     SHAPE="--n-layer 1 --n-head 2 --n-embd 32 --batch-size 8 --steps 4 --eval-every 2" DEV=cpu PK=2 \
#         bash bench/gpu_paths_mgdm.sh OUT data/maps
set -u
O=$1; MAPS=$2
SHAPE=${SHAPE:-"--n-layer 6 --n-head 6 --n-embd 384 --batch-size 64 --steps 4800 --eval-every 600"}
DEV=${DEV:-cuda}; LIM=${LIM:-200}; PK=${PK:-40}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
mkdir -p "$O/r"
F="$SHAPE --warmup 300 --maps $MAPS --device $DEV --no-plot"
echo "$(date +%T) start: $F" > "$O/r/session.log"
# shellcheck disable=SC2086
timeout -s INT "$LIM" python3 bench/paths_mgdm.py $F --out /tmp/r2/mgdm > "$O/r/mgdm.log" 2>&1 &
# shellcheck disable=SC2086
timeout -s INT "$LIM" python3 16_robot_paths.py train --model dllm $F --seed 2 --out /tmp/r2/seed2 \
    > "$O/r/seed2.log" 2>&1 &
wait
echo "$(date +%T) trained" >> "$O/r/session.log"
for m in mgdm seed2; do
    cp /tmp/r2/$m/metrics.csv "$O/r/${m}_metrics.csv"
    timeout -s INT 100 python3 bench/paths.py --device "$DEV" --dllm /tmp/r2/$m \
        --gpt checkpoints/pretrained/paths-gpt --per-kind "$PK" --repair 0 --smooth 0 --by-length \
        --test "$MAPS/test.txt" --out-dir "$O/r/paths_$m" \
        > "$O/r/paths_$m.log" 2>&1 &
done
wait
echo "$(date +%T) scored" >> "$O/r/session.log"
tar -cf "$O/results2.tar" -C "$O" r && rm -rf "$O/r"
