"""Where the dLLM wins (2): filling a gap given both sides, against a plain GPT and a fill-in-the-middle GPT.

    python bench/fim.py --fim 0.5 --dtype fp32 --out checkpoints/sweep/gpt_fim     # the FIM baseline, once
    python bench/infill.py                                    # the runs of bench/block_sweep.py + that one
    python bench/infill.py --couplets --data data/tamil/thirukkural.txt --dllm D --gpt G --fim F   # reversal
    python bench/infill.py --split interleaved --windows 16 --data data/tamil/thirukkural.txt --dllm D --gpt G --fim F

Exact conditional bits/char of a masked span given everything around it, on the same validation characters for
every model, in windows of L - 3 tokens (so the FIM layout, three sentinels longer, fits the same context):
  dLLM exact     the chain rule inside the gap, left to right, both sides visible (lesson 04, span=...)
  dLLM NELBO     its upper bound (K = 32)
  GPT, left      what a plain GPT can do: each gap token given the text to its left only (exact)
  FIM-GPT        a GPT trained with --fim 0.5 (Bavarian et al. 2022) given <PRE> left <SUF> right <MID> (exact)
Gaps of 1, 4, 16 and 64 characters in the middle of each window, and a template of four 8-character gaps (no
FIM row: PSM has one middle). --couplets: the reversal case, the first line of a couplet given the second (and
the couplets before it): windows end where a couplet ends. Writes <out-dir>/infill.csv and infill.png and prints
the table and a few filled gaps from each model.
"""
from importlib import import_module
from pathlib import Path

import torch

import common  # first: the repository on the import path

# isort: split
from support.cli import ArgumentParser, UsageError, out_dir, positive_int, run_cli
from support.files import check_out_dir, read_text, save_figure
from support.metrics import write_csv
from support.runtime import machine_name

ROOT = common.ROOT

diff = import_module("04_diffusion")
train = import_module("05_train")
gpt_lesson = import_module("07_train_gpt")
fim_lesson = import_module("fim")
SWEEP = ROOT / "checkpoints" / "sweep"


