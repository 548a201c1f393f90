"""The playground: watch the dLLM denoise, in the browser, on the shipped models (and
    your own runs).

    pip install gradio       # once: an optional extra, not one of the lessons' requirements
    python app.py            # then open http://127.0.0.1:7860 (offline: nothing is fetched)

Text: the canvas fills in call by call (lesson 04's sampler, lesson 10's blocks, lesson 13's
remasking; for lesson 15's uniform-noise model, random characters that every call may rewrite),
each character coloured by the confidence it was written with, the ones taken back marked;
the GPT of the same size writes the same length beside it. Sudoku: the grid fills in the
dLLM's own order (lesson 12), each cell with the call that filled it; lesson 13's repair and the
search mode too; the answer is checked against the rules. Robot path: the dLLM marks a path's
cells on a 16 x 16 map, surest first; the GPT walks from the start, move by move (lesson 16).

Fair race: each model runs in a thread of its own, one model call at a time, and the next call
always goes to the model whose clock is behind, as if each had the machine to itself. Its clock
counts its own work only (model calls and its sampler's bookkeeping), so chars/s compare. The
functions that make the frames (race, text_frames, sudoku_frames, path_frames) need no browser:
tests/test_app.py runs them; tests/test_app_browser.py drives the page.
"""
import html
import os
import random
import sys
import threading
import time
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import torch

from support import checkpoints, pretrained, runtime
from support.cli import SEEDS, ArgumentParser, UsageError, finite_float, number, run_cli

diff = import_module("04_diffusion")
gen = import_module("06_generate")
gpt = import_module("07_train_gpt")
tamil = import_module("09_generate_tamil")
fast = import_module("10_fast_decoding")
sudoku = import_module("12_sudoku")
remask = import_module("13_self_correction")
uniform = import_module("15_uniform_noise")
paths = import_module("16_robot_paths")
puzzles = import_module("sudoku_puzzles")
maps = import_module("robot_maps")
ROOT = Path(__file__).resolve().parent
# a first prompt per tokenizer (Tamil: the first kural)
PROMPTS = {"char": "ROMEO:", "grapheme": "அகர முதல"}


# ----------------------------------------------------------------------------------------------
# The race: two samplers, one model call at a time, the one behind goes next
# ----------------------------------------------------------------------------------------------
class Stopped(BaseException):
    """Raised inside a lane's thread at its next model call once the page has gone (BaseException:
    no sampler catches it by accident)."""


class Lane:
    """One model's sampler in a thread of its own. run(model, callback) is any sampler of the
    lessons, given a stand-in for the model that waits for its turn at every call: the sampler
    itself is unchanged."""

    def __init__(self, model, run):
        self.model, self.clock, self.calls = model, 0.0, 0
        self.x = self.inputs = self.logits = self.result = self.error = None
        self.done = self.stopped = False
        self._turn, self._back, self._t0 = threading.Semaphore(0), threading.Semaphore(0), 0.0
        # started by the first step:
        self.thread = threading.Thread(target=self._main, args=(run,), daemon=True)
        # a page that stops reading before the race begins leaves no thread waiting for a turn

    def _main(self, run):
        try:
            self._wait()
            self.result = run(Standin(self), self._seen)
        except Stopped:
            return
        except Exception as e:  # shown by race() in the page's own thread
            self.error = e
        self.clock += time.perf_counter() - self._t0
        self.done = True
        self._back.release()

    def _wait(self):
        self._turn.acquire()
        if self.stopped:
            raise Stopped
        self._t0 = time.perf_counter()

    def _seen(self, calls, x):  # the sampler's callback: the canvas after each call
        self.x = x

    def forward(self, *args, **kw):
        # a new model call is a new turn: hand the machine back until the race says go
        if self.calls:
            self.clock += time.perf_counter() - self._t0
            self._back.release()
            self._wait()
        self.calls += 1
        self.inputs, self.logits = args[0], self.model(*args, **kw)
        return self.logits

    def step(self):
        """Let the sampler run one model call and what follows it (commit, callback), up to
        its next call."""
        if self.thread.ident is None:
            self.thread.start()
        self._turn.release()
        self._back.acquire()
        if self.error is not None:
            raise self.error

    def stop(self):
        # a thread that was started waits for its turn
        if not self.done and self.thread.ident is not None:
            self.stopped = True
            self._turn.release()


class Standin:
    """What a sampler sees as its model: calls go through the lane; config, parameters() are
    the model's own."""

    def __init__(self, lane):
        self._lane = lane

    def __call__(self, *args, **kw):
        return self._lane.forward(*args, **kw)

    def __getattr__(self, name):
        return getattr(self._lane.model, name)


def race(lanes):
    """Yield the lane that just made a call, each time giving the next call to the lane whose clock
    is behind. The lanes' threads end with the race, also when the page stops reading it."""
    try:
        while running := [lane for lane in lanes if not lane.done]:
            lane = min(running, key=lambda lane: lane.clock)
            lane.step()
            yield lane
    finally:
        for lane in lanes:
            lane.stop()


def paced(lanes, max_fps):
    """race(lanes), each lane with a flag: draw this frame? Every call of the first lane (the
    dLLM) and each lane's last are drawn; the other lane's at most max_fps a second."""
    last = time.perf_counter()
    for lane in race(lanes):
        now = time.perf_counter()
        draw = lane is lanes[0] or lane.done or now - last >= 1 / max_fps
        last = now if draw else last
        yield lane, draw


