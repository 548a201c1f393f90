"""Lesson 07: the GPT baseline, and an honest dLLM-vs-GPT comparison.

Same Transformer (with the causal mask), same data, tokenizer, presets, optimizer, schedule and
training loop as 05; only the objective (next-token prediction) and the sampler (left to right, with
a KV cache) differ.

    python 07_train_gpt.py                        # train (05's flags) -> checkpoints/gpt
    python 07_train_gpt.py generate --prompt "ROMEO:" --tokens 200
    python 07_train_gpt.py compare checkpoints/dllm checkpoints/gpt   # table + compare.png

Comparing likelihoods: the GPT's validation number is its exact NLL in bits/char. The dLLM's is
the NELBO, an UPPER bound on its NLL (lesson 04); its true NLL is lower by an unknown amount.
Judging samples and the fill-in-the-middle GPT are measurements, not this lesson:
bench/common.py and bench/fim.py.
"""
import math
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

from support import checkpoints, generate_args, metrics, pretrained, runtime
from support.cli import (
    UsageError,
    encode_or_fail,
    free_text,
    int_in,
    parse_args_given,
    positive_int,
    run_cli,
    subcommands,
)
from support.files import check_output, read_text, save_figure

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")


class NextTokenObjective:
    """GPT: exact next-token NLL, trained and evaluated on the same windows as the
    dLLM (05's members)."""

    kind = name = "gpt"
    trainer = "07_train_gpt.py or 08_train_tamil.py --model gpt"
    # GPT vs dLLM: causal mask, no [MASK] token
    model_overrides = dict(causal=True, mask_token=False)

    def loss(self, model, x, config):  # x: (B, L+1): predict token i+1 from tokens <= i
        logits = model(x[:, :-1])  # (B, L, V)
        # GPT vs dLLM: the objective is next-token cross-entropy, the exact NLL
        return F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())

    @torch.no_grad()
    # exact -log2 p per token; K is a dLLM notion
    def val_bits(self, model, windows, K=None, config=None):
        total = 0.0
        for chunk in windows.split(64):
            logits = model(chunk[:, :-1])
            total += F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten(),
                                     reduction="sum").item()
        return total / windows[:, 1:].numel() / math.log(2)

    def score(self, model, windows):
        return {}

    def sample(self, model, tokenizer, n, generator):
        start = torch.tensor([[tokenizer.stoi.get("\n", 0)]],
                             device=next(model.parameters()).device)
        # GPT vs dLLM: the sampler writes left to right, one character per model call
        x = generate_gpt(model, start, n - 1, diff.Sampling(generator=generator))
        return tokenizer.decode(x[0].tolist())


