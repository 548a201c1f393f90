"""Lesson 05: the training loop on the tiny preset (seconds per run): metrics, checkpoints, Ctrl-C, resume."""
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from support import checkpoints, metrics
from support.cli import UsageError

from conftest import ROOT, TINY, cli_error, lesson

train = lesson("05_train")


@pytest.mark.parametrize("name", ["01_tensors", "02_attention", "03_transformer", "04_diffusion", "05_train",
                                  "06_generate", "07_train_gpt", "08_train_tamil", "09_generate_tamil",
                                  "10_fast_decoding", "11_block_diffusion", "12_sudoku", "13_self_correction",
                                  "tamil_dataset", "tamil_wikipedia",
                                  "sudoku_puzzles"])
def test_lessons_import_silently(name):
    r = subprocess.run([sys.executable, "-c", f"import importlib; importlib.import_module({name!r})"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


def test_lessons_import_only_backwards():
    """A lesson imports earlier lessons only; 06 (generation) does not depend on 05 (training)."""
    import re

    lessons = sorted(ROOT.glob("[0-9][0-9]_*.py"))
    assert len(lessons) >= 11
    for path in lessons:
        n = int(path.name[:2])
        imported = [int(m) for m in re.findall(r'import_module\("(\d\d)_', path.read_text())]
        assert all(m < n for m in imported), (path.name, imported)
    assert '"05_train"' not in (ROOT / "06_generate.py").read_text()
    for early in ("04_diffusion.py", "05_train.py", "06_generate.py"):  # the core knows nothing of 10 and 11
        text = (ROOT / early).read_text()
        assert not any(w in text for w in ("generate_fast", "generate_blocks", "--threshold", "--block-diffusion"))


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
    out = ["--out", str(tmp_path / "o")]  # never the default checkpoints/dllm, which may hold the learner's run
    assert "no such file" in cli_error(train.main, out + TINY + ["--data", str(tmp_path / "missing.txt")], capsys)
    assert "directory" in cli_error(train.main, out + TINY + ["--data", str(tmp_path)], capsys)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    assert "not UTF-8" in cli_error(train.main, out + TINY + ["--data", str(latin1)], capsys)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert "too short" in cli_error(train.main, TINY + ["--data", str(short), "--out", str(tmp_path / "o2")], capsys)
    assert "divisible" in cli_error(train.main, out + TINY + ["--data", str(short), "--n-head", "3"], capsys)
    assert "--dropout" in cli_error(train.main, out + TINY + ["--data", str(short), "--dropout", "1.5"], capsys)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "latest.pt").write_bytes(b"a run already here")  # the flag is checked first
    assert "--mask-rate needs 0 < LO < HI <= 1, got 0.9 0.1" in cli_error(
        train.main, out + TINY + ["--data", str(short), "--mask-rate", "0.9", "0.1"], capsys)
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["latest.pt"]


def test_train_cli_prints_one_line_not_a_traceback():
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
        train.main(args + ["--out", str(tmp_path / "cut")], objective=Interrupting)
    assert e.value.code == 130
    assert checkpoints.load_checkpoint(tmp_path / "cut" / "latest.pt")["step"] == 25
    resumed = train.main(args + ["--out", str(tmp_path / "cut"), "--resume"])
    assert [r["step"] for r in resumed] == [0, 10, 20, 30, 40]
    assert [r["step"] for r in metrics.read_metrics(tmp_path / "cut")] == [0, 10, 20, 30, 40]  # ints, not 10.0
    for a, b in zip(full[-2:], resumed[-2:]):  # the same weights at steps 30 and 40
        assert a["val_bpc"] == pytest.approx(b["val_bpc"], rel=1e-6)
    # train_loss is a mean over the interval since the previous row: steps 31-40 ran after the resume in both
    assert full[-1]["train_loss"] == pytest.approx(resumed[-1]["train_loss"], rel=1e-6)


def test_ctrl_c_in_the_first_evaluation_saves_step_0_and_twice_says_nothing_is_saved(tiny_text, tmp_path, capsys):
    """The untrained model's evaluation (step 0) is inside the loop's Ctrl-C handling: one Ctrl-C there saves a
    run that --resume continues (it used to exit with only a stale .lock in a new folder), a second one stops at
    once and says nothing is saved yet (not that latest.pt holds a state)."""
    args = TINY + ["--data", str(tiny_text), "--steps", "4", "--eval-every", "2", "--sample-len", "0"]

    def interrupting(times):
        class Interrupting(train.DiffusionObjective):
            def val_bits(self, *a):
                for _ in range(times):  # as if the user pressed Ctrl-C while it evaluates
                    signal.raise_signal(signal.SIGINT)
                return super().val_bits(*a)
        return Interrupting

    with pytest.raises(SystemExit) as e:
        train.main(args + ["--out", str(tmp_path / "once")], objective=interrupting(1))
    assert e.value.code == 130 and "interrupted at step 0" in capsys.readouterr().err
    assert checkpoints.load_checkpoint(tmp_path / "once" / "latest.pt")["step"] == 0
    assert not (tmp_path / "once" / ".lock").exists()
    rows = train.main(args + ["--out", str(tmp_path / "once"), "--resume"])
    assert [r["step"] for r in rows] == [0, 2, 4]
    with pytest.raises(SystemExit) as e:
        train.main(args + ["--out", str(tmp_path / "twice")], objective=interrupting(2))
    assert e.value.code == 130 and capsys.readouterr().err.strip().endswith("stopped at once; nothing saved yet")


# ---------------------------------------------------------------- never lose a run
def test_a_second_run_never_overwrites_the_first(tiny_text, tmp_path, capsys):
    out = tmp_path / "run"
    args = TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "20", "--eval-every", "10"]
    train.main(args)
    before = (out / "best.pt").read_bytes()
    capsys.readouterr()
    err = cli_error(train.main, TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "4"], capsys)
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert (out / "best.pt").read_bytes() == before  # untouched
    rows = train.main(TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "4", "--eval-every", "2",
                              "--force"])
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert checkpoints.load_checkpoint(out / "latest.pt")["step"] == 4
    assert [r["step"] for r in metrics.read_metrics(out)] == [0, 2, 4]  # no rows left from the old run
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "hf", "latest.pt", "metrics.csv"]


