"""05_train.py, 06_generate.py and 07_train_gpt.py on the tiny preset (seconds each)."""
import http.server
import signal
import socket
import subprocess
import sys
import threading

import pytest
import torch
from PIL import Image

from conftest import ROOT, lesson

train, gen, gpt = lesson("05_train"), lesson("06_generate"), lesson("07_train_gpt")
TINY = ["--preset", "tiny", "--dtype", "fp32", "--sample-len", "16", "--no-plot"]


def cli_error(main, argv, capsys):
    """Run a CLI main in-process; return its one stderr line after asserting exit status 2."""
    with pytest.raises(SystemExit) as e:
        train.run_cli(main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def dllm_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(["To be, or not to be, that is the question:",
                                 "Whether 'tis nobler in the mind to suffer"] * 120) + "\n", encoding="utf-8")
    rows = train.main(TINY + ["--data", str(corpus), "--out", str(d / "dllm"), "--steps", "60", "--plot"])
    return d, corpus, rows


@pytest.fixture(scope="module")
def gpt_run(dllm_run):
    """A tiny GPT trained through the shared loop on the same corpus as dllm_run."""
    d, corpus, _ = dllm_run
    rows = gpt.main(TINY + ["--data", str(corpus), "--out", str(d / "gpt"), "--steps", "60"])
    return d / "gpt", rows


def test_training_lowers_loss_and_writes_run(dllm_run):
    d, _, rows = dllm_run
    assert [r["step"] for r in rows] == [0, 20, 40, 60]
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 0.3  # untrained ~log2(V) + noise; trained clearly below
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    for name in ("latest.pt", "best.pt", "metrics.csv", "loss.png"):
        assert (d / "dllm" / name).exists(), name
    ckpt = train.load_checkpoint(d / "dllm" / "latest.pt", kind="dllm")
    assert ckpt["step"] == 60 and ckpt["tokenizer"]["kind"] == "char"
    assert {"optimizer", "scheduler", "scaler", "rng", "args", "config"} <= set(ckpt)
    assert not list((d / "dllm").glob("*.tmp"))


def test_generate_loads_run_and_infills(dllm_run, capsys):
    d, _, _ = dllm_run
    run = str(d / "dllm")
    texts = gen.main(["--checkpoint", run, "--steps", "8", "--len", "30", "--prompt", "To be", "--suffix", "be:",
                      "--num-samples", "3", "--seed", "1"])
    assert len(texts) == 3 and all(len(t) == 30 and t.startswith("To be") and t.endswith("be:") for t in texts)
    texts = gen.main(["--checkpoint", run, "--template", "To be, or ___ to be", "--temp", "0"])
    assert texts[0].startswith("To be, or ") and texts[0].endswith(" to be") and "_" not in texts[0]
    texts = gen.main(["--checkpoint", run, "--len", "24", "--threshold", "0.5", "--block-size", "8", "--cache", "dual"])
    assert len(texts[0]) == 24


def test_gif_is_an_animation(dllm_run, tmp_path):
    d, _, _ = dllm_run
    gif = tmp_path / "denoise.gif"
    gen.main(["--checkpoint", str(d / "dllm"), "--steps", "6", "--len", "24", "--gif", str(gif)])
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.is_animated and im.n_frames >= 7


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "0"], "--steps"), (["--temp", "-1"], "--temp"), (["--topk", "-2"], "--topk"),
    (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--threshold", "0"], "--threshold"),
    (["--threshold", "2"], "--threshold"), (["--prompt", "To be Ω"], "'Ω'"),
    (["--len", "10", "--prompt", "To be, or", "--suffix", " not"], "nothing left"),
    (["--len", "5000"], "context"), (["--template", "no gaps here"], "no '_'"),
])
def test_bad_sampler_input_exits_2(dllm_run, capsys, argv, needle):
    d, _, _ = dllm_run
    assert needle in cli_error(gen.main, ["--checkpoint", str(d / "dllm")] + argv, capsys)


def test_bad_checkpoints_exit_2(dllm_run, tmp_path, capsys):
    d, corpus, _ = dllm_run
    assert "no checkpoint" in cli_error(gen.main, ["--checkpoint", str(tmp_path / "nope.pt")], capsys)
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes((d / "dllm" / "latest.pt").read_bytes()[:1000])
    assert "not a readable checkpoint" in cli_error(gen.main, ["--checkpoint", str(bad)], capsys)
    gpt_dir = tmp_path / "gpt"
    gpt.main(TINY + ["--data", str(corpus), "--out", str(gpt_dir), "--steps", "2", "--eval-every", "2"])
    capsys.readouterr()
    assert "gpt model" in cli_error(gen.main, ["--checkpoint", str(gpt_dir)], capsys)
    assert "dllm model" in cli_error(gpt.main, ["--generate", "--checkpoint", str(d / "dllm")], capsys)


