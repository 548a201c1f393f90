"""Lesson 17: the runs of 17_rewards.py (RL and its controls) on held-out test puzzles, by band, with standard errors.

    python bench/rewards.py --runs checkpoints/rewards-exact checkpoints/rewards-sft checkpoints/rewards-rft
    python bench/rewards.py --runs RUN --earlier OLD/rewards.csv   # seeds scored before join the tables

The shipped Sudoku dLLM (where every run starts) and each run, decoded as lesson 12 deploys it (greedy, the surest
cell first, one per call), on the 100,000 set's test puzzles: 17-27 and 28-35 givens (test.txt), and the puzzles that
need search (3+ guesses of the plain solver, test.txt and test_hard.txt); solved with its standard error
sqrt(p(1-p)/N) over puzzles (one seed per run: the spread between seeds is not in it; runs that share a recipe
and differ only in --seed get a second table, their mean and its standard error over seeds). Beside it, what RL is
known to break: variety, as pass@G with 17's default stochastic sampler (any of G attempts solves; temperature 1, 2
cells a call, for every model alike, also a run that practised at another temperature) and the attempts' mean reward,
on the first --variety puzzles of 17-27; and each run's compute (model passes) and training minutes.
Every model is scored on the same puzzles, so a run's change from the shipped model is also given puzzle by puzzle
(paired): the mean of d = solved by the run - solved by the start (1, 0 or -1) and its standard error sd(d) / sqrt(N),
with the puzzles each gained and lost; smaller than the two rows' errors combined when the models agree on most
puzzles. Only for the runs scored in this command (a rewards.csv keeps no per-puzzle results).
curves.png: each run's validation solved (fresh puzzles, 17-27 givens) against model passes, from its metrics.csv.

Writes bench/results/rewards/{rewards.txt, rewards.csv, curves.png}.
"""
import csv
import math
import sys
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import checkpoints, metrics, pretrained, runtime
from support.cli import ArgumentParser, UsageError, out_dir, positive_int, run_cli
from support.files import atomic_write, check_out_dir

S = import_module("12_sudoku")
R = import_module("17_rewards")
P = import_module("sudoku_puzzles")
B = import_module("sudoku")  # bench/sudoku.py: bands, decoding in batches
mean_se = import_module("default_order").mean_se  # bench/'s mean and standard error, sd (n - 1) / sqrt(n)

ROOT = Path(__file__).resolve().parent.parent
BANDS = ("17-27", "28-35", "3+ guesses")


def test_bands(test, per_band):
    """{band: (N, 162)}: bench/sudoku.py's bands (by givens; the search band by rating), at most per_band each."""
    by = B.puzzles_by_band(test)
    return {b: torch.tensor(B.evenly_spaced(by[b], per_band)) for b in BANDS if by.get(b)}


# Flags that change neither what a run learns nor how: the seed (varied on purpose), where it writes, how often
# and on how many puzzles it evaluates, and how many canvases share a backward pass.
NOT_RECIPE = ("seed", "command", "out", "resume", "force", "evals", "val_puzzles", "chunk", "device")


def recipe(a):
    """A run's recipe from its saved flags `a`: method, lr and beta, then every other training flag that is not
    17's default (runs at temperature 0.5 are not seeds of runs at 1.0)."""
    defaults = vars(R.rewards_parser().parse_args(["train"]))

    def value(k, v):  # the puzzle set is saved as an absolute path: the same set in another clone is the same recipe
        return Path(v).name if k == "puzzles" and v is not None else v

    extra = [f"{k.replace('_', '-')} {v}" for k, v in a.items()
             if k not in NOT_RECIPE + ("method", "lr", "beta") and value(k, v) != value(k, defaults.get(k))]
    return ", ".join([f"{a['method']}, lr {a['lr']:g}, beta {a['beta']:g}", *extra])


def earlier_rows(path):
    """The runs' rows of a rewards.csv this script wrote before (its shipped model's row left out), as main() makes
    them: seeds benchmarked in different sessions join one table."""

    def value(k, v):  # a name, a count or a share
        return v if k in ("model", "recipe") else int(v) if k in ("passes", "seed") or k.endswith(" n") else float(v)

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "recipe" not in (reader.fieldnames or []):  # not ours, even with no rows to check: at once
                raise ValueError("no recipe column")
            return [{k: value(k, v) for k, v in r.items()} for r in reader if r.get("recipe")]
    except OSError as e:
        raise UsageError(f"--earlier {path}: {e.strerror}") from None
    except (ValueError, TypeError, csv.Error) as e:
        raise UsageError(f"--earlier {path} is not a rewards.csv of this script ({e})") from None