def test_a_run_never_lands_in_a_folder_of_other_things(tiny_text, tmp_path, capsys):
    shipped = tmp_path / "shipped"  # a shipped model's folder (Hub layout), or data/: not a run
    shipped.mkdir()
    (shipped / "config.json").write_text("{}")
    (shipped / "model.safetensors").write_bytes(b"weights")
    for force in ([], ["--force"]):
        err = cli_error(train.main, TINY + ["--data", str(tiny_text), "--out", str(shipped), "--steps", "2", *force],
                        capsys)
        assert "holds files that are not a run (config.json, model.safetensors)" in err
    assert sorted(p.name for p in shipped.iterdir()) == ["config.json", "model.safetensors"]


def test_resume_takes_the_runs_own_arguments(tiny_text, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    train.main(TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "10", "--eval-every", "5",
                       "--lr", "0.002", "--n-embd", "16", "--mask-rate", "0.2", "0.9"])
    monkeypatch.setattr(train, "SHAKESPEARE_URL", "http://127.0.0.1:9/unreachable")  # any download would fail
    monkeypatch.chdir(tmp_path.parent)  # and from another folder: the data path is stored resolved

    ranges, loss = set(), train.DiffusionObjective.loss  # record the range each training step draws t from
    monkeypatch.setattr(train.DiffusionObjective, "loss", lambda self, *a: ranges.add(self.t_range) or loss(self, *a))
    rows = train.main(["--out", str(out), "--resume", "--steps", "20", "--no-plot", "--sample-len", "0"])
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20] and ranges == {(0.2, 0.9)}
    ckpt = checkpoints.load_checkpoint(out / "latest.pt")
    assert ckpt["args"]["lr"] == 0.002 and ckpt["config"]["n_embd"] == 16 and ckpt["args"]["preset"] == "tiny"
    assert ckpt["args"]["mask_rate"] == [0.2, 0.9]
    assert ckpt["args"]["dtype"] == "fp32"  # TINY's --dtype fp32 survives a resume that does not type --dtype
    capsys.readouterr()
    err = cli_error(train.main, ["--out", str(out), "--resume", "--lr", "0.01"], capsys)
    assert "--lr 0.01 conflicts with the run being resumed (--lr 0.002)" in err
    train.main(["--out", str(out), "--resume", "--data", str(tiny_text), "--steps", "20"])  # the same data: fine
    capsys.readouterr()
    err = cli_error(train.main, ["--out", str(tmp_path / "none"), "--resume"], capsys)
    assert "nothing to resume" in err and "--checkpoint" not in err


