"""The layers a reader can see: support/ is the bottom floor (it imports no lesson, by any mechanism), lessons import
only earlier lessons, bench/ may use both, and the training loop has one small interface."""
import ast
import inspect
import re
import subprocess
import sys

import pytest

from conftest import ROOT, lesson

LESSON_MODULES = re.compile(r"^(\d\d_\w+|tamil_dataset|tamil_wikipedia|sudoku_puzzles)$")


def test_support_imports_no_lesson_by_any_mechanism():
    for path in sorted((ROOT / "support").glob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        allowed = set(sys.stdlib_module_names) | {"support", "torch", "tqdm", "matplotlib", "huggingface_hub", "PIL",
                                                   "safetensors", "numpy", "yaml", "gradio", "selenium", ""}
        # gradio, selenium: optional (the playground); numpy comes with matplotlib, yaml with huggingface_hub
        assert {m.split(".")[0] for m in imported} <= allowed, (path.name, imported)
        assert not re.search(r"import_module|__import__|importlib|runpy|exec\(", text), path.name  # no dynamic import
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert not [s for s in strings if LESSON_MODULES.match(s)], path.name  # no lesson named to import it later
    names = [p.stem for p in sorted((ROOT / "support").glob("*.py")) if p.stem != "__init__"]
    code = ("import sys, re; " + "; ".join(f"import support.{n}" for n in names) +
            "; print(sorted(m for m in sys.modules if re.match(r'(\\d\\d_|tamil_|sudoku_)', m)))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr  # at run time too: nothing loaded


def test_one_training_loop_with_one_small_interface():
    train = lesson("05_train")
    assert list(inspect.signature(train.train).parameters) == ["args", "objective", "data", "init"]  # init: 14
    objective_members = ["kind", "name", "model_overrides", "loss", "val_bits", "score", "sample"]
    data_members = ["tokenizer", "unit", "chars_per_token", "describe", "batch", "val_batch", "to"]
    objectives = [train.DiffusionObjective(), lesson("07_train_gpt").NextTokenObjective(),
                  lesson("11_block_diffusion").BlockDiffusionObjective(4), lesson("12_sudoku").SudokuDiffusion(),
                  lesson("12_sudoku").SudokuGPT(), lesson("16_robot_paths").PathDiffusion(),
                  lesson("16_robot_paths").PathGPT()]
    for o in objectives:  # every member present on every objective: the loop asks hasattr of none
        assert all(hasattr(o, m) for m in objective_members), type(o).__name__
    assert len({o.name for o in objectives}) == len(objectives)  # each recorded under its own name
    assert "hasattr" not in inspect.getsource(train)
    text = train.TextData("ab" * 400, lesson("04_diffusion").CharTokenizer.from_text("ab"))
    assert all(hasattr(text, m) for m in data_members) and text.unit == "bits/char"
    puzzles = lesson("12_sudoku").PuzzleData
    assert all(hasattr(puzzles, m) for m in data_members if m != "tokenizer") and puzzles.unit == "bits/blank"


def test_lessons_stay_short_and_figures_go_where_the_user_says(tmp_path, monkeypatch, capsys):
    for path in sorted(ROOT.glob("[0-9][0-9]_*.py")):
        assert len(path.read_text().splitlines()) <= 420, path.name  # one sitting each
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:  # 02 --plot names its file: no figure lands unasked in the working folder
        lesson("02_attention").main(["--plot"])
    assert e.value.code == 2 and list(tmp_path.iterdir()) == []
    assert inspect.signature(lesson("07_train_gpt").compare).parameters["out"].default is None  # beside the runs


def test_every_figure_under_bench_results_is_referenced_by_a_document():
    docs = (ROOT / "RESULTS.md").read_text() + (ROOT / "README.md").read_text()
    figures = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bench" / "results").rglob("*")
                     if p.suffix in (".png", ".gif"))
    assert figures and [f for f in figures if f not in docs] == []


@pytest.mark.parametrize("doc", ["README.md", "RESULTS.md"])
def test_every_table_row_has_as_many_cells_as_its_header(doc):
    """A line break inside a cell splits a row in two: the first half has too few cells, the rest is text."""
    lines, bad, tables = (ROOT / doc).read_text().splitlines(), [], 0
    rule = re.compile(r"^\|( *:?-+:? *\|)+ *$")  # the |---|---| under a header
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and rule.match(lines[i + 1]):
            tables, n = tables + 1, lines[i + 1].count("|")
            for j in range(i + 2, len(lines)):
                if not lines[j].startswith("|"):
                    break
                if re.sub(r"`[^`]*`", "", lines[j]).replace("\\|", "").count("|") != n:
                    bad.append(f"{doc}:{j + 1}")
    assert tables and bad == []


def test_every_device_script_parses():
    """bench/*.sh run once, on a lent card, with no second try: a syntax error must show here first."""
    scripts = sorted((ROOT / "bench").glob("*.sh"))
    assert {"gpu_session.sh", "gpu_uniform.sh", "gpu_paths.sh", "gpu_rewards.sh"} <= {s.name for s in scripts}
    for sh in scripts:
        r = subprocess.run(["bash", "-n", str(sh)], capture_output=True, text=True)
        assert r.returncode == 0, f"{sh.name}: {r.stderr}"
