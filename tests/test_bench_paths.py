"""bench/paths.py's diagnostic decoder, path cells first: it marks the likeliest path cell each call, stops when
S and G join, counts the marks off the way (strays), and reports the model's own plans apart from the search."""
import csv
import math
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import ROOT, Logits, lesson

sys.path.insert(0, str(ROOT / "bench"))
bench, L16 = lesson("paths"), lesson("16_robot_paths")
MASK = len(L16.TOKENS)


class Scores(torch.nn.Module):
    """A stand-in model: the same score of `*` for each cell at every call (higher: marked sooner)."""

    def __init__(self, order):
        super().__init__()
        self.config = SimpleNamespace(mask_id=MASK, vocab_size=MASK + 1)
        self.score = torch.zeros(L16.CELLS)
        for rank, cell in enumerate(order):
            self.score[cell] = 10.0 - rank

    def forward(self, x):
        logits = torch.zeros(*x.shape, self.config.vocab_size)
        logits[..., L16.PATH] = self.score
        return logits


def corridor():
    """S at cell 0, G at cell 3 of an open map: the way is 0, 1, 2, 3."""
    return L16.tensor(["S..G" + "." * (L16.CELLS - 4)])


def test_it_marks_the_likeliest_cells_and_stops_when_the_ends_join():
    paths, strays, calls = bench.plan_path_cells_first(Scores([2, 1, 50, 60]), corridor())
    assert paths == [[0, 1, 2, 3]] and strays == [0] and calls == [2]  # cells 50 and 60 never marked


def test_a_stray_mark_is_counted_and_the_models_own_row_drops_it():
    model = Scores([100, 2, 1])  # cell 100 first: off the way
    paths, strays, calls = bench.plan_path_cells_first(model, corridor())
    assert paths == [[0, 1, 2, 3]] and strays == [1] and calls == [3]
    rows = bench.run_method(dict(name="p", model="dllm", decoder="path cells first"), model, corridor(), batch=8)
    (own_name, own, own_calls, _, differ), (search_name, search, _, _, _) = rows
    assert own == [None] and search == [[0, 1, 2, 3]] and own_calls == 3.0 and differ is None  # nothing drawn
    assert own_name == "p, no stray" and "search" in search_name


def test_a_map_whose_ends_never_join_ends_with_no_path():
    walled = L16.tensor(["S#.G" + "." * 12 + "#" + "." * (L16.CELLS - 17)])  # S boxed in by walls at 1 and 16
    paths, strays, calls = bench.plan_path_cells_first(Scores([2]), walled)
    assert paths == [None] and strays == [None] and calls[0] == int((walled == L16.FREE).sum())  # each cell tried


def test_best_of_keeps_the_shortest_valid_attempt_and_none_when_none_is_valid():
    grid = "S..G" + "." * (L16.CELLS - 4)
    long_way, short_way = [0, 16, 17, 18, 19, 3], [0, 1, 2, 3]
    through_a_wall = [0, 1, 2, 3]
    walled = "S#.G" + "." * (L16.CELLS - 4)
    attempts = [[None, through_a_wall], [long_way, None], [short_way, None]]  # K = 3 attempts of 2 maps
    assert bench.best_of([grid, walled], attempts) == [short_way, None]


class Undecided(torch.nn.Module):
    """A stand-in GPT that finds R and D equally likely after any prefix (and every other move unlikely)."""

    config = SimpleNamespace(mask_id=MASK, vocab_size=MASK, shift=0, n_embd=4, n_head=1, n_layer=1)  # a KVCache's

    def forward(self, x, cache=None, start=0):
        logits = torch.full((*x.shape, self.config.vocab_size), -9.0)
        logits[..., [L16.TOKENS.index("R"), L16.TOKENS.index("D")]] = 0.0
        return logits


def test_a_drawn_gpt_takes_both_ways_where_greedy_takes_one():
    grid = L16.tensor(["S" + "." * 15 + ".G" + "." * (L16.CELLS - 18)])  # G one step right and one down
    greedy = L16.plan_gpt(Undecided(), grid.repeat(32, 1))
    sampling = L16.diff.Sampling(temperature=1.0, generator=torch.Generator().manual_seed(0))
    drawn = L16.plan_gpt(Undecided(), grid.repeat(32, 1), sampling=sampling)
    assert greedy == [None] * 32  # a tie goes to the first move token, R, every time: off the map's edge
    assert {tuple(q) for q in drawn if q} == {(0, 1, 17), (0, 16, 17)}  # the rest wander off the map: None
    rows = bench.run_method(dict(name="g", model="gpt", samples=8, temperature=1.0), Undecided(), grid, batch=8)
    assert [r[4] for r in rows] == [1, 1]  # its one map's 8 attempts did not all plan the same


