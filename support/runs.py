"""Trainers run as subprocesses, for the sweeps in bench/: the command that starts or resumes a run, its output
appended to <out>/train.log, and Ctrl-C (SIGINT) to stop it early, which the trainers answer by saving
latest.pt and exiting with status 130. A finished run's metrics and log are archived beside the results, since
checkpoints/ is not kept in git."""
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from support.files import make_dir, read_text, write_text

ROOT = Path(__file__).resolve().parent.parent
STOPPED = (0, 130, -signal.SIGINT)  # finished, or stopped by Ctrl-C (-SIGINT: it was already on its way out)
BAR = re.compile(r"[\w .-]+:\s+\d+%\|[^|]*\|[^\]\n]*\]")  # tqdm's: "paths-dllm:  5%|▌ | 99/2000 [..]"


def trainer_command(script, args, out, mode=()):
    """Train <out> from scratch with `args`, or, when <out>/latest.pt exists, resume it with its own settings.
    mode: the subcommand that selects training in a lesson that does more (11_block_diffusion.py train)."""
    args = ["--resume"] if (Path(out) / "latest.pt").exists() else list(args)
    return [sys.executable, str(ROOT / script), *mode, *args, "--out", str(out), "--no-plot"]


def start_trainer(cmd, out, threads=None):
    """Start `cmd` with its output appended to <out>/train.log (kept across resumes); `threads` caps the
    CPU threads it uses (for several runs side by side). Returns the subprocess.Popen."""
    out = Path(out)
    make_dir(out)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # log lines as they come
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with open(out / "train.log", "a") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def stop_trainer(proc):
    """Ctrl-C to a running trainer: it finishes its step, saves latest.pt and exits."""
    proc.send_signal(signal.SIGINT)
    return proc.wait()


@contextlib.contextmanager
def saved_on_ctrl_c(procs):
    """`with saved_on_ctrl_c(procs):` a Ctrl-C in the block waits for the trainers in `procs` (read when it
    comes: a dict's live .values() will do) before it goes on up. The terminal sends Ctrl-C to the whole process
    group, so each trainer got it too and is finishing its step to save: the prompt comes back when the runs are
    saved, not while they still write. A second Ctrl-C reaches them as well and stops everything at once."""
    try:
        yield
    except KeyboardInterrupt:
        print("waiting for the trainers to save (Ctrl-C again to stop them at once)", file=sys.stderr)
        for proc in list(procs):
            proc.wait()
        raise


def archive_run(out, dest, **files):
    """Copy run <out>'s metrics.csv and train.log (without the progress bars) to `dest`, and write each keyword's
    text there as a file of that name (archive_run(out, dest, **{"row.json": text})). A train.log given as a
    keyword (a log put together from several sessions' output) is kept instead of <out>'s, its bars dropped too."""
    out, dest = Path(out), Path(dest)
    make_dir(dest)
    write_text(dest / "metrics.csv", read_text(out / "metrics.csv"))
    if "train.log" not in files and (out / "train.log").exists():
        files["train.log"] = (out / "train.log").read_text()
    if "train.log" in files:
        log = BAR.sub("", files["train.log"]).replace("\r", "")
        files["train.log"] = "".join(f"{line}\n" for line in log.split("\n") if line.strip())
    for name, text in files.items():
        write_text(dest / name, text)
