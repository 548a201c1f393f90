"""Lesson 17: learning from rewards. The grade is the rules' verdict, RLOO advantages sum to zero in a group, the
exact estimator scores every drawn digit once on the canvas it was drawn from, the three estimators agree when the
model ignores context and not otherwise, a positive advantage makes its attempt more likely, and `train` runs every
method at a budget of model passes, resumes, and refuses what it cannot do in one line."""
import random
import signal
import sys

import pytest
import torch

from conftest import ROOT, cli_error, lesson

# isort: split
from support.cli import run_cli  # noqa: E402

R, S, P = lesson("17_rewards"), lesson("12_sudoku"), lesson("sudoku_puzzles")
sys.path.insert(0, str(ROOT / "bench"))  # bench/rewards.py
SHIPPED = ROOT / "checkpoints" / "pretrained" / "sudoku-dllm"


@pytest.fixture(scope="module")
def band_pairs():
    return torch.tensor([p + s for p, s in P.make_split(4, (30, 36), random.Random(3), set())])


@pytest.fixture(scope="module")
def shipped():
    return S.load_solver("dllm", str(SHIPPED)).float()


@pytest.fixture(scope="module")
def attempts(shipped, band_pairs):
    practice = R.Practice(group=4, prompts=len(band_pairs), cells_per_call=3)
    grids, when, calls = R.attempt(shipped, band_pairs[:, :81], practice, torch.Generator().manual_seed(0))
    return practice, grids, when, calls


def test_the_grade_is_the_rules_verdict(band_pairs):
    puzzle, solution = band_pairs[:, :81], band_pairs[:, 81:]
    wrong = solution.clone()
    wrong[:, [0, 1]] = wrong[:, [1, 0]]  # two cells swapped: a row still holds 1-9, its columns do not
    assert R.rewards(solution, puzzle, 1).tolist() == [1.0] * len(band_pairs)
    assert R.rewards(wrong, puzzle, 1).tolist() == [0.0] * len(band_pairs)


def test_rloo_advantages_sum_to_zero_and_vanish_when_a_group_agrees():
    reward = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    adv = R.rloo(reward, 4).view(3, 4)
    assert torch.allclose(adv.sum(1), torch.zeros(3), atol=1e-6) and adv[1:].abs().max() == 0
    assert adv[0].tolist() == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    w = R.weights(R.rloo(reward, 4), torch.full((12,), 50), "wd1", 4).view(3, 4)
    assert torch.allclose(w.sum(1), torch.zeros(3), atol=1e-7) and w[1:].abs().max() < 1e-7
    assert (w[0, [0, 3]] < 0).all() and (w[0, [1, 2]] > 0).all()  # minimised: a good attempt pulled up


def test_attempts_keep_the_givens_and_record_when_each_blank_was_drawn(attempts, band_pairs):
    practice, grids, when, calls = attempts
    puzzle = band_pairs[:, :81].repeat_interleave(practice.group, 0)
    given = puzzle > 0
    assert (grids[given] == puzzle[given]).all() and (grids > 0).all()
    assert ((when >= 0) == ~given).all() and when.max() == calls - 1
    per_call = torch.stack([(when == c).sum(1) for c in range(calls)], 1)  # (B, calls)
    assert per_call.max() <= practice.cells_per_call


def test_exact_canvases_score_every_drawn_digit_once_on_the_canvas_it_was_drawn_from(attempts):
    _, grids, when, _ = attempts
    z, score, row = R.scored_canvases(grids, when, "exact", 10)
    counted = torch.zeros_like(grids).index_add_(0, row, score.long())
    assert (counted == (when >= 0).long()).all()  # each blank scored exactly once, a given never
    for k in range(len(z)):
        call = when[row[k]][score[k]].unique()
        assert len(call) == 1  # the cells scored on a canvas were drawn by one call
        visible = z[k] != 10
        assert (visible == (when[row[k]] < call)).all()  # filled before that call: seen; after: masked
        assert (z[k][visible] == grids[row[k]][visible]).all()
    z1, score1, row1 = R.scored_canvases(grids, when, "d1", 10)
    assert (row1 == torch.arange(len(grids))).all() and ((z1 == 10) == score1).all() and (score1 == (when >= 0)).all()


