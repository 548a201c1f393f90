"""Run by test_support.py under torchrun: lesson 05's loop, with an objective that also writes down, per rank,
the noise levels t its first training step draws (from the global RNG, as the diffusion loss does)."""
import os
import sys
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.cli import run_cli  # noqa: E402 (after the path is set)

train, diff = import_module("05_train"), import_module("04_diffusion")


class Probe(train.DiffusionObjective):
    first = True

    def loss(self, model, x, config):
        if self.first:
            self.first = False
            state = torch.get_rng_state()
            t = diff.sample_times(x.size(0))  # what this step's loss is about to draw
            torch.set_rng_state(state)
            out = Path(os.environ["PROBE_DIR"]) / f"t_rank{os.environ['RANK']}_{os.getpid()}.txt"
            out.write_text(" ".join(f"{v:.6f}" for v in t.tolist()))
        return super().loss(model, x, config)


if __name__ == "__main__":
    run_cli(lambda argv: train.main(argv, objective=Probe))
