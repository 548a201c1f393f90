"""Lesson 01: tensors, autograd, nn.Module, a training loop."""
import pytest

from conftest import lesson

T01 = lesson("01_tensors")


def test_gradient_matches_hand_derivation():
    auto, hand = T01.gradient_check()
    assert auto == pytest.approx(hand, rel=1e-6)
    assert auto != 0


def test_training_loop_fits():
    hist = T01.fit_sine(steps=200)
    assert hist[-1][1] < 0.05 * hist[0][1]


def test_main_prints_its_facts(capsys):
    T01.main(["--steps", "100"])
    out = capsys.readouterr().out
    assert "(B, T, C) (4, 8, 16) @ (C, C') (16, 32) -> (4, 8, 32)" in out
    assert "|diff| = 0.00e+00" in out and "parameters: 97" in out  # 1*32 + 32 + 32*1 + 1
    mse = [float(line.split("mse")[1]) for line in out.splitlines() if line.startswith("step")]
    assert len(mse) >= 2 and mse[-1] < 0.5 * mse[0]
