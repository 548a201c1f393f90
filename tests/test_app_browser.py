"""The playground end to end: `python app.py` on a loopback port, driven by headless Chromium (Selenium), on the
shipped models, as a user would: generate and watch the canvas denoise, solve a pasted puzzle and read the grid,
type bad input and read the message; two browsers at once; nothing fetched from the internet.

Skipped, with the reason, only where no browser can be installed (CI installs chromium and chromium-driver).
PLAYGROUND_SHOTS=bench/results/playground also writes the README's screenshots of both tabs."""
import os
import random
from pathlib import Path

import pytest

from support import browser

from conftest import ROOT, lesson

pytestmark = pytest.mark.skipif(bool(browser.missing()), reason=f"no browser test: {browser.missing()}")
puzzles = lesson("sudoku_puzzles")


@pytest.fixture(scope="module")
def page():
    with browser.serve(ROOT / "app.py") as url:
        driver = browser.chromium()
        try:
            browser.open_page(driver, url)
            yield driver, url
        finally:
            driver.quit()


def test_generate_streams_the_canvas_until_no_mask_is_left(page):
    driver, _ = page
    _, seen = browser.run_text(driver)
    counts = [browser.masks(h) for _, h in seen]
    assert len({c for c in counts if c}) >= 3  # at least three different intermediate canvases
    assert counts[-1] == 0 and "50 calls" in seen[-1][1] and "GPT" in browser.text_of(driver, "#gpt-canvas")
    assert browser.text_of(driver, "#message") == ""
    if os.environ.get("PLAYGROUND_SHOTS"):  # the README's picture: the run replayed at call 20 of 50
        browser.set_text(driver, "#replay", "20")
        browser.wait_for(lambda: "20 calls" in browser.text_of(driver, "#canvas"), 10, "the replay at call 20")
        driver.save_screenshot(str(Path(os.environ["PLAYGROUND_SHOTS"]) / "text.png"))


@pytest.mark.parametrize("prompt, message", [("", "type a prompt"), ("ROMEO: ☃", "does not know '☃'")])
def test_bad_text_input_is_a_message_in_the_page(page, prompt, message):
    driver, _ = page
    browser.tab(driver, "Text")
    browser.set_text(driver, "#prompt", prompt)
    browser.click(driver, "#generate")
    assert message in browser.wait_for(lambda: message in browser.text_of(driver, "#message") and
                                       browser.text_of(driver, "#message"), 30, "the message")
    browser.set_text(driver, "#prompt", "ROMEO:")


@pytest.mark.parametrize("band, how", [("45+", "margin order (pure model)"), ("17-27", "search: rules + dLLM")])
def test_a_pasted_puzzle_is_solved_and_the_grid_holds_a_valid_answer(page, band, how):
    driver, _ = page
    (puzzle, solution), = puzzles.make_split(1, puzzles.BANDS[band], random.Random(3), set())
    _, grid, verdict = browser.run_sudoku(driver, "".join(map(str, puzzle)), how)
    rows = grid.splitlines()
    assert len(rows) == 9 and all(len(r) == 9 and r.isdigit() for r in rows), grid
    answer = [int(c) for c in "".join(rows)]
    assert puzzles.valid_solution(answer) and all(p in (0, a) for p, a in zip(puzzle, answer))
    assert verdict.startswith(f"dLLM ({how}): valid")
    if os.environ.get("PLAYGROUND_SHOTS") and band == "45+":
        (hard, _), = puzzles.make_split(1, puzzles.BANDS["28-35"], random.Random(5), set())
        browser.run_sudoku(driver, "".join(map(str, hard)), "margin order (pure model)")
        driver.save_screenshot(str(Path(os.environ["PLAYGROUND_SHOTS"]) / "sudoku.png"))


@pytest.mark.parametrize("text, message", [("12345", "81 cells"), ("11" + "." * 79, "break the rules")])
def test_an_invalid_puzzle_is_a_message_in_the_page(page, text, message):
    driver, _ = page
    _, grid, verdict = browser.run_sudoku(driver, text)
    assert message in verdict and grid == ""


def test_a_map_is_planned_in_the_robot_path_tab_and_a_bad_one_is_a_message(page):
    driver, _ = page
    maps = lesson("robot_maps")
    grid, _, _ = maps.fresh_map("blocks-10", random.Random(2))
    _, verdict = browser.run_path(driver, grid)
    assert verdict.startswith("dLLM (surest first): ") and "GPT: " in verdict, verdict
    assert browser.masks(driver.find_element("css selector", "#dllm-map").get_attribute("innerHTML")) == 0
    if os.environ.get("PLAYGROUND_SHOTS"):
        driver.save_screenshot(str(Path(os.environ["PLAYGROUND_SHOTS"]) / "paths.png"))
    _, verdict = browser.run_path(driver, "S.G")
    assert "256 characters" in verdict


def test_two_browsers_at_once_are_both_served(page):
    driver, url = page
    other = browser.chromium()
    try:
        browser.open_page(other, url)
        for d in (driver, other):
            browser.tab(d, "Text")
            browser.watch(d, "#canvas")
        for d in (driver, other):  # both press Generate before either is done
            browser.click(d, "#generate")
        for d in (driver, other):
            browser.wait_for(lambda d=d: (f := browser.frames(d, "#canvas")) and any(browser.masks(h) for _, h in f)
                             and browser.masks(f[-1][1]) == 0, 120, "a finished canvas in each browser")
        assert browser.outside(browser.requests_made(other)) == []
    finally:
        other.quit()


def test_the_page_fetched_nothing_from_the_internet(page):
    driver, _ = page
    assert browser.outside(browser.requests_made(driver)) == []
