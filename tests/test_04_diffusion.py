"""Lesson 04: masked diffusion: the loss, the likelihood, the sampler, fast decoding, and the demo's promise."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import lesson, tiny

T, D = lesson("03_transformer"), lesson("04_diffusion")


# ---------------------------------------------------------------- 04: loss
class FixedLogits(nn.Module):
    """A 'model' whose logits are a free parameter: lets a test look at the loss's gradient directly."""

    def __init__(self, B, L, V):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(B, L, V))

    def forward(self, idx):
        return self.logits


def test_loss_touches_only_masked_positions_with_1_over_t_weight():
    B, L, V = 8, 16, 5
    x0 = torch.randint(0, V, (B, L))
    m = FixedLogits(B, L, V)
    loss = D.diffusion_loss(m, x0, V, generator=torch.Generator().manual_seed(3))
    loss.backward()
    # replay the same randomness to recover t and the mask
    g = torch.Generator().manual_seed(3)
    t = D.sample_times(B, g)
    z, mask = D.forward_process(x0, t, V, generator=g)
    assert torch.equal(z[mask], torch.full_like(z[mask], V)) and torch.equal(z[~mask], x0[~mask])
    grad_norm = m.logits.grad.abs().sum(-1)  # (B, L)
    assert (grad_norm[~mask] == 0).all()  # unmasked positions contribute nothing
    assert (grad_norm[mask] > 0).all()
    ce = F.cross_entropy(m.logits.detach().flatten(0, 1), x0.flatten(), reduction="none").view(B, L)
    expected = ((1 / t) * (ce * mask).sum(1)).mean() / L
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_times_are_low_discrepancy_in_range():
    t = D.sample_times(8, torch.Generator().manual_seed(0))
    assert ((t >= D.EPS) & (t <= 1)).all()
    gaps = t.sort().values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (1 - D.EPS) / 8), atol=1e-6)  # one per stratum


def test_cosine_weight_matches_derivative():
    t = torch.tensor([0.1, 0.5, 0.9], requires_grad=True)
    a = D.alpha(t, "cosine")
    (da,) = torch.autograd.grad(a.sum(), t)
    assert torch.allclose(D.loss_weight(t.detach(), "cosine"), -da / (1 - a.detach()), rtol=1e-5)
    assert torch.allclose(D.loss_weight(t.detach(), "linear"), 1 / t.detach())


# ---------------------------------------------------------------- 04: likelihood on a source of known entropy
class IIDModel(nn.Module):
    """Predicts the same distribution q at every position, whatever it sees."""

    def __init__(self, q):
        super().__init__()
        self.logq = q.log()

    def forward(self, idx):
        return self.logq.expand(*idx.shape, -1)


@pytest.mark.parametrize("method", ["time", "count"])
def test_nelbo_bounds_entropy_of_iid_source(method):
    p = torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625])
    H = -(p * p.log2()).sum().item()  # 1.875 bits exactly
    x = torch.multinomial(p, 200 * 32, replacement=True, generator=torch.Generator().manual_seed(0)).view(200, 32)
    oracle = D.nelbo_bits(IIDModel(p), x, mask_id=5, K=32, method=method)
    uniform = D.nelbo_bits(IIDModel(torch.full((5,), 0.2)), x, mask_id=5, K=32, method=method)
    emp = -(p.log2()[x]).mean().item()  # the sample's own -log2 p per symbol
    assert oracle == pytest.approx(emp, rel=0.02)  # a model that knows the source: close to the entropy
    assert abs(emp - H) < 0.02
    assert uniform >= H and uniform == pytest.approx(math.log2(5), rel=0.02)


def test_left_to_right_likelihood_is_exact():
    p = torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625])
    x = torch.multinomial(p, 8 * 16, replacement=True, generator=torch.Generator().manual_seed(0)).view(8, 16)
    emp = -(p.log2()[x]).mean().item()
    assert D.left_to_right_bits(IIDModel(p), x, mask_id=5) == pytest.approx(emp, rel=1e-6)  # exact, no noise
    torch.manual_seed(0)
    m, x = tiny(), torch.randint(0, 11, (2, 12))
    nll = 0.0  # the definition, one canvas at a time: x_<i known, [MASK] from position i on
    for row in x:
        for i in range(12):
            canvas = torch.cat([row[:i], torch.full((12 - i,), 11)])[None]
            nll -= m(canvas)[0, i].log_softmax(-1)[row[i]].item()
    assert D.left_to_right_bits(m, x, 11, batch_size=5) == pytest.approx(nll / 24 / math.log(2), rel=1e-5)


