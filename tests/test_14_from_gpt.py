"""Lesson 14: a GPT adapted into a dLLM. The shift keeps the GPT's head meaning "the next token"; the annealed mask
starts as the GPT's; every sampler and likelihood of the lessons works on the adapted model unchanged."""
import json

import pytest
import torch

from conftest import TINY, lesson, tiny

T, D, F10, R, A = (lesson(m) for m in ("03_transformer", "04_diffusion", "10_fast_decoding", "13_self_correction",
                                       "14_from_gpt"))


def gpt_model():
    return tiny(causal=True, mask_token=False)


def test_with_the_causal_mask_the_adapted_model_is_the_gpt_one_place_on():
    """Shift + share 0 of bidirectional attention: the output at position i is the GPT's output at i-1 exactly
    (position 0 is predicted from the [MASK] slot before it)."""
    gpt = gpt_model()
    dllm = A.adapt(gpt).eval()
    x = torch.randint(0, 11, (2, 20))
    with torch.no_grad():
        g = gpt(x)
        d = dllm(x, attn_mask=A.annealed_mask(20, 0.0))
    assert d.shape == g.shape == (2, 20, 11)
    assert torch.allclose(d[:, 1:], g[:, :-1], atol=1e-5)
    assert dllm.config.shift and not dllm.config.causal and dllm.config.mask_id == 11


def test_a_gpt_with_learned_positions_adapts_one_place_on_too():
    """07 --no-rope: a learned position table. The shifted model reads one position more, so the GPT's rows move up
    by one (x[i] now stands at i+1) and it is still the GPT one place on under the causal mask."""
    gpt = tiny(causal=True, mask_token=False, rope=False)
    dllm = A.adapt(gpt).eval()
    x = torch.randint(0, 11, (2, 20))
    with torch.no_grad():
        assert torch.allclose(dllm(x, attn_mask=A.annealed_mask(20, 0.0))[:, 1:], gpt(x)[:, :-1], atol=1e-5)


def test_without_the_shift_position_i_is_read_at_i():
    gpt = gpt_model()
    dllm = A.adapt(gpt, shift=False).eval()
    x = torch.randint(0, 11, (1, 16))
    with torch.no_grad():
        assert torch.allclose(dllm(x, attn_mask=A.annealed_mask(16, 0.0)), gpt(x), atol=1e-5)


def test_the_annealed_mask_goes_from_causal_to_full():
    g = torch.Generator().manual_seed(0)
    causal = torch.ones(32, 32, dtype=torch.bool).tril()
    assert torch.equal(A.annealed_mask(32, 0.0, g), causal)
    assert A.annealed_mask(32, 1.0, g).all()
    half = A.annealed_mask(32, 0.5, g)
    assert (half | ~causal).all() and 0.35 < half[~causal].float().mean() < 0.65  # the past always, half the future
    objective = A.AdaptObjective(anneal_steps=100)
    shares = []
    for step in (0, 49, 99, 500):
        objective.step = step
        shares.append(objective.share())
    assert shares == [0.01, 0.5, 1.0, 1.0]
    objective.anneal_steps = 0
    assert objective.share() == 1.0  # no annealing: bidirectional from the first step


def test_every_sampler_and_likelihood_works_on_a_shifted_model():
    torch.manual_seed(0)
    m = A.adapt(gpt_model()).eval()
    canvas = torch.full((2, 24), 11)
    canvas[:, :3] = torch.tensor([1, 2, 3])
    s = D.Sampling(generator=torch.Generator().manual_seed(0))
    for x, _ in (D.generate(m, canvas, 6, s), F10.generate_fast(m, canvas, s, rule=F10.Rule("threshold", 0.5)),
                 F10.generate_fast(m, canvas, s, steps=8, block_size=8, cache="prefix"),
                 F10.generate_fast(m, canvas, s, steps=8, block_size=8, cache="dual"),
                 R.generate_remask(m, canvas, 8, s, R.Remask("cap", eta=0.2))[:2]):
        assert (x != 11).all() and torch.equal(x[:, :3], canvas[:, :3])
    w = torch.randint(0, 11, (3, 24))
    assert 0 < D.nelbo_bits(m, w, 11, K=4) < 20 and 0 < D.left_to_right_bits(m, w, 11) < 20


def test_the_kv_cache_of_a_shifted_model_is_exact_when_nothing_changes():
    m = A.adapt(gpt_model()).eval()
    x = torch.randint(0, 12, (2, 20))
    kv = T.KVCache(m.config, 2, 20)
    with torch.no_grad():
        full = m(x, cache=kv, start=0)
        part = m(x[:, 8:12], cache=kv, start=8)  # reads the token before position 8 from the cache
    assert torch.allclose(part, full[:, 8:12], atol=1e-5)


def test_train_adapts_a_gpt_run_records_the_shift_and_resumes(dllm_run, gpt_run, tmp_path):
    gpt_dir, corpus = gpt_run[0], dllm_run[1]
    out = tmp_path / "adapted"
    argv = ["train", *TINY, "--data", str(corpus), "--gpt", str(gpt_dir), "--out", str(out), "--steps", "6",
            "--eval-every", "3", "--anneal-steps", "4"]
    rows = A.main(argv)
    assert [r["step"] for r in rows] == [0, 3, 6]
    config = json.loads((out / "hf" / "config.json").read_text())
    assert config["shift"] is True and config["causal"] is False
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["args"]["anneal_steps"] == 4 and ckpt["trainer"] == "14_from_gpt.py train"
    rows = A.main(["train", "--out", str(out), "--resume", "--steps", "9"])
    assert rows[-1]["step"] == 9
    texts = lesson("06_generate").main(["--checkpoint", str(out), "--len", "16", "--steps", "4"])
    assert len(texts[0]) == 16


def test_a_gpt_of_another_vocabulary_is_refused(dllm_run, tmp_path, capsys):
    from conftest import cli_error

    tamil = tmp_path / "other.txt"
    tamil.write_text("xyz qrs\n" * 400)
    err = cli_error(A.main, ["train", *TINY, "--data", str(tamil), "--gpt", str(dllm_run[0] / "dllm"),
                             "--out", str(tmp_path / "r")], capsys)
    assert "holds a dllm model" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, needle", [(["train", "--anneal-steps", "-1"], "must be >= 0"),
                                          (["--steps", "0"], "must be >= 1")])
def test_bad_lesson_14_flags_are_one_line(argv, needle, capsys):
    from conftest import cli_error

    assert needle in cli_error(A.main, argv, capsys)
