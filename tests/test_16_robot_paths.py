"""Lesson 16: paths. The moves and the cells of a path agree, judge_path knows a valid and a shortest path from a
broken one, the dLLM's loss never touches a wall, S or G and the GPT's stops at its first `$`, an oracle canvas is
planned surest-first, repair redraws only where a plan breaks, both models train through 05's loop and solve, and
the ROS map_server plumbing keeps pixels, rows, origin and yaw where map_server puts them."""
import math
import random
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import ROOT, Logits, bonus, cli_error, lesson

R, M = lesson("16_robot_paths"), lesson("robot_maps")
from support import ros_map  # noqa: E402
from support.cli import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def map_rows():
    return M.make_maps(20, random.Random(3), set())  # 4 maps of each kind


def ids(s):
    return [R.TOKENS.index(ch) for ch in s]


def test_moves_walk_the_answers_shortest_path_and_judge_knows_it(map_rows):
    for grid, answer, _ in map_rows:
        path = M.route(grid, answer)
        moves = M.moves_of(grid, path)
        assert M.walk(grid, moves) == M.walk(grid, moves + "$") == path
        assert M.judge_path(grid, path) == (True, True) and M.check_answer(grid, answer)
        assert M.draw_path(grid, path) == answer and len(moves) == answer.count("*") + 1
        assert M.walk(grid, moves[:-1] + "$") is None  # one move short: never reaches G
        assert R.encode(grid, answer, "gpt")[256:] == ids((moves + "$").ljust(129, "$"))
    assert M.judge_path(map_rows[0][0], None) == (False, False)


def test_judge_tells_valid_from_shortest_and_route_drops_strays():
    grid = "S..G" + "." * 252
    straight, around = [0, 1, 2, 3], [0, 16, 17, 18, 19, 3]
    assert M.judge_path(grid, straight) == (True, True) and M.judge_path(grid, around) == (True, False)
    assert M.judge_path(grid, [0, 2, 3]) == (False, False)  # a jump is no move
    assert M.judge_path("S#.G" + "." * 252, straight) == (False, False)  # through a wall
    assert M.walk(grid, "RDR") is None and M.walk(grid, "L") is None  # off the map
    assert M.walk(grid, "RDR", partial=True) == [0, 1, 17, 18] and M.walk(grid, "L", partial=True) == [0]
    assert M.walk("S#.G" + "." * 252, "DRRU", partial=True) == [0, 16, 17, 18, 2]  # stuck before G: where it got
    assert M.walk(grid, "RRR$", partial=True) == straight  # at G a partial walk is the whole
    marks = list(grid)
    for c in (1, 2, 40, 41):  # the way, and two stray cells off it
        marks[c] = "*"
    assert M.route(grid, "".join(marks)) == straight and not M.check_answer(grid, "".join(marks))
    marks[2] = "."  # a gap: no route
    assert M.route(grid, "".join(marks)) is None


def test_loose_ends_redraw_only_around_a_break():
    g = list("." * 256)
    g[0], g[5] = "S", "G"
    grid = torch.tensor([ids("".join(g))])
    whole = grid.clone()
    whole[0, 1:5] = R.PATH
    assert not R.loose_ends(grid, whole).any()  # a route: nothing redrawn
    broken = whole.clone()
    broken[0, 3] = R.FREE  # a gap between cells 2 and 4
    redraw = R.loose_ends(grid, broken)[0]
    assert redraw[2] and redraw[3] and redraw[4]  # both loose ends and the gap between them
    assert not redraw[0] and not redraw[5] and not redraw[200]  # S, G and far cells stay


def test_losses_touch_only_free_cells_and_moves_up_to_the_first_end(map_rows):
    x = torch.tensor([R.encode(g, a, "dllm") for g, a, _ in map_rows])  # (N, 512)
    m = Logits(len(x), 256, 11)
    R.path_diffusion_loss(m, x, 10, torch.Generator().manual_seed(0)).backward()
    touched = m.out.grad.abs().sum(-1) > 0  # (B, 256)
    free = x[:, :256] == R.FREE
    assert not touched[~free].any() and touched[free].any()
    x = torch.tensor([R.encode(g, a, "gpt") for g, a, _ in map_rows])  # (N, 385)
    g = Logits(len(x), 384, 10)
    R.moves_loss(g, x).sum().backward()
    touched = g.out.grad.abs().sum(-1) > 0  # position i predicts token i + 1
    n_moves = [a.count("*") + 1 for _, a, _ in map_rows]
    for row, n in zip(touched, n_moves):  # the map's last cell predicts move 1; then the moves and one `$`
        assert not row[:255].any() and row[255 : 256 + n].all() and not row[256 + n :].any()


