"""Lesson 11: block diffusion: the block-causal mask over [x_t ; x_0], the loss (B = 1 is a GPT's), the exact KV
cache, stop strings; training through 05's loop, generation, the demo."""
import pytest
import torch
import torch.nn.functional as F

from support import checkpoints

from conftest import TINY, cli_error, lesson, tiny

D, F10, B11 = lesson("04_diffusion"), lesson("10_fast_decoding"), lesson("11_block_diffusion")


def test_block_mask_hides_later_blocks_and_the_clean_copy_of_ones_own():
    L, bl = 12, 4
    m = B11.block_diffusion_mask(L, bl)  # (2L, 2L): [noisy ; clean] queries x [noisy ; clean] keys
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
    a = B11.block_logits(model, z, x0, bl)
    x1 = x0.clone()
    x1[:, 4:8] = (x1[:, 4:8] + 1) % 11  # block 1's clean copy
    b = B11.block_logits(model, z, x1, bl)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)  # blocks 0 and 1 cannot see it
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-4)  # block 2 conditions on it


def test_training_pass_equals_what_the_sampler_sees():
    """block_logits' one 2L pass gives, for every block, the logits of a plain pass over [clean before ; noisy]."""
    bl = 4
    model = tiny(block_len=bl)
    x0 = torch.randint(0, 11, (3, 16))
    z = torch.where(torch.rand(3, 16) < 0.6, 11, x0)
    both = B11.block_logits(model, z, x0, bl)
    for b in range(4):
        seq = torch.cat([x0[:, : b * bl], z[:, b * bl : (b + 1) * bl]], 1)
        assert torch.allclose(both[:, b * bl : (b + 1) * bl], model(seq)[:, -bl:], atol=1e-5)


def test_block_len_one_loss_is_the_gpt_cross_entropy_in_expectation():
    """B = 1: each token is masked with probability t and weighted 1/t, so the loss averages to the exact
    cross-entropy of each token given the clean ones before it: a GPT's loss, estimated with noise."""
    model = tiny(block_len=1)
    x0 = torch.randint(0, 11, (4, 16))
    exact = F.cross_entropy(B11.block_logits(model, torch.full_like(x0, 11), x0, 1).flatten(0, 1), x0.flatten())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        draws = torch.stack([B11.block_diffusion_loss(model, x0, 11, 1, generator=g) for _ in range(400)])
    assert draws.std() > 0.01  # a noisy estimator ...
    assert draws.mean().item() == pytest.approx(exact.item(), abs=4 * draws.std().item() / 20)  # ... of the CE
    t = D.sample_times(8, torch.Generator().manual_seed(0), eps=0.5, hi=1.0)
    assert ((t >= 0.5) & (t <= 1)).all()  # the clipped schedule's range