def test_the_estimators_agree_when_the_model_ignores_context_and_differ_when_it_does_not(attempts, shipped):
    practice, grids, when, _ = attempts
    adv = torch.randn(len(grids))

    class Blind(torch.nn.Module):  # the same logits whatever the canvas
        def __init__(self):
            super().__init__()
            self.config, self.out = shipped.config, torch.nn.Parameter(torch.randn(81, 10))

        def forward(self, z):
            return self.out.expand(len(z), -1, -1)

    blind = Blind()
    g = {m: R.gradient(blind, grids, when, adv, m, practice) for m in ("exact", "d1")}
    assert torch.allclose(g["exact"], g["d1"], atol=1e-6)
    g = {m: R.gradient(shipped, grids, when, adv, m, practice) for m in ("exact", "d1")}
    assert not torch.allclose(g["exact"], g["d1"], rtol=0.1)


def test_a_positive_advantage_makes_its_attempt_more_likely(attempts, shipped):
    practice, grids, when, _ = attempts
    torch.manual_seed(0)
    model = lesson("03_transformer").Transformer(shipped.config)  # untrained: every digit unsure
    logp = lambda i: R.log_pi(model, grids, when, "exact")[i].item()  # noqa: E731

    adv = torch.zeros(len(grids))
    adv[0], adv[4] = 1.0, -1.0  # two puzzles (a group's attempts may be the same, and would cancel)
    before = logp(0), logp(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    R.gradient(model, grids, when, adv, "exact", practice)
    opt.step()
    assert logp(0) > before[0] and logp(4) < before[1]


def test_skip_agreeing_leaves_agreeing_groups_and_their_kl_out_of_the_step(attempts, shipped):
    practice, grids, when, _ = attempts
    model = lesson("03_transformer").Transformer(shipped.config)
    model.load_state_dict(shipped.state_dict())
    reference = lesson("03_transformer").Transformer(shipped.config).eval().requires_grad_(False)
    adv = torch.zeros(len(grids))
    adv[:4] = torch.tensor([0.5, -0.5, 0.5, -0.5])  # only the first puzzle's group has something to learn
    mask = shipped.config.mask_id
    canvases = [len(R.scored_canvases(grids[i:i + 4], when[i:i + 4], "exact", mask)[2]) for i in (0, 4)]

    def step(beta, skip):
        model.zero_grad(set_to_none=True)
        args = type("Args", (), dict(method="exact", practice=practice, chunk=64, beta=beta, skip_agreeing=skip))
        passes = R.policy_step(model, reference, grids, when, adv, args)
        return passes, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    (full, g_full), (skipped, g_skip) = step(0.04, False), step(0.04, True)
    assert skipped == 4 * canvases[0] and full > skipped + 4 * canvases[1]  # forward, backward, reference
    assert not torch.allclose(g_full, g_skip)  # the agreeing groups' KL is gone from the step
    (plain, g_plain), (plain_skip, g_plain_skip) = step(0.0, False), step(0.0, True)
    assert plain == plain_skip == 3 * canvases[0] and torch.equal(g_plain, g_plain_skip)  # no KL: already so


@pytest.fixture(scope="module")
def rl_puzzles(tmp_path_factory):
    d = tmp_path_factory.mktemp("sudoku17")
    P.main(["--train", "40", "--val", "12", "--test", "2", "--train-givens", "24", "40", "--out", str(d),
            "--seed", "4"])
    return d


def train_tiny(rl_puzzles, out, *more):
    return R.main(["train", "--group", "2", "--prompts", "2", "--puzzles", str(rl_puzzles), "--out", str(out),
                   "--init", str(SHIPPED), "--givens", "24", "40", "--val-puzzles", "4", "--cells-per-call", "6",
                   "--sft-batch", "4", *more])


@pytest.mark.parametrize("method", R.METHODS)
def test_every_method_spends_its_budget_and_writes_a_model_that_lesson_12_loads(method, rl_puzzles, tmp_path):
    rows = train_tiny(rl_puzzles, tmp_path / method, "--method", method, "--budget", "400", "--evals", "2",
               "--beta", "0.01" if method == "exact" else "0")
    assert rows[0]["passes"] == 0 and rows[-1]["passes"] >= 400 and len(rows) >= 3
    assert all(0 <= r["val_solved"] <= 1 for r in rows)
    assert {"latest.pt", "metrics.csv", "loss.png"} <= {p.name for p in (tmp_path / method).iterdir()}
    model = S.load_solver("dllm", str(tmp_path / method))  # 12's solve, bench/sudoku.py read it as it is
    assert model.config.vocab_size == 10


def test_validation_is_on_fresh_puzzles_so_the_folders_val_txt_is_not_read(rl_puzzles, tmp_path):
    folder = tmp_path / "puzzles"
    folder.mkdir()
    (folder / "train.txt").write_text((rl_puzzles / "train.txt").read_text())
    (folder / "val.txt").write_text("not a puzzle\n")  # 12 would refuse it, naming val.txt:1
    rows = train_tiny(folder, tmp_path / "run", "--method", "rft", "--budget", "1", "--val-puzzles", "1")
    assert len(rows) >= 2 and all(0 <= r["val_solved"] <= 1 for r in rows)


def test_a_temperature_far_below_float32s_range_draws_the_argmax_and_learns_nothing(rl_puzzles, tmp_path):
    rows = train_tiny(rl_puzzles, tmp_path / "cold", "--budget", "200", "--evals", "1", "--beta", "0.01",
                      "--temperature", "1e-300")
    assert rows[-1]["nothing_to_learn"] == 1.0  # every attempt of a group the same: no advantage
    model = S.load_solver("dllm", str(tmp_path / "cold"))
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no nan from 0/0 or inf - inf


def test_the_benchmark_scores_the_shipped_model_and_each_run_by_band(rl_puzzles, tmp_path):
    train_tiny(rl_puzzles, tmp_path / "d1", "--method", "d1", "--budget", "200", "--evals", "1")
    rows = lesson("rewards").main(["--runs", str(tmp_path / "d1"), "--test", str(rl_puzzles / "test.txt"),
                                   "--per-band", "2", "--variety", "2", "--group", "2", "--out-dir", str(tmp_path)])
    assert [r["model"] for r in rows] == ["shipped sudoku-dllm", "d1"] and rows[1]["passes"] >= 200
    assert all(r["17-27 n"] == 2 and 0 <= r["17-27"] <= 1 and 0 <= r["pass@G"] <= 1 for r in rows)
    assert {"rewards.txt", "rewards.csv", "curves.png"} <= {p.name for p in tmp_path.iterdir()}
    assert "| d1 | " in (tmp_path / "rewards.txt").read_text(encoding="utf-8").split("puzzle by puzzle")[1]


def test_the_benchmark_joins_seeds_scored_before_and_refuses_a_file_it_did_not_write(rl_puzzles, tmp_path, capsys):
    bench, test = lesson("rewards"), ["--test", str(rl_puzzles / "test.txt"), "--per-band", "2", "--variety", "2",
                                      "--group", "2"]
    for seed in ("0", "1"):
        train_tiny(rl_puzzles, tmp_path / f"s{seed}", "--method", "d1", "--budget", "200", "--evals", "1",
                   "--seed", seed)
    first = bench.main(["--runs", str(tmp_path / "s0"), *test, "--out-dir", str(tmp_path / "a")])
    rows = bench.main(["--runs", str(tmp_path / "s1"), *test, "--out-dir", str(tmp_path / "b"),
                       "--earlier", str(tmp_path / "a" / "rewards.csv")])
    assert [r["model"] for r in rows] == ["shipped sudoku-dllm", "s1", "s0"]
    assert rows[2] == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in first[1].items()}
    assert f"| {rows[1]['recipe']} | 1, 0 |" in (tmp_path / "b" / "rewards.txt").read_text(encoding="utf-8")
    # b's file holds s0 too: joining a and b counts each run once, and a run scored here is not joined again
    again = bench.once(rows[:2], [*first[1:], *rows[1:]])
    assert [r["model"] for r in again] == ["s0"]
    old = tmp_path / "old.csv"
    old.write_text("model,passes,recipe,seed,17-27\nx,1,exact,0,0.5\n")
    capsys.readouterr()  # the training's progress bars
    (tmp_path / "header.csv").write_text("a,b\n")  # no rows to compare: its header tells
    for path, says in ((old, "another version"), (tmp_path / "none.csv", "No such file"),
                       (tmp_path / "header.csv", "not a rewards.csv")):
        assert says in cli_error(bench.main, ["--runs", str(tmp_path / "s1"), *test, "--out-dir",
                                              str(tmp_path / "c"), "--earlier", str(path)], capsys)
    assert not (tmp_path / "c").exists()


