"""Lesson 10: fast decoding: parallel commits (Fast-dLLM threshold and factor, the EB-Sampler), semi-autoregressive
blocks, the approximate KV cache; the demo and the command line."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import Counting, cli_error, lesson, tiny

D, F10 = lesson("04_diffusion"), lesson("10_fast_decoding")


class Confident(nn.Module):
    """Always almost sure: token (position mod V) with probability ~1."""

    def __init__(self, V=11):
        super().__init__()
        self.V, self.config = V, type("C", (), {"mask_id": V})()

    def forward(self, idx, **kw):
        pos = torch.arange(idx.size(1)) % self.V
        return F.one_hot(pos, self.V).float().expand(idx.size(0), -1, -1) * 20


def test_threshold_decoding_needs_fewer_calls_when_confident():
    canvas = torch.full((2, 40), 11)
    x, calls = F10.generate_fast(Confident(), canvas, D.GREEDY, rule=F10.Rule("threshold", 0.9))
    assert calls == 1 and torch.equal(x[0], torch.arange(40) % 11)
    x, calls = F10.generate_fast(Confident(), canvas, D.GREEDY, rule=F10.Rule("factor", 1.0))
    assert calls < 40 and (x != 11).all()


@pytest.mark.parametrize("rule", [F10.Rule("threshold", 1.0), F10.Rule("factor", 1e-3)])
def test_adaptive_rules_commit_at_least_one_per_step(rule):
    torch.manual_seed(0)
    m = Counting(tiny())
    x, calls = F10.generate_fast(m, torch.full((1, 12), 11), rule=rule)
    assert (x != 11).all() and calls <= 12


def test_blocks_are_decoded_in_order():
    torch.manual_seed(0)
    seen = []

    def check(calls, x):
        masked = x[0] == 11  # (L,)
        for b in range(0, 32, 8):
            if masked[b : b + 8].any():  # first unfinished block: everything after is still masked
                seen.append(bool(masked[b + 8 :].all()))
                break

    x, calls = F10.generate_fast(tiny(), torch.full((1, 32), 11), steps=16, block_size=8, callback=check)
    assert calls == 16 and all(seen) and (x != 11).all()


def test_fast_path_without_options_is_the_plain_sampler():
    m = tiny()
    canvas = torch.full((2, 24), 11)
    canvas[:, :3] = 4
    for steps, order in ((6, "confidence"), (8, "margin")):
        a, ca = D.generate(m, canvas, steps, D.Sampling(order=order, generator=torch.Generator().manual_seed(2)))
        b, cb = F10.generate_fast(m, canvas, D.Sampling(order=order, generator=torch.Generator().manual_seed(2)),
                                  steps)
        assert torch.equal(a, b) and ca == cb


def test_threshold_one_equals_one_token_per_step_surest_first():
    m = tiny()
    canvas = torch.full((2, 24), 11)
    s = lambda: D.Sampling(order="confidence", generator=torch.Generator().manual_seed(5))
    a, ca = D.generate(m, canvas, 24, s())
    b, cb = F10.generate_fast(m, canvas, s(), rule=F10.Rule("threshold", 1.0))
    assert torch.equal(a, b) and ca == cb == 24


@pytest.mark.parametrize("rule", [F10.Rule("threshold", 0.99), F10.Rule("factor", 1e-3)])
def test_when_nothing_passes_the_most_probable_masked_position_is_committed(rule):
    """Fast-dLLM's code keeps its top-1 always: when no position clears the rule, the one committed is the masked
    position with the highest probability, not the first in the sampler's order (random by default)."""
    torch.manual_seed(0)
    logits = torch.randn(3, 10, 6)  # nothing near 0.99
    masked = torch.ones(3, 10, dtype=torch.bool)
    masked[:, :2] = False  # known positions: never chosen, however probable
    prob = logits.softmax(-1).max(-1).values
    prob[:, :2] = 1.0
    ranks = torch.stack([torch.randperm(10) for _ in range(3)])  # a random order
    take = F10.parallel_commit(logits, masked, prob, ranks, rule)
    assert torch.equal(take.sum(1), torch.ones(3, dtype=torch.long))
    assert torch.equal(take.float().argmax(1), prob.masked_fill(~masked, -1).argmax(1))


