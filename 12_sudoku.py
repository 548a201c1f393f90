"""Lesson 12: Sudoku, where the dLLM wins. The same Transformer trained twice on the same puzzles.

    python 12_sudoku.py --show-steps                 # demo: the shipped models solve fresh puzzles, and the order
    python sudoku_puzzles.py                         # data/sudoku/: training, validation, test puzzles (18 min)
    python 12_sudoku.py train --model dllm           # 27 min on 2 CPU cores -> checkpoints/sudoku-dllm
    python 12_sudoku.py train --model gpt            # the GPT of the same size -> checkpoints/sudoku-gpt
    python 12_sudoku.py solve FILE --model dllm      # a puzzle per line in; per line out its answer, checked
    python 12_sudoku.py solve FILE --search          # the rules propagate, the dLLM chooses, contradictions backtrack

Text is written left to right, and there a GPT of the same size is hard to beat (lessons 07-11). A Sudoku is not:
cell 1 may be forced only by what cell 81 holds. The GPT reads the puzzle and must then commit the solution's
cells in raster order, each before it has decided the cells after it. The dLLM sees the whole grid at every call
and fills the cell it is surest of first; every filled cell makes the next ones easier, the way a person solves.
Ye et al. 2024 ("Beyond Autoregression", ICLR 2025): Sudoku, 6M parameters, MDM 100% vs AR 20.7% solved; Kim et
al. 2025 ("Train for the Worst, Plan for the Best"): the order is the point, random order fails.

The canvas: the 81 cells row by row, tokens '1'-'9' and '0' for a blank (a 10-token vocabulary).
  dLLM: the solution with its blank cells masked at rate t; the givens always visible; lesson 04's NELBO on the
        masked blanks (infilling). Decoding: the surest [MASK] first (04's generate, confidence/margin/random),
        or several per call (lesson 10's threshold and EB-Sampler rules).
  GPT:  puzzle then solution, 162 tokens; next-token loss on the solution half only; greedy decoding.
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
    run_cli,
    subcommands,
)

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
DECODERS = {  # how the dLLM fills the grid: (order, lesson 10's rule or None = one cell per call); the rules'
    "confidence": ("confidence", None), "margin": ("margin", None), "random": ("random", None),  # values
    "threshold": ("confidence", fast.Rule("threshold", 0.97)), "eb": ("entropy", fast.Rule("eb", 0.1))}  # chosen
# on validation puzzles (RESULTS.md, Sudoku)
# This lesson's preset for 05's flags (Ye et al.'s 6M model is bigger; 0.8M is enough here)
PRESETS = {"sudoku": dict(seq_len=2 * CELLS, n_layer=4, n_head=4, n_embd=128, rope=False, dropout=0.0, batch_size=128,
                          lr=1e-3, warmup=100, steps=2400, eval_every=200, eval_windows=200, eval_k=8, sample_len=0,
                          weight_decay=0.1)}


# ---------------------------------------------------------------------------------------------------------
# Data: puzzles, not windows of a stream. Each row of a batch is puzzle (81) + solution (81) token ids.
# ---------------------------------------------------------------------------------------------------------
def symmetric_batch(data, batch_size, generator=None):
    """batch_size puzzles (B, 162), each turned into a new one by a random symmetry of Sudoku: relabel the digits,
    permute the bands and the rows inside each, the same for columns, maybe transpose. A few thousand unique
    puzzles become as many distinct training puzzles as we need (sudoku_puzzles.py)."""
    B = batch_size
    pick = torch.randint(len(data), (B,), generator=generator)
    relabel = torch.cat([torch.zeros(B, 1, dtype=torch.long),  # 0 (blank) stays 0
                         torch.rand(B, 9, generator=generator).argsort(1) + 1], 1)  # (B, 10)

    def lines():  # (B, 9): 3 bands in random order, the 3 lines inside each in random order
        bands = torch.rand(B, 3, generator=generator).argsort(1)[:, :, None] * 3  # (B, 3, 1)
        return (bands + torch.rand(B, 3, 3, generator=generator).argsort(2)).flatten(1)

    cell = lines()[:, :, None] * 9 + lines()[:, None, :]  # (B, 9, 9): which old cell lands at each new one
    flip = torch.rand(B, generator=generator) < 0.5
    cell = torch.where(flip[:, None, None], cell.transpose(1, 2), cell).flatten(1)  # (B, 81)
    x = data[pick.to(data.device)].view(B, 2, CELLS)  # (B, 2, 81): puzzle, solution
    x = x.gather(2, cell.to(data.device)[:, None, :].expand(B, 2, CELLS))
    return relabel.to(data.device).gather(1, x.flatten(1))  # (B, 162)


class PuzzleData:
    """What 05's loop trains on here (TextData's members): puzzles from <folder>/train.txt and val.txt, each line
    `puzzle,solution` (checked: 81 cells, digits, no given breaking the rules). Reported in bits per blank cell."""

    unit = "bits/blank"
    chars_per_token = 1.0  # the objectives below already score per blank cell

    def __init__(self, folder):
        folder = Path(folder)
        if not (folder / "train.txt").is_file() or not (folder / "val.txt").is_file():
            raise UsageError(f"no puzzles in {folder}: make them with `python sudoku_puzzles.py --out {folder}`")
        self.tokenizer = diff.CharTokenizer(TOKENS)
        self.folder, self.train, self.val = folder, *(self.read(folder / f"{n}.txt") for n in ("train", "val"))

    @staticmethod
    def read(path):
        pairs = puzzles.read_pairs(path)  # a bad line is one error naming FILE:LINE
        if not pairs:
            raise UsageError(f"{path}: no puzzles in it")
        return torch.tensor([p + s for p, s in pairs])  # (N, 162)

    def describe(self):
        return f"{len(self.train):,} training and {len(self.val):,} validation puzzles from {self.folder}"

    def batch(self, batch_size, length, generator):  # every batch: new puzzles by Sudoku's symmetries
        return symmetric_batch(self.train, batch_size, generator)

    def val_batch(self, n, length):  # the first n validation puzzles, the same every evaluation
        if length - 1 < 2 * CELLS:
            raise UsageError(f"--seq-len {length - 1} is too short: a puzzle and its solution take {2 * CELLS}")
        return self.val[:n]

    def to(self, device):
        self.train = self.train.to(device)
        return self


# ---------------------------------------------------------------------------------------------------------
# The two objectives (05's members: loss, val_bits, score, sample)
# ---------------------------------------------------------------------------------------------------------
def sudoku_diffusion_loss(model, x, mask_id, generator=None):
    """Lesson 04's NELBO, infilling: only blank cells are ever masked, givens stay visible. -> nats per blank."""
    puzzle, solution = x[:, :CELLS], x[:, CELLS:]  # (B, 81) each
    t = diff.sample_times(x.size(0), generator, x.device)  # (B,) one noise level per puzzle
    _, mask = diff.forward_process(solution, t, mask_id, generator)
    mask &= puzzle == 0  # GPT vs dLLM: a given is never masked, so it never carries loss
    z = torch.where(mask, mask_id, solution)  # (B, 81)
    ce = diff.masked_cross_entropy(model(z), solution, mask)  # (B, 81), 0 where not masked
    return (diff.loss_weight(t)[:, None] * ce).sum() / (puzzle == 0).sum()


