"""README's and RESULTS.md's commands, as written: every command in their ```bash blocks names a script that
exists and flags that script's own parser accepts. They are parsed, not run (training takes minutes); what they
do is tested per lesson (the demos run in full, the trainers on the tiny preset)."""
import argparse
import re
import shlex
import sys

import pytest

from conftest import ROOT, lesson


def readme_commands(doc="README.md"):
    text = (ROOT / doc).read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a backslash continues the line, as in bash
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words:
                    commands.append(words)
    return commands


def script_of(words):
    """(script, argv) of a `python X.py ...` or `torchrun ... X.py ...` command; None for pip and python -m."""
    if words[0] == "torchrun":
        i = next(i for i, w in enumerate(words) if w.endswith(".py"))
        return words[i], words[i + 1 :]
    if words[0] == "python" and words[1].endswith(".py"):
        return words[1], words[2:]
    return None


COMMANDS = readme_commands()
SCRIPTS = [c for c in COMMANDS + readme_commands("RESULTS.md") if script_of(c)]


def test_readme_has_the_commands_a_newcomer_needs():
    assert ["pip", "install", "-r", "requirements.txt"] in COMMANDS
    assert ["python", "-m", "pytest", "-q", "tests"] in COMMANDS  # the command CI runs
    assert len(SCRIPTS) > 25
    assert not [c for c in SCRIPTS if any("../" in w for w in c)]  # nothing outside a fresh clone


def test_readme_teaches_and_links_the_research():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250 and "](RESULTS.md" in text
    for path in sorted(ROOT.glob("[0-9][0-9]_*.py")):  # every lesson in the table
        assert f"`{path.name}`" in text, path.name
    assert "withdrawn" not in text.lower() and not re.search(r"issue #\d", text)


def test_the_files_readme_reads_are_shipped():
    """`solve FILE`, `plan MAP.yaml` and `--data FILE` run as written on a fresh clone: no command makes them."""
    named = [c[c.index(word) + 1] for c in COMMANDS if script_of(c) for word in ("solve", "plan", "--data")
             if word in c[2:] and (word == "--data" or c.index(word) == 2)]
    assert len(named) >= 6 and [f for f in named if not (ROOT / f).is_file()] == [], named


class Parsed(Exception):
    pass


@pytest.mark.parametrize("words", SCRIPTS, ids=[" ".join(c)[:80] for c in SCRIPTS])
def test_readme_command_parses(words, monkeypatch):
    script, argv = script_of(words)
    assert (ROOT / script).is_file(), script
    if script.startswith("bench/"):
        monkeypatch.syspath_prepend(str(ROOT / "bench"))
    module = lesson(script.removeprefix("bench/").removesuffix(".py"))
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [script])
    try:
        module.main(argv)
    except Parsed:
        pass  # the flags were accepted
    except SystemExit as e:
        assert e.code == 0 and "--help" in argv, f"{' '.join(words)}: exit {e.code}"
    else:
        pytest.fail(f"{' '.join(words)}: main() returned without parsing its arguments")


@pytest.mark.parametrize("doc", ["README.md", "RESULTS.md", "bonus/README.md", "checkpoints/README.md"])
def test_every_link_and_named_result_file_exists(doc):
    """Every figure has its file: each relative Markdown link, and each bench/results/ path named in backquotes."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    links = [m.group(1) for m in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in m.group(1)]
    named = [m.group(1) for m in re.finditer(r"`(bench/results/[^`\s*]+)`", text)]
    missing = [t for t in links if not ((ROOT / doc).parent / t).exists()]
    assert not missing + [t for t in named if not (ROOT / t).exists()]
