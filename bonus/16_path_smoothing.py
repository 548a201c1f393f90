"""Bonus to lesson 16: smoothing a jagged path by infilling, beside string pulling and Nav2's
smoother.

A robot's global planner may hand over a valid but jagged path: a detour, a random walk. Smoothing
is the upstream tiny-dllm roadmap's word for what comes next. As infilling: keep S, G and every
k-th cell of the jagged path, free the rest, and let lesson 16's dLLM fill each stretch between two
kept cells (the pair as its S and G). Beside it, the two classic smoothers (../shared notes C.4):
  string pulling  from each kept point jump to the farthest point of the path in line of sight
                  (any angle);
  SimpleSmoother  Nav2's rule, y_i += w_data (x_i - y_i) + w_smooth (y_(i+1) + y_(i-1) - 2 y_i),
                  until the change is below 1e-10 (w_data 0.2, w_smooth 0.3, 1,000 iterations, two
                  refinements); a point that lands on a wall returns the last path before it
                  (nav2_smoother/simple_smoother.cpp).
And two stages, as a robot runs a planner and then a smoother: the infill with the input's own
cells kept where a stretch could not be planned, and that path string-pulled (the dLLM picks the
cells, pulling cuts the corners). Lengths in cells (1 cell = 1 unit; the robot drives straight
between consecutive points), turns = heading changes above 1 degree, a path valid if no segment
touches a wall cell (corners included).

    python bonus/16_path_smoothing.py                       # 20 test maps, the shipped dLLM
    python bonus/16_path_smoothing.py --maps data/maps/test.txt --n 400 \
        --checkpoint checkpoints/paths-dllm
"""
import math
import random
import sys
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the lessons, from any folder
L16 = import_module("16_robot_paths")
maps = import_module("robot_maps")
cli = import_module("support.cli")
SIZE = maps.SIZE


# --------------------------------------------------------------------------------------------------
# Jagged inputs: a loop-erased random walk, or a detour through a random waypoint
# --------------------------------------------------------------------------------------------------
def loop_erased(cells):
    out, where = [], {}
    for c in cells:
        if c in where:  # back on a cell already walked: cut the loop
            for gone in out[where[c] + 1 :]:
                del where[gone]
            out = out[: where[c] + 1]
        else:
            where[c] = len(out)
            out.append(c)
    return out


def random_walk(grid, rng, max_steps=20000):
    cell, goal, walked = grid.index("S"), grid.index("G"), [grid.index("S")]
    while cell != goal and len(walked) < max_steps:
        cell = rng.choice([n for n in maps.neighbours(cell) if grid[n] != "#"])
        walked.append(cell)
    return loop_erased(walked) if cell == goal else None


def detour(grid, rng, extra=6):
    """S -> a random waypoint -> G, each leg shortest, the whole at least `extra` moves longer
    than the best."""
    walls = [ch == "#" for ch in grid]
    s, g = grid.index("S"), grid.index("G")
    to_g, to_s = maps.distances(walls, g), maps.distances(walls, s)
    far = [w for w in to_g if w in to_s and to_s[w] + to_g[w] >= to_g[s] + extra]
    if not far:
        return None
    w = rng.choice(far)
    return loop_erased(maps.shortest_path(walls, s, w) + maps.shortest_path(walls, w, g)[1:])


