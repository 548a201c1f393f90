"""Lesson 16's path dLLM asked only which way to step: a walk decoder, and where its first call puts the path.

    python bench/paths_walk.py --dllm checkpoints/pretrained/paths-dllm-long --out-dir bench/results/paths_walk

Surest first (lesson 16) fills free cells anywhere on the map, and its plans break between the ends. A walk asks
less of the model: from the path's head, each call marks the free unmarked neighbour the dLLM finds likeliest on
the path, until the head touches the goal; a dead end fails. From S, from G, or from both in turn until the two
walks touch. Every plan is connected by construction, so what is left to the model is the way: is its sense of
where the path lies, read one step at a time, enough? A decoder's order, as 7.6's "path cells first", not
lesson 16's. The probe: one call with every free cell masked, and the mean probability of "path" on the cells
of the map's own path (robot_maps' tie-break), on the cells of its other shortest paths, and on the rest.
"""
import sys
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import metrics, runtime
from support.cli import ArgumentParser, out_dir, positive_int, run_cli
from support.files import atomic_write, check_out_dir

L16 = import_module("16_robot_paths")
maps = import_module("robot_maps")
bench_paths = import_module("paths")  # bench/paths.py: the same test maps
ROOT = Path(__file__).resolve().parent.parent
ENDS = {"S": "from S", "G": "from G", "SG": "from both ends in turn"}
OUTPUTS = {"walk.txt": "bench/paths_walk.py", "walk.csv": "kind,method"}


def joined(heads, end):
    """The plan once the walk from `end` touches the other walk (or the other end), else None."""
    w, other = heads[end], heads["G" if end == "S" else "S"]
    meet = next((c for c in maps.neighbours(w[-1]) if c in other), None)
    if meet is None:
        return None
    rest = other[: other.index(meet) + 1]  # the other walk up to the cell touched: the rest of it is cut
    return w + rest[::-1] if end == "S" else rest + w[::-1]


@torch.no_grad()
def plan_by_walking(model, grids, ends="SG", device="cpu"):
    """Plans for the maps `grids` (strings) by walking from `ends` ("S", "G" or "SG" in turn), a call a
    step. -> ([path or None] * B, calls)"""
    canvas = L16.tensor(grids).to(device)
    canvas = canvas.masked_fill(canvas == L16.FREE, model.config.mask_id)  # (B, 256) as lesson 16
    heads = [{e: [g.index(e)] for e in "SG"} for g in grids]  # each walk's cells, from its end
    plans = [joined(h, "S") for h in heads]  # S beside G: no call needed
    todo, calls = [b for b, q in enumerate(plans) if q is None], 0
    while todo:
        p_path = model(canvas[todo]).float().softmax(-1)[..., L16.PATH].tolist()  # (len(todo), 256)
        end, still = ends[calls % len(ends)], []  # whose turn it is
        calls += 1
        for j, b in enumerate(todo):
            w = heads[b][end]
            free = [c for c in maps.neighbours(w[-1]) if canvas[b, c] == model.config.mask_id]  # free, unmarked
            if free:  # else a dead end: no plan
                w.append(max(free, key=lambda c: p_path[j][c]))
                canvas[b, w[-1]] = L16.PATH
                plans[b] = joined(heads[b], end)
                still += [b] if plans[b] is None else []
        todo = still
    return plans, calls


@torch.no_grad()
def first_call(model, rows, device="cpu"):
    """Mean p(path) on three sets of free cells, all of them masked: the map's own path, the cells of its
    other shortest paths, the rest. -> {set: (cells, mean)}"""
    canvas = L16.tensor(g for g, _, _ in rows).to(device)
    canvas = canvas.masked_fill(canvas == L16.FREE, model.config.mask_id)
    p_path = model(canvas).float().softmax(-1)[..., L16.PATH].tolist()  # (B, 256)
    seen = {"its own path": [], "its other shortest paths": [], "the other free cells": []}
    for (g, answer, _), p in zip(rows, p_path):
        walls = [c == "#" for c in g]
        to_s, to_g = maps.distances(walls, g.index("S")), maps.distances(walls, g.index("G"))
        ways = {c for c in to_g if c in to_s and to_s[c] + to_g[c] == to_g[g.index("S")]}
        for c, ch in enumerate(g):
            if ch == ".":
                key = ("its own path" if answer[c] == "*" else
                       "its other shortest paths" if c in ways else "the other free cells")
                seen[key].append(p[c])
    return {k: (len(v), sum(v) / max(len(v), 1)) for k, v in seen.items()}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default=str(ROOT / "checkpoints" / "paths-dllm"), help="the path dLLM's run or export")
    p.add_argument("--test", default=str(ROOT / "data" / "maps" / "test.txt"), help="robot_maps.py's test file")
    p.add_argument("--per-kind", type=positive_int, default=40, help="maps of each kind (the first in the file)")
    p.add_argument("--ends", nargs="+", choices=list(ENDS), default=list(ENDS), help="where the walks start")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs (fp32)")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results" / "paths_walk"),
                   help="where walk.txt and walk.csv go")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    by_kind = bench_paths.first_of_each_kind(maps.read_maps(args.test), args.per_kind, args.test)
    model = L16.load_planner("dllm", args.dllm, device=args.device)
    every = [r for v in by_kind.values() for r in v]
    out = []
    for ends in args.ends:
        paths, calls = plan_by_walking(model, [g for g, _, _ in every], ends, args.device)  # one batch
        verdicts = [(r[2], maps.judge_path(r[0], q)) for r, q in zip(every, paths)]
        for kind in [*by_kind, "all"] if len(by_kind) > 1 else by_kind:
            v = [ok for k, ok in verdicts if kind in (k, "all")]
            out.append(dict(kind=kind, method=f"walk {ENDS[ends]}", maps=len(v), calls=calls,
                            valid=sum(a for a, _ in v) / len(v), shortest=sum(b for _, b in v) / len(v)))
            print(f"{kind:>10} | {out[-1]['method']:<30} | valid {out[-1]['valid']:6.1%} | shortest "
                  f"{out[-1]['shortest']:6.1%} | {calls} calls", flush=True)
    probe = first_call(model, every, args.device)
    lines = [f"# python bench/paths_walk.py {' '.join(sys.argv[1:] if argv is None else argv)}",
             f"# machine: {runtime.setting(args.device)}, fp32; model: {args.dllm}; maps: {args.test}", "",
             "| kind | method | maps | valid | shortest | calls (the batch's) |", "|---|---|---|---|---|---|",
             *(f"| {r['kind']} | {r['method']} | {r['maps']} | {r['valid']:.1%} | {r['shortest']:.1%} | "
               f"{r['calls']} |" for r in out),
             "", "## The first call, every free cell masked: mean p(path)", "",
             "| free cells on | cells | mean p(path) |", "|---|---|---|",
             *(f"| {k} | {n} | {m:.3f} |" for k, (n, m) in probe.items())]
    print("\n".join(lines[-6:]))
    folder = Path(args.out_dir)
    atomic_write(folder / "walk.txt", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    metrics.write_csv(folder / "walk.csv", out, list(out[0]))
    print(f"wrote {folder / 'walk.txt'} and walk.csv")
    return out, probe


if __name__ == "__main__":
    run_cli(main)
