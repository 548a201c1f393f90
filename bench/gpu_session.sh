#!/usr/bin/env bash
# The GPU session: every `gpu` preset figure in RESULTS.md section 4.1 comes from this script, run once in the
# repository root of a CUDA machine (it needs nothing from the network):
#
#     bash bench/gpu_session.sh RUNS OUT          # e.g. bash bench/gpu_session.sh /tmp/runs /tmp/out
#
# 1. bench/gpu_check.py, alone on the card (its speeds are clean).
# 2. The dLLM (05) and the GPT (07), the gpu preset's 10,000 steps each, side by side: one 10.7M model keeps the
#    card far from busy, so two share it; their wall times are therefore not solo times (gpu_check's are).
# 3. When the GPT is done: lesson 14 from its best checkpoint, with shift + annealing and the two ablations
#    (--no-shift, --anneal-steps 0), side by side, ADAPT_STEPS each (default 10,000: the scratch run's schedule;
#    the session of RESULTS 4.1 ran this script with ADAPT_STEPS=5000, then the three at 10,000 by hand).
# 4. Every model over every validation window (bench/full_val.py), then the three models we ship
#    (bench/ship_model.py: fp16, sharded over 16 MB) into OUT/ship.
# To check the script on a CPU (about 5 minutes on 2 cores):
#     PRESET=tiny EXTRA="--steps 20 --device cpu" ADAPT_STEPS=10 DEVICE=cpu bash bench/gpu_session.sh RUNS OUT
set -u
RUNS=$1
OUT=$2
PRESET=${PRESET:-gpu}
EXTRA=${EXTRA:-}
ADAPT_STEPS=${ADAPT_STEPS:-10000}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress bars in the logs, not thousands of them
mkdir -p "$RUNS" "$OUT"
say() { echo "$(date +%T) $*" | tee -a "$OUT/session.log"; }

say "1. gpu_check"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
    $PY bench/gpu_check.py > "$OUT/gpu_check.txt" 2>&1
fi

say "2. dLLM and GPT, preset $PRESET"
# shellcheck disable=SC2086  # EXTRA is a list of flags
$PY 05_train.py --preset "$PRESET" --out "$RUNS/dllm" $EXTRA > "$OUT/dllm.log" 2>&1 &
dllm=$!
# shellcheck disable=SC2086
$PY 07_train_gpt.py --preset "$PRESET" --out "$RUNS/gpt" $EXTRA > "$OUT/gpt.log" 2>&1
say "GPT done ($?)"

say "3. lesson 14 from the GPT, $ADAPT_STEPS steps"
adapt=()
for run in "adapt" "adapt_noshift --no-shift" "adapt_noanneal --anneal-steps 0"; do
    read -r name flags <<< "$run"
    # shellcheck disable=SC2086
    $PY 14_from_gpt.py train --gpt "$RUNS/gpt" --preset "$PRESET" --out "$RUNS/$name" $flags $EXTRA \
        --steps "$ADAPT_STEPS" > "$OUT/$name.log" 2>&1 &
    adapt+=($!)
done
wait "$dllm"
say "dLLM done ($?)"
for pid in "${adapt[@]}"; do wait "$pid"; done
say "adaptation done"
for run in dllm gpt adapt adapt_noshift adapt_noanneal; do
    cp "$RUNS/$run/metrics.csv" "$OUT/${run}_metrics.csv"
done

say "4. every validation window, then the shipped models"
$PY bench/full_val.py --device "$DEVICE" --dllm "$RUNS/dllm" "$RUNS/adapt" "$RUNS/adapt_noshift" \
    "$RUNS/adapt_noanneal" --gpt "$RUNS/gpt" > "$OUT/full_val.txt" 2>&1
for spec in "dllm shakespeare-dllm-10m python 05_train.py --preset gpu" \
            "gpt shakespeare-gpt-10m python 07_train_gpt.py --preset gpu" \
            "adapt shakespeare-dllm-from-gpt-10m python 14_from_gpt.py train --preset gpu --gpt checkpoints/gpt \
--steps $ADAPT_STEPS"; do
    read -r run name command <<< "$spec"
    $PY bench/ship_model.py --device "$DEVICE" --run "$RUNS/$run" --name "$name" --out-root "$OUT/ship" \
        --command "$command" >> "$OUT/ship.log" 2>&1
    tar -cf "$OUT/$name.tar" -C "$OUT/ship" "$name"
done
say "done"