# ----------------------------------------------------------------------------------------------
# Text: the frames
# ----------------------------------------------------------------------------------------------
class Canvas:
    """What the page draws of one text: each position's token, the probability it was written
    with, the call that wrote it and how often it was taken back. fixed: positions the user
    typed (never changed)."""

    def __init__(self, ids, mask_id, fixed):
        self.ids, self.mask_id, self.fixed = list(ids), mask_id, list(fixed)
        self.conf, self.step, self.back = [None] * len(ids), [0] * len(ids), [0] * len(ids)

    def update(self, x, p, calls):
        """x (L,): the canvas after call `calls`; p: each cell's probability of its token
        (chosen(); None: not known)."""
        x, p = x.tolist(), p or [None] * len(x)
        for i, (old, new) in enumerate(zip(self.ids, x)):
            if old != new:
                self.back[i] += old != self.mask_id  # a written token masked again (or replaced)
                if new != self.mask_id:
                    self.conf[i], self.step[i] = p[i], calls
                self.ids[i] = new

    def append(self, ids, probs, calls):  # the GPT: tokens added at the end
        for t, pr in zip(ids, probs):
            self.ids.append(t)
            self.fixed.append(False)
            self.conf.append(pr)
            self.step.append(calls)
            self.back.append(0)

    def snapshot(self):
        return list(self.ids), list(self.conf), list(self.step), list(self.back), list(self.fixed)

    def masked(self):
        return sum(t == self.mask_id for t in self.ids)


def chosen(x, logits):
    """The probability each token of x (L,) had: logits (L, V), one distribution per cell, or (V,),
    one for every cell (the GPT's last position, which wrote the new one); softmax in fp32."""
    probs, x = logits.float().softmax(-1).cpu(), x.cpu().clamp_max(logits.size(-1) - 1)
    return (probs[x] if probs.dim() == 1 else probs.gather(-1, x[:, None])[:, 0]).tolist()


def text_canvas(tokenizer, mask_id, context, mode, prompt, length):
    """(L,) the canvas the page's inputs describe, or UsageError with a message for the page."""
    if not prompt:
        raise UsageError("type a prompt first (or, in 'fill the blanks', a text with _ where the "
                         "model writes)")
    if mode == "fill":
        if "_" not in prompt:
            raise UsageError("'fill the blanks' needs _ where the model writes, e.g. To be, or "
                             "___ to be")
        text, length = prompt, len(tokenizer.split(prompt))
    else:
        text = prompt
        if not 1 <= length <= context:
            raise UsageError(f"length must be 1 to {context} (this model's context), not {length}")
    unknown = tokenizer.unknown(text.replace("_", ""))
    if unknown:
        units = "graphemes" if tokenizer.kind == "grapheme" else "characters"
        raise UsageError(f"this model does not know {' '.join(map(repr, unknown))}: its vocabulary "
                         f"is {tokenizer.vocab_size} {units}")
    if mode != "fill" and len(tokenizer.split(prompt)) >= length:
        raise UsageError(f"the prompt is {len(tokenizer.split(prompt))} long: make the length "
                         "larger than that")
    if length > context:
        raise UsageError(f"the text is {length} long; this model's context is {context}")
    flags = SimpleNamespace(template=prompt if mode == "fill" else None, fill_char="_", len=length,
                            prompt=prompt if mode != "fill" else "", suffix="")  # 06's canvas flags
    return gen.build_canvas(tokenizer, mask_id, context, flags)


