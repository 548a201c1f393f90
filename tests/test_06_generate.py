"""Lesson 06: sampling, prompting, infilling, GIFs from a trained run; bad input gives one line and exit 2."""
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT, cli_error, lesson

gen, gpt = lesson("06_generate"), lesson("07_train_gpt")


def test_generate_loads_run_and_infills(dllm_run, capsys):
    d, _, _ = dllm_run
    run = str(d / "dllm")
    texts = gen.main(["--checkpoint", run, "--steps", "8", "--len", "30", "--prompt", "To be", "--suffix", "be:",
                      "--num-samples", "3", "--seed", "1"])
    assert len(texts) == 3 and all(len(t) == 30 and t.startswith("To be") and t.endswith("be:") for t in texts)
    texts = gen.main(["--checkpoint", run, "--template", "To be, or ___ to be", "--temp", "0"])
    assert texts[0].startswith("To be, or ") and texts[0].endswith(" to be") and "_" not in texts[0]


def test_stop_ends_the_text(dllm_run):
    run = str(dllm_run[0] / "dllm")
    plain = gen.main(["--checkpoint", run, "--len", "30", "--seed", "3"])[0]
    stop = plain[12]  # a character it writes at position 12 with this seed
    cut = gen.main(["--checkpoint", run, "--len", "30", "--seed", "3", "--stop", stop])[0]
    assert cut == plain[: plain.index(stop) + 1]  # the same text, ended at the first stop


def test_block_diffusion_checkpoints_are_sent_to_lesson_11(bd_run, capsys):
    assert "11_block_diffusion.py generate" in cli_error(gen.main, ["--checkpoint", str(bd_run)], capsys)


def test_gif_is_an_animation(dllm_run, tmp_path):
    d, _, _ = dllm_run
    gif = tmp_path / "denoise.gif"
    gen.main(["--checkpoint", str(d / "dllm"), "--steps", "6", "--len", "24", "--gif", str(gif)])
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.is_animated and im.n_frames >= 7


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "0"], "--steps"), (["--temp", "-1"], "--temp"), (["--topk", "-2"], "--topk"),
    (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--prompt", "To be Ω"], "'Ω'"),
    (["--len", "10", "--prompt", "To be, or", "--suffix", " not"], "nothing left"),
    (["--len", "5000"], "context"), (["--template", "no gaps here"], "no '_'"),
    (["--gif", "out.txt"], ".gif"), (["--gif", "anim"], ".gif"), (["--stop", "x", "--suffix", "a"], "--stop"),
    (["--template", "To be, or ab to be", "--fill-char", "ab"], "--fill-char must be a single character"),
])
def test_bad_sampler_input_exits_2(dllm_run, capsys, argv, needle):
    d, _, _ = dllm_run
    assert needle in cli_error(gen.main, ["--checkpoint", str(d / "dllm")] + argv, capsys)


def test_bad_checkpoints_exit_2(dllm_run, gpt_run, tmp_path, capsys):
    d, _, _ = dllm_run
    assert "no checkpoint" in cli_error(gen.main, ["--checkpoint", str(tmp_path / "nope.pt")], capsys)
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes((d / "dllm" / "latest.pt").read_bytes()[:1000])
    assert "not a readable checkpoint" in cli_error(gen.main, ["--checkpoint", str(bad)], capsys)
    gpt_dir = gpt_run[0]
    capsys.readouterr()
    assert "gpt model" in cli_error(gen.main, ["--checkpoint", str(gpt_dir)], capsys)
    assert "dllm model" in cli_error(gpt.main, ["generate", "--checkpoint", str(d / "dllm")], capsys)


def test_generate_cli_prints_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "06_generate.py"), "--checkpoint", str(tmp_path / "x.pt")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no checkpoint" in r.stderr


def test_one_default_order_everywhere():
    """Lesson 04's Sampling() default is 06's: random order (RESULTS 9.3), not surest-first without noise, which
    loops. The library's defaults (04, 10, 11, 13) and in-training samples take it from there."""
    import inspect

    D, G = lesson("04_diffusion"), lesson("06_generate")
    assert D.Sampling().order == D.DEFAULT.order == G.ORDER == "random"
    for name, fn in (("10_fast_decoding", "generate_fast"), ("11_block_diffusion", "generate_blocks"),
                     ("13_self_correction", "generate_remask")):
        assert inspect.signature(getattr(lesson(name), fn)).parameters["sampling"].default.order == "random"
