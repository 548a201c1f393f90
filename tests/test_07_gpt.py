"""Lesson 07: the GPT through the same loop, its KV-cache sampler, the comparison, and bench/decode.py."""
import sys

import pytest
import torch

from support import checkpoints
from support.cli import UsageError

from conftest import ROOT, cli_error, lesson

gpt = lesson("07_train_gpt")


# ---------------------------------------------------------------- 07: the GPT
def test_gpt_kv_cache_equals_recomputation():
    tfm = lesson("03_transformer")
    torch.manual_seed(0)
    m = tfm.Transformer(tfm.build_config("tiny", vocab_size=11, causal=True, mask_token=False)).eval()
    prompt = torch.randint(0, 11, (2, 5))
    a = gpt.generate_gpt(m, prompt, 20, temperature=0, use_cache=True)
    b = gpt.generate_gpt(m, prompt, 20, temperature=0, use_cache=False)
    assert torch.equal(a, b)


def test_gpt_trains_through_shared_loop_and_compare(dllm_run, gpt_run, tmp_path, capsys):
    d, corpus, _ = dllm_run
    gpt_dir, rows = gpt_run
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 1.0
    texts = gpt.main(["--generate", "--checkpoint", str(gpt_dir), "--prompt", "To", "--tokens", "20"])
    assert texts[0].startswith("To") and len(texts[0]) == 22
    runs = gpt.compare(d / "dllm", gpt_dir, out=tmp_path / "compare.png", text=corpus.read_text(), n_windows=2)
    assert [r["kind"] for r in runs] == ["dllm", "gpt"] and (tmp_path / "compare.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "upper bound" in out and "same 2 validation windows" in out
    bits = runs[0]["same_windows"]
    assert len(bits) == 3 and all(0 < b < 6.5 for b in bits.values())  # log2(V) ~ 4.7 untrained; trained below
    assert bits["GPT (exact)"] < 3.0  # the tiny GPT has learned the two repeated lines
    with pytest.raises(UsageError, match="holds a gpt model"):
        gpt.compare(gpt_dir, d / "dllm")  # arguments swapped


def test_generative_bpc_prefers_real_text(dllm_run, gpt_run):
    _, corpus, _ = dllm_run
    model, tok, _ = checkpoints.load_model("gpt", gpt_run[0])
    text = corpus.read_text()[:300]
    g = torch.Generator().manual_seed(0)
    shuffled = "".join(text[i] for i in torch.randperm(len(text), generator=g).tolist())
    assert gpt.generative_bpc(model, tok, [text]) < gpt.generative_bpc(model, tok, [shuffled]) - 0.5
    assert gpt.distinct_ngrams(["abababab"]) < gpt.distinct_ngrams(["abcdefgh"])
    assert gpt.char_entropy(["aaaa"]) == 0 and gpt.char_entropy(["abab"]) == pytest.approx(1.0)


def test_decode_benchmark_runs_on_tiny_models(dllm_run, gpt_run, tmp_path, monkeypatch, capsys):
    """bench/decode.py end to end on the tiny runs, writing into a temporary folder (a smoke test, no timing)."""
    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("decode")
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    d, corpus, _ = dllm_run
    bench.main(["--dllm", str(d / "dllm"), "--gpt", str(gpt_run[0]), "--data", str(corpus), "--len", "16",
                "--num-samples", "2", "--only-table"])
    out = capsys.readouterr().out
    assert "| GPT + KV cache |" in out and "fast vs vanilla" in out and "dLLM vs GPT" in out
    rows = [{"name": n, "chars_per_s": c, "gen_bpc": b} for n, c, b in [
        ("GPT + KV cache", 1000.0, 2.0), ("dLLM vanilla confidence, 1 token/step", 10.0, 3.0),
        ("dLLM threshold 0.9 + dual cache, blocks 4", 50.0, 3.1),
        ("dLLM threshold 0.9 + dual cache, blocks 8", 90.0, 3.5)]]
    fast, ok = bench.targets(rows)  # the GPT row is never "fast dLLM decoding", however fast
    assert fast["name"].endswith("blocks 4") and ok is None
    assert {p.name for p in tmp_path.iterdir()} == {"decode.csv", "sampler_frontier.png", "decode_speed.png"}



@pytest.mark.parametrize("argv, needle", [
    (["--prompt", "To Ω"], "'Ω'"), (["--prompt", ""], "non-empty"), (["--temp", "-1"], "--temp"),
    (["--top-p", "2"], "--top-p"), (["--num-samples", "0"], "--num-samples"),
])
def test_bad_generate_input_exits_2(gpt_run, capsys, argv, needle):
    assert needle in cli_error(gpt.main, ["--generate", "--checkpoint", str(gpt_run[0])] + argv, capsys)
