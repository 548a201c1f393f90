"""Lesson 12: Sudoku, where the dLLM wins. The same Transformer trained twice on the same puzzles.

    python 12_sudoku.py --show-steps             # the shipped models solve fresh puzzles; the order
    python sudoku_puzzles.py                     # data/sudoku/: train, validation, test puzzles
    python 12_sudoku.py train --model dllm       # 27 min on 2 CPU cores -> checkpoints/sudoku-dllm
    python 12_sudoku.py train --model gpt        # the GPT of its size -> checkpoints/sudoku-gpt
    python 12_sudoku.py solve FILE --model dllm  # a puzzle per line in, its checked answer out
    python 12_sudoku.py solve FILE --search      # rules propagate, the dLLM chooses, backtrack

Text is written left to right, where a GPT of the same size is hard to beat (lessons 07-11). In a
Sudoku cell 1 may be forced only by what cell 81 holds: the GPT commits cells in raster order, each
before deciding the rest; the dLLM sees the grid at every call and fills its surest cell first.
Ye et al. 2024 ("Beyond Autoregression"): Sudoku, 6M parameters, MDM 100% vs AR 20.7% solved; Kim
et al. 2025 ("Train for the Worst, Plan for the Best"): the order is the point, random order fails.

The canvas: the 81 cells row by row, tokens '1'-'9' and '0' for a blank (a 10-token vocabulary).
  dLLM: the solution, blanks masked at rate t, givens always visible; 04's NELBO on the masked
        blanks (infilling). Decoding: the surest [MASK] first (04's generate), or several per call
        (lesson 10's threshold and EB-Sampler rules).
  GPT:  puzzle then solution, 162 tokens; next-token loss on the solution half; greedy decoding.
Both train through lesson 05's loop: only the objective and the data (PuzzleData) differ.
"""
import sys
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

from support import pretrained, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    parse_args_given,
    positive_int,
    random_seed,
    run_cli,
    subcommands,
)
from support.files import data_folder
from support.generate_args import check_gif, gif_path

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")
gpt = import_module("07_train_gpt")
fast = import_module("10_fast_decoding")
puzzles = import_module("sudoku_puzzles")

ROOT = Path(__file__).resolve().parent
CELLS = 81
TOKENS = "0123456789"  # token id = digit; 0 = a blank cell
UNITS = torch.tensor(puzzles.UNITS)  # (27, 9): the rows, columns and boxes, as cell indices
symmetric_batch = puzzles.symmetric_batch  # a batch of puzzles made new by Sudoku's symmetries
# How the dLLM fills the grid: (order, lesson 10's rule, or None: one cell per call); the rules'
# values chosen on validation puzzles (RESULTS.md, Sudoku)
DECODERS = {"confidence": ("confidence", None), "margin": ("margin", None),
            "random": ("random", None), "threshold": ("confidence", fast.Rule("threshold", 0.97)),
            "eb": ("entropy", fast.Rule("eb", 0.01))}
# This lesson's preset for 05's flags (Ye et al.'s 6M model is bigger; 0.8M is enough here)
PRESETS = {"sudoku": dict(seq_len=2 * CELLS, n_layer=4, n_head=4, n_embd=128, rope=False,
                          dropout=0.0, batch_size=128, lr=1e-3, warmup=100, steps=2400,
                          eval_every=200, eval_windows=200, eval_k=8, sample_len=0,
                          weight_decay=0.1)}


# --------------------------------------------------------------------------------------------------
# Data: puzzles, not windows of a stream. A row of a batch: puzzle (81) + solution (81) token ids
# --------------------------------------------------------------------------------------------------
def puzzle_folder(folder):
    """folder as a Path if it holds train.txt and val.txt; else one line on how to make them."""
    return data_folder(folder, "puzzles", "sudoku_puzzles.py")


