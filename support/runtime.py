"""Where and how the model runs: device, precision (autocast), Ctrl-C handling, a sampler's progress
bar, DDP setup and teardown."""
import contextlib
import os
import platform
import signal
import sys
import threading
from pathlib import Path

import torch
from tqdm import tqdm

from support.cli import UsageError

DEVICES = ["auto", "cuda", "mps", "cpu"]  # the choices of every --device


def resolve_device(name):
    """"auto" -> cuda, mps or cpu. On CUDA, fp32 matmuls use TF32 tensor cores (Ampere and later; 10 mantissa
    bits, as PyTorch's "high" precision): fp32 training and every sampler get them."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: Apple MPS is not available")
    if name == "cuda":
        torch.set_float32_matmul_precision("high")
    return name


def cpuinfo():
    """/proc/cpuinfo's text, or "" where there is none (macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_fast_bf16():
    """bf16 matmuls pay on CPUs with AVX512-BF16 or AMX (measured 1.4-1.9x here); elsewhere fp32 is faster."""
    flags = cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine_name(device="cpu"):
    """A line naming the hardware, for results: the CPU model, its core count and bf16 support; or the GPU."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(device)
    info = cpuinfo()
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    model = names[0] if names else platform.processor() or platform.machine()
    bf16 = "AMX" if "amx_bf16" in info else "AVX512-BF16" if "avx512_bf16" in info else "no bf16 matmul units"
    return f"{model}, {os.cpu_count()} cores, {bf16}"


def setting(device="cpu"):
    """A result header's line: the machine, PyTorch, and the threads a CPU run used (or the GPU)."""
    n = torch.get_num_threads()
    where = "GPU" if str(device).startswith("cuda") else f"{n} thread{'s' * (n != 1)}"
    return f"{machine_name(device)}, PyTorch {torch.__version__}, {where}"


def half_dtype(device):
    """The 16-bit type a device computes fast. CUDA: bf16 from compute capability 8.0 (Ampere: RTX 30xx, A100) on;
    below (Turing: RTX 20xx, T4; Volta) fp16 with loss scaling: there bf16 has no tensor-core matmuls and SDPA's
    fast kernels refuse it (torch.cuda.is_bf16_supported() says yes there: it counts emulation). CPU: bf16."""
    if device == "cuda":
        return "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"
    return "bf16"


def resolve_dtype(name, device):
    if name != "auto":
        return name
    if device == "cuda":
        return half_dtype(device)
    if device == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def sampling_dtype(device):
    """What a generator samples in: the training precision on a GPU; fp32 on a CPU, so the same seed prints the
    same text whether or not the CPU has bf16 units (a draw may still flip where two CPUs round differently)."""
    return "fp32" if device == "cpu" else resolve_dtype("auto", device)


def autocast(device, dtype):
    """Mixed precision: matmuls in bf16/fp16, reductions (softmax, norms, losses) stay fp32."""
    if dtype == "fp32":
        return torch.autocast(device_type=device, enabled=False)
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