def once(rows, earlier):
    """The rows of `earlier` that are not already in `rows` or before them in `earlier`: a run is one model, seed and
    budget, and a rewards.csv that itself joined another file holds that file's runs too."""
    def run(r):
        return r["model"], r["seed"], r["passes"]

    seen, new = {run(r) for r in rows}, []
    for r in earlier:
        if (key := run(r)) not in seen:
            seen.add(key)
            new.append(r)
    return new


def over_seeds(rows, bands):
    """The runs that share a recipe (recipe(): every training flag but --seed) and differ in --seed: each band's
    mean over the seeds and its standard error, sd / sqrt(n) (n - 1 in the sd). An empty string if no recipe has
    two seeds."""
    by = {}
    for r in rows:
        if r["recipe"]:
            by.setdefault(r["recipe"], []).append(r)
    lines = []
    for recipe, runs in by.items():
        if len(runs) < 2:
            continue
        cells = []
        for b in [*bands, "pass@G", "attempt reward"]:
            mean, se = mean_se([r[b] for r in runs])
            cells.append(f"{mean:.3f} ± {se:.3f}" if b == "attempt reward" else f"{mean:.1%} ± {100 * se:.1f}")
        seeds = ", ".join(str(r["seed"]) for r in runs)
        lines.append(f"| {recipe} | {seeds} | " + " | ".join(cells) + " |\n")
    if not lines:
        return ""
    return ("\nOver seeds: the mean of each recipe's runs ± its standard error over seeds\n\n| recipe | seeds | "
            + " | ".join(bands) + " | pass@G | attempt reward |\n" + "|---" * (4 + len(bands)) + "|\n" + "".join(lines))


