"""Lesson 05: the training loop on the tiny preset (seconds per run): metrics, checkpoints, Ctrl-C, resume."""
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, cli_error, lesson

from support import checkpoints, metrics

train = lesson("05_train")


@pytest.mark.parametrize("name", ["01_tensors", "02_attention", "03_transformer", "04_diffusion", "05_train",
                                  "06_generate", "07_train_gpt", "08_train_tamil", "09_generate_tamil",
                                  "tamil_dataset", "tamil_wikipedia"])
def test_lessons_import_silently(name):
    r = subprocess.run([sys.executable, "-c", f"import importlib; importlib.import_module({name!r})"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


def test_lessons_import_only_backwards():
    """A lesson imports earlier lessons only; 06 (generation) does not depend on 05 (training)."""
    import re

    for path in sorted(ROOT.glob("0*_*.py")):
        n = int(path.name[:2])
        imported = [int(m) for m in re.findall(r'import_module\("(\d\d)_', path.read_text())]
        assert all(m < n for m in imported), (path.name, imported)
    assert '"05_train"' not in (ROOT / "06_generate.py").read_text()


def test_training_lowers_loss_and_writes_run(dllm_run):
    d, _, rows = dllm_run
    assert [r["step"] for r in rows] == [0, 20, 40, 60]
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 0.3  # untrained ~log2(V) + noise; trained clearly below
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    for name in ("latest.pt", "best.pt", "metrics.csv", "loss.png"):
        assert (d / "dllm" / name).exists(), name
    ckpt = checkpoints.load_checkpoint(d / "dllm" / "latest.pt", kind="dllm")
    assert ckpt["step"] == 60 and ckpt["tokenizer"]["kind"] == "char"
    assert {"optimizer", "scheduler", "scaler", "rng", "args", "config"} <= set(ckpt)
    leftovers = [p.name for p in (d / "dllm").rglob("*") if ".tmp" in p.name]  # atomic writes' temp files
    assert leftovers == []


def test_bad_training_input_exits_2(tmp_path, capsys):
    assert "no such file" in cli_error(train.main, TINY + ["--data", str(tmp_path / "missing.txt")], capsys)
    assert "directory" in cli_error(train.main, TINY + ["--data", str(tmp_path)], capsys)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    assert "not UTF-8" in cli_error(train.main, TINY + ["--data", str(latin1)], capsys)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert "too short" in cli_error(train.main, TINY + ["--data", str(short), "--out", str(tmp_path / "o")], capsys)
    assert "divisible" in cli_error(train.main, TINY + ["--data", str(short), "--n-head", "3"], capsys)
    assert "--dropout" in cli_error(train.main, TINY + ["--data", str(short), "--dropout", "1.5"], capsys)


def test_cli_prints_one_line_not_a_traceback():
    r = subprocess.run([sys.executable, str(ROOT / "05_train.py"), "--steps", "-3"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--steps" in r.stderr


def test_help_shows_defaults_and_preset_values():
    r = subprocess.run([sys.executable, str(ROOT / "05_train.py"), "--help"], capture_output=True, text=True)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0
    assert "(preset: tiny 40, cpu 2000, gpu 10000)" in out  # --steps
    assert "(default: 0.95)" in out and "(default: 1337)" in out  # --beta2, --seed


def test_interrupt_saves_and_resume_reproduces(tiny_text, tmp_path):
    """Ctrl-C mid-run saves latest.pt at a step boundary; --resume then matches an uninterrupted run."""
    args = TINY + ["--data", str(tiny_text), "--steps", "40", "--eval-every", "10", "--sample-len", "0"]
    full = train.main(args + ["--out", str(tmp_path / "full")])

    class Interrupting(train.DiffusionObjective):
        calls = 0

        def loss(self, model, x, config):
            Interrupting.calls += 1
            if Interrupting.calls == 25:
                signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during step 25
            return super().loss(model, x, config)

    with pytest.raises(SystemExit) as e:
        train.main(args + ["--out", str(tmp_path / "cut")], objective=Interrupting())
    assert e.value.code == 130
    assert checkpoints.load_checkpoint(tmp_path / "cut" / "latest.pt")["step"] == 25
    resumed = train.main(args + ["--out", str(tmp_path / "cut"), "--resume"])
    assert [r["step"] for r in resumed] == [0, 10, 20, 30, 40]
    assert [r["step"] for r in metrics.read_metrics(tmp_path / "cut")] == [0, 10, 20, 30, 40]  # ints, not 10.0
    for a, b in zip(full[-2:], resumed[-2:]):  # the same weights at steps 30 and 40
        assert a["val_bpc"] == pytest.approx(b["val_bpc"], rel=1e-6)
    # train_loss is a mean over the interval since the previous row: steps 31-40 ran after the resume in both
    assert full[-1]["train_loss"] == pytest.approx(resumed[-1]["train_loss"], rel=1e-6)
