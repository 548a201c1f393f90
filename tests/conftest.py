"""Shared test setup: the lessons importable by name from any working directory, the tiny command-line
arguments every training test uses, and two tiny runs (a dLLM and a GPT) trained once per session."""
import os
import sys
from importlib import import_module
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))  # CI: 2 cores

# 05/07/08 on the tiny preset: seconds per run. fp32 so results do not depend on the CPU's bf16 support.
TINY = ["--preset", "tiny", "--dtype", "fp32", "--sample-len", "16", "--no-plot"]
LINES = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer",
         "The slings and arrows of outrageous fortune,", "Or to take arms against a sea of troubles"]


def lesson(name):
    return import_module(name)


def tiny(**kw):
    """Lesson 03's Transformer on the tiny preset, 11 real tokens ([MASK] = 11), seeded, in eval mode."""
    tfm = lesson("03_transformer")
    torch.manual_seed(0)
    return tfm.Transformer(tfm.build_config("tiny", vocab_size=11, **kw)).eval()


class Counting(torch.nn.Module):
    """Wraps a model and counts its forward calls (the samplers' cost)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.config = model, 0, model.config

    def forward(self, idx, **kw):
        self.calls += 1
        return self.model(idx, **kw)


class Logits(torch.nn.Module):
    """A 'model' whose output is a parameter: its gradient shows which positions carry loss."""

    def __init__(self, B, T, V, config=None):
        super().__init__()
        self.out, self.config = torch.nn.Parameter(torch.zeros(B, T, V)), config

    def forward(self, idx):
        return self.out[:, : idx.size(1)]


def ctrl_c_as_in_a_terminal():
    """Popen's preexec_fn for a child that a test stops with Ctrl-C: SIGINT at its default, as a terminal's
    command has it. A suite started in the background by a shell (`pytest &`) ignores SIGINT, and its children
    would inherit that and never stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_error(main, argv, capsys):
    """Run a CLI main in-process; return its one stderr line after asserting exit status 2."""
    from support.cli import run_cli

    with pytest.raises(SystemExit) as e:
        run_cli(main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def tiny_text(tmp_path):
    """A small UTF-8 corpus written by the test itself (no network, no shared data)."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def dllm_run(tmp_path_factory):
    """A tiny dLLM trained for 60 steps on two repeated lines: (folder, corpus, metrics rows)."""
    d = tmp_path_factory.mktemp("runs")
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(LINES[:2] * 120) + "\n", encoding="utf-8")
    rows = lesson("05_train").main(TINY + ["--data", str(corpus), "--out", str(d / "dllm"), "--steps", "60", "--plot"])
    return d, corpus, rows


@pytest.fixture(scope="session")
def gpt_run(dllm_run):
    """A tiny GPT trained through the same loop on the same corpus: (run folder, metrics rows)."""
    d, corpus, _ = dllm_run
    rows = lesson("07_train_gpt").main(TINY + ["--data", str(corpus), "--out", str(d / "gpt"), "--steps", "60"])
    return d / "gpt", rows


@pytest.fixture(scope="session")
def bd_run(dllm_run):
    """A tiny block-diffusion model (blocks of 4) trained by 11 through 05's loop on the same corpus: its folder."""
    d, corpus, _ = dllm_run
    lesson("11_block_diffusion").main(["train"] + TINY + ["--data", str(corpus), "--out", str(d / "bd4"), "--steps",
                                                          "60", "--block-diffusion", "4"])
    return d / "bd4"


def bonus(name):
    """A bonus aside (bonus/NN_name.py), imported like a lesson."""
    if str(ROOT / "bonus") not in sys.path:
        sys.path.insert(0, str(ROOT / "bonus"))
    return import_module(name)


def snapshot(folder):
    """{relative path: (size, mtime)} of every file under a folder of the repository."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="session", autouse=True)
def repository_state_untouched():
    """Tests never write the repository's checkpoints/ (the learner's runs, the shipped models) or data/: the suite
    must pass, and leave them as they were, after README's own commands have written their default runs."""
    before = {name: snapshot(ROOT / name) for name in ("checkpoints", "data")}
    yield
    for name, files in before.items():
        after = snapshot(ROOT / name)
        changed = sorted(k for k in set(files) | set(after) if files.get(k) != after.get(k))
        assert not changed, f"the tests changed {name}/: {changed[:5]}"
