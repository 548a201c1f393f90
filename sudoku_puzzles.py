"""Sudoku puzzles, made offline: random solution grids, puzzles with exactly one solution, Sudoku's
symmetries, and a rating of how hard each is for a solver.

    python sudoku_puzzles.py                  # data/sudoku/{train,val,test}.txt, under a minute
    python sudoku_puzzles.py --train 200 --val 20 --test 20 --out /tmp/sudoku   # seconds
    python sudoku_puzzles.py --check data/sudoku/test.txt          # solve every line, report
    python sudoku_puzzles.py --train 100000 --train-givens 17 50 --hard 1000 --workers 2 \\
        --out data/sudoku-100k

A grid is 81 digits read row by row; 0 is a blank. Each line of a file is `puzzle,solution`. The
solver keeps each cell's legal digits as a 9-bit mask, fills in what the rules force (a cell with
one legal digit, a digit with one place left in a row, column or box) before any guess, and guesses
on the cell with the fewest digits; a removal is kept only if no solution has another digit there.
About 10-20 ms a puzzle on one core: 10^5 puzzles take 7-14 minutes on two (RESULTS.md 7.4). A
puzzle's rating is the number of guesses that solver needs (0: the rules alone solve it), as
Sudoku-Extreme rates puzzles by a solver's backtracks: few givens do not make a puzzle hard. Every
batch turns the training puzzles into new ones with Sudoku's symmetries (relabel the digits,
permute rows inside a band and the bands, the same for columns, transpose): each maps a valid grid
to a valid grid and a unique puzzle to a unique puzzle. Train, validation and test puzzles never
share a solution grid: each puzzle is cut from a grid of its own, and a grid drawn twice (also with
its digits relabelled) is skipped. A repeat under another symmetry is as unlikely as drawing one of
6.7e21 grids twice.
"""
import random
import signal
import time
from pathlib import Path

from support.cli import ArgumentParser, UsageError, int_in, random_seed, run_cli, unwritable
from support.files import read_text, write_text