def dllm_sampler(canvas, s):
    """run(model, callback) for a Lane: lesson 04's sampler, 10's blocks or 13's remasking on one
    canvas. s: the page's settings: steps, top_k, temperature, order, noise, block, schedule, seed;
    eta and threshold (13's defaults if absent)."""
    steps, block, schedule = s["steps"], s["block"], s["schedule"]
    g = torch.Generator().manual_seed(s["seed"])
    sampling = diff.Sampling(s["temperature"], s["top_k"], 1.0, s["order"], s["noise"], g)
    if schedule != "none" and block:
        raise UsageError("lesson 13's remasking works on the whole canvas: set block size 0, or "
                         "schedule none")
    if block and len(range(0, canvas.numel(), block)) > steps:
        raise UsageError(f"{-(-canvas.numel() // block)} blocks need at least as many steps")

    def run(model, callback):
        x = canvas[None].to(next(model.parameters()).device)
        if model.config.time_input:  # lesson 15: every free position redrawn at every call
            if block or schedule != "none":
                raise UsageError("a uniform-noise model redraws the whole canvas at every call: "
                                 "set block size 0 and schedule none")
            return uniform.generate_uniform(uniform.fed(model), x, steps, sampling, callback)[0], 0
        # -> (x, tokens taken back): one taken back and written again alike in the
        if schedule != "none":
            r = remask.Remask(schedule, s.get("eta", 0.02), s.get("threshold", 0.05),
                              max(1, steps // 5))
            # same call leaves the
            x, _, taken = remask.generate_remask(model, x, steps, sampling, r, callback)
            return x, taken  # canvas as it was: only this counts it
        if block:
            return fast.generate_fast(model, x, sampling, steps, block_size=block,
                                      callback=callback)[0], 0
        return diff.generate(model, x, steps, sampling, callback)[0], 0

    return run


def gpt_sampler(prompt_ids, n_new, top_k, temperature, seed):
    def run(model, callback):
        x = torch.tensor(prompt_ids, device=next(model.parameters()).device)[None]
        sampling = diff.Sampling(temperature, top_k, generator=torch.Generator().manual_seed(seed))
        return gpt.generate_gpt(model, x, n_new, sampling, callback=callback)

    return run


def text_frames(dllm, gpt_model, tokenizer, canvas, settings, max_fps=30):
    """The text tab's stream, no browser needed: yields (dLLM Canvas, GPT Canvas or None,
    stats dict, new_call) once before any call (the masked canvas) and after each model call
    (GPT calls at most max_fps a second). settings: steps, top_k, temperature, order, noise,
    block, schedule, seed."""
    s = settings
    mask_id = gen.hole_id(dllm.config)
    fixed = (canvas != mask_id).tolist()
    left = Canvas(canvas.tolist(), mask_id, fixed)
    prompt = canvas[: fixed.index(False)].tolist() if False in fixed else canvas.tolist()
    lanes = [Lane(dllm, dllm_sampler(canvas, s))]
    right = None
    # a prompt, no blanks
    if gpt_model is not None and all(fixed[: len(prompt)]) and not any(fixed[len(prompt):]):
        right = Canvas(prompt, mask_id, [True] * len(prompt))
        n_new = len(fixed) - len(prompt)
        sampler = gpt_sampler(prompt, n_new, s["top_k"], s["temperature"], s["seed"])
        lanes.append(Lane(gpt_model, sampler))
    stats = {"dllm": lanes[0], "gpt": lanes[1] if right else None}
    yield left, right, stats, True
    for lane, draw in paced(lanes, max_fps):
        if lane is lanes[0]:
            if lane.x is not None:
                left.update(lane.x[0], chosen(lane.x[0], lane.logits[0]), lane.calls)
        elif lane.x is not None and len(lane.x[0]) > len(right.ids):
            new = lane.x[0, len(right.ids):].tolist()
            p = lane.logits[0, -1].float().softmax(-1)[new[-1]].item()
            right.append(new, [p] * len(new), lane.calls)
        if draw:
            yield left, right, stats, lane is lanes[0]


def speed(lane, written, unit="chars"):
    """One model's line: calls, what it wrote, its own compute time, and the rate."""
    rate = written / lane.clock if lane.clock > 0 else 0.0
    return f"{lane.calls} calls · {written} {unit} · {lane.clock:.2f} s · {rate:,.0f} {unit}/s"


# ----------------------------------------------------------------------------------------------
# Text: drawing
# ----------------------------------------------------------------------------------------------
def colour(p):
    """Red (unsure) through yellow to green (sure)."""
    return f"hsl({120 * p:.0f}, 75%, 80%)"


def render(tokenizer, snap, title):
    """A canvas as HTML: masks as grey boxes, typed text plain, written tokens coloured by
    confidence, the ones taken back underlined in red (hover: the call, the probability, how
    often taken back)."""
    ids, conf, step, back, fixed = snap
    out = []
    for t, c, s, b, f in zip(ids, conf, step, back, fixed):
        if t >= tokenizer.vocab_size:  # [MASK]; outlined in red if a token was taken back from here
            out.append(f'<span class="m{" r" if b else ""}">&nbsp;</span>')
            continue
        piece = tokenizer.tokens[t]
        shown = html.escape(piece).replace("\n", "↵<br>")
        if f:
            out.append(f'<span class="f">{shown}</span>')
            continue
        tip = f"call {s}, p = {c:.2f}" + (f", taken back {b}x" if b else "")
        out.append(f'<span class="w{" b" if b else ""}" style="background:{colour(c)}" '
                   f'title="{tip}">{shown}</span>')
    return f'<div class="title">{title}</div><div class="canvas">{"".join(out)}</div>'


# ----------------------------------------------------------------------------------------------
# Sudoku: the frames
# ----------------------------------------------------------------------------------------------
SUDOKU_MODES = {"margin order (pure model)": "margin", "surest first (pure model)": "confidence",
                "taking back rule-breakers (lesson 13)": "repair", "search: rules + dLLM": "search"}


def read_puzzle(text):
    """The page's puzzle box: 81 cells (digits, '.' or '0' blank; spaces, lines and | + -
    ignored) -> (81,)."""
    cells = "".join(c for c in text if c not in " \t\r\n|+-")
    if not cells:
        raise UsageError("paste a puzzle (81 cells: digits, '.' or 0 for a blank), or draw one")
    grid = puzzles.parse_puzzle(cells, "the puzzle")
    if sum(v > 0 for v in grid) < 17:
        raise UsageError(f"the puzzle has {sum(v > 0 for v in grid)} givens: fewer than 17 never "
                         "has one solution")
    return torch.tensor(grid)


def draw_puzzle(band, seed=None):
    """A new puzzle with givens in `band` (sudoku_puzzles.BANDS), as 9 lines of 9 ('.' blank)."""
    (puzzle, _), = puzzles.make_split(1, puzzles.BANDS[band], random.Random(seed), set())
    return "\n".join("".join(str(v) if v else "." for v in puzzle[r * 9:r * 9 + 9]) for r
                     in range(9))


def sudoku_sampler(puzzle, mode):
    def run(model, callback):
        puzzle_on = puzzle.to(next(model.parameters()).device)
        if mode == "search":
            return sudoku.solve_search(model, puzzle_on[None])[0]
        if mode == "repair":
            sampling = diff.Sampling(order="margin", generator=torch.Generator().manual_seed(0))
            return remask.solve_remask(model, puzzle_on[None], 8, sampling, callback)[0]
        return sudoku.solve_dllm(model, puzzle_on[None], mode, callback=callback)[0]

    return run


def sudoku_frames(dllm, gpt_model, puzzle, mode, max_fps=30):
    """The Sudoku tab's stream: yields (dLLM Canvas, GPT Canvas or None, lanes) before any call and
    after each dLLM call (the GPT's at most max_fps a second). A cell holds 0..9 or the mask id; in
    search mode the frames are the grids the search asks the model about."""
    mask_id = dllm.config.mask_id
    start = puzzle.masked_fill(puzzle == 0, mask_id)
    left, right = Canvas(start.tolist(), mask_id, (puzzle > 0).tolist()), None
    lanes = [Lane(dllm, sudoku_sampler(puzzle, mode))]
    if gpt_model is not None:
        right = Canvas(start.tolist(), mask_id, (puzzle > 0).tolist())
        on = puzzle.to(next(gpt_model.parameters()).device)
        solve = lambda model, cb: sudoku.solve_gpt(model, on[None], callback=cb)[0]
        lanes.append(Lane(gpt_model, solve))
    yield left, right, lanes
    for lane, draw in paced(lanes, max_fps):
        mine = lane is lanes[0]
        canvas, seen, p = left if mine else right, lane.x, None
        if mine and mode == "search":
            # the grid the search asks the model about: its own placements, no probabilities
            seen = lane.inputs
        if seen is not None:
            seen = seen[0].masked_fill(seen[0] == 0, mask_id)
            if not (mine and mode == "search"):
                # the dLLM: this call's probabilities; the GPT: its last position's (the new cell)
                p = chosen(seen, lane.logits[0] if mine else lane.logits[0, -1])
            canvas.update(seen, p, lane.calls)
        if lane.done:
            canvas.update(lane.result[0].masked_fill(lane.result[0] == 0, mask_id), None,
                          lane.calls)
        if draw:
            yield left, right, lanes


def verdict(snap, puzzle, mask_id):
    """(message, grid text): the answer checked against the rules and the givens."""
    ids = snap[0]
    if any(t == mask_id or t == 0 for t in ids):
        why = "not finished: blanks are left (the search gave up at its call limit)"
        return why, sudoku.NO_ANSWER
    grid = torch.tensor(ids)[None]
    bad = int(remask.conflicts(grid, puzzle[None]).sum())
    if bool(sudoku.valid(grid, puzzle[None])):
        return "valid: every row, column and box holds 1-9 once, every given kept", "\n".join(
            "".join(map(str, ids[r * 9:r * 9 + 9])) for r in range(9))
    return f"not valid: {bad} cells break a rule", sudoku.NO_ANSWER


def render_grid(snap, title):
    """A grid as an HTML table: givens bold, written digits coloured by confidence with their call,
    rule-breakers framed in red."""
    ids, conf, step, back, fixed = snap
    grid = torch.tensor([t if t < 10 else 0 for t in ids])
    givens = torch.tensor([t if f else 0 for t, f in zip(ids, fixed)])
    bad = remask.conflicts(grid[None], givens[None])[0].tolist()
    rows = []
    for r in range(9):
        cells = []
        for c in range(9):
            i = r * 9 + c
            t, cls = ids[i], "bad " if bad[i] else ""
            if fixed[i]:
                cells.append(f'<td class="{cls}g">{t}</td>')
            elif not 0 < t < 10:
                cells.append(f'<td class="{cls}e"></td>')
            else:
                bg = colour(conf[i]) if conf[i] is not None else "#ddd"
                cells.append(f'<td class="{cls}w" style="background:{bg}" title="call {step[i]}, '
                             f'p = {conf[i] or 0:.2f}">{t}<sub>{step[i]}</sub></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="title">{title}</div><table class="sudoku">{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------------
# Robot path (lesson 16): the dLLM marks the path's cells, surest first; the GPT walks from S
# ----------------------------------------------------------------------------------------------
def read_map(text):
    """The page's map box: 16 rows of 16 (# wall, . free, S start, G goal; a * is read as free;
    spaces and line breaks ignored) -> (256,) token ids; a map without a way from S to G refused."""
    cells = "".join(c for c in text if c not in " \t\r\n").replace("*", ".")
    if not cells:
        raise UsageError("paste a map (16 rows of 16: # wall, . free, S, G), or draw one")
    grid = maps.parse_map(cells, "the map")
    if grid.index("S") not in maps.distances([c == "#" for c in grid], grid.index("G")):
        raise UsageError("the map has no way from S to G: nothing to plan")
    return paths.tensor([grid])[0]


def draw_map(kind, seed=None):
    """A new map of `kind` (robot_maps.KINDS) with a start and a goal, as 16 lines of 16."""
    grid, _, _ = maps.fresh_map(kind, random.Random(seed))
    return "\n".join(grid[r * maps.SIZE:(r + 1) * maps.SIZE] for r in range(maps.SIZE))


def path_frames(dllm, gpt_model, grid, max_fps=30):
    """The Robot path tab's stream: yields (dLLM Canvas, GPT Canvas or None, lanes) before any call
    and after each dLLM call (the GPT's at most max_fps a second). The dLLM's canvas: every free
    cell masked, then marked path or free; the GPT's: the map, the cells its moves reach marked.
    Each lane's result: its plan (the cells from S to G) or None."""
    mask_id, where = dllm.config.mask_id, paths.text(grid.tolist())
    fixed = (grid != paths.FREE).tolist()
    left = Canvas(grid.masked_fill(grid == paths.FREE, mask_id).tolist(), mask_id, fixed)
    on = lambda model: grid.to(next(model.parameters()).device)[None]
    lanes = [Lane(dllm, lambda model, cb: paths.plan_dllm(model, on(model), callback=cb)[0])]
    right = None
    if gpt_model is not None:
        right = Canvas(grid.tolist(), mask_id, [True] * len(fixed))
        lanes.append(Lane(gpt_model, lambda model, cb: paths.plan_gpt(model, on(model),
                                                                      callback=cb)[0]))
    yield left, right, lanes
    for lane, draw in paced(lanes, max_fps):
        mine = lane is lanes[0]
        if mine and lane.x is not None:  # this call's probabilities of each cell's mark
            left.update(lane.x[0], chosen(lane.x[0], lane.logits[0]), lane.calls)
        elif not mine and lane.x is not None:  # the cells the moves so far reach, from S
            moves = paths.text(lane.x[0].tolist())
            p = lane.logits[0, -1].float().softmax(-1)[lane.x[0, -1]].item()  # the last move's
            x = grid.clone()
            for cell in maps.walk(where, moves, partial=True)[1:]:
                x[cell] = paths.PATH if grid[cell] == paths.FREE else grid[cell]
            right.update(x, [p] * len(x), lane.calls)
        if draw:
            yield left, right, lanes


def path_verdict(grid, plan):
    """One line on a plan: valid or not, its moves against the shortest."""
    where = paths.text(grid.tolist())
    valid, shortest = maps.judge_path(where, plan)
    if not valid:
        return "no valid path (a wall crossed, a gap, or S and G not joined)"
    best = maps.distances([c == "#" for c in where], where.index("G"))[where.index("S")]
    return f"valid, {len(plan) - 1} moves" + (" (a shortest path)" if shortest else
                                               f" (the shortest has {best})")


def render_map(snap, title):
    """A map as an HTML table: walls dark, S and G coloured, masked cells grey, path cells coloured
    by the probability they were marked with (hover: the call)."""
    ids, conf, step, _, _ = snap
    rows = []
    for r in range(maps.SIZE):
        cells = []
        for i in range(r * maps.SIZE, (r + 1) * maps.SIZE):
            ch = paths.TOKENS[ids[i]] if ids[i] < len(paths.TOKENS) else "?"
            if ch == "*":
                bg = colour(conf[i]) if conf[i] is not None else "#ddd"
                cells.append(f'<td class="p" style="background:{bg}" title="call {step[i]}, '
                             f'p = {conf[i] or 0:.2f}">•</td>')
            else:
                cls = {"#": "w", "S": "s", "G": "g", ".": "f"}.get(ch, "m")
                cells.append(f'<td class="{cls}">{ch if ch in "SG" else ""}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="title">{title}</div><table class="robot">{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------------
# The models the page offers: the shipped ones, then your own runs once they exist
# ----------------------------------------------------------------------------------------------
def find_models(root=ROOT):
    """{label: path} of text dLLMs and text GPTs; the shipped exports first, then every
    run under checkpoints/."""
    found = {"dllm": {}, "gpt": {}}
    # the quick start's 10.7M dLLM first (the page opens on it), the 0.8M one a click away
    for name in (pretrained.TEXT_DLLM, "shakespeare-dllm", "thirukkural-dllm", pretrained.UNIFORM,
                 "shakespeare-uniform", pretrained.TEXT_GPT, "shakespeare-gpt"):
        path = root / "checkpoints" / "pretrained" / name
        if (path / "config.json").exists():
            found["gpt" if name.endswith("gpt") else "dllm"][f"shipped: {name}"] = path
    for path in sorted((root / "checkpoints").glob("**/")):
        if "pretrained" not in path.parts and pretrained.has_run(path):
            try:
                # older files: inferred from what they hold
                info = checkpoints.load_checkpoint(path)["objective"]
            except UsageError:  # a torn file is not offered
                continue
            info = "dllm" if info == "uniform" else info  # lesson 15's: a dLLM of the other noise
            if info in found:
                found[info][f"your run: {path.relative_to(root)}"] = path
    return found


class Models:
    """Loaded once, kept: the page's model calls start at once."""

    def __init__(self, root=ROOT, device="cpu"):
        self.root, self.device, self.cache, self.lock = root, device, {}, threading.Lock()
        self.found = find_models(root)

    def get(self, kind, path):
        with self.lock:
            if path not in self.cache:
                self.cache[path] = gen.load(path, kind, self.device, tamil.TOKENIZERS)[:2]
            return self.cache[path]

    def gpt_for(self, tokenizer, label, dllm=None):
        """The GPT with the same vocabulary, your own if the dLLM is yours, else a shipped one;
        of the dLLM's size (layers and width) when there is one: a fair race. None if none fits."""
        mine = label.startswith("your run")
        size = lambda m: (m.config.n_layer, m.config.n_embd)
        first = None  # loaded one by one, until one of the dLLM's size turns up
        for want_mine in (mine, not mine):
            for name, path in self.found["gpt"].items():
                if name.startswith("your run") == want_mine:
                    model, tok = self.get("gpt", path)
                    if tok.to_dict() == tokenizer.to_dict():
                        if dllm is None or size(model) == size(dllm):
                            return model
                        first = first or model
        return first

    def sudoku(self, kind):
        return self._task("sudoku", kind, sudoku.load_solver)

    def paths(self, kind):
        return self._task("paths", kind, paths.load_planner)

    def _task(self, task, kind, load):  # lessons 12 and 16: your run, else the shipped model
        with self.lock:
            if (task, kind) not in self.cache:
                self.cache[task, kind] = load(kind, device=self.device)
            return self.cache[task, kind]


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------
CSS = """
.canvas {font-family: ui-monospace, monospace; font-size: 15px; line-height: 1.7; white-space:
pre-wrap;
         word-break: break-all; min-height: 4em}
.canvas span.m {background: #9aa3ad; border-radius: 2px; display: inline-block; width: .62em;
margin: 0 1px 0 0} .canvas span.f {font-weight: bold} .canvas span.b {text-decoration: underline
wavy #c00; text-decoration-thickness: 2px} .canvas span.r {background: #c66} .title {font-weight:
bold; margin: .3em 0} table.sudoku {border-collapse: collapse; font: 20px ui-monospace, monospace;
margin: .3em 0} table.sudoku td {width: 1.8em; height: 1.8em; text-align: center; border: 1px solid
#bbb; position: relative} table.sudoku tr:nth-child(3n) td {border-bottom: 3px solid #333}
table.sudoku tr:first-child td {border-top: 3px solid #333} table.sudoku td:nth-child(3n)
{border-right: 3px solid #333} table.sudoku td:first-child {border-left: 3px solid #333}
table.sudoku td.g {font-weight: bold} table.sudoku td.bad {outline: 3px solid #c00; outline-offset:
-3px} table.sudoku sub {font-size: 9px; color: #555; position: absolute; right: 2px; bottom: 0}
table.robot {border-collapse: collapse; font: 11px ui-monospace, monospace; margin: .3em 0}
table.robot td {width: 1.3em; height: 1.3em; padding: 0; text-align: center; border: 1px solid #ddd}
table.robot td.w {background: #333} table.robot td.s {background: #2b6cb0; color: #fff} table.robot
td.g {background: #805ad5; color: #fff} table.robot td.m {background: #9aa3ad}
"""
LEGEND = ("Grey: still masked (red: masked again). **Bold**: your text. Colour: the probability "
          "the model gave the token when it wrote it (red unsure, green sure). Red wavy "
          "underline: taken back at least once (lesson 13; the uniform-noise model of lesson 15 "
          "starts from random characters and may rewrite any of them at every call); hover a "
          "token for its call. chars/s "
          "counts each model's own compute: the two take turns, the one behind first.")


def build_app(models, pace=0.04):
    """The Gradio page. pace: the least time between two dLLM calls shown (slow motion where
    the machine is fast enough to need it: on 2 CPU cores the stream itself is slower; never
    counted in chars/s)."""
    import gradio as gr

    labels = list(models.found["dllm"])
    first = labels[0] if labels else None

    # a model was chosen: its context bounds the length; a prompt in its own script
    def pick(label):
        model, tok = models.get("dllm", models.found["dllm"][label])
        ctx = model.config.block_size
        return (gr.update(maximum=ctx, value=min(ctx, 256)),
                gr.update(value=PROMPTS.get(tok.kind, "")),
                gr.update(maximum=ctx, value=min(ctx, 50)))

    def generate(label, mode, prompt, length, steps, top_k, temperature, order, noise, block,
                 schedule, eta, threshold, seed):
        """Stream the race into the page; keep every dLLM call's frame for the replay slider."""
        try:
            if label not in models.found["dllm"]:
                raise UsageError("choose a dLLM first")
            model, tok = models.get("dllm", models.found["dllm"][label])
            canvas = text_canvas(tok, gen.hole_id(model.config), model.config.block_size,
                                 "fill" if mode.startswith("fill") else "continue", prompt,
                                 int(length or 0))
            gpt_model = models.gpt_for(tok, label, model)
            unit = "graphemes" if tok.kind == "grapheme" else "chars"
            settings = dict(steps=int(steps), top_k=int(top_k or 0),
                            temperature=float(temperature or 0),
                            order=order, noise=float(noise), block=int(block), schedule=schedule,
                            eta=float(eta), threshold=float(threshold), seed=int(seed or 0))
            no_gpt = "no GPT with this vocabulary: train one (07, or 08 --model gpt)"
            kept, why = [], None if gpt_model else no_gpt
            shown = 0.0  # when the last dLLM call was shown
            for left, right, lanes, new_call in text_frames(model, gpt_model, tok, canvas,
                                                            settings):
                why = why or (None if right
                              else "a GPT writes left to right only: it cannot fill blanks")
                frame = (left.snapshot(), right.snapshot() if right else why,
                         lanes_text(lanes, left, right, unit))
                if new_call:
                    kept.append(frame)
                yield *draw(tok, *frame), "", gr.skip(), gr.skip()
                if new_call:
                    time.sleep(max(0.0, shown + pace - time.perf_counter()))
                    shown = time.perf_counter()
            last = len(kept) - 1
            yield gr.skip(), gr.skip(), "", gr.update(maximum=last, value=last,
                                                      interactive=True), kept
        except UsageError as e:  # bad input: one line in the page
            yield gr.skip(), gr.skip(), f"⚠️ {e}", gr.skip(), gr.skip()

    def draw(tok, snap_l, snap_r, stats):
        left = render(tok, snap_l, f"dLLM · {stats['dllm']}")
        right = render(tok, snap_r, f"GPT · {stats['gpt']}") if isinstance(snap_r, tuple) else \
            f'<div class="title">GPT</div>{snap_r}'
        return left, right

    def replay(i, kept, label):
        if not kept or label not in models.found["dllm"]:
            return gr.skip(), gr.skip()
        return draw(models.get("dllm", models.found["dllm"][label])[1],
                    *kept[min(int(i), len(kept) - 1)])

    def solve(text, how):
        yield gr.skip(), gr.skip(), "solving…", ""  # the old answer goes at once
        try:
            puzzle = read_puzzle(text)
        except UsageError as e:
            yield "", "", f"⚠️ {e}", ""
            return
        dllm, gpt_model = models.sudoku("dllm"), models.sudoku("gpt")
        blanks = int((puzzle == 0).sum())
        for left, right, lanes in sudoku_frames(dllm, gpt_model, puzzle, SUDOKU_MODES[how]):
            yield (render_grid(left.snapshot(), f"dLLM · {speed(lanes[0], blanks, 'cells')}"),
                   render_grid(right.snapshot(), f"GPT · {speed(lanes[1], blanks, 'cells')}"),
                   "solving…", "")
        mine, grid = verdict(left.snapshot(), puzzle, dllm.config.mask_id)
        theirs, _ = verdict(right.snapshot(), puzzle, dllm.config.mask_id)
        yield gr.skip(), gr.skip(), f"**dLLM ({how}):** {mine}  \n**GPT:** {theirs}", grid

    def plan(text):
        yield gr.skip(), gr.skip(), "planning…"
        try:
            grid = read_map(text)
        except UsageError as e:
            yield "", "", f"⚠️ {e}"
            return
        dllm, gpt_model = models.paths("dllm"), models.paths("gpt")
        free = int((grid == paths.FREE).sum())
        for left, right, lanes in path_frames(dllm, gpt_model, grid):
            moves = speed(lanes[1], lanes[1].calls, "moves")  # one move per call
            yield (render_map(left.snapshot(), f"dLLM · {speed(lanes[0], free, 'cells')}"),
                   render_map(right.snapshot(), f"GPT · {moves}"), "planning…")
        mine, theirs = (path_verdict(grid, lane.result) for lane in lanes)
        yield gr.skip(), gr.skip(), f"**dLLM (surest first):** {mine}  \n**GPT:** {theirs}"

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace",
                                         "monospace"])  # system fonts: nothing fetched
    with gr.Blocks(title="tiny-dllm playground", analytics_enabled=False) as demo:
        gr.Markdown("# tiny-dllm playground\nA masked diffusion LM fills a canvas of masks, "
                    "surest first; a GPT of the same size writes left to right beside it. Lessons "
                    "04, 06, 10, 12, 13, 15 and 16.")
        with gr.Tab("Text"):
            with gr.Row():
                with gr.Column(scale=1):
                    label = gr.Dropdown(labels, value=first, label="dLLM", elem_id="model")
                    mode = gr.Radio(["continue the prompt", "fill the blanks (_)"],
                                    value="continue the prompt", label="mode", elem_id="mode")
                    prompt = gr.Textbox(PROMPTS["char"], label="prompt (or a text with _ blanks)",
                                        lines=2, elem_id="prompt")
                    length = gr.Slider(1, 256, 256, step=1, label="length (tokens)",
                                       elem_id="length")
                    steps = gr.Slider(1, 256, 50, step=1, label="steps (model calls)",
                                      elem_id="steps")
                    with gr.Row():
                        top_k = gr.Number(5, label="top-k (0 = all)", precision=0, minimum=0,
                                          elem_id="topk")
                        temperature = gr.Number(1.0, label="temperature", minimum=0,
                                                elem_id="temperature")
                    order = gr.Dropdown(list(diff.ORDERS), value=gen.ORDER, label="unmasking order")
                    noise = gr.Slider(0, 20, gen.NOISE,
                                      label="Gumbel noise on a confidence order (0 = surest "
                                      "first; random order has none)")
                    block = gr.Slider(0, 256, 0, step=1,
                                      label="block size (0 = whole canvas; lesson 10)")
                    schedule = gr.Dropdown(list(remask.SCHEDULES), value="none",
                                           label="remasking schedule (lesson 13)",
                                           elem_id="schedule")
                    with gr.Accordion("remasking settings", open=False):
                        eta = gr.Slider(0, 0.5, 0.02,
                                        label="eta: ReMDM's (cap, rescale, loop); loop adds "
                                              "steps/5 "
                                        "calls")
                        threshold = gr.Slider(0, 1, 0.05,
                                              label="threshold: confidence takes back the written "
                                                    "token "
                                              "with the lowest confidence it was written with, if "
                                              "below this")
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, maximum=SEEDS - 1,
                                     elem_id="seed")  # the lessons' --seed range
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column(scale=2):
                    message = gr.Markdown(elem_id="message")
                    canvas = gr.HTML(elem_id="canvas")
                    gpt_canvas = gr.HTML(elem_id="gpt-canvas")
                    replay_at = gr.Slider(0, 1, 0, step=1, label="replay: dLLM call",
                                          interactive=False, elem_id="replay")
                    gr.Markdown(LEGEND)
            frames = gr.State([])
            inputs = [label, mode, prompt, length, steps, top_k, temperature, order, noise, block,
                      schedule, eta, threshold, seed]
            go.click(generate, inputs, [canvas, gpt_canvas, message, replay_at, frames])
            replay_at.input(replay, [replay_at, frames, label], [canvas, gpt_canvas])
            label.change(pick, label, [length, prompt, steps])
        with gr.Tab("Sudoku"):
            with gr.Row():
                with gr.Column(scale=1):
                    puzzle = gr.Textbox(draw_puzzle("28-35", 0),
                                        label="puzzle: 81 cells, '.' or 0 blank", lines=9,
                                        elem_id="puzzle")
                    with gr.Row():
                        band = gr.Dropdown(list(puzzles.BANDS), value="28-35", label="givens",
                                           elem_id="band")
                        new = gr.Button("Draw a puzzle", elem_id="draw")
                    how = gr.Radio(list(SUDOKU_MODES), value=next(iter(SUDOKU_MODES)),
                                   label="how the dLLM solves", elem_id="sudoku-mode")
                    go2 = gr.Button("Solve", variant="primary", elem_id="solve")
                with gr.Column(scale=2):
                    sudoku_message = gr.Markdown(elem_id="sudoku-message")
                    with gr.Row():
                        left_grid = gr.HTML(elem_id="dllm-grid")
                        right_grid = gr.HTML(elem_id="gpt-grid")
                    grid = gr.Textbox(label="the dLLM's answer (9 lines of 9 digits, once checked)",
                                      lines=9, elem_id="grid", interactive=False)
                    gr.Markdown("Bold: the givens. Colour: the probability of the digit when it "
                                "was written; the small number: the call that wrote it. Red "
                                "frame: the digit breaks a rule. Search: the rules fill what they "
                                "force, the dLLM picks at each branch point, a contradiction "
                                "sends it back (grey cells: placed by the search).")
            new.click(lambda b: draw_puzzle(b), band, puzzle)
            go2.click(solve, [puzzle, how], [left_grid, right_grid, sudoku_message, grid])
        with gr.Tab("Robot path"):
            with gr.Row():
                with gr.Column(scale=1):
                    the_map = gr.Textbox(draw_map("blocks-30", 0), lines=16, elem_id="map",
                                         label="map: 16 rows of 16 (# wall, . free, S, G)")
                    with gr.Row():
                        kind = gr.Dropdown(list(maps.KINDS), value="blocks-30", label="kind",
                                           elem_id="map-kind")
                        new_map = gr.Button("Draw a map", elem_id="draw-map")
                    go3 = gr.Button("Plan", variant="primary", elem_id="plan")
                with gr.Column(scale=2):
                    path_message = gr.Markdown(elem_id="path-message")
                    with gr.Row():
                        left_map = gr.HTML(elem_id="dllm-map")
                        right_map = gr.HTML(elem_id="gpt-map")
                    gr.Markdown("Grey: a free cell the dLLM has not marked yet. Dots: the path, "
                                "coloured by the probability it was marked with (hover: the call). "
                                "The dLLM sees the whole map and marks every free cell path or "
                                "free, surest first; the GPT reads the map, then writes moves from "
                                "S, each before it sees what lies ahead.")
            new_map.click(lambda k: draw_map(k), kind, the_map)
            go3.click(plan, [the_map], [left_map, right_map, path_message])
    return demo, theme


def lanes_text(lanes, left, right, unit="chars"):
    """The lines above the two canvases: what each model has written so far, at what cost."""
    written = sum(1 for f, t in zip(left.fixed, left.ids) if not f and t != left.mask_id)
    d = lanes["dllm"]
    # at the end, the sampler's own count
    taken = d.result[1] if d.done and d.result else sum(left.back)
    out = {"dllm": speed(d, written, unit) + (f" · {taken} taken back" if taken else "")}
    if right is not None:
        out["gpt"] = speed(lanes["gpt"], sum(1 for f in right.fixed if not f), unit)
    return out


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (0.0.0.0: every machine that can reach this one)")
    p.add_argument("--port", type=number(int, lambda v: 1 <= v <= 65535, "1 to 65535", "port"),
                   default=7860, help="port to serve on")
    p.add_argument("--share", action="store_true",
                   help="also a public gradio.live link (needs the internet)")
    pace = number(finite_float, lambda v: 0 <= v <= 5, "0 to 5 seconds", "pace")
    p.add_argument("--pace", type=pace, default=0.04,
                   help="the least seconds between two dLLM calls shown (slow motion on fast "
                        "machines; 0 = none)")
    p.add_argument("--device", default="cpu", choices=runtime.DEVICES,
                   help="where the models run")
    args = p.parse_args(argv)
    check_port(args.host, args.port)  # before the models load: a busy port is one line, at once
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    demo = None
    try:  # Ctrl-C at any point: one line, exit status 130
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise UsageError("the playground needs Gradio: pip install gradio") from None
        models = Models(device=args.device)
        if not models.found["dllm"]:
            raise UsageError("no text dLLM: checkpoints/pretrained/ lacks its models and there is "
                             "no run of yours")
        # the first models loaded before the page opens
        for label in list(models.found["dllm"])[:1]:
            dllm, tok = models.get("dllm", models.found["dllm"][label])
            models.gpt_for(tok, label, dllm)
        demo, theme = build_app(models, args.pace)
        demo.queue(default_concurrency_limit=4)  # several browsers at once
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, theme=theme,
                    css=CSS,
                    ssr_mode=False, footer_links=[], show_error=False, prevent_thread_lock=True)
        print("Ctrl-C stops it", flush=True)
        while True:  # the server runs in its own threads
            time.sleep(3600)
    except KeyboardInterrupt:
        if demo is not None:
            demo.close()
        print("stopped: the playground is closed", file=sys.stderr)
        sys.exit(130)


def check_port(host, port):
    """One line, not Gradio's traceback, when another server (another playground) holds the port."""
    import errno
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as e:
        in_use = e.errno == errno.EADDRINUSE
        busy = ": another server holds it; choose another --port" if in_use else ""
        raise UsageError(f"cannot serve on {host}:{port} ({e.strerror}){busy}") from None


if __name__ == "__main__":
    run_cli(main)