class Oracle(torch.nn.Module):
    """A dLLM that knows the answers: sure of `.` far from the path, less sure on it (so the path is filled last)."""

    def __init__(self, answers):
        super().__init__()
        self.answers = answers
        self.config = type("C", (), {"mask_id": len(R.TOKENS), "vocab_size": len(R.TOKENS) + 1})()

    def forward(self, x, **kw):
        logits = torch.full((*x.shape, len(R.TOKENS) + 1), -20.0)
        logits.scatter_(-1, self.answers[..., None], torch.where(self.answers == R.PATH, 3.0, 9.0)[..., None])
        return logits


@pytest.mark.parametrize("decoder", ["confidence", "threshold"])
def test_an_oracle_canvas_is_planned_as_the_shortest_path(map_rows, decoder):
    x = torch.tensor([R.encode(g, a, "dllm") for g, a, _ in map_rows])
    grid, answer = x[:, :256], x[:, 256:]
    paths = R.plan_dllm(Oracle(answer), grid, decoder)
    assert all(M.judge_path(R.text(g), p) == (True, True) for g, p in zip(grid.tolist(), paths))
    rates = R.rates(grid, paths)
    assert rates == {"val_valid": 1.0, "val_shortest": 1.0}


def test_repair_mends_a_canvas_whose_first_fill_breaks(map_rows):
    grid_s, answer_s, _ = map_rows[0]
    grid, answer = torch.tensor([ids(grid_s)]), torch.tensor([ids(answer_s)])
    cell = M.route(grid_s, answer_s)[3]  # a cell inside the path

    class Forgetful(Oracle):  # the first fill leaves a gap at `cell`; a redraw sees its neighbours and mends it
        calls = 0

        def forward(self, x, **kw):
            logits = super().forward(x)
            if (x[0] == self.config.mask_id).sum() > 8:  # the first fill
                logits[0, cell] = torch.tensor([9.0] + [-20.0] * 10)
            return logits

    model = Forgetful(answer)
    assert R.plan_dllm(model, grid, "confidence")[0] is None
    assert M.judge_path(grid_s, R.plan_dllm(model, grid, "confidence", repair=1)[0]) == (True, True)


@pytest.fixture(scope="module")
def map_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("maps")
    M.main(["--train", "30", "--val", "6", "--test", "5", "--out", str(d), "--seed", "2"])
    return d


@pytest.fixture(scope="module")
def tiny_path_runs(map_dir, tmp_path_factory):
    """Both models trained 4 steps through lesson 05's loop (1 layer, width 32): {kind: (run folder, rows)}."""
    d = tmp_path_factory.mktemp("path_runs")
    return {k: (d / k, R.main(["train", "--model", k, "--maps", str(map_dir), "--out", str(d / k), "--steps", "4",
                               "--eval-every", "2", "--eval-windows", "4", "--batch-size", "4", "--n-layer", "1",
                               "--n-embd", "32", "--dtype", "fp32", "--no-plot"])) for k in ("dllm", "gpt")}


@pytest.mark.parametrize("model", ["dllm", "gpt"])
def test_both_path_models_train_through_lesson_05s_loop_and_solve(model, tiny_path_runs, map_dir, tmp_path, capsys):
    out, rows_ = tiny_path_runs[model]
    assert [r["step"] for r in rows_] == [0, 2, 4] and rows_[-1]["val_bpc"] < rows_[0]["val_bpc"]
    assert all(0 <= r["val_shortest"] <= r["val_valid"] <= 1 for r in rows_)
    capsys.readouterr()
    f = tmp_path / "in.txt"
    f.write_text("".join(line.split(",")[0] + "\n" for line in (map_dir / "test.txt").read_text().splitlines()))
    answers = R.main(["solve", str(f), "--model", model, "--checkpoint", str(out)])
    printed = capsys.readouterr()
    assert printed.out.splitlines() == answers and len(answers) == 5
    for a, line in zip(answers, f.read_text().split()):  # a tiny model: a checked path, or it says none
        assert a == R.NO_PATH or M.judge_path(line, M.route(line, a))[0]
    assert "of 5 maps planned" in printed.err


