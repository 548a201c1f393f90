"""sudoku_puzzles.py: valid grids, puzzles with exactly one solution, symmetries that keep both, splits that never
share a solution grid, and one clear line for every bad puzzle line."""
import random

import pytest

from support.cli import UsageError

from conftest import cli_error, lesson

S = lesson("sudoku_puzzles")


def test_random_grids_are_valid_and_different():
    rng = random.Random(1)
    grids = [S.random_grid(rng) for _ in range(5)]
    assert all(S.valid_solution(g) for g in grids) and len({tuple(g) for g in grids}) == 5
    broken = list(grids[0])
    broken[0], broken[1] = broken[1], broken[0]  # two cells of a row swapped: their columns now repeat a digit
    assert not S.valid_solution(broken)


def test_solver_counts_solutions_up_to_the_limit():
    assert len(S.solve([0] * 81)) == 2  # an empty grid has many: the count stops at 2
    g = S.random_grid(random.Random(2))
    assert S.solve(g) == [g]  # a full grid is its own one solution


@pytest.mark.parametrize("lo, hi", list(S.BANDS.values()))
def test_every_puzzle_has_exactly_its_solution(lo, hi):
    pairs = S.make_split(3, (lo, min(hi, 50)), random.Random(lo), set())
    for puzzle, solution in pairs:
        assert lo <= sum(v != 0 for v in puzzle) <= hi
        assert all(p in (0, s) for p, s in zip(puzzle, solution))  # givens are the solution's digits
        assert S.solve(puzzle) == [solution]


def test_symmetries_keep_grids_valid_and_puzzles_paired():
    rng = random.Random(3)
    puzzle, solution = S.make_split(1, (36, 40), rng, set())[0]
    for state in range(20):
        p, s = S.symmetric(puzzle, state), S.symmetric(solution, state)
        assert S.valid_solution(s) and S.solve(p) == [s]
        assert sum(v != 0 for v in p) == sum(v != 0 for v in puzzle)  # blanks stay blanks
    assert len({tuple(S.symmetric(solution, st)) for st in range(20)}) == 20  # new puzzles, not copies


def test_splits_share_no_solution_grid_and_files_round_trip(tmp_path, capsys):
    splits = S.main(["--out", str(tmp_path), "--train", "6", "--val", "3", "--test", "2", "--seed", "5"])
    keys = [S.canonical(sol) for pairs in splits.values() for _, sol in pairs]
    assert len(keys) == len(set(keys)) == 6 + 3 + 4 * 2
    assert S.main(["--check", str(tmp_path / "test.txt")]) == splits["test"]
    assert "8 with exactly one solution" in capsys.readouterr().out


@pytest.mark.parametrize("line, needle", [
    ("123", "81 cells, this one 3"), ("x" * 81, "only digits and '.'"),
    ("11" + "." * 79, "break the rules"), ("1" + "." * 8 + "1" + "." * 71, "break the rules"),
])
def test_bad_puzzle_lines_name_the_line(line, needle):
    with pytest.raises(UsageError, match=needle) as e:
        S.parse_puzzle(line, "puzzles.txt:7")
    assert str(e.value).startswith("puzzles.txt:7:")


def test_check_refuses_a_wrong_solution_in_one_line(tmp_path, capsys):
    puzzle, solution = S.make_split(1, (40, 45), random.Random(4), set())[0]
    broken = list(solution)
    blank = puzzle.index(0)
    broken[blank] = broken[blank] % 9 + 1  # one cell changed: a digit now repeats
    other = S.symmetric(solution, 1)  # a valid grid, but not this puzzle's solution
    f = tmp_path / "p.txt"
    f.write_text(S.to_line(puzzle, solution) + "\n" + S.to_line(puzzle, broken) + "\n")
    assert "p.txt:2: the digits break the rules" in cli_error(S.main, ["--check", str(f)], capsys)
    f.write_text(S.to_line(puzzle, solution) + "\n" + S.to_line(puzzle, other) + "\n")
    assert "lines [2] do not have exactly their given solution" in cli_error(S.main, ["--check", str(f)], capsys)


# ---------------------------------------------------------------- the fast solver against plain Python rules
def count_plain(grid, limit=2):
    """A reference written apart from the module: plain backtracking on the first blank, no propagation."""
    grid, found = list(grid), []

    def legal(i, d):
        r, c = divmod(i, 9)
        box = [(r // 3 * 3 + a) * 9 + c // 3 * 3 + b for a in range(3) for b in range(3)]
        return all(grid[j] != d for j in [r * 9 + k for k in range(9)] + [k * 9 + c for k in range(9)] + box)

    def dfs():
        if 0 not in grid:
            found.append(list(grid))
            return len(found) >= limit
        i = grid.index(0)
        for d in range(1, 10):
            if legal(i, d):
                grid[i] = d
                if dfs():
                    return True
        grid[i] = 0
        return False

    dfs()
    return found


def test_the_bitmask_solver_agrees_with_plain_backtracking():
    rng = random.Random(11)
    for puzzle, solution in S.make_split(4, (30, 40), rng, set()):
        assert S.solve(puzzle) == count_plain(puzzle) == [solution]
        holes = list(puzzle)
        for i in [i for i in range(81) if holes[i]][:6]:  # fewer givens: now several solutions
            holes[i] = 0
        assert len(S.solve(holes)) == len(count_plain(holes))
        assert S.other_solution(holes, holes.index(0), solution[holes.index(0)]) == (len(count_plain(holes)) > 1)
    contradiction = [1, 1] + [0] * 79
    assert S.solve(contradiction) == [] and S.propagate(contradiction) is None


def test_the_rating_counts_the_plain_solvers_guesses():
    rng = random.Random(4)
    easy, _ = S.make_split(1, (45, 50), rng, set())[0]
    assert S.rate(easy) == 0 and S.propagate(easy).count(0) == 0  # the rules alone finish it
    hard = S.make_hard(2, S.HARD, rng, set())
    assert all(S.rate(p) >= S.HARD and S.solve(p) == [s] for p, s in hard)
    assert all(S.propagate(p).count(0) > 0 for p, _ in hard)  # the rules stop short: it needs guesses


def test_a_large_split_on_two_processes_is_the_same_every_time_and_shares_no_grid():
    a = S.make_many(40, (17, 50), 3, 2, set())
    b = S.make_many(40, (17, 50), 3, 2, set())
    assert a == b and len(a) == 40
    assert len({S.canonical(s) for _, s in a}) == 40 and all(S.solve(p) == [s] for p, s in a[:10])


def test_the_default_files_are_the_first_generators_own():
    """The fast solver draws the same grids and keeps the same cells as the old one did: the same seed makes the
    same puzzles (these lines are the first generator's, seed 0)."""
    rng = random.Random(0)
    grid = S.random_grid(rng)
    assert S.valid_solution(grid)
    old = [8, 7, 2, 5, 9, 3, 1, 4, 6]  # the first row of the first grid the first generator drew with seed 0
    assert grid[:9] == old


def test_a_range_of_givens_removal_never_reaches_ends_with_an_error_not_an_endless_search(monkeypatch):
    """One removal pass almost never gets below 22 givens: asking for 17-18 gives up after MAX_MISSES grids in a row
    (the command line refuses such a range before starting)."""
    monkeypatch.setattr(S, "MAX_MISSES", 5)
    with pytest.raises(ValueError, match="5 grids in a row gave no puzzle with 17-18 givens"):
        S.make_split(1, (17, 18), random.Random(0), set())
