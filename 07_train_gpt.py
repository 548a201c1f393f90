"""Lesson 07: the GPT baseline, and an honest dLLM-vs-GPT comparison.

Same Transformer (with the causal mask), same data, tokenizer, presets, optimizer, schedule and training
loop as 05; only the objective (next-token prediction) and the sampler (left to right, with a KV cache)
differ.

    python 07_train_gpt.py                                      # train -> checkpoints/gpt
    python 07_train_gpt.py --generate --prompt "ROMEO:" --tokens 200
    python 07_train_gpt.py --compare checkpoints/dllm checkpoints/gpt   # compare.png + table

Comparing likelihoods: the GPT's validation number is its exact NLL in bits/char. The dLLM's is the NELBO,
an UPPER bound on its NLL (lesson 04); its true NLL is lower by an unknown amount.
"""
import math
import sys
from collections import Counter
from importlib import import_module

import torch
import torch.nn.functional as F

from support import checkpoints, metrics, pretrained, runtime
from support.cli import ArgumentParser, UsageError, encode_or_fail, parse_args_given, positive_int, run_cli
from support.files import atomic_write, read_text

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")


class NextTokenObjective:
    """GPT: exact next-token NLL, trained and evaluated on the same windows as the dLLM."""

    kind = "gpt"

    def __init__(self, fim_rate=0.0):
        self.fim_rate = fim_rate

    @property
    def model_overrides(self):  # GPT vs dLLM: causal mask, no [MASK] token (FIM: three sentinel input rows)
        return dict(causal=True, mask_token=False, sentinels=3 if self.fim_rate else None)

    def configure(self, args):  # --fim, also when a resumed run brings it
        return NextTokenObjective(args.fim or 0.0)

    def loss(self, model, x, config=None):  # x: (B, L+1): predict token i+1 from tokens <= i
        if self.fim_rate:  # --fim: a fraction of the sequences rearranged prefix-suffix-middle (below)
            x = fim_batch(x, self.fim_rate, config)
        logits = model(x[:, :-1])  # (B, L, V)
        targets = x[:, 1:].masked_fill(x[:, 1:] >= config.vocab_size, -100) if self.fim_rate else x[:, 1:]
        # GPT vs dLLM: the objective is next-token cross-entropy, the exact NLL
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)

    @torch.no_grad()
    def val_bits(self, model, windows, K=None, config=None):  # exact -log2 p per token; K is a dLLM notion
        total = 0.0
        for chunk in windows.split(64):
            logits = model(chunk[:, :-1])
            total += F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum").item()
        return total / windows[:, 1:].numel() / math.log(2)

    def sample(self, model, tokenizer, n, generator):
        start = torch.tensor([[tokenizer.stoi.get("\n", 0)]], device=next(model.parameters()).device)
        # GPT vs dLLM: the sampler writes left to right, one character per model call
        return tokenizer.decode(generate_gpt(model, start, n - 1, generator=generator)[0].tolist())