class Posterior(nn.Module):
    """The exact denoiser of a source that emits one of a few strings uniformly at random: given the visible
    tokens, the posterior over the strings that agree with them, and each position's marginal under it."""

    def __init__(self, strings, V):
        super().__init__()
        self.strings, self.V = strings, V  # (M, L)

    def forward(self, z):  # z: (B, L), id V = [MASK]
        agree = ((self.strings[None] == z[:, None]) | (z[:, None] == self.V)).all(-1).float()  # (B, M)
        w = agree / agree.sum(1, keepdim=True)
        probs = torch.einsum("bm,mlv->blv", w, F.one_hot(self.strings, self.V).float())  # (B, L, V)
        return probs.clamp_min(1e-12).log()


@pytest.mark.parametrize("span", [(0, 8), (2, 5), (4, 8), (7, 8), torch.tensor([0, 1, 1, 0, 0, 1, 0, 1])])
def test_infilling_likelihood_is_exact_on_a_source_with_known_conditionals(span):
    """-log2 p(x[lo:hi] | the rest) for a uniform choice among strings = log2(#agreeing outside / #agreeing)."""
    g = torch.Generator().manual_seed(0)
    strings = torch.randint(0, 3, (12, 8), generator=g)
    model, outside = Posterior(strings, 3), ~D.span_mask(span, 8)  # a tensor span: a template with three gaps
    for x in strings[:4]:
        n_out = (strings[:, outside] == x[outside]).all(1).sum().item()
        n_all = (strings == x).all(1).sum().item()
        exact = math.log2(n_out / n_all) / (~outside).sum().item()
        assert D.left_to_right_bits(model, x[None], 3, span=span) == pytest.approx(exact, abs=1e-6)
        # the NELBO of an exact denoiser is the NLL itself (any order gives the same product), up to noise
        for method in ("time", "count"):
            bound = D.nelbo_bits(model, x[None], 3, K=512, span=span, method=method)
            assert bound == pytest.approx(exact, abs=0.03 + 0.05 * exact)


# ---------------------------------------------------------------- 04: sampler
class Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.config = model, 0, model.config

    def forward(self, idx, **kw):
        self.calls += 1
        return self.model(idx, **kw)


def test_sampler_fills_canvas_in_exactly_steps_calls():
    torch.manual_seed(0)
    m = Counting(tiny())
    canvas = torch.full((3, 24), 11)
    x, calls = D.generate(m, canvas, 11, steps=7, generator=torch.Generator().manual_seed(0))
    assert (x != 11).all() and x.max() < 11
    assert calls == m.calls == 7


