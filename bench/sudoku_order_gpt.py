"""A fairer GPT for Sudoku: it writes the solution in the order a solver fills it, as (cell, digit) pairs.

    python bench/sudoku_order_gpt.py --out RUN                  # lesson 05's loop and flags; ~1 h on 2 CPU cores
    python bench/sudoku.py --models gpt --order-gpt RUN         # then every test band, beside the other models
    python bench/sudoku_order_gpt.py --diagnose RUN             # what it learned: the cells, the digits

Lesson 12's GPT writes the 81 cells in raster order and must commit cell 1 before the cells that force it; it
solves almost nothing beyond the easiest band. That is not a fair picture of autoregression: Shah et al. 2024
("Causal language modeling can elicit search and reasoning capabilities on logic puzzles") and Ye et al. 2024 train
a GPT on the order a solver fills the grid, and it learns to solve. Here the same Transformer shape as lesson 12's
GPT reads the puzzle (81 tokens) and then writes, for every blank, a position token (which cell: 81 of them) and
the digit, easiest cell first:

    puzzle (81 digit tokens, 0 = blank) | cell, digit | cell, digit | ...      (81 + 2 x blanks tokens)

"Easiest" is a human solver's rule, computed from the grid so far: a cell with one legal digit (a naked single) or
a cell that is the only place left for some digit in its row, column or box (a hidden single) first, else the blank
with the fewest legal digits; ties by cell index. The digit is always the solution's, so the sequence never
backtracks. Decoding is greedy: the GPT picks the cell (among the blanks still open) and then its digit, two model
calls per blank with lesson 03's KV cache; no rule is checked (the pure model, as lesson 12's rows).

The data are lesson 12's puzzles and symmetries (PuzzleData), the sequences made per batch after the symmetry;
everything else is lesson 12's GPT: its preset (4 layers, width 128, batch 128, 2,400 steps), 05's loop and flags.
Validation: bits per blank of the pairs (cell + digit; not comparable to lesson 12's solution NLL: the order is
part of it), the digit tokens alone, and the share of validation puzzles solved.
"""
import sys
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support.cli import UsageError, parse_args_given, refuse_unused, run_cli

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")
gpt = import_module("07_train_gpt")
S = import_module("12_sudoku")
P = import_module("sudoku_puzzles")

ROOT = Path(__file__).resolve().parent.parent
CELLS, POS0 = S.CELLS, len(S.TOKENS)  # token ids: 0-9 as lesson 12 (0 = blank, also the padding), 10 + cell
MAX_BLANKS = CELLS - 17  # the fewest givens a unique Sudoku can have
SEQ = CELLS + 2 * MAX_BLANKS  # 209 tokens: the longest sequence
TOKENIZER_TOKENS = S.TOKENS + "".join(chr(0x100 + i) for i in range(CELLS))  # cell i shown as one letter
PRESETS = {"sudoku": {**S.PRESETS["sudoku"], "seq_len": SEQ}}
PEERS = torch.zeros(CELLS, CELLS)
for _i, _peers in enumerate(P.PEERS):
    PEERS[_i, _peers] = 1.0


def legal_digits(grid):
    """(B, 81, 9) bool: digit d+1 is legal in blank cell i (no peer holds it)."""
    held = PEERS.to(grid.device) @ F.one_hot(grid, 10)[..., 1:].float()  # (B, 81, 9): peers holding each digit
    return (held == 0) & (grid == 0)[..., None]


def singles(grid):
    """-> (legal digits per cell (B, 81), the blanks a person fills without a guess (B, 81) bool): one legal digit
    (a naked single), or the only place left for some digit in a row, column or box (a hidden single)."""
    units = S.UNITS.to(grid.device)  # (27, 9) cell indices
    legal = legal_digits(grid)  # (B, 81, 9)
    n = legal.sum(-1)  # (B, 81)
    in_unit = legal[:, units]  # (B, 27, 9 cells, 9 digits)
    only_place = in_unit & (in_unit.sum(2, keepdim=True) == 1)  # the one cell of its unit for that digit
    hidden = torch.zeros_like(n).scatter_add_(1, units.flatten().expand(len(grid), -1),
                                              only_place.any(-1).flatten(1).long()) > 0  # (B, 81)
    return n, ((n == 1) | hidden) & (grid == 0)


