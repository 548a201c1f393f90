"""Lesson 10: decode a dLLM in fewer model calls: parallel commits (Fast-dLLM, EB-Sampler) and a KV cache.

Lesson 04's sampler makes a fixed number of calls and commits the same number of tokens in each, however sure
the model is. Two ideas from Fast-dLLM (Wu et al. 2025) cut the cost:

  1. let the model decide how many positions to commit per call: every position whose confidence clears a
     threshold (or the factor rule), or, the EB-Sampler (Ben-Hamu et al. 2025), the surest positions while
     their summed entropy stays within a budget. Where the model is sure it commits many; where it hesitates,
     one;
  2. semi-autoregressive blocks (LLaDA) with an approximate KV cache: one full pass at the start of each block,
     then passes over the block only, reusing the keys and values of the rest (stale, but close).

    python 10_fast_decoding.py                  # demo: one tiny model decoded every way; calls and agreement
    python 10_fast_decoding.py --generate --threshold 0.9 --block-size 32 --cache dual   # a trained run
    python 10_fast_decoding.py --generate --entropy-budget 1 --remasking entropy --temp 1
"""
import time
from importlib import import_module
from pathlib import Path

import torch

from support.cli import (
    ArgumentParser,
    UsageError,
    non_negative_float,
    non_negative_int,
    parse_args_given,
    positive_float,
    positive_int,
    probability,
    refuse_unused,
    require,
    run_cli,
)

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
gen = import_module("06_generate")
ROOT = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------------------
# Commit as many as the model is sure of
# ---------------------------------------------------------------------------------------------------------
def entropy(logits):
    """Entropy in nats of softmax(logits) at each position: (..., V) -> (...)."""
    logp = logits.float().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def parallel_commit(logits, masked, conf, ranks, threshold=None, factor=None, entropy_budget=None):
    """(B, n) which masked positions to commit when the model decides how many: at least one per row.

    threshold (Fast-dLLM): every masked position whose confidence is >= threshold.
    factor (Fast-dLLM): the n most confident while c_(n) >= 1 - factor/(n+1).
    entropy_budget (EB-Sampler, Ben-Hamu et al. 2025): the first positions in rank order while their summed
      entropy stays <= the budget (nats): many where the model is sure, one where it hesitates. The paper ranks
      by entropy, lowest first (remasking="entropy"); any other remasking order works the same way.
    """
    if threshold is not None:
        commit = conf >= threshold
    elif factor is not None:
        c_sorted = conf.sort(dim=1, descending=True).values  # (B, n)
        n = torch.arange(1, c_sorted.size(1) + 1, device=conf.device)
        commit = ranks < (c_sorted >= 1 - factor / (n + 1)).long().cumprod(1).sum(1, keepdim=True)
    else:
        h = entropy(logits).masked_fill(~masked, 0.0)  # (B, n)
        summed = h.gather(1, ranks.argsort(1)).cumsum(1)  # entropy of the first k positions in rank order
        commit = ranks < (summed <= entropy_budget).sum(1, keepdim=True)
    return (commit | (ranks == 0)) & masked


def commit_step(logits, block, mask_id, count, rule, temperature, top_k, top_p, remasking, generator,
                noise=0.0):
    """One model call's commit inside a block (B, n): the `count` (B, 1) surest masked positions, or, with count
    None, as many as the rule decides (parallel_commit). Lesson 11 writes its blocks with the same step."""
    masked = block == mask_id
    proposal, conf, ranks = diff.propose(logits, masked, temperature, top_k, top_p, remasking, generator, noise)
    take = parallel_commit(logits, masked, conf, ranks, **rule) if count is None else (ranks < count) & masked
    return torch.where(take, proposal, block)