def test_the_benchmark_averages_the_seeds_of_one_recipe_and_gives_their_standard_error():
    def run(recipe, seed, q):
        return {"recipe": recipe, "seed": seed, "17-27": q, "pass@G": q, "attempt reward": q}
    rows = [run("", "", 0.5), run("exact, lr 2e-05, beta 0", 0, 0.50), run("sft, lr 0.0001, beta 0", 0, 0.6),
            run("exact, lr 2e-05, beta 0", 1, 0.56), run("exact, lr 2e-05, beta 0", 2, 0.53)]
    text = lesson("rewards").over_seeds(rows, ["17-27"])
    # mean 0.53; sd 0.03 (n - 1); standard error 0.03 / sqrt(3) = 0.0173
    assert "| exact, lr 2e-05, beta 0 | 0, 1, 2 | 53.0% ± 1.7 | 53.0% ± 1.7 | 0.530 ± 0.017 |" in text
    assert "sft" not in text  # one seed: nothing to average
    assert lesson("rewards").over_seeds(rows[:3], ["17-27"]) == ""


def test_the_benchmark_pairs_each_run_with_the_start_puzzle_by_puzzle():
    start = torch.tensor([1, 1, 0, 0, 1, 0, 1, 0], dtype=torch.bool)
    run = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0], dtype=torch.bool)  # gains puzzles 2 and 3, loses puzzle 6
    text = lesson("rewards").against_start({"start": {"17-27": start}, "run": {"17-27": run}}, ["17-27"])
    # d = [0, 0, 1, 1, 0, 0, -1, 0]: mean 1/8; sd sqrt((3 - 8/64) / 7) = 0.641; se 0.641 / sqrt(8) = 0.227
    assert "| run | +12.5 ± 22.7 (+2 / -1) |" in text and "Against start" in text
    assert lesson("rewards").against_start({"start": {"17-27": start}}, ["17-27"]) == ""