def gap_windows(val, n, W, spans):
    """(n, W) windows spread over the validation tokens; for each span length s, the gap centred in them."""
    w = train.eval_windows(val, n, W)
    return w, {f"gap of {s}": (W // 2 - s // 2, W // 2 - s // 2 + s) for s in spans}


def held_out(text, tok, split):
    """The tokens gaps are cut from, never trained on: the last 10% (split "tail", the validation part) or the
    interleaved split's test paragraphs (held out from the runs' choice of checkpoint too)."""
    if split == "tail":
        return train.split_corpus(text, tok, "tail")[1]
    return train.encode_ids(tok, train.interleaved_split(text)[2])


def couplet_windows(text, tok, W, n):
    """Reversal: (n, W) windows of the interleaved split's test text (held out from training and from the runs'
    model selection) that end where a couplet ends, and per window the span of that couplet's first line."""
    out = []
    test_text = train.interleaved_split(text)[2]
    couplets = test_text.strip("\n").split("\n\n")
    for i in range(1, len(couplets)):
        before = "\n\n".join(couplets[:i]) + "\n\n"
        first, second = couplets[i].split("\n", 1)
        ids = tok.encode(before + first + "\n" + second)
        if len(ids) < W:
            continue
        n_first, n_rest = len(tok.encode(first)), len(tok.encode("\n" + second))
        lo = W - n_rest - n_first
        out.append((torch.tensor(ids[-W:]), (lo, lo + n_first)))
        if len(out) == n:
            break
    return out


def span_chars(tok, w, span):
    """Characters inside the span over all windows w (n, W): a grapheme token is 1-3 characters, a char one."""
    inside = torch.zeros(w.shape[-1], dtype=torch.bool)
    if isinstance(span, tuple):
        inside[span[0] : span[1]] = True
    else:
        inside = span
    return sum(len(tok.decode(row[inside].tolist())) for row in w), int(inside.sum()) * len(w)


def scores(models, tok, w, span, K):
    """bits per character of the span for each model that can score it (the models score per token)."""
    dllm, gpt, fim = models
    row = {"dLLM exact": diff.left_to_right_bits(dllm, w, dllm.config.mask_id, span=span),
           "dLLM NELBO": diff.nelbo_bits(dllm, w, dllm.config.mask_id, K=K, span=span),
           "GPT, left only": fim_lesson.gpt_span_bits(gpt, w, span)}
    if fim is not None and isinstance(span, tuple):
        row["FIM-GPT"] = fim_lesson.gpt_span_bits(fim, w, span, fim=True)
    chars, tokens = span_chars(tok, w, span)
    return {k: v * tokens / chars for k, v in row.items()}


@torch.no_grad()
def fill_examples(models, tok, w, span, n=3, seed=0):
    """What each model writes into the same gap: text with the filled part in [brackets]."""
    dllm, gpt, fim = models
    lo, hi = span
    g = lambda: torch.Generator().manual_seed(seed)
    show = lambda row: tok.decode(row[:lo].tolist()) + "[" + tok.decode(row[lo:hi].tolist()) + "]" + \
        tok.decode(row[hi:].tolist())
    out = []
    for x in w[:n]:
        canvas = x.clone()[None]
        canvas[:, lo:hi] = dllm.config.mask_id
        ex = {"real text": show(x)}
        ex["dLLM"] = show(diff.generate(dllm, canvas, hi - lo, diff.Sampling(order="random", generator=g()))[0][0])
        left = gpt_lesson.generate_gpt(gpt, x[None, :lo], hi - lo, diff.Sampling(generator=g()))[0]
        ex["GPT, left only"] = show(torch.cat([left, x[hi:]]))
        if fim is not None:
            cut = lambda v: torch.tensor([[v]])
            psm = fim_lesson.to_psm(x[None], cut(lo), cut(hi), fim.config)[:, : len(x) + 3 - (hi - lo)]
            mid = gpt_lesson.generate_gpt(fim, psm, hi - lo, diff.Sampling(generator=g()))[0, -(hi - lo) :]
            ex["FIM-GPT"] = show(torch.cat([x[:lo], mid, x[hi:]]))
        out.append(ex)
    return out


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"infill.csv": "case,", "infill.png": None, "infill_couplets.csv": "case,",
           "infill_couplets_each.csv": "couplet,"}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default=str(SWEEP / "dllm"), help="dLLM run or .pt")
    p.add_argument("--gpt", default=str(SWEEP / "gpt"), help="GPT run or .pt")
    p.add_argument("--fim", default=str(SWEEP / "gpt_fim"), help="FIM-GPT run or .pt ('none' to leave it out)")
    p.add_argument("--data", default=str(ROOT / "data" / "tinyshakespeare.txt"), help="the corpus all trained on")
    p.add_argument("--windows", type=positive_int, default=32, help="validation windows per gap length")
    p.add_argument("--spans", nargs="+", type=positive_int, default=[1, 4, 16, 64], help="gap lengths in tokens")
    p.add_argument("--K", type=positive_int, default=32, help="NELBO draws per window")
    p.add_argument("--split", choices=["tail", "interleaved"], default="tail", help="how the runs split --data: "
                   "gaps come from the held-out part (tail: the last 10%%; interleaved: the test paragraphs)")
    p.add_argument("--couplets", action="store_true", help="the reversal case: a couplet's first line given the rest "
                   "(always the interleaved split's test couplets)")
    p.add_argument("--out-dir", type=out_dir, default=str(ROOT / "bench" / "results"), help="CSV and figure go here")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, {k: v for k, v in OUTPUTS.items() if k.startswith("infill_couplets") == args.couplets})
    dllm, tok, _ = common.load_run("dllm", args.dllm)
    gpt, gtok, info = common.load_run("gpt", args.gpt)
    fim = None if args.fim == "none" else common.load_run("gpt", args.fim)[0]
    if gtok.tokens != tok.tokens or (fim is not None and not fim.config.sentinels):
        raise UsageError("--dllm and --gpt must share a tokenizer, and --fim must be trained with bench/fim.py")
    models, W = (dllm, gpt, fim), min(dllm.config.block_size, gpt.config.block_size) - 3
    text = read_text(args.data)
    rows = []
    if args.couplets:
        cases = couplet_windows(text, tok, W, args.windows)
        if not cases:
            raise UsageError(f"no couplets with {W} tokens before their end in the test split of {args.data}")
        row, each = per_case_scores(models, tok, cases, args.K, unit="couplet")
        rows.append(dict(case="first line given the second", tokens=sum(s[1] - s[0] for _, s in cases), **row))
        write_csv(Path(args.out_dir) / "infill_couplets_each.csv", each, list(each[0]))
        examples = [fill_examples(models, tok, x[None], span, n=1)[0] for x, span in cases[:3]]
    else:
        held = held_out(text, tok, args.split)
        if len(held) < args.windows * W:
            raise UsageError(f"--windows {args.windows} of {W} tokens need {args.windows * W} held-out tokens; "
                             f"{args.data} has {len(held)}: ask for fewer")
        if max(args.spans) > W:
            raise UsageError(f"--spans {max(args.spans)} does not fit a window of {W} tokens")
        w, gaps = gap_windows(held, args.windows, W, args.spans)
        spread = []  # per gap: is the difference bigger than the window-to-window noise?
        for name, span in gaps.items():
            row, each = per_case_scores(models, tok, [(x, span) for x in w], args.K)
            rows.append(dict(case=name, tokens=span[1] - span[0], **row))
            print(rows[-1], flush=True)
            spread += [f"{name}: " + paired(each, k, "dLLM exact", "windows") for k in row if "GPT" in k]
        template = torch.zeros(W, dtype=torch.bool)
        for c in range(W // 5, W, W // 5)[:4]:
            template[c : c + 8] = True
        rows.append(dict(case="template: four gaps of 8", tokens=int(template.sum()),
                         **scores(models, tok, w, template, args.K)))
        examples = fill_examples(models, tok, w, gaps[f"gap of {16 if 16 in args.spans else args.spans[0]}"])
    out, machine = Path(args.out_dir), machine_name()
    cols = list(dict.fromkeys(k for r in rows for k in r))
    write_csv(out / ("infill_couplets.csv" if args.couplets else "infill.csv"), rows, cols)
    print(f"\nbits/char of the gap ({machine}; {args.windows} windows of {W})\n| case | " + " | ".join(cols[2:])
          + " |\n|---|" + "---|" * (len(cols) - 2))
    for r in rows:
        print(f"| {r['case']} | " + " | ".join(f"{r[c]:.3f}" if c in r else "" for c in cols[2:]) + " |")
    if args.couplets:  # is the difference bigger than the couplet-to-couplet noise?
        for k in cols[2:]:
            if k != "dLLM NELBO":
                print(paired(each, k, "dLLM NELBO"))
    else:
        print("\n" + "\n".join(spread))
    for i, ex in enumerate(examples):
        print(f"\n--- example {i + 1}")
        for k, v in ex.items():
            print(f"{k:>15}: {v[max(0, v.index('[') - 60) : v.index(']') + 60]!r}")
    if not args.couplets:
        plot_gaps(rows, out, machine, W)
    return rows, examples


def per_case_scores(models, tok, cases, K, unit="window"):
    """Score each (window, span) alone: the character-weighted mean bits/char per model over all cases, and the
    per-case rows (`unit` index, characters, bits/char per model) for paired differences."""
    bits = [scores(models, tok, x[None], span, K) for x, span in cases]
    chars = [span_chars(tok, x[None], span)[0] for x, span in cases]
    each = [{unit: i, "chars": c, **b} for i, (b, c) in enumerate(zip(bits, chars))]
    return {k: sum(b[k] * c for b, c in zip(bits, chars)) / sum(chars) for k in bits[0]}, each


def paired(each, a, b, unit="couplets"):
    """Model a minus model b on the same couplets: the character-weighted mean difference in bits/char, its
    standard error over couplets, and on how many couplets b is lower."""
    w = torch.tensor([e["chars"] for e in each], dtype=torch.float64)
    d = torch.tensor([e[a] - e[b] for e in each], dtype=torch.float64)
    mean = (w * d).sum() / w.sum()
    se = ((w**2 * (d - mean) ** 2).sum()).sqrt() / w.sum()
    return (f"{a} - {b}: {mean:+.3f} +- {se:.3f} bits/char (standard error over {len(each)} {unit}); "
            f"{b} is lower on {int((d > 0).sum())} of them")


def plot_gaps(rows, out, machine, W):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gaps = [r for r in rows if r["case"].startswith("gap of")]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, style in (("dLLM exact", "o-"), ("dLLM NELBO", "o:"), ("GPT, left only", "s-"), ("FIM-GPT", "^-")):
        if k in gaps[0]:
            ax.plot([r["tokens"] for r in gaps], [r[k] for r in gaps], style, label=k)
    ax.set(xscale="log", xlabel="gap length (tokens: characters, or Tamil graphemes)",
           ylabel="bits/char of the gap (lower = better)")
    ax.set_xticks([r["tokens"] for r in gaps], [str(r["tokens"]) for r in gaps])
    ax.set_title(f"Filling a gap given both sides, windows of {W}\n{machine}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "infill.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    run_cli(main)
