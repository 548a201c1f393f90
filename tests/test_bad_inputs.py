"""Bad input, tried as a new user would, across every entry point (lessons, data scripts, bench/): each case must end
with exit status 2 and one clear line on stderr, no traceback, and change no file: neither in the runs, corpora and
puzzles it was pointed at (a world of copies, hashed before and after) nor in a fresh folder given as its output.
Interrupts (Ctrl-C) end with exit status 130, print what was made so far, and change nothing either."""
import hashlib
import json
import os
import shutil
import sys

import pytest
import torch

from conftest import ROOT, TINY, ctrl_c_as_in_a_terminal, lesson  # first: it puts the repository on the import path

# isort: split
from support.cli import run_cli

sys.path.insert(0, str(ROOT / "bench"))  # bench/ scripts are entry points too


@pytest.fixture(scope="module")
def world(dllm_run, gpt_run, bd_run, tmp_path_factory):
    """Copies of everything a case may be pointed at: runs of each objective, corpora, puzzles, files that are not
    what they claim to be. Nothing here may change."""
    w = tmp_path_factory.mktemp("world")
    d, corpus, _ = dllm_run
    shutil.copytree(d / "dllm", w / "dllm")
    shutil.copytree(gpt_run[0], w / "gpt")
    shutil.copytree(bd_run, w / "bd4")
    shutil.copy(corpus, w / "corpus.txt")
    tamil = w / "tamil.txt"
    tamil.write_text(("அகர முதல எழுத்தெல்லாம் ஆதி\nபகவன் முதற்றே உலகு\n") * 60, encoding="utf-8")
    lesson("08_train_tamil").main(TINY + ["--data", str(tamil), "--out", str(w / "tamil"), "--steps", "4",
                                          "--eval-every", "4", "--no-plot"])
    lesson("sudoku_puzzles").main(["--train", "8", "--val", "4", "--test", "2", "--out", str(w / "puzzles")])
    (w / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    (w / "empty.txt").write_text("")
    (w / "short.txt").write_text("too short")
    (w / "afile").write_text("a file, not a folder")
    (w / "corrupt.pt").write_bytes(b"not a checkpoint")
    (w / "norun").mkdir()
    (w / "corrupt_run").mkdir()
    (w / "corrupt_run" / "latest.pt").write_bytes(b"\x80\x02 torn")
    export = w / "broken_export"
    shutil.copytree(w / "dllm" / "hf", export)
    (export / "model.safetensors").write_bytes((export / "model.safetensors").read_bytes()[:500])
    for name, key in [("long_export", "block_size"), ("wide_export", "vocab_size")]:  # sizes past any memory
        shutil.copytree(w / "dllm" / "hf", w / name)
        config = json.loads((w / name / "config.json").read_text())
        (w / name / "config.json").write_text(json.dumps({**config, key: 10**12}))
    shutil.copytree(w / "dllm" / "hf", w / "torn_tokenizer")
    (w / "torn_tokenizer" / "tokenizer.json").write_text('{"kind": "char", "tok')
    for name, file in (("list_config", "config.json"), ("list_tokenizer", "tokenizer.json")):
        shutil.copytree(w / "dllm" / "hf", w / name)
        (w / name / file).write_text("[1, 2, 3]")  # JSON, but not an object of settings (a traceback before)
    good = (w / "puzzles" / "test.txt").read_text().splitlines()[0].split(",")[0]
    bad = {"truncated": good[:80], "letters": good[:80] + "x", "rules": "11" + good[2:]}
    for name, line in bad.items():
        (w / f"puzzle_{name}.txt").write_text(good + "\n" + line + "\n")
    (w / "bad_puzzles").mkdir()
    for split in ("train", "val"):
        lines = (w / "puzzles" / f"{split}.txt").read_text().splitlines()
        (w / "bad_puzzles" / f"{split}.txt").write_text("\n".join(lines[:-1] + [lines[-1][:60]]) + "\n")  # torn
    kural = [{"Number": n, "Line1": "அகர முதல", "Line2": "எழுத்தெல்லாம்"} for n in range(1, 1331)]
    (w / "kural.json").write_text(json.dumps({"kural": kural}, ensure_ascii=False), encoding="utf-8")
    (w / "not_json.json").write_text("{ not json")
    (w / "tamil_out").mkdir()
    (w / "tamil_out" / "thirukkural.txt").write_text("the learner's corpus, kept\n")
    (w / "tamil_out" / "corpus.txt").write_text("the learner's corpus, kept\n")
    (w / "tamil_out" / "tawiki-latest-pages-articles.xml.bz2").write_bytes(b"the learner's dump, kept")
    (w / "tamil_out" / "wikipedia_api.jsonl").write_text(json.dumps({"pageid": 1, "title": "t", "text": "தமிழ்"}) + "\n")
    shifted = w / "shifted_export"  # what lesson 14 makes: the same shapes, another meaning (x[i] read at i-1)
    shutil.copytree(w / "dllm" / "hf", shifted)
    config = json.loads((shifted / "config.json").read_text())
    (shifted / "config.json").write_text(json.dumps(dict(config, shift=True)))
    for name, change in (("letters", {"n_layer": "two"}), ("zero_heads", {"n_head": 0}),
                         ("indivisible", {"n_embd": 33}), ("negative", {"block_size": -4})):
        bad = w / f"config_{name}"  # a config.json edited by hand: values no model can have
        shutil.copytree(w / "dllm" / "hf", bad)
        (bad / "config.json").write_text(json.dumps(dict(config, **change)))
    lesson("14_from_gpt").main(["train", "--gpt", str(w / "gpt"), "--data", str(corpus), "--out", str(w / "adapted"),
                                "--steps", "4", "--eval-every", "4", "--preset", "tiny", "--dtype", "fp32",
                                "--sample-len", "0", "--no-plot"])
    (w / "user.png").write_bytes(b"\x89PNG\r\n\x1a\n the learner's own picture")
    (w / "user.gif").write_bytes(b"GIF89a the learner's own animation")
    (w / "shipped").mkdir()
    shutil.copytree(w / "dllm" / "hf", w / "shipped" / "tiny-dllm")
    lesson("robot_maps").main(["--train", "10", "--val", "5", "--test", "5", "--out", str(w / "maps")])
    grid = (w / "maps" / "test.txt").read_text().splitlines()[0].split(",")[0]
    bad = {"short": grid[:255], "letters": grid[:255] + "x", "two_starts": grid.replace(".", "S", 1)}
    for name, line in bad.items():
        (w / f"map_{name}.txt").write_text(grid + "\n" + line + "\n")
    lesson("robot_maps").main(["--ros", str(w / "robot.yaml"), "--kind", "rooms", "--seed", "0"])  # 8 x 8 m
    (w / "split.pgm").write_bytes(b"P5\n4 2\n255\n" + bytes([254, 0, 254, 254, 254, 0, 254, 254]))  # a wall between
    (w / "split.yaml").write_text("image: split.pgm\nresolution: 1.0\norigin: [0, 0, 0]\nnegate: 0\n"
                                  "occupied_thresh: 0.65\nfree_thresh: 0.196\n")
    (w / "user.yaml").write_text("a learner's own file\n")
    mine = w / "my_results"  # a learner's folder of results, under the names the benches write
    mine.mkdir()
    for name in ("rewards.txt", "paths.csv", "walk.csv", "sudoku.txt", "uniform.txt", "first_command.csv",
                 "parallel_rules.txt", "infill_couplets_each.csv", "repeated_data.txt", "decode.csv", "recipe.txt",
                 "default_order.txt"):
        (mine / name).write_text("the learner's own notes\n")
    for name in ("infill.png", "parallelism.png"):
        shutil.copy(w / "user.png", mine / name)
    (w / "my_results_dir" / "rewards.txt").mkdir(parents=True)
    return w


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


SHIPPED = ROOT / "checkpoints" / "pretrained"  # read only: the repository's shipped models
OUT = ["--out", "{out}/run"]  # a trainer's output: a fresh folder that must stay empty
CASES = [  # (script, argv, what the one error line says)
    # 05: training flags, checked where they are parsed
    ("05_train", ["--steps", "0", *OUT], "must be >= 1"),
    ("05_train", ["--steps", "-3", *OUT], "must be >= 1"),
    ("05_train", ["--lr", "inf", *OUT], "must be a finite number"),
    ("05_train", ["--lr", "nan", *OUT], "must be a finite number"),
    ("05_train", ["--lr", "0", *OUT], "must be > 0"),
    ("05_train", ["--dropout", "1.5", *OUT], "must be in [0, 1)"),
    ("05_train", ["--dropout", "nan", *OUT], "must be a finite number"),
    ("05_train", ["--beta2", "1", *OUT], "must be in [0, 1)"),
    ("05_train", ["--min-lr-ratio", "2", *OUT], "must be in [0, 1]"),
    ("05_train", ["--warmup", "-1", *OUT], "must be >= 0"),
    ("05_train", ["--grad-clip", "-1", *OUT], "must be >= 0"),
    ("05_train", ["--weight-decay", "-0.1", *OUT], "must be >= 0"),
    ("05_train", ["--sample-len", "-1", *OUT], "must be >= 0"),
    ("05_train", ["--mask-rate", "0.9", "0.1", *OUT], "--mask-rate needs 0 < LO < HI <= 1"),
    ("05_train", ["--mask-rate", "0", "1", *OUT], "--mask-rate needs 0 < LO < HI <= 1"),
    ("05_train", ["--mask-rate", "nan", "0.5", *OUT], "must be a finite number"),
    ("05_train", ["--batch-size", "0", *OUT], "must be >= 1"),
    ("05_train", ["--preset", "huge", *OUT], "invalid choice"),
    ("05_train", ["--push-to-hub", "not a repo id", *OUT], "--push-to-hub needs a repo id USER/NAME"),
    ("05_train", ["--push-to-hub", "a/b/c", *OUT], "--push-to-hub needs a repo id USER/NAME"),
    ("05_train", ["--device", "cuda", *OUT], "no CUDA GPU"),
    ("05_train", ["--device", "mps", *OUT], "MPS is not available"),
    ("05_train", ["--n-head", "3", "--data", "{w}/corpus.txt", *TINY, *OUT], "not divisible"),
    ("05_train", ["--batch-size", "10000000000", "--steps", "1", "--data", "{w}/corpus.txt", *TINY, "--out",
                  "{out}/../oom"], "out of memory during a training step"),
    ("05_train", ["--data", "{w}/missing.txt", *TINY, *OUT], "no such file"),
    ("05_train", ["--data", "{w}/norun", *TINY, *OUT], "is a directory"),
    ("05_train", ["--data", "{w}/latin1.txt", *TINY, *OUT], "not UTF-8"),
    ("05_train", ["--data", "{w}/empty.txt", *TINY, *OUT], "is empty"),
    ("05_train", ["--data", "{w}/short.txt", *TINY, *OUT], "corpus too short"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, "--out", "{w}/afile"], "is a file, not a folder"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, "--out", "{w}/afile/run"], "is a file, not a folder"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, "--out", "{w}/dllm"], "already holds a run"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, *OUT, "--init-from", "{w}/missing"], "no checkpoint"),
    ("05_train", ["--data", "{w}/tamil.txt", *TINY, *OUT, "--init-from", "{w}/dllm"], "vocabulary differs"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, *OUT, "--init-from", "{w}/dllm", "--n-embd", "64"],
     "do not fit this model"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, *OUT, "--init-from", "{w}/shifted_export"],
     "mean something else here: shift True"),
    ("05_train", ["--data", "{w}/corpus.txt", *TINY, *OUT, "--init-from", "{w}/gpt"], "causal True"),
    ("05_train", ["--out", "{w}/norun", "--resume"], "nothing to resume"),
    ("05_train", ["--out", "{w}/adapted", "--resume", "--steps", "8"], "was trained by 14_from_gpt.py train"),
    ("14_from_gpt", ["train", "--out", "{w}/dllm", "--resume", "--steps", "80"], "was trained by 05_train.py"),
    ("14_from_gpt", ["train", "--init-from", "{w}/dllm", "--out", "{out}/r"], "name it there"),  # not --gpt's
    ("05_train", ["--out", "{w}/corrupt_run", "--resume"], "not a readable checkpoint"),
    ("05_train", ["--out", "{w}/dllm", "--resume", "--lr", "0.01"], "conflicts with the run being resumed"),
    ("05_train", ["--out", "{w}/dllm", "--resume", "--data", "{w}/tamil.txt"], "conflicts with the run being resumed"),
    ("05_train", ["--out", "{w}/bd4", "--resume", "--steps", "80"], "holds a block-diffusion run"),
    ("05_train", ["--out", "{w}/gpt", "--resume", "--steps", "80"], "holds a gpt run"),
    ("05_train", ["--out", "{w}/dllm", "--resume", "--mask-rate", "0.2", "0.9"], "conflicts with the run"),
    # 06: generation
    ("06_generate", ["--checkpoint", "{w}/dllm", "--steps", "0"], "must be >= 1"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--len", "0"], "must be in [1, 1000000], got 0"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--num-samples", "100000000"], "must be in [1, 1024]"),
    ("15_uniform_noise", ["generate", "--num-samples", "100000000"], "must be in [1, 1024]"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--temp", "nan"], "must be a finite number"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--temp", "-1"], "must be >= 0"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--topk", "-1"], "must be >= 0"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--top-p", "0"], "must be in (0, 1]"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--top-p", "1.5"], "must be in (0, 1]"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--num-samples", "0"], "must be in [1, 1024], got 0"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--prompt", "\u20ac"], "not in the model's vocabulary"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--suffix", "\u00e9"], "not in the model's vocabulary"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--template", "no gaps here"], "has no '_' to fill"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--template", "To __", "--prompt", "x"], "fixes the whole canvas"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--template", "To ##", "--fill-char", "##"], "single character"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--stop", "x", "--suffix", "y"], "--stop ends the text"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--gif", "{out}/x.png"], "ending in .gif"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--len", "999"], "this model's context is 32"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--prompt", "To be, or not to be, that is the", "--len", "20"],
     "nothing left to generate"),
    ("06_generate", ["--checkpoint", "{w}/gpt"], "holds a gpt model"),
    ("06_generate", ["--checkpoint", "{w}/bd4"], "is a block-diffusion model: generate with 11"),
    ("06_generate", ["--checkpoint", str(SHIPPED / "sudoku-dllm")], "is a sudoku-dllm model: generate with 12"),
    ("06_generate", ["--checkpoint", str(SHIPPED / "paths-dllm")], "generate with 16_robot_paths.py solve or plan"),
    ("07_train_gpt", ["generate", "--checkpoint", str(SHIPPED / "paths-gpt")], "plan with 16_robot_paths.py solve"),
    ("06_generate", ["--checkpoint", "{w}/tamil"], "a Tamil model: use 09_generate_tamil.py"),
    ("06_generate", ["--checkpoint", "{w}/corrupt.pt"], "not a readable checkpoint"),
    ("06_generate", ["--checkpoint", "{w}/broken_export"], "not a tiny-dllm export"),
    ("06_generate", ["--checkpoint", "{w}/long_export"], "block_size = 1,000,000,000,000 is past 65,536"),
    ("06_generate", ["--checkpoint", "{w}/wide_export"], "weights do not fit its config"),
    ("06_generate", ["--checkpoint", "{w}/torn_tokenizer"], "tokenizer.json: JSONDecodeError"),
    ("06_generate", ["--checkpoint", "{w}/list_config"], "config.json: ValueError: a JSON list, not an object"),
    ("09_generate_tamil", ["--checkpoint", "{w}/list_tokenizer"], "tokenizer.json: ValueError: a JSON list"),
    ("06_generate", ["--checkpoint", "{w}/missing"], "no checkpoint at"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--filename", "dllm_step50000.pt"], "give --from-hub too"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--order", "sideways"], "invalid choice"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--gif", "{w}/user.gif"], "was not made here"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--gif", "{w}/afile/x.gif"], "is a file, not a folder"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--force"], "without --gif it does nothing"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--template", "To __", "--len", "9"], "drop --len"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--pretrained"], "give one"),
    ("06_generate", ["--checkpoint", "{w}/dllm", "--from-hub", "a/b"], "give one"),
    ("06_generate", ["--pretrained", "../dllm"], "plain folder name"),
    ("06_generate", ["--pretrained", "no-such-model"], "no shipped model"),
    ("06_generate", ["--checkpoint", "{w}/config_letters"], "its config does not describe a model here"),
    ("06_generate", ["--checkpoint", "{w}/config_zero_heads"], "its config does not describe a model here"),
    ("06_generate", ["--checkpoint", "{w}/config_indivisible"], "its config does not describe a model here"),
    ("06_generate", ["--checkpoint", "{w}/config_negative"], "its config does not describe a model here"),
    ("02_attention", ["--plot", "{w}/user.png"], "was not made here"),
    ("02_attention", ["--plot", "{out}/heat.jpg"], "ending in .png"),
    # 07: training, and the subcommands generate and compare, each with its own flags
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--steps", "5"], "unrecognized arguments: --steps"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--prompt", ""], "--prompt must be non-empty"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--prompt", "\u20ac"], "not in the model's vocabulary"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--tokens", "0"], "must be in [1, 1000000], got 0"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--temp", "inf"], "must be a finite number"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/dllm"], "holds a dllm model"),
    ("07_train_gpt", ["generate", "--checkpoint", str(SHIPPED / "sudoku-gpt")], "solve with 12_sudoku.py"),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/missing"], "no checkpoint at"),
    ("07_train_gpt", ["--steps", "5", "generate", "--checkpoint", "{w}/gpt"], "--steps: not a flag of 'generate'"),
    ("07_train_gpt", ["compare", "{w}/gpt", "{w}/dllm", "--out", "{out}/c.png"], "holds a gpt model"),
    ("07_train_gpt", ["compare", str(SHIPPED / "shakespeare-dllm"), "{w}/gpt", "--out", "{out}/c.png"],
     "is not a training run"),
    ("07_train_gpt", ["compare", "{w}/tamil", "{w}/gpt", "--out", "{out}/c.png"],
     "different vocabularies"),
    ("07_train_gpt", ["compare", "{w}/dllm", "{w}/gpt", "--tokens", "5"], "unrecognized arguments: --tokens"),
    ("07_train_gpt", ["compare", "{w}/dllm", "{w}/gpt", "--out", "{w}/user.png"], "was not made here"),
    ("07_train_gpt", ["compare", "{w}/dllm", "{w}/gpt", "--out", "{w}/dllm/best.pt"], "ending in .png"),
    ("07_train_gpt", ["compare", "{w}/dllm", "{w}/gpt", "--out", "{w}/norun"], "ending in .png"),
    ("07_train_gpt", ["--prompt", "x", *OUT], "'x' is not a command"),
    ("07_train_gpt", ["--out", "{w}/dllm", "--resume", "--steps", "80"], "holds a dllm run"),
    # 08 and 09: Tamil
    ("08_train_tamil", ["--model", "gpt", "--mask-rate", "0.1", "0.9", "--data", "{w}/tamil.txt", *OUT],
     "--mask-rate is the dLLM's"),
    ("08_train_tamil", ["--tokenizer", "bytes", *OUT], "invalid choice"),
    ("08_train_tamil", ["--data", "{w}/missing.txt", *TINY, *OUT], "no such file"),
    ("09_generate_tamil", ["--checkpoint", "{w}/dllm", "--prompt", "அ"], "not in the model's vocabulary"),
    ("09_generate_tamil", ["--checkpoint", "{w}/tamil", "--steps", "0"], "must be >= 1"),
    ("09_generate_tamil", ["--checkpoint", str(SHIPPED / "sudoku-dllm")], "is a sudoku-dllm model: generate with 12"),
    ("09_generate_tamil", ["--checkpoint", "{w}/tamil", "--order", "random", "--noise", "2"], "has no confidence"),
    # 10: the demo and generate each take their own flags
    ("10_fast_decoding", ["--prompt", "x"], "'x' is not a command"),
    ("10_fast_decoding", ["--cache", "dual", "--block-size", "4"], "'dual' is not a command"),
    ("10_fast_decoding", ["generate", "--checkpoint", "{w}/dllm", "--train-steps", "5"], "unrecognized arguments"),
    ("10_fast_decoding", ["generate", "--threshold", "1.5"], "must be in (0, 1]"),
    ("10_fast_decoding", ["generate", "--threshold", "0.9", "--factor", "1"], "not allowed with argument"),
    ("10_fast_decoding", ["generate", "--factor", "0"], "must be > 0"),
    ("10_fast_decoding", ["generate", "--entropy-budget", "-1"], "must be >= 0"),
    ("10_fast_decoding", ["generate", "--checkpoint", "{w}/dllm", "--cache", "dual"], "give --block-size too"),
    ("10_fast_decoding", ["generate", "--checkpoint", "{w}/dllm", "--block-size", "0"], "must be >= 1"),
    ("10_fast_decoding", ["--train-steps", "-1"], "must be >= 0"),
    ("10_fast_decoding", ["--checkpoint", "{w}/bd4"], "is a block-diffusion model"),  # the demo's decoders: text
    ("13_self_correction", ["--checkpoint", "{w}/bd4"], "is a block-diffusion model"),
    ("10_fast_decoding", ["generate", "--checkpoint", "{w}/dllm", "--threshold", "0.9", "--steps", "8"],
     "drop --steps"),
    # 11: block diffusion
    ("11_block_diffusion", ["train", "generate"], "unrecognized arguments: generate"),
    ("11_block_diffusion", ["train", "--block-diffusion", "64", "--data", "{w}/corpus.txt", *TINY, *OUT],
     "longer than the context"),
    ("11_block_diffusion", ["train", "--block-diffusion", "0", *OUT], "must be >= 1"),
    ("11_block_diffusion", ["train", "--out", "{w}/dllm", "--resume", "--steps", "80"], "holds a dllm run"),
    ("11_block_diffusion", ["generate", "--checkpoint", "{w}/dllm"], "is a dllm model: generate with 06"),
    ("11_block_diffusion", ["generate", "--pretrained"], "no model of this kind is shipped"),
    ("11_block_diffusion", ["generate", "--checkpoint", "{w}/bd4", "--len", "10000000"], "must be in [1, 1000000]"),
    ("11_block_diffusion", ["generate", "--checkpoint", "{w}/bd4", "--suffix", "x"], "cannot fill gaps"),
    ("11_block_diffusion", ["--train-steps", "-1"], "must be >= 0"),
    # 12: Sudoku
    ("12_sudoku", ["solve", "{w}/missing.txt"], "no such file"),
    ("12_sudoku", ["solve", "{w}/puzzle_truncated.txt"], "a puzzle has 81 cells, this one 80"),
    ("12_sudoku", ["solve", "{w}/puzzle_letters.txt"], "only digits and '.'"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt"], "break the rules"),
    ("12_sudoku", ["solve", "{w}/empty.txt"], "is empty"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--gif", "{out}/x.gif"], "unrecognized arguments: --gif"),
    ("12_sudoku", ["solve", "{w}/puzzle_truncated.txt", "--batch", "0"], "must be >= 1"),
    ("12_sudoku", ["--checkpoint", "{w}/dllm"], "is not a command"),
    ("12_sudoku", ["--puzzles-per-band", "0"], "must be >= 1"),
    ("12_sudoku", ["--gif", "{out}/order.png"], "ending in .gif"),
    ("12_sudoku", ["--gif", "{w}/user.gif"], "was not made here"),
    ("12_sudoku", ["train", "--puzzles", "{w}/norun", *OUT], "sudoku_puzzles.py"),
    ("12_sudoku", ["train", "--puzzles", "{w}/bad_puzzles", *OUT], "expected puzzle,solution"),
    ("12_sudoku", ["train", "--puzzles", "{w}/puzzles", "--seq-len", "32", *OUT], "--seq-len 32 is too short"),
    ("12_sudoku", ["train", "--data", "{w}/corpus.txt", *OUT], "unrecognized arguments: --data"),
    ("12_sudoku", ["train", "--puzzles", "{w}/corpus.txt", *OUT], "corpus.txt: a file, not a folder"),
    ("17_rewards", ["train", "--puzzles", "{w}/corpus.txt", *OUT], "corpus.txt: a file, not a folder"),
    ("12_sudoku", ["train", "--puzzles", "{w}/puzzles", "--split", "interleaved", *OUT],
     "unrecognized arguments: --split"),
    ("12_sudoku", ["train", "--model", "gpt", "--puzzles", "{w}/puzzles", "--out", "{w}/dllm", "--resume"],
     "holds a dllm run"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--search", "--model", "gpt"], "--search is the dLLM's"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--search", "--decoder", "margin"],
     "--decoder is the pure model's"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--max-calls", "5"], "--max-calls is --search's"),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--search", "--max-calls", "0"], "must be >= 1"),
    # 13: self-correction
    ("13_self_correction", ["--eta", "0.1"], "'0.1' is not a command"),
    ("13_self_correction", ["generate", "--eta", "1.5"], "must be in (0, 1]"),
    ("13_self_correction", ["generate", "--threshold", "nan"], "must be a finite number"),
    ("13_self_correction", ["generate", "--schedule", "sometimes"], "invalid choice"),
    ("13_self_correction", ["generate", "--checkpoint", "{w}/dllm", "--t-on", "0.3"], "the loop schedule's"),
    ("13_self_correction", ["generate", "--checkpoint", "{w}/dllm", "--schedule", "loop", "--t-off", "0.6"],
     "must be below --t-on"),
    ("13_self_correction", ["generate", "--checkpoint", "{w}/dllm", "--puzzles", "3"], "unrecognized arguments"),
    ("13_self_correction", ["generate", "--checkpoint", "{w}/gpt"], "holds a gpt model"),
    ("13_self_correction", ["generate", "--noise", "-1"], "must be >= 0"),
    ("13_self_correction", ["--puzzles", "0"], "must be >= 1"),
    # 14: from GPT to dLLM
    ("14_from_gpt", ["train", "--anneal-steps", "-1", *OUT], "must be >= 0"),
    ("14_from_gpt", ["train", "--gpt", "{w}/dllm", "--data", "{w}/corpus.txt", *TINY, *OUT], "holds a dllm model"),
    ("14_from_gpt", ["train", "--gpt", "{w}/missing", "--data", "{w}/corpus.txt", *TINY, *OUT], "no checkpoint"),
    ("14_from_gpt", ["train", "--gpt", "{w}/gpt", "--data", "{w}/tamil.txt", *TINY, *OUT], "another vocabulary"),
    ("14_from_gpt", ["train", "--gpt", str(SHIPPED / "sudoku-gpt"), *OUT], "not a GPT of text"),
    ("14_from_gpt", ["--steps", "0"], "must be >= 1"),
    ("14_from_gpt", ["train", "--generate"], "unrecognized arguments"),
    ("14_from_gpt", ["train", "--gpt", "{w}/gpt", "--n-layer", "8", *OUT], "the model's shape is the GPT's"),
    # 15: uniform noise
    ("15_uniform_noise", ["generate", "--checkpoint", "{w}/dllm", "--order", "confidence"], "drop them"),
    ("15_uniform_noise", ["generate", "--checkpoint", "{w}/dllm"], "is a dllm model: generate with 06"),
    ("15_uniform_noise", ["generate", "--checkpoint", "{w}/missing"], "no checkpoint at"),
    ("15_uniform_noise", ["train", "--out", "{w}/dllm", "--resume", "--steps", "80"], "holds a dllm run"),
    ("15_uniform_noise", ["--train-steps", "-1"], "must be >= 0"),
    ("15_uniform_noise", ["train", "--distill", "--out", "{out}"], "give it with --init-from"),
    ("15_uniform_noise", ["train", "--distill", "--init-from", "{w}/dllm", "--steps", "9000", "--out", "{out}"],
     "double the step past the whole way"),
    ("15_uniform_noise", ["train", "--distill", "--init-from", "{w}/dllm", "--data", "{w}/corpus.txt", "--out",
                          "{out}"], "its weights mean something else here"),
    # the data scripts
    ("sudoku_puzzles", ["--train", "0", "--out", "{out}/p"], "must be in [1, 10000000], got 0"),
    ("sudoku_puzzles", ["--workers", "100000", "--out", "{out}/p"], "must be in [1, 64]"),  # it spawned them all
    ("sudoku_puzzles", ["--hard", "1000000000", "--out", "{out}/p"], "must be in [0, 100000]"),
    ("sudoku_puzzles", ["--train-givens", "10", "20", "--out", "{out}/p"], "--train-givens needs 17 <= LO <= HI"),
    ("sudoku_puzzles", ["--train-givens", "17", "18", "--out", "{out}/p"], "HI must be >= 22"),
    ("sudoku_puzzles", ["--train", "5", "--out", "{w}/puzzles"], "already holds"),
    ("sudoku_puzzles", ["--check", "{w}/missing.txt"], "no such file"),
    ("sudoku_puzzles", ["--check", "{w}/puzzle_rules.txt"], "expected puzzle,solution"),
    ("tamil_dataset", ["--kural-json", "{w}/kural.json", "--madurai-texts", " , ", "--out-dir", "{w}/tamil_out"],
     "--madurai-texts names no text"),
    ("tamil_dataset", ["--kural-json", "{w}/kural.json", "--madurai-url", "http://127.0.0.1:9/{{}}.html",
                       "--out-dir", "{out}/t"], "Project Madurai"),
    # a corpus file of the learner's where the data scripts write theirs (they wrote over it)
    ("tamil_dataset", ["--kural-json", "{w}/kural.json", "--no-madurai", "--out-dir", "{w}/tamil_out"],
     "already holds thirukkural.txt, which a command here did not make"),
    ("tamil_wikipedia", ["--merge", "--out-dir", "{w}/tamil_out"],
     "already holds corpus.txt, which a command here did not make"),
    ("tamil_wikipedia", ["--dump", "--out-dir", "{w}/tamil_out"],  # the download replaced a learner's dump
     "already holds tawiki-latest-pages-articles.xml.bz2, which a command here did not make"),
    ("tamil_dataset", ["--kural-json", "{w}/missing.json", "--no-madurai", "--out-dir", "{out}/t"], "no such"),
    ("tamil_dataset", ["--kural-json", "{w}/not_json.json", "--no-madurai", "--out-dir", "{out}/t"],
     "not the Thirukkural JSON"),
    ("tamil_dataset", ["--timeout", "0", "--out-dir", "{out}/t"], "must be > 0"),
    ("tamil_dataset", ["--stats", "--out-dir", "{w}/norun"], "no Tamil corpus"),
    ("tamil_wikipedia", ["--out-dir", "{out}/t"], "say what to do"),
    ("tamil_wikipedia", ["--api", "--api-url", "file:///etc/passwd", "--out-dir", "{out}/t"], "must be an http(s) URL"),
    ("tamil_wikipedia", ["--api", "--limit", "0", "--out-dir", "{out}/t"], "must be >= 1"),
    ("tamil_wikipedia", ["--api", "--timeout", "-1", "--out-dir", "{out}/t"], "must be > 0"),
    ("tamil_wikipedia", ["--dump", "--dump-url", "http://127.0.0.1:9/", "--out-dir", "{out}/t"],
     "must be the URL of a .xml.bz2 file"),
    # bench/
    ("decode", ["--len", "0", "--out", "{out}"], "must be >= 1"),
    ("decode", ["--num-samples", "0", "--out", "{out}"], "must be in [1, 1024]"),
    ("sudoku", ["--thresholds", "1.5", "--out-dir", "{out}"], "must be in (0, 1]"),
    ("sudoku", ["--budgets", "-1", "--out-dir", "{out}"], "must be >= 0"),
    ("sudoku", ["--test", "{w}/missing.txt", "--out-dir", "{out}"], "no {w}/missing.txt"),
    ("sudoku", ["--pretrained", "--models", "gpt", "--order-gpt", "{w}/dllm", "--test", "{w}/puzzles/val.txt",
                "--out-dir", "{out}"], "holds a dllm"),
    ("sudoku_order_gpt", ["--puzzles", "{w}/norun", *OUT], "sudoku_puzzles.py"),
    ("sudoku_order_gpt", ["--puzzles", "{w}/puzzles", "--seq-len", "162", *OUT], "--seq-len 162 is too short"),
    ("sudoku_order_gpt", ["--data", "{w}/corpus.txt", *OUT], "unrecognized arguments: --data"),
    ("sudoku_order_gpt", ["--puzzles", "{w}/puzzles", "--sample-len", "8", *OUT], "unrecognized arguments: --sample"),
    ("paths_mgdm", ["--maps", "{w}/norun", *OUT], "robot_maps.py --out"),
    ("paths_mgdm", ["--maps", "{w}/maps", "--gamma", "-1", *OUT], "must be >= 0"),
    ("paths_mgdm", ["--maps", "{w}/maps", "--alpha", "0", *OUT], "must be > 0"),
    ("paths_mgdm", ["--maps", "{w}/maps", "--levels", "1", *OUT], "must be in [2, 1000]"),
    ("paths_mgdm", ["--data", "{w}/corpus.txt", *OUT], "unrecognized arguments: --data"),
    ("paths_sym", ["--maps", "{w}/norun", *OUT], "robot_maps.py --out"),
    ("paths_sym", ["--maps", "{w}/maps", "--resume", *OUT], "nothing to resume"),
    ("ship_model", ["--run", "{w}/dllm", "--name", "..", "--command", "c", "--out-root", "{w}/shipped"],
     "is a plain folder name"),
    ("ship_model", ["--run", "{w}/dllm", "--name", ".", "--command", "c", "--out-root", "{w}/shipped"],
     "is a plain folder name"),
    ("ship_model", ["--run", "{w}/dllm", "--name", "../..", "--command", "c", "--out-root", "{w}/shipped"],
     "is a plain folder name"),
    ("ship_model", ["--run", "{w}/dllm", "--name", "tiny-dllm", "--command", "c", "--out-root", "{w}/shipped"],
     "already holds a shipped model"),
    ("ship_model", ["--run", "{w}/missing", "--name", "x", "--command", "c", "--out-root", "{out}"], "no checkpoint"),
    ("ship_model", ["--run", "{w}/bd4", "--name", "x", "--command", "c", "--out-root", "{out}"], "not shipped yet"),
    ("infill", ["--K", "0", "--out-dir", "{out}"], "must be >= 1"),
    ("fim", ["--fim", "1.5", *OUT], "invalid fim_rate value"),
    ("fim", ["--fim", "0", *OUT], "invalid fim_rate value"),
    ("recipe", ["--steps", "0"], "must be >= 1"),
    ("repeated_data", ["--report", "--steps", "0"], "must be >= 1"),
    ("repeated_data", ["--report", "--dropouts", "0.1", "1.5", "--out-dir", "{out}"],
     "--dropouts: must be in [0, 1), got 1.5"),
    ("repeated_data", ["--report", "--seeds", "-1", "--out-dir", "{out}"], "--seeds: must be in [0, 2**32)"),
    ("repeated_data", ["--report", "--preset", "huge", "--out-dir", "{out}"],  # a run started, then failed
     "--preset: invalid choice: 'huge'"),
    ("repeated_data", ["--report", "--corpus", "kural", "nope", "--out-dir", "{out}"],
     "--corpus: invalid choice: 'nope'"),
    ("repeated_data", ["--report", "--quick", "--out-dir", "{out}"], "no finished runs yet"),  # wrote a corpus
    ("parallelism", ["--windows", "0"], "must be >= 1"),
    ("train_speed", ["--steps", "0"], "must be >= 1"),
    ("train_speed", ["--dropout", "1.5"], "--dropout: must be in [0, 1), got 1.5"),  # a traceback
    ("train_speed", ["--batch-size", "1000000000", "--no-compile"], "out of memory during a training step"),
    ("gpu_check", ["--steps", "1"], "must be >= 2 (a resume needs a first half), got 1"),
    ("first_command", ["--only", "sideways"], "unknown sampler 'sideways'"),
    ("playground", ["--runs", "0"], "must be >= 1"),
    ("full_val", ["--dllm", "{w}/missing"], "no checkpoint"),
    ("full_val", ["--dllm", "{w}/dllm", "--K", "0"], "must be >= 1"),
    ("full_val", ["--dllm", "{w}/dllm"], "not trained on TinyShakespeare"),
    ("app", ["--port", "0"], "must be 1 to 65535"),
    ("app", ["--port", "70000"], "must be 1 to 65535"),
    ("app", ["--pace", "inf"], "finite"),
    ("first_command", ["--steps", "0"], "must be >= 1"),
    ("parallel_rules", ["--len", "0"], "must be >= 1"),
    ("default_order", ["--dir", "{w}/norun"], "needs first_command.csv"),
    ("parallel_rules", ["--dllm", "{w}/gpt", "--out-dir", "{out}"], "holds a gpt model"),
    ("parallel_rules", ["--dllm", "{w}/tamil", "--gpt", "{w}/gpt", "--out-dir", "{out}"], "different vocabularies"),
    ("parallel_rules", ["--dllm", "{w}/dllm", "--gpt", "{w}/gpt", "--len", "99", "--out-dir", "{out}"],
     "past the dLLM's context (32)"),
    ("first_command", ["--dllm", "{w}/tamil", "--gpt", "{w}/gpt", "--out-dir", "{out}"], "different vocabularies"),
    ("parallelism", ["--checkpoint", "{w}/tamil", "--data", "{w}/corpus.txt", "--out", "{out}"],
     "not in the model's vocabulary"),
    ("decode", ["--gpt", "{w}/gpt", "--dllm", "{w}/dllm", "--bd", "{w}/bd4", "--data", "{w}/corpus.txt", "--len", "99",
                "--out", "{out}"], "past a model's context"),
    ("block_sweep", ["--steps", "0"], "must be >= 1"),
    ("lesson_times", ["--only", "99_flying.py", "--out", "{out}/t.txt"], "unknown lesson '99_flying.py'"),
    ("uniform", ["--masked", "{w}/dllm", "--uniform", "{w}/dllm", "--gpt", "{w}/gpt", "--out-dir", "{out}"],
     "is not a uniform run"),
    ("uniform", ["--masked", "{w}/dllm", "--uniform", "{w}/dllm", "--calls", "0"], "must be >= 1"),
    ("16_robot_paths", ["solve", "{w}/missing.txt"], "no such file"),
    ("16_robot_paths", ["solve", "{w}/empty.txt"], "is empty"),
    ("16_robot_paths", ["solve", "{w}/map_short.txt"], "a map has 256 characters"),
    ("16_robot_paths", ["solve", "{w}/map_letters.txt"], "a map holds only # . S G, not 'x'"),
    ("16_robot_paths", ["solve", "{w}/map_two_starts.txt"], "a map has one S and one G"),
    ("16_robot_paths", ["solve", "{w}/map_short.txt", "--batch", "0"], "must be >= 1"),
    ("16_robot_paths", ["solve", "{w}/maps/test.txt", "--checkpoint", "{w}/dllm"], "not a path model"),
    ("16_robot_paths", ["solve", "{w}/maps/test.txt", "--model", "gpt", "--repair", "2"], "are the dLLM's"),
    ("16_robot_paths", ["solve", "{w}/maps/test.txt", "--repair", "9"], "invalid choice"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "99", "0", "--goal", "1", "1"], "outside the map"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "nan", "1", "--goal", "1", "1"], "outside the map"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "4.0", "1.0", "--goal", "1", "1"],
     "occupied or unknown pixel"),
    ("16_robot_paths", ["plan", "{w}/split.yaml", "--start", "0.5", "0.5", "--goal", "2.5", "0.5"], "no path exists"),
    ("16_robot_paths", ["plan", "{w}/corpus.txt", "--start", "1", "1", "--goal", "2", "2"], "is not YAML"),
    ("16_robot_paths", ["plan", "{w}/short.txt", "--start", "1", "1", "--goal", "2", "2"], "not a map_server map"),
    ("16_robot_paths", ["plan", "{w}/missing.yaml", "--start", "1", "1", "--goal", "2", "2"], "no such file"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "1", "1", "--goal", "2", "2", "--out", "{w}/user.yaml"],
     "was not made here"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "1", "1", "--goal", "2", "2", "--out", "{out}/p.txt"],
     "ending in .yaml"),
    ("16_robot_paths", ["plan", "{w}/robot.yaml", "--start", "1", "--goal", "2", "2"], "expected 2 arguments"),
    ("16_robot_paths", ["train", "--maps", "{w}/norun", *OUT], "robot_maps.py"),
    ("16_robot_paths", ["train", "--data", "{w}/corpus.txt", *OUT], "unrecognized arguments: --data"),
    ("16_robot_paths", ["train", "--maps", "{w}/corpus.txt", *OUT], "corpus.txt: a file, not a folder"),
    ("16_robot_paths", ["train", "--maps", "{w}/maps", "--split", "interleaved", *OUT],
     "unrecognized arguments: --split"),
    ("16_robot_paths", ["train", "--maps", "{w}/maps", "--sample-len", "8", *OUT], "unrecognized arguments: --sample"),
    ("16_robot_paths", ["train", "--maps", "{w}/maps", "--seq-len", "32", *OUT], "a map and moves take"),
    ("16_robot_paths", ["--maps-per-kind", "0"], "must be in [1, 1000], got 0"),
    ("16_robot_paths", ["--gif", "{w}/user.gif"], "was not made here"),
    ("robot_maps", ["--out", "{w}/maps"], "already holds"),
    ("robot_maps", ["--check", "{w}/map_short.txt"], "expected map,answer,kind"),
    ("robot_maps", ["--ros", "{w}/corpus.txt"], "ending in .yaml"),
    ("robot_maps", ["--ros", "{w}/user.yaml"], "was not made here"),
    ("robot_maps", ["--ros", "{out}/m.yaml", "--resolution", "0"], "metres per pixel"),
    ("robot_maps", ["--ros", "{out}/m.yaml", "--resolution", "1e-300"], "metres per pixel"),
    ("robot_maps", ["--ros", "{out}/m.yaml", "--cell-px", "100000"], "must be in [1, 100]"),
    ("robot_maps", ["--train", "1000000000000", "--out", "{out}/m"], "must be in [1, 1000000]"),
    ("paths", ["--test", "{w}/missing.txt", "--out-dir", "{out}"], "no such file"),
    ("paths", ["--dllm", "{w}/dllm", "--gpt", "{w}/gpt", "--test", "{w}/maps/test.txt", "--out-dir", "{out}"],
     "not a path model"),
    ("paths", ["--per-kind", "0"], "must be >= 1"),
    ("paths_walk", ["--test", "{w}/missing.txt", "--out-dir", "{out}"], "no such file"),
    ("paths_walk", ["--dllm", "{w}/dllm", "--test", "{w}/maps/test.txt", "--out-dir", "{out}"], "not a path model"),
    ("paths_walk", ["--ends", "GS"], "invalid choice"),
    ("rewards", ["--test", "{w}/missing.txt", "--out-dir", "{out}"], "no {w}/missing.txt"),
    ("rewards", ["--runs", "{w}/dllm", "--test", "{w}/puzzles/test.txt", "--out-dir", "{out}"],
     "not a run of 17_rewards"),
    ("rewards", ["--group", "0"], "must be >= 1"),
    # a results folder that is a file: refused as it is parsed, before the benchmark's minutes of work
    ("rewards", ["--out-dir", "{w}/corpus.txt/results"], "corpus.txt is a file, not a folder"),
    ("paths", ["--out-dir", "{w}/corpus.txt"], "corpus.txt is a file, not a folder"),
    ("uniform", ["--masked", "{w}/dllm", "--uniform", "{w}/dllm", "--out-dir", "{w}/corpus.txt"], "not a folder"),
    # a results folder holding a file of the bench's name that no bench wrote: refused before any work
    *[(bench, [*more, "--out-dir", "{w}/my_results"], "already holds") for bench, more in (
        ("rewards", []), ("paths", []), ("paths_walk", []), ("sudoku", []), ("first_command", []),
        ("parallel_rules", []),
        ("infill", []), ("infill", ["--couplets"]), ("repeated_data", ["--report"]),
        ("uniform", ["--masked", "{w}/dllm", "--uniform", "{w}/dllm"]))],
    ("rewards", ["--out-dir", "{w}/my_results_dir"], "rewards.txt in it is a directory"),
    *[(bench, argv, "already holds") for bench, argv in (
        ("decode", ["--out", "{w}/my_results"]), ("parallelism", ["--out", "{w}/my_results"]),
        ("recipe", ["--results", "{w}/my_results"]), ("default_order", ["--dir", "{w}/my_results"]),
        ("lesson_times", ["--out", "{w}/my_results/rewards.txt"]))],
    ("17_rewards", ["--group", "1"], "--group: must be in [2, 16384]"),
    ("rewards", ["--variety", "200", "--group", "100"], "--variety x --group: at most 16,384 attempts"),
    ("16_robot_paths", ["--maps-per-kind", "1001"], "--maps-per-kind: must be in [1, 1000]"),
    ("17_rewards", ["train", "--prompts", "4096", "--group", "8"], "at most 16,384 attempts a step"),
    ("17_rewards", ["train", "--val-puzzles", "100000000"], "--val-puzzles: must be in [1, 10000]"),
    ("17_rewards", ["train", "--cells-per-call", "82"], "--cells-per-call: must be in [1, 81]"),
    ("17_rewards", ["train", "--puzzles", "{w}/missing", *OUT], "no puzzles in"),
    ("17_rewards", ["train", "--puzzles", "{w}/puzzles", *OUT], "no training puzzles with 17-27 givens"),
    ("17_rewards", ["train", "--device", "cuda", *OUT], "no CUDA GPU"),
    ("17_rewards", ["train", "--puzzles", "{w}/bad_puzzles", *OUT], "train.txt:"),
    ("17_rewards", ["train", "--puzzles", "{w}/puzzles", "--givens", "28", "50", "--init", "{w}/dllm", *OUT],
     "not a Sudoku model"),
    ("17_rewards", ["train", "--puzzles", "{w}/puzzles", "--givens", "28", "50", "--init", "{w}/gpt", *OUT],
     "holds a gpt model"),
    ("17_rewards", ["train", "--givens", "30", "20", *OUT], "LO <= HI"),
    # a seed past what the generators take (torch overflows past 2**64, numpy past 2**32), or below 0
    ("06_generate", ["--seed", "99999999999999999999"], "--seed: must be in [0, 2**32)"),
    ("05_train", ["--seed", "-1", *OUT], "--seed: must be in [0, 2**32)"),
    ("17_rewards", ["train", "--seed", "4294967296", *OUT], "--seed: must be in [0, 2**32)"),
    ("17_rewards", ["train", "--budget", "0", *OUT], "must be >= 1"),
    ("17_rewards", ["train", "--temperature", "0", *OUT], "must be"),
    ("17_rewards", ["train", "--resume", *OUT], "nothing to resume"),
    ("17_rewards", ["train", "--resume", "--force", *OUT], "give one"),
    ("17_rewards", ["train", "--out", "{w}/dllm"], "already holds a run"),
    # an empty value (a shell variable left unset) is no value: it was read as no flag at all, so `--data ""`
    # trained on TinyShakespeare and `--check ""` made 100,000 maps instead of checking a file
    *[(script, argv, "needs a value, got an empty string") for script, argv in (
        ("05_train", ["--data", "", *OUT]), ("08_train_tamil", ["--data", "", *OUT]),
        ("11_block_diffusion", ["train", "--data", "", *OUT]), ("15_uniform_noise", ["train", "--data", "", *OUT]),
        ("10_fast_decoding", ["--checkpoint", ""]), ("06_generate", ["--pretrained", "--stop", ""]),
        ("12_sudoku", ["solve", ""]), ("16_robot_paths", ["plan", "", "--start", "0", "0", "--goal", "1", "1"]),
        ("robot_maps", ["--check", ""]), ("sudoku_puzzles", ["--check", ""]),
        ("tamil_dataset", ["--kural-json", "", "--no-madurai", "--out-dir", "{out}"]),
        ("02_attention", ["--plot", ""]), ("paths", ["--out-dir", ""]))],
    ("03_transformer", ["--vocab-size", "10000000000"], "--vocab-size: must be in [1, 262144]"),
    # an output folder that is a file: refused before the work (47 s of puzzles were made first), and a failed
    # download leaves no folder and no empty log behind (tamil_wikipedia made both)
    ("sudoku_puzzles", ["--train", "5", "--out", "{w}/corpus.txt"], "corpus.txt is a file, not a folder"),
    ("robot_maps", ["--train", "5", "--out", "{w}/corpus.txt/maps"], "corpus.txt is a file, not a folder"),
    ("tamil_dataset", ["--kural-json", "{w}/kural.json", "--no-madurai", "--out-dir", "{w}/corpus.txt"],
     "corpus.txt is a file, not a folder"),
    ("tamil_wikipedia", ["--api", "--api-url", "http://127.0.0.1:9/w/api.php", "--timeout", "1", "--out-dir",
                         "{out}/t"], "cannot reach the Wikipedia API"),
]


