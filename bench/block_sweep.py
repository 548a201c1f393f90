"""Validation bits/char against block size: the GPT, block diffusion with B = 1, 4, 16, 64, and the dLLM.

    python bench/block_sweep.py                      # every run, one after another (hours on a CPU)
    python bench/block_sweep.py --runs bd16 bd4      # some of them; finished runs are skipped
    python bench/block_sweep.py --plot-only          # table and figure from the runs found

Every run is the cpu preset on TinyShakespeare (2000 steps, batch 16 x 256, the same data, optimizer and schedule)
through the repository's own commands: 07_train_gpt.py for the GPT, 05_train.py for the dLLM and
11_block_diffusion.py train --block-diffusion B for block diffusion. B = 256 (the context) is the dLLM's
objective exactly, so the dLLM run stands for it. Runs live in checkpoints/sweep/<name>; an interrupted one is
resumed (--resume), a finished one skipped. Each run's metrics.csv, loss.png and log are copied to
bench/results/runs/sweep_<name>; the table goes to bench/results/block_sweep.csv and the figure to
bench/results/block_sweep.png. Bits/char are the validation numbers the trainers log: exact for the GPT, the NELBO
(an upper bound) for the others.
"""
from pathlib import Path

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support.cli import ArgumentParser, UsageError, positive_int, run_cli
from support.files import save_figure
from support.metrics import read_metrics, write_csv
from support.runs import archive_run, saved_on_ctrl_c, start_trainer, trainer_command
from support.runtime import machine_name

ROOT = common.ROOT

RESULTS = ROOT / "bench" / "results"
L = 256  # the cpu preset's context
RUNS = {  # name -> (command, block size on the plot)
    "gpt": (["07_train_gpt.py"], None),
    "bd1": (["11_block_diffusion.py", "--block-diffusion", "1"], 1),
    "bd4": (["11_block_diffusion.py", "--block-diffusion", "4"], 4),
    "bd16": (["11_block_diffusion.py", "--block-diffusion", "16"], 16),
    "bd64": (["11_block_diffusion.py", "--block-diffusion", "64"], 64),
    "dllm": (["05_train.py", "--mask-rate", "0.001", "1"], L),  # the whole NELBO, as every block size here
}


def run_one(name, args):
    """Train one run, resume it, or skip it when finished."""
    out = ROOT / "checkpoints" / "sweep" / name
    script, steps = RUNS[name][0], args.steps
    rows = read_metrics(out) if (out / "metrics.csv").exists() else []
    if rows and rows[-1]["step"] >= steps:
        print(f"{name}: finished ({steps} steps), skipped")
    else:
        mode = ["train"] if script[0] == "11_block_diffusion.py" else []
        cmd = trainer_command(script[0], [*script[1:], "--preset", "cpu", "--dtype", args.dtype, "--steps", str(steps)],
                              out, mode)
        print(f"{name}: {' '.join(Path(c).name if c.endswith('.py') else c for c in cmd[1:])}", flush=True)
        proc = start_trainer(cmd, out)
        with saved_on_ctrl_c([proc]):
            code = proc.wait()
        if code:
            raise UsageError(f"{name} stopped with exit status {code}; see {out / 'train.log'}")


def collect(name):
    """Copy a run's metrics.csv and log (without the progress bars) to bench/results/runs/sweep_<name>."""
    out = ROOT / "checkpoints" / "sweep" / name
    if (out / "metrics.csv").exists():
        archive_run(out, RESULTS / "runs" / f"sweep_{name}")


def sweep_table(steps):
    """One row per finished run: the last and the best validation bits/char."""
    rows = []
    for name, (_, b) in RUNS.items():
        path = RESULTS / "runs" / f"sweep_{name}"
        if not (path / "metrics.csv").exists():
            continue
        m = read_metrics(path)
        if m[-1]["step"] < steps:
            continue
        rows.append(dict(run=name, block=b or "", final_bpc=round(m[-1]["val_bpc"], 4),
                         best_bpc=round(min(r["val_bpc"] for r in m), 4), steps=m[-1]["step"],
                         minutes=round(m[-1]["elapsed_s"] / 60, 1)))
    return rows


def plot_sweep(rows, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bd = sorted((r for r in rows if r["run"] != "gpt"), key=lambda r: r["block"])
    ax.plot([r["block"] for r in bd], [r["final_bpc"] for r in bd], "o-", color="tab:blue",
            label="block diffusion, NELBO (B = 256: the dLLM)")
    for r in bd:
        ax.annotate(f"{r['final_bpc']:.2f}", (r["block"], r["final_bpc"]), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=8)
    gpt = [r for r in rows if r["run"] == "gpt"]
    if gpt:
        ax.axhline(gpt[0]["final_bpc"], color="tab:orange", ls="--", label=f"GPT, exact ({gpt[0]['final_bpc']:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 4, 16, 64, 256], ["1", "4", "16", "64", "256"])
    ax.set_xlabel("block size B (characters)")
    ax.set_ylabel("validation bits/char after 2000 steps")
    ax.set_title(f"One family: GPT (B=1) to dLLM (B=256)\ncpu preset, TinyShakespeare; {machine}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, RESULTS / "block_sweep.png", dpi=120)
    plt.close(fig)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=["bd16", "bd4", "gpt", "dllm", "bd1", "bd64"],
                   help="which runs to train, in this order")
    p.add_argument("--steps", type=positive_int, default=2000, help="training steps of every run (the cpu preset's)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "auto"], help="precision of every run")
    p.add_argument("--plot-only", action="store_true", help="only write the table and figure from finished runs")
    args = p.parse_args(argv)
    if not args.plot_only:
        for name in args.runs:
            run_one(name, args)
            collect(name)
    for name in RUNS:
        collect(name)
    rows = sweep_table(args.steps)
    machine = machine_name()
    write_csv(RESULTS / "block_sweep.csv", [dict(r, machine=machine) for r in rows], [*rows[0], "machine"]
              if rows else ["run"])
    if rows:
        plot_sweep(rows, machine)
    print(f"| run | block | val bits/char (final) | best | minutes |  ({machine})\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['block']} | {r['final_bpc']:.3f} | {r['best_bpc']:.3f} | {r['minutes']} |")


if __name__ == "__main__":
    run_cli(main)
