"""Lesson 16: a robot's path as a canvas. Planning is infilling.

    python robot_maps.py                             # data/maps/: train, validation, test maps
    python 16_robot_paths.py --show-steps            # the shipped models plan fresh maps; the order
    python 16_robot_paths.py train --model dllm      # 2 CPU cores -> checkpoints/paths-dllm
    python 16_robot_paths.py train --model gpt       # the GPT of its size -> checkpoints/paths-gpt
    python 16_robot_paths.py solve FILE --model dllm # a map per line in, its checked path out
    python 16_robot_paths.py plan data/robot/warehouse.yaml --start 2.75 3.75 --goal 5.75 7.75

Diffuser (Janner et al. 2022) made planning inpainting: fix the start and the goal, denoise the
rest. Here the trajectory is the cells of a 16 x 16 occupancy grid, the denoiser lesson 04's dLLM.
A path is Sudoku with a robot's stakes (lesson 12): which way to turn at a fork depends on cells far
ahead. A GPT writing moves from the start chooses before it has seen where the branches go; the
dLLM sees the whole map at every call and may fill from either end, or the dead ends first. Ye et
al. 2024: discrete diffusion 91.5% vs AR 45.8% on Countdown; arXiv 2602.19980: path finding needs
lookahead forwards and none backwards, which a model free to fill from the goal exploits.

The canvas (robot_maps.py writes the maps): 256 cells row by row, `#` wall, `.` free, `S`, `G`.
  dLLM: every free cell masked, filled with `*` (on the path) or `.` (free); walls, S and G always
        visible (Diffuser's inpainting). 04's NELBO on the masked cells; the surest cell first.
  GPT:  the map, then its moves from S (U R D L) and `$`; next-token loss on the moves; greedy.
Both are scored in bits per map: the dLLM's bound and the GPT's exact NLL of the same path (a
shortest path and its cells determine each other). Both train through lesson 05's loop.
"""
import random
import sys
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

from support import pretrained, ros_map, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    int_in,
    parse_args_given,
    positive_int,
    random_seed,
    run_cli,
    subcommands,
)
from support.files import data_folder, read_text
from support.generate_args import check_gif, gif_path

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")
gpt = import_module("07_train_gpt")
fast = import_module("10_fast_decoding")
maps = import_module("robot_maps")

ROOT = Path(__file__).resolve().parent
CELLS, SIZE = maps.CELLS, maps.SIZE
TOKENS = ".*#SGURDL$"  # free, path, wall, start, goal; the GPT's moves and its end
FREE, PATH, WALL, START, GOAL, END = 0, 1, 2, 3, 4, 9
MOVE_IDS = [TOKENS.index(m) for m in "URDL$"]  # the tokens the GPT may write
MAX_MOVES = maps.MAX_MOVES  # the longest path of a 16 x 16 map fits: 256 + 128 + `$`
# How the dLLM fills the map: one cell per call, surest first, or lesson 10's threshold rule
DECODERS = {"confidence": None, "threshold": fast.Rule("threshold", 0.9)}
# RoPE: a cell's neighbours are at fixed offsets (-16, -1, +1, +16), which relative positions show
# from the first step; learned positions left the dLLM at 0% valid paths after 1,800 steps
PRESETS = {"paths": dict(seq_len=CELLS + MAX_MOVES, n_layer=4, n_head=4, n_embd=128, rope=True,
                         dropout=0.0, batch_size=32, lr=1e-3, warmup=100, steps=2400,
                         eval_every=300, eval_windows=50, eval_k=8, sample_len=0,
                         weight_decay=0.1)}


# --------------------------------------------------------------------------------------------------
# Data: a row per map: the map (256), then the answer (256, dLLM) or the moves (129, GPT)
# --------------------------------------------------------------------------------------------------
def encode(grid, answer, kind):
    """Token ids of one map and what the model of `kind` writes for it."""
    moves = maps.moves_of(grid, maps.route(grid, answer)) + "$"
    out = answer if kind == "dllm" else moves.ljust(MAX_MOVES + 1, "$")
    return [TOKENS.index(ch) for ch in grid + out]


