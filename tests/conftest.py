"""Make the numbered lessons importable (`lesson("03_transformer")`) from any working directory."""
import sys
from importlib import import_module
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
torch.set_num_threads(2)


def lesson(name):
    return import_module(name)


@pytest.fixture
def tiny_text(tmp_path):
    """A small UTF-8 corpus written by the test itself (no network, no shared data)."""
    lines = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer",
             "The slings and arrows of outrageous fortune,", "Or to take arms against a sea of troubles"]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines * 60) + "\n", encoding="utf-8")
    return path
