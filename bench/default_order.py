"""06's default order, chosen by the rule RESULTS.md section 9.3 states before the measurement.

    python bench/first_command.py --seed 0 --out-dir bench/results/first_command/second_edition/seed0   # and 1, 2
    python bench/default_order.py            # reads the three tables, applies the rule, writes default_order.txt

The rule: among the orders 06 runs without taking tokens back, the default is random order (no tuned constant)
unless another order beats it on both distinct 4-grams and generative bits/char, each by more than twice the
standard error of the three-seed mean difference. A tie keeps random order.
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
import csv
import math
from pathlib import Path

from support.cli import ArgumentParser, UsageError, run_cli
from support.files import check_out_dir, write_text

PLAIN = ["random", "confidence", "margin", "entropy", "confidence, noise 2", "confidence, noise 5",
         "confidence, noise 8", "confidence, noise 12", "confidence, noise 20"]


def mean_se(values):
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return m, sd / math.sqrt(len(values))


# The files written to --dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"default_order.txt": "bench/default_order.py"}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dir", default=str(common.RESULTS / "first_command" / "second_edition"),
                   help="the folder with seed0/, seed1/, seed2/ (bench/first_command.py --out-dir)")
    args = p.parse_args(argv)
    check_out_dir(args.dir, OUTPUTS, flag="--dir")
    seeds = sorted(Path(args.dir).glob("seed*/first_command.csv"))
    if len(seeds) < 2:
        raise UsageError(f"{args.dir}: needs first_command.csv of at least two seeds (seed0/, seed1/, ...)")
    table = {}
    for path in seeds:
        with open(path) as f:
            for r in csv.DictReader(f):
                table.setdefault(r["sampler"], []).append((float(r["distinct4"]), float(r["gen_bpc"])))
    lines = [f"# python bench/default_order.py --dir {common.shown(args.dir)} ({len(seeds)} seeds)", "",
             "| order | distinct 4-grams (mean ± se) | gen bits/char (mean ± se) | vs random: distinct | vs random: "
             "bits/char | beats random on both? |", "|---|---|---|---|---|---|"]
    base = table["random"]
    winner = "random"
    best = None
    for name in [n for n in PLAIN if n in table and len(table[n]) == len(base)]:
        rows = table[name]
        (d, d_se), (b, b_se) = mean_se([r[0] for r in rows]), mean_se([r[1] for r in rows])
        dd, dd_se = mean_se([r[0] - q[0] for r, q in zip(rows, base)])  # paired by seed
        db, db_se = mean_se([r[1] - q[1] for r, q in zip(rows, base)])
        beats = name != "random" and dd > 2 * dd_se and -db > 2 * db_se
        if beats and (best is None or db < best):
            winner, best = name, db
        lines.append(f"| {name} | {d:.3f} ± {d_se:.3f} | {b:.3f} ± {b_se:.3f} | {dd:+.3f} ± {dd_se:.3f} | "
                     f"{db:+.3f} ± {db_se:.3f} | {'yes' if beats else 'no' if name != 'random' else ''} |")
    lines += ["", f"06's default order by the rule: {winner}"]
    write_text(Path(args.dir) / "default_order.txt", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return winner


if __name__ == "__main__":
    run_cli(main)
