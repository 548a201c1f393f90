#!/usr/bin/env bash
# Lesson 15's uniform-noise dLLM at the gpu preset (10.7M parameters) on one CUDA card, with
# bench/gpu_check.py run beside it on the same card (RESULTS.md sections 3.4 and 12):
#
#     bash bench/gpu_uniform.sh RUN OUT          # e.g. bash bench/gpu_uniform.sh /tmp/uniform /tmp/out
#
# 1. python 15_uniform_noise.py train --preset gpu (05's gpu schedule: 10,000 steps, batch 64 x 256,
#    LR 1e-3, bf16), stopped cleanly by SIGINT after LIMIT seconds if it has not finished: best.pt is
#    then the last evaluation's best.
# 2. bench/gpu_check.py at the same time: one 10.7M model leaves the card far from busy, so its rows
#    pass or fail as alone, but its speeds are shared ones (section 12's clean ones were alone).
# 3. OUT gets the logs, metrics.csv, and best.pt without the optimizer's state, cut into 15 MB pieces
#    (join them with `cat best_model.pt.* > RUN/best.pt`; then bench/ship_model.py ships it).
# To check the script on a CPU (about a minute):
#     PRESET=tiny EXTRA="--steps 20 --device cpu" DEVICE=cpu bash bench/gpu_uniform.sh RUN OUT
set -u
RUN=$1
OUT=$2
PRESET=${PRESET:-gpu}
EXTRA=${EXTRA:-}
LIMIT=${LIMIT:-420}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30  # progress bars in the logs, not thousands of them
mkdir -p "$OUT"
say() { echo "$(date +%T) $*" | tee -a "$OUT/session.log"; }

say "1. lesson 15, uniform noise, preset $PRESET; 2. gpu_check beside it"
# shellcheck disable=SC2086  # EXTRA is a list of flags
timeout -s INT "$LIMIT" $PY 15_uniform_noise.py train --preset "$PRESET" --out "$RUN" --no-plot $EXTRA \
    > "$OUT/uniform.log" 2>&1 &
train=$!
if [ "$DEVICE" = cuda ]; then
    nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
    $PY bench/gpu_check.py > "$OUT/gpu_check.txt" 2>&1
    say "gpu_check done ($?)"
fi
wait "$train"
say "training done ($?)"

say "3. the run's files"
cp "$RUN/metrics.csv" "$OUT/uniform_metrics.csv"
$PY - "$RUN" <<'PY'
import sys
from pathlib import Path

import torch

run = Path(sys.argv[1])
ckpt = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
for key in ("optimizer", "scheduler", "scaler"):
    ckpt[key] = {}  # the model, its config, tokenizer and args stay: enough to score and ship it
torch.save(ckpt, run / "best_model.pt")
print(f"best.pt of step {ckpt['step']}, validation {ckpt['val_bpc']:.4f} bits/char")
PY
split -b 15M "$RUN/best_model.pt" "$OUT/best_model.pt."
say "done"