def solution_loss(model, x):
    """The GPT reads puzzle + solution[:-1] and predicts each solution cell: (B, 81) nats, the puzzle half free."""
    logits = model(x[:, :-1])[:, CELLS - 1 :]  # (B, 81, V): the positions that predict the solution
    # GPT vs dLLM: next-token loss, on the solution half only (the puzzle is the prompt)
    return F.cross_entropy(logits.float().flatten(0, 1), x[:, CELLS:].flatten(), reduction="none").view(-1, CELLS)


def dream(solve, model):
    """05's sample for a Sudoku model: the grid it writes into an empty puzzle (no givens at all)."""
    grid, _ = solve(model, torch.zeros(1, CELLS, dtype=torch.long, device=next(model.parameters()).device))
    return puzzles.show(grid[0].tolist()) + ("\n(a valid grid)" if valid(grid, grid)[0] else "\n(breaks the rules)")


class SudokuDiffusion(train.DiffusionObjective):
    """The dLLM: infill the blank cells. Validation: its NELBO in bits per blank cell, and puzzles solved."""

    name, trainer = "sudoku-dllm", "12_sudoku.py train --model dllm"

    def loss(self, model, x, config):
        return sudoku_diffusion_loss(model, x, config.mask_id)

    @torch.no_grad()
    def val_bits(self, model, windows, K, config):  # K noise levels per puzzle, the same draws every evaluation
        g = torch.Generator(windows.device).manual_seed(0)
        return sum(sudoku_diffusion_loss(model, windows, config.mask_id, g).item() for _ in range(K)) / K / 0.6931

    def score(self, model, windows):
        return {"val_solved": solved(solve_dllm(model, windows[:, :CELLS])[0], windows).float().mean().item()}

    def sample(self, model, tokenizer, n, generator):
        return dream(solve_dllm, model)


