"""The playground's streaming functions, no browser: the race is fair and ends its threads, the page shows exactly what
the lessons' samplers write, taken-back tokens are counted, and bad input becomes one message for the page."""
import importlib.util
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from support import pretrained
from support.cli import UsageError

from conftest import ROOT, cli_error, ctrl_c_as_in_a_terminal, lesson, tiny

A, D, G = lesson("app"), lesson("04_diffusion"), lesson("07_train_gpt")
PUZZLE = ("53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79")  # a classic, 30 givens


class Slow(torch.nn.Module):
    """A model whose every call takes `seconds` (to see who the race lets go next)."""

    def __init__(self, model, seconds):
        super().__init__()
        self.model, self.seconds, self.config = model, seconds, model.config

    def forward(self, x, **kw):
        time.sleep(self.seconds)
        return self.model(x, **kw)


def test_the_race_gives_each_call_to_the_model_whose_clock_is_behind_and_ends_its_threads():
    model = tiny()
    canvas = torch.full((1, 16), 11)
    run = lambda m, cb: D.generate(m, canvas, 16, callback=cb)[0]  # noqa: E731
    before = threading.active_count()
    # 1 ms against 100 ms a call: the order holds on a loaded machine too (it failed at 20 ms with two
    # background runs beside it)
    lanes = [A.Lane(Slow(model, 0.001), run), A.Lane(Slow(model, 0.1), run)]
    order = []
    for lane in A.race(lanes):
        order.append(lanes.index(lane))
    assert order.count(0) == order.count(1) == 16 and all(lane.done for lane in lanes)
    assert order[:8].count(0) > order[:8].count(1)  # the fast model runs ahead while the slow one computes
    assert lanes[1].clock > lanes[0].clock > 0  # each clock counts its own model's calls
    lanes = [A.Lane(Slow(model, 0.001), run) for _ in range(2)]
    stream = A.race(lanes)
    next(stream)
    stream.close()  # the page went away mid-run: every thread ends at its next model call
    time.sleep(0.2)
    assert threading.active_count() == before


@pytest.mark.parametrize("settings", [dict(order="confidence", noise=0.0, block=0, schedule="none"),
                                      dict(order="margin", noise=2.0, block=8, schedule="none"),
                                      dict(order="confidence", noise=0.0, block=0, schedule="confidence",
                                           threshold=0.5)])
def test_the_page_shows_exactly_what_the_lessons_samplers_write(settings):
    """The canvas streamed by text_frames ends with the tokens lesson 04/10/13's sampler writes for that seed (the
    stand-in changes nothing); frames start fully masked, end with none, and change call by call."""
    model, gpt_model = tiny(), tiny(causal=True, mask_token=False)
    tok = D.CharTokenizer("abcdefghijk")
    canvas = A.text_canvas(tok, 11, 32, "continue", "abc", 24)
    s = dict(steps=8, top_k=3, temperature=0.0, seed=5, **settings)  # greedy: the same tokens on any CPU and thread
    seen = []
    for frame in A.text_frames(model, gpt_model, tok, canvas, s):
        seen.append((frame[0].masked(), frame[3]))
    left, right, lanes, _ = frame
    run = A.dllm_sampler(canvas, s)
    direct, taken = run(model, None)
    assert left.ids == direct[0].tolist() and seen[0][0] == 21 and left.masked() == 0
    assert len({m for m, new in seen if new}) >= 3 and lanes["dllm"].calls == 8
    greedy = D.Sampling(0.0, 3, generator=torch.Generator().manual_seed(5))
    gpt_direct = G.generate_gpt(gpt_model, canvas[:3][None], 21, greedy)
    assert right.ids == gpt_direct[0].tolist() and lanes["gpt"].calls == 21
    line = A.lanes_text(lanes, left, right)
    assert line["dllm"].startswith("8 calls · 21 chars") and line["gpt"].startswith("21 calls · 21 chars")
    if settings["schedule"] == "confidence":  # greedy: written again alike, so the sampler's count says it
        assert taken > 0 and line["dllm"].endswith(f"{taken} taken back")