KINDS = [  # what each case tries, by the words of its expected error (RESULTS.md section 12 counts them)
    ("values left empty", ["got an empty string"]),
    ("flags that would be ignored or contradict each other", [
        "does nothing", "do nothing", "nothing in --", "in --solve --search", "give --from-hub too", "two modes",
        "the loop schedule's", "pick one", "cannot fill gaps", "give --block-size too",
        "fixes the whole canvas", "say what to do", "--stop ends the text", "unrecognized arguments",
        "is not a command", "not a flag of", "not allowed with argument", "the pure model's", "is --search's",
        "are the dLLM's", "expected 2 arguments",
        "has no confidence", "does nothing", "drop --len", "drop --steps", "give one", "shape is the GPT's"]),
    ("a model or run of the wrong kind", [
        "holds a", "model: generate with", "Tamil model", "not a Sudoku", "solve with 12", "not a training run",
        "different vocabularies", "is the dLLM's", "not shipped yet", "conflicts with the run", "nothing to resume",
        "another vocabulary", "not a GPT of text", "was trained by", "different vocabularies", "not a path model",
        "not a run of"]),
    ("writes that would replace something", [
        "already holds", "is a file", "plain folder name", "Project Madurai", "names no text", "was not made here",
        "ending in .png", "ending in .yaml"]),
    ("files that are not what they claim", [
        "no such", "is a directory", "a file, not a folder", "not UTF-8", "is empty", "not a readable checkpoint",
        "not a tiny-dllm export",
        "81 cells", "only digits", "break the rules", "expected puzzle", "not the Thirukkural JSON", "no checkpoint",
        "no Tamil corpus", "sudoku_puzzles.py", "corpus too short", "no {w}/missing.txt", "needs first_command",
        "does not describe a model", "no shipped model", "a map has", "a map holds only", "robot_maps.py",
        "not a map_server map", "expected map,answer,kind", "is not YAML", "ValueError: a JSON list",
        "no training puzzles with", "of a .xml.bz2 file", "no finished runs"]),
    ("numbers that cannot be", [
        "must be", "needs 0 <", "finite", "--train-givens needs", "invalid fim_rate", "not divisible", "too short",
        "longer than the context", "context is 32", "nothing left to generate", "single character", "ending in .gif",
        "past the dLLM's context", "past a model's context", "HI must be", "outside the map", "metres per pixel",
        "occupied or unknown pixel", "no path exists", "a map and moves take", "LO <= HI"]),
]


