"""bench/recipe.py: its knobs change only what they say, and the proxy runs and their table work end to end."""
import sys

import pytest
import torch

from conftest import ROOT, lesson, tiny

sys.path.insert(0, str(ROOT / "bench"))
recipe, train = lesson("recipe"), lesson("05_train")


def test_the_base_knob_is_lesson_05s_objective():
    m, x = tiny(), torch.randint(0, 11, (8, 17))
    torch.manual_seed(3)
    a = recipe.Recipe().loss(m, x, m.config)
    torch.manual_seed(3)
    b = train.DiffusionObjective().loss(m, x, m.config)
    assert torch.equal(a, b)  # the same draws, the same number


def test_clipping_and_capping_do_what_they_say(monkeypatch):
    seen = []
    real = recipe.diff.forward_process
    monkeypatch.setattr(recipe.diff, "forward_process", lambda x0, t, *a, **k: seen.append(t) or real(x0, t, *a, **k))
    m, x = tiny(), torch.randint(0, 11, (64, 17))
    recipe.Recipe(t_range=(0.3, 0.8)).loss(m, x, m.config)
    recipe.Recipe(iid=True, t_range=(0.3, 0.8)).loss(m, x, m.config)
    assert all(((t >= 0.3) & (t <= 0.8)).all() for t in seen)
    spread = [t.sort().values.diff().std().item() for t in seen]
    assert spread[0] < 1e-5 < spread[1]  # strata evenly spaced; iid draws are not
    assert recipe.Recipe(weight_cap=10.0).loss(m, x, m.config).isfinite()


def test_proxy_runs_and_their_table(tiny_text, tmp_path, capsys):
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--preset", "tiny", "--steps", "4", "--data", str(tiny_text), "--runs", str(runs),
            "--results", str(results)]
    rows = recipe.main(argv + ["--knobs", "gpt", "gpt-lr-4e-3", "base", "clip-a", "batch-32"])
    by = {r["knob"]: r for r in rows}
    assert set(by) == {"gpt", "gpt-lr-4e-3", "base", "clip-a", "batch-32"} and by["batch-32"]["steps"] == 2
    gpts = sorted([by["gpt"], by["gpt-lr-4e-3"]], key=lambda r: r["best_val_bpc"])
    assert gpts[0]["ratio_to_gpt"] == 1.0 < gpts[1]["ratio_to_gpt"]  # the denominator: the better-tuned GPT
    assert by["base"]["ratio_to_gpt"] == round(by["base"]["best_val_bpc"] / gpts[0]["best_val_bpc"], 3)
    assert recipe.checkpoints.load_checkpoint(runs / "clip-a" / "latest.pt")["args"]["mask_rate"] == [0.3, 0.8]
    written = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    assert set(written) == {"recipe.csv", "recipe.txt", "recipe.png"}
    capsys.readouterr()
    again = recipe.main(argv + ["--report"])  # only reads
    assert "| base | 4 |" in capsys.readouterr().out and len(again) == 5
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == written


def test_shapes_run_for_the_base_wall_clock(tiny_text, tmp_path, monkeypatch, capsys):
    argv = ["--preset", "tiny", "--steps", "8", "--data", str(tiny_text), "--runs", str(tmp_path / "runs"),
            "--results", str(tmp_path / "results")]
    args = type("A", (), {"preset": "tiny", "data": str(tiny_text), "dtype": "fp32"})
    assert recipe.seconds_per_step(["--n-embd", "96"], args, steps=3) > 0  # the probe itself, for real
    monkeypatch.setattr(recipe, "seconds_per_step", lambda extra, args: 2.0 if extra else 1.0)
    rows = recipe.main(argv + ["--knobs", "clip-b-w192"])
    assert rows[0]["steps"] == 4 and "2.000 s per step vs base's 1.000: 0.50 x the steps" in capsys.readouterr().out
    assert recipe.main(argv + ["--knobs", "clip-b-w192"])[0]["steps"] == 4  # finished: its own schedule, not re-probed


def test_a_stopped_run_stops_the_search(tiny_text, tmp_path, monkeypatch, capsys):
    def stopped(argv, objective=None):  # what a trainer does on Ctrl-C: saves latest.pt, exits 130
        raise SystemExit(130)

    monkeypatch.setitem(recipe.KNOBS, "base", (stopped, recipe.Recipe(), [], 1.0))
    with pytest.raises(SystemExit):
        recipe.main(["--preset", "tiny", "--steps", "4", "--data", str(tiny_text), "--runs", str(tmp_path / "runs"),
                     "--results", str(tmp_path / "results"), "--knobs", "base", "iid"])
    assert "base was stopped: the knobs after it wait" in capsys.readouterr().out
    assert not (tmp_path / "runs" / "iid").exists()