class StopOnSignal:
    """`with StopOnSignal(log, saved) as stop:` Ctrl-C / SIGTERM set `stop.requested` instead of killing the
    loop, so it can finish the current step and save a state at a step boundary. A second one stops at once:
    one line says whether the file `saved` holds a state yet, and the process exits with status 130.
    `stop.everywhere(world, device)`: the same answer on every DDP rank."""

    def __init__(self, log=print, saved=None):
        self.log, self.saved, self.requested, self.handlers = log, saved, False, {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name  # e.g. SIGTERM
        self.log(f"stopping after this step ({again} again to stop at once)")

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.handlers[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, exc_type, *exc):
        for sig, h in self.handlers.items():
            signal.signal(sig, h)
        if exc_type is KeyboardInterrupt:  # the second Ctrl-C
            kept = (f"{self.saved} holds the last saved state" if self.saved and Path(self.saved).exists()
                    else "nothing saved yet")
            print(f"\nstopped at once; {kept}", file=sys.stderr)
            sys.exit(130)
        return False

    def everywhere(self, world, device, step=0, every=16):
        """Every rank must leave the loop at the same step, or the others hang in the next all-reduce. Under DDP
        the ranks agree every `every` steps only: each agreement is an all-reduce and a host sync."""
        if world == 1:
            return self.requested
        if step % every:
            return False
        import torch.distributed as dist

        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0


@contextlib.contextmanager
def stop_cleanly(so_far=None):
    """`with stop_cleanly(show):` Ctrl-C inside stops a generator at once: show() prints what it has made so far,
    one line on stderr says so, and the exit status is 130 (no traceback)."""
    try:
        yield
    except KeyboardInterrupt:
        if so_far is not None:
            so_far()
        print("interrupted: the output above is what was generated so far", file=sys.stderr)
        sys.exit(130)


class SamplingBar(tqdm):
    """`with SamplingBar(steps, "call"):` a sampler's bar, quiet for short runs, that appears once
    `delay` seconds have passed even while the first model call still runs (tqdm's own `delay`
    waits for an update: 06's `--num-samples 1024` on a CPU showed nothing until its first call
    ended)."""

    def __init__(self, total, unit, delay=2.0, file=None):
        super().__init__(total=total, unit=unit, desc="sampling", delay=delay, leave=False,
                         file=file)
        self.timer = threading.Timer(delay, self.show)
        self.timer.daemon = True  # never keeps a stopped process alive
        self.timer.start()

    def show(self):
        """Draw 0/N if no call has ended yet (a closed bar draws nothing), and note the time drawn,
        as tqdm's update does: close clears only a bar it knows was drawn."""
        if not self.n and self.refresh():
            self.last_print_t = self._time()

    def close(self):
        self.timer.cancel()
        super().close()


class OutOfMemory:
    """`with OutOfMemory(world, flags):` a device out-of-memory error becomes one line on stderr naming the
    flags that fit a smaller card, and exit status 2 (under torchrun, the agent then stops every other rank)."""

    def __init__(self, world, flags, advice="halve --batch-size and double --grad-accum (the same update, "
                 "half the memory)"):
        self.world, self.flags, self.advice = world, flags, advice

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        cpu = exc_type is RuntimeError and "can't allocate memory" in str(exc)  # the CPU allocator's
        if exc_type is not None and (issubclass(exc_type, torch.OutOfMemoryError) or cpu):
            print(f"{Path(sys.argv[0]).name}: error: out of memory during a training step at {self.flags}: "
                  f"{self.advice}", file=sys.stderr)
            leave_process(2, self.world)
        return False


def no_sync(model, skip):
    """Under DDP, skip the gradient all-reduce (gradients accumulate locally) when `skip`: every micro-step of
    --grad-accum but the last. A no-op for a plain model."""
    if skip and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------------------
# DDP: one process per GPU (or CPU process) under torchrun, gradients averaged inside backward()
# ---------------------------------------------------------------------------------------------------------
def ddp_setup(device):
    """Under torchrun (WORLD_SIZE > 1) join the process group: NCCL on CUDA, gloo on CPU. -> (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if dist.is_initialized():  # called again: already joined
        return dist.get_rank(), world
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" now means this process's GPU
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world


def weights_checksum(model):
    return sum(p.detach().double().sum().item() * (i + 1) for i, p in enumerate(model.parameters()))


def finish_ddp(model, world, log=print):
    """Check every rank ended with the same weights (DDP keeps them in sync), then leave the group.

    The caller must have dropped its DistributedDataParallel wrapper first: it holds the process group, and a
    group still alive when the interpreter shuts down tears down Gloo's threads too late ("terminate called
    without an active exception", SIGABRT). See leave_process for the rest of that story."""
    import gc

    import torch.distributed as dist

    gc.collect()  # the DDP wrapper and its gradient reducer, if a reference cycle still holds them
    sums = [None] * world
    dist.all_gather_object(sums, weights_checksum(model))
    if len(set(sums)) != 1:
        raise RuntimeError(f"ranks out of sync: weight checksums {sums}")
    log(f"all {world} ranks hold identical weights (checksum {sums[0]:.6f})")
    dist.destroy_process_group()


def leave_process(code, world):
    """End a run that cannot simply return: sys.exit alone; a torchrun worker skips interpreter finalization.

    With PyTorch 2.13's Gloo backend a worker can abort *after* all its work, while the interpreter tears
    down Gloo's threads ("terminate called without an active exception", SIGABRT, no Python frame; measured
    with 2 CPU processes: 3 of 40 launches; still 1 of 100 once finish_ddp dropped the DDP wrapper first).
    Everything is saved by then (checkpoints are written atomically and fsynced), so once the output is flushed
    os._exit loses nothing and never reaches that teardown."""
    if world == 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
