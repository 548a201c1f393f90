"""Sudoku (lesson 12): the dLLM and the GPT of the same size on held-out puzzles, by difficulty band and decoder.

    python sudoku_puzzles.py                  # data/sudoku/test.txt: 1,000 test puzzles per band (once)
    python bench/sudoku.py                    # your runs in checkpoints/sudoku-{dllm,gpt}; ~15 minutes on 2 cores
    python bench/sudoku.py --pretrained       # the shipped models instead

For each band (number of givens; then the plain solver's guesses after the rules' propagation, sudoku_puzzles.rate,
over test.txt and test_hard.txt beside it) and each way of decoding: the share of puzzles solved (every cell right)
and of valid grids (rules hold, givens kept), model calls per puzzle (a call counts for a puzzle while it still has a
blank; puzzles are decoded in batches), blank cells per puzzle, and seconds per puzzle (batched, wall clock).
The dLLM decodes greedily by confidence, by top-2 margin (Kim et al. 2025), in random order (the control: the
order is the point), and in parallel by lesson 10's rules; the GPT greedily, left to right, givens copied;
--order-gpt adds the GPT that writes (cell, digit) pairs in a solver's order (bench/sudoku_order_gpt.py).
--search adds a plain solver (the rules' propagation and depth-first search) and the same search guided by the dLLM
(12 --search), --repair-rounds lesson 13's repair: these use the rules, so they are reported apart.
Also draws the two training curves (validation puzzles solved against step and against minutes of training)
from the runs' metrics.csv.

Writes bench/results/sudoku/{sudoku.txt, sudoku.csv, curves.png}.
"""
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import metrics, pretrained, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    non_negative_float,
    non_negative_int,
    out_dir,
    positive_int,
    probability,
    run_cli,
)
from support.files import atomic_write, check_out_dir, save_figure

diff = import_module("04_diffusion")
F10 = import_module("10_fast_decoding")
S = import_module("12_sudoku")
R = import_module("13_self_correction")
P = import_module("sudoku_puzzles")
ORDER = import_module("sudoku_order_gpt")  # bench/: the GPT in a solver's order

ROOT = Path(__file__).resolve().parent.parent


def band_of(givens):
    return next(name for name, (lo, hi) in P.BANDS.items() if lo <= givens <= hi)