class PuzzleData:
    """What 05's loop trains on here (TextData's members): <folder>/train.txt and val.txt, lines
    `puzzle,solution` (checked: 81 cells, digits, no given breaking the rules). Bits per blank."""

    unit = "bits/blank"
    chars_per_token = 1.0  # the objectives below already score per blank cell

    def __init__(self, folder):
        self.folder, self.tokenizer = puzzle_folder(folder), diff.CharTokenizer(TOKENS)
        self.train, self.val = (self.read(self.folder / f"{s}.txt") for s in ("train", "val"))

    @staticmethod
    def read(path):
        pairs = puzzles.read_pairs(path)  # a bad line is one error naming FILE:LINE
        if not pairs:
            raise UsageError(f"{path}: no puzzles in it")
        return torch.tensor([p + s for p, s in pairs])  # (N, 162)

    def describe(self):
        return f"{len(self.train):,} training, {len(self.val):,} validation puzzles: {self.folder}"

    def batch(self, batch_size, length, generator):  # new puzzles by Sudoku's symmetries
        return symmetric_batch(self.train, batch_size, generator)

    def val_batch(self, n, length):  # the first n validation puzzles, the same every evaluation
        if length - 1 < 2 * CELLS:
            raise UsageError(f"--seq-len {length - 1} is too short: a puzzle and its solution "
                             f"take {2 * CELLS}")
        return self.val[:n]

    def to(self, device):
        self.train = self.train.to(device)
        return self


# --------------------------------------------------------------------------------------------------
# The two objectives (05's members: loss, val_bits, score, sample)
# --------------------------------------------------------------------------------------------------
def sudoku_diffusion_loss(model, x, mask_id, generator=None):
    """Lesson 04's NELBO, infilling: only blanks are masked, givens stay visible. Nats/blank."""
    puzzle, solution = x[:, :CELLS], x[:, CELLS:]  # (B, 81) each
    t = diff.sample_times(x.size(0), generator, x.device)  # (B,) one noise level per puzzle
    _, mask = diff.forward_process(solution, t, mask_id, generator)
    mask &= puzzle == 0  # GPT vs dLLM: a given is never masked, so it never carries loss
    z = torch.where(mask, mask_id, solution)  # (B, 81)
    ce = diff.masked_cross_entropy(model(z), solution, mask)  # (B, 81), 0 where not masked
    return (diff.loss_weight(t)[:, None] * ce).sum() / (puzzle == 0).sum()


def solution_loss(model, x):
    """The GPT reads puzzle + solution[:-1] and predicts each solution cell: (B, 81) nats."""
    logits = model(x[:, :-1])[:, CELLS - 1 :]  # (B, 81, V): the positions that predict the solution
    # GPT vs dLLM: next-token loss, on the solution half only (the puzzle is the prompt)
    nats = F.cross_entropy(logits.float().flatten(0, 1), x[:, CELLS:].flatten(), reduction="none")
    return nats.view(-1, CELLS)


def dream(solve, model):
    """05's sample for a Sudoku model: the grid it writes into an empty puzzle (no givens)."""
    empty = torch.zeros(1, CELLS, dtype=torch.long, device=next(model.parameters()).device)
    grid, _ = solve(model, empty)
    return puzzles.show(grid[0].tolist()) + (
        "\n(a valid grid)" if valid(grid, grid)[0] else "\n(breaks the rules)")


class SudokuDiffusion(train.DiffusionObjective):
    """The dLLM: infill the blanks. Validation: NELBO in bits per blank cell, and puzzles solved."""

    name, trainer = "sudoku-dllm", "12_sudoku.py train --model dllm"

    def loss(self, model, x, config):
        return sudoku_diffusion_loss(model, x, config.mask_id)

    @torch.no_grad()
    def val_bits(self, model, windows, K, config):  # K noise levels per puzzle, the same each time
        g = torch.Generator(windows.device).manual_seed(0)
        nats = [sudoku_diffusion_loss(model, windows, config.mask_id, g).item() for _ in range(K)]
        return sum(nats) / K / diff.LN2

    def score(self, model, windows):
        grids, _ = solve_dllm(model, windows[:, :CELLS])
        return {"val_solved": solved(grids, windows).float().mean().item()}

    def sample(self, model, tokenizer, n, generator):
        return dream(solve_dllm, model)


class SudokuGPT(gpt.NextTokenObjective):
    """The GPT of the same size: puzzle -> solution. Validation: exact NLL per blank, and solved."""

    name, trainer = "sudoku-gpt", "12_sudoku.py train --model gpt"

    def loss(self, model, x, config=None):
        return solution_loss(model, x).sum() / (x[:, :CELLS] == 0).sum()

    @torch.no_grad()
    def val_bits(self, model, windows, K=None, config=None):
        blanks = (windows[:, :CELLS] == 0).sum().item()
        return solution_loss(model, windows).sum().item() / blanks / diff.LN2

    def score(self, model, windows):
        grids, _ = solve_gpt(model, windows[:, :CELLS])
        return {"val_solved": solved(grids, windows).float().mean().item()}

    def sample(self, model, tokenizer, n, generator):
        return dream(solve_gpt, model)