def test_solve_and_train_refuse_bad_input_in_one_line(map_dir, tiny_path_runs, tmp_path, capsys):
    good = (map_dir / "test.txt").read_text().splitlines()[0].split(",")[0]
    f = tmp_path / "bad.txt"
    for bad, says in [(good[:255], "256 characters"), (good[:255] + "x", "not 'x'"),
                      (good.replace("S", "."), "one S and one G")]:
        f.write_text(good + "\n" + bad + "\n")
        err = cli_error(R.main, ["solve", str(f), "--checkpoint", str(tiny_path_runs["dllm"][0])], capsys)
        assert f"{f}:2" in err and says in err
    err = cli_error(R.main, ["train", "--maps", str(tmp_path / "none"), "--out", str(tmp_path / "r")], capsys)
    assert "robot_maps.py" in err
    f.write_text(good + "\n")
    err = cli_error(R.main, ["solve", str(f), "--model", "gpt", "--repair", "2"], capsys)
    assert "the dLLM's" in err


def write_png(path, rows, mode="L", alpha=None):
    """rows: strings of 'X' (black), '.' (white), '?' (grey 205): an image as map_saver's colours."""
    value = {"X": 0, ".": 254, "?": 205}
    px = [[value[ch] for ch in row] for row in rows]
    im = Image.new("L", (len(rows[0]), len(rows)))
    im.putdata([v for row in px for v in row])
    if alpha is not None:
        im = im.convert("LA")
        im.putalpha(alpha)
    im.save(path)


def write_yaml(path, image, **keys):
    meta = {**dict(image=image, resolution=0.5, origin=[0.0, 0.0, 0.0], negate=0, occupied_thresh=0.65,
                   free_thresh=0.196), **keys}
    path.write_text(yaml.safe_dump(meta))
    return path


def test_map_server_pixels_rows_and_modes(tmp_path):
    rows = ["X...", "....", "?...", "...X"]  # image row 0 is the map's top
    write_png(tmp_path / "m.png", rows)
    m = ros_map.read(write_yaml(tmp_path / "m.yaml", "m.png"))
    assert m.free.tolist() == [[ch == "." for ch in row] for row in rows]  # grey 205 is unknown: not free
    assert m.to_pixel(0.25, 0.25) == (0.5, 3.5)  # the lower-left pixel's centre: column 0, the last image row
    # a point on a pixel's left or lower edge is in that pixel; the top and right edges are outside
    assert [m.cell_of(xy, 4, "--start") for xy in [(0.0, 0.0), (0.5, 1.0), (1.99, 1.99)]] == [12, 5, 3]
    for xy in [(0.0, 2.0), (2.0, 0.0), (-0.01, 1.0), (float("nan"), 1.0), (float("inf"), 1.0)]:
        with pytest.raises(UsageError, match="outside the map"):
            m.cell_of(xy, 4, "--start")
    for origin in ([float("nan"), 0.0, 0.0], [0.0, float("inf"), 0.0], [0.0, 0.0]):  # never a map nowhere
        with pytest.raises(UsageError, match="`origin` must be"):
            ros_map.read(write_yaml(tmp_path / "o.yaml", "m.png", origin=origin))
    neg = ros_map.read(write_yaml(tmp_path / "n.yaml", "m.png", negate=1))
    assert neg.free.tolist() == [[ch == "X" for ch in row] for row in rows]  # negate swaps black and white
    write_png(tmp_path / "a.png", rows, alpha=0)  # fully transparent
    assert not ros_map.read(write_yaml(tmp_path / "s.yaml", "a.png", mode="scale")).free.any()
    trinary = ros_map.read(write_yaml(tmp_path / "t.yaml", "a.png"))  # alpha 0 averaged in: darker, not free
    assert not trinary.free.any()