class SudokuGPT(gpt.NextTokenObjective):
    """The GPT of the same size: puzzle -> solution. Validation: exact NLL per blank cell, and puzzles solved."""

    name, trainer = "sudoku-gpt", "12_sudoku.py train --model gpt"

    def loss(self, model, x, config=None):
        return solution_loss(model, x).sum() / (x[:, :CELLS] == 0).sum()

    @torch.no_grad()
    def val_bits(self, model, windows, K=None, config=None):
        return solution_loss(model, windows).sum().item() / (windows[:, :CELLS] == 0).sum().item() / 0.6931

    def score(self, model, windows):
        return {"val_solved": solved(solve_gpt(model, windows[:, :CELLS])[0], windows).float().mean().item()}

    def sample(self, model, tokenizer, n, generator):
        return dream(solve_gpt, model)


# ---------------------------------------------------------------------------------------------------------
# Solving and scoring
# ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def solve_dllm(model, puzzle, decoder="confidence", callback=None, generator=None):
    """Fill the blanks of puzzle (B, 81) with the dLLM -> (grids (B, 81), model calls). Greedy (temperature 0):
    the order is the only choice. One cell per call, or as lesson 10's rule decides (threshold / eb).
    decoder: a name in DECODERS, or an (order, rule) pair (the benchmark's other thresholds)."""
    canvas = puzzle.masked_fill(puzzle == 0, model.config.mask_id)  # GPT vs dLLM: blanks are [MASK], all seen
    order, rule = DECODERS[decoder] if isinstance(decoder, str) else decoder
    sampling = diff.Sampling(temperature=0, order=order, generator=generator)
    if rule is not None:
        return fast.generate_fast(model, canvas, sampling, rule=rule, callback=callback)
    return diff.generate(model, canvas, CELLS, sampling, callback)


@torch.no_grad()
def solve_gpt(model, puzzle, callback=None):
    """Write the solution after the puzzle, cell by cell, greedy, with lesson 03's KV cache. A given cell is copied
    from the puzzle, not guessed: the fairest GPT never loses a cell the puzzle states. -> (grids (B, 81), 81 calls)"""
    cache = tfm.KVCache(model.config, puzzle.size(0), 2 * CELLS, puzzle.device)
    logits = model(puzzle, cache=cache, start=0)[:, -1]  # (B, V): one call reads the whole puzzle
    cells = []
    for i in range(CELLS):  # GPT vs dLLM: cell i is committed before the model has seen any later answer
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
    """(B,) every cell equals the solution. pairs: (B, 162) puzzle + solution. (A unique puzzle has one valid
    completion, so solved and valid agree; valid() is reported too, to catch a broken puzzle or metric.)"""
    return (grid == pairs[:, CELLS:]).all(-1)


def load_solver(kind, checkpoint=None, use_pretrained=False, device="cpu"):
    """The Sudoku model of `kind` ('dllm' or 'gpt'): --checkpoint, else your run, else the shipped one."""
    path = pretrained.choose(checkpoint, ROOT / "checkpoints" / f"sudoku-{kind}", f"sudoku-{kind}", use_pretrained,
                             log=lambda s: print(s, file=sys.stderr))
    model, _, info = gen.load(path, kind, device)
    if info["objective"] != f"sudoku-{kind}":
        raise UsageError(f"{info['path']} is not a Sudoku model (it is a {info['objective']} model)")
    return model


def model_guide(model):
    """sudoku_puzzles.search's guide, one dLLM call per branch point: of the blanks with the fewest legal digits the
    one the model is surest of, its digits in the model's order. -> (guide, calls: a list counting the calls)."""
    calls, device = [0], next(model.parameters()).device

    def guide(grid, cands):
        x = torch.tensor([grid], device=device)
        probs = model(x.masked_fill(x == 0, model.config.mask_id))[0].float().softmax(-1).cpu()  # (81, 10)
        calls[0] += 1
        fewest = min(len(c) for c in cands.values())
        cell = max((i for i, c in cands.items() if len(c) == fewest), key=lambda i: max(probs[i, d] for d in cands[i]))
        return cell, sorted(cands[cell], key=lambda d: -probs[cell, d])

    return guide, calls