def test_runs_that_differ_in_more_than_the_seed_are_not_seeds_of_one_recipe():
    bench = lesson("rewards")
    flags = vars(lesson("17_rewards").rewards_parser().parse_args(["train", "--lr", "2e-5"]))
    assert bench.recipe(flags) == "exact, lr 2e-05, beta 0"
    assert bench.recipe({**flags, "seed": 3, "out": "elsewhere", "evals": 2}) == "exact, lr 2e-05, beta 0"
    colder = bench.recipe({**flags, "temperature": 0.5})
    assert colder == "exact, lr 2e-05, beta 0, temperature 0.5" and colder != bench.recipe(flags)
    elsewhere = bench.recipe({**flags, "puzzles": "/another/clone/data/sudoku-100k"})
    assert elsewhere == bench.recipe(flags) != bench.recipe({**flags, "puzzles": "data/sudoku-10k"})


def test_resume_continues_the_run_and_a_second_run_is_refused(rl_puzzles, tmp_path, capsys):
    out = tmp_path / "run"
    first = train_tiny(rl_puzzles, out, "--method", "d1", "--budget", "300", "--evals", "1")
    more = train_tiny(rl_puzzles, out, "--method", "d1", "--budget", "700", "--evals", "1", "--resume")
    assert more[: len(first)] == first and more[-1]["passes"] >= 700 and more[-1]["step"] > first[-1]["step"]
    capsys.readouterr()
    assert "already holds a run" in cli_error(R.main, ["train", "--puzzles", str(rl_puzzles), "--out", str(out)],
                                              capsys)