def steps_per_block(steps, n_blocks):
    """Spread `steps` model calls over the blocks, the remainder over the first blocks."""
    return [steps // n_blocks + (b < steps % n_blocks) for b in range(n_blocks)]


# ---------------------------------------------------------------------------------------------------------
# The sampler: lesson 04's, plus blocks, parallel commits and the approximate cache
# ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_fast(model, canvas, mask_id, threshold=None, factor=None, entropy_budget=None, steps=64,
                  block_size=None, cache="none", temperature=1.0, top_k=0, top_p=1.0, remasking="confidence",
                  callback=None, generator=None, noise=0.0):
    """generate(), plus the two speed-ups of Fast-dLLM, and the EB-Sampler's rule.

    threshold / factor / entropy_budget: the model decides how many positions to commit per call
      (parallel_commit above); the number of calls then depends on the model. None of them: `steps` calls,
      as in generate().
    cache: "prefix" or "dual" = an approximate block-wise KV cache, refreshed by one full pass at the start of
      each block; then only the block (and for "prefix" the suffix) is recomputed. Approximate: the cached
      keys of the other positions are not updated as the block fills in. "none" recomputes everything.
    """
    x = canvas.clone()
    B, L = x.shape
    block_size = block_size or L
    starts = list(range(0, L, block_size))
    rule = dict(threshold=threshold, factor=factor, entropy_budget=entropy_budget)
    adaptive = any(v is not None for v in rule.values())
    if not adaptive and steps < len(starts):
        raise ValueError(f"steps ({steps}) must be >= the number of blocks ({len(starts)})")
    if cache not in ("none", "prefix", "dual"):
        raise ValueError(f"unknown cache {cache!r}")
    budgets = steps_per_block(steps, len(starts)) if not adaptive else [None] * len(starts)
    kv = tfm.KVCache(model.config, B, L, x.device) if cache != "none" else None
    calls = 0
    for s, budget in zip(starts, budgets):
        e = min(s + block_size, L)
        n_masked = (x[:, s:e] == mask_id).sum(1)  # (B,)
        if n_masked.max() == 0:
            continue
        if not adaptive:
            counts = diff.commit_counts(n_masked, min(budget, int(n_masked.max())))
        i = 0
        while (x[:, s:e] == mask_id).any() and (adaptive or i < counts.size(1)):
            if kv is None:  # full forward pass over the whole canvas
                logits = model(x)[:, s:e]
            elif i == 0:  # refresh: full pass, keys/values of every position go into the cache
                kv.filled = 0
                logits = model(x, cache=kv, start=0)[:, s:e]
            elif cache == "prefix":  # recompute block + suffix, reuse the prefix
                logits = model(x[:, s:], cache=kv, start=s)[:, : e - s]
            else:  # dual: recompute only the block, reuse prefix and suffix
                logits = model(x[:, s:e], cache=kv, start=s)
            calls += 1
            count = None if adaptive else counts[:, i : i + 1]  # (B, 1) to commit now, or the rule decides
            x[:, s:e] = commit_step(logits, x[:, s:e], mask_id, count, rule, temperature, top_k, top_p, remasking,
                                    generator, noise)
            i += 1
            if callback is not None:
                callback(calls, x)
    return x, calls


def sample_fast(model, tokenizer, args, callback=None):
    """06's canvas, decoded by generate_fast with the flags of this lesson. Returns (x (N, L), model calls)."""
    x = gen.canvases(model, tokenizer, args)
    try:
        return generate_fast(model, x, model.config.mask_id, steps=args.steps or 64, callback=callback,
                             **fast_kw(args), **gen.sampling_kw(model, args))
    except ValueError as e:  # fewer steps than blocks
        raise UsageError(str(e)) from None


def fast_kw(args):
    return dict(threshold=args.threshold, factor=args.factor, entropy_budget=args.entropy_budget,
                block_size=args.block_size, cache=args.cache)


# ---------------------------------------------------------------------------------------------------------
# The command line: 06's flags plus this lesson's (lesson 11 reuses the three rules)
# ---------------------------------------------------------------------------------------------------------
def add_rule_args(p):
    p.add_argument("--threshold", type=probability, help="Fast-dLLM: commit every position with confidence >= this")
    p.add_argument("--factor", type=positive_float, help="Fast-dLLM factor rule: commit n while c_(n) >= 1 - f/(n+1)")
    p.add_argument("--entropy-budget", type=non_negative_float, help="EB-Sampler: commit positions in --remasking "
                   "order while their summed entropy (nats) stays within this; at least one per call (the paper: "
                   "--remasking entropy)")
    return p


def check_rule_args(a):
    require([
        (a.threshold is None or 0 < a.threshold <= 1, f"--threshold must be in (0, 1], got {a.threshold}"),
        (a.factor is None or a.factor > 0, f"--factor must be > 0, got {a.factor}"),
        (a.entropy_budget is None or a.entropy_budget >= 0, f"--entropy-budget must be >= 0, got {a.entropy_budget}"),
        (sum(r is not None for r in (a.threshold, a.factor, a.entropy_budget)) <= 1,
         "--threshold, --factor and --entropy-budget are three rules: pick one"),
    ])