class Widths(nn.Module):
    """Records the width and start of every model call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.seen = model, model.config, []

    def forward(self, idx, cache=None, start=0):
        self.seen.append((idx.size(1), start))
        return self.model(idx, cache=cache, start=start)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("rule", [dict(rule=F10.Rule("threshold", 0.3)), dict(rule=F10.Rule("factor", 1.0)),
                                  dict(steps=12)])
def test_cached_decoding_is_valid_and_uses_the_cache(cache, rule):
    m = Widths(tiny())
    canvas = torch.full((3, 32), 11)
    canvas[:, :5] = torch.tensor([1, 2, 3, 4, 5])
    canvas[:, -3:] = 7
    x, calls = F10.generate_fast(m, canvas, D.Sampling(generator=torch.Generator().manual_seed(0)), block_size=8,
                                 cache=cache, **rule)
    assert (x != 11).all()
    assert torch.equal(x[:, :5], canvas[:, :5]) and (x[:, -3:] == 7).all()
    assert calls == len(m.seen) <= 24  # never more calls than masked positions
    partial = [(w, s) for w, s in m.seen if w < 32]  # the calls that reused cached keys and values
    assert partial, "the cache branch never ran"
    for w, s in partial:
        assert s % 8 == 0 and w == (8 if cache == "dual" else 32 - s)  # dual: the block; prefix: block + suffix


def test_dual_cache_over_one_block_is_exact():
    """With one block spanning the canvas, every dual-cache step recomputes every position: no approximation,
    so over several steps it must equal decoding without a cache, call for call."""
    m = Widths(tiny())
    canvas = torch.full((2, 16), 11)
    a, ca = F10.generate_fast(m, canvas, D.GREEDY, steps=6)
    n_plain = len(m.seen)
    b, cb = F10.generate_fast(m, canvas, D.GREEDY, steps=6, cache="dual")
    assert torch.equal(a, b) and ca == cb == 6 and len(m.seen) - n_plain == 6


def test_entropy_budget_commits_at_least_one_and_stays_within_budget():
    logits = torch.tensor([[[9.0, 0, 0], [0, 0, 0], [5.0, 0, 0], [4.0, 0, 0]]])  # (1, 4, 3)
    masked = torch.tensor([[True, True, True, False]])
    h = F10.entropy(logits)[0]
    conf = logits.softmax(-1).amax(-1)
    ranks = D._ranks(conf.masked_fill(~masked, -1))
    for budget in (0.0, 1e-3, h[2].item() + 1e-6, 10.0):
        commit = F10.parallel_commit(logits, masked, conf, ranks, F10.Rule("eb", budget))[0]
        assert commit.sum() >= 1 and not commit[3]  # at least one, never an unmasked position
        assert h[commit].sum() - h[commit].max() <= budget  # the paper's bound: the sum beyond the largest
    assert F10.parallel_commit(logits, masked, conf, ranks, F10.Rule("eb", 0.0))[0].tolist() == [True, False, False,
                                                                                                 False]
    assert F10.parallel_commit(logits, masked, conf, ranks, F10.Rule("eb", 10.0))[0].sum() == 3


# ---------------------------------------------------------------- 10: the command line and the demo
def test_generate_with_parallel_rules_blocks_and_caches(dllm_run):
    run = str(dllm_run[0] / "dllm")
    texts = F10.main(["generate", "--checkpoint", run, "--len", "24", "--threshold", "0.5", "--block-size", "8",
                      "--cache", "dual"])
    assert len(texts[0]) == 24
    texts = F10.main(["generate", "--checkpoint", run, "--len", "30", "--entropy-budget", "0.5",
                      "--num-samples", "2", "--prompt", "To"])
    assert all(len(t) == 30 and t.startswith("To") for t in texts)


@pytest.mark.parametrize("argv, needle", [
    (["--threshold", "0"], "--threshold"), (["--threshold", "2"], "--threshold"), (["--factor", "0"], "--factor"),
    (["--entropy-budget", "-1"], "--entropy-budget"),
    (["--threshold", "0.9", "--entropy-budget", "1"], "not allowed with argument"),
    (["--cache", "dual"], "--block-size"), (["--cache", "exact"], "invalid choice"), (["--block-size", "0"], ">= 1"),
    (["--steps", "2", "--block-size", "4"], "number of blocks"),
])
def test_bad_fast_input_exits_2(dllm_run, capsys, argv, needle):
    assert needle in cli_error(F10.main, ["generate", "--checkpoint", str(dllm_run[0] / "dllm")] + argv, capsys)


def test_block_diffusion_checkpoints_are_refused(bd_run, capsys):
    assert "11_block_diffusion.py" in cli_error(F10.main, ["generate", "--checkpoint", str(bd_run)], capsys)


def test_demo_decodes_one_model_every_way(capsys):
    """The demo (about 10 s): every decoder fills the canvas; the parallel rules need fewer calls than one per
    token; the caches run; every row reports its agreement with one token per call."""
    F10.main(["--train-steps", "200"])
    out = capsys.readouterr().out
    rows = {line[:36].strip(): line[36:].split() for line in out.splitlines() if "% of positions" in line}
    assert len(rows) == 7
    one = rows["one token per call (lesson 04)"]
    assert int(one[0]) == 216 and one[-3] == "100%"
    for name, r in rows.items():
        assert 1 <= int(r[0]) <= 216 and 0 <= float(r[-3].rstrip("%")) <= 100, name
    assert int(rows["threshold 0.9 (Fast-dLLM)"][0]) < 216 and int(rows["entropy budget 1 nat (EB-Sampler)"][0]) < 216
    assert "greedy text, one token per call:" in out


def test_demo_takes_a_trained_run(dllm_run, capsys):
    F10.main(["--checkpoint", str(dllm_run[0] / "dllm"), "--len", "24"])
    out = capsys.readouterr().out
    assert "parameters ==" in out and out.count("% of positions") == 7
    assert "longer than this model's context (32)" in cli_error(F10.main, ["--checkpoint", str(dllm_run[0] / "dllm"),
                                                                         "--len", "33"], capsys)


# ---------------------------------------------------------------- the rules do what their papers say
class HalfSure(nn.Module):
    """Even positions: token 1 with probability ~0.999; odd positions: token 2 with probability 0.6."""

    def __init__(self, V=11):
        super().__init__()
        self.V, self.config = V, type("C", (), {"mask_id": V})()

    def forward(self, idx, **kw):
        B, L = idx.shape
        sure = torch.full((self.V,), -20.0)
        sure[1] = 0.0
        unsure = torch.full((self.V,), -20.0)
        unsure[2], unsure[3] = math.log(0.6), math.log(0.4)
        rows = torch.stack([sure if i % 2 == 0 else unsure for i in range(L)])
        return rows.expand(B, L, self.V)


@pytest.mark.parametrize("noise", [0.0, 12.0])
def test_threshold_counts_by_the_models_probability_not_by_the_noisy_order(noise):
    """Fast-dLLM's rule reads p(token) itself: with 06's default noise 12 on the order, a threshold of 0.99 still
    commits exactly the sure half in the first call (the old rule compared log p + 12 x Gumbel with 0.99)."""
    canvas = torch.full((2, 20), 11)
    seen = []
    s = D.Sampling(temperature=0, noise=noise, generator=torch.Generator().manual_seed(0))
    F10.generate_fast(HalfSure(), canvas, s, rule=F10.Rule("threshold", 0.99),
                      callback=lambda calls, x: seen.append((x != 11).sum(1).tolist()))
    assert seen[0] == [10, 10]  # every sure position, no unsure one
    assert len(seen) == 11  # then the unsure ones (0.6 < 0.99): one per call, as the rule's fallback
    seen.clear()
    F10.generate_fast(HalfSure(), canvas, s, rule=F10.Rule("threshold", 0.5),
                      callback=lambda calls, x: seen.append((x != 11).sum(1).tolist()))
    assert seen == [[20, 20]]  # 0.6 >= 0.5: everything in one call


@pytest.mark.parametrize("noise", [0.0, 12.0])
def test_factor_rule_counts_by_the_models_probability(noise):
    """p_(n) >= 1 - f/(n+1) with f = 1: ten positions at 0.999 pass (1 - 1/11 = 0.909), the 0.6 ones never do."""
    canvas = torch.full((1, 20), 11)
    s = D.Sampling(temperature=0, noise=noise, generator=torch.Generator().manual_seed(0))
    seen = []
    F10.generate_fast(HalfSure(), canvas, s, rule=F10.Rule("factor", 1.0),
                      callback=lambda calls, x: seen.append(int((x != 11).sum())))
    assert seen[0] == 10


def test_eb_sampler_subtracts_the_largest_entropy_of_the_set():
    """Ben-Hamu et al. 2025, Algorithm 1: the largest prefix U (lowest entropy first) with
    sum_U H - max_U H <= gamma. Entropies 0.1, 0.3, 0.5, 2.0 and gamma 0.5: U holds three (0.1 + 0.3 + 0.5 - 0.5);
    a rule on the plain sum (0.1 + 0.3 <= 0.5 < 0.9) would commit two."""
    targets = [0.1, 0.3, 0.5, 2.0]
    rows = []
    for h in targets:  # a two-token distribution with entropy h (nats), found by bisection
        lo, hi = 1e-9, 0.5
        for _ in range(60):
            p = (lo + hi) / 2
            if -(p * math.log(p) + (1 - p) * math.log(1 - p)) < h:
                lo = p
            else:
                hi = p
        rows.append([math.log(p), math.log(1 - p)] if h < math.log(2) else [0.0] * 8)  # 2.0 nats: uniform over 8
    logits = torch.full((1, 4, 8), -30.0)
    for i, r in enumerate(rows):
        logits[0, i, : len(r)] = torch.tensor(r)
    assert torch.allclose(F10.entropy(logits)[0], torch.tensor([0.1, 0.3, 0.5, math.log(8)]), atol=1e-3)
    masked = torch.ones(1, 4, dtype=torch.bool)
    _, prob, ranks = D.propose(logits, masked, D.Sampling(temperature=0, order="entropy"))
    commit = F10.parallel_commit(logits, masked, prob, ranks, F10.Rule("eb", 0.5))
    assert commit.tolist() == [[True, True, True, False]]
    commit = F10.parallel_commit(logits, masked, prob, ranks, F10.Rule("eb", 0.0))
    assert commit.tolist() == [[True, False, False, False]]  # the first always passes: its term is 0
