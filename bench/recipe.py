"""Which dLLM recipe learns most on a CPU budget? Proxy runs of the cpu preset on TinyShakespeare, one knob at a
time, each scored by its validation NELBO (always the true bound, whatever the training loss), beside the GPT
trained the same way: the knob's effect on the dLLM/GPT ratio of bits/char at equal steps (shapes: equal time).

    python bench/recipe.py                       # every knob at 2000 steps, one run at a time (~12 min each, 2 cores)
    python bench/recipe.py --knobs gpt base iid  # some of them; finished runs are skipped, stopped ones resumed
    python bench/recipe.py --report              # the table from the runs found (writes nothing else)

The knobs (the literature's answers to a dLLM's gradient variance at small compute):
  base       lesson 05 as it is: low-discrepancy noise levels t_i = (u + i/B) mod 1 (MDLM), weight 1/t
  base-seed-2, clip-b-seed-2  base / clip-b with another seed (other initial weights, batches and noise): how
             big a difference noise makes
  iid        independent t per sequence: what the low-discrepancy ("antithetic") draw saves
  clip-a/-b  t drawn in [0.3, 0.8] / [0.1, 0.9] only (BD3-LM's clipped schedules; 05's --mask-rate): less
             variance, biased
  cap-10     the weight 1/t capped at 10 (t < 0.1 counts as 0.1): less variance, biased
  clip-b-lr-4e-3  the two best single knobs together (clip-b's range, lr-4e-3's rate)
  lr-1e-3 / lr-4e-3 / lr-8e-3   the dLLM's own learning rate, tuned apart from the GPT's (2e-3)
  batch-32   twice the batch for half the steps: the same tokens
  clip-b-w96 / -w192 / -l6   other shapes with clip-b's range (the best objective found): width 96 or 192
             (4 layers), or 6 layers of width 128, at equal wall clock: each step's cost is measured first (a short
             throwaway run of base and of the shape), and the shape gets --steps x (base's seconds per step / its
             own), so a wider model gets fewer steps
  gpt, gpt-lr-1e-3, -4e-3, -8e-3   lesson 07's GPT, same preset and steps, its learning rate tuned too: the best
             of them is the denominator of the ratio (a tuned GPT, not a weak one)
Runs live in checkpoints/recipe/<knob>; the table goes to bench/results/recipe.csv and recipe.txt, the curves to
recipe.png.
"""
import tempfile
from functools import partial
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import checkpoints
from support.cli import ArgumentParser, out_dir, positive_int, run_cli
from support.files import check_out_dir, save_figure, write_text
from support.metrics import read_metrics, write_csv
from support.runtime import machine_name

ROOT = common.ROOT

diff = import_module("04_diffusion")
train = import_module("05_train")
gpt = import_module("07_train_gpt")


class Recipe(train.DiffusionObjective):
    """Lesson 05's objective with one knob turned. Validation stays 05's: the full NELBO, every t in [eps, 1]."""

    def __init__(self, iid=False, t_range=(diff.EPS, 1.0), weight_cap=None):
        super().__init__(t_range)  # a run's range comes from 05's --mask-rate (its main makes the objective)
        self.iid, self.weight_cap = iid, weight_cap

    def loss(self, model, x, config):
        x0 = x[:, :-1]
        B, L = x0.shape
        lo, hi = self.t_range
        if self.iid:  # B independent draws: some batches all low t, some all high
            t = lo + (hi - lo) * torch.rand(B, device=x0.device)
        else:  # one per stratum of [lo, hi]: every batch spans the noise levels
            t = diff.sample_times(B, None, x0.device, lo, hi)
        z, mask = diff.forward_process(x0, t, config.mask_id)
        w = diff.loss_weight(t) if self.weight_cap is None else diff.loss_weight(t).clamp(max=self.weight_cap)
        return (w[:, None] * diff.masked_cross_entropy(model(z), x0, mask)).sum() / (B * L)


