"""Lesson 16's path dLLM trained on each map turned and mirrored: more than one shortest way a map.

    python bench/paths_sym.py --out checkpoints/paths-sym     # 16's `paths` preset, 05's loop and flags
    python bench/paths.py --dllm checkpoints/paths-sym --repair 0 --smooth 0 --out-dir bench/results/paths_sym

robot_maps.py draws one shortest path a map by a fixed tie-break (straight on, else up, right, down, left), and
bench/paths_walk.py's first-call probe found the trained dLLM sure of that one path and of little else: about
0.11-0.13 on the cells of the map's other shortest ways, 2.5 times a cell off every shortest way (RESULTS 7.6).
A square has 8 symmetries (4 quarter turns, each mirrored or not); a map turned or mirrored with its path is a map
with a shortest path, but not always the one the tie-break would draw for it: its path comes from the tie-break
turned with it. So each training map, drawn with one of the 8 at random, shows the model up to 8 shortest ways
of the same kind of map: the data augmentation lesson 12 uses on Sudoku (`symmetric_batch`), here a test of
whether knowing more than one way helps the planner. Validation and the test maps are the untouched ones; a plan
counts if it is any shortest path, as always. Everything else is lesson 16's dLLM; the run is a `paths-dllm`
checkpoint that 16's `solve --checkpoint` and bench/paths.py plan with unchanged.
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from importlib import import_module

import torch

from support.cli import parse_args_given, run_cli

train = import_module("05_train")
P = import_module("16_robot_paths")


def random_pose(x):
    """Each map of x (B, 512: its 256 cells, then its answer's) turned by 0-3 quarter turns and mirrored or not,
    one of the square's 8 symmetries drawn per map; the grid and its answer move together."""
    g = x.view(-1, 2, P.SIZE, P.SIZE)  # (B, 2, 16, 16)
    turns = torch.randint(4, (len(g),), device=x.device)
    mirror = torch.randint(2, (len(g),), device=x.device).bool()
    g = torch.where(mirror[:, None, None, None], g.flip(-1), g)
    out = g.clone()
    for k in range(1, 4):
        out[turns == k] = torch.rot90(g[turns == k], k, (-2, -1))
    return out.reshape(x.shape)


class SymmetricPaths(P.PathDiffusion):
    """16's dLLM objective on maps turned and mirrored at random; validation is the untouched maps'."""

    trainer = "bench/paths_sym.py"

    def loss(self, model, x, config):
        return super().loss(model, random_pose(x), config)


def main(argv=None):
    p = train.training_parser(__doc__, train.ROOT / "checkpoints" / "paths-sym", presets=P.PRESETS,
                              folder=("--maps", train.ROOT / "data" / "maps"), samples=False)
    args = train.resolve(parse_args_given(p, argv), presets=P.PRESETS, default_data=None)
    return train.train(args, SymmetricPaths(), P.MapData(args.maps, "dllm"))


if __name__ == "__main__":
    run_cli(main)
