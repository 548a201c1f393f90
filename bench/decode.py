"""Decoding speed and sample quality of trained dLLM and GPT runs, side by side.

    python bench/decode.py --dllm checkpoints/dllm --gpt checkpoints/gpt --data ../shared/data/tinyshakespeare.txt

For each sampler configuration: N samples of --len characters generated as one batch; characters/s, model
calls per character, generative bits/char under the trained GPT (lower = more plausible), distinct 4-grams
and character entropy (repetition cannot win). References: the GPT's own samples and held-out real text.
Writes bench/results/decode.csv, sampler_frontier.png (quality vs model calls) and decode_speed.png, and
prints a Markdown table.
"""
import argparse
import csv
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
diff = import_module("04_diffusion")
train = import_module("05_train")
gpt_lesson = import_module("07_train_gpt")

RESULTS = Path(__file__).resolve().parent / "results"


def configs(length):
    """(name, group, sampler kwargs). group 'table' rows are the speed table; the rest draw the frontier."""
    fast = dict(remasking="confidence", threshold=0.9)
    rows = [("vanilla confidence, 1 token/step", "table", dict(steps=length)),
            ("threshold 0.9", "table", dict(**fast)),
            ("threshold 0.9 + prefix cache, blocks 32", "table", dict(**fast, block_size=32, cache="prefix")),
            ("threshold 0.9 + dual cache, blocks 32", "table", dict(**fast, block_size=32, cache="dual"))]
    for b in (4, 16, 64):
        rows.append((f"blocks {b}, 1 token/step", "table", dict(steps=length, block_size=b)))
        rows.append((f"threshold 0.9 + dual cache, blocks {b}", "table", dict(**fast, block_size=b, cache="dual")))
    for rm in diff.REMASKING:
        for steps in (16, 32, 64, 128, 256):
            if steps <= length:
                rows.append((f"{rm}, {steps} steps", rm, dict(remasking=rm, steps=steps)))
    for tau in (0.5, 0.7, 0.8, 0.95, 0.99):
        rows.append((f"threshold {tau}", "threshold", dict(threshold=tau)))
    for f in (0.5, 1.0, 2.0):
        rows.append((f"factor {f}", "factor", dict(factor=f)))
    return rows


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dllm", default="checkpoints/dllm", help="dLLM run directory or .pt")
    p.add_argument("--gpt", default="checkpoints/gpt", help="GPT run directory or .pt (also the scorer)")
    p.add_argument("--data", required=True, help="the corpus both were trained on (held-out reference text)")
    p.add_argument("--len", type=int, default=256, help="characters per sample")
    p.add_argument("--num-samples", type=int, default=16, help="samples per configuration, one batch")
    p.add_argument("--temp", type=float, default=1.0, help="sampling temperature for every sampler")
    p.add_argument("--only-table", action="store_true", help="skip the frontier sweep")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args(argv)
    dllm, tok, _ = import_module("06_generate").load_dllm(args.dllm, "cpu")
    ckpt = train.load_checkpoint(args.gpt, kind="gpt")
    gpt, gtok = train.model_from_checkpoint(ckpt)
    assert tok.tokens == gtok.tokens, "the two runs must share a tokenizer"
    text = train.read_text(args.data)
    val = text[int(0.9 * len(text)) :]
    N, L = args.num_samples, args.len
    real = [val[i * (len(val) // N) : i * (len(val) // N) + L] for i in range(N)]
    score = lambda texts: dict(gen_bpc=gpt_lesson.generative_bpc(gpt, tok, texts),
                               distinct4=gpt_lesson.distinct_ngrams(texts),
                               entropy=gpt_lesson.char_entropy(texts))
    rows = [dict(name="held-out real text", group="reference", calls_per_char=float("nan"), chars_per_s=float("nan"),
                 **score(real))]
    g = torch.Generator().manual_seed(args.seed)
    start = torch.full((N, 1), tok.stoi.get("\n", 0))
    gpt_lesson.generate_gpt(gpt, start, 8, generator=g)  # warm-up
    out, dt = timed(lambda: gpt_lesson.generate_gpt(gpt, start, L - 1, temperature=args.temp, generator=g))
    texts = [tok.decode(r.tolist()) for r in out]
    rows.append(dict(name="GPT + KV cache", group="gpt", calls_per_char=1.0, chars_per_s=N * L / dt, **score(texts)))
    print(f"{rows[-1]['name']}: {rows[-1]['chars_per_s']:.0f} chars/s, gen bpc {rows[-1]['gen_bpc']:.3f}", flush=True)
    canvas = torch.full((N, L), dllm.config.mask_id)
    for name, group, kw in configs(L):
        if args.only_table and group != "table":
            continue
        g = torch.Generator().manual_seed(args.seed)
        (x, calls), dt = timed(lambda: diff.generate(dllm, canvas, dllm.config.mask_id, temperature=args.temp,
                                                     generator=g, **kw))
        texts = [tok.decode(r.tolist()) for r in x]
        rows.append(dict(name=f"dLLM {name}", group=group, calls_per_char=calls / L, chars_per_s=N * L / dt,
                         **score(texts)))
        r = rows[-1]
        print(f"{r['name']}: {r['chars_per_s']:.0f} chars/s, {calls} calls, gen bpc {r['gen_bpc']:.3f}, "
              f"distinct4 {r['distinct4']:.2f}", flush=True)

    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "decode.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\n| sampler | chars/s | model calls/char | gen bits/char | distinct 4-grams | char entropy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["group"] in ("reference", "gpt", "table"):
            print(f"| {r['name']} | {r['chars_per_s']:.0f} | {r['calls_per_char']:.3f} | {r['gen_bpc']:.3f} | "
                  f"{r['distinct4']:.3f} | {r['entropy']:.2f} |")
    plot(rows)


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = {r["group"]: r for r in rows if r["group"] in ("reference", "gpt")}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for group in list(diff.REMASKING) + ["threshold", "factor"]:
        pts = sorted((r["calls_per_char"], r["gen_bpc"]) for r in rows if r["group"] == group)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=group)
    ax.axhline(ref["gpt"]["gen_bpc"], color="k", ls="--", label="GPT samples (1 call/char)")
    ax.axhline(ref["reference"]["gen_bpc"], color="gray", ls=":", label="held-out real text")
    ax.set_xscale("log")
    ax.set_xlabel("model calls per generated character")
    ax.set_ylabel("generative bits/char under the GPT (lower = better)")
    ax.set_title("dLLM samplers: quality vs number of model calls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "sampler_frontier.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["group"] in ("table", "gpt"):
            ax.scatter(r["chars_per_s"], r["gen_bpc"], color="k" if r["group"] == "gpt" else "C0")
            ax.annotate(r["name"].replace("dLLM ", ""), (r["chars_per_s"], r["gen_bpc"]), fontsize=6)
    ax.axhline(ref["reference"]["gen_bpc"], color="gray", ls=":", label="held-out real text")
    ax.set_xscale("log")
    ax.set_xlabel("characters per second (batch of samples)")
    ax.set_ylabel("generative bits/char (lower = better)")
    ax.set_title("decoding speed vs quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "decode_speed.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
