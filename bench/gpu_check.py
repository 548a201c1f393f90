"""Check the whole GPU path in about two minutes: every precision the card supports, --compile, resuming across
precisions, block diffusion, every sampler, a one-process torchrun; peak memory and speed of each. One table.

    python bench/gpu_check.py                       # CUDA: the gpu preset, 40 steps per training row
    python bench/gpu_check.py --preset tiny         # any machine, seconds; on a CPU the CUDA-only rows say so

Every row runs the lessons' own commands (05, 06, 07, 10, 11) in-process, into a temporary folder that is
deleted at the end: nothing is written to checkpoints/. A row that fails prints its one-line error and the
check goes on; the exit status is 1 if any row failed.
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import runtime
from support.cli import ArgumentParser, UsageError, number, run_cli

ROOT = Path(__file__).resolve().parent.parent


def peak_gib(device):
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device == "cuda" else "-"


def run_row(name, fn, device, quiet=True):
    """(name, status, speed, peak memory): fn() -> a speed string. Output of the lessons is swallowed."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out) if quiet else contextlib.nullcontext():
            speed = fn()
        return name, "ok", speed, peak_gib(device)
    except (UsageError, RuntimeError, ValueError, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code == 130:  # Ctrl-C in a lesson, its work saved
            raise KeyboardInterrupt from None  # the check stops too (not a failed row, then the next)
        lines = [line for line in out.getvalue().splitlines() if "error" in line.lower()]
        why = lines[-1] if lines else f"{type(e).__name__}: {e}"
        return name, f"FAILED: {why[:150]}", "-", peak_gib(device)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--preset", choices=["tiny", "cpu", "gpu"], help="model size (default: gpu on CUDA, else tiny)")
    p.add_argument("--steps", type=number(int, lambda v: v >= 2, ">= 2 (a resume needs a first half)", "steps"),
                   default=40, help="optimizer steps per training row")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="where to check")
    args = p.parse_args(argv)
    device = runtime.resolve_device(args.device)
    preset = args.preset or ("gpu" if device == "cuda" else "tiny")
    cuda = device == "cuda"
    native = {"fp32", runtime.half_dtype(device)} | ({"fp16"} if cuda else set())  # fp16 on CUDA only
    print(f"{runtime.setting(device)}; preset {preset}, {args.steps} steps per row"
          + (f"; compute capability {'.'.join(map(str, torch.cuda.get_device_capability()))}" if cuda else ""))
    train, gpt = import_module("05_train"), import_module("07_train_gpt")
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as d:
        common = ["--preset", preset, "--device", device, "--sample-len", "16", "--no-plot",
                  "--eval-every", str(args.steps), "--eval-windows", "4", "--eval-k", "4"]

        def trainer(main_, out, *extra, steps=args.steps):
            def fn():
                t0 = time.perf_counter()
                r = main_([*common, "--out", str(Path(d) / out), "--steps", str(steps), *extra])
                return f"{r[-1]['tokens_per_s']:,.0f} tok/s ({time.perf_counter() - t0:.0f} s)"
            return fn

        for dtype in ("fp32", "bf16", "fp16"):
            if dtype in native:
                row = run_row(f"train dLLM, {dtype}", trainer(train.main, f"d_{dtype}", "--dtype", dtype), device)
                rows.append(row)
            else:
                skipped.append(f"train dLLM, {dtype}: not native on {device}")
        half = runtime.half_dtype(device)
        if cuda:
            rows.append(run_row(f"train dLLM, {half}, --compile", trainer(train.main, "compiled", "--dtype", half,
                                                                          "--compile"), device))
        else:
            skipped.append("--compile: CUDA only here (compiling on a CPU takes minutes)")
        other = "fp16" if cuda and half == "bf16" else "bf16" if cuda else "fp32"
        first, second = (half, other) if cuda else ("fp32", half)

        def resume():  # half the steps in one precision, the rest in the other
            trainer(train.main, "resumed", "--dtype", first, steps=args.steps // 2)()
            rows_ = train.main(["--out", str(Path(d) / "resumed"), "--resume", "--dtype", second, "--device", device,
                                "--steps", str(args.steps), "--no-plot"])
            return f"{rows_[-1]['tokens_per_s']:,.0f} tok/s after the resume"
        rows.append(run_row(f"resume: a {first} run continued in {second}", resume, device))
        rows.append(run_row("train dLLM, --grad-accum 2", trainer(train.main, "accum", "--grad-accum", "2"), device))
        rows.append(run_row("train GPT", trainer(gpt.main, "gpt"), device))
        bd_main = import_module("11_block_diffusion").main
        rows.append(run_row("train block diffusion, blocks of 4", trainer(
            lambda a: bd_main(["train", *a]), "bd4", "--block-diffusion", "4"), device))

        dllm, bd = str(Path(d) / f"d_{half if half in native else 'fp32'}"), str(Path(d) / "bd4")
        n = min(64, import_module("03_transformer").PRESETS[preset]["block_size"])  # characters per sample

        def sampler(main_, *argv):
            def fn():
                t0 = time.perf_counter()
                main_([*argv, "--device", device])
                return f"{n / (time.perf_counter() - t0):,.0f} chars/s (with loading)"
            return fn

        gen, fast = import_module("06_generate"), import_module("10_fast_decoding")
        for name, fn in [
            (f"06: {n} characters in 16 calls", sampler(gen.main, "--checkpoint", dllm, "--len", str(n),
                                                      "--steps", "16")),
            ("10: threshold 0.9 + dual cache", sampler(fast.main, "generate", "--checkpoint", dllm, "--len", str(n),
                                                       "--threshold", "0.9", "--block-size", "16", "--cache", "dual")),
            ("10: EB-Sampler", sampler(fast.main, "generate", "--checkpoint", dllm, "--len", str(n),
                                       "--entropy-budget", "1")),
            ("11: block diffusion, exact cache", sampler(import_module("11_block_diffusion").main, "generate",
                                                         "--checkpoint", bd, "--len", str(n))),
            ("07: GPT with KV cache", sampler(gpt.main, "generate", "--checkpoint", str(Path(d) / "gpt"),
                                              "--tokens", str(n))),
        ]:
            rows.append(run_row(f"sample, {name}", fn, device))

        def torchrun():
            out = Path(d) / "ddp"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                   str(ROOT / "05_train.py"), *common, "--out", str(out), "--steps", str(args.steps)]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if r.returncode:
                raise RuntimeError((r.stderr.strip().splitlines() or ["no output"])[-1])
            return "finished"
        rows.append(run_row("torchrun, 1 process", torchrun, device))

    print("\n| configuration | status | speed | peak memory |\n|---|---|---|---|")
    for name, status, speed, mem in rows:
        print(f"| {name} | {status} | {speed} | {mem} |")
    for s in skipped:
        print(f"skipped: {s}")
    failed = [r for r in rows if r[1] != "ok"]
    print(f"{len(rows) - len(failed)} of {len(rows)} rows ok")
    if failed:
        sys.exit(1)
    return rows


if __name__ == "__main__":
    run_cli(main)