def test_bad_training_input_exits_2(tmp_path, capsys):
    assert "no such file" in cli_error(train.main, TINY + ["--data", str(tmp_path / "missing.txt")], capsys)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    assert "not UTF-8" in cli_error(train.main, TINY + ["--data", str(latin1)], capsys)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert "too short" in cli_error(train.main, TINY + ["--data", str(short), "--out", str(tmp_path / "o")], capsys)
    assert "divisible" in cli_error(train.main, TINY + ["--data", str(short), "--n-head", "3"], capsys)


def test_cli_prints_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "06_generate.py"), "--checkpoint", str(tmp_path / "x.pt")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no checkpoint" in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "05_train.py"), "--steps", "-3"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--steps" in r.stderr


def test_interrupt_saves_and_resume_reproduces(tiny_text, tmp_path):
    """Ctrl-C mid-run saves latest.pt at a step boundary; --resume then matches an uninterrupted run."""
    args = TINY + ["--data", str(tiny_text), "--steps", "40", "--eval-every", "10", "--sample-len", "0"]
    full = train.main(args + ["--out", str(tmp_path / "full")])

    class Interrupting(train.DiffusionObjective):
        calls = 0

        def loss(self, model, x, config):
            Interrupting.calls += 1
            if Interrupting.calls == 25:
                signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during step 25
            return super().loss(model, x, config)

    with pytest.raises(SystemExit) as e:
        train.main(args + ["--out", str(tmp_path / "cut")], objective=Interrupting())
    assert e.value.code == 130
    assert train.load_checkpoint(tmp_path / "cut" / "latest.pt")["step"] == 25
    resumed = train.main(args + ["--out", str(tmp_path / "cut"), "--resume"])
    assert [r["step"] for r in resumed] == [0, 10, 20, 30, 40]
    for a, b in zip(full[-2:], resumed[-2:]):  # the same weights at steps 30 and 40
        assert a["val_bpc"] == pytest.approx(b["val_bpc"], rel=1e-6)
    # train_loss is a mean over the interval since the previous row: steps 31-40 ran after the resume in both
    assert full[-1]["train_loss"] == pytest.approx(resumed[-1]["train_loss"], rel=1e-6)


# ---------------------------------------------------------------- download against a loopback server
@pytest.fixture
def http_server(tmp_path):
    (tmp_path / "input.txt").write_text("hello shakespeare\n" * 10)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **kw)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", (tmp_path / "input.txt").read_bytes()
    srv.shutdown()


def test_download_good_file(http_server, tmp_path):
    import hashlib

    url, body = http_server
    dest = tmp_path / "out" / "corpus.txt"
    train.download(f"{url}/input.txt", dest, hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body
    assert list(dest.parent.iterdir()) == [dest]


def test_download_wrong_checksum_leaves_nothing(http_server, tmp_path):
    url, _ = http_server
    dest = tmp_path / "out" / "corpus.txt"
    with pytest.raises(train.UsageError, match="checksum"):
        train.download(f"{url}/input.txt", dest, "0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_refused_and_404(http_server, tmp_path):
    url, _ = http_server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    dest = tmp_path / "corpus.txt"
    with pytest.raises(train.UsageError, match="cannot download"):
        train.download(f"http://127.0.0.1:{port}/input.txt", dest)
    with pytest.raises(train.UsageError, match="cannot download"):
        train.download(f"{url}/missing.txt", dest)
    assert not dest.exists()


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
    with pytest.raises(train.UsageError, match="holds a gpt model"):
        gpt.compare(gpt_dir, d / "dllm")  # arguments swapped


def test_generative_bpc_prefers_real_text(dllm_run, gpt_run):
    _, corpus, _ = dllm_run
    model, tok = train.model_from_checkpoint(train.load_checkpoint(gpt_run[0]))
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
        ("dLLM threshold 0.9 + dual cache, blocks 4", 50.0, 3.1), ("dLLM threshold 0.9 + dual cache, blocks 8", 90.0, 3.5)]]
    fast, ok = bench.targets(rows)  # the GPT row is never "fast dLLM decoding", however fast
    assert fast["name"].endswith("blocks 4") and ok is None
    assert {p.name for p in tmp_path.iterdir()} == {"decode.csv", "sampler_frontier.png", "decode_speed.png"}