@torch.no_grad()
def solve_search(model, puzzle, max_calls=1000):
    """--search: the rules' propagation fills what they force; the dLLM chooses at every branch point; a contradiction
    sends the search back to its next-best choice. -> (grids (B, 81), 0 where it gave up; model calls (B,))."""
    grids, calls = [], []
    for row in puzzle.tolist():
        guide, n = model_guide(model)
        found, _ = puzzles.search(row, guide, max_nodes=max_calls)
        grids.append(found or row)
        calls.append(n[0])
    return torch.tensor(grids, device=puzzle.device), torch.tensor(calls)


NO_ANSWER = "no valid answer"


def solve_file(args):
    """solve FILE: one line per puzzle, in order: the model's answer (81 digits) when it is a valid solution (each
    row, column and box holds 1-9 once, every given kept), else `no valid answer`, never a wrong grid; the totals on
    stderr. Batched; printed as each batch is done, so Ctrl-C keeps what is solved (exit 130)."""
    grid = torch.tensor(puzzles.read_puzzles(args.file))
    model = load_solver(args.model, args.checkpoint, args.pretrained, args.device)
    device = next(model.parameters()).device
    g = torch.Generator(device).manual_seed(args.seed)  # --decoder random's order
    answers, searched = [], []
    with runtime.stop_cleanly():
        for chunk in grid.split(args.batch):
            chunk = chunk.to(device)
            with runtime.autocast(device.type, runtime.resolve_dtype("auto", device.type)):
                if args.search:  # the model guides, the rules check: reported apart from the pure model's answers
                    out, calls = solve_search(model, chunk, args.max_calls)
                    searched += calls.tolist()
                else:
                    out = solve_dllm(model, chunk, args.decoder, generator=g)[0] if args.model == "dllm" else (
                        solve_gpt(model, chunk)[0])
            ok = valid(out, chunk).tolist()  # a [MASK] a rule left, or a repeated digit: not a solution
            lines = ["".join(map(str, row)) if v else NO_ANSWER for row, v in zip(out.tolist(), ok)]
            print("\n".join(lines), flush=True)
            answers += lines
    failed = [str(i) for i, a in enumerate(answers, 1) if a == NO_ANSWER]
    how = f" with search, {sum(searched) / len(searched):.1f} model calls per puzzle" if args.search else ""
    print(f"{len(answers) - len(failed)} of {len(answers)} puzzles solved{how} (a valid grid keeping every given)" + (
        f"; no valid answer for line{'s' * (len(failed) > 1)} {', '.join(failed[:20])}{' ...' * (len(failed) > 20)}"
        if failed else ""), file=sys.stderr)
    return answers


# ---------------------------------------------------------------------------------------------------------
# The demo: fresh puzzles, both models, the order each one fills a grid
# ---------------------------------------------------------------------------------------------------------
def demo(args):
    import random

    rng, seen = random.Random(args.seed), set()
    print(f"making {args.puzzles_per_band} fresh puzzles in each band (sudoku_puzzles.py, seed {args.seed}) ...")
    bands = {name: puzzles.make_split(args.puzzles_per_band, (lo, min(hi, 50)), rng, seen)
             for name, (lo, hi) in puzzles.BANDS.items() if name != "17-27"}
    dllm = load_solver("dllm", None, args.pretrained, args.device)
    model_gpt = load_solver("gpt", None, args.pretrained, args.device)
    print(f"\n{'givens':>8} | dLLM, surest cell first | dLLM, random order | GPT, left to right")
    for name, pairs in bands.items():
        x = torch.tensor([p + s for p, s in pairs])  # (N, 162)
        grids = [solve_dllm(dllm, x[:, :CELLS], d)[0] for d in ("confidence", "random")]
        rates = [solved(g, x).float().mean().item() for g in grids + [solve_gpt(model_gpt, x[:, :CELLS])[0]]]
        print(f"{name:>8} | {rates[0]:>23.0%} | {rates[1]:>19.0%} | {rates[2]:>18.0%}")
    if args.show_steps or args.gif:
        show_order(dllm, model_gpt, torch.tensor([bands["28-35"][0][0] + bands["28-35"][0][1]]), args)