def kind_of(says):
    return next((k for k, words in KINDS if any(w in says for w in words)),
                "choices, vocabularies, devices, repo ids")


def test_the_table_is_large_and_covers_every_entry_point():
    scripts = {s for s, _, _ in CASES}
    lessons = {p.stem for p in ROOT.glob("[0-9][0-9]_*.py")} - {"01_tensors", "02_attention", "03_transformer",
                                                               "04_diffusion"}  # demos without input to get wrong
    bench = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"common"}
    others = {"sudoku_puzzles", "tamil_dataset", "tamil_wikipedia", "app", "robot_maps"}
    assert len(CASES) >= 100 and lessons | bench | others <= scripts


def entry_points():
    lessons = {p.stem for p in ROOT.glob("[0-9][0-9]_*.py")}
    bench = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"common"}
    return sorted(lessons | bench | {"sudoku_puzzles", "tamil_dataset", "tamil_wikipedia", "app", "robot_maps"})


def test_every_bench_may_write_its_results_again_where_the_repository_keeps_them():
    """The results committed under bench/results were written by the benches: each is known as theirs by
    check_out_dir, so a bench run again into its folder replaces them (and a learner's file is refused, above)."""
    from support.files import check_out_dir

    benches = [lesson(p.stem) for p in (ROOT / "bench").glob("*.py") if "OUTPUTS =" in p.read_text()]
    assert len(benches) >= 11
    seen = 0
    for folder in [ROOT / "bench" / "results", *(ROOT / "bench" / "results").rglob("*")]:
        for bench in benches:
            present = {k: v for k, v in bench.OUTPUTS.items() if (folder / k).is_file()}
            if present:
                check_out_dir(folder, present)
                seen += len(present)
    assert seen >= 50