def test_drawn_attempts_give_one_attempts_row_and_the_checked_best_of_k_apart():
    rows = bench.run_method(dict(name="d", model="dllm", samples=3, temperature=1.0), Scores([1, 2]),
                            corridor(), batch=8)
    (one_name, one, one_calls, one_s, differ), (best_name, best, best_calls, best_s, _) = rows
    assert one_name == "d, one attempt" and best_name == "d, best of 3 (checked, apart)"
    assert one == best == [[0, 1, 2, 3]] and differ == 0  # a sure model draws the same marks at T = 1
    free = int((corridor() == L16.FREE).sum())
    assert one_calls == free and best_calls == 3 * free and best_s == 3 * one_s  # surest first: a cell a call


def test_the_benchmark_runs_end_to_end_on_the_shipped_models(tmp_path, capsys):
    maps, rng = lesson("robot_maps"), __import__("random").Random(0)
    test = tmp_path / "test.txt"
    test.write_text("".join(",".join(maps.fresh_map(kind, rng)) + "\n" for kind in ("blocks-10", "rooms")))
    out, smooth = bench.main(["--pretrained", "--test", str(test), "--per-kind", "1", "--repair", "0",
                              "--smooth", "0", "--out-dir", str(tmp_path / "out")])
    by = {(r["kind"], r["method"]): r for r in out}
    assert {m for _, m in by} == {"dLLM, surest cell first", "dLLM, threshold 0.9", "GPT, moves, greedy",
                                  "dLLM, path cells first, no stray", "dLLM, path cells first + BFS (search)"}
    for kind in ("blocks-10", "rooms"):
        own, search = by[kind, "dLLM, path cells first, no stray"], by[kind, "dLLM, path cells first + BFS (search)"]
        assert search["valid"] == 1.0 >= search["shortest"] >= own["shortest"]  # a map with a way: the search finds one
        assert own["calls"] == search["calls"] >= 1
    text = (tmp_path / "out" / "paths.txt").read_text()
    assert "| rooms | dLLM, path cells first, no stray | 1 |" in text and smooth == []
    capsys.readouterr()


def test_shape_counts_a_maps_shortest_moves_and_its_shortest_paths():
    open_map = lambda s, g, walls=(): "".join("S" if c == s else "G" if c == g else "#" if c in walls else "."
                                              for c in range(L16.CELLS))
    assert bench.shape(open_map(0, 3)) == (3, 1)  # along a row: one way
    assert bench.shape(open_map(0, 17)) == (2, 2)  # one step right and one down, in either order
    assert bench.shape(open_map(0, 34)) == (4, 6)  # two and two: 4 choose 2
    assert bench.shape(open_map(0, 17, walls=(1,))) == (2, 1)  # the wall leaves down, then right


def test_by_length_puts_each_map_in_its_bins_and_counts_its_valid_share():
    lines = bench.by_length({"m": [(3, 1, True), (12, 2, False), (12, 5, True), (40, 200, False)]})
    assert lines[0] == ("| method | 1-10 moves (n = 1) | 11-20 moves (n = 2) | 21-30 moves (n = 0) | 31+ moves (n = 1) "
                        "| one shortest path (n = 1) | 2-9 of them (n = 2) | 10-99 (n = 0) | 100+ (n = 1) |")
    assert lines[2] == "| m | 100.0% | 50.0% | - | 0.0% | 100.0% | 50.0% | - | 0.0% |"


