"""Lessons 01-04: the from-scratch core."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ROOT, lesson

T01, A, T, D = (lesson(n) for n in ("01_tensors", "02_attention", "03_transformer", "04_diffusion"))


@pytest.mark.parametrize("name", ["01_tensors", "02_attention", "03_transformer", "04_diffusion", "05_train",
                                  "06_generate"])
def test_lessons_import_silently(name):
    r = subprocess.run([sys.executable, "-c", f"import importlib; importlib.import_module({name!r})"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


def test_gradient_matches_hand_derivation():
    auto, hand = T01.gradient_check()
    assert auto == pytest.approx(hand, rel=1e-6)
    assert auto != 0


def test_training_loop_fits():
    hist = T01.fit_sine(steps=200)
    assert hist[-1][1] < 0.05 * hist[0][1]


def test_attention_equals_sdpa():
    for name, d in A.compare_with_sdpa().items():
        assert d < 1e-5, name


def test_causal_invariance_and_bidirectional_dependence():
    eff = A.future_token_effect(changed=5)
    assert eff["causal"][:5].abs().max() == 0
    assert (eff["causal"][5:] > 0).all()
    assert (eff["bidirectional"] > 0).all()


def test_heads_split_merge_roundtrip():
    x = torch.randn(2, 7, 12)
    assert A.split_heads(x, 3).shape == (2, 3, 7, 4)
    assert torch.equal(A.merge_heads(A.split_heads(x, 3)), x)


def tiny(**kw):
    return T.Transformer(T.build_config("tiny", vocab_size=11, **kw)).eval()


@pytest.mark.parametrize("rope", [True, False])
def test_transformer_shapes_and_mask_row(rope):
    m = tiny(rope=rope)
    idx = torch.randint(0, 12, (3, 20))
    assert m(idx).shape == (3, 20, 11)  # 11 real tokens out, [MASK] (id 11) is input only
    assert m.config.mask_id == 11


@pytest.mark.parametrize("rope", [True, False])
def test_transformer_causal_vs_bidirectional(rope):
    torch.manual_seed(0)
    for causal in (True, False):
        m = tiny(causal=causal, rope=rope)
        a = torch.randint(0, 11, (1, 16))
        b = a.clone()
        b[0, 10:] = (b[0, 10:] + 1) % 11
        with torch.no_grad():
            la, lb = m(a), m(b)
        before = (la[0, :10] - lb[0, :10]).abs().max()
        if causal:
            assert before == 0  # GPT: position i never sees tokens after i
        else:
            assert before > 1e-6  # dLLM: every position sees every other


def test_weight_tying_is_one_parameter():
    m = tiny()
    assert m.lm_head.weight is m.tok_emb.weight
    names = [n for n, _ in m.named_parameters()]
    assert "lm_head.weight" not in names  # counted once
    untied = tiny(tie_weights=False)
    assert untied.lm_head.weight is not untied.tok_emb.weight


@pytest.mark.parametrize("preset", list(T.PRESETS))
def test_preset_parameter_count(preset):
    c = T.build_config(preset, vocab_size=65)
    C, V, L = c.n_embd, c.n_input_tokens, c.n_layer
    per_block = 2 * 2 * C + 3 * C * C + C * C + (C * 4 * C + 4 * C) + (4 * C * C + C)  # 2 LN, qkv, proj, MLP
    expected = V * C + L * per_block + 2 * C  # tied head adds nothing; RoPE has no parameters
    assert T.Transformer(c).num_params() == expected
    if preset == "gpu":
        assert 10e6 < expected < 11e6  # the ~10M model


def test_manual_attention_equals_fused():
    torch.manual_seed(0)
    for causal in (True, False):
        a = tiny(causal=causal)
        b = tiny(causal=causal, manual_attention=True)
        b.load_state_dict(a.state_dict())
        idx = torch.randint(0, 11, (2, 24))
        with torch.no_grad():
            assert torch.allclose(a(idx), b(idx), atol=1e-5)


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
    x, calls = D.generate(Confident(), canvas, 11, threshold=0.9, temperature=0)
    assert calls == 1 and torch.equal(x[0], torch.arange(40) % 11)
    x, calls = D.generate(Confident(), canvas, 11, factor=1.0, temperature=0)
    assert calls < 40 and (x != 11).all()


@pytest.mark.parametrize("rule", [dict(threshold=1.0), dict(factor=1e-3)])
def test_adaptive_rules_commit_at_least_one_per_step(rule):
    torch.manual_seed(0)
    m = Counting(tiny())
    x, calls = D.generate(m, torch.full((1, 12), 11), 11, **rule)
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
    with pytest.raises(KeyError):
        tok.encode("help")