@torch.no_grad()
def generate_gpt(model, prompt, n_new, sampling=diff.DEFAULT, use_cache=True, callback=None):
    """Append n_new tokens to prompt (B, P), one at a time. Returns (B, P + n_new); callback(calls,
    x) after each.

    With the KV cache each new token costs one position of compute: its query attends to the
    stored keys and values of everything before it. When the context is full the window slides by
    half and is re-read. Without the cache every token re-runs the whole (cropped) context: same
    tokens, far more compute.
    """
    ctx = model.config.block_size
    x, cache = prompt, None
    for _ in range(n_new):
        if not use_cache:
            logits = model(x[:, -ctx:])[:, -1]
        # (re)fill the cache with the last part of the text
        elif cache is None or cache.filled == ctx:
            window = x[:, -ctx:] if cache is None else x[:, -(ctx // 2) :]
            cache = tfm.KVCache(model.config, x.size(0), ctx, x.device)
            logits = model(window, cache=cache, start=0)[:, -1]
        else:  # one new position: (B, 1)
            logits = model(x[:, -1:], cache=cache, start=cache.filled)[:, -1]
        # (B,): lesson 04's draw (the order is a dLLM's notion)
        nxt = diff.sample_tokens(logits, sampling)
        x = torch.cat([x, nxt[:, None]], dim=1)
        if callback is not None:
            callback(x.size(1) - prompt.size(1), x)
    return x


# ----------------------------------------------------------------------------------------------
# The comparison
# ----------------------------------------------------------------------------------------------
def run_summary(run_dir, kind):
    """What compare draws and tabulates of a training run: its metrics rows and best checkpoint."""
    if not pretrained.has_run(run_dir) or not (Path(run_dir) / "metrics.csv").is_file():
        raise UsageError(f"{run_dir} is not a training run (best.pt or latest.pt, and "
                         "metrics.csv): compare takes two run directories, such as "
                         "checkpoints/dllm and checkpoints/gpt")
    ckpt = checkpoints.load_checkpoint(run_dir, kind=kind)
    rows = metrics.read_metrics(run_dir)
    # any corpus: compare() checks the two agree
    model = gen.load(run_dir, kind, tokenizers=None)[0]
    return {"kind": ckpt["kind"], "params": model.num_params(), "steps": rows[-1]["step"],
            "model": model.eval(),
            "wall_s": rows[-1]["elapsed_s"], "best_bpc": min(r["val_bpc"] for r in rows),
            "rows": rows, "preset": ckpt["args"].get("preset"), "ckpt": ckpt}


def same_window_bits(dllm, gpt, text, n_windows=16):
    """Three likelihoods in bits/char on the same n validation windows of `text` (the corpus both
    trained on): the dLLM's NELBO (upper bound), the dLLM's exact NLL decoded left to right, and the
    GPT's exact NLL.

    All three score exactly the same characters, 1..L-1 of each window, given character 0: the
    GPT needs one character to start from, so the dLLM is given it too (span=(1, L): never
    masked, never scored)."""
    dm, gm = dllm["model"], gpt["model"]
    tok = diff.CharTokenizer(dllm["ckpt"]["tokenizer"]["tokens"])
    _, val, chars_per_token = train.split_corpus(text, tok,
                                                 dllm["ckpt"]["args"].get("split", "tail"))
    L = min(dm.config.block_size, gm.config.block_size)
    w = train.eval_windows(val, n_windows, L)  # (n, L)
    bits = {
            "dLLM NELBO, K=32 (upper bound)": diff.nelbo_bits(dm, w, dm.config.mask_id, K=32,
                                                              span=(1, L)),
            "dLLM decoded left to right (exact)": diff.left_to_right_bits(dm, w, dm.config.mask_id,
                                                                          span=(1, L)),
            "GPT (exact)": NextTokenObjective().val_bits(gm, w)}  # predicts w[:, 1:] from w[:, :-1]
    return {k: v / chars_per_token for k, v in bits.items()}, len(w)


def compare(dllm_dir, gpt_dir, out=None, text=None, n_windows=16, force=False):
    """A figure (val bits/char vs step and vs seconds, from the runs' metrics.csv; default
    <dllm_dir>/compare.png, beside the runs; a file no command here made is replaced only with
    force) and a table.

    With `text` (the corpus), also the likelihoods of same_window_bits: the bound
    beside exact numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_output(out or Path(dllm_dir) / "compare.png", ".png", force)  # before any work
    runs = [run_summary(dllm_dir, "dllm"), run_summary(gpt_dir, "gpt")]
    # bits of two corpora do not compare
    if runs[0]["ckpt"]["tokenizer"] != runs[1]["ckpt"]["tokenizer"]:
        raise UsageError(f"{dllm_dir} and {gpt_dir} were trained with different vocabularies "
                         "(different corpora or tokenizers): compare two runs on the same text")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for r in runs:
        label = "dLLM NELBO (upper bound)" if r["kind"] == "dllm" else "GPT exact NLL"
        for ax, x in zip(axes, ("step", "elapsed_s")):
            ax.plot([row[x] for row in r["rows"]], [row["val_bpc"] for row in r["rows"]],
                    marker="o", ms=3, label=label)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training seconds (excluding evaluation)")
    axes[0].set_ylabel("validation bits/char")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{dllm_dir} vs {gpt_dir}")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
    print("| model | preset | params | steps | train s | best val bits/char |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        note = " (upper bound)" if r["kind"] == "dllm" else " (exact)"
        print(f"| {r['kind']} | {r['preset']} | {r['params']:,} | {r['steps']} "
              f"| {r['wall_s']:.0f} | {r['best_bpc']:.3f}{note} |")
    d, g = runs
    print(f"dLLM bound / GPT: {d['best_bpc'] / g['best_bpc']:.3f}  -> wrote {out}")
    if text is not None:
        d["same_windows"], n = same_window_bits(d, g, text, n_windows)
        print(f"\nbest checkpoints on the same {n} validation windows (bits/char):")
        for name, b in d["same_windows"].items():
            print(f"  {name:<36} {b:.3f}")
    return runs


# ----------------------------------------------------------------------------------------------
# The command line: train (05's flags), or the subcommands generate and compare
# ----------------------------------------------------------------------------------------------
def gpt_parser():
    """The flags of 05 (training, the default mode), and two subcommands with their own flags."""
    p = train.training_parser(__doc__, train.ROOT / "checkpoints" / "gpt")
    sub_parser = subcommands(p, ["generate", "compare"])
    g = sub_parser("generate", "sample from a trained GPT, with its KV cache")
    gen.add_model_args(g, train.ROOT / "checkpoints" / "gpt", "shakespeare-gpt")
    g.add_argument("--prompt", type=free_text, default="\n", help="text to continue")
    g.add_argument("--tokens", type=int_in(1, 10**6), default=256, help="tokens to generate")
    generate_args.add_sampling_args(g)  # --temp, --topk, --top-p, --num-samples, --seed: as 06's
    g.add_argument("--no-cache", action="store_true", help="recompute the context for every token")
    c = sub_parser("compare", "two finished runs side by side (with --data: exact likelihoods too)")
    c.add_argument("runs", nargs=2, metavar="RUN_DIR",
                   help="the two run directories: the dLLM's, then the GPT's")
    c.add_argument("--data",
                   help="the corpus both trained on: also the likelihoods on the same windows")
    c.add_argument("--out", help="the figure, a .png (default: the dLLM's run/compare.png)")
    c.add_argument("--force", action="store_true",
                   help="--out may replace a file that no command here made")
    c.add_argument("--windows", type=positive_int, default=16,
                   help="validation windows for the exact likelihoods (L model calls each)")
    return p


def generate_main(args):
    """generate: the GPT continues --prompt for --tokens tokens. Ctrl-C prints the text so
    far (exit 130)."""
    if not args.prompt:
        raise UsageError("--prompt must be non-empty: the GPT continues text")
    model, tok, info = gen.load(pretrained.from_flags(args), "gpt", args.device)
    if info["objective"] != "gpt":
        use = {"sudoku-gpt": "solve with 12_sudoku.py solve FILE --model gpt",
               "paths-gpt": "plan with 16_robot_paths.py solve FILE --model gpt"}
        raise UsageError(f"{info['path']} is a {info['objective']} model: " + use.get(
            info["objective"], "it writes text in another layout than this sampler's"))
    device = next(model.parameters()).device
    prompt = torch.tensor([encode_or_fail(tok, args.prompt, "--prompt")], device=device)
    prompt = prompt.repeat(args.num_samples, 1)  # (N, P)
    g = torch.Generator(device).manual_seed(args.seed)  # on the model's device: no copies per token
    sampling = diff.Sampling(args.temp, args.topk, args.top_p, generator=g)
    last = {"x": prompt}
    so_far = lambda: gen.print_texts([tok.decode(row.tolist()) for row in last["x"]])
    bar = runtime.SamplingBar(args.tokens, "token")  # a bar only if sampling runs past 2 s

    def show(n, x):
        last["x"] = x
        bar.update()

    dtype = runtime.sampling_dtype(device.type)  # fp32 on a CPU, as 06: the same text on every CPU
    with runtime.stop_cleanly(so_far), runtime.autocast(device.type, dtype), bar:
        out = generate_gpt(model, prompt, args.tokens, sampling, not args.no_cache, callback=show)
    texts = [tok.decode(row.tolist()) for row in out]
    gen.print_texts(texts)
    return texts


def main(argv=None):
    p = gpt_parser()
    args = parse_args_given(p, argv)
    if args.command == "generate":
        return generate_main(args)
    # with --data: also exact likelihoods on the same windows (a minute on a CPU)
    if args.command == "compare":
        return compare(*args.runs, out=args.out, text=read_text(args.data) if args.data else None,
                       n_windows=args.windows, force=args.force)
    args = train.resolve(args)  # no subcommand: train, as 05 does
    text = read_text(args.data) if args.data else train.shakespeare()
    return train.train(args, NextTokenObjective(),
                       train.TextData(text, diff.CharTokenizer.from_text(text), args.split))


if __name__ == "__main__":
    run_cli(main)