@pytest.mark.parametrize("script", entry_points())
def test_every_help_and_every_subcommands_help_prints_and_exits_0(script, capsys):
    """--help is where a new user starts: a help text argparse cannot format (a bare % in it) is a traceback."""
    import re

    def help_of(argv):
        with pytest.raises(SystemExit) as e:
            run_cli(lesson(script).main, argv)
        out, err = capsys.readouterr()
        assert e.value.code == 0 and "Traceback" not in err and "usage:" in out, f"{script} {argv}: {err}"
        return out

    subs = re.search(r"^\s*\{([a-z0-9_,-]+)\}", help_of(["--help"]), re.M)
    for sub in subs.group(1).split(",") if subs else []:
        help_of([sub, "--help"])


@pytest.mark.parametrize("script, argv, says", CASES, ids=[f"{s}:{' '.join(a)[:60]}" for s, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(script, argv, says, world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill = lambda s: s.format(w=world, out=tmp_path / "out")
    before = digest(world)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(lesson(script).main, [fill(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]  # no bars
    assert e.value.code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert "error" in lines[0] and fill(says) in lines[0], lines[0]
    assert digest(world) == before  # the runs, corpora and puzzles pointed at are as they were
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))  # nothing half-written


@pytest.mark.parametrize("script, argv", [
    ("05_train", ["--data", "{w}/corpus.txt", *TINY]),
    ("17_rewards", ["train", "--puzzles", "{w}/puzzles", "--givens", "17", "81"]),
])
def test_a_folder_the_system_will_not_make_is_one_line(script, argv, world, tmp_path, capsys, monkeypatch):
    """--out passed the check as it was parsed, but the disk refuses the folder (read-only, or /proc as root, where
    access() says yes): one line, exit 2, not mkdir's traceback."""
    def refuse(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    argv = [a.format(w=world) for a in argv] + ["--out", str(tmp_path / "ro" / "run")]
    with pytest.raises(SystemExit) as e:
        run_cli(lesson(script).main, argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # 17 first says which model it starts from
    assert e.value.code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert "cannot make the folder" in errors[0] and "Read-only file system" in errors[0], err


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(world, tmp_path, capsys):
    out = tmp_path / "run"
    args = TINY + ["--data", str(world / "corpus.txt"), "--out", str(out), "--steps", "20", "--eval-every", "5",
                   "--lr", "3e3", "--grad-clip", "0"]
    with pytest.raises(SystemExit) as e:
        run_cli(lesson("05_train").main, args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "the training loss is not finite by step" in err and "lr 3000" in err and "Lower --lr" in err
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())  # the last good state, never a NaN model


def test_weights_that_diverge_after_the_last_finite_loss_stop_before_any_sample(world, tmp_path, capsys):
    """The loss of the step before an evaluation is finite, but that step's update left NaN weights: the run must
    stop at the evaluation with one line, before a sample draws from NaN probabilities (torch.multinomial)."""
    train = lesson("05_train")

    class Diverges(train.DiffusionObjective):
        def loss(self, model, x, config):
            loss = super().loss(model, x, config)
            if self.step == 3:  # a finite loss whose gradient is NaN: the update makes every weight NaN
                loss.register_hook(lambda grad: grad * float("nan"))
            return loss

    out = tmp_path / "run"
    args = TINY + ["--data", str(world / "corpus.txt"), "--out", str(out), "--steps", "8", "--eval-every", "4",
                   "--sample-len", "16"]
    with pytest.raises(SystemExit) as e:
        run_cli(lambda argv: train.main(argv, objective=Diverges), args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and "multinomial" not in err
    assert "the validation loss is not finite by step 4" in err and "keeps step 0" in err
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["step"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_resuming_a_finished_run_says_so_and_trains_nothing(world, tmp_path, capsys):
    run = tmp_path / "dllm"
    shutil.copytree(world / "dllm", run)
    before = digest(run)
    rows = lesson("05_train").main(["--out", str(run), "--resume"])
    assert "is finished: step 60 of 60" in capsys.readouterr().out and rows[-1]["step"] == 60
    assert digest(run) == before


def test_resume_restores_the_runs_best_and_best_pt_only_improves(world, tmp_path):
    train = lesson("05_train")
    run = tmp_path / "r"
    train.main(TINY + ["--data", str(world / "corpus.txt"), "--out", str(run), "--steps", "20", "--eval-every", "5"])
    latest, best = (torch.load(run / n, weights_only=True) for n in ("latest.pt", "best.pt"))
    rows = [r["val_bpc"] for r in lesson("support.metrics").read_metrics(run)]
    assert latest["best_val_bpc"] == min(rows) == best["val_bpc"]  # latest.pt knows the run's true best
    assert best["step"] == 5 * (rows.index(min(rows)))  # best.pt is the best evaluation's state


@pytest.mark.parametrize("script, argv, patch", [
    ("06_generate", ["--checkpoint", "{w}/dllm", "--steps", "8", "--len", "20"], ("04_diffusion", "generate")),
    ("07_train_gpt", ["generate", "--checkpoint", "{w}/gpt", "--tokens", "20"], ("07_train_gpt", "generate_gpt")),
    ("11_block_diffusion", ["generate", "--checkpoint", "{w}/bd4", "--len", "100"],  # past its context
     ("11_block_diffusion", "generate_blocks")),
    ("12_sudoku", ["solve", "{w}/puzzle_rules.txt", "--pretrained", "--batch", "1"], ("12_sudoku", "solve_dllm")),
    ("16_robot_paths", ["solve", "{w}/maps/test.txt", "--pretrained", "--batch", "1"], ("16_robot_paths", "plan")),
])
def test_ctrl_c_stops_a_generator_cleanly_with_what_it_made(script, argv, patch, world, capsys, monkeypatch):
    """Ctrl-C at the third model call (text), or in the second batch (Sudoku): exit 130, the output so far printed."""
    module, name = lesson(patch[0]), patch[1]
    real, batches = getattr(module, name), []

    def interrupted(*a, **kw):
        batches.append(1)
        if "callback" in kw:  # a sampler: interrupt it inside, after its third call
            inner = kw["callback"]

            def callback(calls, x):
                inner(calls, x)
                if calls == 3:
                    raise KeyboardInterrupt

            kw["callback"] = callback
        elif len(batches) == 2:  # --solve: the second batch is interrupted
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(module, name, interrupted)
    if script == "12_sudoku":
        (world / "solve.txt").write_text((world / "puzzles" / "test.txt").read_text().replace(",", "\n"))
        argv = ["solve", "{w}/solve.txt", "--pretrained", "--batch", "1"]
    before = digest(world)
    with pytest.raises(SystemExit) as e:
        run_cli(lesson(script).main, [a.format(w=world) for a in argv])
    out, err = capsys.readouterr()
    assert e.value.code == 130 and "Traceback" not in err and "interrupted" in err
    assert out.strip()  # what it generated so far: a canvas with masks (text), the solved puzzles (Sudoku)
    if script == "16_robot_paths":  # the first batch's map answered, and said how many of all
        assert len(out.splitlines()) == 1 and "1 of " in err and "maps answered" in err
    assert digest(world) == before


def test_resume_with_the_default_corpus_named_is_no_conflict(tmp_path, monkeypatch, capsys):
    """A run trained on the lesson's default corpus (no --data) resumes with --data naming that same file."""
    train = lesson("05_train")
    corpus = tmp_path / "default.txt"
    corpus.write_text("\n".join(["To be, or not to be, that is the question."] * 200) + "\n")
    monkeypatch.setattr(train, "SHAKESPEARE", corpus)  # the default corpus, as the test's own file
    monkeypatch.setattr(train, "shakespeare", lambda: corpus.read_text())
    monkeypatch.setattr(train.parse_args, "__defaults__", (train.TRAIN_PRESETS, None, corpus))
    run = tmp_path / "run"
    train.main(TINY + ["--out", str(run), "--steps", "4", "--eval-every", "2"])
    rows = train.main(["--out", str(run), "--resume", "--steps", "6", "--data", str(corpus)])
    assert rows[-1]["step"] == 6 and "conflicts" not in capsys.readouterr().err


if __name__ == "__main__":  # python tests/test_bad_inputs.py: the cases counted by kind (RESULTS.md section 12)
    from collections import Counter

    for kind, n in Counter(kind_of(says) for _, _, says in CASES).most_common():
        print(f"{n:>4}  {kind}")
    print(f"{len(CASES):>4}  in all, over {len({s for s, _, _ in CASES})} entry points")


@pytest.mark.parametrize("argv", [["04_diffusion.py", "--train-steps", "100000"],
                                  ["sudoku_puzzles.py", "--train", "100000", "--workers", "2", "--out", "{out}/p"],
                                  ["robot_maps.py", "--train", "1000000", "--out", "{out}/m"]])
def test_ctrl_c_in_a_demo_or_data_script_is_one_line_exit_130_and_leaves_nothing(argv, tmp_path):
    """Ctrl-C anywhere outside training and sampling (which save or print their work first): exit status 130, one
    line, no traceback (worker processes included), no half-written output."""
    import re
    import signal
    import subprocess
    import time

    out, said, log = tmp_path / "out", tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(said, "w") as o, open(log, "w") as e:
        proc = subprocess.Popen([sys.executable, *(a.format(out=out) for a in argv)], cwd=ROOT, stdout=o, stderr=e,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                preexec_fn=ctrl_c_as_in_a_terminal)
    t = time.monotonic()  # inside the work once it says anything (a fixed 3 s was `import torch` on a busy machine)
    while not (said.stat().st_size or log.stat().st_size) and proc.poll() is None and time.monotonic() - t < 120:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends Ctrl-C: to every process of the group, workers too
    proc.wait(timeout=60)
    err = log.read_text()
    bars = [re.sub(r"^.*?%\|.*?\]", "", line) for line in err.replace("\r", "\n").splitlines()]  # tqdm's
    lines = [line for line in bars if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err and lines[-1].endswith("interrupted"), err
    assert len(lines) == 1, err  # each pool worker printed "Process ForkPoolWorker-1:" before
    assert not out.exists() or not any(out.rglob("*"))