# --------------------------------------------------------------------------------------------------
# Solving and scoring
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def solve_dllm(model, puzzle, decoder="confidence", callback=None, generator=None):
    """Fill the blanks of puzzle (B, 81) with the dLLM -> (grids (B, 81), model calls). Greedy:
    the order is the only choice. One cell per call, or as lesson 10's rule decides. decoder: a
    name in DECODERS, or an (order, rule) pair (the benchmark's other thresholds)."""
    canvas = puzzle.masked_fill(puzzle == 0, model.config.mask_id)  # GPT vs dLLM: all blanks seen
    order, rule = DECODERS[decoder] if isinstance(decoder, str) else decoder
    sampling = diff.Sampling(temperature=0, order=order, generator=generator)
    if rule is not None:
        return fast.generate_fast(model, canvas, sampling, rule=rule, callback=callback)
    return diff.generate(model, canvas, CELLS, sampling, callback)


@torch.no_grad()
def solve_gpt(model, puzzle, callback=None):
    """Write the solution after the puzzle, cell by cell, greedy, with lesson 03's KV cache. A given
    is copied, not guessed: the fairest GPT never loses a cell the puzzle states. -> (grids, 81)"""
    cache = tfm.KVCache(model.config, puzzle.size(0), 2 * CELLS, puzzle.device)
    logits = model(puzzle, cache=cache, start=0)[:, -1]  # (B, V): one call reads the whole puzzle
    cells = []
    for i in range(CELLS):  # GPT vs dLLM: cell i is committed before any later answer is seen
        cells.append(torch.where(puzzle[:, i] > 0, puzzle[:, i], logits.argmax(-1)))  # (B,)
        if callback is not None:  # the grid so far: solution[:i+1], then the rest of the puzzle
            callback(i + 1, torch.cat([torch.stack(cells, 1), puzzle[:, i + 1 :]], 1))
        if i < CELLS - 1:
            logits = model(cells[-1][:, None], cache=cache, start=CELLS + i)[:, -1]
    return torch.stack(cells, 1), CELLS


def valid(grid, puzzle):
    """(B,) every row, column and box holds 1..9 once, and every given is kept."""
    units = grid[:, UNITS.to(grid.device)].sort(-1).values  # (B, 27, 9)
    rules = (units == torch.arange(1, 10, device=grid.device)).all(-1).all(-1)
    return rules & ((puzzle == 0) | (grid == puzzle)).all(-1)


def solved(grid, pairs):
    """(B,) every cell equals the solution. pairs: (B, 162) puzzle + solution. (A unique puzzle has
    one valid completion: solved and valid agree; valid() catches a broken puzzle or metric.)"""
    return (grid == pairs[:, CELLS:]).all(-1)


def load_solver(kind, checkpoint=None, use_pretrained=False, device="cpu", log=None):
    """The Sudoku model of `kind` ('dllm' or 'gpt'): --checkpoint, else your run, else shipped;
    log(line) says which (default: on stderr)."""
    path = pretrained.choose(checkpoint, ROOT / "checkpoints" / f"sudoku-{kind}", f"sudoku-{kind}",
                             use_pretrained, log=log or (lambda s: print(s, file=sys.stderr)))
    model, _, info = gen.load(path, kind, device)
    if info["objective"] != f"sudoku-{kind}":
        raise UsageError(f"{info['path']} is not a Sudoku model (it is {info['objective']})")
    return model


def model_guide(model):
    """sudoku_puzzles.search's guide, one dLLM call per branch point: of the blanks with the fewest
    legal digits the one the model is surest of, its digits in the model's order. -> guide, calls"""
    calls, device = [0], next(model.parameters()).device

    def guide(grid, cands):
        x = torch.tensor([grid], device=device)
        logits = model(x.masked_fill(x == 0, model.config.mask_id))[0]  # (81, 10)
        probs = logits.float().softmax(-1).cpu()
        calls[0] += 1
        fewest = min(len(c) for c in cands.values())
        cell = max((i for i, c in cands.items() if len(c) == fewest),
                   key=lambda i: max(probs[i, d] for d in cands[i]))
        return cell, sorted(cands[cell], key=lambda d: -probs[cell, d])

    return guide, calls


@torch.no_grad()
def solve_search(model, puzzle, max_calls=1000):
    """--search: the rules fill what they force; the dLLM chooses at every branch point; a
    contradiction backtracks to the next-best choice. -> (grids (B, 81), 0 if it gave up; calls)"""
    grids, calls = [], []
    for row in puzzle.tolist():
        guide, n = model_guide(model)
        found, _ = puzzles.search(row, guide, max_nodes=max_calls)
        grids.append(found or row)
        calls.append(n[0])
    return torch.tensor(grids, device=puzzle.device), torch.tensor(calls)