def solver_order(puzzle, solution):
    """(B, 81) each -> (B, MAX_BLANKS): the blanks in a solver's order, -1 after the last. Naked or hidden singles
    first, else the fewest legal digits; ties by index. The solution's digit is written each time."""
    grid = puzzle.clone()
    order = torch.full((len(grid), MAX_BLANKS), -1, dtype=torch.long, device=grid.device)
    rows = torch.arange(len(grid), device=grid.device)
    for k in range(int((puzzle == 0).sum(1).max())):
        n, single = singles(grid)
        score = torch.where(single, 1, n).masked_fill(grid != 0, 99)
        cell = score.argmin(-1)  # (B,) the first easiest blank
        open_ = grid[rows, cell] == 0  # False once a puzzle is full
        order[:, k] = torch.where(open_, cell, -1)
        grid[rows, cell] = torch.where(open_, solution[rows, cell], grid[rows, cell])
    return order


def to_sequence(x):
    """(B, 162) puzzle + solution (lesson 12's rows) -> (B, SEQ): puzzle, then (10 + cell, digit) pairs, 0-padded."""
    puzzle, solution = x[:, :CELLS], x[:, CELLS:]
    order = solver_order(puzzle, solution)
    real, cell = order >= 0, order.clamp(min=0)
    pairs = torch.stack([torch.where(real, POS0 + cell, 0), torch.where(real, solution.gather(1, cell), 0)], 2)
    return torch.cat([puzzle, pairs.flatten(1)], 1)


def from_sequence(seq):
    """(B, SEQ) -> (B, 162): the puzzle and the solution its pairs write (the inverse of to_sequence)."""
    puzzle, grid = seq[:, :CELLS], seq[:, :CELLS].clone()
    cells, digits = seq[:, CELLS::2] - POS0, seq[:, CELLS + 1 :: 2]  # (B, MAX_BLANKS) each
    real = cells >= 0  # padding is 0, below POS0
    grid.scatter_add_(1, cells.clamp(min=0), torch.where(real, digits, 0))  # each blank written once; padding adds 0
    return torch.cat([puzzle, grid], 1)


class OrderData(S.PuzzleData):
    """Lesson 12's puzzles (and symmetries), each row turned into the solver-order sequence after its symmetry."""

    def __init__(self, folder):
        super().__init__(folder)
        self.tokenizer = diff.CharTokenizer(TOKENIZER_TOKENS)

    def batch(self, batch_size, length, generator):
        return to_sequence(S.symmetric_batch(self.train, batch_size, generator))

    def val_batch(self, n, length):
        if length < SEQ:
            raise UsageError(f"--seq-len {length - 1} is too short: a puzzle and its pairs take up to {SEQ}")
        return to_sequence(self.val[:n])


def pair_losses(model, x):
    """(B, 2 x MAX_BLANKS) nats for every pair token after the puzzle; 0 on padding. -> (losses, blanks (B,))."""
    logits = model(x[:, :-1])[:, CELLS - 1 :]  # (B, 2 x MAX_BLANKS, V): the positions that predict the pairs
    ce = F.cross_entropy(logits.float().flatten(0, 1), x[:, CELLS:].flatten(), reduction="none").view(len(x), -1)
    blanks = (x[:, :CELLS] == 0).sum(1)  # (B,)
    real = torch.arange(ce.size(1), device=x.device) < 2 * blanks[:, None]
    return ce * real, blanks


class OrderGPT(gpt.NextTokenObjective):
    """Lesson 12's GPT, trained on the solver's order: next-token loss on the (cell, digit) pairs."""

    name, trainer = "sudoku-order-gpt", "bench/sudoku_order_gpt.py"

    def loss(self, model, x, config=None):  # nats per blank (its cell and its digit)
        ce, blanks = pair_losses(model, x)
        return ce.sum() / blanks.sum()

    @torch.no_grad()
    def val_bits(self, model, windows, K=None, config=None):
        ce, blanks = pair_losses(model, windows)
        return ce.sum().item() / blanks.sum().item() / 0.6931

    @torch.no_grad()
    def score(self, model, windows):
        ce, blanks = pair_losses(model, windows)
        pairs = from_sequence(windows)
        return {"val_solved": S.solved(solve_order(model, windows[:, :CELLS])[0], pairs).float().mean().item(),
                "digit_bits": ce[:, 1::2].sum().item() / blanks.sum().item() / 0.6931}