@torch.no_grad()
def generate_gpt(model, prompt, n_new, temperature=1.0, top_k=0, top_p=1.0, generator=None, use_cache=True):
    """Append n_new tokens to prompt (B, P), one at a time. Returns (B, P + n_new).

    With the KV cache each new token costs one position of compute: its query attends to the stored keys
    and values of everything before it. When the context is full the window slides by half and is re-read.
    Without the cache every token re-runs the whole (cropped) context: same tokens, far more compute.
    """
    ctx = model.config.block_size
    x, cache = prompt, None
    for _ in range(n_new):
        if not use_cache:
            logits = model(x[:, -ctx:])[:, -1]
        elif cache is None or cache.filled == ctx:  # (re)fill the cache with the last part of the text
            window = x[:, -ctx:] if cache is None else x[:, -(ctx // 2) :]
            cache = tfm.KVCache(model.config, x.size(0), ctx, x.device)
            logits = model(window, cache=cache, start=0)[:, -1]
        else:  # one new position: (B, 1)
            logits = model(x[:, -1:], cache=cache, start=cache.filled)[:, -1]
        nxt = diff.sample_tokens(logits, temperature, top_k, top_p, generator)  # (B,)
        x = torch.cat([x, nxt[:, None]], dim=1)
    return x


# ---------------------------------------------------------------------------------------------------------
# Judging samples: generative bits/char under the GPT, and how repetitive they are
# ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def generative_bpc(gpt, tokenizer, texts):
    """Mean -log2 p_GPT per character of `texts` (each scored after its first character; lower = more
    plausible to the GPT). Texts longer than the context are scored in windows."""
    ctx = gpt.config.block_size
    device = next(gpt.parameters()).device
    nll, n = 0.0, 0
    for text in texts:
        ids = torch.tensor(tokenizer.encode(text), device=device)
        for s in range(1, len(ids), ctx):  # targets ids[s : s+ctx], each predicted from what precedes it
            inp, tgt = ids[s - 1 : s - 1 + ctx], ids[s : s + ctx]
            logits = gpt(inp[None])[0, : len(tgt)]
            nll += F.cross_entropy(logits.float(), tgt, reduction="sum").item()
            n += len(tgt)
    return nll / max(n, 1) / math.log(2)


def distinct_ngrams(texts, n=4):
    """Unique / total character n-grams across the texts: 1.0 = never repeats, near 0 = loops."""
    grams = [t[i : i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def char_entropy(texts):
    """Entropy (bits) of the character distribution of the texts: collapses when a sampler repeats."""
    c = Counter("".join(texts))
    total = sum(c.values())
    return -sum(v / total * math.log2(v / total) for v in c.values())


# ---------------------------------------------------------------------------------------------------------
# Fill in the middle (FIM; Bavarian et al. 2022): the fair infilling baseline for a GPT
# ---------------------------------------------------------------------------------------------------------
# A GPT sees only the left of a gap. Trained with --fim 0.5, half its sequences are cut at two random points
# into prefix, middle, suffix and rearranged PSM: <PRE> prefix <SUF> suffix <MID> middle. Still next-token
# prediction, but the middle is now predicted after seeing both sides. Same model, data and compute.
def sentinel_ids(config):
    """<PRE>, <SUF>, <MID>: the input rows after the real tokens (the GPT has no [MASK])."""
    first = config.vocab_size + int(config.mask_token)
    return first, first + 1, first + 2


def to_psm(x, a, b, config):
    """x (B, n) cut at a <= b (B, 1) into prefix x[:a], middle x[a:b], suffix x[b:] -> (B, n + 3), each row
    <PRE> prefix <SUF> suffix <MID> middle. One gather, no Python loop: stays on the GPU."""
    n = x.size(1)
    j = torch.arange(n + 3, device=x.device)[None]  # (1, n+3) output positions
    at_suf, at_mid = a + 1, a + 2 + (n - b)  # (B, 1) where <SUF> and <MID> go
    src = torch.where(j <= a, j - 1, torch.where(j < at_mid, b + j - (a + 2), a + j - (at_mid + 1)))  # (B, n+3)
    out = x.gather(1, src.clamp(0, n - 1))
    pre, suf, mid = sentinel_ids(config)
    return torch.where(j == 0, pre, torch.where(j == at_suf, suf, torch.where(j == at_mid, mid, out)))


def fim_batch(x, rate, config):
    """(B, L+1) -> (B, L+1): each row, with probability `rate`, becomes the PSM form of its first L-2 tokens,
    cut at two uniform random points."""
    B, n = x.size(0), x.size(1) - 3
    cuts = torch.randint(0, n + 1, (B, 2), device=x.device).sort(1).values  # (B, 2)
    psm = to_psm(x[:, :n], cuts[:, :1], cuts[:, 1:], config)
    return torch.where(torch.rand(B, 1, device=x.device) < rate, psm, x)


@torch.no_grad()
def gpt_span_bits(model, windows, span, fim=False):
    """Exact -log2 p(x[span] | context) per token with a GPT, averaged over windows (N, L).

    fim=False: each scored token given everything to its left (all a plain GPT can use); span (lo, hi) with
      lo >= 1, or a (L,) bool mask (several gaps) that leaves position 0 out.
    fim=True: a FIM-trained GPT given <PRE> x[:lo] <SUF> x[hi:] <MID>, then the middle left to right; one span."""
    N, L = windows.shape
    scored = diff.span_mask(span, L).to(windows.device)  # (L,)
    if fim:  # the middle becomes the last hi - lo tokens
        lo, hi = span
        cut = lambda v: torch.full((N, 1), v, device=windows.device)
        windows = to_psm(windows, cut(lo), cut(hi), model.config)  # (N, L + 3)
        scored = torch.arange(L + 3, device=windows.device) >= L + 3 - (hi - lo)
    if windows.size(1) - 1 > model.config.block_size or scored[0]:
        raise ValueError(f"span {span} of windows of {L}: needs position 0 unscored without FIM (it has no "
                         "context), L + 2 <= the context with it")
    total = 0.0
    for chunk in windows.split(64):
        logits = model(chunk[:, :-1])[:, scored[1:]]  # (n, scored, V): position i - 1 predicts token i
        total += F.cross_entropy(logits.float().flatten(0, 1), chunk[:, scored].flatten(), reduction="sum").item()
    return total / (N * int(scored.sum())) / math.log(2)


# ---------------------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------------------
def run_summary(run_dir, kind):
    ckpt = checkpoints.load_checkpoint(run_dir, kind=kind)
    rows = metrics.read_metrics(run_dir)
    model = tfm.Transformer(tfm.ModelConfig(**ckpt["config"]))
    return {"kind": ckpt["kind"], "params": model.num_params(), "steps": rows[-1]["step"],
            "wall_s": rows[-1]["elapsed_s"], "best_bpc": min(r["val_bpc"] for r in rows), "rows": rows,
            "preset": ckpt["args"].get("preset"), "ckpt": ckpt}


def same_window_bits(dllm_ckpt, gpt_ckpt, text, n_windows=16):
    """Three likelihoods in bits/char on the same n validation windows of `text` (the corpus both trained on):
    the dLLM's NELBO (upper bound), the dLLM's exact NLL decoded left to right, and the GPT's exact NLL.

    All three score exactly the same characters, 1..L-1 of each window, given character 0: the GPT needs one
    character to start from, so the dLLM is given it too (span=(1, L): never masked, never scored)."""
    (dm, tok), (gm, gtok) = checkpoints.model_from_checkpoint(dllm_ckpt), checkpoints.model_from_checkpoint(gpt_ckpt)
    if tok.tokens != gtok.tokens:
        raise UsageError("the two runs use different tokenizers: train both on the same corpus")
    _, val, chars_per_token = train.split_corpus(text, tok, dllm_ckpt["args"].get("split", "tail"))
    L = min(dm.config.block_size, gm.config.block_size)
    w = train.eval_windows(val, n_windows, L)  # (n, L)
    bits = {"dLLM NELBO, K=32 (upper bound)": diff.nelbo_bits(dm, w, dm.config.mask_id, K=32, span=(1, L)),
            "dLLM decoded left to right (exact)": diff.left_to_right_bits(dm, w, dm.config.mask_id, span=(1, L)),
            "GPT (exact)": NextTokenObjective().val_bits(gm, w)}  # predicts w[:, 1:] from w[:, :-1]
    return {k: v / chars_per_token for k, v in bits.items()}, len(w)


def compare(dllm_dir, gpt_dir, out="compare.png", text=None, n_windows=16):
    """compare.png (val bits/char vs step and vs seconds, from the runs' metrics.csv) and a table.

    With `text` (the corpus), also the likelihoods of same_window_bits: the bound beside exact numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [run_summary(dllm_dir, "dllm"), run_summary(gpt_dir, "gpt")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for r in runs:
        label = "dLLM NELBO (upper bound)" if r["kind"] == "dllm" else "GPT exact NLL"
        for ax, x in zip(axes, ("step", "elapsed_s")):
            ax.plot([row[x] for row in r["rows"]], [row["val_bpc"] for row in r["rows"]], marker="o", ms=3, label=label)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training seconds (excluding evaluation)")
    axes[0].set_ylabel("validation bits/char")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{dllm_dir} vs {gpt_dir}")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    print("| model | preset | params | steps | train s | best val bits/char |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        note = " (upper bound)" if r["kind"] == "dllm" else " (exact)"
        print(f"| {r['kind']} | {r['preset']} | {r['params']:,} | {r['steps']} | {r['wall_s']:.0f} "
              f"| {r['best_bpc']:.3f}{note} |")
    d, g = runs
    print(f"dLLM bound / GPT: {d['best_bpc'] / g['best_bpc']:.3f}  -> wrote {out}")
    if text is not None:
        d["same_windows"], n = same_window_bits(d["ckpt"], g["ckpt"], text, n_windows)
        print(f"\nbest checkpoints on the same {n} validation windows (bits/char):")
        for name, b in d["same_windows"].items():
            print(f"  {name:<36} {b:.3f}")
    return runs


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    train.add_train_args(p, train.ROOT / "checkpoints" / "gpt")  # mode 1 (default): train
    p.add_argument("--fim", type=float, metavar="RATE", help="train a fill-in-the-middle GPT: this fraction of "
                   "sequences in PSM order (Bavarian et al. 2022 use 0.5); default: off; default --out "
                   "checkpoints/gpt_fim")
    g = p.add_argument_group("--generate: sample from a trained GPT (also uses --seed, --device)")
    g.add_argument("--generate", action="store_true", help="generate from a trained GPT instead of training")
    g.add_argument("--checkpoint", help="a .pt file, run directory or Hub export (default: your run in "
                   "checkpoints/gpt/ if there is one, else the shipped GPT)")
    g.add_argument("--pretrained", action="store_true", help="use the shipped GPT even if you have trained your own")
    gen.add_hub_args(g)
    g.add_argument("--prompt", default="\n", help="text to continue")
    g.add_argument("--tokens", type=positive_int, default=256, help="tokens to generate")
    gen.add_sampling_args(g)  # --temp, --topk, --top-p, --num-samples: the same flags and checks as 06
    g.add_argument("--no-cache", action="store_true", help="recompute the context for every token")
    c = p.add_argument_group("--compare: two finished runs side by side (with --data: exact likelihoods too)")
    c.add_argument("--compare", nargs=2, metavar=("DLLM_DIR", "GPT_DIR"), help="compare two runs; write compare.png")
    c.add_argument("--compare-out", default="compare.png", help="where --compare writes its figure")
    c.add_argument("--compare-windows", type=positive_int, default=16,
                   help="validation windows for the exact likelihoods (L model calls each)")
    args = parse_args_given(p, argv)
    if args.compare:  # with --data: also exact likelihoods on the same windows (a minute on a CPU)
        return compare(*args.compare, out=args.compare_out, text=read_text(args.data) if args.data else None,
                       n_windows=args.compare_windows)
    if not args.generate:
        if args.fim is not None and not 0 < args.fim <= 1:
            raise UsageError(f"--fim must be in (0, 1], got {args.fim}")
        if args.fim and "out" not in args.given:
            args.out = str(train.ROOT / "checkpoints" / "gpt_fim")
        return train.train(args, NextTokenObjective())
    gen.check_sampling_args(args)
    path = None if args.from_hub else pretrained.choose(args.checkpoint, train.ROOT / "checkpoints" / "gpt",
                                                        "shakespeare-gpt", args.pretrained,
                                                        log=lambda s: print(s, file=sys.stderr))
    model, tok, _ = checkpoints.load_model("gpt", path, args.device, args.from_hub, args.filename)
    if not args.prompt:
        raise UsageError("--prompt must be non-empty: the GPT continues text")
    device = next(model.parameters()).device
    prompt = torch.tensor([encode_or_fail(tok, args.prompt, "--prompt")], device=device)
    prompt = prompt.repeat(args.num_samples, 1)  # (N, P)
    g = torch.Generator(device).manual_seed(args.seed)  # on the model's device: no copies per token
    with runtime.autocast(device.type, runtime.resolve_dtype("auto", device.type)):  # as evaluation runs
        out = generate_gpt(model, prompt, args.tokens, args.temp, args.topk, args.top_p, g, use_cache=not args.no_cache)
    texts = [tok.decode(row.tolist()) for row in out]
    for i, t in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(t)
    return texts


if __name__ == "__main__":
    run_cli(main)