@pytest.mark.parametrize("remasking", D.REMASKING)
def test_infilling_never_changes_known_tokens(remasking):
    torch.manual_seed(0)
    canvas = torch.randint(0, 11, (2, 30))
    known = torch.rand(2, 30) < 0.5
    canvas[~known] = 11
    x, _ = D.generate(tiny(), canvas, 11, steps=5, remasking=remasking, top_k=3, top_p=0.9,
                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(x[known], canvas[known]) and (x != 11).all()


def test_blocks_are_decoded_in_order():
    torch.manual_seed(0)
    seen = []

    def check(calls, x):
        masked = x[0] == 11  # (L,)
        for b in range(0, 32, 8):
            if masked[b : b + 8].any():  # first unfinished block: everything after is still masked
                seen.append(bool(masked[b + 8 :].all()))
                break

    x, calls = D.generate(tiny(), torch.full((1, 32), 11), 11, steps=16, block_size=8, callback=check)
    assert calls == 16 and all(seen) and (x != 11).all()


class Confident(nn.Module):
    """Always almost sure: token (position mod V) with probability ~1."""

    def __init__(self, V=11):
        super().__init__()
        self.V, self.config = V, None

    def forward(self, idx, **kw):
        pos = torch.arange(idx.size(1)) % self.V
        return F.one_hot(pos, self.V).float().expand(idx.size(0), -1, -1) * 20


def test_threshold_decoding_needs_fewer_calls_when_confident():
    canvas = torch.full((2, 40), 11)
    x, calls = D.generate_fast(Confident(), canvas, 11, threshold=0.9, temperature=0)
    assert calls == 1 and torch.equal(x[0], torch.arange(40) % 11)
    x, calls = D.generate_fast(Confident(), canvas, 11, factor=1.0, temperature=0)
    assert calls < 40 and (x != 11).all()


@pytest.mark.parametrize("rule", [dict(threshold=1.0), dict(factor=1e-3)])
def test_adaptive_rules_commit_at_least_one_per_step(rule):
    torch.manual_seed(0)
    m = Counting(tiny())
    x, calls = D.generate_fast(m, torch.full((1, 12), 11), 11, **rule)
    assert (x != 11).all() and calls <= 12


def test_confidence_scores_the_drawn_token():
    logits = torch.tensor([[0.6, 0.3, 0.1]]).log()  # (1, 3): one position
    drawn = torch.tensor([1])
    assert D.confidence(logits, "confidence", drawn).item() == pytest.approx(0.3)  # p(drawn), not max p
    assert D.confidence(logits, "margin", drawn).item() == pytest.approx(0.3)  # 0.6 - 0.3
    assert D.confidence(logits, "entropy", drawn).item() == pytest.approx((0.6 * math.log(0.6) + 0.3 * math.log(0.3)
                                                                          + 0.1 * math.log(0.1)), rel=1e-5)


def test_top_k_restricts_the_draw():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).expand(2000, 5)
    draws = D.sample_tokens(logits, temperature=1.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}
    assert torch.equal(D.sample_tokens(logits, temperature=0), torch.zeros(2000, dtype=torch.long))
    nucleus = D.filter_logits(logits[:1], top_p=0.5)
    assert torch.isfinite(nucleus).sum() == 1  # the top token alone holds > 50%


def test_char_tokenizer_roundtrip_and_unknowns():
    tok = D.CharTokenizer.from_text("hello world")
    assert tok.decode(tok.encode("hello")) == "hello"
    assert tok.unknown("help!") == ["p", "!"]
    with pytest.raises(KeyError, match=r"'p' '!'"):  # every missing piece named, in order
        tok.encode("help!")


# ---------------------------------------------------------------- 04: fast decoding (Fast-dLLM)
def test_fast_path_without_options_is_the_plain_sampler():
    m = tiny()
    canvas = torch.full((2, 24), 11)
    canvas[:, :3] = 4
    for kw in (dict(steps=6), dict(steps=8, block_size=8, remasking="margin")):
        a, ca = D.generate(m, canvas, 11, generator=torch.Generator().manual_seed(2), **kw)
        b, cb = D.generate_fast(m, canvas, 11, generator=torch.Generator().manual_seed(2), **kw)
        assert torch.equal(a, b) and ca == cb