def test_a_token_taken_back_and_written_anew_is_marked_on_the_canvas():
    model, tok = tiny(), D.CharTokenizer("abcdefghijk")
    canvas = A.text_canvas(tok, 11, 32, "continue", "abc", 24)
    *_, (left, _, _, _) = A.text_frames(model, None, tok, canvas, dict(
        steps=8, top_k=0, temperature=1.0, order="confidence", noise=0.0, block=0, schedule="cap", eta=0.3, seed=1))
    assert sum(left.back) > 0 and left.masked() == 0  # sampled: what is taken back is mostly written otherwise
    assert 'class="w b"' in A.render(tok, left.snapshot(), "t")


def test_a_template_is_filled_and_the_gpt_says_it_cannot():
    model, gpt_model = tiny(), tiny(causal=True, mask_token=False)
    tok = D.CharTokenizer("abcdefghijk")
    canvas = A.text_canvas(tok, 11, 32, "fill", "ab___cd__e", 0)
    assert canvas.tolist()[:2] == [0, 1] and (canvas == 11).sum() == 5
    *_, (left, right, _, _) = A.text_frames(model, gpt_model, tok, canvas, dict(
        steps=5, top_k=0, temperature=1.0, order="confidence", noise=0.0, block=0, schedule="none", seed=0))
    assert right is None and left.masked() == 0 and tok.decode(left.ids)[:2] == "ab"


@pytest.mark.parametrize("mode, prompt, length, message", [
    ("continue", "", 20, "type a prompt"), ("continue", "abz", 20, "does not know 'z'"),
    ("continue", "abc", 0, "length must be 1 to 32"), ("continue", "abcabc", 5, "make the length larger"),
    ("fill", "abc", 0, "needs _"), ("fill", "a_" * 20, 0, "context is 32")])
def test_bad_text_input_is_one_message_for_the_page(mode, prompt, length, message):
    with pytest.raises(A.UsageError, match=message):
        A.text_canvas(D.CharTokenizer("abcdefghijk"), 11, 32, mode, prompt, length)


@pytest.mark.parametrize("text, message", [("", "paste a puzzle"), ("123", "81 cells, this one 3"),
                                           ("x" * 81, "only digits"), ("11" + "." * 79, "break the rules"),
                                           ("123456789" + "." * 72, "fewer than 17")])
def test_bad_puzzles_are_one_message_for_the_page(text, message):
    with pytest.raises(A.UsageError, match=message):
        A.read_puzzle(text)


@pytest.mark.parametrize("mode", ["margin", "repair", "search"])
def test_the_shipped_sudoku_dllm_fills_the_grid_call_by_call_and_the_answer_is_checked(mode):
    models = A.Models()
    dllm, gpt_model = models.sudoku("dllm"), models.sudoku("gpt")
    puzzle = A.read_puzzle(PUZZLE)
    frames = [(left.snapshot(), right.snapshot()) for left, right, _ in A.sudoku_frames(dllm, gpt_model, puzzle, mode)]
    (first, _), (last, gpt_last) = frames[0], frames[-1]
    assert sum(t == 10 for t in first[0]) == 51 and all(0 < t < 10 for t in last[0])
    message, grid = A.verdict(last, puzzle, 10)
    assert message.startswith("valid") and len(grid.splitlines()) == 9
    rows = [[int(c) for c in line] for line in grid.splitlines()]
    assert all(sorted(r) == list(range(1, 10)) for r in rows) and all(
        g == 0 or g == v for g, v in zip(puzzle.tolist(), sum(rows, [])))
    if mode != "search":  # a cell per call, each with the call that filled it
        assert sorted(s for s, f in zip(last[2], last[4]) if not f) == list(range(1, 52))
    assert all(0 < t < 10 for t in gpt_last[0])  # the GPT wrote every cell too (right or wrong)
    wrong = [t if i != 2 else t % 9 + 1 for i, t in enumerate(last[0])]  # a blank's digit changed: a rule breaks
    message, grid = A.verdict((wrong, *last[1:]), puzzle, 10)
    assert message.startswith("not valid") and grid == "no valid answer"


