"""Lesson 15 beside lesson 04 at equal compute: the uniform-noise dLLM and the masked one, the same size, data, steps
and evaluation windows. Their bounds, their samples at few and many model calls, and their speed beside the GPT's.

    python 05_train.py --preset cpu --dtype fp32 --mask-rate 0.001 1 --out checkpoints/bench/masked
    python 15_uniform_noise.py train --preset cpu --dtype fp32 --out checkpoints/bench/uniform
    python bench/uniform.py --masked checkpoints/bench/masked --uniform checkpoints/bench/uniform
    python bench/uniform.py ... --masked-sc RUN --uniform-sc RUN    # and each with self-conditioning (15 --self-cond)
    python bench/uniform.py ... --uniform-dcd RUN --uniform-more RUN  # distilled (15 --distill), and its control

The bound: each run's best validation bits/char, read from its metrics.csv (a distilled run's last: its aim is not the
bound; the NELBO of each kind of noise, an upper bound on the NLL, on the same 64 windows). Samples: for each model and
each number of calls (--calls, for 256 characters), --num-samples samples per seed, three seeds, at top-k --topk (the
quick start's 5); the masked model with 06's sampler (random order), the uniform one with 15's (every position redrawn,
the greedy tail at the last call). Each is judged as RESULTS.md section 9 judges: distinct 4-grams (1 = never repeats)
and generative bits/char under the GPT (--gpt; lower = more plausible), beside held-out text. Speed: characters per
second of one batch at each number of calls, and of the GPT writing the same batch with its KV cache, on this CPU.
Writes bench/results/uniform/ (uniform.txt, uniform.csv; with several --temperatures also tradeoff.png: variety
against plausibility, a line per model and number of calls).
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

from support.cli import ArgumentParser, UsageError, out_dir, positive_float, positive_int, run_cli, samples
from support.files import check_out_dir, read_text, write_text
from support.metrics import plot_rows, read_metrics, write_csv
from support.runtime import setting

mean_se = import_module("default_order").mean_se  # bench/'s mean and standard error
diff, train = import_module("04_diffusion"), import_module("05_train")
gpt_lesson, uniform = import_module("07_train_gpt"), import_module("15_uniform_noise")
SEEDS = (0, 1, 2)


def write_samples(kind, model, n, calls, sampling, start=0):
    """n samples of the model's whole context, `calls` model calls, one batch: (token ids (n, L), seconds).
    start: the GPT's first token (a newline). A self-conditioned model is fed its last call's logits."""
    L = model.config.block_size
    t0 = time.perf_counter()
    with torch.no_grad():
        if kind.startswith("masked"):
            x, _ = diff.generate(uniform.fed(model), torch.full((n, L), model.config.mask_id), calls, sampling)
        elif kind.startswith("uniform"):
            x, _ = uniform.generate_uniform(uniform.fed(model), torch.full((n, L), model.config.vocab_size), calls,
                                            sampling)
        else:  # the GPT: a newline, then L - 1 characters, one per call with its KV cache
            x = gpt_lesson.generate_gpt(model, torch.full((n, 1), start), L - 1, sampling)[:, 1:]
    return x, time.perf_counter() - t0


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"uniform.csv": "model,", "uniform.txt": "bench/uniform.py", "tradeoff.png": None}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--masked", required=True, help="the masked dLLM's run (05)")
    p.add_argument("--uniform", required=True, help="the uniform dLLM's run (15), same preset and steps")
    p.add_argument("--masked-sc", help="the masked dLLM trained with self-conditioning (15 --noise masked --self-cond)")
    p.add_argument("--uniform-sc", help="the uniform dLLM trained with self-conditioning (15 --self-cond)")
    p.add_argument("--uniform-dcd", help="the uniform run distilled to fewer calls (15 --distill --init-from UNIFORM)")
    p.add_argument("--uniform-more", help="its control: UNIFORM trained on with its own NELBO, the same steps and LR")
    p.add_argument("--gpt", default=str(common.ROOT / "checkpoints" / "pretrained" / "shakespeare-gpt"),
                   help="the judge and the speed reference (default: the shipped GPT of the cpu preset's size)")
    p.add_argument("--calls", type=positive_int, nargs="+", default=[8, 16, 32, 64, 256],
                   help="model calls for the whole context")
    p.add_argument("--num-samples", type=samples, default=16, help="samples per seed, one batch")
    p.add_argument("--topk", type=positive_int, default=5, help="top-k of every sampler (the quick start's)")
    p.add_argument("--temperatures", type=positive_float, nargs="+", default=[1.0],
                   help="the dLLMs' sampling temperatures, each measured (a lower one trades variety for "
                        "plausibility: compare models at equal variety); the GPT's stays 1")
    p.add_argument("--data", default=str(train.SHAKESPEARE), help="the corpus both trained on (held-out text: its "
                   "last 10%%)")
    p.add_argument("--out-dir", type=out_dir, default=str(common.RESULTS / "uniform"), help="where the table goes")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    gpt, tok, _ = common.load_run("gpt", args.gpt)
    runs = {"masked": args.masked, "uniform": args.uniform, "masked-sc": args.masked_sc, "uniform-sc": args.uniform_sc,
            "uniform-dcd": args.uniform_dcd, "uniform-more": args.uniform_more}
    runs = {k: v for k, v in runs.items() if v}
    models = {"gpt": gpt}
    for kind, path in runs.items():  # each loaded once, each checked: its kind, and the judge's characters
        model, mtok, info = common.load_run("dllm", path)
        want = ("uniform" if kind.startswith("uniform") else "dllm", kind.endswith("-sc"))
        if (info["objective"], model.config.self_cond) != want or mtok.tokens != tok.tokens:
            raise UsageError(f"{path} is not a {kind} run on the judge's characters (see --help)")
        models[kind] = model
    L = models["masked"].config.block_size
    nl = tok.stoi.get("\n", 0)
    _, val, _ = train.split_corpus(read_text(args.data), tok)
    real = [tok.decode(w.tolist()) for w in train.eval_windows(val, args.num_samples, L)]
    bounds = {k: (read_metrics(path)[-1]["val_bpc"] if k == "uniform-dcd" else min(r["val_bpc"] for r in
                                                                                 read_metrics(path)))
              for k, path in runs.items()}
    rows = [dict(model="held-out text", temperature=float("nan"), calls=float("nan"),
                 distinct4=common.distinct_ngrams(real),
                 distinct4_se=0.0, gen_bpc=common.generative_bpc(gpt, tok, real), gen_bpc_se=0.0,
                 chars_per_s=float("nan"))]
    lanes = [(k, T, c) for k in runs for T in args.temperatures for c in args.calls] + [("gpt", 1.0, L - 1)]
    for kind, T, calls in lanes:
        d, b, speed = [], [], []
        for seed in SEEDS:
            s = diff.Sampling(temperature=T, top_k=args.topk, generator=torch.Generator().manual_seed(seed))
            x, seconds = write_samples(kind, models[kind], args.num_samples, calls, s, nl)
            texts = [tok.decode(row.tolist()) for row in x]
            d.append(common.distinct_ngrams(texts))
            b.append(common.generative_bpc(gpt, tok, texts))
            speed.append(x.numel() / seconds)
        (dm, dse), (bm, bse) = mean_se(d), mean_se(b)
        rows.append(dict(model=kind, temperature=T, calls=calls, distinct4=dm, distinct4_se=dse, gen_bpc=bm,
                         gen_bpc_se=bse, chars_per_s=sorted(speed)[1]))  # the median of three
        print(f"{kind:<12} T {T:<4} {calls:>4} calls  distinct-4 {dm:.3f} ± {dse:.3f}  gen bits/char {bm:.3f} ± "
              f"{bse:.3f}  {rows[-1]['chars_per_s']:,.0f} chars/s", flush=True)
    out = Path(args.out_dir)
    write_csv(out / "uniform.csv", rows, list(rows[0]))
    lines = [f"# python bench/uniform.py {' '.join(sys.argv[1:] if argv is None else argv)}",
             f"# machine: {setting()}, fp32; "
             f"{args.num_samples} samples x {L} characters per seed, seeds {SEEDS}, top-k {args.topk}; judge "
             f"{common.shown(args.gpt)}", "",
             "best validation bits/char (NELBO, upper bound, the runs' own windows): "
             + ", ".join(f"{k} {v:.3f}" for k, v in bounds.items())
             + f" (uniform - masked: {bounds['uniform'] - bounds['masked']:+.3f})", "",
             "| model | temperature | calls | distinct 4-grams | gen bits/char | chars/s (median of 3) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['temperature']} | {r['calls']} | {r['distinct4']:.3f} ± {r['distinct4_se']:.3f} | "
              f"{r['gen_bpc']:.3f} ± {r['gen_bpc_se']:.3f} | {r['chars_per_s']:,.0f} |" for r in rows]
    write_text(out / "uniform.txt", "\n".join(lines) + "\n")
    if len(args.temperatures) > 1:  # variety against plausibility, one line per model and number of calls
        curves = {f"{k}, {c} calls": sorted([r for r in rows if r["model"] == k and r["calls"] == c],
                                            key=lambda r: r["distinct4"]) for k in runs for c in args.calls[:2]}
        plot_rows(out / "tradeoff.png", curves, "distinct4", "gen_bpc", "distinct 4-grams (more: more varied)",
                  "gen bits/char under the GPT (less: more plausible)",
                  f"temperatures {', '.join(map(str, args.temperatures))}; held-out text "
                  f"{rows[0]['distinct4']:.2f} / {rows[0]['gen_bpc']:.2f}")
    print("\n".join(lines))
    return rows, bounds


if __name__ == "__main__":
    run_cli(main)
