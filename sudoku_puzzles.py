"""Sudoku puzzles, made offline: random solution grids, puzzles with exactly one solution, Sudoku's symmetries.

    python sudoku_puzzles.py                          # data/sudoku/{train,val,test}.txt, about 18 minutes
    python sudoku_puzzles.py --train 200 --val 20 --test 20 --out /tmp/sudoku   # seconds
    python sudoku_puzzles.py --check data/sudoku/test.txt                     # solve every line, report
    python sudoku_puzzles.py --train-givens 17 50 --out data/sudoku-hard --seed 1   # harder training puzzles

A grid is 81 digits read row by row; 0 is a blank. Each line of a file is `puzzle,solution`. A plain backtracking
solver is the reference: it counts solutions (up to 2), so a puzzle is kept only when it has exactly one. Making a
unique puzzle takes about 0.1 s in Python, so the training set is a few thousand puzzles, and every batch turns
them into new ones with Sudoku's symmetries (relabel the digits, permute rows inside a band and the bands, the same
for columns, transpose): each maps a valid grid to a valid grid and a unique puzzle to a unique puzzle.
Train, validation and test puzzles never share a solution grid: each puzzle is cut from a grid of its own, and a
grid drawn twice (also with its digits relabelled) is skipped. A repeat under another symmetry is as unlikely as
drawing one of 6.7e21 grids twice.
"""
import random
from pathlib import Path

from support.cli import ArgumentParser, UsageError, run_cli
from support.files import read_text, write_text

