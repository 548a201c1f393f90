"""Lesson 16: the path dLLM and the GPT of its size on held-out maps, by kind of map; then smoothing.

    python robot_maps.py                  # data/maps/test.txt: 1,000 test maps, 200 of each kind (once)
    python bench/paths.py                 # your runs in checkpoints/paths-{dllm,gpt}; over 20 min on 2 cores
    python bench/paths.py --pretrained    # the shipped models instead

For each kind of map: the share of valid paths (S to G over free cells, each move to a neighbour) and of shortest
ones (no path shorter: BFS), with binomial standard errors; model calls per map (a batch's calls, the same for each
of its maps); seconds per map (batched, wall clock). The dLLM fills surest cell first, one cell per call, or by
lesson 10's threshold rule; --repair adds lesson 13's repair rounds, reported apart; the GPT writes moves greedily;
--samples K adds both models drawn at --temperature (K attempts a map: one attempt is the pure model; the best of K,
checked against the map, a planner's search). A diagnostic decoder, not the lesson's, asks whether the order is what
fails: path cells first marks, a call each, the masked cell the dLLM finds likeliest on the path until S and G join
over its marks; its plan is the model's own when no mark is off the way it joins ("no stray"), a search when a BFS
picks the way among strays. --by-length adds each method's valid share by the length of the map's shortest path and
by how many shortest paths it has (where the pure model fails), and by_map.csv: each map's kind, length and count
of shortest paths, and each method's verdict (1: valid). Then bonus/16_path_smoothing.py's comparison on
jagged paths of the test maps (mazes left out: a maze has one way through). Writes bench/results/paths/{paths.txt,
paths.csv}. Time: 20 min on machine E's 2 cores before path cells first was added; on machine F it took about a
quarter of surest first's time again.
"""
import math
import random
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import metrics, runtime
from support.cli import ArgumentParser, UsageError, non_negative_int, out_dir, positive_float, positive_int, run_cli
from support.files import atomic_write, check_out_dir

L16 = import_module("16_robot_paths")
maps = import_module("robot_maps")
ROOT = Path(__file__).resolve().parent.parent
PATH_FIRST = "path cells first"  # the diagnostic decoder's name, as methods name their decoders


