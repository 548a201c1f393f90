"""The maps lesson 16 plans on: 16 x 16 occupancy grids, a start, a goal, the shortest path.

    python robot_maps.py                              # data/maps/: 100,000 training maps, val, test
    python robot_maps.py --ros map.yaml --kind rooms  # one map as ROS map_server files
    python robot_maps.py --check data/maps/test.txt   # lines parse; every answer a shortest path

A map is 256 characters, row by row from the top: `#` a wall, `.` free, `S` the start, `G` the
goal. Its answer is the same 256 characters with `*` on the cells the path crosses between S and G
(4-connected moves). A file holds one `map,answer,kind` line per map. Three kinds of map, as a
robot's map server might hold:

  blocks   walls scattered cell by cell at a density (10%, 20% or 30% of the cells)
  rooms    a 4 x 4 floor of rooms, one door in each wall between two, a quarter of the walls gone
  maze     a perfect maze (recursive backtracker): one way between any two cells, long detours

The path is a breadth-first search's (unit cost per move: optimal on a 4-connected grid), with a
stated tie-break, since a grid has many shortest paths: walking from S, among the neighbours one
move nearer to G, keep going straight if that is one of them, else take the first of up, right,
down, left. Train, validation and test never share a wall layout.
"""
import random
import time
from collections import deque
from pathlib import Path

from support.cli import (
    ArgumentParser,
    UsageError,
    finite_float,
    int_in,
    number,
    random_seed,
    run_cli,
    unwritable,
)
from support.files import read_text, write_text

ROOT = Path(__file__).resolve().parent
SIZE = 16  # a 16 x 16 grid: 256 cells, lesson 05's context
CELLS = SIZE * SIZE
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left: the tie-break's order
KINDS = ("blocks-10", "blocks-20", "blocks-30", "rooms", "maze")
MIN_DISTANCE = 6  # start and goal at least this many moves apart: a path worth planning
MAX_MOVES = 128  # and at most this many: lesson 16's GPT writes the moves after the map
RESOLUTION = number(finite_float, lambda v: 1e-9 <= v < 1e6, "in [1e-9, 1e6) metres per pixel",
                    "resolution")  # the range support/ros_map.py reads back


def neighbours(cell):
    r, c = divmod(cell, SIZE)
    for dr, dc in MOVES:
        if 0 <= r + dr < SIZE and 0 <= c + dc < SIZE:
            yield (r + dr) * SIZE + c + dc


def distances(walls, goal):
    """Moves from every free cell to `goal` (breadth-first, from the goal): {cell: moves}."""
    dist, queue = {goal: 0}, deque([goal])
    while queue:
        cell = queue.popleft()
        for n in neighbours(cell):
            if not walls[n] and n not in dist:
                dist[n] = dist[cell] + 1
                queue.append(n)
    return dist


def shortest_path(walls, start, goal, dist=None):
    """The cells from start to goal (both included) of a shortest path, by the stated tie-break;
    None if the goal cannot be reached."""
    dist = dist or distances(walls, goal)
    if start not in dist:
        return None
    path, heading = [start], None
    while path[-1] != goal:
        cell = path[-1]
        nearer = [n for n in neighbours(cell) if dist.get(n) == dist[cell] - 1]
        straight = cell + heading if heading is not None else None  # only a neighbour is nearer
        nxt = straight if straight in nearer else nearer[0]
        heading, path = nxt - cell, path + [nxt]
    return path


# ----------------------------------------------------------------------------------------------
# Three kinds of map
# ----------------------------------------------------------------------------------------------
def blocks(density, rng):
    return [rng.random() < density for _ in range(CELLS)]


def rooms(rng):
    """A 4 x 4 floor of 4 x 4 rooms: walls on every room's top and left edge, one door (a gap of one
    cell) in each wall between two rooms, and a quarter of those walls left out altogether."""
    walls = [False] * CELLS
    for r in range(SIZE):
        for c in range(SIZE):
            walls[r * SIZE + c] = (r % 4 == 0 and r > 0) or (c % 4 == 0 and c > 0)
    for br in range(4):
        for bc in range(4):
            top, left = br * 4, bc * 4
            if br > 0:  # the wall above this room
                gone = rng.random() < 0.25
                door = rng.randrange(left + 1 if bc else left, left + 4)
                for c in range(left + (1 if bc else 0), left + 4):
                    walls[top * SIZE + c] = walls[top * SIZE + c] and not gone and c != door
            if bc > 0:  # the wall left of this room
                gone = rng.random() < 0.25
                door = rng.randrange(top + 1 if br else top, top + 4)
                for r in range(top + (1 if br else 0), top + 4):
                    walls[r * SIZE + left] = walls[r * SIZE + left] and not gone and r != door
    return walls


