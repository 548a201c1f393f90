#!/usr/bin/env bash
# Lesson 17 at scale on one CUDA card (RESULTS.md section 7.7): RL with the exact estimator and d1's KL, and the
# two controls at the same compute, side by side on the card, then the benchmark there:
#
#     bash bench/gpu_rewards.sh RUNS OUT PUZZLES  # e.g. bash bench/gpu_rewards.sh /tmp/runs /tmp/out data/sudoku-100k
#
# 1. A smoke run of each method (one step): if the card's path breaks, the script stops here, in seconds.
# 2. python 17_rewards.py train --method exact --beta 0.04, --method sft and --method rft, PROMPTS x GROUP attempts
#    a step (default 64 x 16: 16 times the CPU runs' 8 x 8) and BUDGET model passes each (default 20,000,000: 20
#    times theirs), side by side; each stopped cleanly by SIGINT after LIMIT seconds if it has not finished (its
#    latest.pt is then the model at the stop, its curve up to the last evaluation).
# 3. bench/rewards.py --device cuda on the three (the test bands of section 7.7, pass@8).
# OUT gets results.tar (logs, metrics, the benchmark's table and curves) and runs.tar (each run's latest.pt and
# metrics.csv, to benchmark again or ship), cut into 15 MB pieces if larger: few files, as a device sends back few.
# RESUME=1 continues the three runs of an earlier call (its runs.tar unpacked into RUNS) for LIMIT seconds more,
# with no smoke runs (RESULTS.md 7.7 continued its first call by hand, as this does).
# To check the script on a CPU (a few minutes):
#     PROMPTS=2 GROUP=2 BUDGET=3000 PER_BAND=4 VARIETY=4 DEVICE=cpu bash bench/gpu_rewards.sh RUNS OUT PUZZLES
set -u
RUNS=$1
OUT=$2
PUZZLES=$3
PROMPTS=${PROMPTS:-64}
GROUP=${GROUP:-16}
BUDGET=${BUDGET:-20000000}
LIMIT=${LIMIT:-360}
PER_BAND=${PER_BAND:-1000}
VARIETY=${VARIETY:-200}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
RESUME=${RESUME:-0}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress bars in the logs, not thousands of them
mkdir -p "$RUNS" "$OUT/results"
say() { echo "$(date +%T) $*" | tee -a "$OUT/results/session.log"; }
pack() { tar -cf "$OUT/results.tar" -C "$OUT" results && rm -rf "$OUT/results"; }
common="--puzzles $PUZZLES --device $DEVICE"

[ "$DEVICE" = cuda ] && nvidia-smi > "$OUT/results/nvidia_smi.txt" 2>&1
if [ "$RESUME" = 1 ]; then
    common="$common --resume"
else
    say "1. smoke runs on $DEVICE"
    for method in "exact --beta 0.04" sft rft; do
        # shellcheck disable=SC2086  # method and common are lists of flags
        if ! $PY 17_rewards.py train --method $method $common --budget 2000 --evals 1 --sft-batch 8 \
                --val-puzzles 8 --out "$RUNS/smoke-${method%% *}" >> "$OUT/results/smoke.log" 2>&1; then
            say "smoke run of $method failed: see smoke.log"
            pack
            exit 1
        fi
    done
fi

say "2. exact + KL 0.04, sft, rft: $PROMPTS x $GROUP attempts a step, $BUDGET passes, at most $LIMIT s each"
for spec in "exact-beta0.04 --method exact --beta 0.04" "sft --method sft --sft-batch $((PROMPTS * GROUP / 4))" \
            "rft --method rft"; do
    read -r name flags <<< "$spec"
    # shellcheck disable=SC2086  # flags and common are lists of flags
    timeout -s INT "$LIMIT" $PY 17_rewards.py train $flags $common --prompts "$PROMPTS" --group "$GROUP" \
        --budget "$BUDGET" --out "$RUNS/$name" > "$OUT/results/$name.log" 2>&1 &
done
wait
say "training done"

say "3. the benchmark on $DEVICE"
$PY bench/rewards.py --device "$DEVICE" --runs "$RUNS/exact-beta0.04" "$RUNS/sft" "$RUNS/rft" \
    --test "$PUZZLES/test.txt" --per-band "$PER_BAND" --variety "$VARIETY" --out-dir "$OUT/results/bench" \
    > "$OUT/results/bench.log" 2>&1
say "benchmark done ($?)"
for name in exact-beta0.04 sft rft; do cp "$RUNS/$name/metrics.csv" "$OUT/results/${name}_metrics.csv"; done
tar -cf "$OUT/runs.tar" -C "$RUNS" exact-beta0.04 sft rft
if [ "$(stat -c %s "$OUT/runs.tar")" -gt 15000000 ]; then
    split -b 15M "$OUT/runs.tar" "$OUT/runs.tar." && rm "$OUT/runs.tar"
fi
say "done"
pack