class Counted(torch.nn.Module):
    """A model that counts its calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, 0

    def forward(self, *a, **kw):
        self.calls += 1
        return self.model(*a, **kw)


@torch.no_grad()
def plan_path_cells_first(model, grid):
    """Each call marks `*` on the masked cell likeliest on the path (B, 256), until S and G join over
    the marks (lesson 16's route, strays left out) or nothing is masked. -> ([path or None] * B,
    [marks off that path] * B, [calls until joined] * B)"""
    x, grids = grid.masked_fill(grid == L16.FREE, model.config.mask_id), [L16.text(g) for g in grid.tolist()]
    paths, calls = [None] * len(grids), [0] * len(grids)
    for step in range(1, L16.CELLS + 1):
        todo = [b for b, q in enumerate(paths) if q is None and (x[b] == model.config.mask_id).any()]
        if not todo:
            break
        p_path = model(x[todo]).float().softmax(-1)[..., L16.PATH]  # (len(todo), 256)
        cell = p_path.masked_fill(x[todo] != model.config.mask_id, -1).argmax(-1)  # (len(todo),)
        x[todo, cell] = L16.PATH
        for b in todo:
            paths[b], calls[b] = maps.route(grids[b], L16.text(x[b].tolist())), step
    strays = [int((x[b] == L16.PATH).sum()) - len(q) + 2 if q else None for b, q in enumerate(paths)]
    return paths, strays, calls


def best_of(grids, attempts):
    """Per map, the shortest valid path among its attempts (a planner can check validity: it has the
    map), or None. grids: N map strings; attempts: K lists of N paths."""
    out = []
    for m, g in enumerate(grids):
        ok = [q[m] for q in attempts if maps.judge_path(g, q[m])[0]]
        out.append(min(ok, key=len) if ok else None)
    return out


def run_sampled(method, model, grids, batch):
    """The K attempts of a drawn decoder on each map, batched together: rows for one attempt (the pure
    model) and for the best of K, checked against the map (a planner's search, apart), each with the
    number of maps whose K attempts did not all plan the same (no path counts as one plan)."""
    k, n, counted, t0 = method["samples"], len(grids), Counted(model), time.perf_counter()
    sampling = L16.diff.Sampling(temperature=method["temperature"], order="confidence",
                                 generator=torch.Generator().manual_seed(0))
    paths, calls = [], 0
    for chunk in grids.repeat(k, 1).split(batch):  # (K * N, 256): attempt a of map m at row a * N + m
        before = counted.calls
        if method["model"] == "gpt":
            paths += L16.plan_gpt(counted, chunk, sampling=sampling)
        else:
            paths += L16.plan_dllm(counted, chunk, sampling=sampling)
        calls += (counted.calls - before) * len(chunk)
    calls, secs = calls / (n * k), (time.perf_counter() - t0) / (n * k)  # per attempt
    attempts = [paths[a * n : (a + 1) * n] for a in range(k)]
    best = best_of([L16.text(g) for g in grids.tolist()], attempts)
    differ = sum(len({tuple(q[m] or ()) for q in attempts}) > 1 for m in range(n))
    return [(method["name"] + ", one attempt", attempts[0], calls, secs, differ),
            (method["name"] + f", best of {k} (checked, apart)", best, calls * k, secs * k, differ)]


def run_method(method, model, grids, batch):
    """[(name, paths, calls per map, seconds per map, maps whose drawn attempts differ or None)] of
    one method over grids (N, 256). Path cells
    first gives two rows: its paths with no stray, and every joined path (the search); its calls are
    each map's own until its ends join. A drawn decoder gives two: one attempt, and the best of K."""
    if method.get("samples"):
        return run_sampled(method, model, grids, batch)
    counted, paths, strays, calls, t0 = Counted(model), [], [], 0, time.perf_counter()
    for chunk in grids.split(batch):
        before = counted.calls
        if method["model"] == "gpt":
            paths += L16.plan_gpt(counted, chunk)
        elif method["decoder"] == PATH_FIRST:
            found, off, own = plan_path_cells_first(counted, chunk)
            paths, strays, calls = paths + found, strays + off, calls + sum(own)
            continue
        else:
            paths += L16.plan_dllm(counted, chunk, method["decoder"], method["repair"])
        calls += (counted.calls - before) * len(chunk)
    secs, calls = (time.perf_counter() - t0) / len(grids), calls / len(grids)
    if method.get("decoder") != PATH_FIRST:
        return [(method["name"], paths, calls, secs, None)]
    own = [q if s == 0 else None for q, s in zip(paths, strays)]
    return [(method["name"] + ", no stray", own, calls, secs, None),
            (method["name"] + " + BFS (search)", paths, calls, secs, None)]


# Bins of a map's shortest path: (label, which of shape()'s two, lowest, highest)
BINS = [(f"{lo}-{hi} moves", 0, lo, hi) for lo, hi in ((1, 10), (11, 20), (21, 30))] + [("31+ moves", 0, 31, 255)] + [
    ("one shortest path", 1, 1, 1), ("2-9 of them", 1, 2, 9), ("10-99", 1, 10, 99), ("100+", 1, 100, math.inf)]


def shape(grid):
    """(moves of a shortest path, how many shortest paths) of a map string: BFS distances to G, then
    the ways from each cell, nearest to G first (a cell's ways: the sum of its neighbours' one nearer)."""
    walls = [ch == "#" for ch in grid]
    dist, ways = maps.distances(walls, grid.index("G")), {}
    for cell in sorted(dist, key=dist.get):
        ways[cell] = sum(ways[n] for n in maps.neighbours(cell) if dist.get(n) == dist[cell] - 1) or 1
    return dist[grid.index("S")], ways[grid.index("S")]


def by_length(verdicts):
    """Table lines: each method's valid share in each of BINS. verdicts: {method: [(moves, ways, valid)]
    a map}, the same maps in the same order for each method."""
    inside = lambda row, b: b[2] <= row[b[1]] <= b[3]
    some = next(iter(verdicts.values()))
    head = [f"{b[0]} (n = {sum(inside(r, b) for r in some)})" for b in BINS]
    lines = ["| method | " + " | ".join(head) + " |", "|---" * (len(BINS) + 1) + "|"]
    for name, rows in verdicts.items():
        hits = [[r[2] for r in rows if inside(r, b)] for b in BINS]
        lines.append(f"| {name} | " + " | ".join(f"{sum(h) / len(h):.1%}" if h else "-" for h in hits) + " |")
    return lines


def first_of_each_kind(rows, per_kind, where):
    """{kind: its first per_kind rows} of a test file's rows, the kinds it holds only (a file may hold some)."""
    by_kind = {k: [r for r in rows if r[2] == k][:per_kind] for k in maps.KINDS}
    by_kind = {k: kind_rows for k, kind_rows in by_kind.items() if kind_rows}
    if not by_kind:
        raise UsageError(f"{where}: no maps in it")
    return by_kind


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"paths.csv": "kind,method", "paths.txt": "bench/paths.py", "by_map.csv": "kind,moves"}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default=str(ROOT / "checkpoints" / "paths-dllm"), help="the path dLLM's run or export")
    p.add_argument("--gpt", default=str(ROOT / "checkpoints" / "paths-gpt"), help="the path GPT's run or export")
    p.add_argument("--pretrained", action="store_true", help="the shipped models instead of --dllm and --gpt")
    p.add_argument("--test", default=str(ROOT / "data" / "maps" / "test.txt"), help="robot_maps.py's test file")
    p.add_argument("--per-kind", type=positive_int, default=40, help="maps of each kind (the first in the file)")
    p.add_argument("--batch", type=positive_int, default=200, help="maps per model call")
    p.add_argument("--repair", type=non_negative_int, default=2, help="repair rounds (0: none)")
    p.add_argument("--smooth", type=non_negative_int, default=60, help="jagged paths to smooth (0: none)")
    p.add_argument("--samples", type=non_negative_int, default=0,
                   help="attempts per map of each model drawn at --temperature, the dLLM surest first (0: none)")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="the drawn attempts' temperature")
    p.add_argument("--only-sampled", action="store_true", help="the drawn attempts only, not the greedy decoders")
    p.add_argument("--by-length", action="store_true",
                   help="add each method's valid share by shortest-path length and by number of shortest paths")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the models run (fp32 either way)")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results" / "paths"),
                   help="where results go")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    if args.only_sampled and not args.samples:
        raise UsageError("--only-sampled needs --samples 1 or more")
    if args.pretrained:
        args.dllm, args.gpt = (str(ROOT / "checkpoints" / "pretrained" / f"paths-{k}") for k in ("dllm", "gpt"))
    rows = maps.read_maps(args.test)
    by_kind = first_of_each_kind(rows, args.per_kind, args.test)
    models = {k: L16.load_planner(k, path, device=args.device) for k, path in (("dllm", args.dllm), ("gpt", args.gpt))}
    methods = [] if args.only_sampled else [
        dict(name="dLLM, surest cell first", model="dllm", decoder="confidence", repair=0),
        dict(name="dLLM, threshold 0.9", model="dllm", decoder="threshold", repair=0),
        dict(name="GPT, moves, greedy", model="gpt"),
        dict(name="dLLM, path cells first", model="dllm", decoder=PATH_FIRST)]
    if args.repair and not args.only_sampled:
        methods.append(dict(name=f"dLLM + {args.repair} repair rounds (apart)", model="dllm",
                            decoder="confidence", repair=args.repair))
    if args.samples:
        methods += [dict(name=f"{who}, drawn at T = {args.temperature:g}", model=kind, samples=args.samples,
                         temperature=args.temperature)
                    for who, kind in (("dLLM, surest cell first", "dllm"), ("GPT, moves", "gpt"))]
    out, verdicts_of = [], {}  # verdicts_of: {method: [(moves, ways, valid)]}, --by-length
    with torch.no_grad():
        for kind, kind_rows in by_kind.items():
            grids = L16.tensor(g for g, _, _ in kind_rows).to(args.device)
            shapes = [shape(g) for g, _, _ in kind_rows] if args.by_length else []  # once a map
            for name, paths, calls, secs, differ in (row for m in methods for row in
                                             run_method(m, models[m["model"]], grids, args.batch)):
                verdicts = [maps.judge_path(g, q) for (g, _, _), q in zip(kind_rows, paths)]
                if args.by_length:
                    verdicts_of.setdefault(name, []).extend((*sh, v) for sh, (v, _) in zip(shapes, verdicts))
                n = len(verdicts)
                valid, shortest = (sum(v[k] for v in verdicts) / n for k in (0, 1))
                se_v, se_s = (math.sqrt(q * (1 - q) / n) for q in (valid, shortest))  # binomial
                out.append(dict(kind=kind, method=name, maps=n, valid=valid, valid_se=se_v,
                                shortest=shortest, shortest_se=se_s, calls=calls, s_per_map=secs,
                                attempts_differ="" if differ is None else differ))
                print(f"{kind:>10} | {name:<34} | valid {valid:6.1%} ± {se_v:.1%} | shortest "
                      f"{shortest:6.1%} ± {se_s:.1%} | {calls:6.1f} calls | {secs * 1000:6.1f} ms/map"
                      + ("" if differ is None else f" | attempts differ on {differ} of {n} maps"), flush=True)
    table = ["| kind | method | maps | valid | shortest | calls/map | ms/map | maps whose drawn attempts differ |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['kind']} | {r['method']} | {r['maps']} | {r['valid']:.1%} ± {r['valid_se']:.1%} | "
              f"{r['shortest']:.1%} ± {r['shortest_se']:.1%} | {r['calls']:.1f} | {r['s_per_map'] * 1000:.1f} | "
              f"{'-' if r['attempts_differ'] == '' else r['attempts_differ']} |" for r in out]
    length_lines = []
    if args.by_length:  # every kind together: a bin's maps come from the kinds whose paths are that long
        length_lines = ["", "## Valid paths by the length of the shortest path and by how many shortest paths", "",
                        *by_length(verdicts_of)]
        print("\n".join(length_lines))
    smooth_lines = []
    if args.smooth:
        smooth = import_module("bonus.16_path_smoothing")
        rng = random.Random(0)
        jag = smooth.jagged_inputs([r for r in rows if r[2] != "maze"][: args.smooth], rng)
        smooth_lines, _, _ = smooth.summary(smooth.compare_smoothers(models["dllm"], jag))
        print("\n".join(smooth_lines))
    head = [f"# python bench/paths.py {' '.join(sys.argv[1:] if argv is None else argv)}",
            f"# machine: {runtime.setting(args.device)}, fp32; models: "
            f"{args.dllm}, {args.gpt}; maps: {args.test}", ""]
    folder = Path(args.out_dir)
    atomic_write(folder / "paths.txt", lambda tmp: Path(tmp).write_text(
        "\n".join(head + table + length_lines + (["", "## Smoothing (bonus/16_path_smoothing.py)", ""] + smooth_lines
                                   if smooth_lines else [])) + "\n"))  # --smooth 0: no empty section
    metrics.write_csv(folder / "paths.csv", out, list(out[0]))
    if args.by_length:  # one row a map: its kind, length and ways, and 1 where a method planned it validly
        kinds = [kind for kind, kind_rows in by_kind.items() for _ in kind_rows]  # the verdicts' order
        per_map = [dict(kind=kind, moves=rows[0][0], shortest_paths=rows[0][1],
                        **{name: int(r[2]) for name, r in zip(verdicts_of, rows)})
                   for kind, rows in zip(kinds, zip(*verdicts_of.values()))]
        metrics.write_csv(folder / "by_map.csv", per_map, ["kind", "moves", "shortest_paths", *verdicts_of])
    print(f"wrote {folder / 'paths.txt'} and paths.csv" + (" and by_map.csv" if args.by_length else ""))
    return out, smooth_lines


if __name__ == "__main__":
    run_cli(main)