def fast_parser():
    p = gen.add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "dllm")
    g = p.add_argument_group("this lesson")
    g.add_argument("--generate", action="store_true", help="generate from --checkpoint with the flags below "
                   "(default: the demo)")
    add_rule_args(g)
    g.add_argument("--block-size", type=positive_int, help="semi-autoregressive blocks of this many positions (LLaDA)")
    g.add_argument("--cache", default="none", choices=["none", "prefix", "dual"],
                   help="Fast-dLLM's approximate KV cache, refreshed at each block (needs --block-size)")
    g.add_argument("--train-steps", type=non_negative_int, default=300, help="demo: steps to fit 04's tiny model")
    return p


def check_fast_args(a):
    check_rule_args(a)
    require([(a.block_size is None or a.block_size >= 1, f"--block-size must be >= 1, got {a.block_size}"),
             (a.cache == "none" or a.block_size is not None,
              f"--cache {a.cache} is refreshed at each block: give --block-size too (e.g. 32)"),
             (a.train_steps >= 0, f"--train-steps must be >= 0, got {a.train_steps}")])


# ---------------------------------------------------------------------------------------------------------
# The demo: one model, one canvas, every way of decoding it
# ---------------------------------------------------------------------------------------------------------
def decoders(L):
    """(name, generate_fast keywords): lesson 04's one token per call first, then this lesson's ways."""
    blocks = max(1, L // 4)
    return [("one token per call (lesson 04)", dict(steps=L)),
            ("threshold 0.9 (Fast-dLLM)", dict(threshold=0.9)),
            ("factor 1 (Fast-dLLM)", dict(factor=1.0)),
            ("entropy budget 1 nat (EB-Sampler)", dict(entropy_budget=1.0, remasking="entropy")),
            (f"threshold 0.9, blocks of {blocks}", dict(threshold=0.9, block_size=blocks)),
            ("  + prefix cache", dict(threshold=0.9, block_size=blocks, cache="prefix")),
            ("  + dual cache", dict(threshold=0.9, block_size=blocks, cache="dual"))]


def demo_decoders(args):
    """Decode one canvas greedily every way; count the calls; compare each text with one token per call."""
    torch.manual_seed(args.seed)
    if args.checkpoint or args.pretrained:  # a trained model; else one fitted here in seconds
        model, tok, info = gen.load("dllm", args.checkpoint, args.default_run, args.shipped, args.pretrained,
                                    args.device, log=print)
        print(f"== {info['path']}: {model.num_params():,} parameters ==")
        L = args.len or model.config.block_size
        require([(L <= model.config.block_size, f"--len {L} is longer than this model's context "
                                                 f"({model.config.block_size})")])
    else:
        print(f"== lesson 04's tiny model, fitted to five lines of Hamlet ({args.train_steps} steps) ==")
        model, tok, data = diff.demo_model(args.train_steps, torch.Generator().manual_seed(args.seed), log=lambda s: 0)
        L = len(data)
    canvas = torch.full((1, L), model.config.mask_id, device=next(model.parameters()).device)
    print(f"{'decoder':<36} {'calls':>5} {'tokens/call':>11} {'seconds':>8}  same text as one per call")
    base = None
    for name, kw in decoders(L):
        t0 = time.perf_counter()
        x, calls = generate_fast(model, canvas, model.config.mask_id, temperature=0, **kw)  # greedy: comparable
        dt = time.perf_counter() - t0
        base = x if base is None else base
        same = (x == base).float().mean().item()
        print(f"{name:<36} {calls:>5} {L / calls:>11.1f} {dt:>8.2f}  {same:.0%} of positions")
    print(f"\ngreedy text, one token per call:\n{tok.decode(base[0].tolist())}")


def main(argv=None):
    args = parse_args_given(fast_parser(), argv)
    check_fast_args(args)
    if args.generate:  # every flag but the demo's own
        refuse_unused(args, set(vars(args)) - {"train_steps"}, "--generate")
        return gen.generate_cli(args, sampler=sample_fast)
    refuse_unused(args, {"checkpoint", "pretrained", "len", "device", "seed", "train_steps"},
                  "the demo (it decodes one canvas, greedily, every way)")
    return demo_decoders(args)


if __name__ == "__main__":
    run_cli(main)
