"""The models shipped in checkpoints/pretrained/: they load (with the repository's loader and with
Transformer.from_pretrained), match their cards, are safetensors only, generate offline; a generator uses the
learner's own run when there is one and otherwise the shipped model, and says which."""
import json
import re
import shutil

import pytest
import torch

from support import hub, pretrained
from support.cli import run_cli

from conftest import TINY, cli_error, lesson

T, D, gen, train = lesson("03_transformer"), lesson("04_diffusion"), lesson("06_generate"), lesson("05_train")
REAL = pretrained.PRETRAINED  # the repository's shipped models (tests monkeypatch the constant)
T09 = lesson("09_generate_tamil")
SHIPPED = sorted(p for p in pretrained.PRETRAINED.iterdir() if p.is_dir()) if pretrained.PRETRAINED.exists() else []


def load_any(kind, path):
    """Any model: lesson 06's loader, with every tokenizer a checkpoint may name (09's graphemes too)."""
    return gen.load(path, kind, tokenizers=T09.TOKENIZERS)


def test_the_three_text_models_are_shipped():
    for name in ("shakespeare-dllm", "shakespeare-gpt", "thirukkural-dllm"):
        assert pretrained.PRETRAINED / name in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_loads_matches_its_card_and_is_safetensors_only(path):
    files = sorted(f.name for f in path.iterdir())  # no pickle anywhere; over 16 MB, shards the Hub's way
    n = len(files) - 4
    shards = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)] + ["model.safetensors.index.json"]
    assert files == ["README.md", "config.json", *(shards if n > 0 else ["model.safetensors"]), "tokenizer.json"]
    assert all(f.stat().st_size <= hub.SHARD_BYTES for f in path.iterdir())
    assert pretrained.weights_dtype(path) == {torch.float16}
    model, tok, info = load_any(None, path)
    direct = T.Transformer.from_pretrained(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), direct.state_dict().values()))
    assert next(model.parameters()).dtype == torch.float32  # fp16 on disk, fp32 to compute
    card = (path / "README.md").read_text(encoding="utf-8")
    params = int(re.search(r"A ([\d,]+)-parameter", card).group(1).replace(",", ""))
    vocab = int(re.search(r"vocabulary (\d+)", card).group(1))
    assert params == model.num_params() and vocab == model.config.vocab_size == tok.vocab_size
    assert "the command that trained it" in card
    says = {"sudoku": "validation puzzles solved", "paths": "valid paths"}.get(path.name.split("-")[0],
                                                                              "validation bits/char")
    assert says in card


def test_shipped_dllm_generates_offline_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen, "ROOT", tmp_path)  # no learner's run: tmp_path/checkpoints/dllm does not exist
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = gen.main(["--steps", "8", "--len", "40", "--seed", "1"])
    err = capsys.readouterr().err
    assert f"using the shipped model checkpoints/pretrained/{pretrained.TEXT_DLLM} " in err
    assert len(texts[0]) == 40 and set(texts[0]) <= set(gen.diff.CharTokenizer.from_text(
        train.shakespeare()).tokens)


def test_shipped_uniform_dllm_generates_offline_and_says_so(tmp_path, monkeypatch, capsys):
    uniform = lesson("15_uniform_noise")
    monkeypatch.setattr(uniform, "ROOT", tmp_path)  # no learner's run in tmp_path/checkpoints/uniform
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = uniform.main(["generate", "--steps", "8", "--len", "40", "--seed", "1"])
    assert f"using the shipped model checkpoints/pretrained/{pretrained.UNIFORM} " in capsys.readouterr().err
    assert len(texts[0]) == 40 and set(texts[0]) <= set(gen.diff.CharTokenizer.from_text(
        train.shakespeare()).tokens)


def test_shipped_tamil_dllm_generates_tamil_offline(tmp_path, monkeypatch, capsys):
    tamil = lesson("09_generate_tamil")
    monkeypatch.setattr(tamil, "ROOT", tmp_path)  # no learner's run in tmp_path/checkpoints/tamil
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = tamil.main(["--steps", "8", "--len", "30", "--seed", "1"])
    assert "using the shipped model checkpoints/pretrained/thirukkural-dllm" in capsys.readouterr().err
    assert sum("\u0b80" <= c <= "\u0bff" for c in texts[0]) > 10  # Tamil letters, not a character-level model's


def test_the_learners_run_comes_first_and_pretrained_overrides(tmp_path, tiny_text, monkeypatch, capsys):
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    run = tmp_path / "checkpoints" / "dllm"
    train.main(TINY + ["--data", str(tiny_text), "--out", str(run), "--steps", "4", "--eval-every", "4"])
    capsys.readouterr()
    gen.main(["--steps", "4", "--len", "16"])
    assert f"using your run {run}" in capsys.readouterr().err
    gen.main(["--steps", "4", "--len", "16", "--pretrained"])
    assert f"using the shipped model checkpoints/pretrained/{pretrained.TEXT_DLLM}" in capsys.readouterr().err
    gen.main(["--steps", "4", "--len", "16", "--pretrained", "shakespeare-dllm"])  # the 0.8M: one flag away
    assert "using the shipped model checkpoints/pretrained/shakespeare-dllm\n" in capsys.readouterr().err