ROOT = Path(__file__).resolve().parent
TRAIN_GIVENS = (28, 50)  # training and validation puzzles: the two middle bands and the easy one
BANDS = {"45+": (45, 81), "36-44": (36, 44), "28-35": (28, 35), "17-27": (17, 27)}  # difficulty = givens
UNITS = ([[r * 9 + c for c in range(9)] for r in range(9)] + [[r * 9 + c for r in range(9)] for c in range(9)]
         + [[(br + r) * 9 + bc + c for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc in (0, 3, 6)])
PEERS = [sorted({p for u in UNITS if i in u for p in u} - {i}) for i in range(81)]


def candidates(grid, i):
    """Digits 1..9 that no peer of cell i holds."""
    return {1, 2, 3, 4, 5, 6, 7, 8, 9} - {grid[p] for p in PEERS[i]}


def solve(grid, limit=2, rng=None):
    """Up to `limit` solutions of `grid` (a list of 81 ints, 0 = blank), by backtracking on the blank cell with the
    fewest candidates. rng shuffles the order digits are tried in (to draw random full grids)."""
    grid, found = list(grid), []

    def search():
        blanks = [(len(c), i, c) for i in range(81) if grid[i] == 0 for c in [candidates(grid, i)]]
        if not blanks:
            found.append(list(grid))
            return len(found) >= limit
        _, i, cands = min(blanks)
        order = sorted(cands)
        if rng is not None:
            rng.shuffle(order)
        for d in order:
            grid[i] = d
            if search():
                return True
        grid[i] = 0
        return False

    search()
    return found


def propagate(grid):
    """Fill in what the rules force, one cell at a time, until nothing is forced: a blank with one legal digit (a
    naked single), or a digit with one legal place in a row, column or box (a hidden single).
    -> the grid, or None when the rules are contradicted (a blank with no digit, a digit with no place)."""
    grid = list(grid)
    while True:
        cands = {i: candidates(grid, i) for i in range(81) if grid[i] == 0}
        if any(not c for c in cands.values()):
            return None
        single = next((i for i, c in cands.items() if len(c) == 1), None)
        if single is not None:
            grid[single] = next(iter(cands[single]))
            continue
        for u in UNITS:
            for d in set(range(1, 10)) - {grid[i] for i in u}:
                places = [i for i in u if d in cands.get(i, ())]
                if not places:
                    return None
                if len(places) == 1:
                    grid[places[0]] = d
                    break
            else:
                continue
            break
        else:
            return grid


def search(grid, guide=None, max_nodes=10_000):
    """Depth-first search with propagation. At each branch point guide(grid, cands) -> (cell, digits in the order to
    try) decides; the default is the plain solver: the blank with the fewest candidates, digits ascending.
    -> (the solution or None, branch points visited). Gives up (None) after max_nodes branch points."""
    nodes = 0

    def dfs(g):
        nonlocal nodes
        g = propagate(g)
        if g is None or 0 not in g:
            return g
        if nodes >= max_nodes:
            return None
        nodes += 1
        cands = {i: candidates(g, i) for i in range(81) if g[i] == 0}
        cell, digits = guide(g, cands) if guide else (min(cands, key=lambda i: len(cands[i])),
                                                      sorted(cands[min(cands, key=lambda i: len(cands[i]))]))
        for d in digits:  # the next-best choice when a deeper one contradicts the rules
            found = dfs(g[:cell] + [d] + g[cell + 1 :])
            if found is not None or nodes >= max_nodes:
                return found
        return None

    return dfs(list(grid)), nodes


def valid_solution(grid):
    """Every row, column and box holds 1..9 once."""
    return len(grid) == 81 and all(sorted(grid[i] for i in u) == list(range(1, 10)) for u in UNITS)


def random_grid(rng):
    return solve([0] * 81, limit=1, rng=rng)[0]


def make_puzzle(solution, givens, rng):
    """Blank cells of `solution` in random order, each kept blank only if the puzzle still has one solution, until
    `givens` remain or no cell can go (one pass seldom gets below about 22 givens). -> the puzzle reached."""
    puzzle, left = list(solution), 81
    for i in rng.sample(range(81), 81):
        if left <= givens:
            break
        puzzle[i] = 0
        if len(solve(puzzle)) == 1:
            left -= 1
        else:
            puzzle[i] = solution[i]
    return puzzle


def canonical(grid):
    """A key shared by a grid and every copy of it with the digits relabelled: digits renamed 1, 2, ... in order of
    first appearance."""
    first = {}
    for v in grid:
        first.setdefault(v, len(first) + 1)
    return tuple(first[v] for v in grid)


def symmetric(grid, rng_state):
    """One of Sudoku's symmetries, chosen by rng_state: relabel digits, permute bands and rows inside them, the same
    for columns, maybe transpose. Applied with the same state to a puzzle and its solution, it keeps them paired."""
    rng = random.Random(rng_state)
    relabel = [0] + rng.sample(range(1, 10), 9)  # 0 (blank) stays 0
    rows = [b * 3 + r for b in rng.sample(range(3), 3) for r in rng.sample(range(3), 3)]
    cols = [b * 3 + c for b in rng.sample(range(3), 3) for c in rng.sample(range(3), 3)]
    transpose = rng.random() < 0.5
    out = [relabel[grid[rows[r] * 9 + cols[c]]] for r in range(9) for c in range(9)]
    return [out[c * 9 + r] for r in range(9) for c in range(9)] if transpose else out


def make_split(n, givens_range, rng, seen):
    """n (puzzle, solution) pairs with givens in givens_range (lo, hi), each from a new solution grid (not in
    `seen`, which it extends). A target below what removal reaches makes the hardest puzzles it can."""
    lo, hi = givens_range
    pairs = []
    while len(pairs) < n:
        solution = random_grid(rng)
        key = canonical(solution)
        if key in seen:
            continue
        puzzle = make_puzzle(solution, rng.randint(lo, hi), rng)
        if lo <= sum(v != 0 for v in puzzle) <= hi:
            seen.add(key)
            pairs.append((puzzle, solution))
    return pairs


def to_line(puzzle, solution):
    return "".join(map(str, puzzle)) + "," + "".join(map(str, solution))


def parse_puzzle(line, where="line"):
    """81 characters, digits 1-9 with '.' or '0' for a blank, no given breaking the rules -> list of 81 ints."""
    s = line.strip()
    if len(s) != 81:
        raise UsageError(f"{where}: a puzzle has 81 cells, this one {len(s)}")
    bad = sorted({c for c in s if c not in "0123456789."})
    if bad:
        raise UsageError(f"{where}: only digits and '.' make a puzzle, not {' '.join(map(repr, bad))}")
    grid = [0 if c == "." else int(c) for c in s]
    for u in UNITS:
        seen = [grid[i] for i in u if grid[i]]
        if len(seen) != len(set(seen)):
            raise UsageError(f"{where}: the digits break the rules (one twice in a row, column or box)")
    return grid


def read_pairs(path):
    pairs = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            if line.count(",") != 1:
                raise UsageError(f"{path}:{n}: expected puzzle,solution")
            p, s = line.split(",")
            pairs.append((parse_puzzle(p, f"{path}:{n}"), parse_puzzle(s, f"{path}:{n}")))
    return pairs


def read_puzzles(path):
    """Puzzles from a file, one per line (81 cells, '.' or '0' blank; `puzzle,solution` lines are read too)."""
    rows = [parse_puzzle(line.split(",")[0], f"{path}:{n}")
            for n, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    if not rows:
        raise UsageError(f"{path}: no puzzles in it")
    return rows


def show(*grids, titles=()):
    """Grids (lists of 81 ints, 0 or the mask id > 9 shown as '.') side by side, with box lines."""
    out = ["      ".join(f"{t:<21}" for t in titles)] if titles else []
    for r in range(9):
        if r in (3, 6):
            out.append("      ".join(["------+-------+------"] * len(grids)))
        cell = lambda v: str(v) if 0 < v < 10 else "."
        out.append("      ".join(" | ".join(" ".join(cell(v) for v in g[r * 9 + c : r * 9 + c + 3]) for c in (0, 3, 6))
                                 for g in grids))
    return "\n".join(out)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "data" / "sudoku"), help="folder for train.txt, val.txt, test.txt")
    p.add_argument("--train", type=int, default=3000, help="training puzzles")
    p.add_argument("--val", type=int, default=200, help="validation puzzles (givens as --train-givens)")
    p.add_argument("--train-givens", type=int, nargs=2, metavar=("LO", "HI"), default=list(TRAIN_GIVENS),
                   help="givens of the training and validation puzzles: each puzzle's target drawn in [LO, HI]; a "
                   "target below what one removal pass reaches (about 22-26) gives the hardest puzzle it can")
    p.add_argument("--force", action="store_true", help="replace puzzle files already in --out (default: refuse)")
    p.add_argument("--test", type=int, default=1000, help="test puzzles per difficulty band")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same files every time")
    p.add_argument("--check", metavar="FILE", help="only check FILE: every line parses, has one solution, and "
                   "matches it (writes nothing)")
    args = p.parse_args(argv)
    if args.check:
        pairs = read_pairs(args.check)
        wrong = [n for n, (pz, sol) in enumerate(pairs, 1) if solve(pz) != [sol]]
        print(f"{args.check}: {len(pairs)} puzzles, {len(pairs) - len(wrong)} with exactly one solution, the one given")
        if wrong:
            raise UsageError(f"{args.check}: lines {wrong[:10]} do not have exactly their given solution")
        return pairs
    if min(args.train, args.val, args.test) < 1:
        raise UsageError("--train, --val and --test must be >= 1")
    lo, hi = args.train_givens
    if not 17 <= lo <= hi <= 80:
        raise UsageError(f"--train-givens needs 17 <= LO <= HI <= 80, got {lo} {hi}")
    out = Path(args.out)
    found = [n for n in ("train.txt", "val.txt", "test.txt") if (out / n).exists()]
    if found and not args.force:
        raise UsageError(f"{out} already holds {', '.join(found)}: --force replaces them, or choose another --out")
    rng, seen = random.Random(args.seed), set()
    splits = {"train": make_split(args.train, (lo, hi), rng, seen),
              "val": make_split(args.val, (lo, hi), rng, seen),
              "test": [pair for lo, hi in BANDS.values() for pair in make_split(args.test, (lo, min(hi, 50)), rng,
                                                                                  seen)]}
    for name, pairs in splits.items():
        write_text(out / f"{name}.txt", "".join(to_line(*pair) + "\n" for pair in pairs))
        print(f"wrote {out / f'{name}.txt'}: {len(pairs)} puzzles")
    return splits


if __name__ == "__main__":
    run_cli(main)
