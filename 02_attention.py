"""Lesson 02: scaled dot-product attention, written out, multi-head, causal vs bidirectional masks.

Attention (Vaswani et al. 2017, "Attention Is All You Need"): every position asks a question
(query), every position offers a key and a value; the answer is the value average weighted by
softmax(q.k / sqrt(d)).

    python 02_attention.py                  # proofs printed
    python 02_attention.py --plot attention.png   # heatmap of both masks, written where you say

The one line that separates a GPT from a diffusion LM is here: a GPT uses the causal mask (position
i sees only positions <= i); a masked diffusion LM sees the whole sequence in both directions.
"""
import math

import torch
import torch.nn.functional as F

from support.cli import ArgumentParser, run_cli
from support.files import check_output, save_figure


def attention(q, k, v, mask=None, dropout_p=0.0):
    """Scaled dot-product attention, step by step.

    q: (B, H, Tq, D), k and v: (B, H, Tk, D); mask: bool (Tq, Tk), True = may attend, or None.
    dropout_p: attention dropout in training (zero some weights, as F.scaled_dot_product_attention's
    dropout_p). Returns the output (B, H, Tq, D) and the attention weights (B, H, Tq, Tk).
    """
    scores = q @ k.transpose(-2, -1)  # (B, H, Tq, Tk): how well each query matches each key
    scores = scores / math.sqrt(q.size(-1))  # keep the variance ~1 so softmax does not saturate
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # forbidden pairs get zero weight
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1
    # regularisation (Vaswani et al. 2017): drop some weights, scale the rest by 1/(1-p)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v, weights  # (B, H, Tq, D): weighted sum of values


def causal_mask(T, device=None):
    """(T, T) lower-triangular bool: position i may attend to j only if j <= i (GPT)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def split_heads(x, n_head):
    """(B, T, C) -> (B, H, T, C/H): each head attends in its own subspace."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, H*D): concatenate the heads again."""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def _self_attention_demo(x, n_head, causal, w_qkv):
    """Single-layer multi-head self-attention on x (B, T, C) with fixed projection weights."""
    q, k, v = (x @ w_qkv).chunk(3, dim=-1)  # three (B, T, C) projections
    q, k, v = (split_heads(t, n_head) for t in (q, k, v))  # (B, H, T, D) each
    mask = causal_mask(x.size(1), x.device) if causal else None
    out, weights = attention(q, k, v, mask)
    return merge_heads(out), weights


def compare_with_sdpa(seed=0):
    """Max |ours - torch's fused kernel| for the causal and the bidirectional case."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 4, 16, 8, generator=g) for _ in range(3))
    diffs = {}
    for causal in (True, False):
        ours, _ = attention(q, k, v, causal_mask(16) if causal else None)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        diffs["causal" if causal else "bidirectional"] = (ours - ref).abs().max().item()
    return diffs


def future_token_effect(seed=0, T=8, C=16, n_head=2, changed=5):
    """Change the token at position `changed`; how much does each position's output move?

    Returns {mask: (T,) max |delta output| per position}. Causal: zero before `changed`.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, T, C, generator=g)
    w = torch.randn(C, 3 * C, generator=g) / math.sqrt(C)
    x2 = x.clone()
    x2[0, changed] = torch.randn(C, generator=g)
    effect = {}
    for causal in (True, False):
        a, _ = _self_attention_demo(x, n_head, causal, w)
        b, _ = _self_attention_demo(x2, n_head, causal, w)
        effect["causal" if causal else "bidirectional"] = (a - b).abs().amax(dim=-1)[0]
    return effect


def plot_weights(path, seed=0, T=12, C=16):
    """Heatmaps of head 0's attention weights under both masks, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, T, C, generator=g)
    w = torch.randn(C, 3 * C, generator=g) / math.sqrt(C)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, causal in zip(axes, (True, False)):
        _, weights = _self_attention_demo(x, 1, causal, w)
        ax.imshow(weights[0, 0].numpy(), cmap="viridis", vmin=0)
        ax.set_title("causal (GPT)" if causal else "bidirectional (dLLM)")
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
    fig.suptitle("attention weights softmax(q·k/√d), random inputs")
    fig.tight_layout()
    save_figure(fig, path)  # written, then renamed: an interrupted save never leaves half a PNG
    plt.close(fig)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--plot", metavar="FILE",
                   help="write a PNG heatmap of the attention weights for both masks to FILE")
    p.add_argument("--force", action="store_true",
                   help="--plot may replace a file that no command here made")
    args = p.parse_args(argv)
    if args.plot:  # before any work: a .png, a folder we can write, no file of the user's replaced
        check_output(args.plot, ".png", args.force, "--plot")

    print("== from-scratch attention vs torch.nn.functional.scaled_dot_product_attention ==")
    for name, d in compare_with_sdpa().items():
        print(f"{name:>13}: max |difference| = {d:.2e}")

    print("\n== change the token at position 5: how far does each output move? ==")
    for name, eff in future_token_effect(changed=5).items():
        print(f"{name:>13}: " + " ".join(f"{e:.2f}" for e in eff.tolist()))
    print("causal outputs before position 5 do not move; bidirectional outputs all move.")

    if args.plot:
        plot_weights(args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    run_cli(main)