NO_ANSWER = "no valid answer"


def solve_file(args):
    """solve FILE: a line per puzzle: the model's answer (81 digits) if it is a valid solution (each
    row, column and box holds 1-9 once, every given kept), else `no valid answer`, never a wrong
    grid; totals on stderr. Printed batch by batch: Ctrl-C keeps what is solved (exit 130)."""
    grid = torch.tensor(puzzles.read_puzzles(args.file))
    model = load_solver(args.model, args.checkpoint, args.pretrained, args.device)
    device = next(model.parameters()).device
    g = torch.Generator(device).manual_seed(args.seed)  # --decoder random's order
    answers, searched = [], []
    with runtime.stop_cleanly():
        for chunk in grid.split(args.batch):
            chunk = chunk.to(device)
            with runtime.autocast(device.type, runtime.resolve_dtype("auto", device.type)):
                if args.search:  # the model guides, the rules check: reported apart
                    out, calls = solve_search(model, chunk, args.max_calls)
                    searched += calls.tolist()
                elif args.model == "dllm":
                    out = solve_dllm(model, chunk, args.decoder, generator=g)[0]
                else:
                    out = solve_gpt(model, chunk)[0]
            ok = valid(out, chunk).tolist()  # a [MASK] left, or a repeated digit: not a solution
            lines = ["".join(map(str, r)) if v else NO_ANSWER for r, v in zip(out.tolist(), ok)]
            print("\n".join(lines), flush=True)
            answers += lines
    failed = [str(i) for i, a in enumerate(answers, 1) if a == NO_ANSWER]
    calls = sum(searched) / max(1, len(searched))
    how = f" with search, {calls:.1f} model calls per puzzle" if args.search else ""
    lines = f"line{'s' * (len(failed) > 1)} {', '.join(failed[:20])}{' ...' * (len(failed) > 20)}"
    print(f"{len(answers) - len(failed)} of {len(answers)} puzzles solved{how} (a valid grid "
          f"keeping every given){f'; no valid answer for {lines}' * bool(failed)}", file=sys.stderr)
    return answers


# --------------------------------------------------------------------------------------------------
# The demo: fresh puzzles, both models, the order each one fills a grid
# --------------------------------------------------------------------------------------------------
def demo(args):
    import random

    check_gif(args)  # before any work: a writable folder, and no file of the user's replaced
    rng, seen = random.Random(args.seed), set()
    print(f"making {args.puzzles_per_band} fresh puzzles per band (seed {args.seed}) ...")
    bands = {name: puzzles.make_split(args.puzzles_per_band, (lo, min(hi, 50)), rng, seen)
             for name, (lo, hi) in puzzles.BANDS.items() if name != "17-27"}
    dllm = load_solver("dllm", None, args.pretrained, args.device)
    model_gpt = load_solver("gpt", None, args.pretrained, args.device)
    print(f"\n{'givens':>8} | dLLM, surest cell first | dLLM, random order | GPT, left to right")
    for name, pairs in bands.items():
        x = torch.tensor([p + s for p, s in pairs])  # (N, 162)
        grids = [solve_dllm(dllm, x[:, :CELLS], d)[0] for d in ("confidence", "random")]
        grids.append(solve_gpt(model_gpt, x[:, :CELLS])[0])
        rates = [solved(g, x).float().mean().item() for g in grids]
        print(f"{name:>8} | {rates[0]:>23.0%} | {rates[1]:>19.0%} | {rates[2]:>18.0%}")
    if args.show_steps or args.gif:
        puzzle, solution = bands["28-35"][0]
        show_order(dllm, model_gpt, torch.tensor([puzzle + solution]), args)