def against_start(solved, bands):
    """The table of each run's change from the shipped model, puzzle by puzzle. solved: {model: {band: (N,) bool}},
    the shipped model first. An empty string if no run was scored."""
    (start, base), *runs = solved.items()
    if not runs:
        return ""
    lines = []
    for name, by_band in runs:
        cells = []
        for b in bands:
            d = by_band[b].double() - base[b].double()  # (N,): +1 gained, -1 lost, 0 the same
            mean, se = mean_se(d.tolist())
            cells.append(f"{100 * mean:+.1f} ± {100 * se:.1f} "
                         f"(+{int((d > 0).sum())} / -{int((d < 0).sum())})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |\n")
    return (f"\nAgainst {start}, puzzle by puzzle (paired): the change in solved, in points, ± its standard error "
            "sd(d) / sqrt(N), and (puzzles gained / lost)\n\n| model | " + " | ".join(bands) + " |\n"
            + "|---" * (1 + len(bands)) + "|\n" + "".join(lines))


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"rewards.csv": "model,", "rewards.txt": "bench/rewards.py", "curves.png": None}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--runs", nargs="+", default=[], help="run folders of 17_rewards.py train")
    p.add_argument("--test", default=str(ROOT / "data" / "sudoku-100k" / "test.txt"), help="puzzle,solution lines")
    p.add_argument("--per-band", type=positive_int, default=1000, help="test puzzles per band (at most)")
    p.add_argument("--variety", type=positive_int, default=200, help="17-27 puzzles for pass@G")
    p.add_argument("--group", type=positive_int, default=8, help="attempts per puzzle for pass@G")
    p.add_argument("--batch", type=positive_int, default=500, help="puzzles per model call")
    p.add_argument("--earlier", nargs="+", default=[], metavar="CSV",
                   help="rewards.csv files of runs benchmarked before: their rows join the tables")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the models run (fp32 either way)")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results" / "rewards"),
                   help="where results go")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    if args.variety * args.group > R.CANVASES:  # pass@G samples them all at once
        raise UsageError(f"--variety x --group: at most {R.CANVASES:,} attempts")
    if not Path(args.test).exists():
        raise UsageError(f"no {args.test}: make the test puzzles with `python sudoku_puzzles.py --train 100000 "
                         "--train-givens 17 50 --hard 1000 --workers 2 --out data/sudoku-100k`")
    runtime.resolve_device(args.device)  # --device cuda with none: one line, before any work
    earlier = [r for path in args.earlier for r in earlier_rows(path)]
    shipped = S.load_solver("dllm", str(pretrained.PRETRAINED / "sudoku-dllm"), device=args.device)
    models = {"shipped sudoku-dllm": (shipped, None)}
    for run in args.runs:
        ckpt = checkpoints.load_checkpoint(Path(run) / "latest.pt")
        if ckpt.get("trainer") != "17_rewards.py train":
            raise UsageError(f"{run} is not a run of 17_rewards.py train")
        models[Path(run).name] = (S.load_solver("dllm", run, device=args.device).float(), ckpt)
    bands = {b: x.to(args.device) for b, x in test_bands(args.test, args.per_band).items()}
    columns = ["model", "passes", "minutes", "recipe", "seed", *(f"{b}{s}" for b in bands for s in ("", " se", " n")),
               "pass@G", "attempt reward"]  # a row's, in the CSV's order: the rows below must have these and no more
    if any(set(r) != set(columns) for r in earlier):  # before any scoring: one line, at once
        raise UsageError("--earlier: a file from another version of this script or test set; benchmark it again")
    rows, solved = [], {}
    for name, (model, ckpt) in models.items():
        a = ckpt["args"] if ckpt else {}
        row = {"model": name, "passes": ckpt["passes"] if ckpt else 0,
               "minutes": round(ckpt["elapsed_s"] / 60, 1) if ckpt else 0,
               "recipe": recipe(a) if a else "", "seed": a.get("seed", "")}
        for band, x in bands.items():
            ok = B.run_decoder(lambda puzzle, cb, m=model: S.solve_dllm(m, puzzle, "confidence", cb), x, args.batch)[0]
            q = ok.float().mean().item()
            row |= {band: q, f"{band} se": math.sqrt(q * (1 - q) / len(x)), f"{band} n": len(x)}
            solved.setdefault(name, {})[band] = ok.cpu()
        x = bands["17-27"][: args.variety]
        g = torch.Generator().manual_seed(0)
        practice = R.Practice(group=args.group, prompts=len(x))
        grids, _, _ = R.attempt(model, x[:, : S.CELLS], practice, g)
        reward = R.rewards(grids, x[:, : S.CELLS], args.group).view(-1, args.group)
        row |= {"pass@G": (reward.max(1).values > 0).float().mean().item(), "attempt reward": reward.mean().item()}
        rows.append(row)
        print(row, flush=True)
    rows += once(rows, earlier)  # after the runs scored here: the table says which were (--earlier in its command)
    out = Path(args.out_dir)
    metrics.write_csv(out / "rewards.csv", rows, columns)  # a row with another key raises here
    head = (f"Lesson 17 on {args.test}; {runtime.setting(args.device)}, fp32\ncommand: python bench/rewards.py "
            f"{' '.join(sys.argv[1:] if argv is None else argv)}\n\n| model | model passes | minutes | "
            + " | ".join(f"{b} solved (n = {len(x)})" for b, x in bands.items())
            + f" | pass@{args.group} 17-27 (n = {len(bands['17-27'][: args.variety])}) | attempt reward |\n"
            + "|---" * (5 + len(bands)) + "|\n")
    table = "".join(f"| {r['model']} | {r['passes']:,} | {r['minutes']} | "
                    + " | ".join(f"{100 * r[b]:.1f}% ± {100 * r[f'{b} se']:.1f}" for b in bands)
                    + f" | {r['pass@G']:.1%} | {r['attempt reward']:.3f} |\n" for r in rows)
    atomic_write(out / "rewards.txt", lambda tmp: Path(tmp).write_text(head + table + over_seeds(rows, bands)
                                                                        + against_start(solved, list(bands)),
                                                                        encoding="utf-8"))
    runs = {Path(r).name: metrics.read_metrics(r) for r in args.runs}
    if runs:
        metrics.plot_rows(out / "curves.png", runs, "passes", "val_solved", "model passes (forward = 1, forward + "
                          "backward = 3)", "validation solved, 17-27 givens",
                          "Lesson 17: learning from rewards, and its controls at equal compute")
    print(f"wrote {out / 'rewards.txt'}, {out / 'rewards.csv'}" + (f", {out / 'curves.png'}" if runs else ""))
    return rows


if __name__ == "__main__":
    run_cli(main)
