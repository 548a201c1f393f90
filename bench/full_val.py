"""Validation bits/char over ALL non-overlapping validation windows of TinyShakespeare (not a run's 64 evaluation
windows): the figure that decides whether a continued run replaces the shipped dLLM, and where the GPT stands.

    python bench/full_val.py --dllm checkpoints/pretrained/shakespeare-dllm RUN \
        --gpt checkpoints/pretrained/shakespeare-gpt

The dLLM's figure is its NELBO (an upper bound; K = 32 stratified noise levels per window, the same masks for every
model); the GPT's is its exact NLL on the same windows (each scored from its second character, as 07's evaluation).
"""
import common  # noqa: F401  (the repository on the import path)

# isort: split
import sys
import time
from importlib import import_module

import torch

from support.cli import ArgumentParser, UsageError, positive_int, run_cli
from support.runtime import setting

train, gpt = import_module("05_train"), import_module("07_train_gpt")


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", nargs="+", required=True, help="dLLM runs or exports to score")
    p.add_argument("--gpt", nargs="*", default=[], help="GPT runs or exports to score on the same windows")
    p.add_argument("--K", type=positive_int, default=32, help="noise levels per window for the dLLM's NELBO")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to score (fp32 either way)")
    args = p.parse_args(argv)
    text = train.shakespeare()
    print(f"# python bench/full_val.py --dllm {' '.join(args.dllm)} --gpt {' '.join(args.gpt)} --K {args.K}"
          f"{' --device cuda' if args.device == 'cuda' else ''}\n# machine: {setting(args.device)}, fp32")
    for kind, paths in (("dllm", args.dllm), ("gpt", args.gpt)):
        for path in paths:
            model, tok, info = common.load_run(kind, path, args.device)
            if tok.to_dict()["tokens"] != sorted(set(text)):
                raise UsageError(f"{path} was not trained on TinyShakespeare's characters")
            _, val, _ = train.split_corpus(text, tok)
            L = model.config.block_size
            windows = train.eval_windows(val, len(val), L + 1).to(args.device)  # every non-overlapping L + 1
            t0 = time.perf_counter()
            with torch.no_grad():
                bits = (train.DiffusionObjective().val_bits(model, windows, args.K, model.config) if kind == "dllm"
                        else gpt.NextTokenObjective().val_bits(model, windows))
            print(f"{kind} {path}: {bits:.4f} bits/char over {len(windows)} windows of {L} "
                  f"({'NELBO, upper bound' if kind == 'dllm' else 'exact NLL'}; {time.perf_counter() - t0:.0f} s)")
            sys.stdout.flush()


if __name__ == "__main__":
    run_cli(main)
