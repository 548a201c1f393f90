"""Decoding speed and sample quality of trained dLLM and GPT runs, side by side.

    python bench/decode.py --dllm checkpoints/dllm --gpt checkpoints/gpt --data ../shared/data/tinyshakespeare.txt

For each sampler configuration: --num-samples samples of --len characters generated as one batch; characters/s,
model calls per character, generative bits/char under the trained GPT (lower = more plausible), distinct 4-grams
and character entropy (so repetition cannot win). References: the GPT's own samples and held-out real text.
The speed-table configurations are also timed at batch 1 (one user, one sample: what 06_generate.py does).
Writes bench/results/decode.csv, sampler_frontier.png (quality vs model calls) and decode_speed.png, and
prints Markdown tables and the two targets of the fast-decoding issue.
"""
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.checkpoints import load_model  # noqa: E402 (after the path is set)
from support.cli import ArgumentParser, UsageError, run_cli  # noqa: E402
from support.files import atomic_write, read_text  # noqa: E402
from support.metrics import write_csv  # noqa: E402

diff = import_module("04_diffusion")
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


def timed(fn, repeat=1):
    """Run fn `repeat` times; (last output, best seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default="checkpoints/dllm", help="dLLM run directory or .pt")
    p.add_argument("--gpt", default="checkpoints/gpt", help="GPT run directory or .pt (also the scorer)")
    p.add_argument("--data", required=True, help="the corpus both were trained on (held-out reference text)")
    p.add_argument("--len", type=int, default=256, help="characters per sample")
    p.add_argument("--num-samples", type=int, default=16, help="samples per configuration, one batch")
    p.add_argument("--temp", type=float, default=1.0, help="sampling temperature for every sampler")
    p.add_argument("--only-table", action="store_true", help="skip the frontier sweep")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args(argv)
    dllm, tok, _ = load_model("dllm", args.dllm, "cpu")
    gpt, gtok, _ = load_model("gpt", args.gpt, "cpu")
    if tok.tokens != gtok.tokens:
        raise UsageError("the two runs must share a tokenizer (train both on the same corpus)")
    text = read_text(args.data)
    val = text[int(0.9 * len(text)) :]
    N, L = args.num_samples, args.len
    real = [val[i * (len(val) // N) : i * (len(val) // N) + L] for i in range(N)]
    score = lambda texts: dict(gen_bpc=gpt_lesson.generative_bpc(gpt, tok, texts),
                               distinct4=gpt_lesson.distinct_ngrams(texts),
                               entropy=gpt_lesson.char_entropy(texts))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {N} samples x {L} chars per configuration")
    rows = [dict(name="held-out real text", group="reference", calls_per_char=float("nan"), chars_per_s=float("nan"),
                 chars_per_s_b1=float("nan"), **score(real))]

    def gpt_gen(n):
        g = torch.Generator().manual_seed(args.seed)
        start = torch.full((n, 1), tok.stoi.get("\n", 0))
        return gpt_lesson.generate_gpt(gpt, start, L - 1, temperature=args.temp, generator=g), L - 1

    def dllm_gen(n, kw):
        g = torch.Generator().manual_seed(args.seed)
        canvas = torch.full((n, L), dllm.config.mask_id)
        fast = {"threshold", "factor", "cache"} & set(kw)  # lesson 04's fast path, else its plain sampler
        sampler = diff.generate_fast if fast else diff.generate
        return sampler(dllm, canvas, dllm.config.mask_id, temperature=args.temp, generator=g, **kw)

    def measure(name, group, gen):  # gen(n) -> (ids (n, L), model calls)
        gen(1)  # warm-up: first-call allocations are not decoding speed
        (x, calls), dt = timed(lambda: gen(N))
        dt1 = timed(lambda: gen(1), repeat=3)[1] if group in ("gpt", "table") else float("nan")
        rows.append(dict(name=name, group=group, calls_per_char=calls / L, chars_per_s=N * L / dt,
                         chars_per_s_b1=L / dt1, **score([tok.decode(r.tolist()) for r in x])))
        r = rows[-1]
        print(f"{name}: {r['chars_per_s']:.0f} chars/s (batch 1: {r['chars_per_s_b1']:.0f}), {calls} calls, "
              f"gen bpc {r['gen_bpc']:.3f}, distinct4 {r['distinct4']:.2f}", flush=True)

    measure("GPT + KV cache", "gpt", gpt_gen)
    for name, group, kw in configs(L):
        if not (args.only_table and group != "table"):
            measure(f"dLLM {name}", group, lambda n, kw=kw: dllm_gen(n, kw))

    write_csv(RESULTS / "decode.csv", rows, list(rows[0]))
    print(f"\n| sampler | chars/s, batch {N} | chars/s, batch 1 | model calls/char | gen bits/char | distinct 4-grams "
          f"| char entropy |\n|---|---|---|---|---|---|---|")
    for r in rows:
        if r["group"] in ("reference", "gpt", "table"):
            print(f"| {r['name']} | {r['chars_per_s']:.0f} | {r['chars_per_s_b1']:.0f} | {r['calls_per_char']:.3f} | "
                  f"{r['gen_bpc']:.3f} | {r['distinct4']:.3f} | {r['entropy']:.2f} |")
    targets(rows)
    plot(rows)


def targets(rows):
    """The fast-decoding issue's two targets, from the measured rows (batch-N throughput).

    Returns (fast, ok): the fastest dLLM cache row within 5% of vanilla's gen bpc, and the fastest dLLM row at
    or below the GPT's gen bpc (None where there is none)."""
    by = {r["name"]: r for r in rows}
    vanilla, gpt = by["dLLM vanilla confidence, 1 token/step"], by["GPT + KV cache"]
    dllm = [r for r in rows if r["name"].startswith("dLLM")]
    fastest = lambda rs: max(rs, key=lambda r: r["chars_per_s"]) if rs else None
    fast = fastest([r for r in dllm if "cache" in r["name"] and r["gen_bpc"] <= 1.05 * vanilla["gen_bpc"]])
    print("\ntargets:")
    if fast:
        print(f"  fast vs vanilla: {fast['name']} at {fast['chars_per_s'] / vanilla['chars_per_s']:.1f}x the chars/s, "
              f"gen bpc {fast['gen_bpc']:.3f} vs {vanilla['gen_bpc']:.3f} (target >= 4x, within 5%)")
    else:
        print("  fast vs vanilla: no threshold + cache configuration is within 5% of vanilla's gen bpc")
    ok = fastest([r for r in dllm if r["gen_bpc"] <= gpt["gen_bpc"]])
    if ok:
        print(f"  dLLM vs GPT: {ok['name']} at {ok['chars_per_s'] / gpt['chars_per_s']:.2f}x the GPT's chars/s "
              f"at gen bpc {ok['gen_bpc']:.3f} <= {gpt['gen_bpc']:.3f} (target >= 1.5x)")
    else:
        best = min(dllm, key=lambda r: r["gen_bpc"])
        top = fastest(dllm)
        print(f"  dLLM vs GPT: no dLLM configuration reaches the GPT's gen bpc {gpt['gen_bpc']:.3f}; the best, "
              f"{best['name']}, scores {best['gen_bpc']:.3f} at {best['chars_per_s'] / gpt['chars_per_s']:.2f}x "
              f"the GPT's chars/s; the fastest, {top['name']}, runs at {top['chars_per_s'] / gpt['chars_per_s']:.2f}x "
              f"with gen bpc {top['gen_bpc']:.3f}")
    return fast, ok


