"""Lesson 13: remasking. Nothing taken back is lesson 04's sampler exactly; each schedule takes tokens back and still
ends with a full canvas; the Sudoku repair only ever changes grids that break a rule."""
import random

import pytest
import torch

from conftest import cli_error, lesson, tiny

D, R, S = lesson("04_diffusion"), lesson("13_self_correction"), lesson("12_sudoku")


@pytest.mark.parametrize("remasking, noise", [("confidence", 0.0), ("random", 0.0), ("margin", 1.0)])
def test_remasking_nothing_is_lesson_04s_sampler_exactly(remasking, noise):
    """Same model, canvas and seed: the same tokens and the same number of calls as 04's generate()."""
    model = tiny()
    canvas = torch.full((3, 24), 11)
    canvas[1, :4] = torch.tensor([1, 2, 3, 4])  # a prompt: rows with different numbers of masks
    kw = dict(steps=7, top_k=5, remasking=remasking, noise=noise)
    a, ca = D.generate(model, canvas, 11, generator=torch.Generator().manual_seed(3), **kw)
    for schedule in ("none", "cap", "low-confidence"):  # eta 0 / threshold 0: nothing can be taken back
        b, cb, taken = R.generate_remask(model, canvas, 11, schedule=schedule, eta=0.0, threshold=0.0,
                                         generator=torch.Generator().manual_seed(3), **kw)
        assert torch.equal(a, b) and ca == cb == 7 and taken == 0


@pytest.mark.parametrize("schedule, extra", [("cap", dict(eta=0.3)), ("loop", dict(eta=0.3, loop_steps=5)),
                                             ("low-confidence", dict(threshold=0.5))])
def test_each_schedule_takes_tokens_back_and_ends_with_a_full_canvas(schedule, extra):
    model = tiny()
    canvas = torch.full((4, 20), 11)
    canvas[:, :3] = torch.tensor([5, 6, 7])  # fixed: never taken back
    seen = []
    x, calls, taken = R.generate_remask(model, canvas, 11, steps=8, schedule=schedule,
                                        generator=torch.Generator().manual_seed(0),
                                        callback=lambda i, x: seen.append(x.clone()), **extra)
    assert taken > 0 and (x != 11).all() and torch.equal(x[:, :3], canvas[:, :3])
    assert calls == 8 + extra.get("loop_steps", 0) == len(seen)
    went_back = [((a != 11) & (b == 11)).any().item() for a, b in zip(seen, seen[1:])]
    assert any(went_back)  # a committed token was masked again between two calls
    assert all(torch.equal(f[:, :3], canvas[:, :3]) for f in seen)


def test_low_confidence_takes_back_the_worst_committed_token_below_the_threshold():
    logits = torch.log(torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.99, 0.01]]]))  # (1, 4, V=2)
    x = torch.tensor([[0, 0, 9, 1]])  # position 2 masked (id 9); 3 holds a token now at p 0.01
    free = torch.tensor([[True, True, True, False]])  # position 3 is fixed: never taken back
    back = R.take_back_low_confidence(logits, x, free, x == 9, threshold=0.5)
    assert back.tolist() == [[False, True, False, False]]  # p(0) = 0.2 at position 1: the worst committed
    assert not R.take_back_low_confidence(logits, x, free, x == 9, threshold=0.1).any()


def test_conflicts_marks_repeated_digits_but_never_a_given():
    grid = torch.tensor([list(range(1, 10)) * 9])  # every row 1..9: each column repeats one digit nine times
    puzzle = torch.zeros(1, 81, dtype=torch.long)
    puzzle[0, 0] = 1  # a given
    bad = R.conflicts(grid, puzzle)
    assert bad.sum() == 80 and not bad[0, 0]
    solution = torch.tensor([[int(c) for c in "534678912672195348198342567859761423426853791713924856961537284"
                                               "287419635345286179"]])
    assert not R.conflicts(solution, puzzle * 0).any()


def test_the_sudoku_repair_only_changes_grids_that_break_a_rule():
    model = S.load_solver("dllm", None, use_pretrained=True, log=lambda s: None)
    pairs = lesson("sudoku_puzzles").make_split(6, (17, 27), random.Random(5), set())
    x = torch.tensor([p + s for p, s in pairs])
    greedy, _ = S.solve_dllm(model, x[:, :81], "margin")
    fixed, calls, _ = R.solve_remask(model, x[:, :81], rounds=3, generator=torch.Generator().manual_seed(0))
    fine = ~R.conflicts(greedy, x[:, :81]).any(1)
    assert torch.equal(fixed[fine], greedy[fine])  # a grid with no conflict is left as it was
    assert (S.solved(fixed, x) | ~S.solved(greedy, x)).all()  # so nothing solved is lost
    assert (calls >= (x[:, :81] == 0).sum(1)).all()


def test_the_command_line_generates_and_refuses_what_it_does_not_use(dllm_run, capsys):
    run = str(dllm_run[0] / "dllm")
    texts = R.main(["--generate", "--checkpoint", run, "--len", "24", "--steps", "6", "--schedule", "cap",
                    "--eta", "0.2"])
    err = capsys.readouterr().err
    assert len(texts[0]) == 24 and "_" not in texts[0] and "tokens taken back" in err and "6 model calls" in err
    assert "--loop-steps is the loop schedule's" in cli_error(R.main, ["--generate", "--checkpoint", run,
                                                                     "--loop-steps", "3"], capsys)
    assert "--eta does nothing in the demo" in cli_error(R.main, ["--eta", "0.1"], capsys)
    assert "must be in (0, 1]" in cli_error(R.main, ["--generate", "--threshold", "2"], capsys)


def test_the_first_command_benchmark_judges_every_row_and_names_a_winner(dllm_run, gpt_run, tmp_path, capsys):
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("first_command")
    d, corpus, _ = dllm_run
    rows = ["confidence", "random", "confidence, noise 2", "random + low-confidence 0.05", "random + cap 0.02",
            "random + loop 0.02 (+10 calls)", "random + loop 0.02 (inside the calls)"]
    table, best, plain = bench.main(["--dllm", str(d / "dllm"), "--gpt", str(gpt_run[0]), "--data", str(corpus),
                                     "--steps", "12", "--num-samples", "2", "--only", *rows,
                                     "--out-dir", str(tmp_path)])
    assert sorted(r["sampler"] for r in table[1:]) == sorted(rows) and table[0]["sampler"] == "held-out real text"
    assert all(0 < r["distinct4"] <= 1 and r["gen_bpc"] > 0 and 0 <= r["repeated"] <= 1 for r in table)
    calls = {r["sampler"]: r["calls"] for r in table[1:]}
    assert calls["random"] == calls["random + loop 0.02 (inside the calls)"] == 12  # --steps 12
    assert calls["random + loop 0.02 (+10 calls)"] == 12 + 10
    assert plain["sampler"] in ("confidence", "random", "confidence, noise 2") and best in table[1:]
    assert bench.shortfall(dict(distinct4=0.6, gen_bpc=2.7)) == 0 and bench.repeated_rate(["abcdefghabcdefgh"]) == 0.5
    assert "best without remasking (what 06 runs)" in (tmp_path / "first_command.txt").read_text()