def show_order(dllm, model_gpt, pair, args):
    """Which call filled each cell: the dLLM easiest-first beside the GPT's raster order (a GIF)."""
    puzzle, frames = pair[:, :CELLS], {"dllm": [], "gpt": []}
    keep = lambda k: (lambda i, x: frames[k].append(x[0].tolist()))  # a callback per model
    grid_d, _ = solve_dllm(dllm, puzzle, "confidence", keep("dllm"))
    grid_g, _ = solve_gpt(model_gpt, puzzle, keep("gpt"))
    blank = (puzzle[0] == 0).tolist()
    order = {k: [next((i for i, f in enumerate(fs, 1) if 0 < f[c] < 10), 0) if blank[c] else 0
                 for c in range(CELLS)] for k, fs in frames.items()}  # the call that filled cell c
    print("\nthe call that filled each blank cell ('.' = a given), on the same puzzle:")
    print(f"   {'dLLM, surest cell first':<35}GPT, left to right")
    cells = lambda k, r: " ".join(f"{v:>2}" if v else " ." for v in order[k][r * 9 : r * 9 + 9])
    for r in range(9):
        print("   " + "  ".join(cells(k, r) for k in ("dllm", "gpt")))
    ok = ["solved it" if solved(g, pair)[0] else "got it wrong" for g in (grid_d, grid_g)]
    grids = puzzles.show(grid_d[0].tolist(), grid_g[0].tolist(), titles=("dLLM", "GPT"))
    print(f"dLLM {ok[0]}; GPT {ok[1]}\n\n{grids}")
    if args.gif:
        from support.gif import write_gif

        start, n = puzzle[0].tolist(), max(len(f) for f in frames.values())
        padded = [[start] + fs + fs[-1:] * (n - len(fs)) for fs in (frames["dllm"], frames["gpt"])]
        write_gif(args.gif, [puzzles.show(a, b, titles=("dLLM: surest first", "GPT: left to right"))
                             for a, b in zip(*padded)], width=48, fps=4)
        print(f"wrote {args.gif}")


# --------------------------------------------------------------------------------------------------
# The command line: the demo, `train` (05's flags) or `solve FILE`
# --------------------------------------------------------------------------------------------------
def sudoku_parser():
    p = ArgumentParser(description=__doc__)
    own = "the shipped model(s) even if you trained your own"
    p.add_argument("--puzzles-per-band", type=positive_int, default=20, help="puzzles per band")
    p.add_argument("--show-steps", action="store_true", help="print the order of each model")
    p.add_argument("--gif", metavar="PATH", type=gif_path, help="also write it as an animated GIF")
    p.add_argument("--force", action="store_true", help="--gif may replace a file not made here")
    p.add_argument("--pretrained", action="store_true", help=own)
    p.add_argument("--seed", type=random_seed, default=0, help="random seed: the demo's puzzles")
    p.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to run")
    sub_parser = subcommands(p, ["train", "solve"])
    about = "train through lesson 05's loop (its flags; --puzzles DIR, not --data)"
    t = train.training_parser(None, ROOT / "checkpoints" / "sudoku-dllm", presets=PRESETS,
                              parser=sub_parser("train", about),
                              folder=("--puzzles", ROOT / "data" / "sudoku"))
    t.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model trains")
    s = sub_parser("solve", "solve the puzzles of a file: one answer per line, checked")
    s.add_argument("file", help="one puzzle per line: 81 cells, '.' or 0 for a blank")
    s.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model solves")
    s.add_argument("--checkpoint", help="a run directory or Hub export (default: your run, else "
                   "the shipped model)")
    s.add_argument("--pretrained", action="store_true", help=own)
    s.add_argument("--decoder", choices=list(DECODERS), default="confidence",
                   help="the dLLM's order or rule")
    s.add_argument("--batch", type=positive_int, default=256, help="puzzles per model call")
    s.add_argument("--search", action="store_true", help="the rules propagate, the dLLM chooses "
                   "at each branch point, a contradiction backtracks (apart from the pure model)")
    s.add_argument("--max-calls", type=positive_int, default=1000,
                   help="--search: give up a puzzle after this many")
    s.add_argument("--seed", type=random_seed, default=0, help="seed of --decoder random")
    s.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to run")
    return p


def main(argv=None):
    args = parse_args_given(sudoku_parser(), argv)
    if args.command == "solve":
        if args.search and args.model == "gpt":
            raise UsageError("--search is the dLLM's: it asks for every blank's digits at once, "
                             "which a GPT writing left to right cannot give")
        if args.search and "decoder" in args.given:
            raise UsageError("--decoder is the pure model's: with --search the rules and the model "
                             "choose")
        if "max_calls" in args.given and not args.search:
            raise UsageError("--max-calls is --search's: add --search")
        return solve_file(args)
    if args.command == "train":
        args = train.resolve(args, presets=PRESETS, default_data=None,
                             default_out=lambda a: ROOT / "checkpoints" / f"sudoku-{a.model}")
        objective = SudokuDiffusion() if args.model == "dllm" else SudokuGPT()
        return train.train(args, objective, PuzzleData(args.puzzles))
    return demo(args)


if __name__ == "__main__":
    run_cli(main)