def test_missing_or_corrupt_shipped_model_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path / "pretrained")
    assert "no shipped model" in cli_error(gen.main, ["--steps", "4"], capsys)
    copy = tmp_path / "pretrained" / pretrained.TEXT_DLLM
    shutil.copytree(REAL / pretrained.TEXT_DLLM, copy)
    first = hub.weight_files(copy)[0]  # one file, or the first shard
    first.write_bytes(first.read_bytes()[:5000])
    with pytest.raises(SystemExit) as e:
        run_cli(gen.main, ["--steps", "4"])
    error = capsys.readouterr().err.strip()  # the one error line (which model is said only after a success)
    assert e.value.code == 2 and "not a tiny-dllm export" in error and "\n" not in error


def test_a_model_over_the_shard_size_is_shipped_in_shards_and_read_back(tmp_path, monkeypatch, capsys):
    model, tok, _ = load_any("dllm", REAL / "shakespeare-dllm")
    monkeypatch.setattr(hub, "SHARD_BYTES", 600_000)  # the 0.8M model in fp16 is 1.6 MB: three shards
    out = pretrained.ship(model, tok, tmp_path / "m", "card")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert not (out / "model.safetensors").exists() and pretrained.weights_dtype(out) == {torch.float16}
    for loaded in (load_any("dllm", out)[0], T.Transformer.from_pretrained(out)):
        assert loaded.lm_head.weight is loaded.tok_emb.weight  # the tie survives the shards
        assert all(torch.equal(a.half().float(), b) for a, b in zip(model.state_dict().values(),
                                                                   loaded.state_dict().values()))
    shard = out / "model-00002-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:500])  # a truncated shard: one line, exit 2
    assert "not a tiny-dllm export" in cli_error(gen.main, ["--checkpoint", str(out), "--steps", "4"], capsys)
    index["weight_map"]["ln_f.weight"] = "../elsewhere.safetensors"  # an index naming a file outside its folder
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "not a tiny-dllm export" in cli_error(gen.main, ["--checkpoint", str(out), "--steps", "4"], capsys)


def test_shipped_dllm_nelbo_is_finite_and_far_below_an_untrained_model():
    """The real figure comes from bench/ship_model.py (in the card); here: a few validation windows."""
    model, tok, _ = load_any("dllm", pretrained.PRETRAINED / "shakespeare-dllm")
    _, val, _ = train.split_corpus(train.shakespeare(), tok)
    w = train.eval_windows(val, 4, model.config.block_size)
    shipped = D.nelbo_bits(model, w, model.config.mask_id, K=8)
    torch.manual_seed(0)
    untrained = D.nelbo_bits(T.Transformer(model.config).eval(), w, model.config.mask_id, K=8)
    assert torch.isfinite(torch.tensor(shipped)) and shipped < untrained - 1.5  # untrained: about log2(65) = 6


def test_ship_model_exports_a_run_with_a_true_card(dllm_run, gpt_run, tmp_path):
    """bench/ship_model.py on the tiny runs: fp16 weights, the card's figures are the shipped weights' own."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    ship = lesson("ship_model")
    d, corpus, _ = dllm_run
    for run, name in ((d / "dllm", "tiny-dllm"), (gpt_run[0], "tiny-gpt")):
        bits32, bits16 = ship.main(["--run", str(run), "--name", name, "--command", "python 05_train.py --preset tiny",
                                    "--machine", "the test machine", "--out-root", str(tmp_path)])
        assert abs(bits32 - bits16) < 0.05  # fp16 rounding costs little
        card = (tmp_path / name / "README.md").read_text(encoding="utf-8")
        assert f"{bits16:.4f} with these fp16 weights" in card and "the test machine" in card
        assert "`python 05_train.py --preset tiny`" in card and "tokens seen" in card
        model, _, _ = load_any(None, tmp_path / name)
        assert f"A {model.num_params():,}-parameter" in card
        assert pretrained.weights_dtype(tmp_path / name) == {torch.float16}
    tamil = lesson("08_train_tamil").GraphemeTokenizer.from_text("அகர முதல")
    command = ship.sample_command("dllm", tamil, "thirukkural-dllm")
    assert command.startswith("python 09_generate_tamil.py --pretrained")
    assert ship.sample_command("gpt", tamil, "x-10m").startswith(
        "python 07_train_gpt.py generate --checkpoint checkpoints/pretrained/x-10m")