CLIP_B = ["--mask-rate", "0.1", "0.9"]  # lesson 05's own flag: the runs are what a learner would run
SHAPES = ("clip-b-w96", "clip-b-w192", "clip-b-l6")  # run for the base's wall clock, not its steps
FULL = ["--mask-rate", "0.001", "1"]  # the whole NELBO: 05's default was before this search made it CLIP_B
KNOBS = {  # name -> (trainer, objective, extra flags, fraction of --steps)
    "gpt": (gpt.main, None, [], 1.0),
    "gpt-lr-1e-3": (gpt.main, None, ["--lr", "1e-3"], 1.0),
    "gpt-lr-4e-3": (gpt.main, None, ["--lr", "4e-3"], 1.0),
    "gpt-lr-8e-3": (gpt.main, None, ["--lr", "8e-3"], 1.0),
    "base": (train.main, Recipe, FULL, 1.0),
    "base-seed-2": (train.main, Recipe, FULL + ["--seed", "2"], 1.0),
    "iid": (train.main, partial(Recipe, iid=True), FULL, 1.0),
    "clip-a": (train.main, Recipe, ["--mask-rate", "0.3", "0.8"], 1.0),
    "clip-b": (train.main, Recipe, CLIP_B, 1.0),
    "cap-10": (train.main, partial(Recipe, weight_cap=10.0), FULL, 1.0),
    "clip-b-lr-4e-3": (train.main, Recipe, CLIP_B + ["--lr", "4e-3"], 1.0),
    "clip-b-seed-2": (train.main, Recipe, CLIP_B + ["--seed", "2"], 1.0),
    "lr-1e-3": (train.main, Recipe, FULL + ["--lr", "1e-3"], 1.0),
    "lr-4e-3": (train.main, Recipe, FULL + ["--lr", "4e-3"], 1.0),
    "lr-8e-3": (train.main, Recipe, FULL + ["--lr", "8e-3"], 1.0),
    "batch-32": (train.main, Recipe, FULL + ["--batch-size", "32"], 0.5),
    "clip-b-w96": (train.main, Recipe, CLIP_B + ["--n-embd", "96"], 1.0),
    "clip-b-w192": (train.main, Recipe, CLIP_B + ["--n-embd", "192", "--n-head", "6"], 1.0),
    "clip-b-l6": (train.main, Recipe, CLIP_B + ["--n-layer", "6"], 1.0),
}


def fresh_argv(args, out, steps, extra):
    """A trainer's flags for a new run of the preset with `extra` flags."""
    data = ["--data", args.data] if args.data else []
    return ["--preset", args.preset, "--steps", str(steps), "--out", str(out), "--no-plot", "--dtype", args.dtype,
            "--sample-len", "0", *data, *extra]


def seconds_per_step(extra, args, steps=30):
    """Training seconds per step of the preset with `extra` flags, measured by a short throwaway run."""
    with tempfile.TemporaryDirectory() as d:
        cheap_eval = ["--eval-every", str(steps), "--eval-windows", "1", "--eval-k", "1"]
        train.main(fresh_argv(args, d, steps, extra + cheap_eval), objective=Recipe)
        return read_metrics(d)[-1]["elapsed_s"] / steps


def run_knob(name, args):
    """Train (or resume, or skip) one knob's run. Ctrl-C stops the trainer (it saves, exits 130) and the search."""
    out = Path(args.runs) / name
    trainer, objective, extra, scale = KNOBS[name]
    if (out / "latest.pt").exists():  # started before: its schedule is in its checkpoint
        steps = checkpoints.load_checkpoint(out / "latest.pt")["args"]["steps"]
    else:
        if name in SHAPES:  # equal wall clock: as many steps as base makes in the same time
            base, own = seconds_per_step([], args), seconds_per_step(extra, args)
            scale = base / own
            print(f"{name}: {own:.3f} s per step vs base's {base:.3f}: {scale:.2f} x the steps")
        steps = max(1, round(args.steps * scale))
    if (out / "metrics.csv").exists() and read_metrics(out)[-1]["step"] >= steps:
        print(f"{name}: finished, skipped")
        return
    argv = (["--out", str(out), "--resume", "--steps", str(steps), "--no-plot"] if (out / "latest.pt").exists()
            else fresh_argv(args, out, steps, extra))
    print(f"{name}: training ({' '.join(argv)})", flush=True)
    try:
        trainer(argv, objective=objective) if objective else trainer(argv)
    except SystemExit:
        print(f"{name} was stopped: the knobs after it wait (run the same command to go on)", flush=True)
        raise


