"""Benchmark: the playground (app.py) as a user sees it, through a real browser (headless Chromium, Selenium).

    python bench/playground.py     # 5 text runs, 3 puzzles a band, 3 maps a kind; results/playground/playground.txt
    PLAYGROUND_SHOTS=bench/results/playground python -m pytest tests/test_app_browser.py   # the README's screenshots

Targets (issue 41): the first canvas within 1 s of pressing Generate for 256 characters; the stream at least 10
frames a second; a Sudoku solved and shown within 2 s (and, measured without a target, a robot's path planned on
a map of each kind of lesson 16). Times are the browser's own clock (performance.now) from
the click to the change of the element, so they include the server, the queue and the page's rendering. Run it
alone on the machine: the browser and the server share its cores.
"""
import common  # noqa: F401  (the repository on the import path)

# isort: split
import platform
import random
import statistics
import sys
from importlib import import_module

from support import browser, runtime
from support.cli import ArgumentParser, UsageError, positive_int, random_seed, run_cli
from support.files import write_text

puzzles = import_module("sudoku_puzzles")
maps = import_module("robot_maps")
OUT = common.RESULTS / "playground"


def text_runs(driver, n):
    """n presses of Generate (the page's defaults: 256 characters, 50 calls, top-k 5): each run's timings (ms)."""
    rows = []
    for i in range(n):
        browser.set_text(driver, "#seed", str(i))
        t0, seen = browser.run_text(driver)
        masked = [j for j, (_, h) in enumerate(seen) if browser.masks(h)]
        first = masked[0]  # the canvas of masks, before the first model call
        total = browser.masks(seen[first][1])
        moved = next(j for j in range(first, len(seen)) if browser.masks(seen[j][1]) < total)
        end = len(seen) - 1
        while end > first and seen[end][1] == seen[end - 1][1]:
            end -= 1
        span = (seen[end][0] - seen[first][0]) / 1000
        rows.append(dict(first_canvas=seen[first][0] - t0, first_call=seen[moved][0] - t0, done=seen[end][0] - t0,
                         frames=end - first + 1, fps=(end - first) / span if span > 0 else float("nan"),
                         left=browser.masks(seen[end][1])))
    return rows


def sudoku_runs(driver, per_band, seed):
    rows = []
    rng = random.Random(seed)
    for band, givens in puzzles.BANDS.items():
        for puzzle, solution in puzzles.make_split(per_band, givens, rng, set()):
            line = "".join(map(str, puzzle))
            for how in ("margin order (pure model)", "search: rules + dLLM"):
                seconds, grid, verdict = browser.run_sudoku(driver, line, how)
                rows.append(dict(band=band, how=how, seconds=seconds, solved=grid.replace("\n", "") == "".join(
                    map(str, solution))))
    return rows


def path_runs(driver, per_kind, seed):
    """per_kind fresh maps of each kind, planned in the Robot path tab: the verdict's words for each model."""
    rows = []
    rng = random.Random(seed)
    for kind in maps.KINDS:
        for _ in range(per_kind):
            grid, _, _ = maps.fresh_map(kind, rng)
            seconds, verdict = browser.run_path(driver, grid)
            dllm, gpt = (line.split(":", 1)[1] for line in verdict.splitlines()[:2])
            rows.append(dict(kind=kind, seconds=seconds, valid=dllm.strip().startswith("valid"),
                             shortest="a shortest path" in dllm, gpt_valid=gpt.strip().startswith("valid")))
    return rows


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=positive_int, default=5, help="presses of Generate per pace")
    p.add_argument("--puzzles", type=positive_int, default=3, help="puzzles per difficulty band")
    p.add_argument("--maps", type=positive_int, default=3, help="maps per kind (lesson 16's tab)")
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the puzzles and the maps")
    args = p.parse_args(argv)
    if why := browser.missing():
        raise UsageError(f"no browser to drive: {why}")
    lines = [f"# python bench/playground.py --runs {args.runs} --puzzles {args.puzzles} --maps {args.maps}",
             f"# machine: {runtime.setting()}; {platform.platform()}"]
    for pace in ("0.04", "0"):
        with browser.serve(common.ROOT / "app.py", "--pace", pace) as url:
            driver = browser.chromium()
            try:
                browser.open_page(driver, url)
                rows = text_runs(driver, args.runs)
                what = "the default: at most 25 calls a second" if pace != "0" else "no slow motion"
                out = [f"text, --pace {pace} ({what}), "
                       f"{args.runs} runs, medians: first canvas {median(rows, 'first_canvas'):.0f} ms after the "
                       f"click, first call shown {median(rows, 'first_call'):.0f} ms, done {median(rows, 'done'):.0f}"
                       f" ms; {median(rows, 'frames'):.0f} frames, {median(rows, 'fps'):.1f} frames/s (slowest run "
                       f"{min(r['fps'] for r in rows):.1f}); masks left at the end: {max(r['left'] for r in rows)}"]
                if pace != "0":
                    srows = sudoku_runs(driver, args.puzzles, args.seed)
                    for band in puzzles.BANDS:
                        for how in ("margin order (pure model)", "search: rules + dLLM"):
                            r = [x for x in srows if x["band"] == band and x["how"] == how]
                            out.append(f"sudoku {band:>5} givens, {how}: solved {sum(x['solved'] for x in r)}/"
                                       f"{len(r)}, shown after {statistics.median(x['seconds'] for x in r):.2f} s "
                                       f"(median; slowest {max(x['seconds'] for x in r):.2f} s)")
                    prows = path_runs(driver, args.maps, args.seed)
                    for kind in maps.KINDS:
                        r = [x for x in prows if x["kind"] == kind]
                        out.append(f"path {kind:>9}: dLLM valid {sum(x['valid'] for x in r)}/{len(r)} (shortest "
                                   f"{sum(x['shortest'] for x in r)}), GPT valid {sum(x['gpt_valid'] for x in r)}/"
                                   f"{len(r)}; verdict shown after {statistics.median(x['seconds'] for x in r):.2f} s "
                                   f"(median; slowest {max(x['seconds'] for x in r):.2f} s)")
                left = browser.outside(browser.requests_made(driver))
                out.append(f"requests that left 127.0.0.1: {len(left)}{' ' + ' '.join(left[:3]) if left else ''}")
            finally:
                driver.quit()
        for line in out:
            print(line)
        lines += out
    write_text(OUT / "playground.txt", "\n".join(lines) + "\n")  # whole or not at all, the folder made
    print(f"-> {OUT / 'playground.txt'}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
