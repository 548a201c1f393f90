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
    texts = gen.main(["--checkpoint", run, "--len", "24", "--threshold", "0.5", "--block-size", "8", "--cache", "dual"])
    assert len(texts[0]) == 24


def test_entropy_budget_and_stop_with_a_dllm(dllm_run):
    run = str(dllm_run[0] / "dllm")
    plain = gen.main(["--checkpoint", run, "--len", "30", "--seed", "3"])[0]
    texts = gen.main(["--checkpoint", run, "--len", "30", "--entropy-budget", "0.5", "--num-samples", "2"])
    assert all(len(t) == 30 for t in texts)
    stop = plain[12]  # a character it writes at position 12 with this seed
    cut = gen.main(["--checkpoint", run, "--len", "30", "--seed", "3", "--stop", stop])[0]
    assert cut == plain[: plain.index(stop) + 1]  # the same text, ended at the first stop


def test_block_diffusion_checkpoint_prompts_writes_any_length_and_stops(bd_run, capsys):
    run = str(bd_run)
    args = ["--checkpoint", run, "--prompt", "To be", "--len", "90", "--seed", "1", "--num-samples", "2"]
    exact = gen.main(args)
    assert "90 model calls" in capsys.readouterr().err  # one character per call, the cache costs no extra call
    assert gen.main(args + ["--cache", "none"]) == exact  # the exact cache changes nothing but the cost
    capsys.readouterr()
    assert all(len(t) == 95 and t.startswith("To be") for t in exact)  # longer than the context (32)
    few = gen.main(args + ["--steps", "12"])
    assert "23 model calls" in capsys.readouterr().err  # 23 blocks (the first holds the prompt's "e"), 1 call each
    assert all(len(t) == 95 for t in few)
    one = args[:-2]  # one sample: generation can end as soon as it writes the stop string
    text = gen.main(one)[0]
    stop = text[40:42]  # two characters it writes at position 40 with this seed
    capsys.readouterr()
    cut = gen.main(one + ["--stop", stop])[0]
    calls = int(capsys.readouterr().err.split(" model calls")[0].split()[-1])
    assert cut == text[: text.index(stop, 5) + 2] and calls < 90  # the same text, ended (and stopped) there
    gen.main(args + ["--entropy-budget", "1.0", "--show-steps"])
    capsys.readouterr()
    for argv, needle in [(["--suffix", "be:"], "cannot fill gaps"), (["--template", "To ___"], "cannot fill gaps"),
                         (["--block-size", "8"], "drop --block-size"), (["--cache", "dual", "--block-size", "8"],
                                                                         "drop --block-size"),
                         (["--cache", "prefix", "--block-size", "4"], "drop --block-size")]:
        assert needle in cli_error(gen.main, ["--checkpoint", run] + argv, capsys)


def test_gif_is_an_animation(dllm_run, tmp_path):
    d, _, _ = dllm_run
    gif = tmp_path / "denoise.gif"
    gen.main(["--checkpoint", str(d / "dllm"), "--steps", "6", "--len", "24", "--gif", str(gif)])
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.is_animated and im.n_frames >= 7


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "0"], "--steps"), (["--temp", "-1"], "--temp"), (["--topk", "-2"], "--topk"),
    (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--threshold", "0"], "--threshold"),
    (["--threshold", "2"], "--threshold"), (["--prompt", "To be Ω"], "'Ω'"),
    (["--len", "10", "--prompt", "To be, or", "--suffix", " not"], "nothing left"),
    (["--len", "5000"], "context"), (["--template", "no gaps here"], "no '_'"),
    (["--gif", "out.txt"], ".gif"), (["--gif", "anim"], ".gif"), (["--cache", "dual"], "--block-size"),
    (["--cache", "exact"], "block-diffusion checkpoints"), (["--entropy-budget", "-1"], "--entropy-budget"),
    (["--threshold", "0.9", "--entropy-budget", "1"], "pick one"), (["--stop", "x", "--suffix", "a"], "--stop"),
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
    assert "dllm model" in cli_error(gpt.main, ["--generate", "--checkpoint", str(d / "dllm")], capsys)


def test_generate_cli_prints_one_line_not_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "06_generate.py"), "--checkpoint", str(tmp_path / "x.pt")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no checkpoint" in r.stderr
