"""Lesson 07: the GPT through the same loop, its KV-cache sampler, the comparison, and bench/decode.py."""
import math
import sys

import pytest
import torch

from support import checkpoints, metrics
from support.cli import UsageError

from conftest import ROOT, TINY, cli_error, lesson

gpt, D = lesson("07_train_gpt"), lesson("04_diffusion")
sys.path.insert(0, str(ROOT / "bench"))  # the benchmarks' modules: fim (fill in the middle), common (judging)
fim, common = lesson("fim"), lesson("common")


# ---------------------------------------------------------------- 07: the GPT
def test_gpt_kv_cache_equals_recomputation():
    tfm = lesson("03_transformer")
    torch.manual_seed(0)
    m = tfm.Transformer(tfm.build_config("tiny", vocab_size=11, causal=True, mask_token=False)).eval()
    prompt = torch.randint(0, 11, (2, 5))
    a = gpt.generate_gpt(m, prompt, 20, D.GREEDY, use_cache=True)
    b = gpt.generate_gpt(m, prompt, 20, D.GREEDY, use_cache=False)
    assert torch.equal(a, b)


# ---------------------------------------------------------------- bench/fim.py: fill in the middle
def fim_gpt():
    tfm = lesson("03_transformer")
    torch.manual_seed(0)
    return tfm.Transformer(tfm.build_config("tiny", vocab_size=11, causal=True, mask_token=False, sentinels=3)).eval()


def test_psm_transformation_round_trips():
    m = fim_gpt()
    pre, suf, mid = fim.sentinel_ids(m.config)
    assert (pre, suf, mid) == (11, 12, 13)
    x = torch.randint(0, 11, (50, 20))
    cuts = torch.randint(0, 21, (50, 2)).sort(1).values
    psm = fim.to_psm(x, cuts[:, :1], cuts[:, 1:], m.config)
    assert psm.shape == (50, 23)
    for row, seq, (a, b) in zip(x, psm.tolist(), cuts.tolist()):
        assert seq[0] == pre and seq.count(suf) == seq.count(mid) == 1
        i, j = seq.index(suf), seq.index(mid)
        prefix, suffix, middle = seq[1:i], seq[i + 1 : j], seq[j + 1 :]
        assert (len(prefix), len(middle)) == (a, b - a) and prefix + middle + suffix == row.tolist()
    y = torch.randint(0, 11, (400, 24))
    assert torch.equal(fim.fim_batch(y, 0.0, m.config), y)
    mixed = fim.fim_batch(y, 0.5, m.config)
    rearranged = (mixed[:, 0] == pre)
    assert 150 < rearranged.sum() < 250 and torch.equal(mixed[~rearranged], y[~rearranged])
    assert (mixed[rearranged] == mid).sum(1).eq(1).all()


def test_fim_loss_never_asks_for_a_sentinel_and_span_scores_are_exact():
    m = fim_gpt()
    x = torch.randint(0, 11, (8, 25))
    assert fim.FIMObjective(1.0).loss(m, x, m.config).isfinite()  # sentinel targets ignored
    w = torch.randint(0, 11, (3, 20))
    for span in [(1, 20), (5, 9), (19, 20), torch.tensor([0, 1, 1, 0, 0, 0, 1] + [0] * 13)]:
        nll, scored = 0.0, lesson("04_diffusion").span_mask(span, 20).nonzero().flatten().tolist()
        for row in w:  # the definition: each scored token given everything to its left
            for i in scored:
                nll -= m(row[None, :i])[0, -1].log_softmax(-1)[row[i]].item()
        assert fim.gpt_span_bits(m, w, span) == pytest.approx(nll / (3 * len(scored)) / math.log(2), rel=1e-5)
    for lo, hi in [(0, 20), (5, 9)]:
        nll = 0.0  # <PRE> prefix <SUF> suffix <MID>, then the middle token by token
        for row in w:
            ctx = [11, *row[:lo].tolist(), 12, *row[hi:].tolist(), 13]
            for i in range(lo, hi):
                nll -= m(torch.tensor([ctx]))[0, -1].log_softmax(-1)[row[i]].item()
                ctx.append(row[i].item())
        assert fim.gpt_span_bits(m, w, (lo, hi), fim=True) == pytest.approx(nll / (3 * (hi - lo)) / math.log(2),
                                                                          rel=1e-5)
    with pytest.raises(ValueError):
        fim.gpt_span_bits(m, w, (0, 5))  # a plain GPT cannot predict the first token: it has no context


