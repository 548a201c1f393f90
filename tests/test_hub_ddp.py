"""Hub export/import, the upstream (legacy) checkpoint layout, and 2-process DDP training on CPU."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, lesson

T, train, gen = lesson("03_transformer"), lesson("05_train"), lesson("06_generate")
TINY = ["--preset", "tiny", "--dtype", "fp32", "--sample-len", "16", "--no-plot"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hub")
    corpus = d / "c.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    train.main(TINY + ["--data", str(corpus), "--out", str(d / "run"), "--steps", "20", "--eval-every", "10"])
    return d / "run"


def test_export_is_refreshed_and_loads_with_identical_logits(run):
    hf = run / "hf"
    assert {p.name for p in hf.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert "validation bits/char" in (hf / "README.md").read_text()
    a, tok_a = train.model_from_checkpoint(train.load_checkpoint(run / "best.pt"))
    b, tok_b = train.model_from_checkpoint(train.load_hf(hf))
    idx = torch.randint(0, a.config.n_input_tokens, (2, 16))
    assert torch.equal(a(idx), b(idx)) and tok_a.tokens == tok_b.tokens
    assert b.lm_head.weight is b.tok_emb.weight  # still tied after the round trip


def fill_hub_cache(cache, repo, files):
    """The Hub cache layout: models--owner--name/{refs/main, snapshots/<commit>/<files>}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    for name, data in files.items():
        (snap / name).write_bytes(data)


def run_offline(cache, *args):
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "06_generate.py"), *args], capture_output=True, text=True, env=env)


def test_from_hub_offline_from_cache(run, tmp_path):
    fill_hub_cache(tmp_path, "someone/tiny", {p.name: p.read_bytes() for p in (run / "hf").iterdir()})
    r = run_offline(tmp_path, "--from-hub", "someone/tiny", "--len", "20", "--steps", "5", "--prompt", "To be")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("To be") and len(r.stdout.rstrip("\n")) == 20
    r = run_offline(tmp_path, "--from-hub", "someone/missing")
    assert r.returncode == 2 and "cannot load someone/missing from the Hub" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") <= 1


def legacy_state(seed=0, V=65, C=32, n_layer=2, T_=16):
    """A synthetic state dict in the exact layout of the upstream dllm_step50000.pt (smaller sizes)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.1
    sd = {"token_emb.weight": r(V + 1, C), "pos_emb.weight": r(T_, C), "norm.weight": 1 + r(C), "norm.bias": r(C),
          "head.weight": r(V, C)}
    for i in range(n_layer):
        p = f"blocks.{i}."
        sd.update({p + "norm1.weight": 1 + r(C), p + "norm1.bias": r(C), p + "attn.qkv.weight": r(3 * C, C),
                   p + "attn.out.weight": r(C, C), p + "norm2.weight": 1 + r(C), p + "norm2.bias": r(C),
                   p + "ff.net.0.weight": r(4 * C, C), p + "ff.net.0.bias": r(4 * C),
                   p + "ff.net.2.weight": r(C, 4 * C), p + "ff.net.2.bias": r(C)})
    return {"step": 50000, "model": sd, "optimizer": {}, "vocab_size": V, "hidden": C, "n_layers": n_layer,
            "n_heads": 2, "seq_len": T_}


def legacy_forward(sd, idx, n_layer, n_head):
    """The upstream model written out independently: y = x + FF(LN2(x + Attn(LN1(x))))."""
    F = torch.nn.functional
    C = sd["hidden"] if "hidden" in sd else sd["token_emb.weight"].size(1)
    x = sd["token_emb.weight"][idx] + sd["pos_emb.weight"][: idx.size(1)]
    B, L, _ = x.shape
    for i in range(n_layer):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (C,), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        q, k, v = (h @ sd[p + "attn.qkv.weight"].T).split(C, -1)
        q, k, v = (t.view(B, L, n_head, -1).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, C) @ sd[p + "attn.out.weight"].T
        h2 = F.layer_norm(x + a, (C,), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        ff = F.gelu(h2 @ sd[p + "ff.net.0.weight"].T + sd[p + "ff.net.0.bias"]) @ sd[p + "ff.net.2.weight"].T
        x = x + ff + sd[p + "ff.net.2.bias"]
    x = F.layer_norm(x, (C,), sd["norm.weight"], sd["norm.bias"])
    return x @ sd["head.weight"].T


def test_legacy_checkpoint_converts_and_generates(tmp_path, capsys):
    ckpt = legacy_state()
    path = tmp_path / "dllm_step50000.pt"
    torch.save(ckpt, path)
    loaded = train.load_checkpoint(path, kind="dllm")  # weights_only=True inside
    assert "legacy_residual=True" in capsys.readouterr().err
    model, tok = train.model_from_checkpoint(loaded)
    assert model.config.legacy_residual and not model.config.rope and model.config.block_size == 16
    assert tok.vocab_size == 65 and tok.tokens == sorted(tok.tokens)
    idx = torch.randint(0, 66, (2, 16))
    assert torch.allclose(model(idx), legacy_forward(ckpt["model"], idx, 2, 2), atol=1e-5)
    fill_hub_cache(tmp_path / "cache", "sutharsan311/tiny-dllm", {path.name: path.read_bytes()})
    r = run_offline(tmp_path / "cache", "--from-hub", "sutharsan311/tiny-dllm", "--filename", path.name,
                    "--steps", "4", "--prompt", "ROMEO:")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:") and len(r.stdout.rstrip("\n")) == 16


def worker_errors(stderr):
    """What the workers themselves said: torchrun's own summary only names the rank that died."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.startswith("[rank") or any(w in line for w in ("Error", "error:", "terminate", "Signal"))]
    return "\n".join(lines[-40:]) or stderr[-2000:]


def test_ddp_two_cpu_processes(run, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "05_train.py"), *TINY, "--data", str(corpus), "--out", str(tmp_path / "ddp"),
           "--steps", "10", "--eval-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, worker_errors(r.stderr)
    assert "all 2 ranks hold identical weights" in r.stdout and "2 processes (DDP)" in r.stdout
    ckpt = train.load_checkpoint(tmp_path / "ddp" / "latest.pt")
    assert ckpt["step"] == 10
    rows = train.read_metrics(tmp_path / "ddp")
    assert [r_["step"] for r_ in rows] == [0, 5, 10]  # rank 0 alone wrote them, once each
    r = subprocess.run(cmd[:-2] + ["--steps", "14", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, worker_errors(r.stderr)
    assert train.load_checkpoint(tmp_path / "ddp" / "latest.pt")["step"] == 14