class MapData:
    """What 05's loop trains on (TextData's members): <folder>/train.txt and val.txt of
    robot_maps.py, encoded for the model of `kind`. Scored in bits per map."""

    unit = "bits/map"
    chars_per_token = 1.0  # the objectives already score per map

    def __init__(self, folder, kind):
        folder = data_folder(folder, "maps", "robot_maps.py")
        self.tokenizer = diff.CharTokenizer(TOKENS)
        self.folder, self.kind = folder, kind
        self.train, self.val = (self.read(folder / f"{s}.txt") for s in ("train", "val"))

    def read(self, path):
        rows = maps.read_maps(path)  # a bad line is one error naming FILE:LINE
        if not rows:
            raise UsageError(f"{path}: no maps in it")
        return torch.tensor([encode(grid, answer, self.kind) for grid, answer, _ in rows])

    def describe(self):
        return f"{len(self.train):,} training, {len(self.val):,} validation maps: {self.folder}"

    def batch(self, batch_size, length, generator):
        return self.train[torch.randint(len(self.train), (batch_size,), generator=generator)]

    def val_batch(self, n, length):  # the first n validation maps, the same every evaluation
        if length - 1 < CELLS + MAX_MOVES:
            raise UsageError(f"--seq-len {length - 1}: a map and moves take {CELLS + MAX_MOVES}")
        return self.val[:n]

    def to(self, device):
        self.train = self.train.to(device)
        return self


# --------------------------------------------------------------------------------------------------
# The two objectives (05's members: loss, val_bits, score, sample)
# --------------------------------------------------------------------------------------------------
def path_diffusion_loss(model, x, mask_id, generator=None):
    """Lesson 04's NELBO, infilling: only free cells are masked. Nats per map."""
    grid, answer = x[:, :CELLS], x[:, CELLS:]  # (B, 256) each
    t = diff.sample_times(x.size(0), generator, x.device)  # (B,) one noise level per map
    _, mask = diff.forward_process(answer, t, mask_id, generator)
    mask &= grid == FREE  # GPT vs dLLM: walls, S and G are the condition, never masked (Diffuser)
    z = torch.where(mask, mask_id, answer)  # (B, 256)
    ce = diff.masked_cross_entropy(model(z), answer, mask)  # (B, 256), 0 where not masked
    return (diff.loss_weight(t)[:, None] * ce).sum() / x.size(0)


def moves_loss(model, x):
    """The GPT reads map + moves[:-1] and predicts each move, up to and with the first `$`. (B,)"""
    logits = model(x[:, :-1])[:, CELLS - 1 :]  # (B, 129, V): the positions that predict moves
    target = x[:, CELLS:]  # x: (B, 256 + 129), the map then the moves
    # GPT vs dLLM: next-token loss on the moves, each chosen before the rest of the path is seen
    nats = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none")
    ends = (target == END).int().cumsum(1)  # 1 from the first `$` on
    keep = (ends == 0) | ((ends == 1) & (target == END))  # the moves and the first `$`
    return (nats.view_as(target) * keep).sum(1)


class PathDiffusion(train.DiffusionObjective):
    """The dLLM: infill the free cells. Validation: NELBO in bits per map, and paths planned."""

    name, trainer = "paths-dllm", "16_robot_paths.py train --model dllm"

    def loss(self, model, x, config):
        return path_diffusion_loss(model, x, config.mask_id)

    @torch.no_grad()
    def val_bits(self, model, windows, K, config):  # K noise levels per map, the same each time
        g = torch.Generator(windows.device).manual_seed(0)
        nats = [path_diffusion_loss(model, windows, config.mask_id, g).item() for _ in range(K)]
        return sum(nats) / K / diff.LN2

    def score(self, model, windows):
        return rates(windows[:, :CELLS], plan_dllm(model, windows[:, :CELLS], "threshold"))


class PathGPT(gpt.NextTokenObjective):
    """The GPT of the same size: map -> moves. Validation: exact NLL per map, and paths planned."""

    name, trainer = "paths-gpt", "16_robot_paths.py train --model gpt"

    def loss(self, model, x, config=None):
        return moves_loss(model, x).mean()

    @torch.no_grad()
    def val_bits(self, model, windows, K=None, config=None):
        return moves_loss(model, windows).mean().item() / diff.LN2

    def score(self, model, windows):
        return rates(windows[:, :CELLS], plan_gpt(model, windows[:, :CELLS]))


# --------------------------------------------------------------------------------------------------
# Planning and judging. A plan: the cells from S to G (a list), or None
# --------------------------------------------------------------------------------------------------
def text(ids):
    """Token ids -> the map's characters ([MASK] as `_`)."""
    return "".join(TOKENS[i] if i < len(TOKENS) else "_" for i in ids)


