"""bonus/: the asides run, and what they compute is right."""
import pytest
import torch

from support.cli import run_cli

from conftest import bonus

asides = bonus("04_nelbo_asides")


def test_cosine_weight_matches_derivative():
    t = torch.tensor([0.1, 0.5, 0.9], requires_grad=True)
    a = asides.alpha_cosine(t)
    (da,) = torch.autograd.grad(a.sum(), t)
    assert torch.allclose(asides.weight_cosine(t.detach()), -da / (1 - a.detach()), rtol=1e-5)


def test_count_masks_mask_exactly_l_inside_the_span():
    inside = torch.tensor([False, True, True, True, True, False])
    strata = torch.tensor([0.0, 0.3, 0.99])
    masks, weights = asides.count_masks(strata, inside, torch.Generator().manual_seed(0))
    assert masks.sum(1).tolist() == [1, 2, 4] and not masks[:, ~inside].any()
    assert weights.tolist() == [4.0, 2.0, 1.0]  # n / l


def test_asides_demo_prints_both_comparisons(capsys):
    asides.main([])
    out = capsys.readouterr().out
    lin, cos = (float(out.split(name)[1].split("mean")[1].split()[0]) for name in ("linear (lesson 04)", "cosine"))
    assert 0 < lin < 3 and 0 < cos < 3  # a fitted model: well below ln V = 3.47 nats
    sigmas = float(out.split("difference of the means:")[1].split("=")[1].split()[0])
    assert abs(sigmas) < 4  # equal in expectation (MD4): within a few standard errors
    time_, count = (float(out.split(name)[1].split("mean")[1].split()[0]) for name in ("time (lesson 04)", "count"))
    exact = float(out.split("exact left-to-right NLL is")[1].split()[0])
    assert abs(time_ - count) < 0.2 and exact > 0


@pytest.mark.parametrize("script, argv, says", [
    ("04_nelbo_asides", ["--bogus"], "unrecognized arguments: --bogus"),  # it took any flag and ran the demo
    ("16_path_smoothing", ["--seed", "-1"], "--seed: must be in [0, 2**32)"),  # as every --seed here
    ("16_path_smoothing", ["--n", "100000000"], "--n: must be in [1, 1000]"),  # it made maps for ever
    ("16_path_smoothing", ["--maps", ""], "--maps: needs a value, got an empty string"),  # read as no --maps
])
def test_a_bonus_script_answers_bad_flags_in_one_line(script, argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(bonus(script).main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.splitlines()) == 1 and says in err, err
