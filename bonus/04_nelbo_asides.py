"""Bonus to lesson 04: two asides about the NELBO, measured rather than asserted.

1. The noise schedule changes only the variance of the training loss, not its value (MD4, Shi et
   al. 2024, sec. 3). The cosine schedule alpha_t = cos(pi t / 2) masks fewer tokens early; its
   weight w(t) follows.
2. LLaDA's count-based estimator (Nie et al. 2025): mask exactly l of the L tokens, l uniform in
   1..L, weight L/l. The same bound as lesson 04's time-based estimator, with lower variance.

    python bonus/04_nelbo_asides.py
"""
import math
import sys
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the lessons, from any folder
diff = import_module("04_diffusion")
cli = import_module("support.cli")


def alpha_cosine(t):
    return torch.cos(0.5 * math.pi * t)


def weight_cosine(t):
    """w(t) = -alpha'(t) / (1 - alpha(t)) for the cosine schedule."""
    return 0.5 * math.pi * torch.sin(0.5 * math.pi * t) / (1 - torch.cos(0.5 * math.pi * t))


def cosine_diffusion_loss(model, x0, mask_id, generator=None, eps=diff.EPS):
    """Lesson 04's diffusion_loss with the cosine schedule: masked with probability
    1 - alpha_cosine(t)."""
    B, L = x0.shape
    t = diff.sample_times(B, generator, x0.device, eps)  # (B,)
    # Lesson 04's linear alpha is 1 - t, so its forward process at 1 - alpha_cosine(t) masks each
    # token with probability 1 - alpha_cosine(t)
    t_linear = (1 - alpha_cosine(t))[:, None].expand(B, L)  # (B, L)
    z, mask = diff.forward_process(x0, t_linear, mask_id, generator)
    ce = diff.masked_cross_entropy(model(z), x0, mask)  # (B, L), 0 where not masked
    return (weight_cosine(t)[:, None] * ce).sum() / (B * L)


def count_masks(strata, inside, generator):
    """LLaDA's estimator, for lesson 04's nelbo_bits(draw=...): mask exactly
    l = 1 + floor(n * stratum) of the n positions inside the span, chosen uniformly;
    weight n / l."""
    n_span = int(inside.sum())
    n_mask = (1 + (strata * n_span).long()).clamp(max=n_span)  # (n,) in 1..n_span
    u = torch.rand(len(strata), len(inside), generator=generator)
    u = u.masked_fill(~inside, 2.0)  # positions outside the span sort last
    ranks = u.argsort(1).argsort(1)  # a random order of the span's positions, per row
    return ranks < n_mask[:, None], n_span / n_mask.float()


def main(argv=None):
    # No flags: --help shows what it is, and a typo is one line
    cli.ArgumentParser(description=__doc__).parse_args(argv)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # Lesson 04's tiny model, half-trained
    model, tok, data = diff.demo_model(150, g, log=lambda s: None)
    n, mask_id = 1000, model.config.mask_id
    with torch.no_grad():  # one sequence per draw: each draw is one noise level t
        lin = torch.stack([diff.diffusion_loss(model, data[None], mask_id, g) for _ in range(n)])
        cos = torch.stack([cosine_diffusion_loss(model, data[None], mask_id, g) for _ in range(n)])
    print(f"== 1. the schedule: {n} draws of the training loss on the demo text (nats/char) ==")
    for name, v in (("linear (lesson 04)", lin), ("cosine", cos)):
        print(f"{name:<20} mean {v.mean():.3f} +- {v.std() / n**0.5:.3f}   "
              f"std of one draw {v.std():.3f}")
    diff_se = ((lin.var() + cos.var()) / n) ** 0.5
    print(f"difference of the means: {(lin.mean() - cos.mean()).item():+.3f} = "
          f"{((lin.mean() - cos.mean()) / diff_se).item():+.1f} standard errors "
          "(MD4 sec. 3: equal in expectation)")

    print("\n== 2. the estimator: lesson 04's nelbo_bits, time-based vs count-based, "
          "8 seeds, K=8 ==")
    w = data[None]
    for name, draw in (("time (lesson 04)", diff.time_masks), ("count (LLaDA)", count_masks)):
        runs = torch.tensor([diff.nelbo_bits(model, w, model.config.mask_id, K=8, seed=s, draw=draw)
                             for s in range(8)])
        print(f"{name:<20} mean {runs.mean():.3f} bits/char, std over seeds {runs.std():.3f}")
    exact = diff.left_to_right_bits(model, w, model.config.mask_id)
    print(f"both bound the same likelihood; for scale, the exact left-to-right NLL is "
          f"{exact:.3f} bits/char")


if __name__ == "__main__":
    cli.run_cli(main)  # Ctrl-C: one line, exit status 130