def maze(rng):
    """A perfect maze by the recursive backtracker on the 8 x 8 lattice of even cells (walls between
    them on odd rows and columns; the last row and column walled off as the lattice's edge)."""
    walls = [True] * CELLS
    start = (0, 0)
    walls[0] = False
    stack, seen = [start], {start}
    while stack:
        r, c = stack[-1]
        options = [(r + 2 * dr, c + 2 * dc) for dr, dc in MOVES]
        options = [(a, b) for a, b in options
                   if 0 <= a < SIZE and 0 <= b < SIZE and (a, b) not in seen]
        if not options:
            stack.pop()
            continue
        nr, nc = rng.choice(options)
        walls[((r + nr) // 2) * SIZE + (c + nc) // 2] = walls[nr * SIZE + nc] = False
        seen.add((nr, nc))
        stack.append((nr, nc))
    return walls


def make_walls(kind, rng):
    if kind.startswith("blocks"):
        return blocks(int(kind.split("-")[1]) / 100, rng)
    return rooms(rng) if kind == "rooms" else maze(rng)


def make_map(kind, rng):
    """(map, answer, kind) strings of one map of this kind, with a start and a goal MIN_DISTANCE or
    more moves apart, or None when the layout drawn has no such pair (a crowded one)."""
    walls = make_walls(kind, rng)
    free = [i for i in range(CELLS) if not walls[i]]
    for _ in range(20):  # a few tries at a start and a goal
        if len(free) < 2:
            return None
        start, goal = rng.sample(free, 2)
        dist = distances(walls, goal)
        if MIN_DISTANCE <= dist.get(start, 0) <= MAX_MOVES:
            path = shortest_path(walls, start, goal, dist)
            grid = ["#" if w else "." for w in walls]
            grid[start], grid[goal] = "S", "G"
            answer = list(grid)
            for cell in path[1:-1]:
                answer[cell] = "*"
            return "".join(grid), "".join(answer), kind
    return None


def fresh_map(kind, rng):
    """(map, answer, kind) of one map of this kind: make_map until a layout has a start and goal."""
    while (row := make_map(kind, rng)) is None:
        pass
    return row


def make_maps(n, rng, seen, made=lambda: None):
    """n (map, answer, kind) triples, the kinds taking turns, no wall layout in `seen` (which it
    extends). made() after each."""
    pairs = []
    while len(pairs) < n:
        pair = make_map(KINDS[len(pairs) % len(KINDS)], rng)
        if pair is None:
            continue
        layout = pair[0].replace("S", ".").replace("G", ".")
        if layout not in seen:
            seen.add(layout)
            pairs.append(pair)
            made()
    return pairs


# ----------------------------------------------------------------------------------------------
# Files: one `map,answer,kind` per line
# ----------------------------------------------------------------------------------------------
def parse_map(line, where):
    """A map line -> its 256 characters, or one clear line saying what is wrong with it."""
    line = line.strip()
    if len(line) != CELLS:
        raise UsageError(f"{where}: a map has {CELLS} characters (16 rows of 16), not {len(line)}")
    if other := sorted(set(line) - set("#.SG*")):
        raise UsageError(f"{where}: a map holds only # . S G, not {other[0]!r}")
    if line.count("S") != 1 or line.count("G") != 1:
        raise UsageError(f"{where}: a map has one S and one G")
    return line


# ----------------------------------------------------------------------------------------------
# Paths: read off a canvas or a walk, judged. A path: the cells from S to G (a list), or None
# ----------------------------------------------------------------------------------------------
STEP = {"U": -SIZE, "R": 1, "D": SIZE, "L": -1}  # a move as a change of cell index


def route(grid, marks):
    """The shortest way from S to G over the cells marked `*` in `marks` (and S, G), or None: a
    plan read off a dLLM's canvas. Marked cells off that way (strays) are left out."""
    start, goal = grid.index("S"), grid.index("G")
    on = {i for i, ch in enumerate(marks) if ch == "*" and grid[i] != "#"} | {goal}
    back, queue = {start: None}, deque([start])
    while queue and goal not in back:
        cell = queue.popleft()
        for n in neighbours(cell):
            if n in on and n not in back:
                back[n] = cell
                queue.append(n)
    if goal not in back:
        return None
    path = [goal]
    while back[path[-1]] is not None:
        path.append(back[path[-1]])
    return path[::-1]


def walk(grid, moves, partial=False):
    """The cells that moves ('RRD...') visit from S until G, or None if they leave the map, hit a
    wall, or stop (`$` or their end) before G. partial: the cells visited before that instead (a
    walk in progress, as the playground draws it)."""
    cell, path = grid.index("S"), [grid.index("S")]
    for m in moves:
        nxt = cell + STEP.get(m, CELLS)
        if m == "$" or nxt not in neighbours(cell) or grid[nxt] == "#":
            return path if partial else None
        cell = nxt
        path.append(cell)
        if grid[cell] == "G":
            return path
    return path if partial else None


def moves_of(grid, path):
    """A path's moves: 'RRDD...'."""
    return "".join(next(m for m, d in STEP.items() if b - a == d) for a, b in zip(path, path[1:]))


def judge_path(grid, path):
    """(valid, shortest): the path goes S to G over free cells, each move to a neighbour; and no
    path is shorter (BFS distance)."""
    if path is None:
        return False, False
    walls = [ch == "#" for ch in grid]
    ok = (path[0] == grid.index("S") and path[-1] == grid.index("G")
          and not any(walls[c] for c in path)
          and all(b in neighbours(a) for a, b in zip(path, path[1:])))
    return ok, ok and len(path) - 1 == distances(walls, grid.index("G")).get(grid.index("S"))


def draw_path(grid, path):
    """The map with `*` on the path's cells between S and G."""
    cells = list(grid)
    for c in (path or [])[1:-1]:
        cells[c] = "*"
    return "".join(cells)


def check_answer(grid, answer):
    """True if `answer` is `grid` with `*` on a shortest path from S to G and nowhere else."""
    path = route(grid, answer)
    return (len(answer) == CELLS and judge_path(grid, path)[1] and draw_path(grid, path) == answer)


def read_maps(path):
    """[(map, answer, kind)] of a file this script wrote."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            parts = line.strip().split(",")
            if len(parts) != 3 or parts[2] not in KINDS:
                raise UsageError(f"{path}:{n}: expected map,answer,kind")
            rows.append((parse_map(parts[0], f"{path}:{n}"), parts[1], parts[2]))
    return rows


def write_ros(args):
    """--ros: a fresh map of --kind (seed --seed) as map_server files; S and G printed."""
    from support import ros_map

    grid, _, _ = fresh_map(args.kind, random.Random(args.seed))
    layout = grid.replace("S", ".").replace("G", ".")
    rows = [layout[r * SIZE : (r + 1) * SIZE] for r in range(SIZE)]
    path = ros_map.write_map(args.ros, rows, args.resolution, cell_px=args.cell_px,
                             force=args.force)
    side = args.cell_px * args.resolution  # metres per cell; row 0 is the top, y grows upwards
    centre = lambda i: ((i % SIZE + 0.5) * side, (SIZE - i // SIZE - 0.5) * side)
    (sx, sy), (gx, gy) = centre(grid.index("S")), centre(grid.index("G"))
    print(f"wrote {path} and {path.with_suffix('.pgm').name}: {args.kind}, {SIZE * args.cell_px} "
          f"pixels square, {args.resolution:g} m each; a start and goal: --start {sx:g} {sy:g} "
          f"--goal {gx:g} {gy:g}")
    return path


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "data" / "maps"),
                   help="folder for train.txt, val.txt, test.txt")
    p.add_argument("--train", type=int_in(1, 10**6), default=100000, help="training maps")
    p.add_argument("--val", type=int_in(1, 10**5), default=500, help="validation maps")
    p.add_argument("--test", type=int_in(1, 10**5), default=1000, help="test maps")
    p.add_argument("--seed", type=random_seed, default=0, help="the same seed, the same files")
    p.add_argument("--force", action="store_true",
                   help="replace map files already in --out (default: refuse)")
    p.add_argument("--check", metavar="FILE",
                   help="only check FILE: lines parse, answers are shortest paths")
    p.add_argument("--ros", metavar="MAP.yaml",
                   help="only write one map of --kind as a ROS map_server map (YAML + PGM)")
    p.add_argument("--kind", choices=KINDS, default="rooms", help="--ros: the kind of map")
    p.add_argument("--cell-px", type=int_in(1, 100), default=5, help="--ros: pixels per cell side")
    p.add_argument("--resolution", type=RESOLUTION, default=0.1, help="--ros: metres per pixel")
    args = p.parse_args(argv)
    if args.ros:
        return write_ros(args)
    if args.check:
        pairs = read_maps(args.check)
        if not pairs:
            raise UsageError(f"{args.check}: no maps in it")
        wrong = [n for n, (grid, answer, _) in enumerate(pairs, 1)
                 if not check_answer(grid, answer)]
        print(f"{args.check}: {len(pairs)} maps, {len(pairs) - len(wrong)} answers shortest paths")
        if wrong:
            raise UsageError(f"{args.check}: lines {wrong[:10]} are no shortest path from S to G")
        return pairs
    out = Path(args.out)
    if why := unwritable(out.absolute()):  # before the minutes of work, not at the write after them
        raise UsageError(f"--out {out}: {why}")
    found = [n for n in ("train.txt", "val.txt", "test.txt") if (out / n).exists()]
    if found and not args.force:
        raise UsageError(f"{out} already holds {', '.join(found)}: --force replaces them, or "
                         "choose another --out")
    rng, seen, t0 = random.Random(args.seed), set(), time.perf_counter()
    sizes = (("train", args.train), ("val", args.val), ("test", args.test))
    from tqdm import tqdm

    with tqdm(total=sum(n for _, n in sizes), unit="map", desc="maps", leave=False) as bar:
        splits = {name: make_maps(n, rng, seen, bar.update) for name, n in sizes}
    for name, pairs in splits.items():  # written only once all are made: never half a set
        write_text(out / f"{name}.txt", "".join(",".join(row) + "\n" for row in pairs))
    print(f"{sum(map(len, splits.values())):,} maps in {time.perf_counter() - t0:.0f} s -> {out} "
          "(no wall layout in two files)")
    return splits


if __name__ == "__main__":
    run_cli(main)