# --------------------------------------------------------------------------------------------------
# Geometry: cell centres in cell units (y up), exact wall checks, length and turns
# --------------------------------------------------------------------------------------------------
def point(cell):
    return (cell % SIZE + 0.5, SIZE - cell // SIZE - 0.5)


def touched(a, b):
    """Every cell whose closed square the segment a-b touches (a corner crossed touches all four
    around it)."""
    (x0, y0), (x1, y1) = a, b
    ts = {0.0, 1.0}
    for p0, p1 in ((x0, x1), (y0, y1)):
        if p1 != p0:
            lo, hi = sorted((p0, p1))
            ts |= {(k - p0) / (p1 - p0) for k in range(math.ceil(lo), math.floor(hi) + 1)}
    ts, cells = sorted(ts), set()
    at = lambda t: (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    for t0, t1 in zip(ts, ts[1:]):  # inside each piece the segment stays in one cell
        x, y = at((t0 + t1) / 2)
        cells.add((math.floor(x), math.floor(y)))
    for t in ts:  # at a crossing: every cell around it (two at an edge, four at a corner)
        x, y = at(t)
        xs = {math.floor(x - 1e-9), math.floor(x + 1e-9)}
        ys = {math.floor(y - 1e-9), math.floor(y + 1e-9)}
        cells |= {(cx, cy) for cx in xs for cy in ys}
    return cells


def clear(grid, a, b):
    return all(0 <= cx < SIZE and 0 <= cy < SIZE and grid[(SIZE - 1 - cy) * SIZE + cx] != "#"
               for cx, cy in touched(a, b))


def length(points):
    return sum(math.dist(a, b) for a, b in zip(points, points[1:]))


def turns(points, min_deg=1.0):
    """(heading changes above min_deg, total turning in degrees)."""
    heads = [math.atan2(b[1] - a[1], b[0] - a[0]) for a, b in zip(points, points[1:]) if a != b]
    d = [abs((h1 - h0 + math.pi) % (2 * math.pi) - math.pi) for h0, h1 in zip(heads, heads[1:])]
    return sum(x > math.radians(min_deg) for x in d), math.degrees(sum(d))


# --------------------------------------------------------------------------------------------------
# The three smoothers
# --------------------------------------------------------------------------------------------------
def string_pull(grid, points):
    out, i = [points[0]], 0
    while i < len(points) - 1:
        i = max(j for j in range(i + 1, len(points)) if clear(grid, points[i], points[j]))
        out.append(points[i])
    return out


def simple_smoother(grid, points, w_data=0.2, w_smooth=0.3, tol=1e-10, max_its=1000,
                    refinements=2):
    """Nav2's SimpleSmoother::smoothImpl, with its recursive refinement."""
    x = [list(p) for p in points]
    y, last = [list(p) for p in points], [list(p) for p in points]
    for _ in range(max_its):
        change = 0.0
        for i in range(1, len(y) - 1):
            for k in range(2):
                old = y[i][k]
                curve = y[i + 1][k] + y[i - 1][k] - 2 * y[i][k]
                y[i][k] += w_data * (x[i][k] - y[i][k]) + w_smooth * curve
                change += abs(y[i][k] - old)
            cx, cy = math.floor(y[i][0]), math.floor(y[i][1])
            if grid[(SIZE - 1 - cy) * SIZE + cx] == "#":  # on a wall: the last path before it
                return [tuple(p) for p in last]
        last = [list(p) for p in y]
        if change < tol:
            break
    else:
        return [tuple(p) for p in points]  # Nav2 gives up past max_its and keeps the input
    out = [tuple(p) for p in y]
    if not refinements:
        return out
    return simple_smoother(grid, out, w_data, w_smooth, tol, max_its, refinements - 1)


def stretches(model, grids, paths, every=8, decoder="confidence"):
    """S, G and every `every`-th cell of each path kept; each stretch between two kept cells
    planned afresh by lesson 16's dLLM (the pair as its S and G), all stretches in one batch.
    -> per path [(planned or None, input's)]"""
    canvases, spans = [], []
    for grid, path in zip(grids, paths):
        idx = list(range(0, len(path), every)) + [len(path) - 1] * ((len(path) - 1) % every > 0)
        free = list(grid.replace("S", ".").replace("G", "."))
        spans.append((len(canvases), [path[a : b + 1] for a, b in zip(idx, idx[1:])]))
        for a, b in zip(idx, idx[1:]):
            c = list(free)
            c[path[a]], c[path[b]] = "S", "G"
            canvases.append("".join(c))
    # The model's device (a stand-in with no parameters: the CPU)
    where = next(model.parameters(), torch.empty(0)).device
    pieces = L16.plan_dllm(model, L16.tensor(canvases).to(where), decoder)
    return [list(zip(pieces[first : first + len(own)], own)) for first, own in spans]


def join(parts, fallback=False):
    """One path from its stretches: None if one could not be planned, or with `fallback` that
    stretch's input cells (as Nav2's smoother keeps the last path that worked)."""
    got = [own if planned is None and fallback else planned for planned, own in parts]
    return None if None in got else got[0][:1] + [c for p in got for c in p[1:]]


# --------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------
def jagged_inputs(rows, rng):
    """(map, jagged path, how) for each map: random walk and detour taking turns; maps with
    neither are skipped."""
    out = []
    for i, (grid, _, _) in enumerate(rows):
        how = ("random walk", "detour")[i % 2]
        path = random_walk(grid, rng) if how == "random walk" else detour(grid, rng)
        if path is not None and len(path) > 2:
            out.append((grid, path, how))
    return out


def compare_smoothers(model, inputs, every=8, decoder="confidence"):
    """Per input: {"how": its kind, each method: (valid, length, turns, total turning)}."""
    grids, paths = [g for g, _, _ in inputs], [p for _, p, _ in inputs]
    parts = stretches(model, grids, paths, every, decoder)
    rows = []
    for (grid, path, how), mine in zip(inputs, parts):
        pts, pure = [point(c) for c in path], join(mine)
        kept = [point(c) for c in join(mine, True)]
        ways = {"input": pts, "string pulling": string_pull(grid, pts),
                "SimpleSmoother": simple_smoother(grid, pts),
                "dLLM infill": pure and [point(c) for c in pure],
                # a planner's stage, then a smoother's: the cells, then the corners
                "dLLM infill, input kept where it fails": kept,
                "dLLM infill, then string pulling": string_pull(grid, kept)}
        row = {"how": how}
        for name, p in ways.items():
            ok = p is not None and all(clear(grid, a, b) for a, b in zip(p, p[1:]))
            row[name] = (ok, length(p), *turns(p)) if p else (False, math.nan, math.nan, math.nan)
        rows.append(row)
    return rows


def summary(rows):
    """Lines of the table, and the two targets of issue 57."""
    names = ["input", "string pulling", "SimpleSmoother", "dLLM infill",
             "dLLM infill, input kept where it fails", "dLLM infill, then string pulling"]
    detours = sum(r["how"] == "detour" for r in rows)
    lines = [f"{len(rows)} jagged paths ({detours} detours, the rest random walks)",
             "| path | valid | mean length (cells) | mean turns | mean turning (deg) |",
             "|---|---|---|---|---|"]
    for n in names:
        v = [r[n] for r in rows]
        ok = [x for x in v if x[0]]
        mean = [sum(x[k] for x in ok) / max(1, len(ok)) for k in (1, 2, 3)]  # over the valid ones
        lines.append(f"| {n} | {len(ok)}/{len(v)} | {mean[0]:.2f} | {mean[1]:.2f} | "
                     f"{mean[2]:.0f} |")
    sp, inp = ([r[n] for r in rows] for n in ("string pulling", "input"))
    short, fewer = {}, {}
    for n in names[1:]:
        v = [r[n] for r in rows]
        short[n] = sum(a[0] and a[1] <= b[1] + 1e-9 for a, b in zip(v, sp)) / len(rows)
        shorter = sum(a[0] and a[1] < b[1] - 1e-9 for a, b in zip(v, sp)) / len(rows)
        fewer[n] = sum(a[0] and a[2] < b[2] for a, b in zip(v, inp)) / len(rows)
        lines.append(f"{n}: valid and no longer than string pulling's {short[n]:.1%} (shorter "
                     f"{shorter:.1%}; target >= 80%), valid with fewer turns than the input "
                     f"{fewer[n]:.1%} (target >= 90%)")
    return lines, short["dLLM infill"], fewer["dLLM infill"]


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--maps", help="a robot_maps.py file (default: fresh maps of every kind but "
                   "mazes)")
    p.add_argument("--n", type=cli.int_in(1, 1000), default=20, help="maps (a few seconds each)")
    p.add_argument("--every", type=cli.positive_int, default=8,
                   help="keep every k-th cell of a jagged path")
    p.add_argument("--checkpoint", help="a path dLLM (default: your run, else the shipped model)")
    p.add_argument("--seed", type=cli.random_seed, default=0,
                   help="random seed: the maps and the jagged paths")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    if args.maps:
        rows = [r for r in maps.read_maps(args.maps) if r[2] != "maze"][: args.n]
    else:
        # every kind but mazes: a maze has one way through, so no detour
        rows = [maps.fresh_map(maps.KINDS[i % 4], rng) for i in range(args.n)]
    model = L16.load_planner("dllm", args.checkpoint)
    lines, _, _ = summary(compare_smoothers(model, jagged_inputs(rows, rng), args.every))
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    cli.run_cli(main)