def report(args):
    """bench/results/recipe.csv and recipe.txt from the runs found: best validation, the ratio to the GPT."""
    rows, curves = [], {}
    for name in KNOBS:
        out = Path(args.runs) / name
        if (out / "metrics.csv").exists():
            m = read_metrics(out)
            schedule = checkpoints.load_checkpoint(out / "latest.pt")["args"]["steps"]
            if m[-1]["step"] < schedule:  # stopped part way: its best so far is not the knob's figure
                print(f"{name}: stopped at step {m[-1]['step']} of {schedule}, not in the table yet")
                continue
            best = min(m, key=lambda r: r["val_bpc"])
            rows.append(dict(knob=name, steps=m[-1]["step"], best_val_bpc=round(best["val_bpc"], 4),
                             at_step=best["step"], train_s=round(m[-1]["elapsed_s"])))
            curves[name] = [(r["elapsed_s"] / 60, r["val_bpc"]) for r in m]
    g = min((r for r in rows if r["knob"].startswith("gpt")), key=lambda r: r["best_val_bpc"], default=None)
    for r in rows:
        r["ratio_to_gpt"] = round(r["best_val_bpc"] / g["best_val_bpc"], 3) if g else ""
    machine = machine_name("cpu")
    lines = [f"{machine}; {args.preset} preset; bits/char: the dLLM's NELBO (upper bound), the GPT's "
             f"exact NLL; / GPT: to the best GPT ({g['knob'] if g else 'none yet'})", "",
             "| knob | steps | best val bits/char | at step | training s | / GPT |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['knob']} | {r['steps']} | {r['best_val_bpc']:.4f} | {r['at_step']} | {r['train_s']} | "
              f"{r['ratio_to_gpt']} |" for r in rows]
    print("\n".join(lines))
    if rows and args.write:
        results = Path(args.results)
        write_csv(results / "recipe.csv", rows, list(rows[0]))
        write_text(results / "recipe.txt", "\n".join(lines) + "\n")
        plot_curves(curves, results / "recipe.png", machine)
    return rows


def plot_curves(curves, path, machine):
    """Validation bits/char against training minutes, one line per finished run (from its metrics.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    dashes = iter(["--", ":", "-.", (0, (5, 1, 1, 1))])
    for name, points in curves.items():
        gpt_run = name.startswith("gpt")
        style = dict(ls=next(dashes), color="0.3") if gpt_run else dict(lw=2.2 if "clip" in name else 1.2)
        ax.plot(*zip(*points[1:]), label=f"{name} ({min(v for _, v in points):.3f})", **style)  # from step 1 on
    ax.set_xlabel("training minutes (evaluation excluded)")
    ax.set_ylabel("validation bits/char (dLLM: NELBO; GPT: exact)")
    ax.set_ylim(top=4.0)
    ax.set_title(f"bench/recipe.py: one knob at a time, cpu preset, TinyShakespeare\n{machine}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


# The files written to --results: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"recipe.csv": "knob,", "recipe.txt": "| knob |", "recipe.png": None}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--knobs", nargs="+", choices=list(KNOBS), default=list(KNOBS), help="which runs")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps per run (the cpu preset's)")
    p.add_argument("--preset", default="cpu", choices=["tiny", "cpu"], help="model and schedule size")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="precision of every run")
    p.add_argument("--data", metavar="FILE", help="train on this text instead of TinyShakespeare")
    p.add_argument("--runs", default=str(ROOT / "checkpoints" / "recipe"), help="where the runs live")
    p.add_argument("--results", type=out_dir, default=str(ROOT / "bench" / "results"), help="where recipe.csv/.txt go")
    p.add_argument("--report", action="store_true", help="only the table from the runs found")
    args = p.parse_args(argv)
    if not args.report:  # a report only reads
        check_out_dir(args.results, OUTPUTS, flag="--results")
    args.write = not args.report  # a report only reads
    if not args.report:
        for name in args.knobs:
            run_knob(name, args)
    return report(args)


if __name__ == "__main__":
    run_cli(main)