def test_render_draws_masks_escapes_text_and_marks_what_was_taken_back():
    tok = D.CharTokenizer(list("<a&\n"))
    canvas = A.Canvas([0, 4, 4, 3], 4, [True, False, False, True])
    canvas.update(torch.tensor([0, 1, 4, 3]), [0.2] * 4, 1)
    canvas.update(torch.tensor([0, 4, 2, 3]), [0.9] * 4, 2)
    html = A.render(tok, canvas.snapshot(), "t")
    assert html.count('class="m') == 1 and 'class="m r"' in html and "&lt;" in html and "&amp;" in html
    assert html.endswith("↵<br></span></div>")  # a newline is shown and kept
    assert canvas.back == [0, 1, 0, 0] and canvas.step[2] == 2 and canvas.conf[2] == pytest.approx(0.9)


def test_chosen_reads_each_cells_probability_from_its_own_row_or_one_shared_row():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]).log().bfloat16()  # as a bf16 model writes
    assert A.chosen(torch.tensor([1, 2]), logits) == pytest.approx([0.9, 0.3], abs=0.01)
    assert A.chosen(torch.tensor([0, 2]), logits[1]) == pytest.approx([0.5, 0.3], abs=0.01)
    assert A.chosen(torch.tensor([7, 0]), logits[0]) == pytest.approx([0.0, 0.1], abs=0.01)  # mask id: the last


def test_your_own_runs_join_the_model_list_and_find_their_gpt(tmp_path, dllm_run, gpt_run):
    runs, _, _ = dllm_run
    for name in ("dllm", "gpt"):
        (tmp_path / "checkpoints" / "mine" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / "mine" / name / "best.pt").write_bytes((runs / name / "best.pt").read_bytes())
    models = A.Models(root=tmp_path)
    assert list(models.found["dllm"]) == ["your run: checkpoints/mine/dllm"]
    assert list(models.found["gpt"]) == ["your run: checkpoints/mine/gpt"]
    model, tok = models.get("dllm", models.found["dllm"]["your run: checkpoints/mine/dllm"])
    assert models.gpt_for(tok, "your run: checkpoints/mine/dllm").config.causal


@pytest.mark.parametrize("argv, message", [(["--port", "0"], "--port"), (["--port", "70000"], "--port: must be"),
                                           (["--pace", "-1"], "--pace: must be 0 to 5 seconds"),
                                           (["--pace", "9"], "--pace: must be 0 to 5 seconds")])
def test_bad_flags_are_one_line(argv, message, capsys):
    assert message in cli_error(A.main, argv, capsys)


def test_a_seed_past_the_generators_range_is_refused_by_the_page():
    gr = pytest.importorskip("gradio")
    demo, _ = A.build_app(A.Models())
    seed, = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "seed"]
    assert seed.preprocess(2**32 - 1) == 2**32 - 1
    for bad in (2**32, 10**20, -1):  # torch.manual_seed would raise past 2**64; numpy past 2**32
        with pytest.raises(gr.Error):
            seed.preprocess(bad)


def test_importing_the_app_needs_no_gradio_and_starts_nothing():
    code = "import sys; sys.path.insert(0, '.'); import importlib; importlib.import_module('app'); " \
           "print('gradio' in sys.modules, 'threading' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split()[0] == "False", out.stderr


@pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="the playground needs gradio")
def test_ctrl_c_stops_the_server_with_exit_status_130_and_no_traceback():
    from support.browser import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        assert "Ctrl-C stops it" in next(line for line in proc.stdout if "Ctrl-C" in line or "rror" in line)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in out and "stopped" in out, out


def test_a_port_already_in_use_is_one_line_before_any_model_loads(capsys):
    import socket

    with socket.socket() as s:  # another server on the port
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = cli_error(A.main, ["--port", str(port)], capsys)
    assert f"cannot serve on 127.0.0.1:{port}" in err and "another --port" in err