def test_fim_gpt_trains_and_resumes(tiny_text, tmp_path, capsys):
    args = TINY + ["--data", str(tiny_text), "--out", str(tmp_path / "fim"), "--steps", "20", "--eval-every", "10"]
    rows = fim.main(args + ["--fim", "0.5"])
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 0.5
    fim.main(["--out", str(tmp_path / "fim"), "--resume", "--steps", "30", "--no-plot", "--sample-len", "0"])
    ckpt = checkpoints.load_checkpoint(tmp_path / "fim" / "latest.pt")
    assert ckpt["config"]["sentinels"] == 3 and ckpt["args"]["fim"] == 0.5 and ckpt["step"] == 30
    assert ckpt["objective"] == "fim-gpt"
    capsys.readouterr()
    assert "--fim" in cli_error(fim.main, TINY + ["--fim", "1.5", "--out", str(tmp_path / "f")], capsys)
    err = cli_error(gpt.main, ["--out", str(tmp_path / "fim"), "--resume", "--steps", "40"], capsys)
    assert "holds a fim-gpt run (bench/fim.py)" in err  # 07 never resumes it as a plain GPT


def test_gpt_trains_through_shared_loop_and_compare(dllm_run, gpt_run, tmp_path, capsys):
    d, corpus, _ = dllm_run
    gpt_dir, rows = gpt_run
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"] - 1.0
    texts = gpt.main(["generate", "--checkpoint", str(gpt_dir), "--prompt", "To", "--tokens", "20"])
    assert texts[0].startswith("To") and len(texts[0]) == 22
    runs = gpt.compare(d / "dllm", gpt_dir, out=tmp_path / "compare.png", text=corpus.read_text(), n_windows=2)
    assert [r["kind"] for r in runs] == ["dllm", "gpt"] and (tmp_path / "compare.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "upper bound" in out and "same 2 validation windows" in out
    bits = runs[0]["same_windows"]
    assert len(bits) == 3 and all(0 < b < 6.5 for b in bits.values())  # log2(V) ~ 4.7 untrained; trained below
    assert bits["GPT (exact)"] < 3.0  # the tiny GPT has learned the two repeated lines
    with pytest.raises(UsageError, match="holds a gpt model"):
        gpt.compare(gpt_dir, d / "dllm")  # arguments swapped


def test_generative_bpc_prefers_real_text(dllm_run, gpt_run):
    _, corpus, _ = dllm_run
    model, tok, _ = common.load_run("gpt", gpt_run[0])
    text = corpus.read_text()[:300]
    g = torch.Generator().manual_seed(0)
    shuffled = "".join(text[i] for i in torch.randperm(len(text), generator=g).tolist())
    assert common.generative_bpc(model, tok, [text]) < common.generative_bpc(model, tok, [shuffled]) - 0.5
    assert common.distinct_ngrams(["abababab"]) < common.distinct_ngrams(["abcdefgh"])
    assert common.char_entropy(["aaaa"]) == 0 and common.char_entropy(["abab"]) == pytest.approx(1.0)


def test_decode_benchmark_runs_on_tiny_models(dllm_run, gpt_run, bd_run, tmp_path, capsys):
    """bench/decode.py end to end on the tiny runs, writing into a temporary folder (a smoke test, no timing)."""
    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("decode")
    d, corpus, _ = dllm_run
    bench.main(["--dllm", str(d / "dllm"), "--gpt", str(gpt_run[0]), "--bd", str(bd_run), "--data", str(corpus),
                "--len", "16", "--num-samples", "2", "--only-table", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for row in ("| GPT + KV cache |", "| dLLM ancestral (random order, 1 token/call) |",
                "| BD4 exact cache, EB-Sampler, budget 1 |", "the old claim", "against the diverse baseline"):
        assert row in out, row
    assert {p.name for p in tmp_path.iterdir()} == {"decode.csv", "sampler_frontier.png", "decode_speed.png"}
    row = lambda name, cps, bpc, d4, h: dict(name=name, group="table", chars_per_s=cps, gen_bpc=bpc, distinct4=d4,
                                             entropy=h, diverse=d4 >= 0.9 * 0.8 and abs(h - 4.0) <= 0.1)
    rows = [dict(row("GPT + KV cache", 1000.0, 2.0, 0.8, 4.0), group="gpt"),
            row("dLLM ancestral (random order, 1 token/call)", 10.0, 3.0, 0.8, 4.0),
            row("dLLM confidence, 1 token/call", 12.0, 1.5, 0.2, 3.0),  # plausible because it repeats itself
            row("dLLM Fast-dLLM: threshold 0.9 + dual cache, blocks 32", 60.0, 1.6, 0.25, 3.1),
            row("BD4 exact cache, threshold 0.9", 1600.0, 1.9, 0.78, 3.95)]
    bench.verdicts(rows)
    out = capsys.readouterr().out
    assert "Fast-dLLM runs 6.0x faster" in out and "): 5.0x at gen bpc 1.600 vs 1.500" in out
    assert "at the GPT's quality and diversity: BD4 exact cache, threshold 0.9 (1.60x)" in out  # not confidence


@pytest.mark.parametrize("argv, needle", [
    (["--prompt", "To Ω"], "'Ω'"), (["--prompt", ""], "non-empty"), (["--temp", "-1"], "--temp"),
    (["--top-p", "2"], "--top-p"), (["--num-samples", "0"], "--num-samples"),
])
def test_bad_generate_input_exits_2(gpt_run, capsys, argv, needle):
    assert needle in cli_error(gpt.main, ["generate", "--checkpoint", str(gpt_run[0])] + argv, capsys)


def test_parallelism_diagnostic_runs_on_a_tiny_model(dllm_run, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    d, corpus, _ = dllm_run
    rows = lesson("parallelism").main(["--checkpoint", str(d / "dllm"), "--data", str(corpus), "--windows", "4",
                                       "--out", str(tmp_path)])
    assert [r["mask_rate"] for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert all(0 < r["p_max_p10"] <= r["p_max_median"] <= r["p_max_p90"] <= 1 for r in rows)
    assert {p.name for p in tmp_path.iterdir()} == {"parallelism.csv", "parallelism.png"}


def test_block_sweep_reads_finished_runs_and_strips_progress_bars(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    sweep = lesson("block_sweep")
    monkeypatch.setattr(sweep, "ROOT", tmp_path)
    monkeypatch.setattr(sweep, "RESULTS", tmp_path / "results")
    for name, bpc in [("gpt", 2.2), ("bd4", 2.6), ("dllm", 3.1), ("bd16", 9.9)]:
        run = tmp_path / "checkpoints" / "sweep" / name
        run.mkdir(parents=True)
        steps = [0, 10] if name != "bd16" else [0, 5]  # bd16 unfinished: left out of the table
        metrics.write_metrics(run, [dict(step=s, train_loss=1.0, val_bpc=bpc + 10 - s, lr=0.1, tokens_per_s=1.0,
                                         elapsed_s=60.0 * s) for s in steps])
        (run / "train.log").write_text("corpus: x\ndllm:   5%|▌   | 1/10 [00:01<00:09,  1.0it/s]\rdllm:  10%|█ | "
                                       "2/10 [00:02<00:08,  1.0it/s]step 10 | val 2.2\n")
        sweep.collect(name)
    assert (tmp_path / "results" / "runs" / "sweep_gpt" / "train.log").read_text() == "corpus: x\nstep 10 | val 2.2\n"
    rows = sweep.sweep_table(10)
    assert [(r["run"], r["block"], r["final_bpc"]) for r in rows] == [("gpt", "", 2.2), ("bd4", 4, 2.6),
                                                                      ("dllm", 256, 3.1)]
    sweep.plot_sweep(rows, "test machine")
    assert (tmp_path / "results" / "block_sweep.png").exists()


def test_repeated_data_quick_runs_resumes_and_stops_early(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    rd = lesson("repeated_data")
    rows = rd.main(["--quick", "--out-dir", str(tmp_path), "--jobs", "2"])  # two trainers side by side
    assert [(r["model"], r["dropout"]) for r in rows] == [("gpt", 0.0), ("gpt", 0.2), ("dllm", 0.0), ("dllm", 0.2)]
    kept = sorted(p.name for p in (tmp_path / "runs").glob("repeated_*"))  # what survives the checkpoints
    assert kept == sorted(f"repeated_quick_{m}_60steps_drop{d}_seed0" for m in ("dllm", "gpt") for d in ("0", "0.2"))
    log = (tmp_path / "runs" / kept[0] / "train.log").read_text()  # kept too, without tqdm's bars
    assert "step" in log and "%|" not in log
    assert all(r["test_bpc"] > 0 and r["best_step"] > 0 for r in rows) and rows[-1]["test_lr_bpc"] > 0
    assert {r["weight_decay"] for r in rows} == {0.1}  # read back from each run's checkpoint: the default
    assert {"repeated_data.csv", "repeated_data.png", "repeated_data.txt"} <= {p.name for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert rd.main(["--quick", "--out-dir", str(tmp_path), "--report"]) == rows  # finished runs: nothing retrained
    assert "_seed0:" not in capsys.readouterr().out
    run = tmp_path / "early"
    metrics.write_metrics(run, [dict(step=s, train_loss=1.0, val_bpc=v, lr=0.1, tokens_per_s=1.0, elapsed_s=s)
                                for s, v in [(0, 5.0), (10, 3.0), (20, 3.1), (30, 3.2)]])
    assert rd.finished(run, 100, patience=3) == (False, "")
    assert rd.finished(run, 100, patience=2)[1].startswith("no better validation for 2 evaluations after step 10")
    assert rd.finished(run, 30, patience=9) == (True, "all steps")
    falling, rising = ([0, 10, 20], [5.0, 3.0, 1.0]), ([0, 10, 20], [4.0, 2.0, 4.0])
    assert rd.first_crossing(falling, rising) == 12.5  # 3 - 2 = +1 at 10, 1 - 4 = -3 at 20: zero a quarter on
    assert rd.first_crossing(rising, falling) == 10  # below already at the first evaluation after 0
    assert rd.first_crossing(falling, ([0, 5], [9.0, 9.0])) == 5  # only the passes both ran
    assert rd.first_crossing(rising, ([0, 30], [1.0, 1.0])) is None


def test_repeated_data_seeds_text_groups_configurations_with_two_seeds(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    rd = lesson("repeated_data")
    row = lambda model, d, seed, test, wd=0.1: dict(corpus="kural", model=model, schedule_steps=3000, dropout=d,
                                                     weight_decay=wd, seed=seed, test_bpc=test)
    rows = [row("gpt", 0.3, 0, 2.2), row("gpt", 0.3, 1, 2.3), row("gpt", 0.1, 0, 2.5), row("dllm", 0.3, 0, 2.4),
            row("dllm", 0.3, 1, 2.6, wd=0.5)]
    text = rd.seeds_text(rows)
    assert "gpt dropout 0.3 (3000 steps), seeds 0, 1: test 2.200, 2.300; mean 2.250, spread 0.100" in text
    assert "dropout 0.1" not in text and "dllm" not in text  # one seed each: nothing to summarise
    assert rd.seeds_text(rows[2:]) == ""  # the two dLLM rows differ in weight decay: not seeds of one setting
    rows.append(row("dllm", 0.3, 2, 2.8, wd=0.5))
    assert "dllm dropout 0.3, weight decay 0.5 (3000 steps), seeds 1, 2: test 2.600, 2.800" in rd.seeds_text(rows)


def test_repeated_data_names_a_weight_decay_only_where_it_is_not_the_default(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    rd = lesson("repeated_data")
    assert rd.run_name("kural", "dllm", 6000, 0.1, 0) == "kural_dllm_6000steps_drop0.1_seed0"  # the runs so far
    assert rd.run_name("kural", "dllm", 6000, 0.1, 0, 0.3) == "kural_dllm_6000steps_drop0.1_wd0.3_seed0"
    assert rd.regularisation(dict(dropout=0.1, weight_decay=0.1)) == "dropout 0.1"
    assert rd.regularisation(dict(dropout=0, weight_decay=0.3)) == "dropout 0, weight decay 0.3"
    assert "--weight-decays: must be >= 0, got -0.5" in cli_error(rd.main, ["--report", "--weight-decays", "0.1",
                                                                          "-0.5"], capsys)


@pytest.mark.parametrize("flag", ["--steps", "--eval-every", "--patience", "--lr-windows"])
def test_repeated_data_refuses_a_zero_count_with_one_line(flag, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    with pytest.raises(SystemExit) as e:
        lesson("repeated_data").main(["--report", flag, "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{flag}: must be >= 1, got 0" in err and "Traceback" not in err


def test_couplet_windows_hide_exactly_the_first_line_of_a_held_out_couplet():
    sys.path.insert(0, str(ROOT / "bench"))
    text = "\n\n".join(f"first line {i:03d}\nsecond line {i:03d}" for i in range(300)) + "\n"
    tok = lesson("04_diffusion").CharTokenizer(text)
    cases = lesson("infill").couplet_windows(text, tok, 64, 5)
    assert len(cases) == 5
    for x, (lo, hi) in cases:
        s = tok.decode(x.tolist())
        assert len(x) == 64 and s.endswith("\nsecond line " + s[lo:hi][-3:])  # the window ends with its couplet
        assert s[lo:hi].startswith("first line ") and s[hi] == "\n" and s[lo - 2 : lo] == "\n\n"
        assert int(s[lo:hi][-3:]) % 10 == 9  # from the test part: every 10th couplet


def test_infill_bench_cuts_gaps_from_held_out_text_only():
    sys.path.insert(0, str(ROOT / "bench"))
    text = "\n\n".join(f"first line {i:03d}\nsecond line {i:03d}" for i in range(300)) + "\n"
    tok = lesson("04_diffusion").CharTokenizer(text)
    test = tok.decode(lesson("infill").held_out(text, tok, "interleaved").tolist())
    numbers = {int(n) for n in test.replace("\n", " ").split() if n.isdigit()}
    assert len(numbers) == 30 and all(n % 10 == 9 for n in numbers)  # every 10th couplet, whole: the test part
    tail = tok.decode(lesson("infill").held_out(text, tok, "tail").tolist())
    assert text.endswith(tail) and len(tail) == len(text) - int(0.9 * len(text))  # the last 10%


def test_infill_bench_counts_characters_not_grapheme_tokens():
    sys.path.insert(0, str(ROOT / "bench"))
    text = "கற்க கற்பவை"  # 11 characters, 8 graphemes: க ற் க _ க ற் ப வை
    tok = lesson("08_train_tamil").GraphemeTokenizer.from_text(text)
    w = torch.tensor([tok.encode(text)] * 2)  # (2, 8)
    assert lesson("infill").span_chars(tok, w, (0, 2)) == (2 * 3, 2 * 2)  # "கற்": 3 characters, 2 tokens
    template = torch.tensor([False, True, False, False, False, True, False, True])  # ற், ற், வை
    assert lesson("infill").span_chars(tok, w, template) == (2 * 6, 2 * 3)


def test_infill_bench_reversal_scores_the_first_line_given_the_second(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    corpus = tmp_path / "couplets.txt"
    corpus.write_text("\n\n".join(f"a{i % 7}\nb{i % 7}" for i in range(400)) + "\n")
    runs = {}
    for name, trainer, extra in (("dllm", "05_train", []), ("gpt", "07_train_gpt", []),
                                 ("fim", "fim", ["--fim", "0.5"])):
        runs[name] = str(tmp_path / name)
        lesson(trainer).main(TINY + ["--data", str(corpus), "--split", "interleaved", "--out", runs[name],
                                     "--steps", "10", *extra])
    rows, examples = lesson("infill").main(["--couplets", "--data", str(corpus), "--windows", "3", "--K", "2",
                                            "--out-dir", str(tmp_path), *(f"--{k}={v}" for k, v in runs.items())])
    assert [r["case"] for r in rows] == ["first line given the second"] and rows[0]["tokens"] == 3 * 2
    assert all(rows[0][k] > 0 for k in ("dLLM exact", "dLLM NELBO", "GPT, left only", "FIM-GPT"))
    real = examples[0]["real text"]
    assert real[real.index("[") + 1] == "a" and real[real.index("]") :].startswith("]\nb")  # first line hidden
    assert (tmp_path / "infill_couplets.csv").exists()
    each = (tmp_path / "infill_couplets_each.csv").read_text().splitlines()
    assert each[0].startswith("couplet,chars,dLLM exact") and len(each) == 1 + 3  # one row per couplet
    assert "dLLM NELBO is lower on" in capsys.readouterr().out
    models = [f"--{k}={v}" for k, v in runs.items()]  # the same runs, gaps in the test couplets (--split)
    rows, _ = lesson("infill").main(["--split", "interleaved", "--data", str(corpus), "--windows", "2", "--spans",
                                     "1", "4", "--K", "2", "--out-dir", str(tmp_path), *models])
    assert [r["case"] for r in rows] == ["gap of 1", "gap of 4", "template: four gaps of 8"]
    assert all(r["dLLM exact"] > 0 and r["GPT, left only"] > 0 for r in rows) and rows[0]["FIM-GPT"] > 0
    err = cli_error(lesson("infill").main, ["--split", "interleaved", "--data", str(corpus), "--windows", "1000",
                                            "--out-dir", str(tmp_path), *models], capsys)
    assert "ask for fewer" in err
    assert "must be >= 1" in cli_error(lesson("infill").main, ["--K", "0", *models], capsys)
    too_long = ["--data", str(corpus), "--windows", "2", "--spans", "999", *models]
    assert "does not fit" in cli_error(lesson("infill").main, too_long, capsys)
    toy = [{"chars": 1, "A": 3.0, "B": 2.0}, {"chars": 3, "A": 1.0, "B": 2.0}]  # A - B: +1 on 1 char, -1 on 3
    assert lesson("infill").paired(toy, "A", "B") == ("A - B: -0.500 +- 0.530 bits/char (standard error over 2 "
                                                      "couplets); B is lower on 1 of them")


def test_infill_bench_scores_every_model_on_the_same_gaps(dllm_run, gpt_run, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    d, corpus, _ = dllm_run
    fim_run = tmp_path / "fim"
    lesson("fim").main(TINY + ["--data", str(corpus), "--out", str(fim_run), "--steps", "10", "--fim", "0.5"])
    rows, examples = lesson("infill").main(["--dllm", str(d / "dllm"), "--gpt", str(gpt_run[0]), "--fim", str(fim_run),
                                            "--data", str(corpus), "--windows", "2", "--spans", "1", "4", "--K",
                                            "4", "--out-dir", str(tmp_path)])
    assert [r["case"] for r in rows] == ["gap of 1", "gap of 4", "template: four gaps of 8"]
    assert all(r["dLLM exact"] > 0 and r["GPT, left only"] > 0 for r in rows) and "FIM-GPT" not in rows[-1]
    assert rows[0]["FIM-GPT"] > 0 and {"real text", "dLLM", "GPT, left only", "FIM-GPT"} == set(examples[0])
    out = capsys.readouterr().out  # paired differences against the dLLM, per gap, over the windows
    assert "gap of 4: GPT, left only - dLLM exact: " in out and "(standard error over 2 windows)" in out
    real, filled = examples[0]["real text"], examples[0]["FIM-GPT"]
    assert real.split("[")[0] == filled.split("[")[0] and real.split("]")[1] == filled.split("]")[1]  # both sides kept
    assert {"infill.csv", "infill.png"} <= {p.name for p in tmp_path.iterdir()}


def test_compare_writes_its_figure_again_but_never_over_a_file_it_did_not_make(dllm_run, gpt_run, tmp_path, capsys):
    """The PNG compare makes carries a mark (support.files.MARK): running compare again replaces it; any other file
    at --out is refused in one line, before any work, unless --force."""
    from support.files import made_here

    d, _, _ = dllm_run
    out = tmp_path / "c.png"
    for _ in range(2):  # the second run replaces the figure the first made
        gpt.main(["compare", str(d / "dllm"), str(gpt_run[0]), "--out", str(out)])
        assert made_here(out)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n not made here")
    assert "was not made here" in cli_error(gpt.main, ["compare", str(d / "dllm"), str(gpt_run[0]), "--out",
                                                       str(mine)], capsys)
    assert mine.read_bytes().endswith(b"not made here")
    gpt.main(["compare", str(d / "dllm"), str(gpt_run[0]), "--out", str(mine), "--force"])
    assert made_here(mine)
