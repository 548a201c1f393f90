"""Ye et al. 2024's MGDM loss on lesson 16's path dLLM: does weighting the hard cells plan more maps?

    python bench/paths_mgdm.py --out checkpoints/paths-mgdm     # 16's `paths` preset, 05's loop and flags
    python bench/paths.py --dllm checkpoints/paths-mgdm --repair 0 --smooth 0 --out-dir bench/results/paths_mgdm

"Beyond Autoregression" (Ye et al. 2024, ICLR 2025) names the planning failure "subgoal imbalance": a few tokens
(here, the cells where the path turns around a wall) are hard, and the plain loss spends its gradient on the easy
ones. Their multi-granularity diffusion model (MGDM) reweights the masked cross-entropy twice, as their code
(HKUNLP/diffusion-vs-ar, src/llmtuner/tuner/mdm/trainer.py, `inner_forward`) does:

    noise level   k ~ U{0, ..., T-1}, each free cell masked with probability (k + 1) / T   (T = 20)
    token weight  alpha (1 - exp(-l))^gamma   on a masked cell's loss l (a focal loss: alpha 0.25, gamma 1)
    time weight   T - k                        (their `linear`: few masks count most, gentler than 04's 1/t)
    loss          sum(time weight x token weight x l) / number of masked cells in the batch

(scripts/path/train-mdm.sh, their graph path-finding task, uses alpha 0.25, gamma 1, T 20, `linear`.) gamma 0
leaves the time weight alone. Everything else is lesson 16's dLLM: its maps, its preset (0.8M parameters, 2,400
steps of 32 maps), validation by 04's NELBO (the same bits/map as 16's curves) and paths planned. The run is a
`paths-dllm` checkpoint: 16's `solve --checkpoint` and bench/paths.py plan with it unchanged.
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from importlib import import_module

import torch

from support.cli import int_in, non_negative_float, parse_args_given, positive_float, run_cli

diff = import_module("04_diffusion")
train = import_module("05_train")
P = import_module("16_robot_paths")


def mgdm_loss(model, x, mask_id, alpha=0.25, gamma=1.0, levels=20):
    """MGDM's reweighted masked cross-entropy on the free cells, per masked cell (their code)."""
    grid, answer = x[:, :P.CELLS], x[:, P.CELLS:]  # (B, 256) each
    k = torch.randint(0, levels, (x.size(0),), device=x.device)  # (B,) one noise level per map
    _, mask = diff.forward_process(answer, (k + 1) / levels, mask_id)  # linear: masked w.p. t
    mask &= grid == P.FREE  # walls, S and G are the condition, as in lesson 16
    z = torch.where(mask, mask_id, answer)  # (B, 256)
    ce = diff.masked_cross_entropy(model(z), answer, mask)  # (B, 256), 0 where not masked
    ce = alpha * (1 - torch.exp(-ce)) ** gamma * ce  # a hard cell (high loss) keeps more of it
    return ((levels - k)[:, None] * ce).sum() / mask.sum().clamp(min=1)


class MGDMPaths(P.PathDiffusion):
    """16's dLLM objective with MGDM's training loss; validation is still 04's NELBO."""

    trainer = "bench/paths_mgdm.py"

    def __init__(self, alpha, gamma, levels):
        super().__init__()
        self.alpha, self.gamma, self.levels = alpha, gamma, levels

    def loss(self, model, x, config):
        return mgdm_loss(model, x, config.mask_id, self.alpha, self.gamma, self.levels)


def main(argv=None):
    p = train.training_parser(__doc__, train.ROOT / "checkpoints" / "paths-mgdm", presets=P.PRESETS,
                              folder=("--maps", train.ROOT / "data" / "maps"), samples=False)
    p.add_argument("--alpha", type=positive_float, default=0.25, help="the token weight's scale")
    p.add_argument("--gamma", type=non_negative_float, default=1.0,
                   help="the token weight's power (0: no token weight, the time weight alone)")
    p.add_argument("--levels", type=int_in(2, 1000), default=20, help="noise levels T")
    args = train.resolve(parse_args_given(p, argv), presets=P.PRESETS, default_data=None)
    data = P.MapData(args.maps, "dllm")
    return train.train(args, MGDMPaths(args.alpha, args.gamma, args.levels), data)


if __name__ == "__main__":
    run_cli(main)
