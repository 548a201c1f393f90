"""The maps of lesson 16: every kind made, every answer a shortest path by the stated tie-break, splits that share
no wall layout, files checked, bad input one line."""
import random

import pytest

from conftest import cli_error, lesson

M = lesson("robot_maps")


def test_every_kind_gives_maps_whose_answers_are_shortest_paths():
    rng = random.Random(0)
    for kind in M.KINDS:
        for _ in range(20):
            made = M.make_map(kind, rng)
            if made is None:
                continue
            grid, answer, k = made
            assert k == kind and len(grid) == len(answer) == 256 and M.check_answer(grid, answer)


def test_the_path_is_breadth_first_and_its_tie_break_keeps_straight():
    walls = [False] * M.CELLS  # an empty room: many shortest paths from corner to corner
    path = M.shortest_path(walls, 0, 255)
    assert len(path) - 1 == 30 and path == M.shortest_path(walls, 0, 255)  # optimal, and always the same
    turns = sum((b - a) != (c - b) for a, b, c in zip(path, path[1:], path[2:]))
    assert turns == 1  # straight as long as it can: right along the top, then down (or down, then right)
    walls[1] = walls[16] = True  # the start boxed in
    assert M.shortest_path(walls, 0, 255) is None


def test_check_answer_refuses_what_is_not_a_shortest_path():
    grid, answer, _ = M.make_map("blocks-10", random.Random(3))
    assert M.check_answer(grid, answer)
    assert not M.check_answer(grid, answer.replace("*", ".", 1))  # a gap in the path
    extra = list(answer)
    extra[next(i for i, ch in enumerate(grid) if ch == "." and answer[i] == ".")] = "*"
    assert not M.check_answer(grid, "".join(extra))  # a stray cell, or a longer path
    assert not M.check_answer(grid, answer.replace("#", "*", 1))  # through a wall


def test_the_splits_share_no_wall_layout_and_the_files_check(tmp_path):
    splits = M.main(["--train", "60", "--val", "10", "--test", "10", "--out", str(tmp_path)])
    layouts = {name: {m.replace("S", ".").replace("G", ".") for m, _, _ in rows} for name, rows in splits.items()}
    assert not (layouts["train"] & layouts["val"] or layouts["train"] & layouts["test"] or layouts["val"] &
                layouts["test"])
    assert len(M.main(["--check", str(tmp_path / "test.txt")])) == 10
    again = M.main(["--train", "60", "--val", "10", "--test", "10", "--out", str(tmp_path / "again")])
    assert again == splits  # the same seed, the same files


@pytest.mark.parametrize("line, says", [("#" * 255, "not 255"), ("x" * 256, "not 'x'"), ("." * 256, "one S and one G"),
                                        ("", "no maps in it")])
def test_a_bad_map_line_is_one_line(line, says, tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text(f"{line},{line},maze\n" if line else "\n\n")
    assert says in cli_error(M.main, ["--check", str(path)], capsys)


def test_existing_map_files_are_never_replaced_unless_forced(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("the learner's maps\n")
    assert "already holds train.txt" in cli_error(M.main, ["--train", "5", "--out", str(tmp_path)], capsys)
    assert (tmp_path / "train.txt").read_text() == "the learner's maps\n"