def plot(rows):
    """sampler_frontier.png (quality vs model calls) and decode_speed.png (quality vs chars/s), from `rows`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = {r["group"]: r for r in rows if r["group"] in ("reference", "gpt")}

    def save(fig, ax, xlabel, ylabel, title, name):
        ax.axhline(ref["reference"]["gen_bpc"], color="gray", ls=":",
                   label=f"held-out real text (distinct 4-grams {ref['reference']['distinct4']:.2f})")
        ax.set(xscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        atomic_write(RESULTS / name, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for group in list(diff.REMASKING) + ["threshold", "factor"]:
        pts = sorted((r["calls_per_char"], r["gen_bpc"]) for r in rows if r["group"] == group)
        d4 = [r["distinct4"] for r in rows if r["group"] == group]
        if pts:  # repetition lowers gen bpc: the legend shows how repetitive each sampler's text is
            ax.plot(*zip(*pts), marker="o", label=f"{group} (distinct 4-grams {min(d4):.2f}-{max(d4):.2f})")
    ax.axhline(ref["gpt"]["gen_bpc"], color="k", ls="--",
               label=f"GPT samples, 1 call/char (distinct 4-grams {ref['gpt']['distinct4']:.2f})")
    save(fig, ax, "model calls per generated character", "generative bits/char under the GPT (lower = better)",
         "dLLM samplers: quality vs number of model calls", "sampler_frontier.png")

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in rows:
        if r["group"] in ("table", "gpt"):
            ax.scatter(r["chars_per_s"], r["gen_bpc"], color="k" if r["group"] == "gpt" else "C0")
            ax.annotate(r["name"].replace("dLLM ", ""), (r["chars_per_s"], r["gen_bpc"]), fontsize=6)
    save(fig, ax, "characters per second (batch of samples)", "generative bits/char (lower = better)",
         "decoding speed vs quality", "decode_speed.png")


if __name__ == "__main__":
    run_cli(main)