def test_shipped_corpus_is_used_offline_and_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "SHAKESPEARE_URL", "http://127.0.0.1:9/unreachable")
    text = train.shakespeare()  # data/tinyshakespeare.txt, no network
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    (tmp_path / "tinyshakespeare.txt").write_text(text[:-1] + "?")
    with pytest.raises(UsageError, match="sha256 differs"):
        train.shakespeare(tmp_path)
    (tmp_path / "tinyshakespeare.txt").unlink()
    with pytest.raises(UsageError, match="offline\\? pass --data FILE"):
        train.shakespeare(tmp_path)  # deleted: the download is tried, and fails here as it should
    assert list(tmp_path.iterdir()) == []


def test_one_log_line_per_evaluation_in_bits_per_char(tiny_text, tmp_path, capsys):
    train.main(TINY + ["--data", str(tiny_text), "--out", str(tmp_path / "r"), "--steps", "10", "--eval-every", "5",
                       "--sample-len", "0"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(lines) == 3 and all("bits/char" in line and "| train " in line for line in lines)
    train5 = float(lines[1].split("| train ")[1].split()[0])
    val5 = float(lines[1].split("| val ")[1].split()[0])
    assert abs(train5 - val5) < 1.0  # the same unit: at step 5 both are near log2(V), not 2.1 vs 3.1


def test_interleaved_split_never_leaks_a_paragraph(tmp_path):
    couplets = [f"couplet {i} line one\nline two of {i}" for i in range(95)]
    text = "\n\n".join(couplets) + "\n"
    parts = [[p for p in part.strip("\n").split("\n\n") if p] for part in train.interleaved_split(text)]
    assert [len(p) for p in parts] == [77, 9, 9]  # 8/1/1 of every ten
    assert sorted(sum(parts, [])) == sorted(couplets)  # each couplet in exactly one part, whole
    assert parts[1][0] == couplets[8] and parts[2][-1] == couplets[89]  # spread over the whole text, not the tail
    tok = lesson("04_diffusion").CharTokenizer.from_text(text)
    tr, va, cpt = train.split_corpus(text, tok, "interleaved")
    assert tok.decode(va.tolist()) == train.interleaved_split(text)[1] and cpt == 1.0
    with pytest.raises(UsageError, match="the corpus has characters not in the model's vocabulary: 'é'"):
        train.split_corpus(text.replace("couplet 88", "couplet 8\u00e9"), tok, "interleaved")  # one line, exit 2
    corpus = tmp_path / "couplets.txt"
    corpus.write_text("\n\n".join(f"couplet {i} line one\nline two of {i}" for i in range(400)) + "\n")
    rows = train.main(["--preset", "tiny", "--dtype", "fp32", "--sample-len", "0", "--no-plot", "--steps", "2",
                       "--data", str(corpus), "--out", str(tmp_path / "r"), "--split", "interleaved"])
    assert checkpoints.load_checkpoint(tmp_path / "r" / "latest.pt")["args"]["split"] == "interleaved" and rows


def test_a_run_directory_being_trained_is_locked(tiny_text, tmp_path, capsys):
    """Two trainers on one --out: the second is refused in one line (the first holds <out>/.lock while it trains),
    instead of both reporting success and one run lost. The lock goes with the run: the folder is free after."""
    out = tmp_path / "run"
    held = checkpoints.lock_run(out)  # as if another process were training there now
    args = TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "4", "--eval-every", "2"]
    assert "is being trained by another process" in cli_error(train.main, args, capsys)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing of a second run written
    checkpoints.unlock_run(SimpleNamespace(lock=held))
    assert [r["step"] for r in train.main(args)] == [0, 2, 4]
    assert ".lock" not in [p.name for p in out.iterdir()]