def evenly_spaced(items, k):
    """At most k of items, evenly spaced over all of them (a band's first k would be one end of the file:
    the puzzles of one givens band, or only those from test.txt and none from test_hard.txt)."""
    n = len(items)
    return [items[i * n // k] for i in range(k)] if n > k else list(items)


def puzzles_by_band(test):
    """{band: [puzzle + solution]}: test's puzzles by givens, then test's and test_hard.txt's beside it
    (sudoku_puzzles.py --hard: puzzles that need search) by the plain solver's guesses after the rules'
    propagation (as Sudoku-Extreme rates)."""
    pairs, by_band = P.read_pairs(test), {}
    for puzzle, solution in pairs:
        by_band.setdefault(band_of(sum(v > 0 for v in puzzle)), []).append(puzzle + solution)
    hard = Path(test).with_name("test_hard.txt")
    for puzzle, solution in pairs + (P.read_pairs(hard) if hard.exists() else []):
        guesses = P.rate(puzzle)
        band = next(name for name, (lo, hi) in P.RATINGS.items() if lo <= guesses <= hi)
        by_band.setdefault(band, []).append(puzzle + solution)
    return by_band


@torch.no_grad()
def run_decoder(solve, x, batch):
    """solve(puzzle, callback) over x (N, 162) in batches -> (solved (N,), valid (N,), calls (N,), seconds)."""
    out, calls = [], []
    t0 = time.perf_counter()
    for chunk in x.split(batch):
        puzzle = chunk[:, : S.CELLS]
        n = torch.zeros(len(chunk), dtype=torch.long, device=chunk.device)
        state = {"open": torch.ones_like(n)}  # 1 while the puzzle still has a blank

        def count(i, grid, n=n, state=state):
            n.add_(state["open"])
            state["open"] = (grid[:, : S.CELLS] > 9).any(1).long()  # a [MASK] left (a cell filled with 0 is filled)

        grid, total = solve(puzzle, count)
        if not n.any():  # the GPTs: no callback; each puzzle's calls as the solver counts them
            n = torch.as_tensor(total, device=chunk.device).expand(len(chunk)).clone()
        out.append(grid)
        calls.append(n)
    seconds = time.perf_counter() - t0
    grid = torch.cat(out)
    return S.solved(grid, x), S.valid(grid, x[:, : S.CELLS]), torch.cat(calls), seconds


def run_rows(solve, x):
    """solve(puzzle (81,)) -> (grid list, calls) for each puzzle of x (N, 162): one at a time (a search is not
    batched). -> the same four as run_decoder."""
    grids, calls, t0 = [], [], time.perf_counter()
    for row in x[:, : S.CELLS].tolist():
        grid, n = solve(row)
        grids.append(grid)
        calls.append(n)
    grid = torch.tensor(grids)
    return S.solved(grid, x), S.valid(grid, x[:, : S.CELLS]), torch.tensor(calls), time.perf_counter() - t0


def searchers(model):
    """The search rows, one puzzle at a time: the plain solver (its branch points count as calls) and the dLLM
    guiding the same search (12 --search: one model call per branch point)."""
    def guided(row):
        guide, n = S.model_guide(model)
        found, _ = P.search(row, guide)
        return found or row, n[0]

    return {"plain solver: rules propagate, digits in order (calls = branch points)":
            lambda row: ((lambda f, n: (f or row, n))(*P.search(row))),
            "dLLM + search: rules propagate, the dLLM chooses (12 --search)": guided}


def run_repair(model, x, rounds, batch):
    """Lesson 13's repair over x (N, 162) in batches: margin order, then rule-breaking digits taken back and refilled.
    -> the same four as run_decoder."""
    grids, calls, t0 = [], [], time.perf_counter()
    g = torch.Generator().manual_seed(0)
    for chunk in x.split(batch):
        grid, n, _ = R.solve_remask(model, chunk[:, : S.CELLS], rounds, diff.Sampling(order="margin", generator=g))
        grids.append(grid)
        calls.append(n)
    grid = torch.cat(grids)
    return S.solved(grid, x), S.valid(grid, x[:, : S.CELLS]), torch.cat(calls), time.perf_counter() - t0


def row(band, x, name, ok, valid, calls, seconds):
    """One line of the table (printed as it comes): the shares solved and valid, model calls, blanks, time."""
    blanks = (x[:, : S.CELLS] == 0).sum(1).float().mean().item()
    r = {"band": band, "puzzles": len(x), "decoder": name, "solved": ok.float().mean().item(),
         "valid": valid.float().mean().item(), "calls": calls.float().mean().item(), "blanks": blanks,
         "s_per_puzzle": seconds / len(x)}
    print(f"{band:>6} {name[:40]:<40} solved {r['solved']:7.1%} valid {r['valid']:7.1%} calls {r['calls']:5.1f} "
          f"(max {int(calls.max())}, blanks {blanks:4.1f}) {1000 * r['s_per_puzzle']:6.1f} ms/puzzle", flush=True)
    return r


def curves(runs, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, run in runs.items():
        rows = metrics.read_metrics(run)
        for ax, key, scale in ((axes[0], "step", 1), (axes[1], "elapsed_s", 60)):
            ax.plot([r[key] / scale for r in rows], [100 * r["val_solved"] for r in rows], marker="o", label=name)
    for ax, label in zip(axes, ("step", "minutes of training (evaluation excluded)")):
        ax.set_xlabel(label)
        ax.set_ylabel("validation puzzles solved (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Sudoku, same Transformer shape, same puzzles: dLLM (surest cell first) vs GPT")
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"sudoku.csv": "band,", "sudoku.txt": "bench/sudoku.py", "curves.png": None}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default=str(ROOT / "checkpoints" / "sudoku-dllm"), help="dLLM run or export")
    p.add_argument("--gpt", default=str(ROOT / "checkpoints" / "sudoku-gpt"), help="GPT run or export")
    p.add_argument("--pretrained", action="store_true", help="the shipped models (no training curves)")
    p.add_argument("--order-gpt", metavar="RUN", help="also the GPT writing (cell, digit) pairs in a solver's order "
                   "(bench/sudoku_order_gpt.py)")
    p.add_argument("--models", nargs="+", choices=["dllm", "gpt"], default=["dllm", "gpt"], help="which to run")
    p.add_argument("--one-cell", nargs="+", default=["confidence", "margin", "random"],
                   choices=["confidence", "margin", "random"], help="dLLM orders decoded one cell per call")
    p.add_argument("--test", default=str(ROOT / "data" / "sudoku" / "test.txt"), help="puzzle,solution lines")
    p.add_argument("--bands", nargs="+", choices=[*P.BANDS, *P.RATINGS], default=[*P.BANDS, *P.RATINGS],
                   help="which bands: by givens, then by the plain solver's guesses (default: all)")
    p.add_argument("--per-band", type=positive_int, default=1000, help="test puzzles per band (at most)")
    p.add_argument("--batch", type=positive_int, default=500, help="puzzles per model call")
    p.add_argument("--thresholds", type=probability, nargs="+", default=[0.97],
                   help="dLLM parallel decoding thresholds (0.97: chosen on the validation puzzles)")
    p.add_argument("--budgets", type=non_negative_float, nargs="+", default=[0.01],
                   help="EB-Sampler entropy budgets in nats (0.01: chosen on the validation puzzles)")
    p.add_argument("--search", action="store_true", help="also the plain solver and the dLLM-guided search (12 "
                   "--search), one puzzle at a time; reported apart from the pure model's rows")
    p.add_argument("--repair-rounds", type=non_negative_int, default=0, help="also lesson 13's repair: rounds of "
                   "taking back rule-breaking digits after margin decoding (0: no such row)")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results" / "sudoku"),
                   help="where results go")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    if not Path(args.test).exists():
        raise UsageError(f"no {args.test}: make the test puzzles with `python sudoku_puzzles.py`")
    kind_path = {k: (pretrained.PRETRAINED / f"sudoku-{k}" if args.pretrained else getattr(args, k))
                 for k in args.models}
    models = {k: S.load_solver(k, str(v)) for k, v in kind_path.items()}
    if args.order_gpt:
        models["order"] = ORDER.load_order_gpt(args.order_gpt)
        kind_path["order"] = args.order_gpt
    by_band = puzzles_by_band(args.test)
    decoders = {**{f"dLLM {o if o != 'random' else 'random order'}, 1 cell/call": ("dllm", (o, None))
                   for o in args.one_cell},
                **{f"dLLM threshold {t:g} (parallel)": ("dllm", ("confidence", F10.Rule("threshold", t)))
                   for t in args.thresholds},
                **{f"dLLM EB-Sampler {b:g} nats (parallel)": ("dllm", ("entropy", F10.Rule("eb", b)))
                   for b in args.budgets},
                "GPT greedy, left to right": ("gpt", None),
                "GPT greedy, (cell, digit) in a solver's order": ("order", None)}

    def solver(kind, kw):
        m = models[kind]
        if kind == "gpt":
            return lambda puzzle, cb: S.solve_gpt(m, puzzle)
        if kind == "order":
            return lambda puzzle, cb: ORDER.solve_order(m, puzzle)
        g = torch.Generator().manual_seed(0)  # random order draws from it
        return lambda puzzle, cb: S.solve_dllm(m, puzzle, kw, cb, g)

    decoders = {k: v for k, v in decoders.items() if v[0] in models}
    rows = []
    for band in [*P.BANDS, *P.RATINGS]:  # by givens, then by how many guesses a plain solver needs
        if band not in by_band or band not in args.bands:
            continue
        x = torch.tensor(evenly_spaced(by_band[band], args.per_band))
        for name, (kind, kw) in decoders.items():
            rows.append(row(band, x, name, *run_decoder(solver(kind, kw), x, args.batch)))
        extra = searchers(models["dllm"]) if args.search and "dllm" in models else {}
        if args.repair_rounds and "dllm" in models:  # batched, unlike a search
            extra[f"dLLM margin + {args.repair_rounds} rounds taking back rule-breaking digits (13)"] = None
        for name, solve in extra.items():
            rows.append(row(band, x, name, *(run_rows(solve, x) if solve else
                                              run_repair(models["dllm"], x, args.repair_rounds, args.batch))))
    out = Path(args.out_dir)
    metrics.write_csv(out / "sudoku.csv", rows, list(rows[0]))
    shown = [str(Path(v).resolve().relative_to(ROOT)) if Path(v).resolve().is_relative_to(ROOT) else str(v)
             for v in (args.test, *kind_path.values())]
    head = (f"Sudoku puzzles, {shown[0]}; models {', '.join(shown[1:])}; "
            f"{runtime.setting()}, fp32, "
            f"batch {args.batch}\ncommand: python bench/sudoku.py {' '.join(sys.argv[1:] if argv is None else argv)}"
            "\n\n| band | puzzles | decoder | solved | valid grid | model calls / puzzle | blanks / puzzle "
            "| ms / puzzle |\n"
            "|---|---|---|---|---|---|---|---|\n")
    table = "".join(f"| {r['band']} | {r['puzzles']} | {r['decoder']} | {r['solved']:.1%} | {r['valid']:.1%} | "
                    f"{r['calls']:.1f} | {r['blanks']:.1f} | {1000 * r['s_per_puzzle']:.1f} |\n" for r in rows)
    atomic_write(out / "sudoku.txt", lambda tmp: Path(tmp).write_text(head + table, encoding="utf-8"))
    names = {"dllm": "dLLM", "gpt": "GPT", "order": "GPT, solver's order"}
    runs = {names[k]: v for k, v in kind_path.items() if (Path(v) / "metrics.csv").exists()}
    if runs:
        curves(runs, out / "curves.png")
    print(f"wrote {out / 'sudoku.txt'}, {out / 'sudoku.csv'}" + (f", {out / 'curves.png'}" if runs else ""))
    return rows


if __name__ == "__main__":
    run_cli(main)
