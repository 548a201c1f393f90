"""bench/sudoku_order_gpt.py: the solver's order is the blanks, easiest first (checked against the plain-Python
rules); the sequences round-trip; the loss skips the padding; greedy decoding solves with a model that knows the
answer and never writes over a given; it trains through lesson 05's loop and joins bench/sudoku.py's table."""
import random
import sys

import pytest
import torch

from conftest import ROOT, cli_error, lesson

sys.path.insert(0, str(ROOT / "bench"))
SO, S, P = lesson("sudoku_order_gpt"), lesson("12_sudoku"), lesson("sudoku_puzzles")


@pytest.fixture(scope="module")
def x():
    rng, seen = random.Random(7), set()
    pairs = P.make_split(6, (24, 50), rng, seen)
    return torch.tensor([p + s for p, s in pairs])  # (6, 162)


def python_singles(grid):
    """The blanks a person fills without a guess (plain Python): one legal digit, or the one place for a digit."""
    legal = {i: P.candidates(grid, i) for i in range(81) if grid[i] == 0}
    out = {i for i, c in legal.items() if len(c) == 1}
    for unit in P.UNITS:
        for d in range(1, 10):
            places = [i for i in unit if d in legal.get(i, ())]
            if len(places) == 1:
                out.add(places[0])
    return out, legal


def test_the_order_is_every_blank_once_easiest_first(x):
    order = SO.solver_order(x[:, :81], x[:, 81:])
    for row, cells in zip(x.tolist(), order.tolist()):
        grid, solution = row[:81], row[81:]
        cells = [c for c in cells if c >= 0]
        assert sorted(cells) == [i for i in range(81) if grid[i] == 0]
        for c in cells:
            easy, legal = python_singles(grid)
            if easy:
                assert c == min(easy)  # a single whenever there is one, the first by index
            else:
                assert len(legal[c]) == min(len(v) for v in legal.values())
            grid[c] = solution[c]


def test_sequences_round_trip_and_pad_with_zeros(x):
    seq = SO.to_sequence(S.symmetric_batch(x, 32, torch.Generator().manual_seed(0)))
    assert seq.shape == (32, SO.SEQ)
    back = SO.from_sequence(seq)
    assert S.valid(back[:, 81:], back[:, :81]).all()  # the pairs write the (transformed) solution
    blanks = (seq[:, :81] == 0).sum(1)
    for row, n in zip(seq, blanks.tolist()):
        assert (row[81 : 81 + 2 * n : 2] >= SO.POS0).all() and (row[82 : 82 + 2 * n : 2] >= 1).all()
        assert (row[81 + 2 * n :] == 0).all()


def test_the_loss_is_on_the_pairs_only(x):
    torch.manual_seed(0)
    tfm = lesson("03_transformer")
    model = tfm.Transformer(tfm.ModelConfig(vocab_size=len(SO.TOKENIZER_TOKENS), block_size=SO.SEQ, n_layer=1,
                                            n_head=2, n_embd=32, causal=True, mask_token=False)).eval()
    seq = SO.to_sequence(x)
    ce, blanks = SO.pair_losses(model, seq)
    for row, n in zip(ce, blanks.tolist()):
        assert (row[: 2 * n] > 0).all() and (row[2 * n :] == 0).all()
    assert SO.OrderGPT().loss(model, seq).item() == pytest.approx(ce.sum().item() / blanks.sum().item(), rel=1e-5)


class Knows(torch.nn.Module):
    """A stand-in GPT whose every next token is the true one (for the decoder's bookkeeping, not for learning)."""

    def __init__(self, seq, config):
        super().__init__()
        self.seq, self.config, self.calls = seq, config, 0

    def forward(self, idx, cache=None, start=0):
        self.calls += 1
        B, T = idx.shape
        live = start < SO.CELLS + 2 * (self.seq[:, : SO.CELLS] == 0).sum(1)  # rows whose pairs are not all written
        assert torch.equal(idx[live], self.seq[live, start : start + T])  # the decoder feeds back what it chose
        nxt = self.seq[:, (torch.arange(start, start + T) + 1).clamp(max=SO.SEQ - 1)]  # (B, T): each next token
        return 5.0 * torch.nn.functional.one_hot(nxt, len(SO.TOKENIZER_TOKENS)).float()


def test_greedy_decoding_solves_with_a_model_that_knows(x):
    tfm = lesson("03_transformer")
    config = tfm.ModelConfig(vocab_size=len(SO.TOKENIZER_TOKENS), block_size=SO.SEQ, n_layer=1, n_head=2, n_embd=32)
    model = Knows(SO.to_sequence(x), config)
    grid, calls = SO.solve_order(model, x[:, :81])
    assert torch.equal(grid, x[:, 81:])
    blanks = (x[:, :81] == 0).sum(1)
    assert torch.equal(calls, 2 * blanks) and model.calls == 2 * int(blanks.max())  # the batch's longest puzzle