def show_order(dllm, model_gpt, pair, args):
    """Which call filled each cell: the dLLM easiest-first beside the GPT's raster order (and a GIF of both)."""
    puzzle, frames = pair[:, :CELLS], {"dllm": [], "gpt": []}
    grid_d, _ = solve_dllm(dllm, puzzle, "confidence", lambda i, x: frames["dllm"].append(x[0].tolist()))
    grid_g, _ = solve_gpt(model_gpt, puzzle, lambda i, x: frames["gpt"].append(x[0].tolist()))
    order = {k: [next((i for i, f in enumerate(fs, 1) if 0 < f[c] < 10), 0) if puzzle[0, c] == 0 else 0
                 for c in range(CELLS)] for k, fs in frames.items()}  # the first call after which cell c is filled
    print("\nthe call that filled each blank cell ('.' = a given), on the same puzzle:")
    print(f"   {'dLLM, surest cell first':<35}GPT, left to right")
    for r in range(9):
        print("   " + "  ".join(" ".join(f"{v:>2}" if v else " ." for v in order[k][r * 9 : r * 9 + 9])
                                 for k in ("dllm", "gpt")))
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


# ---------------------------------------------------------------------------------------------------------
# The command line: the demo, `train` (05's flags) or `solve FILE`
# ---------------------------------------------------------------------------------------------------------
def sudoku_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--puzzles-per-band", type=positive_int, default=20, help="fresh puzzles per band")
    p.add_argument("--show-steps", action="store_true", help="print the order each model fills one grid")
    p.add_argument("--gif", metavar="PATH", help="also write that as an animated GIF")
    p.add_argument("--pretrained", action="store_true", help="use the shipped models even if you trained your own")
    p.add_argument("--seed", type=int, default=0, help="random seed: the demo's puzzles")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run")
    sub_parser = subcommands(p, ["train", "solve"])
    t = train.training_parser(None, ROOT / "checkpoints" / "sudoku-dllm", presets=PRESETS, parser=sub_parser(
        "train", "train through lesson 05's loop (its flags; --data is --puzzles here)"))
    t.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model trains")
    t.add_argument("--puzzles", default=str(ROOT / "data" / "sudoku"), help="folder with train.txt and val.txt")
    t.set_defaults(sample_len=None, weight_decay=None)  # unset -> this lesson's preset
    s = sub_parser("solve", "solve the puzzles of a file: one answer per line, checked")
    s.add_argument("file", help="one puzzle per line: 81 cells, '.' or 0 for a blank")
    s.add_argument("--model", choices=["dllm", "gpt"], default="dllm", help="which model solves")
    s.add_argument("--checkpoint", help="a run directory or Hub export (default: your run, else the shipped model)")
    s.add_argument("--pretrained", action="store_true", help="use the shipped model even if you trained your own")
    s.add_argument("--decoder", choices=list(DECODERS), default="confidence", help="the dLLM's order or rule")
    s.add_argument("--batch", type=positive_int, default=256, help="puzzles per model call")
    s.add_argument("--search", action="store_true", help="the rules propagate, the dLLM chooses at each branch "
                   "point, a contradiction backtracks (reported apart from the pure model)")
    s.add_argument("--max-calls", type=positive_int, default=1000, help="--search: give up a puzzle after this many")
    s.add_argument("--seed", type=int, default=0, help="random seed: --decoder random's order")
    s.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run")
    return p


def main(argv=None):
    args = parse_args_given(sudoku_parser(), argv)
    if args.command == "solve":
        if args.search and args.model == "gpt":
            raise UsageError("--search is the dLLM's: it asks for every blank's digits at once, which a GPT "
                             "writing left to right cannot give")
        if args.search and "decoder" in args.given:
            raise UsageError("--decoder is the pure model's: with --search the rules and the model choose")
        if "max_calls" in args.given and not args.search:
            raise UsageError("--max-calls is --search's: add --search")
        return solve_file(args)
    if args.command == "train":
        if "data" in args.given:
            raise UsageError("--data is a text corpus; Sudoku reads --puzzles DIR")
        args = train.resolve(args, presets=PRESETS, default_data=None,
                             default_out=lambda a: ROOT / "checkpoints" / f"sudoku-{a.model}")
        objective = SudokuDiffusion() if args.model == "dllm" else SudokuGPT()
        return train.train(args, objective, PuzzleData(args.puzzles))
    return demo(args)


if __name__ == "__main__":
    run_cli(main)
