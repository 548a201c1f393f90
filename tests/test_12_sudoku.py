"""Lesson 12: Sudoku. The symmetry batches stay valid puzzles, the dLLM's loss never touches a given, the GPT's
only the solution half, the solved/valid metric on hand-made cases, both models train through 05's loop, --solve's
output and its one-line errors, and the shipped models solve fixed puzzles."""
import random
import re
import sys

import pytest
import torch

from conftest import ROOT, Logits, cli_error, lesson

S, P = lesson("12_sudoku"), lesson("sudoku_puzzles")
SHIPPED = {k: ROOT / "checkpoints" / "pretrained" / f"sudoku-{k}" for k in ("dllm", "gpt")}


@pytest.fixture(scope="module")
def pairs():
    rng, seen = random.Random(5), set()
    return P.make_split(12, (36, 50), rng, seen)


@pytest.fixture(scope="module")
def puzzle_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sudoku")
    P.main(["--train", "40", "--val", "8", "--test", "2", "--out", str(d), "--seed", "2"])
    return d


def rows(pairs):
    return torch.tensor([p + s for p, s in pairs])  # (N, 162)


def test_symmetric_batches_are_valid_unique_puzzles_of_the_same_difficulty(pairs):
    data = rows(pairs)
    x = S.symmetric_batch(data, 32, generator=torch.Generator().manual_seed(0))
    assert x.shape == (32, 162)
    originals = {tuple(r) for r in data.tolist()}
    for r in x.tolist():
        puzzle, solution = r[:81], r[81:]
        assert P.valid_solution(solution)
        assert all(p in (0, s) for p, s in zip(puzzle, solution))  # givens agree with the solution
        assert P.solve(puzzle) == [solution]  # still exactly one solution
        assert sum(v == 0 for v in puzzle) in {sum(v == 0 for v in p) for p, _ in pairs}
    assert sum(tuple(r) in originals for r in x.tolist()) <= 1  # new puzzles, not copies


def test_dllm_loss_never_on_a_given_and_gpt_loss_only_on_the_solution(pairs):
    x = rows(pairs)
    m = Logits(len(x), 81, 11)
    S.sudoku_diffusion_loss(m, x, 10, torch.Generator().manual_seed(0)).backward()
    touched = m.out.grad.abs().sum(-1) > 0  # (B, 81)
    given = x[:, :81] > 0
    assert not touched[given].any()
    assert touched[~given].any()
    g = Logits(len(x), 161, 10)
    S.solution_loss(g, x).sum().backward()
    touched = g.out.grad.abs().sum(-1) > 0  # (B, 161): position i predicts token i + 1
    assert not touched[:, :80].any() and touched[:, 80:].all()


def test_solved_and_valid_on_hand_made_cases(pairs):
    puzzle, solution = (torch.tensor(v) for v in pairs[0])
    pair = torch.cat([puzzle, solution])[None]
    wrong = solution.clone()
    blank = int((puzzle == 0).nonzero()[0])
    wrong[blank] = wrong[blank] % 9 + 1  # one wrong cell
    relabelled = torch.tensor([0, 2, 3, 4, 5, 6, 7, 8, 9, 1])[solution]  # a valid grid, but every given changed
    grids = torch.stack([solution, wrong, relabelled])
    assert S.solved(grids, pair.expand(3, -1)).tolist() == [True, False, False]
    assert S.valid(grids, puzzle[None].expand(3, -1)).tolist() == [True, False, False]
    assert P.valid_solution(relabelled.tolist())  # the rules hold: only the givens make it wrong


@pytest.fixture(scope="module")
def tiny_runs(puzzle_dir, tmp_path_factory):
    """Both models trained 6 steps through lesson 05's loop (1 layer, width 32): {kind: (run folder, rows)}."""
    d = tmp_path_factory.mktemp("sudoku_runs")
    return {k: (d / k, S.main(["train", "--model", k, "--puzzles", str(puzzle_dir), "--out", str(d / k), "--steps",
                               "6", "--eval-every", "3", "--batch-size", "8", "--n-layer", "1", "--n-embd", "32",
                               "--dtype", "fp32", "--no-plot"])) for k in ("dllm", "gpt")}


@pytest.mark.parametrize("model", ["dllm", "gpt"])
def test_both_models_train_through_lesson_05s_loop_and_solve(model, tiny_runs, puzzle_dir, tmp_path, capsys):
    out, rows_ = tiny_runs[model]
    assert [r["step"] for r in rows_] == [0, 3, 6]
    assert all(0 <= r["val_solved"] <= 1 for r in rows_) and rows_[-1]["val_bpc"] < rows_[0]["val_bpc"]
    assert "val_solved" in (out / "metrics.csv").read_text().splitlines()[0]
    capsys.readouterr()
    f = tmp_path / "in.txt"
    f.write_text("".join(line.split(",")[0].replace("0", ".") + "\n" for line in
                         (puzzle_dir / "test.txt").read_text().splitlines()[:3]))
    answers = S.main(["solve", str(f), "--model", model, "--checkpoint", str(out)])
    printed = capsys.readouterr()
    assert printed.out.splitlines() == answers and len(answers) == 3
    for a, line in zip(answers, f.read_text().split()):  # a tiny model: each line a checked answer, or says none
        grid = torch.tensor([[int(c) for c in a]]) if a != S.NO_ANSWER else None
        puzzle = torch.tensor([[0 if c == "." else int(c) for c in line]])
        assert a == S.NO_ANSWER or S.valid(grid, puzzle).item()  # never a wrong grid given as a solution
    solved = sum(a != S.NO_ANSWER for a in answers)
    assert f"{solved} of 3 puzzles solved" in printed.err