@torch.no_grad()
def solve_order(model, puzzle):
    """Greedy: the cell (among the open blanks), then its digit, with the KV cache. -> (grids (B, 81), model calls
    per puzzle (B,): 2 per blank, the puzzle read in the first)."""
    B, device = len(puzzle), puzzle.device
    blanks = (puzzle == 0).sum(1)  # (B,)
    n = int(blanks.max())
    cache = tfm.KVCache(model.config, B, CELLS + 2 * n, device)
    logits = model(puzzle, cache=cache, start=0)[:, -1]  # (B, V)
    grid, rows = puzzle.clone(), torch.arange(B, device=device)
    for k in range(n):
        cell = logits[:, POS0:].float().masked_fill(grid != 0, float("-inf")).argmax(-1)  # (B,) an open blank
        logits = model((POS0 + cell)[:, None], cache=cache, start=CELLS + 2 * k)[:, -1]
        digit = logits[:, 1:POS0].argmax(-1) + 1  # (B,) 1..9
        open_ = k < blanks  # a puzzle with fewer blanks is done: its row is left as it is
        grid[rows, cell] = torch.where(open_, digit, grid[rows, cell])
        if k < n - 1:
            logits = model(digit[:, None], cache=cache, start=CELLS + 2 * k + 1)[:, -1]
    return grid, 2 * blanks


@torch.no_grad()
def diagnose(model, seq):
    """Teacher-forced on the solver's sequences seq (B, SEQ): how often the model's top cell (among the open blanks)
    is a single and is the solver's own cell, and the share of digits it gets right. -> dict of three shares."""
    logits = model(seq[:, :-1])[:, CELLS - 1 :]  # (B, 2 x MAX_BLANKS, V)
    grid, rows, blanks = seq[:, :CELLS].clone(), torch.arange(len(seq)), (seq[:, :CELLS] == 0).sum(1)
    single_hits = cell_hits = digit_hits = 0
    for k in range(int(blanks.max())):
        live = k < blanks
        cell = logits[:, 2 * k, POS0:].masked_fill(grid != 0, float("-inf")).argmax(-1)
        true_cell, true_digit = (seq[:, CELLS + 2 * k] - POS0).clamp(min=0), seq[:, CELLS + 2 * k + 1]
        single_hits += (singles(grid)[1][rows, cell] & live).sum().item()
        cell_hits += ((cell == true_cell) & live).sum().item()
        digit_hits += ((logits[:, 2 * k + 1, 1:POS0].argmax(-1) + 1 == true_digit) & live).sum().item()
        grid[rows, true_cell] = torch.where(live, true_digit, grid[rows, true_cell])  # the solver's move, written
    total = blanks.sum().item()
    return {"cell_is_a_single": single_hits / total, "solver_cell": cell_hits / total, "digit": digit_hits / total}


def load_order_gpt(path, device="cpu"):
    """A run (or export) this script trained -> the model in eval mode (lesson 06's loader, this objective only)."""
    model, _, info = gen.load(path, "gpt", device)
    if info["objective"] != OrderGPT.name:
        raise UsageError(f"{info['path']} is not a solver-order Sudoku GPT (it is a {info['objective']} model)")
    return model


def main(argv=None):
    p = train.training_parser(__doc__, ROOT / "checkpoints" / "sudoku-order-gpt", presets=PRESETS,
                              folder=("--puzzles", ROOT / "data" / "sudoku"), samples=False)
    p.add_argument("--diagnose", metavar="RUN", help="instead of training: RUN's choices teacher-forced on the "
                   "validation puzzles (is its cell a single? the solver's? its digit right?)")
    if "--diagnose" in (sys.argv[1:] if argv is None else argv):
        args = parse_args_given(p, argv)
        refuse_unused(args, {"diagnose", "puzzles"}, "--diagnose")  # training flags would be silently ignored
        shares = diagnose(load_order_gpt(args.diagnose), OrderData(args.puzzles).val_batch(200, SEQ))
        print(f"{args.diagnose}, 200 validation puzzles of {args.puzzles}, teacher-forced: the cell it picks is a "
              f"single {shares['cell_is_a_single']:.1%}, the solver's own cell {shares['solver_cell']:.1%}; "
              f"its digit is right {shares['digit']:.1%} (chance: about 11%)")
        return shares
    args = train.parse_args(p, argv, PRESETS, default_data=None,
                            default_out=lambda a: ROOT / "checkpoints" / "sudoku-order-gpt")
    return train.train(args, OrderGPT(), OrderData(args.puzzles))


if __name__ == "__main__":
    run_cli(main)