def tensor(grids):
    """Maps (strings) -> their token ids (B, 256)."""
    return torch.tensor([[TOKENS.index(ch) for ch in g] for g in grids])


def rates(grids, paths):
    v = torch.tensor([maps.judge_path(text(g), p) for g, p in zip(grids.tolist(), paths)]).float()
    return {"val_valid": v[:, 0].mean().item(), "val_shortest": v[:, 1].mean().item()}


@torch.no_grad()
def fill_dllm(model, canvas, decoder="confidence", callback=None, sampling=diff.GREEDY):
    """Fill the [MASK]s of canvas (B, 256), surest cell first, one cell per call or as lesson 10's
    rule decides; greedy (the order is the choice) unless sampling draws. -> (canvas, calls)"""
    if DECODERS[decoder] is not None:
        return fast.generate_fast(model, canvas, sampling, rule=DECODERS[decoder],
                                  callback=callback)
    return diff.generate(model, canvas, CELLS, sampling, callback)


@torch.no_grad()
def plan_dllm(model, grid, decoder="confidence", repair=0, callback=None, sampling=diff.GREEDY):
    """Plans for the maps grid (B, 256). repair: rounds of lesson 13's idea, apart from the pure
    model: where the marks break (a loose end), those cells and their free neighbours are masked
    again and redrawn. -> [path or None] * B"""
    canvas = grid.masked_fill(grid == FREE, model.config.mask_id)  # GPT vs dLLM: all of it seen
    x, _ = fill_dllm(model, canvas, decoder, callback, sampling)
    for _ in range(repair):
        loose = loose_ends(grid, x)  # (B, 256)
        if not loose.any():
            break
        x, _ = fill_dllm(model, x.masked_fill(loose, model.config.mask_id), decoder, None, sampling)
    return [maps.route(text(g), text(m)) for g, m in zip(grid.tolist(), x.tolist())]


def loose_ends(grid, x):
    """(B, 256) free cells to redraw: on a canvas with no route, each marked cell (or S, G) with too
    few marked neighbours to be inside a path, and its free neighbours."""
    cross = torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]], device=x.device)[None, None]  # 4 ways
    count = lambda m: F.conv2d(m.view(-1, 1, SIZE, SIZE).float(), cross, padding=1).view_as(m)
    on = (x == PATH) | (grid == START) | (grid == GOAL)  # (B, 256)
    broken = on & (count(on) < torch.where(grid == FREE, 2, 1))  # inside a path: 2; S and G: 1
    redraw = (broken | (count(broken) > 0)) & (grid == FREE)
    none = torch.tensor([maps.route(text(g), text(m)) is None
                         for g, m in zip(grid.tolist(), x.tolist())])
    return redraw & none[:, None].to(redraw.device)


@torch.no_grad()
def plan_gpt(model, grid, callback=None, sampling=diff.GREEDY):
    """Write moves after the map, greedy (or as sampling draws) over the five move tokens, with
    lesson 03's KV cache. -> [path or None] * B"""
    B = grid.size(0)
    cache = tfm.KVCache(model.config, B, CELLS + MAX_MOVES, grid.device)
    logits = model(grid, cache=cache, start=0)[:, -1]  # (B, V): one call reads the whole map
    allowed = torch.full((model.config.vocab_size,), float("-inf"), device=grid.device)
    allowed[MOVE_IDS] = 0  # the GPT writes moves, never a map token
    moves, ended = [], torch.zeros(B, dtype=torch.bool, device=grid.device)
    for i in range(MAX_MOVES):  # GPT vs dLLM: each move committed before the path ahead is seen
        moves.append(diff.sample_tokens(logits.float() + allowed, sampling))  # (B,)
        ended |= moves[-1] == END
        if callback is not None:
            callback(i + 1, torch.stack(moves, 1))
        if ended.all() or i == MAX_MOVES - 1:  # every map's moves end with `$`
            break
        logits = model(moves[-1][:, None], cache=cache, start=CELLS + i)[:, -1]
    moves = torch.stack(moves, 1).tolist()  # (B, moves written)
    return [maps.walk(text(g), text(m)) for g, m in zip(grid.tolist(), moves)]