def test_by_length_adds_its_table_to_the_report(tmp_path, capsys):
    maps, rng = lesson("robot_maps"), __import__("random").Random(2)
    test = tmp_path / "test.txt"
    test.write_text(",".join(maps.fresh_map("blocks-10", rng)) + "\n")
    bench.main(["--pretrained", "--test", str(test), "--per-kind", "1", "--repair", "0", "--smooth", "0",
                "--by-length", "--out-dir", str(tmp_path / "out")])
    text = (tmp_path / "out" / "paths.txt").read_text()
    table = text.split("## Valid paths by the length")[1].splitlines()[2:]
    assert len(table) == 2 + 5 and table[2].startswith("| dLLM, surest cell first | ")  # five methods' rows
    assert sum(cell.endswith("(n = 1)") for cell in table[0].split(" | ")) == 2  # one map: a length bin, a ways bin
    rows = list(csv.DictReader((tmp_path / "out" / "by_map.csv").read_text().splitlines()))  # a row a map
    grid = test.read_text().split(",")[0]
    assert len(rows) == 1 and rows[0]["kind"] == "blocks-10"
    assert (int(rows[0]["moves"]), int(rows[0]["shortest_paths"])) == bench.shape(grid)
    assert rows[0]["dLLM, path cells first + BFS (search)"] == "1"  # a way exists: the search finds it
    assert all(rows[0][m] in "01" for m in ("dLLM, surest cell first", "GPT, moves, greedy"))
    capsys.readouterr()


def test_only_sampled_runs_the_drawn_attempts_alone_even_with_repair_asked(tmp_path, capsys):
    maps, rng = lesson("robot_maps"), __import__("random").Random(1)
    test = tmp_path / "test.txt"
    test.write_text(",".join(maps.fresh_map("blocks-10", rng)) + "\n")
    out, _ = bench.main(["--pretrained", "--test", str(test), "--per-kind", "1", "--repair", "2", "--smooth", "0",
                         "--samples", "2", "--only-sampled", "--out-dir", str(tmp_path / "out")])
    assert {r["method"] for r in out} and all("drawn at T = 1" in r["method"] for r in out)
    capsys.readouterr()


def test_mgdm_loss_is_their_formula_on_the_free_cells_only():
    mgdm, maps, rng = lesson("paths_mgdm"), lesson("robot_maps"), __import__("random").Random(3)
    rows = [maps.fresh_map(kind, rng) for kind in ("blocks-10", "rooms", "mazes")]
    x = torch.tensor([L16.encode(g, a, "dllm") for g, a, _ in rows])  # (3, 512)
    model, T, alpha, gamma = Logits(3, L16.CELLS, MASK + 1), 5, 0.3, 2.0
    model.out.data = torch.randn(model.out.shape, generator=torch.Generator().manual_seed(1))  # cells differ
    torch.manual_seed(0)
    loss = mgdm.mgdm_loss(model, x, MASK, alpha, gamma, T)
    loss.backward()
    torch.manual_seed(0)  # the same draws again, the loss written out cell by cell
    k = torch.randint(0, T, (3,))
    u = torch.rand(3, L16.CELLS)
    total, masked = 0.0, 0
    log_p = model.out.detach().float().log_softmax(-1)
    for b in range(3):
        for i in range(L16.CELLS):
            if x[b, i] == L16.FREE and u[b, i] < (k[b] + 1) / T:
                nll = -log_p[b, i, x[b, L16.CELLS + i]].item()
                total += (T - k[b].item()) * alpha * (1 - math.exp(-nll)) ** gamma * nll
                masked += 1
    assert masked > 0 and loss.item() == pytest.approx(total / masked, rel=1e-5)
    touched = model.out.grad.abs().sum(-1) > 0  # (3, 256): walls, S and G never
    assert not touched[x[:, : L16.CELLS] != L16.FREE].any()


def test_an_mgdm_run_is_a_path_dllm_that_lesson_16_plans_with(tmp_path, capsys):
    mgdm = lesson("paths_mgdm")
    lesson("robot_maps").main(["--train", "20", "--val", "4", "--test", "2", "--out", str(tmp_path / "maps")])
    rows = mgdm.main(["--maps", str(tmp_path / "maps"), "--out", str(tmp_path / "run"), "--steps", "2",
                      "--eval-every", "2", "--eval-windows", "2", "--batch-size", "4", "--n-layer", "1",
                      "--n-embd", "32", "--dtype", "fp32", "--no-plot"])
    assert [r["step"] for r in rows] == [0, 2] and all(0 <= r["val_valid"] <= 1 for r in rows)
    assert L16.load_planner("dllm", str(tmp_path / "run")).config.mask_token  # 16 loads it as its dLLM
    capsys.readouterr()


walker = lesson("paths_walk")
SHIPPED_DLLM = ROOT / "checkpoints" / "pretrained" / "paths-dllm"  # read only


def test_a_walk_steps_to_the_likeliest_free_neighbour_and_stops_beside_the_goal():
    grid = "S..G" + "." * (L16.CELLS - 4)
    model = Scores([1, 2, 17, 16])  # from S the neighbours 1 and 16: 1 scores higher, then 2, then G is beside
    for ends in ("S", "G", "SG"):
        assert walker.plan_by_walking(model, [grid], ends) == ([[0, 1, 2, 3]], 2), ends  # two steps from any end


