"""Lesson 02: attention written out, heads, causal vs bidirectional masks."""
import torch

from conftest import lesson

A = lesson("02_attention")


def test_attention_equals_sdpa():
    for name, d in A.compare_with_sdpa().items():
        assert d < 1e-5, name


def test_attention_dropout_drops_weights_at_rate_p_and_rescales_the_rest():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 8) for _ in range(3))
    _, w0 = A.attention(q, k, v)
    out, w = A.attention(q, k, v, dropout_p=0.25)
    kept = w != 0
    assert abs((~kept).float().mean().item() - 0.25) < 0.03  # 8192 weights: the rate is p
    assert torch.allclose(w[kept], w0[kept] / 0.75)  # the rest scaled so the expectation is unchanged
    assert torch.allclose(out, w @ v, atol=1e-6)  # the output uses the dropped weights


def test_causal_invariance_and_bidirectional_dependence():
    eff = A.future_token_effect(changed=5)
    assert eff["causal"][:5].abs().max() == 0
    assert (eff["causal"][5:] > 0).all()
    assert (eff["bidirectional"] > 0).all()


def test_heads_split_merge_roundtrip():
    x = torch.randn(2, 7, 12)
    assert A.split_heads(x, 3).shape == (2, 3, 7, 4)
    assert torch.equal(A.merge_heads(A.split_heads(x, 3)), x)


def test_main_prints_facts_and_plots_to_the_file_given(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    A.main(["--plot", "attention.png"])
    out = capsys.readouterr().out
    diffs = [float(line.split("=")[1]) for line in out.splitlines() if "max |difference|" in line]
    assert len(diffs) == 2 and max(diffs) < 1e-5
    causal = [line for line in out.splitlines() if line.strip().startswith("causal:") and "max" not in line][0]
    assert causal.split(":")[1].split()[:5] == ["0.00"] * 5  # outputs before the changed token do not move
    assert "wrote attention.png" in out
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