def load_planner(kind, checkpoint=None, use_pretrained=False, device="cpu"):
    """The path model of `kind` ('dllm' or 'gpt'): --checkpoint, else your run, else shipped."""
    path = pretrained.choose(checkpoint, ROOT / "checkpoints" / f"paths-{kind}", f"paths-{kind}",
                             use_pretrained, log=lambda s: print(s, file=sys.stderr))
    model, _, info = gen.load(path, kind, device)
    if info["objective"] != f"paths-{kind}":
        raise UsageError(f"{info['path']} is not a path model (it is {info['objective']})")
    return model


def plan(model, kind, grid, args):
    """Plans for grid (B, 256) with the model of `kind`, as the flags say."""
    with runtime.autocast(grid.device.type, runtime.sampling_dtype(grid.device.type)):
        return (plan_gpt(model, grid) if kind == "gpt"
                else plan_dllm(model, grid, args.decoder, args.repair))


NO_PATH = "no path found"


def solve_maps(args):
    """solve FILE: a map per line (256 characters, `#` `.` `S` `G`); a line per map: the map with
    `*` on the planned path if it is a valid one, else `no path found`; totals on stderr."""
    lines = [ln for ln in read_text(args.file).splitlines() if ln.strip()]
    grids = tensor(maps.parse_map(ln.split(",")[0], f"{args.file}:{n}")
                   for n, ln in enumerate(lines, 1))
    model = load_planner(args.model, args.checkpoint, args.pretrained, args.device)
    out, shortest = [], 0
    with runtime.stop_cleanly(lambda: print(f"{len(out)} of {len(lines)} maps answered",
                                            file=sys.stderr)):
        for chunk in grids.split(args.batch):
            paths = plan(model, args.model, chunk.to(next(model.parameters()).device), args)
            verdicts = [maps.judge_path(text(g), p) for g, p in zip(chunk.tolist(), paths)]
            shortest += sum(s for _, s in verdicts)
            block = [maps.draw_path(text(g), p) if v else NO_PATH
                     for g, p, (v, _) in zip(chunk.tolist(), paths, verdicts)]
            print("\n".join(block), flush=True)
            out += block
    found = sum(a != NO_PATH for a in out)
    print(f"{found} of {len(out)} maps planned (a valid path S to G), {shortest} of them "
          f"shortest", file=sys.stderr)
    return out


def plan_yaml(args):
    """plan MAP.yaml: a ROS map_server map reduced to the 16 x 16 grid (support/ros_map.py), planned
    by the dLLM (or the GPT), printed as one `x y yaw` pose per line in metres in the map frame."""

    def planner(cells):  # the map's 256 characters -> a checked path, or None
        model = load_planner(args.model, args.checkpoint, args.pretrained, args.device)
        path = plan(model, args.model, tensor([cells]).to(next(model.parameters()).device), args)[0]
        return path if maps.judge_path(cells, path)[0] else None

    return ros_map.plan_cli(args, SIZE, planner, maps.distances)


# --------------------------------------------------------------------------------------------------
# The demo: fresh maps of every kind, both models; the order the dLLM fills one
# --------------------------------------------------------------------------------------------------
def demo_paths(args):
    check_gif(args)  # before any work: a writable folder, and no file of the user's replaced
    rng = random.Random(args.seed)
    print(f"making {args.maps_per_kind} fresh maps per kind (seed {args.seed}) ...")
    dllm = load_planner("dllm", None, args.pretrained, args.device)
    model_gpt = load_planner("gpt", None, args.pretrained, args.device)
    print(f"\n{'kind':>10} | dLLM valid, shortest | GPT valid, shortest")
    for kind in maps.KINDS:
        grid = tensor(maps.fresh_map(kind, rng)[0] for _ in range(args.maps_per_kind))
        cols = [rates(grid, p) for p in (plan_dllm(dllm, grid), plan_gpt(model_gpt, grid))]
        print(f"{kind:>10} | " + " | ".join(f"{c['val_valid']:>9.0%}, {c['val_shortest']:>8.0%}"
                                            for c in cols))
    if args.show_steps or args.gif:
        show_fill_order(dllm, tensor([maps.fresh_map("blocks-30", rng)[0]]), args)