def test_16_bit_images_and_numbers_written_as_yaml_cpp_reads_them(tmp_path):
    """A 16-bit PNG or PGM is read as map_server reads it, as fractions of white (PIL's conversion to 8 bits
    clipped every value above 255 to white: unknown and dark grey pixels became free). `5e-2` is a number to
    yaml-cpp though a string to YAML 1.1; an infinite resolution is no map."""
    grey = [0, 100, 205, 254]  # black, dark grey, unknown, free: as the 8-bit test's colours
    Image.fromarray(np.array([grey], np.uint16) * 257).save(tmp_path / "deep.png")
    (tmp_path / "deep.pgm").write_bytes(b"P5\n4 1\n65535\n" + (np.array(grey, ">u2") * 257).tobytes())
    for image in ("deep.png", "deep.pgm"):
        assert ros_map.read(write_yaml(tmp_path / "d.yaml", image)).free.tolist() == [[False, False, False, True]]
    Image.fromarray(np.array([grey], np.uint8)).save(tmp_path / "g.png")
    (tmp_path / "sci.yaml").write_text("image: g.png\nresolution: 5e-2\norigin: [-1e1, 2E0, 0]\n")
    m = ros_map.read(tmp_path / "sci.yaml")
    assert (m.resolution, m.origin) == (0.05, (-10.0, 2.0, 0.0))
    for res in (".inf", "inf", "true", "abc"):
        (tmp_path / "bad.yaml").write_text(f"image: g.png\nresolution: {res}\norigin: [0, 0, 0]\n")
        with pytest.raises(UsageError, match="`resolution` must be a finite number at least"):
            ros_map.read(tmp_path / "bad.yaml")