def test_threshold_one_equals_one_token_per_step():
    m = tiny()
    canvas = torch.full((2, 24), 11)
    a, ca = D.generate(m, canvas, 11, steps=24, generator=torch.Generator().manual_seed(5))
    b, cb = D.generate_fast(m, canvas, 11, threshold=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and ca == cb == 24


class Widths(nn.Module):
    """Records the width and start of every model call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.seen = model, model.config, []

    def forward(self, idx, cache=None, start=0):
        self.seen.append((idx.size(1), start))
        return self.model(idx, cache=cache, start=start)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("rule", [dict(threshold=0.3), dict(factor=1.0), dict(steps=12)])
def test_cached_decoding_is_valid_and_uses_the_cache(cache, rule):
    m = Widths(tiny())
    canvas = torch.full((3, 32), 11)
    canvas[:, :5] = torch.tensor([1, 2, 3, 4, 5])
    canvas[:, -3:] = 7
    x, calls = D.generate_fast(m, canvas, 11, block_size=8, cache=cache, generator=torch.Generator().manual_seed(0),
                               **rule)
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
    a, ca = D.generate_fast(m, canvas, 11, steps=6, temperature=0)
    n_plain = len(m.seen)
    b, cb = D.generate_fast(m, canvas, 11, steps=6, temperature=0, cache="dual")
    assert torch.equal(a, b) and ca == cb == 6 and len(m.seen) - n_plain == 6


# ---------------------------------------------------------------- 04: the demo
def test_demo_memorises_the_five_lines(capsys):
    """The demo's promise (default settings, about 25 s on 2 cores): it prints the five lines it learned."""
    D.main([])
    out = capsys.readouterr().out
    assert "t = 0.00  To be, or not to be, that is the question:" in out
    assert "t = 1.00  " + "_" * 42 in out
    untrained = float(out.split("NELBO per token")[1].split()[0])
    assert untrained == pytest.approx(math.log(32), rel=0.1)  # ln V: a uniform guess
    assert "memorised: the five lines, exactly" in out
    assert D.DEMO_TEXT.rstrip("\n") in out


# ---------------------------------------------------------------- randomness on the model's device
def test_no_host_copies_in_the_hot_paths(monkeypatch):
    """On a GPU, a copy to the CPU costs a transfer and a sync on every model call (sampling) or step (training).
    Random numbers are drawn where their generator lives, else on the data's device: never via .cpu()."""

    def no_copies(self, *args, **kwargs):
        raise AssertionError("a tensor was copied to the CPU")

    m = tiny()
    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(torch.Tensor, "cpu", no_copies)
    logits = torch.randn(2, 5, 11)
    assert D.sample_tokens(logits, top_k=3, generator=g).shape == (2, 5)
    assert D.confidence(logits, "random", None, generator=g).shape == (2, 5)
    assert D.diffusion_loss(m, torch.randint(0, 11, (2, 16)), 11, generator=g).isfinite()
    x, _ = D.generate(m, torch.full((1, 16), 11), 11, steps=4, remasking="random", generator=g)
    assert (x != 11).all()


def test_generator_device_decides_where_draws_happen():
    g = torch.Generator("cpu").manual_seed(3)
    assert D.rng_device(g, "cuda") == torch.device("cpu") and D.rng_device(None, "cpu") == "cpu"
    a = D.sample_times(8, torch.Generator().manual_seed(1), device="cpu")
    b = D.sample_times(8, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # the same seed, the same draws, whatever device the result goes to


# ---------------------------------------------------------------- 04: block diffusion (BD3-LM)
def test_block_mask_hides_later_blocks_and_the_clean_copy_of_ones_own():
    L, bl = 12, 4
    m = D.block_diffusion_mask(L, bl)  # (2L, 2L): [noisy ; clean] queries x [noisy ; clean] keys
    blk = torch.arange(L) // bl
    for i in range(L):
        for j in range(L):
            assert m[i, j] == (blk[j] == blk[i])  # noisy sees its own noisy block only
            assert m[i, L + j] == (blk[j] < blk[i])  # ... and the clean blocks strictly before it
            assert not m[L + i, j]  # clean never sees noisy
            assert m[L + i, L + j] == (blk[j] <= blk[i])  # clean is block-causal
    # and in the model: changing a clean block changes no noisy logits of that block or earlier ones
    model = tiny(block_len=bl)
    x0 = torch.randint(0, 11, (2, L))
    z = torch.where(torch.rand(2, L) < 0.5, 11, x0)
    a = D.block_logits(model, z, x0, bl)
    x1 = x0.clone()
    x1[:, 4:8] = (x1[:, 4:8] + 1) % 11  # block 1's clean copy
    b = D.block_logits(model, z, x1, bl)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)  # blocks 0 and 1 cannot see it
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-4)  # block 2 conditions on it


def test_training_pass_equals_what_the_sampler_sees():
    """block_logits' one 2L pass gives, for every block, the logits of a plain pass over [clean before ; noisy]."""
    bl = 4
    model = tiny(block_len=bl)
    x0 = torch.randint(0, 11, (3, 16))
    z = torch.where(torch.rand(3, 16) < 0.6, 11, x0)
    both = D.block_logits(model, z, x0, bl)
    for b in range(4):
        seq = torch.cat([x0[:, : b * bl], z[:, b * bl : (b + 1) * bl]], 1)
        assert torch.allclose(both[:, b * bl : (b + 1) * bl], model(seq)[:, -bl:], atol=1e-5)