def show_fill_order(dllm, grid, args):
    """Which call marked each path cell, and the map as the canvas fills (a GIF)."""
    frames = []
    path = plan_dllm(dllm, grid, callback=lambda i, x: frames.append(x[0].tolist()))[0]
    picture = lambda x: "\n".join(" ".join(text(x[r * SIZE : (r + 1) * SIZE])) for r in range(SIZE))
    marked = [next((i for i, f in enumerate(frames, 1) if f[c] == PATH), 0) for c in range(CELLS)]
    print(f"\nthe call that marked each path cell, of {len(frames)} (S, G given; '#' a wall):")
    for r in range(SIZE):
        print(" ".join(f"{marked[c]:>3}" if marked[c] else f"{TOKENS[grid[0, c]]:>3}"
                       for c in range(r * SIZE, (r + 1) * SIZE)))
    valid, shortest = maps.judge_path(text(grid[0].tolist()), path)
    print(f"the plan: {'valid' if valid else 'no path'}{', shortest' * shortest}")
    if args.gif:
        from support.gif import write_gif

        start = grid.masked_fill(grid == FREE, dllm.config.mask_id)[0].tolist()
        shown = [start] + frames[:: max(1, len(frames) // 40)] + frames[-1:]  # about 40 frames
        write_gif(args.gif, [picture(f) for f in shown], width=40, fps=6)
        print(f"wrote {args.gif}")


# --------------------------------------------------------------------------------------------------
# The command line: the demo, `train` (05's flags), `solve FILE` or `plan MAP.yaml`
# --------------------------------------------------------------------------------------------------
def add_planner_args(s, own):
    s.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model plans")
    s.add_argument("--checkpoint", help="a run directory or Hub export (default: your run, else "
                   "the shipped model)")
    s.add_argument("--pretrained", action="store_true", help=own)
    s.add_argument("--decoder", choices=list(DECODERS), default="confidence",
                   help="the dLLM's rule: one cell per call, or lesson 10's threshold")
    s.add_argument("--repair", type=int, choices=range(0, 6), default=0, metavar="0-5",
                   help="dLLM: rounds redrawing where the path breaks (lesson 13's idea)")
    s.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to run")


def paths_parser():
    p = ArgumentParser(description=__doc__)
    own = "the shipped model(s) even if you trained your own"
    p.add_argument("--maps-per-kind", type=int_in(1, 1000), default=10, help="fresh maps per kind")
    p.add_argument("--show-steps", action="store_true", help="print the order the dLLM fills")
    p.add_argument("--gif", metavar="PATH", type=gif_path, help="also write it as an animated GIF")
    p.add_argument("--force", action="store_true", help="--gif may replace a file not made here")
    p.add_argument("--pretrained", action="store_true", help=own)
    p.add_argument("--seed", type=random_seed, default=0, help="random seed: the demo's maps")
    p.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to run")
    sub_parser = subcommands(p, ["train", "solve", "plan"])
    t = train.training_parser(None, ROOT / "checkpoints" / "paths-dllm", presets=PRESETS,
                              parser=sub_parser("train", "train through lesson 05's loop (its "
                                                "flags; --maps DIR, not --data)"),
                              folder=("--maps", ROOT / "data" / "maps"), samples=False)
    t.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model trains")
    s = sub_parser("solve", "plan the maps of a file: one checked path per line")
    s.add_argument("file", help="one map per line: 256 characters, # . S G")
    add_planner_args(s, own)
    s.add_argument("--batch", type=positive_int, default=256, help="maps per model call")
    m = sub_parser("plan", "plan on a ROS map_server map: poses `x y yaw` in metres")
    m.add_argument("map", help="the map's YAML (image, resolution, origin, thresholds)")
    m.add_argument("--start", type=float, nargs=2, metavar=("X", "Y"), required=True,
                   help="start, metres in the map frame")
    m.add_argument("--goal", type=float, nargs=2, metavar=("X", "Y"), required=True,
                   help="goal, metres in the map frame")
    m.add_argument("--out", help="also write the poses as a nav_msgs/Path-shaped YAML")
    m.add_argument("--force", action="store_true", help="--out may replace a file not made here")
    add_planner_args(m, own)
    return p


def main(argv=None):
    args = parse_args_given(paths_parser(), argv)
    if args.command in ("solve", "plan"):
        if args.model == "gpt" and {"decoder", "repair"} & args.given:
            raise UsageError("--decoder and --repair are the dLLM's: the GPT writes moves")
        return solve_maps(args) if args.command == "solve" else plan_yaml(args)
    if args.command == "train":
        args = train.resolve(args, presets=PRESETS, default_data=None,
                             default_out=lambda a: ROOT / "checkpoints" / f"paths-{a.model}")
        objective = PathDiffusion() if args.model == "dllm" else PathGPT()
        return train.train(args, objective, MapData(args.maps, args.model))
    return demo_paths(args)


if __name__ == "__main__":
    run_cli(main)