def test_origin_and_yaw_round_trip_and_poses_never_cross_an_occupied_pixel(tmp_path):
    out = M.main(["--ros", str(tmp_path / "w.yaml"), "--kind", "blocks-30", "--cell-px", "3", "--seed", "4"])
    meta = yaml.safe_load(out.read_text())
    meta["origin"] = [-2.0, 5.0, 0.6]  # moved and turned
    (tmp_path / "w.yaml").write_text("# tiny-dllm\n" + yaml.safe_dump(meta))
    m = ros_map.read(tmp_path / "w.yaml")
    for u, v in [(0.0, 0.0), (13.5, 40.25), (47.9, 3.0)]:
        assert m.to_pixel(*m.to_metres(u, v)) == pytest.approx((u, v))
    grid, _, _ = M.fresh_map("blocks-30", random.Random(4))  # the map --ros wrote, S and G at their cells
    centre = lambda i: m.to_metres((i % 16 + 0.5) * 3, (i // 16 + 0.5) * 3)
    cells = m.grid(16, centre(grid.index("S")), centre(grid.index("G")))
    assert cells == grid
    walls = [ch == "#" for ch in cells]
    path = M.shortest_path(walls, cells.index("S"), cells.index("G"))
    start = m.to_metres((grid.index("S") % 16 + 0.2) * 3, (grid.index("S") // 16 + 0.9) * 3)  # off-centre
    poses = m.poses(path, 16, start, centre(grid.index("G")))
    assert len(poses) == len(path) and poses[0][:2] == start
    for (x0, y0, yaw), (x1, y1, _) in zip(poses, poses[1:]):
        assert yaw == pytest.approx(math.atan2(y1 - y0, x1 - x0))
        for k in range(51):  # every point of every segment on a free pixel
            u, v = m.to_pixel(x0 + (x1 - x0) * k / 50, y0 + (y1 - y0) * k / 50)
            assert m.free[min(int(v), 47), min(int(u), 47)]
    written = ros_map.write_path(tmp_path / "p.yaml", poses)
    msg = yaml.safe_load(written.read_text())
    assert msg["header"]["frame_id"] == "map" and len(msg["poses"]) == len(poses)
    q = msg["poses"][0]["pose"]["orientation"]
    assert q["z"] ** 2 + q["w"] ** 2 == pytest.approx(1.0, abs=1e-5)
    (tmp_path / "mine.yaml").write_text("a learner's file\n")
    with pytest.raises(Exception, match="was not made here"):
        ros_map.write_path(tmp_path / "mine.yaml", poses)
    assert (tmp_path / "mine.yaml").read_text() == "a learner's file\n"
    M.main(["--ros", str(tmp_path / "map.yaml"), "--kind", "rooms", "--seed", "1"])  # a map made here
    with pytest.raises(Exception, match="was not made here as a path"):  # a path never replaces a map
        ros_map.write_path(tmp_path / "map.yaml", poses)
    with pytest.raises(Exception, match="was not made here as a map"):  # nor a map a path
        M.main(["--ros", str(written), "--kind", "rooms"])
    assert written.read_text().splitlines()[0] == f"{ros_map.YAML_MARK}: 16_robot_paths.py plan {ros_map.PATH_KIND}"


def test_plan_refuses_bad_maps_and_points_in_one_line(tmp_path, capsys):
    M.main(["--ros", str(tmp_path / "w.yaml"), "--kind", "rooms", "--seed", "1"])
    args = ["plan", str(tmp_path / "w.yaml"), "--goal", "1.25", "1.25"]
    for start, says in [(["99", "0"], "outside the map"), (["0.0", "8.5"], "outside the map")]:
        assert says in cli_error(R.main, args + ["--start", *start], capsys)
    before = (tmp_path / "w.yaml").read_text()
    for force in ([], ["--force"]):  # the path never lands on the map it was planned on
        err = cli_error(R.main, args + ["--start", "0.25", "0.25", "--out", str(tmp_path / "w.yaml"), *force], capsys)
        assert "is the map being planned" in err and (tmp_path / "w.yaml").read_text() == before
    rows = ["X" * 16] + ["X" + "." * 6 + "X" + "." * 7 + "X" for _ in range(14)] + ["X" * 16]
    write_png(tmp_path / "split.png", rows)  # two halves, no way between them
    split = write_yaml(tmp_path / "split.yaml", "split.png", resolution=1.0)
    err = cli_error(R.main, ["plan", str(split), "--start", "2.5", "2.5", "--goal", "12.5", "2.5"], capsys)
    assert "no path exists" in err
    err = cli_error(R.main, ["plan", str(split), "--start", "0.5", "0.5", "--goal", "12.5", "2.5"], capsys)
    assert "occupied or unknown pixel" in err
    (tmp_path / "bad.yaml").write_text("image: [\n")
    assert "is not YAML" in cli_error(R.main, ["plan", str(tmp_path / "bad.yaml"), "--start", "1", "1",
                                               "--goal", "2", "2"], capsys)
    (tmp_path / "bomb.pgm").write_bytes(b"P5\n100000 100000\n255\n")  # 10^10 pixels claimed, none sent
    write_yaml(tmp_path / "bomb.yaml", "bomb.pgm")
    assert "cannot read its image" in cli_error(R.main, ["plan", str(tmp_path / "bomb.yaml"), "--start", "1", "1",
                                                         "--goal", "2", "2"], capsys)
    write_yaml(tmp_path / "gone.yaml", "gone.png")
    assert "does not exist" in cli_error(R.main, ["plan", str(tmp_path / "gone.yaml"), "--start", "1", "1",
                                                  "--goal", "2", "2"], capsys)


def test_benchmark_counts_every_kind_and_method(tiny_path_runs, map_dir, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("paths")
    runs = {k: str(v[0]) for k, v in tiny_path_runs.items()}
    out, smooth = bench.main(["--dllm", runs["dllm"], "--gpt", runs["gpt"], "--test", str(map_dir / "test.txt"),
                              "--out-dir", str(tmp_path), "--repair", "1", "--smooth", "4"])
    rows = M.read_maps(map_dir / "test.txt")  # one map of each kind
    assert [(r["kind"], r["maps"]) for r in out] == [(k, 1) for k in M.KINDS for _ in range(6)]
    for r in out:
        assert 0 <= r["shortest"] <= r["valid"] <= 1
        free = next(g for g, _, k in rows if k == r["kind"]).count(".")
        if r["method"].startswith("dLLM, surest"):
            assert r["calls"] == free  # one cell per call
        elif r["method"].startswith("dLLM, threshold"):
            assert 1 <= r["calls"] <= free
        elif r["method"].startswith("GPT"):
            assert 1 <= r["calls"] <= R.MAX_MOVES
        elif "path cells first" in r["method"]:
            assert 1 <= r["calls"] <= free  # a mark a call, until the ends join
    assert "dLLM infill" in "\n".join(smooth) and "## Smoothing" in (tmp_path / "paths.txt").read_text()
    bench.main(["--dllm", runs["dllm"], "--gpt", runs["gpt"], "--test", str(map_dir / "test.txt"),
                "--out-dir", str(tmp_path), "--repair", "0", "--smooth", "0"])  # its own results: written again
    assert "Smoothing" not in (tmp_path / "paths.txt").read_text()  # nothing smoothed: no section


def test_ship_model_cards_a_path_model_and_says_how_to_load_it(tiny_path_runs, tmp_path):
    """bench/ship_model.py on a path run: the card counts paths; the lesson's pair loads by --pretrained, any other
    name (a 10.7M model beside them) by its folder; the shipped weights plan as the run's did."""
    sys.path.insert(0, str(ROOT / "bench"))
    ship = lesson("ship_model")
    run = tiny_path_runs["dllm"][0]
    for name, use in (("paths-dllm", "python 16_robot_paths.py --pretrained"),
                      ("paths-dllm-10m", "FILE --model dllm --checkpoint checkpoints/pretrained/paths-dllm-10m`")):
        scores = ship.main(["--run", str(run), "--name", name, "--command", "python 16_robot_paths.py train",
                            "--machine", "the test machine", "--out-root", str(tmp_path)])
        card = (tmp_path / name / "README.md").read_text(encoding="utf-8")
        assert f"{scores['fp16'][0]:.1%} valid paths" in card and use in card and "the test machine" in card
        assert R.load_planner("dllm", str(tmp_path / name)).config.n_embd == 32


class BFS(torch.nn.Module):
    """A dLLM that plans perfectly: the shortest path of each canvas (S, G, walls), as sure logits."""

    config = type("C", (), {"mask_id": len(R.TOKENS), "vocab_size": len(R.TOKENS) + 1})()

    def forward(self, x, **kw):
        out = []
        for row in x.tolist():
            grid = R.text(row).replace("_", ".").replace("*", ".")
            walls = [ch == "#" for ch in grid]
            answer = M.draw_path(grid, M.shortest_path(walls, grid.index("S"), grid.index("G")))
            out.append(ids(answer))
        return torch.nn.functional.one_hot(torch.tensor(out), len(R.TOKENS) + 1).float() * 20


def test_smoothing_geometry_and_the_three_smoothers():
    smooth = bonus("16_path_smoothing")
    assert smooth.loop_erased([0, 1, 2, 1, 3, 4, 3, 5]) == [0, 1, 3, 5]
    grid = "." * 256
    corner = grid[:16 * 14 + 1] + "#" + grid[16 * 14 + 2 :]  # cell (x 1, y 1) a wall
    assert smooth.clear(grid, (0.5, 0.5), (2.5, 2.5))
    assert not smooth.clear(corner, (0.5, 0.5), (2.5, 2.5))  # straight through it
    side = grid[:16 * 15 + 1] + "#" + grid[16 * 15 + 2 :]  # cell (x 1, y 0): the diagonal only touches its corner
    assert not smooth.clear(side, (0.5, 0.5), (2.5, 2.5)) and smooth.clear(side, (0.5, 1.5), (2.5, 1.5))
    assert smooth.turns([(0, 0), (1, 0), (1, 1), (2, 1)]) == (2, pytest.approx(180.0))
    rng = random.Random(1)
    rows = [M.fresh_map(k, rng) for k in ("blocks-10", "blocks-20", "rooms", "blocks-30")]
    inputs = smooth.jagged_inputs(rows, rng)
    assert inputs
    for g, path, _ in inputs:
        assert M.judge_path(g, path)[0] and len(set(path)) == len(path)  # valid, simple
        pts = [smooth.point(c) for c in path]
        pulled = smooth.string_pull(g, pts)
        assert pulled[0] == pts[0] and pulled[-1] == pts[-1] and smooth.length(pulled) <= smooth.length(pts) + 1e-9
        assert all(smooth.clear(g, a, b) for a, b in zip(pulled, pulled[1:]))
        smoothed = smooth.simple_smoother(g, pts)
        assert smoothed[0] == pts[0] and smoothed[-1] == pts[-1] and len(smoothed) == len(pts)
    table = smooth.compare_smoothers(BFS(), inputs, every=5)
    for row in table:
        ok, length, _, _ = row["dLLM infill"]
        assert ok and length <= row["input"][1] + 1e-9  # each stretch shortest: never longer than the input
        kept, pulled = row["dLLM infill, input kept where it fails"], row["dLLM infill, then string pulling"]
        assert kept == row["dLLM infill"] and pulled[0] and pulled[1] <= kept[1] + 1e-9
    parts = [([0, 1, 2], [0, 16, 2]), (None, [2, 3, 4])]  # (planned, the input's own) per stretch
    assert smooth.join(parts) is None and smooth.join(parts, fallback=True) == [0, 1, 2, 3, 4]
    lines, short, fewer = smooth.summary(table)
    assert 0 <= short <= 1 and 0 <= fewer <= 1 and "target" in lines[-1]