def test_a_wrong_model_never_writes_over_a_given(x):
    torch.manual_seed(1)
    tfm = lesson("03_transformer")
    model = tfm.Transformer(tfm.ModelConfig(vocab_size=len(SO.TOKENIZER_TOKENS), block_size=SO.SEQ, n_layer=1,
                                            n_head=2, n_embd=32, causal=True, mask_token=False)).eval()
    grid, _ = SO.solve_order(model, x[:, :81])
    given = x[:, :81] > 0
    assert torch.equal(grid[given], x[:, :81][given]) and (grid >= 1).all()  # every blank filled, givens kept


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("order")
    P.main(["--train", "30", "--val", "6", "--test", "2", "--out", str(d / "puzzles"), "--seed", "3"])
    rows = SO.main(["--puzzles", str(d / "puzzles"), "--out", str(d / "run"), "--steps", "4", "--eval-every", "2",
                   "--batch-size", "8", "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--dtype", "fp32",
                   "--no-plot"])
    return d, rows


def test_it_trains_through_lesson_05s_loop_and_joins_the_table(run, tmp_path):
    d, rows = run
    assert [r["step"] for r in rows] == [0, 2, 4] and rows[-1]["val_bpc"] < rows[0]["val_bpc"]
    assert all(0 <= r["val_solved"] <= 1 and r["digit_bits"] > 0 for r in rows)
    bench = lesson("sudoku")
    table = bench.main(["--models", "gpt", "--gpt", str(ROOT / "checkpoints" / "pretrained" / "sudoku-gpt"),
                        "--order-gpt", str(d / "run"), "--test", str(d / "puzzles" / "test.txt"),
                        "--out-dir", str(tmp_path)])
    order_rows = [r for r in table if "solver's order" in r["decoder"]]
    by_givens = [r for r in order_rows if r["band"] in P.BANDS]  # then the same puzzles by the solver's guesses
    assert len(by_givens) == 4 and all(r["calls"] == pytest.approx(2 * r["blanks"]) for r in order_rows)
    some = bench.main(["--models", "gpt", "--gpt", str(ROOT / "checkpoints" / "pretrained" / "sudoku-gpt"),
                       "--test", str(d / "puzzles" / "test.txt"), "--bands", "45+", "--out-dir", str(tmp_path)])
    assert {r["band"] for r in some} == {"45+"} and {r["band"] for r in table} > {"45+"}


def test_bad_flags_and_the_wrong_model_are_one_line(run, tmp_path, capsys):
    d, _ = run
    base = ["--puzzles", str(d / "puzzles"), "--out", str(tmp_path / "r"), "--steps", "1"]
    assert "--data" in cli_error(SO.main, base + ["--data", str(d / "puzzles" / "val.txt")], capsys)
    assert "--sample-len" in cli_error(SO.main, base + ["--sample-len", "8"], capsys)
    assert "too short" in cli_error(SO.main, base + ["--seq-len", "162"], capsys)
    assert not (tmp_path / "r").exists()
    diagnose_steps = ["--diagnose", str(d / "run"), "--steps", "3"]
    assert "--steps does nothing in --diagnose" in cli_error(SO.main, diagnose_steps, capsys)
    printed = SO.main(["--diagnose", str(d / "run"), "--puzzles", str(d / "puzzles")])
    assert set(printed) == {"cell_is_a_single", "solver_cell", "digit"}
    shipped_gpt = ROOT / "checkpoints" / "pretrained" / "sudoku-gpt"
    assert "not a solver-order" in cli_error(lambda a: SO.load_order_gpt(shipped_gpt), [], capsys)


def test_the_diagnosis_scores_a_model_that_knows_as_right_every_time(x):
    seq = SO.to_sequence(x)
    shares = SO.diagnose(Knows(seq, None), seq)
    assert shares["solver_cell"] == shares["digit"] == 1.0 and 0.5 < shares["cell_is_a_single"] <= 1.0


def test_a_band_is_drawn_evenly_from_all_of_its_puzzles():
    draw = lesson("sudoku").evenly_spaced
    picked = draw(list(range(3378)), 1000)  # the "0 guesses" band of 7.5: every third of the first 3,000 before
    assert len(set(picked)) == 1000 and picked == sorted(picked) and picked[0] == 0 and picked[-1] > 3370
    assert max(b - a for a, b in zip(picked, picked[1:])) <= 4
    assert draw(list(range(7)), 1000) == list(range(7)) and draw(list(range(10)), 3) == [0, 3, 6]