def test_a_walk_that_touches_the_other_walk_midway_cuts_the_rest_of_it():
    grid = "S" + "." * 65 + "G" + "." * (L16.CELLS - 67)  # S at 0, G at 66 (row 4, column 2)
    model = Scores([1, 2, 3, 50, 34, 18])  # S walks right, G walks up; G's head reaches 18, below S's cell 2
    paths, calls = walker.plan_by_walking(model, [grid], "SG")
    assert paths == [[0, 1, 2, 18, 34, 50, 66]] and calls == 6  # S's cell 3, past where they touch, left out


def test_a_walk_into_a_dead_end_plans_nothing():
    grid = "S#.G" + "." * 12 + "#" + "." * (L16.CELLS - 17)  # S boxed in by walls at 1 and 16
    assert walker.plan_by_walking(Scores([2]), [grid], "S") == ([None], 1)


def test_the_first_call_probe_splits_the_free_cells_three_ways(tmp_path, capsys):
    grid = "S.." + "." * 13 + "..G" + "." * (L16.CELLS - 19)  # S at 0, G at 18: right twice and down once
    answer = "S**" + "." * 13 + "..G" + "." * (L16.CELLS - 19)  # the tie-break's way: 0, 1, 2, 18
    probe = walker.first_call(Scores([1, 2, 16, 17]), [(grid, answer, "blocks-10")])
    own, others, rest = probe.values()
    assert own[0] == 2 and others[0] == 2 and rest[0] == L16.CELLS - 6  # 16 and 17 lie on other shortest paths
    assert own[1] > others[1] > rest[1]
    maps, rng = lesson("robot_maps"), __import__("random").Random(4)
    test = tmp_path / "test.txt"
    test.write_text("".join(",".join(maps.fresh_map(kind, rng)) + "\n" for kind in ("blocks-10", "maze")))
    out, probe = walker.main(["--dllm", str(SHIPPED_DLLM), "--test", str(test), "--per-kind", "1",
                              "--ends", "S", "SG", "--out-dir", str(tmp_path / "out")])
    assert [(r["kind"], r["method"]) for r in out] == [(k, f"walk {walker.ENDS[e]}") for e in ("S", "SG")
                                                       for k in ("blocks-10", "maze", "all")]
    assert sum(n for n, _ in probe.values()) == sum(g.count(".") for g, _, _ in maps.read_maps(test))
    assert "| all | walk from both ends in turn | 2 |" in (tmp_path / "out" / "walk.txt").read_text()
    capsys.readouterr()


def test_symmetric_maps_turn_each_grid_with_its_path_and_draw_all_eight_symmetries():
    sym, maps, rng = lesson("paths_sym"), lesson("robot_maps"), __import__("random").Random(5)
    rows = [maps.fresh_map(kind, rng) for kind in ("blocks-30", "rooms", "maze")]
    x = torch.tensor([L16.encode(g, a, "dllm") for g, a, _ in rows])  # (3, 512)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        y = sym.random_pose(x)
        for row in y.tolist():
            grid, answer = L16.text(row[: L16.CELLS]), L16.text(row[L16.CELLS:])
            assert maps.check_answer(grid, answer)  # still a map with a shortest path drawn on it
        seen.add(L16.text(y[0, : L16.CELLS].tolist()))
    assert len(seen) == 8  # the first map (30% walls: no symmetry of its own) in each of its 8 poses


def test_a_symmetric_run_is_a_path_dllm_that_lesson_16_plans_with(tmp_path, capsys):
    lesson("robot_maps").main(["--train", "20", "--val", "4", "--test", "2", "--out", str(tmp_path / "maps")])
    rows = lesson("paths_sym").main(["--maps", str(tmp_path / "maps"), "--out", str(tmp_path / "run"), "--steps", "2",
                                     "--eval-every", "2", "--eval-windows", "2", "--batch-size", "4", "--n-layer", "1",
                                     "--n-embd", "32", "--dtype", "fp32", "--no-plot"])
    assert [r["step"] for r in rows] == [0, 2] and all(0 <= r["val_valid"] <= 1 for r in rows)
    assert L16.load_planner("dllm", str(tmp_path / "run")).config.mask_token  # 16 loads it as its dLLM
    capsys.readouterr()