def test_benchmark_counts_every_band_and_decoder(tiny_runs, puzzle_dir, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("sudoku")
    rows_ = bench.main(["--dllm", str(tiny_runs["dllm"][0]), "--gpt", str(tiny_runs["gpt"][0]), "--test",
                        str(puzzle_dir / "test.txt"), "--out-dir", str(tmp_path), "--search", "--repair-rounds", "1"])
    by_givens = [r for r in rows_ if r["band"] in lesson("sudoku_puzzles").BANDS]
    assert len(by_givens) == 4 * 9  # 4 bands x (3 one-cell orders, a threshold, an EB budget, the GPT; 3 with rules)
    rated = [r for r in rows_ if r["band"] in lesson("sudoku_puzzles").RATINGS]  # the same 8 puzzles by guesses
    assert len(rated) == 9 * len({r["band"] for r in rated}) and sum(r["puzzles"] for r in rated) == 8 * 9
    for r in [r for r in rows_ if "search" in r["decoder"] or "plain solver" in r["decoder"]]:
        assert r["solved"] == r["valid"] == 1.0  # a search with the rules always finds the one solution
    for r in [r for r in by_givens if "rules" not in r["decoder"] and "rule-breaking" not in r["decoder"]]:
        assert r["puzzles"] == 2 and 0 <= r["solved"] <= r["valid"] + 1e-9 <= 1 + 1e-9
        if r["decoder"].startswith("GPT"):
            assert r["calls"] == 81  # one per cell, givens included
        elif "1 cell/call" in r["decoder"]:
            assert r["calls"] == pytest.approx(r["blanks"])
        else:  # a parallel rule: at least one cell per call
            assert 1 <= r["calls"] <= r["blanks"]
    assert (tmp_path / "sudoku.txt").exists() and (tmp_path / "curves.png").stat().st_size > 0


def test_solve_rejects_bad_lines_naming_them(tmp_path, capsys, pairs):
    good = "".join(map(str, pairs[0][0]))
    f = tmp_path / "bad.txt"
    for bad, says in [(good[:80], "81 cells"), (good[:80] + "x", "only digits"), ("11" + good[2:], "break the rules")]:
        f.write_text(good + "\n" + bad + "\n")
        err = cli_error(S.main, ["solve", str(f)], capsys)
        assert f"{f}:2" in err and says in err
    err = cli_error(S.main, ["train", "--puzzles", str(tmp_path / "none"), "--out", str(tmp_path / "r")], capsys)
    assert "sudoku_puzzles.py" in err


def test_solve_refuses_a_model_of_text(dllm_run, tmp_path, capsys, pairs):
    f = tmp_path / "p.txt"
    f.write_text("".join(map(str, pairs[0][0])) + "\n")
    err = cli_error(S.main, ["solve", str(f), "--checkpoint", str(dllm_run[0] / "dllm")], capsys)
    assert "not a Sudoku model" in err


def test_the_shipped_models_solve_fixed_puzzles(pairs):
    x = rows(pairs)  # 12 puzzles with 36-50 givens, made here from a fixed seed
    dllm, model_gpt = S.load_solver("dllm", SHIPPED["dllm"]), S.load_solver("gpt", SHIPPED["gpt"])
    grid, calls = S.solve_dllm(dllm, x[:, :81])
    assert S.solved(grid, x).float().mean() >= 0.9 and calls == int((x[:, :81] == 0).sum(1).max())
    grid, calls = S.solve_gpt(model_gpt, x[:, :81])
    assert calls == 81 and S.valid(grid, x[:, :81]).shape == (12,)


def test_demo_prints_the_fill_order(capsys, tmp_path):
    S.main(["--pretrained", "--puzzles-per-band", "2", "--show-steps", "--gif", str(tmp_path / "s.gif")])
    out = capsys.readouterr().out
    assert "surest cell first" in out and "GPT, left to right" in out and (tmp_path / "s.gif").stat().st_size > 0


def test_solve_never_gives_a_grid_that_breaks_the_rules_as_a_solution(tmp_path, capsys, pairs):
    """An unsolvable puzzle (its givens break no rule, yet no grid completes them) and an all-blank one: each answer is
    checked against the rules and the givens; --solve says 'no valid answer' rather than print a wrong grid."""
    unsolvable = [0] * 81
    unsolvable[0:8] = [1, 2, 3, 4, 5, 6, 7, 8]  # row 1 needs a 9 in cell 9 ...
    unsolvable[9 * 4 + 8] = 9  # ... and column 9 already holds one (no rule is broken by the givens themselves)
    f = tmp_path / "p.txt"
    f.write_text("".join(map(str, unsolvable)) + "\n" + "0" * 81 + "\n" + "".join(map(str, pairs[0][0])) + "\n")
    answers = S.main(["solve", str(f), "--pretrained"])
    err = capsys.readouterr().err
    assert answers[0] == S.NO_ANSWER and re.search(r"no valid answer for lines? 1\b", err)  # no grid can be right
    for a, puzzle in zip(answers[1:], ([0] * 81, pairs[0][0])):
        if a != S.NO_ANSWER:  # whatever it prints as an answer is a valid grid that keeps the givens
            assert S.valid(torch.tensor([[int(c) for c in a]]), torch.tensor([puzzle])).item()
    assert "of 3 puzzles solved" in err
    for flags, says in [(["--gif", "x.gif"], "unrecognized arguments: --gif"),
                        (["--show-steps", "--puzzles-per-band", "3"], "unrecognized arguments: --show-steps")]:
        assert says in cli_error(S.main, ["solve", str(f)] + flags, capsys)
    assert "is not a command" in cli_error(S.main, ["--checkpoint", str(tmp_path)], capsys)
    assert "is not a command" in cli_error(S.main, ["--model", "gpt", "--decoder", "margin"], capsys)  # demo flags
