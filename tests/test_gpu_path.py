"""The GPU path, checked on a CPU: the precision each card gets, resuming across precisions and devices,
gradient accumulation, no host syncs per training step or sampler call, out-of-memory as one line, tiny samples,
and the GPU check script (its CUDA-only rows skipped and said so)."""
import sys

import pytest
import torch

from support import checkpoints, runtime
from support.cli import run_cli

from conftest import ROOT, TINY, lesson

train, gpt, D = lesson("05_train"), lesson("07_train_gpt"), lesson("04_diffusion")


@pytest.mark.parametrize("capability, dtype", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_by_compute_capability(monkeypatch, capability, dtype):
    """Turing (sm_75: RTX 20xx, T4) gets fp16 with loss scaling, although is_bf16_supported() says yes there."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.resolve_dtype("auto", "cuda") == dtype
    assert runtime.resolve_dtype("fp32", "cuda") == "fp32"  # an explicit choice stands


def test_auto_precision_on_cpu_follows_its_bf16_units(monkeypatch):
    monkeypatch.setattr(runtime, "cpuinfo", lambda: "flags : avx2 avx512_bf16")
    assert runtime.resolve_dtype("auto", "cpu") == "bf16"
    monkeypatch.setattr(runtime, "cpuinfo", lambda: "flags : avx2")
    assert runtime.resolve_dtype("auto", "cpu") == "fp32"


def test_a_results_header_names_the_threads_on_a_cpu_and_the_card_on_cuda(monkeypatch):
    monkeypatch.setattr(runtime, "cpuinfo", lambda: "model name : Some CPU\nflags : avx2")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert runtime.setting("cpu").endswith(f"no bf16 matmul units, PyTorch {torch.__version__}, 3 threads")
    assert runtime.setting("cpu").startswith("Some CPU, ")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert runtime.setting("cpu").endswith(", 1 thread")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    assert runtime.setting("cuda") == f"NVIDIA H100 80GB HBM3, PyTorch {torch.__version__}, GPU"


def test_resume_a_fp32_run_in_fp16(tiny_text, tmp_path):
    """A fp32 (or bf16) run saves an empty GradScaler state; fp16 starts a fresh scaler instead of crashing."""
    out = tmp_path / "run"
    train.main(TINY + ["--data", str(tiny_text), "--out", str(out), "--steps", "4", "--eval-every", "2"])
    rows = train.main(["--out", str(out), "--resume", "--dtype", "fp16", "--steps", "8", "--no-plot"])
    assert [r["step"] for r in rows][-1] == 8 and rows[-1]["val_bpc"] < 7
    ckpt = checkpoints.load_checkpoint(out / "latest.pt")
    assert ckpt["scaler"] and ckpt["args"]["dtype"] == "fp16"  # now a real scaler state, resumable again


def test_resume_sets_fused_adamw_for_the_device_it_runs_on():
    m = torch.nn.Linear(4, 4)
    saved = torch.optim.AdamW(m.parameters())
    state = saved.state_dict()
    state["param_groups"][0]["fused"] = True  # as a run started on CUDA saves it
    ckpt = {"model": m.state_dict(), "optimizer": state, "scheduler": {}, "scaler": {}, "step": 3, "elapsed_s": 1.0,
            "best_val_bpc": 2.0, "rng": {"torch": torch.get_rng_state(), "data": torch.Generator().get_state()}}
    opt = torch.optim.AdamW(m.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ckpt["scheduler"] = sched.state_dict()
    checkpoints.restore_training_state(ckpt, m, opt, sched, torch.amp.GradScaler("cpu", enabled=False),
                                       torch.Generator(), device="cpu")
    assert opt.param_groups[0]["fused"] is False  # CPU now; "cuda" would set True


def test_grad_accum_gives_the_update_of_the_whole_batch(tiny_text, tmp_path):
    """The GPT's loss is deterministic: batch 16 in one pass and 2 x 8 accumulated make the same first step."""
    base = TINY + ["--data", str(tiny_text), "--steps", "1", "--eval-every", "1", "--sample-len", "0"]
    gpt.main(base + ["--out", str(tmp_path / "one"), "--batch-size", "16"])
    gpt.main(base + ["--out", str(tmp_path / "two"), "--batch-size", "8", "--grad-accum", "2"])
    a, b = (checkpoints.load_checkpoint(tmp_path / r / "latest.pt")["model"] for r in ("one", "two"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    gpt.main(base + ["--out", str(tmp_path / "half"), "--batch-size", "8"])  # half the batch: another update
    c = checkpoints.load_checkpoint(tmp_path / "half" / "latest.pt")["model"]
    assert not torch.allclose(a["tok_emb.weight"], c["tok_emb.weight"], atol=1e-6, rtol=1e-5)


SYNCS = ("item", "cpu", "tolist", "__bool__", "__float__", "__int__")


def count_host_syncs(monkeypatch, skip=()):
    """Patch the tensor methods that copy to the host; record calls made from the repository's own code (not
    from PyTorch's internals) while no function in `skip` is running."""
    calls, paused = [], [0]
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _original=original, _name=name, **k):
            frame = sys._getframe(1)
            if not paused[0] and str(ROOT) in frame.f_code.co_filename and "/tests/" not in frame.f_code.co_filename:
                calls.append(f"{_name} at {frame.f_code.co_filename}:{frame.f_lineno}")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for module, fn in skip:
        original = getattr(module, fn)

        def paused_call(*a, _original=original, **k):
            paused[0] += 1
            try:
                return _original(*a, **k)
            finally:
                paused[0] -= 1

        monkeypatch.setattr(module, fn, paused_call)
    return calls


def test_no_host_sync_in_the_training_steps(tiny_text, tmp_path, monkeypatch):
    """Steps between evaluations read nothing back from the device: the loss is summed there and read at the
    evaluation, which may sync (and does, so its tokens/s is true)."""
    calls = count_host_syncs(monkeypatch, skip=[(train, "evaluate"), (train, "setup"), (checkpoints, "finish_run")])
    train.main(TINY + ["--data", str(tiny_text), "--out", str(tmp_path / "r"), "--steps", "12", "--eval-every", "6",
                       "--grad-accum", "2"])
    assert calls == []


def test_the_sampler_loop_has_no_host_sync_unless_a_callback_asks(monkeypatch):
    torch.manual_seed(0)
    m = lesson("03_transformer").Transformer(lesson("03_transformer").build_config("tiny", vocab_size=11)).eval()
    calls = count_host_syncs(monkeypatch)
    per_steps = []
    for steps in (4, 16):
        calls.clear()
        D.generate(m, torch.full((2, 16), 11), steps, D.Sampling(generator=torch.Generator().manual_seed(0)))
        per_steps.append(len(calls))
    assert per_steps[0] == per_steps[1] <= 2  # a count before the loop, none per model call


def test_out_of_memory_in_a_step_is_one_line(tiny_text, tmp_path, capsys):
    class Hungry(train.DiffusionObjective):
        def loss(self, model, x, config):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(lambda a: train.main(a, objective=Hungry), TINY + ["--data", str(tiny_text), "--out",
                                                                      str(tmp_path / "r")])
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar's last redraw
    assert e.value.code == 2 and "Traceback" not in err and err.count("error:") == 1
    assert "error: out of memory" in last
    assert "--batch-size 8 --grad-accum 1" in last and "halve --batch-size and double --grad-accum" in last


@pytest.mark.parametrize("sample_len", ["0", "1"])
def test_tiny_sample_lengths_train_and_evaluate(tiny_text, tmp_path, sample_len):
    for lesson_main in (train.main, gpt.main):
        rows = lesson_main(TINY + ["--data", str(tiny_text), "--out", str(tmp_path / f"r{id(lesson_main)}"),
                                   "--steps", "2", "--eval-every", "1", "--sample-len", sample_len])
        assert [r["step"] for r in rows] == [0, 1, 2]


def test_gpu_check_runs_on_a_cpu(capsys):
    """The check script on CPU, tiny preset: every row runs, the CUDA-only rows are skipped and say so."""
    sys.path.insert(0, str(ROOT / "bench"))
    rows = lesson("gpu_check").main(["--preset", "tiny", "--steps", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert all(status == "ok" for _, status, _, _ in rows), rows
    names = " ".join(r[0] for r in rows)
    for needle in ("fp32", "resume", "--grad-accum", "GPT", "block diffusion", "06:", "10:", "11:", "07:", "torchrun"):
        assert needle in names
    assert "skipped: train dLLM, fp16" in out and "skipped: --compile" in out


def test_gpu_check_stops_on_ctrl_c_in_a_lesson_and_reports_a_failed_row_otherwise():
    """A lesson stopped by Ctrl-C saves its work and exits 130: the check stops with it (it used to record a
    failed row and go on to the next, so one Ctrl-C never stopped it); any other exit is a failed row."""
    sys.path.insert(0, str(ROOT / "bench"))
    check = lesson("gpu_check")

    def exits(code):
        def fn():
            print("error: the lesson's own line")
            sys.exit(code)
        return fn

    with pytest.raises(KeyboardInterrupt):
        check.run_row("train", exits(130), "cpu")
    name, status, _, _ = check.run_row("train", exits(2), "cpu")
    assert name == "train" and status == "FAILED: error: the lesson's own line"