class Recording(torch.nn.Module):
    """Wraps a model and keeps the logits of every call (those of the block being written)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.logits = model, model.config, []

    def forward(self, idx, **kw):
        out = self.model(idx, **kw)
        self.logits.append(out[:, -min(out.size(1), self.config.block_len):].clone())
        return out


@pytest.mark.parametrize("rule", [dict(), dict(steps=2), dict(rule=F10.Rule("threshold", 0.2)),
                                  dict(rule=F10.Rule("eb", 1.0)), dict(order="random")])
def test_exact_cache_gives_the_same_output_as_no_cache(rule):
    """Committed blocks never change, so caching their keys and values is exact: the same logits at every call (up
    to floating point), hence the same greedy text in the same calls, also when the text outgrows the context (32)
    and the window slides. Greedy: two code paths agree on logits only up to rounding, never on a random draw."""
    model = tiny(block_len=4)
    prompt = torch.randint(0, 11, (2, 6))
    out = []
    for cache in (True, False):
        rec = Recording(model)
        kw = dict(rule)
        s = D.Sampling(temperature=0, order=kw.pop("order", "confidence"), generator=torch.Generator().manual_seed(1))
        x, calls = B11.generate_blocks(rec, prompt, 50, s, cache=cache, **kw)
        out.append((x, calls, rec.logits))
    (a, ca, la), (b, cb, lb) = out
    assert torch.equal(a, b) and ca == cb
    assert all(torch.allclose(u, v, atol=1e-4, rtol=1e-4) for u, v in zip(la, lb))
    assert a.shape == (2, 56) and (a != 11).all() and torch.equal(a[:, :6], prompt)
    if not rule:
        assert ca == 50  # one token per call: no extra call for caching
    elif "steps" in rule:
        assert ca == 13 * 2  # two calls for each of the 13 blocks from position 4 (the first holds 2 prompt tokens)


def test_stop_sequence_ends_generation_early():
    model = tiny(block_len=4)
    prompt = torch.randint(0, 11, (1, 4))
    full, calls = B11.generate_blocks(model, prompt, 40, D.Sampling(generator=torch.Generator().manual_seed(2)))
    stop = full[0, 9:11].tolist()  # a pair written in the third block (positions 8..11)
    x, c = B11.generate_blocks(model, prompt, 40, D.Sampling(generator=torch.Generator().manual_seed(2)),
                               stop=[stop])
    first = next(i for i in range(4, 44) if full[0, i : i + 2].tolist() == stop)
    end = (first + 1) // 4 * 4 + 4  # the block in which the stop pair is complete
    assert torch.equal(x, full[:, :end]) and c == end - 4 < calls


# ---------------------------------------------------------------- 11: generation from a trained run
def test_block_diffusion_checkpoint_prompts_writes_any_length_and_stops(bd_run, capsys):
    run = str(bd_run)
    args = ["generate", "--checkpoint", run, "--prompt", "To be", "--len", "90", "--seed", "1", "--num-samples", "2"]
    exact = B11.main(args)
    assert "90 model calls" in capsys.readouterr().err  # one character per call, the cache costs no extra call
    greedy = args + ["--temp", "0"]  # two code paths agree up to rounding: compare them greedily, never by a draw
    assert B11.main(greedy + ["--cache", "none"]) == B11.main(greedy)  # the exact cache changes nothing but the cost
    capsys.readouterr()
    assert all(len(t) == 95 and t.startswith("To be") for t in exact)  # longer than the context (32)
    few = B11.main(args + ["--steps", "12"])
    assert "23 model calls" in capsys.readouterr().err  # 23 blocks (the first holds the prompt's "e"), 1 call each
    assert all(len(t) == 95 for t in few)
    one = args[:-2]  # one sample: generation can end as soon as it writes the stop string
    text = B11.main(one)[0]
    stop = text[40:42]  # two characters it writes at position 40 with this seed
    capsys.readouterr()
    cut = B11.main(one + ["--stop", stop])[0]
    calls = int(capsys.readouterr().err.split(" model calls")[0].split()[-1])
    assert cut == text[: text.index(stop, 5) + 2] and calls < 90  # the same text, ended (and stopped) there
    B11.main(args + ["--entropy-budget", "1.0", "--show-steps"])
    capsys.readouterr()
    for argv, needle in [(["--suffix", "be:"], "cannot fill gaps"), (["--template", "To ___"], "cannot fill gaps"),
                         (["--block-size", "8"], "unrecognized arguments"), (["--cache", "dual"], "invalid choice"),
                         (["--threshold", "0.9", "--factor", "1"], "not allowed with argument")]:
        assert needle in cli_error(B11.main, ["generate", "--checkpoint", run] + argv, capsys)


# ---------------------------------------------------------------- 11: training through lesson 05's loop
def test_block_diffusion_trains_resumes_and_refuses_bad_flags(tiny_text, tmp_path, capsys):
    out = tmp_path / "bd"
    args = ["train"] + TINY + ["--data", str(tiny_text), "--out", str(out), "--eval-every", "10",
                                 "--block-diffusion", "4"]
    rows = B11.main(args + ["--steps", "30", "--mask-rate", "0.3", "0.8"])
    assert "model: block-diffusion, blocks of 4," in capsys.readouterr().out
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 0.3
    rows = B11.main(["train", "--out", str(out), "--resume", "--steps", "40", "--sample-len", "8", "--no-plot"])
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40]
    ckpt = checkpoints.load_checkpoint(out / "latest.pt")
    assert ckpt["config"]["block_len"] == 4 and ckpt["args"]["mask_rate"] == [0.3, 0.8]
    capsys.readouterr()
    assert "longer than the context" in cli_error(B11.main, ["train"] + TINY + ["--data", str(tiny_text), "--out",
                                                  str(tmp_path / "x"), "--block-diffusion", "64"], capsys)
    assert "--mask-rate" in cli_error(B11.main, ["train"] + TINY + ["--block-diffusion", "4", "--mask-rate", "0.8",
                                                                      "0.2"], capsys)
    assert not (tmp_path / "x").exists()


def test_default_out_names_the_block_size(tiny_text, tmp_path, monkeypatch):
    monkeypatch.setattr(B11, "ROOT", tmp_path)  # never the repository's checkpoints/
    B11.main(["train"] + TINY + ["--data", str(tiny_text), "--steps", "2", "--block-diffusion", "8"])
    assert (tmp_path / "checkpoints" / "dllm_bd8" / "latest.pt").exists()


def test_demo_shows_the_mask_and_an_exact_cache(capsys):
    """The demo (about 15 s): the mask grid, a tiny model fitted block by block, the same text with and without
    the cache in the same number of calls."""
    B11.main(["--train-steps", "300"])
    out = capsys.readouterr().out
    assert "noisy 4:    ....#### ####...." in out and "clean 7:    ........ ########" in out
    calls = [int(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("exact KV cache")]
    assert calls == [211, 211]  # one character per call after the 5-character prompt, cache or not
    assert "the same text both ways: True" in out
    assert "memorised: the five lines, exactly" in out