def test_out_of_memory_in_a_step_is_one_line_and_the_run_keeps_its_last_evaluation(rl_puzzles, tmp_path,
                                                                                    monkeypatch, capsys):
    def hungry(*args):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 33177600000 bytes")

    monkeypatch.setattr(R, "train_step", hungry)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(lambda a: train_tiny(rl_puzzles, tmp_path / "r", *a), ["--budget", "400"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and err.count("error:") == 1
    assert "out of memory during a training step at --prompts 2 --group 2: fewer --prompts" in err
    assert (tmp_path / "r" / "latest.pt").is_file()  # the starting model's evaluation, saved


def test_ctrl_c_while_the_starting_model_is_scored_saves_it_and_frees_the_folder(rl_puzzles, tmp_path, monkeypatch,
                                                                                 capsys):
    """One Ctrl-C during the first evaluation: the run stops at step 0, saved, its lock gone (it used to be a
    KeyboardInterrupt there, the lock left); --resume then trains it."""
    score = R.solved_share

    def interrupted_once(model, val):
        monkeypatch.setattr(R, "solved_share", score)
        signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C while it scores
        return score(model, val)

    monkeypatch.setattr(R, "solved_share", interrupted_once)
    with pytest.raises(SystemExit) as e:
        train_tiny(rl_puzzles, tmp_path / "r", "--budget", "200", "--evals", "1")
    assert e.value.code == 130 and "interrupted at step 0" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["latest.pt", "metrics.csv"]
    rows = train_tiny(rl_puzzles, tmp_path / "r", "--budget", "200", "--evals", "1", "--resume")
    assert rows[0]["passes"] == 0 and rows[-1]["passes"] >= 200


@pytest.mark.parametrize("argv, says", [
    (["--group", "1"], "--group: must be in [2, 16384], got 1"),
    (["train", "--givens", "30", "20"], "LO <= HI"),
    (["train", "--resume", "--force"], "give one"),
    (["train", "--budget", "0"], "--budget"),
    (["train", "--puzzles", "/nonexistent/folder"], "no puzzles in"),
])
def test_rewards_bad_input_is_one_line(argv, says, capsys, tmp_path):
    if "--puzzles" not in argv and argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "r")]
    assert says in cli_error(R.main, argv, capsys)


def test_a_broken_init_is_refused_before_the_puzzles_are_read(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.pt").write_text("not a checkpoint")
    for name in ("train.txt", "val.txt"):
        (tmp_path / name).write_text("")
    read = lambda folder: pytest.fail("the puzzles were read first: 100,000 of them take 15-25 s")  # noqa: E731
    monkeypatch.setattr(S, "PuzzleData", read)
    says = cli_error(R.main, ["train", "--init", str(tmp_path / "broken.pt"), "--puzzles", str(tmp_path),
                              "--out", str(tmp_path / "r")], capsys)
    assert "not a readable checkpoint" in says and not (tmp_path / "r").exists()


def test_the_demo_shows_attempts_grades_and_the_estimators(capsys):
    R.main(["--prompts", "3", "--group", "4"])
    out = capsys.readouterr().out
    assert "advantages (RLOO)" in out and len([line for line in out.splitlines() if " | " in line]) == 4
    assert "log pi of attempt 0" in out and ("cosine(exact, d1)" in out or "every group agreed" in out)