def test_a_uniform_noise_model_races_too_and_every_call_may_rewrite():
    """Lesson 15's model in the text tab: the canvas ends as its own sampler writes it (greedy), the prompt kept;
    masked-only settings are one message."""
    U = lesson("15_uniform_noise")
    model = tiny(**U.UniformObjective().model_overrides)
    tok = D.CharTokenizer("abcdefghijk")
    canvas = A.text_canvas(tok, A.gen.hole_id(model.config), 32, "continue", "abc", 24)
    assert (canvas == 11).sum() == 21  # V marks the free positions of a model without [MASK]
    s = dict(steps=6, top_k=0, temperature=0.0, order="confidence", noise=0.0, block=0, schedule="none", seed=5)
    *_, (left, _, lanes, _) = A.text_frames(model, None, tok, canvas, s)
    direct, _ = U.generate_uniform(model, canvas[None], 6, D.Sampling(0.0, generator=torch.Generator().manual_seed(5)))
    assert left.ids == direct[0].tolist() and tok.decode(left.ids).startswith("abc") and lanes["dllm"].calls == 6
    with pytest.raises(UsageError, match="redraws the whole canvas"):
        list(A.text_frames(model, None, tok, canvas, {**s, "block": 4}))


def test_the_shipped_uniform_model_is_offered():
    assert {f"shipped: {pretrained.UNIFORM}", "shipped: shakespeare-uniform"} <= set(A.find_models()["dllm"])


@pytest.mark.parametrize("text, message", [("", "paste a map"), ("S.G", "256 characters"),
                                           ("S" + "x" * 254 + "G", "only # . S G"),
                                           ("S#" + "#" * 15 + "." * 238 + "G", "no way from S to G")])
def test_bad_maps_are_one_message_for_the_page(text, message):
    with pytest.raises(A.UsageError, match=message):
        A.read_map(text)


def test_the_shipped_path_models_race_and_the_page_shows_what_lesson_16_plans():
    """The dLLM's canvas starts with every free cell masked and ends with none, one cell per call, each with its call;
    the GPT's shows the cells its moves reach; the verdicts are lesson 16's plans judged (greedy: the same plan)."""
    paths, maps = lesson("16_robot_paths"), lesson("robot_maps")
    models = A.Models()
    dllm, gpt_model = models.paths("dllm"), models.paths("gpt")
    text = A.draw_map("blocks-10", 1)
    grid = A.read_map(text)
    assert paths.text(grid.tolist()) == text.replace("\n", "")
    frames = [(left.snapshot(), right.snapshot(), lanes) for left, right, lanes in A.path_frames(dllm, gpt_model, grid)]
    (first, _, _), (last, gpt_last, lanes) = frames[0], frames[-1]
    free = int((grid == paths.FREE).sum())
    mask = dllm.config.mask_id
    assert sum(t == mask for t in first[0]) == free and mask not in last[0]
    assert sorted(s for s, f in zip(last[2], last[4]) if not f) == list(range(1, free + 1))
    plan_d, plan_g = (paths.plan_dllm(dllm, grid[None])[0], paths.plan_gpt(gpt_model, grid[None])[0])
    assert [A.path_verdict(grid, lane.result) for lane in lanes] == [A.path_verdict(grid, plan_d),
                                                                      A.path_verdict(grid, plan_g)]
    moves = paths.text(lanes[1].x[0].tolist())  # every move the GPT wrote
    walked = maps.walk(text.replace("\n", ""), moves, partial=True)
    marked = [i for i, t in enumerate(gpt_last[0]) if t == paths.PATH]
    assert marked == sorted(c for c in walked if grid[c] == paths.FREE)  # the cells its moves reached
    assert 'class="m"' not in A.render_map(last, "t") and A.render_map(first, "t").count('class="m"') == free


def test_a_path_verdict_says_valid_shortest_or_not():
    grid = A.read_map("S..G" + "." * 252)
    assert A.path_verdict(grid, [0, 1, 2, 3]) == "valid, 3 moves (a shortest path)"
    assert A.path_verdict(grid, [0, 16, 17, 18, 19, 3]) == "valid, 5 moves (the shortest has 3)"
    assert A.path_verdict(grid, None).startswith("no valid path")