ROOT = Path(__file__).resolve().parent
TRAIN_GIVENS = (28, 50)  # training and validation puzzles: the two middle bands and the easy one
# difficulty = givens
BANDS = {"45+": (45, 81), "36-44": (36, 44), "28-35": (28, 35), "17-27": (17, 27)}
# difficulty = rate()
RATINGS = {"0 guesses": (0, 0), "1-2 guesses": (1, 2), "3+ guesses": (3, 10**9)}
HARD = 3  # guesses that make a puzzle need real search (test_hard.txt)
UNITS = ([[r * 9 + c for c in range(9)] for r in range(9)]
         + [[r * 9 + c for r in range(9)] for c in range(9)]
         + [[(br + r) * 9 + bc + c for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc
            in (0, 3, 6)])
PEERS = [sorted({p for u in UNITS if i in u for p in u} - {i}) for i in range(81)]


def candidates(grid, i):
    """Digits 1..9 that no peer of cell i holds."""
    return {1, 2, 3, 4, 5, 6, 7, 8, 9} - {grid[p] for p in PEERS[i]}


# ----------------------------------------------------------------------------------------------
# The solver: legal digits as 9-bit masks (bit d-1 = digit d), the rules' propagation, search
# ----------------------------------------------------------------------------------------------
ALL = 0x1FF  # every digit legal
POP = [bin(m).count("1") for m in range(512)]  # digits in a mask
DIGIT = {1 << d: d + 1 for d in range(9)}  # a single-digit mask -> its digit


def masks_of(grid):
    """The masks of a grid (0 = blank) after the naked singles its givens force, or None
    if they contradict."""
    m = [ALL] * 81
    for i, v in enumerate(grid):
        if v and not (m[i] >> (v - 1) & 1 and place(m, i, 1 << (v - 1))):
            return None
    return m


def place(m, i, bit):
    """Cell i holds the digit `bit`: strike it from every peer, and place any peer left with one
    digit (a naked single) the same way. False when a peer is left with none."""
    todo = [(i, bit)]
    while todo:
        i, bit = todo.pop()
        m[i] = bit
        for p in PEERS[i]:
            if m[p] & bit:
                m[p] &= ~bit
                if not m[p]:
                    return False
                if POP[m[p]] == 1:
                    todo.append((p, m[p]))
    return True


def fill_forced(m):
    """Naked and hidden singles (a digit with one place left in a row, column or box) until nothing
    is forced. False on a contradiction (a cell with no digit, a digit with no place)."""
    changed = True
    while changed:
        changed = False
        for u in UNITS:
            once = twice = 0
            for i in u:
                twice |= once & m[i]
                once |= m[i]
            if once != ALL:
                return False
            for i in u:
                only = m[i] & once & ~twice  # a digit that fits nowhere else in this unit
                if only and m[i] != only:
                    if POP[only] > 1 or not place(m, i, only):
                        return False
                    changed = True
    return True


def fewest(m):
    """The undecided cell with the fewest legal digits (the first of them), or -1 when every
    cell is decided."""
    best, n = -1, 10
    for i in range(81):
        if 1 < POP[m[i]] < n:
            best, n = i, POP[m[i]]
    return best


def grid_of(m):
    return [DIGIT.get(x, 0) for x in m]


def solve(grid, limit=2, rng=None):
    """Up to `limit` solutions of `grid` (a list of 81 ints, 0 = blank): propagation, then search
    on the cell with the fewest digits. rng: random full grids, drawn as the first solution of an
    empty grid (random_grid)."""
    if rng is not None:
        return [random_fill(grid, rng)]
    found = []

    def dfs(m):
        if not fill_forced(m):
            return
        cell = fewest(m)
        if cell < 0:
            found.append(grid_of(m))
            return
        for d in range(9):
            if m[cell] >> d & 1 and len(found) < limit:
                mm = list(m)
                if place(mm, cell, 1 << d):
                    dfs(mm)

    m = masks_of(grid)
    if m is not None:
        dfs(m)
    return found


def random_fill(grid, rng):
    """A random completion of grid: backtracking on the blank with the fewest candidates (the first
    of them), its digits in an order rng shuffles. The draws are those of the repository's first
    generator, so a seed makes the same puzzle files as it always did."""
    grid = list(grid)
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for i, v in enumerate(grid):
        if v:
            b = 1 << (v - 1)
            rows[i // 9] |= b
            cols[i % 9] |= b
            boxes[i // 27 * 3 + i % 9 // 3] |= b

    def dfs():
        best, best_free = -1, 0
        for i in range(81):
            if not grid[i]:
                free = ALL & ~(rows[i // 9] | cols[i % 9] | boxes[i // 27 * 3 + i % 9 // 3])
                if best < 0 or POP[free] < POP[best_free]:
                    best, best_free = i, free
        if best < 0:
            return True
        order = [d + 1 for d in range(9) if best_free >> d & 1]
        rng.shuffle(order)
        r, c, bx = best // 9, best % 9, best // 27 * 3 + best % 9 // 3
        for d in order:
            b = 1 << (d - 1)
            grid[best] = d
            rows[r] |= b
            cols[c] |= b
            boxes[bx] |= b
            if dfs():
                return True
            rows[r] &= ~b
            cols[c] &= ~b
            boxes[bx] &= ~b
        grid[best] = 0
        return False

    dfs()
    return grid


def propagate(grid):
    """Fill in what the rules force: a blank with one legal digit (a naked single), or a digit with
    one legal place in a row, column or box (a hidden single), until nothing is forced. -> the grid,
    or None when the rules are contradicted (a blank with no digit, a digit with no place)."""
    m = masks_of(grid)
    return grid_of(m) if m is not None and fill_forced(m) else None


def search(grid, guide=None, max_nodes=10_000):
    """Depth-first search with propagation. At each branch point guide(grid, cands) -> (cell, digits
    in the order to try) decides; the default is the plain solver: the blank with the fewest
    candidates, digits ascending. -> (the solution or None, branch points visited). Gives up (None)
    after max_nodes branch points."""
    nodes = 0

    def dfs(m):
        nonlocal nodes
        if not fill_forced(m):
            return None
        if fewest(m) < 0:
            return grid_of(m)
        if nodes >= max_nodes:
            return None
        nodes += 1
        cands = {i: {d + 1 for d in range(9) if m[i] >> d & 1} for i in range(81) if POP[m[i]] > 1}
        cell, digits = guide(grid_of(m), cands) if guide else (fewest(m), sorted(cands[fewest(m)]))
        for d in digits:  # the next-best choice when a deeper one contradicts the rules
            mm = list(m)
            found = dfs(mm) if place(mm, cell, 1 << (d - 1)) else None
            if found is not None or nodes >= max_nodes:
                return found
        return None

    m = masks_of(grid)
    return (dfs(m) if m is not None else None), nodes


def rate(puzzle):
    """How hard a puzzle is for a solver: the guesses (branch points) the plain solver needs
    after the rules' propagation, as Sudoku-Extreme rates by a solver's backtracks. 0: the rules
    alone solve it."""
    return search(puzzle)[1]


def other_solution(puzzle, i, digit):
    """Has `puzzle` a solution whose cell i (blank) is not `digit`? The uniqueness test of one
    removal: cheaper than counting solutions, since most wrong digits are refuted by
    propagation at once."""
    m = masks_of(puzzle)
    if m is None or not m[i] & ~(1 << (digit - 1)):
        return False
    m[i] &= ~(1 << (digit - 1))
    if POP[m[i]] == 1 and not place(m, i, m[i]):
        return False
    return any_solution(m)


def any_solution(m):
    """Do the masks m have a solution? (Search as solve's, stopping at the first.)"""
    if not fill_forced(m):
        return False
    cell = fewest(m)
    if cell < 0:
        return True
    for d in range(9):
        if m[cell] >> d & 1:
            mm = list(m)
            if place(mm, cell, 1 << d) and any_solution(mm):
                return True
    return False


def valid_solution(grid):
    """Every row, column and box holds 1..9 once."""
    return len(grid) == 81 and all(sorted(grid[i] for i in u) == list(range(1, 10)) for u in UNITS)


def random_grid(rng):
    return random_fill([0] * 81, rng)


def make_puzzle(solution, givens, rng):
    """Blank cells of `solution` in random order, each kept blank only if the puzzle still has one
    solution, until `givens` remain or no cell can go (one pass seldom gets below about 22 givens).
    -> the puzzle reached."""
    puzzle, left = list(solution), 81
    for i in rng.sample(range(81), 81):
        if left <= givens:
            break
        puzzle[i] = 0
        if other_solution(puzzle, i, solution[i]):
            puzzle[i] = solution[i]
        else:
            left -= 1
    return puzzle


def canonical(grid):
    """A key shared by a grid and every copy of it with the digits relabelled: digits renamed 1, 2,
    ... in order of first appearance."""
    first = {}
    for v in grid:
        first.setdefault(v, len(first) + 1)
    return tuple(first[v] for v in grid)


def symmetric(grid, rng_state):
    """One of Sudoku's symmetries, chosen by rng_state: relabel digits, permute bands and rows
    inside them, the same for columns, maybe transpose. Applied with the same state to a puzzle and
    its solution, it keeps them paired."""
    rng = random.Random(rng_state)
    relabel = [0] + rng.sample(range(1, 10), 9)  # 0 (blank) stays 0
    rows = [b * 3 + r for b in rng.sample(range(3), 3) for r in rng.sample(range(3), 3)]
    cols = [b * 3 + c for b in rng.sample(range(3), 3) for c in rng.sample(range(3), 3)]
    transpose = rng.random() < 0.5
    out = [relabel[grid[rows[r] * 9 + cols[c]]] for r in range(9) for c in range(9)]
    return [out[c * 9 + r] for r in range(9) for c in range(9)] if transpose else out


def symmetric_batch(data, batch_size, generator=None):
    """symmetric() on tensors, for lesson 12's training batches: batch_size rows of data (N, 162),
    puzzle + solution token ids, each made new by its own random symmetry -> (B, 162)."""
    import torch  # the generator itself needs no torch

    B = batch_size
    pick = torch.randint(len(data), (B,), generator=generator)
    relabel = torch.cat([torch.zeros(B, 1, dtype=torch.long),  # 0 (blank) stays 0
                         torch.rand(B, 9, generator=generator).argsort(1) + 1], 1)  # (B, 10)

    def lines():  # (B, 9): 3 bands in random order, the 3 lines inside each in random order
        bands = torch.rand(B, 3, generator=generator).argsort(1)[:, :, None] * 3  # (B, 3, 1)
        return (bands + torch.rand(B, 3, 3, generator=generator).argsort(2)).flatten(1)

    cell = lines()[:, :, None] * 9 + lines()[:, None, :]  # (B, 9, 9): the old cell at each new one
    flip = torch.rand(B, generator=generator) < 0.5
    cell = torch.where(flip[:, None, None], cell.transpose(1, 2), cell).flatten(1)  # (B, 81)
    x = data[pick.to(data.device)].view(B, 2, 81)  # (B, 2, 81): puzzle, solution
    x = x.gather(2, cell.to(data.device)[:, None, :].expand(B, 2, 81))
    return relabel.to(data.device).gather(1, x.flatten(1))  # (B, 162)


FEWEST = 22  # one removal pass: 22-28 givens for a target of 17 (3% of grids reach 22; 300 tried)
MAX_MISSES = 1000  # grids in a row without a puzzle in range before make_split gives up


def make_split(n, givens_range, rng, seen):
    """n (puzzle, solution) pairs with givens in givens_range (lo, hi), each from a new solution
    grid (not in `seen`, which it extends). A target below what removal reaches makes the hardest
    puzzles it can; a range that removal (almost) never reaches is a ValueError after MAX_MISSES
    grids in a row, never an endless search."""
    lo, hi = givens_range
    pairs, misses = [], 0
    while len(pairs) < n:
        solution = random_grid(rng)
        key = canonical(solution)
        if key in seen:
            continue
        puzzle = make_puzzle(solution, rng.randint(lo, hi), rng)
        if lo <= sum(v != 0 for v in puzzle) <= hi:
            seen.add(key)
            pairs.append((puzzle, solution))
            misses = 0
        elif (misses := misses + 1) == MAX_MISSES:
            raise ValueError(f"{MAX_MISSES} grids in a row gave no puzzle with {lo}-{hi} givens: "
                             f"one removal pass reaches {FEWEST} givens at the fewest")
    return pairs


def make_part(job):
    """One worker's share of a large split: (n, givens_range, seed) -> pairs, its
    own rng (make_many)."""
    n, givens_range, seed = job
    return make_split(n, givens_range, random.Random(seed), set())


def make_many(n, givens_range, seed, workers, seen):
    """make_split for n puzzles on `workers` processes: part k of the split is drawn with its own
    seed, so the same seed and worker count make the same files. Grids drawn in two parts (never
    seen in 10^5 draws of 6.7e21) are dropped and made again, so no two puzzles and no two splits
    share a solution grid."""
    from multiprocessing import Pool

    from tqdm import tqdm

    sizes = [n // workers + (k < n % workers) for k in range(workers)]
    chunks = [(size, k, c) for k, size in enumerate(sizes) for c in range(-(-size // 500))]
    jobs = [(min(500, sizes[k] - 500 * c), givens_range, f"{seed}-{k}-{c}") for _, k, c in chunks]
    pairs = []
    # Ctrl-C reaches every process in the terminal's group: the workers ignore it, and the main
    # process stops them and says so in one line (each worker printed a report of its own before).
    # min(): no idle processes when n is small.
    ignore_ctrl_c = (signal.SIGINT, signal.SIG_IGN)
    with Pool(min(workers, len(jobs)), signal.signal, ignore_ctrl_c) as pool:
        for part in tqdm(pool.imap(make_part, jobs), total=len(jobs), desc=f"{n:,} puzzles",
                         unit="chunk"):
            for puzzle, solution in part:
                key = canonical(solution)
                if key not in seen:
                    seen.add(key)
                    pairs.append((puzzle, solution))
    rng = random.Random(f"{seed}-refill")
    return pairs + make_split(n - len(pairs), givens_range, rng, seen)


def make_hard(n, min_rating, rng, seen):
    """n puzzles the plain solver needs at least min_rating guesses for (rate()): drawn as
    make_split's hardest, and kept only when that hard. About one puzzle in ten needs 3 or more."""
    pairs = []
    while len(pairs) < n:
        (puzzle, solution), = make_split(1, (17, 27), rng, seen)
        if rate(puzzle) >= min_rating:
            pairs.append((puzzle, solution))
    return pairs


def rating_table(pairs):
    """How hard the puzzles are: for each band of givens, the share the plain solver finishes with
    0, 1-2 and 3+ guesses after the rules' propagation (rate)."""
    rows = {}
    for puzzle, _ in pairs:
        givens = sum(v != 0 for v in puzzle)
        band = next((name for name, (lo, hi) in BANDS.items() if lo <= givens <= hi), "under 17")
        guesses = rate(puzzle)
        rating = next(n for n, (lo, hi) in RATINGS.items() if lo <= guesses <= hi)
        rows.setdefault(band, []).append(rating)
    head = f"| givens | puzzles | {' | '.join(RATINGS)} |\n|---|---|{'---|' * len(RATINGS)}\n"
    return head + "".join(f"| {band} | {len(r)} | "
                          + " | ".join(f"{r.count(n) / len(r):.1%}" for n in RATINGS)
                          + " |\n" for band, r in rows.items())


def to_line(puzzle, solution):
    return "".join(map(str, puzzle)) + "," + "".join(map(str, solution))


def parse_puzzle(line, where="line"):
    """81 characters, digits 1-9 with '.' or '0' for a blank, no given breaking the rules -> list
    of 81 ints."""
    s = line.strip()
    if len(s) != 81:
        raise UsageError(f"{where}: a puzzle has 81 cells, this one {len(s)}")
    bad = sorted({c for c in s if c not in "0123456789."})
    if bad:
        shown = " ".join(map(repr, bad))
        raise UsageError(f"{where}: only digits and '.' make a puzzle, not {shown}")
    grid = [0 if c == "." else int(c) for c in s]
    for u in UNITS:
        seen = [grid[i] for i in u if grid[i]]
        if len(seen) != len(set(seen)):
            raise UsageError(f"{where}: the digits break the rules (one twice in a row, column or "
                             "box)")
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
    """Puzzles from a file, one per line (81 cells, '.' or '0' blank; `puzzle,solution` lines
    are read too)."""
    rows = [parse_puzzle(line.split(",")[0], f"{path}:{n}")
            for n, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    if not rows:
        raise UsageError(f"{path}: no puzzles in it")
    return rows


def show(*grids, titles=()):
    """Grids (lists of 81 ints, 0 or the mask id > 9 shown as '.') side by side, with box lines."""
    out = ["      ".join(f"{t:<21}" for t in titles)] if titles else []
    cell = lambda v: str(v) if 0 < v < 10 else "."
    row = lambda g, r: " | ".join(" ".join(cell(v) for v in g[r * 9 + c : r * 9 + c + 3])
                                  for c in (0, 3, 6))  # row r of grid g, in three boxes
    for r in range(9):
        if r in (3, 6):
            out.append("      ".join(["------+-------+------"] * len(grids)))
        out.append("      ".join(row(g, r) for g in grids))
    return "\n".join(out)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "data" / "sudoku"),
                   help="folder for train.txt, val.txt, test.txt")
    p.add_argument("--train", type=int_in(1, 10**7), default=3000, help="training puzzles")
    p.add_argument("--val", type=int_in(1, 10**6), default=200,
                   help="validation puzzles (givens as --train-givens)")
    p.add_argument("--train-givens", type=int, nargs=2, metavar=("LO", "HI"),
                   default=list(TRAIN_GIVENS),
                   help="givens of the training and validation puzzles: each puzzle's target "
                        f"drawn in [LO, HI]; a target below what one removal pass reaches (about "
                        f"22-26) gives the hardest puzzle it can, so HI must be >= {FEWEST}")
    p.add_argument("--force", action="store_true",
                   help="replace puzzle files already in --out (default: refuse)")
    p.add_argument("--test", type=int_in(1, 10**6), default=1000, help="test puzzles per band")
    p.add_argument("--hard", type=int_in(0, 10**5), default=0,
                   help=f"also test_hard.txt: this many puzzles that need at least {HARD} guesses "
                   "of a plain solver after the rules' propagation (real search)")
    p.add_argument("--workers", type=int_in(1, 64), default=1,
                   help="processes making the training puzzles (the same --seed and --workers "
                   "make the same files)")
    p.add_argument("--seed", type=random_seed, default=0, help="the same seed, the same files")
    p.add_argument("--check", metavar="FILE",
                   help="only check FILE: every line parses, has one solution, and matches it "
                   "(writes nothing)")
    args = p.parse_args(argv)
    if args.check:
        pairs = read_pairs(args.check)
        wrong = [n for n, (pz, sol) in enumerate(pairs, 1) if solve(pz) != [sol]]
        print(f"{args.check}: {len(pairs)} puzzles, {len(pairs) - len(wrong)} with exactly one "
              "solution, the one given")
        print(rating_table(pairs))
        if wrong:
            raise UsageError(f"{args.check}: lines {wrong[:10]} do not have exactly their given "
                             "solution")
        return pairs
    lo, hi = args.train_givens
    if not 17 <= lo <= hi <= 80:
        raise UsageError(f"--train-givens needs 17 <= LO <= HI <= 80, got {lo} {hi}")
    if hi < FEWEST:  # it would search for ever: removal almost never gets below 22 givens
        raise UsageError(f"--train-givens {lo} {hi}: one removal pass reaches {FEWEST} givens "
                         f"at the fewest, so HI must be >= {FEWEST} (a low LO: the hardest it can)")
    out = Path(args.out)
    if why := unwritable(out.absolute()):  # before the minutes of work, not at the write after them
        raise UsageError(f"--out {out}: {why}")
    found = [n for n in ("train.txt", "val.txt", "test.txt", "test_hard.txt") if (out / n).exists()]
    if found and not args.force:
        raise UsageError(f"{out} already holds {', '.join(found)}: --force replaces them, or "
                         "choose another --out")
    rng, seen = random.Random(args.seed), set()
    t0 = time.perf_counter()
    train = (make_split(args.train, (lo, hi), rng, seen) if args.workers == 1
             else make_many(args.train, (lo, hi), args.seed, args.workers, seen))
    splits = {"train": train, "val": make_split(args.val, (lo, hi), rng, seen),
              "test": [pair for lo, hi in BANDS.values()
                       for pair in make_split(args.test, (lo, min(hi, 50)), rng, seen)]}
    if args.hard:
        splits["test_hard"] = make_hard(args.hard, HARD, rng, seen)
    for name, pairs in splits.items():
        write_text(out / f"{name}.txt", "".join(to_line(*pair) + "\n" for pair in pairs))
        print(f"wrote {out / f'{name}.txt'}: {len(pairs)} puzzles")
    print(f"{sum(map(len, splits.values())):,} unique puzzles in {time.perf_counter() - t0:.0f} s "
          f"({args.workers} process{'es' * (args.workers > 1)})")
    return splits


if __name__ == "__main__":
    run_cli(main)
