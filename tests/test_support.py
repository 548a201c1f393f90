"""The support package: downloads, atomic files, the command line, metrics, the Hub (export, load, the upstream
checkpoint) and 2-process DDP training on CPU."""
import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import torch

from support import checkpoints, metrics
from support.cli import ArgumentParser, UsageError
from support.files import atomic_write, data_folder, download, read_text

from conftest import ROOT, TINY, cli_error, lesson


# ---------------------------------------------------------------- files
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "a" / "f.txt"
    atomic_write(path, lambda tmp: open(tmp, "w").write("old"))

    def fails_halfway(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fails_halfway)
    assert path.read_text() == "old" and [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_a_results_folder_is_written_again_only_where_a_command_here_made_its_files(tmp_path):
    """check_out_dir: a file a bench wrote (its first lines say so; an image carries MARK) may be replaced; the
    learner's own file of the same name, or a folder there, is refused in one line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from support.files import check_out_dir, save_figure

    outputs = {"t.txt": "bench/t.py", "t.csv": "model,", "t.png": None}
    check_out_dir(tmp_path / "new", outputs)  # nothing there yet
    (tmp_path / "t.txt").write_text("Lesson 17 on test.txt\ncommand: python bench/t.py --x 1\n")
    (tmp_path / "t.csv").write_text("model,passes\nshipped,0\n")
    fig = plt.figure()
    save_figure(fig, tmp_path / "t.png")
    plt.close(fig)
    check_out_dir(tmp_path, outputs)  # all made here: written again
    for name, mine in (("t.txt", b"my notes\n"), ("t.csv", b"a,b\n"), ("t.png", b"\x89PNG\r\n\x1a\n mine")):
        keep = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(mine)
        with pytest.raises(UsageError, match=f"already holds {name}, which a command here did not make"):
            check_out_dir(tmp_path, outputs)
        (tmp_path / name).write_bytes(keep)
    (tmp_path / "folder" / "t.csv").mkdir(parents=True)
    with pytest.raises(UsageError, match="t.csv in it is a directory"):
        check_out_dir(tmp_path / "folder", outputs)


def test_read_text_errors_are_usage_errors(tmp_path):
    for path, needle in [(tmp_path / "missing", "no such file"), (tmp_path, "directory")]:
        with pytest.raises(UsageError, match=needle):
            read_text(path)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UsageError, match="empty"):
        read_text(tmp_path / "empty.txt")


def test_a_data_folder_needs_both_splits_and_says_how_to_make_them(tmp_path):
    (tmp_path / "train.txt").write_text("x\n")
    with pytest.raises(UsageError, match=r"no maps in .*: make them with `python robot_maps.py --out "):
        data_folder(tmp_path, "maps", "robot_maps.py")  # val.txt is missing
    with pytest.raises(UsageError, match="train.txt: a file, not a folder"):
        data_folder(tmp_path / "train.txt", "maps", "robot_maps.py")
    (tmp_path / "val.txt").write_text("x\n")
    assert data_folder(str(tmp_path), "maps", "robot_maps.py") == tmp_path


# ---------------------------------------------------------------- downloads against a loopback server
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
    download(f"{url}/input.txt", dest, hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body
    assert list(dest.parent.iterdir()) == [dest]


def test_download_wrong_checksum_leaves_nothing(http_server, tmp_path):
    url, _ = http_server
    dest = tmp_path / "out" / "corpus.txt"
    with pytest.raises(UsageError, match="checksum"):
        download(f"{url}/input.txt", dest, "0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_refused_and_404(http_server, tmp_path):
    url, _ = http_server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    dest = tmp_path / "corpus.txt"
    with pytest.raises(UsageError, match="cannot download"):
        download(f"http://127.0.0.1:{port}/input.txt", dest)
    with pytest.raises(UsageError, match="cannot download"):
        download(f"{url}/missing.txt", dest)
    assert not dest.exists()


# ---------------------------------------------------------------- metrics
def test_metrics_roundtrip_keeps_integer_steps(tmp_path):
    rows = [{"step": s, "train_loss": 1.0 / (s + 1), "val_bpc": 2.0, "lr": 1e-3, "tokens_per_s": 10.0,
             "elapsed_s": float(s)} for s in (0, 10, 20)]
    metrics.write_metrics(tmp_path, rows)
    back = metrics.read_metrics(tmp_path)
    assert [r["step"] for r in back] == [0, 10, 20] and all(type(r["step"]) is int for r in back)
    metrics.plot_metrics(tmp_path)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_loss_figure_draws_the_train_loss_in_the_log_lines_unit(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    drawn, plot = {}, Axes.plot

    def record(self, x, y, **kw):
        drawn[kw["label"]] = list(y)
        return plot(self, x, y, **kw)

    monkeypatch.setattr(Axes, "plot", record)
    rows = [{"step": s, "train_loss": math.log(2) * 4.0, "val_bpc": 3.0, "lr": 1e-3, "tokens_per_s": 1.0,
             "elapsed_s": 0.0} for s in (0, 10)]
    metrics.write_metrics(tmp_path, rows)
    metrics.plot_metrics(tmp_path, unit="bits/char", chars_per_token=2.0)  # 4 bits a token, 2 chars a token
    assert drawn == {"train loss": [pytest.approx(2.0)] * 2, "validation bits/char": [3.0, 3.0]}


# ---------------------------------------------------------------- the Hub
def test_export_holds_the_hub_layout_and_loads_with_identical_logits(dllm_run):
    run = dllm_run[0] / "dllm"
    hf = run / "hf"
    assert {p.name for p in hf.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json", "README.md"}
    card = (hf / "README.md").read_text()
    assert "validation bits/char" in card and "library_name: pytorch" in card
    assert "github.com" not in card  # the card links to nothing it cannot name
    assert json.loads((hf / "tokenizer.json").read_text())["kind"] == "char"
    gen = lesson("06_generate")  # support's loader, with lesson 06's model builder and tokenizers passed in
    a, tok_a, info_a = gen.load(run / "best.pt", "dllm")
    b, tok_b, info_b = gen.load(hf, "dllm")
    idx = torch.randint(0, a.config.n_input_tokens, (2, 16))
    assert torch.equal(a(idx), b(idx)) and tok_a.tokens == tok_b.tokens
    assert b.lm_head.weight is b.tok_emb.weight  # still tied after the round trip
    assert info_a["step"] == 60 and info_b["kind"] == "dllm"


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
    cmd = [sys.executable, str(ROOT / "06_generate.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_from_hub_offline_from_cache(dllm_run, tmp_path):
    run = dllm_run[0] / "dllm"
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
    loaded = checkpoints.load_checkpoint(path, kind="dllm")  # weights_only=True inside
    assert "converted an upstream tiny-dllm checkpoint" in capsys.readouterr().err
    gen = lesson("06_generate")
    model, tok, info = gen.load(path, "dllm")
    assert loaded["config"]["rope"] is False and info["objective"] == "dllm"
    assert {type(b).__name__ for b in model.blocks} == {"LegacyBlock"}
    assert not model.config.rope and model.config.block_size == 16
    assert tok.vocab_size == 65 and tok.tokens == sorted(tok.tokens)
    idx = torch.randint(0, 66, (2, 16))
    assert torch.allclose(model(idx), legacy_forward(ckpt["model"], idx, 2, 2), atol=1e-5)
    fill_hub_cache(tmp_path / "cache", "sutharsan311/tiny-dllm", {path.name: path.read_bytes()})
    r = run_offline(tmp_path / "cache", "--from-hub", "sutharsan311/tiny-dllm", "--filename", path.name,
                    "--steps", "4", "--prompt", "ROMEO:")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO:") and len(r.stdout.rstrip("\n")) == 16


# ---------------------------------------------------------------- DDP
def worker_errors(stderr):
    """What the workers themselves said: torchrun's own summary only names the rank that died."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.startswith("[rank") or any(w in line for w in ("Error", "error:", "terminate", "Signal"))]
    return "\n".join(lines[-40:]) or stderr[-2000:]


def test_ddp_two_cpu_processes(tmp_path):
    """2 processes on gloo through 05's loop: identical weights at the end, rank 0 alone writes, --resume works,
    and each rank draws its own noise levels and masks (before and after the resume)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    probe = tmp_path / "probe"
    probe.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ddp_probe.py"), *TINY, "--data", str(corpus), "--out", str(tmp_path / "ddp"),
           "--steps", "10", "--eval-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PROBE_DIR": str(probe)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, worker_errors(r.stderr)
    assert "all 2 ranks hold identical weights" in r.stdout and "2 processes (DDP)" in r.stdout
    ckpt = checkpoints.load_checkpoint(tmp_path / "ddp" / "latest.pt")
    assert ckpt["step"] == 10
    rows = metrics.read_metrics(tmp_path / "ddp")
    assert [r_["step"] for r_ in rows] == [0, 5, 10]  # rank 0 alone wrote them, once each
    r = subprocess.run(cmd[:-4] + ["--steps", "14", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, worker_errors(r.stderr)
    assert checkpoints.load_checkpoint(tmp_path / "ddp" / "latest.pt")["step"] == 14
    draws = {p.name: p.read_text() for p in probe.iterdir()}
    assert len(draws) == 4  # 2 ranks x 2 launches
    for launch in ({n for n in draws if n.startswith("t_rank0")}, {n for n in draws if n.startswith("t_rank1")}):
        assert len(launch) == 2
    assert len(set(draws.values())) == 4, draws  # no two ranks (or launches) draw the same noise


def test_writes_under_a_file_are_one_line_and_leave_nothing(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write"):
        atomic_write(blocker / "sub" / "out.png", lambda tmp: None)
    (tmp_path / "adir").mkdir()
    with pytest.raises(UsageError, match="cannot write"):
        atomic_write(tmp_path / "adir", lambda tmp: open(tmp, "w").close())  # a folder has the name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"] and not any((tmp_path / "adir").iterdir())
    train = lesson("05_train")
    for out in (blocker, blocker / "run"):
        assert "is a file, not a folder" in cli_error(train.main, TINY + ["--out", str(out)], capsys)
    assert blocker.read_text() == "x"


def test_help_shows_every_default_that_is_a_value_zero_included():
    p = ArgumentParser()
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--beta", type=float, default=0.0, help="KL weight")
    p.add_argument("--plot", action="store_true", help="draw it")
    p.add_argument("--out", default=None, help="where")
    text = " ".join(p.format_help().split())
    assert "random seed (default: 0)" in text and "KL weight (default: 0.0)" in text  # 0 == False, yet shown
    assert "draw it (default" not in text and "where (default" not in text


def test_a_ctrl_c_waits_for_the_trainers_to_save_before_it_goes_on_up(tmp_path):
    """bench/'s sweeps run trainers as subprocesses in their process group: a terminal's Ctrl-C reaches each, and
    each takes a moment to save. saved_on_ctrl_c lets the sweep stop only when they have (it used to stop at
    once, the trainers still writing after the prompt came back)."""
    from support.runs import saved_on_ctrl_c

    saved = tmp_path / "saved"
    child = ("import pathlib, signal, sys, time\n"
             "def save(*_):\n"
             "    time.sleep(1)  # finishing its step\n"
             f"    pathlib.Path({str(saved)!r}).write_text('latest'); sys.exit(130)\n"
             "signal.signal(signal.SIGINT, save)\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    with pytest.raises(KeyboardInterrupt):
        with saved_on_ctrl_c([proc]):
            proc.send_signal(signal.SIGINT)  # the terminal's Ctrl-C, as the trainer gets it
            raise KeyboardInterrupt  # and as the sweep gets it
    assert proc.returncode == 130 and saved.read_text() == "latest"


def test_a_trainer_stopped_by_sigterm_names_sigterm_as_the_way_to_stop_at_once():
    """`kill PID` (SIGTERM) asks a trainer to save and stop after its step, as Ctrl-C does; the line it logs
    names the signal it got (it used to say "Ctrl-C again" to a run in the background, which has no terminal)."""
    from support.runtime import StopOnSignal

    for sig, again in ((signal.SIGTERM, "SIGTERM again"), (signal.SIGINT, "Ctrl-C again")):
        lines = []
        with StopOnSignal(lines.append) as stop:
            signal.raise_signal(sig)
        assert stop.requested and lines == [f"stopping after this step ({again} to stop at once)"]


def test_an_archived_log_keeps_its_lines_and_drops_every_progress_bar(tmp_path):
    """archive_run copies a run's log for bench/results without tqdm's bars, whatever the bar's name (one with a
    hyphen, 'paths-dllm' or 'block-diffusion', used to leave 'paths-' behind on a line of its own per update)."""
    from support.runs import archive_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,val_bpc\n0,9.5\n")
    bars = "".join(f"\r{name}:  {p}%|▌         | {p}/100 [00:0{p % 10}<00:10,  1.50it/s]"
                   for name in ("dllm", "paths-dllm", "block-diffusion") for p in (0, 5))
    (run / "train.log").write_text(f"model: 0.8M\n{bars}\rstep    300 | val 9.5\n{bars}\ndone: 300 steps\n")
    archive_run(run, tmp_path / "kept")
    assert (tmp_path / "kept" / "train.log").read_text() == "model: 0.8M\nstep    300 | val 9.5\ndone: 300 steps\n"
    # a log given by the caller (several sessions' output put together) wins over the run's own, bars dropped
    archive_run(run, tmp_path / "joined", **{"train.log": f"# resumed\n{bars}\rstep    600 | val 8.1\n"})
    assert (tmp_path / "joined" / "train.log").read_text() == "# resumed\nstep    600 | val 8.1\n"


def test_the_sampling_bar_appears_while_a_long_first_call_runs_and_never_after_it_closes():
    """06 --num-samples 1024 on a CPU: tqdm's own delay drew nothing until the first call ended.
    SamplingBar draws 0/N once its delay has passed with no update, and clears it when it closes
    (Ctrl-C in the first call: the line that says so starts on a clean line); a bar closed sooner
    draws nothing, and nothing after it closes."""
    import io
    import time

    from support.runtime import SamplingBar

    slow, quick = io.StringIO(), io.StringIO()
    with SamplingBar(50, "call", delay=0.05, file=slow):
        time.sleep(0.5)  # the first call, still running
        drawn = slow.getvalue()
    with SamplingBar(50, "call", delay=0.3, file=quick) as bar:
        bar.update(50)
    time.sleep(0.5)
    assert "0/50" in drawn and "sampling" in drawn
    assert slow.getvalue().endswith("\r") and len(slow.getvalue()) > len(drawn)  # cleared
    assert quick.getvalue() == ""
