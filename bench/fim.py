"""Fill in the middle (FIM; Bavarian et al. 2022): the fair infilling baseline for a GPT, trained through 05's loop.

    python bench/fim.py --fim 0.5                       # -> checkpoints/gpt_fim (05's flags: --data, --steps, ...)

A dLLM fills a gap seeing both sides; a plain GPT sees only the left. Trained with --fim 0.5, half of a FIM-GPT's
sequences are cut at two random points into prefix, middle, suffix and rearranged PSM: <PRE> prefix <SUF> suffix
<MID> middle. Still next-token prediction, but the middle is now predicted after seeing both sides. Same model,
data and compute as lesson 07's GPT. bench/infill.py scores it (gpt_span_bits below).
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
import math
from importlib import import_module

import torch
import torch.nn.functional as F

from support.cli import finite_float, run_cli
from support.files import read_text

diff = import_module("04_diffusion")
train = import_module("05_train")
gpt = import_module("07_train_gpt")


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


class FIMObjective(gpt.NextTokenObjective):
    """07's next-token objective on batches of which a fraction `rate` is in PSM order (three sentinel inputs)."""

    name, trainer = "fim-gpt", "bench/fim.py"

    def __init__(self, rate=0.5):
        self.rate = rate
        self.model_overrides = dict(causal=True, mask_token=False, sentinels=3)  # <PRE> <SUF> <MID>: input only

    def loss(self, model, x, config):
        x = fim_batch(x, self.rate, config)
        logits = model(x[:, :-1])  # (B, L, V): a sentinel is never a target
        targets = x[:, 1:].masked_fill(x[:, 1:] >= config.vocab_size, -100)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)


def fim_rate(s):
    v = finite_float(s)
    if not 0 < v <= 1:
        raise ValueError(s)
    return v


def main(argv=None):
    p = train.training_parser(__doc__, train.ROOT / "checkpoints" / "gpt_fim")
    p.add_argument("--fim", type=fim_rate, default=0.5, metavar="RATE", help="the fraction of sequences in PSM order, "
                   "in (0, 1] (Bavarian et al. 2022 use 0.5)")
    p.add_argument("--tokenizer", choices=["char", "grapheme"], default="char", help="one token per character, or "
                   "per grapheme cluster (lesson 08's, for Tamil)")
    args = train.parse_args(p, argv)
    text = read_text(args.data) if args.data else train.shakespeare()
    grapheme = args.tokenizer == "grapheme"
    tokenizer = (import_module("08_train_tamil").GraphemeTokenizer if grapheme else diff.CharTokenizer).from_text(text)
    data = train.TextData(text, tokenizer, args.split)
    return train.train(args, FIMObjective(args.fim), data)


if __name__ == "__main__":
    run_cli(main)