def test_block_len_one_loss_is_the_gpt_cross_entropy_in_expectation():
    """B = 1: each token is masked with probability t and weighted 1/t, so the loss averages to the exact
    cross-entropy of each token given the clean ones before it: a GPT's loss, estimated with noise."""
    model = tiny(block_len=1)
    x0 = torch.randint(0, 11, (4, 16))
    exact = F.cross_entropy(D.block_logits(model, torch.full_like(x0, 11), x0, 1).flatten(0, 1), x0.flatten())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        draws = torch.stack([D.diffusion_loss(model, x0, 11, generator=g, block_len=1) for _ in range(400)])
    assert draws.std() > 0.01  # a noisy estimator ...
    assert draws.mean().item() == pytest.approx(exact.item(), abs=4 * draws.std().item() / 20)  # ... of the CE
    t = D.sample_times(8, torch.Generator().manual_seed(0), eps=0.5, hi=1.0)
    assert ((t >= 0.5) & (t <= 1)).all()  # the clipped schedule's range


@pytest.mark.parametrize("rule", [dict(), dict(steps=2), dict(threshold=0.2), dict(entropy_budget=1.0),
                                  dict(remasking="random")])
def test_exact_cache_gives_the_same_output_as_no_cache(rule):
    """Committed blocks never change, so caching their keys and values is exact: same seed, same text, same calls,
    including when the text outgrows the context (32) and the window slides."""
    model = tiny(block_len=4)
    prompt = torch.randint(0, 11, (2, 6))
    out = []
    for cache in (True, False):
        x, calls = D.generate_blocks(model, prompt, 50, 11, cache=cache, generator=torch.Generator().manual_seed(1),
                                     **rule)
        out.append((x, calls))
    (a, ca), (b, cb) = out
    assert torch.equal(a, b) and ca == cb
    assert a.shape == (2, 56) and (a != 11).all() and torch.equal(a[:, :6], prompt)
    if not rule:
        assert ca == 50  # one token per call: no extra call for caching
    elif "steps" in rule:
        assert ca == 13 * 2  # two calls for each of the 13 blocks from position 4 (the first holds 2 prompt tokens)


def test_entropy_budget_commits_at_least_one_and_stays_within_budget():
    logits = torch.tensor([[[9.0, 0, 0], [0, 0, 0], [5.0, 0, 0], [4.0, 0, 0]]])  # (1, 4, 3)
    masked = torch.tensor([[True, True, True, False]])
    h = D.entropy(logits)[0]
    conf = logits.softmax(-1).amax(-1)
    ranks = D._ranks(conf.masked_fill(~masked, -1))
    for budget in (0.0, 1e-3, h[0].item() + h[2].item() + 1e-6, 10.0):
        commit = D.parallel_commit(logits, masked, conf, ranks, entropy_budget=budget)[0]
        assert commit.sum() >= 1 and not commit[3]  # at least one, never an unmasked position
        if commit.sum() > 1:
            assert h[commit].sum() <= budget
    assert D.parallel_commit(logits, masked, conf, ranks, entropy_budget=0.0)[0].tolist() == [True, False, False,
                                                                                               False]
    assert D.parallel_commit(logits, masked, conf, ranks, entropy_budget=10.0)[0].sum() == 3


def test_stop_sequence_ends_generation_early():
    model = tiny(block_len=4)
    prompt = torch.randint(0, 11, (1, 4))
    full, calls = D.generate_blocks(model, prompt, 40, 11, generator=torch.Generator().manual_seed(2))
    stop = full[0, 9:11].tolist()  # a pair written in the third block (positions 8..11)
    x, c = D.generate_blocks(model, prompt, 40, 11, stop=[stop], generator=torch.Generator().manual_seed(2))
    first = next(i for i in range(4, 44) if full[0, i : i + 2].tolist() == stop)
    end = (first + 1) // 4 * 4 + 4  # the block in which the stop pair is complete
    assert torch.equal(x, full[:, :end]) and c == end - 4 < calls
