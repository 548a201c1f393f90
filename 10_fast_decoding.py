"""Lesson 10: decode a dLLM in fewer model calls: parallel commits (Fast-dLLM, EB-Sampler) and
a KV cache.

Lesson 04's sampler makes a fixed number of calls and commits the same number of tokens in each,
however sure the model is. Two ideas from Fast-dLLM (Wu et al. 2025) cut the cost:

  1. Let the model decide how many positions to commit per call: every position whose confidence
     clears a threshold (or the factor rule), or, with the EB-Sampler (Ben-Hamu et al. 2025), the
     surest positions while their summed entropy stays within a budget. Where the model is sure it
     commits many; where it hesitates, one.
  2. Semi-autoregressive blocks (LLaDA) with an approximate KV cache: one full pass at the start of
     each block, then passes over the block only, reusing the stale but close keys and values of
     the rest.

    python 10_fast_decoding.py            # demo: one tiny model decoded every way; calls, agreement
    python 10_fast_decoding.py generate --threshold 0.9 --block-size 32 --cache dual   # your run
    python 10_fast_decoding.py generate --entropy-budget 1 --order entropy --temp 1
"""
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import torch

from support import pretrained, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    non_negative_float,
    non_negative_int,
    parse_args_given,
    positive_float,
    positive_int,
    probability,
    random_seed,
    run_cli,
    subcommands,
)

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
gen = import_module("06_generate")
ROOT = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------
# Commit as many as the model is sure of
# ----------------------------------------------------------------------------------------------
@dataclass
class Rule:
    """How many masked positions one call commits, when the model decides: kind "threshold"
    (Fast-dLLM: every position whose probability is >= value), "factor" (Fast-dLLM: the n surest
    while p_(n) >= 1 - value/(n+1)), or "eb" (the EB-Sampler: the largest prefix whose entropies sum
    to at most value nats beyond their largest)."""

    kind: str
    value: float


def entropy(logits):
    """Entropy in nats of softmax(logits) at each position: (..., V) -> (...)."""
    logp = logits.float().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def parallel_commit(logits, masked, prob, ranks, rule):
    """(B, n) bool: which masked positions to commit this call, at least one per row with a mask.

    prob (B, n): the model's probability of the token drawn at each position, never the noisy order
    score: noise may choose the order, not the count. ranks (B, n): the sampler's order (0 = first).

    threshold (Fast-dLLM, Wu et al. 2025): every masked position with prob >= value.
    factor (Fast-dLLM): sort prob descending, p_(1) >= p_(2) >= ...; commit the n surest while
    p_(k) >= 1 - value/(k+1) for every k <= n (their theorem: then the greedy choice at each
    position is also the joint argmax).
    For both, when nothing passes, the most probable masked position is committed, as their code
    does (its top-1 is always kept), whatever the sampler's order.
    eb (EB-Sampler, Ben-Hamu et al. 2025, Algorithm 1): positions in the sampler's order (the
    paper's: entropy, lowest first), the largest prefix U with sum_U H - max_U H <= value. The first
    position always passes, since its term is 0; the subtracted maximum bounds the error, because
    the joint entropy of U is at least its largest entropy.
    """
    if rule.kind == "threshold":
        commit = prob >= rule.value
    elif rule.kind == "factor":
        p = prob.masked_fill(~masked, -1.0)  # (B, n) known positions last
        p_sorted = p.sort(dim=1, descending=True).values
        k = torch.arange(1, p.size(1) + 1, device=p.device)
        n = (p_sorted >= 1 - rule.value / (k + 1)).long().cumprod(1).sum(1, keepdim=True)  # (B, 1)
        commit = diff._ranks(p) < n
    elif rule.kind == "eb":
        # (B, n) in the sampler's order
        h = entropy(logits).masked_fill(~masked, 0.0).gather(1, ranks.argsort(1))
        excess = h.cumsum(1) - h.cummax(1).values  # sum - max of each prefix: never decreases
        commit = ranks < (excess <= rule.value).sum(1, keepdim=True)
    else:
        raise ValueError(f"unknown rule {rule.kind!r}; choose from threshold, factor, eb")
    commit &= masked
    # Nothing passed: Fast-dLLM keeps the most probable masked position (eb's first always passes).
    best = diff._ranks(prob.masked_fill(~masked, -1.0)) == 0  # (B, n) the surest masked position
    return commit | (best & masked & ~commit.any(1, keepdim=True))


def commit_step(logits, block, mask_id, count, rule, sampling):
    """One model call's commit inside a block (B, n): the `count` (B, 1) first masked positions in
    the sampler's order, or, with count None, as many as the rule decides. Lesson 11 writes its
    blocks with the same step."""
    masked = block == mask_id
    proposal, prob, ranks = diff.propose(logits, masked, sampling)
    if count is None:  # the rule decides how many
        take = parallel_commit(logits, masked, prob, ranks, rule)
    else:
        take = (ranks < count) & masked
    return torch.where(take, proposal, block)


def steps_per_block(steps, n_blocks):
    """Spread `steps` model calls over the blocks, the remainder over the first blocks."""
    return [steps // n_blocks + (b < steps % n_blocks) for b in range(n_blocks)]


# ----------------------------------------------------------------------------------------------
# The sampler: lesson 04's, plus blocks, parallel commits and the approximate cache
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_fast(model, canvas, sampling=diff.DEFAULT, steps=64, rule=None, block_size=None,
                  cache="none", callback=None):
    """generate() of lesson 04, plus the two speed-ups of Fast-dLLM, and the EB-Sampler's rule.

    rule: a Rule, and the model decides how many positions to commit per call (parallel_commit
    above); the number of calls then depends on the model. None: `steps` calls, as in generate().
    block_size: semi-autoregressive blocks (LLaDA), decoded left to right.
    cache: "prefix" or "dual" is an approximate block-wise KV cache, refreshed by one full pass at
    the start of each block; then only the block (and for "prefix" the suffix) is recomputed. It is
    approximate because the cached keys of the other positions are not updated as the block fills
    in. "none" recomputes everything.
    """
    mask_id = model.config.mask_id
    x = canvas.clone()
    B, L = x.shape
    block_size = block_size or L
    starts = list(range(0, L, block_size))
    if rule is None and steps < len(starts):
        raise ValueError(f"steps ({steps}) must be >= the number of blocks ({len(starts)})")
    if cache not in ("none", "prefix", "dual"):
        raise ValueError(f"unknown cache {cache!r}")
    budgets = steps_per_block(steps, len(starts)) if rule is None else [None] * len(starts)
    kv = tfm.KVCache(model.config, B, L, x.device) if cache != "none" else None
    calls = 0
    for s, budget in zip(starts, budgets):
        e = min(s + block_size, L)
        n_masked = (x[:, s:e] == mask_id).sum(1)  # (B,)
        if n_masked.max() == 0:
            continue
        if rule is None:
            counts = diff.commit_counts(n_masked, min(budget, int(n_masked.max())))
        i = 0
        while (x[:, s:e] == mask_id).any() and (rule is not None or i < counts.size(1)):
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
            # (B, 1) to commit now, or the rule decides
            count = None if rule is not None else counts[:, i : i + 1]
            x[:, s:e] = commit_step(logits, x[:, s:e], mask_id, count, rule, sampling)
            i += 1
            if callback is not None:
                callback(calls, x)
    return x, calls


def sample_fast(model, tokenizer, args, callback=None):
    """06's canvas, decoded by generate_fast with the flags of this lesson. Returns (x (N,
    L), model calls)."""
    x = gen.canvases(model, tokenizer, args)
    try:
        return generate_fast(model, x, gen.sampling(model, args), args.steps or 64, rule_of(args),
                             args.block_size, args.cache, callback=callback)
    except ValueError as e:  # fewer steps than blocks
        raise UsageError(str(e)) from None


# ----------------------------------------------------------------------------------------------
# The command line: the demo, or `generate` (06's flags plus this lesson's rules, which 11 reuses)
# ----------------------------------------------------------------------------------------------
def add_rule_args(p):
    """--threshold, --factor, --entropy-budget: one of them, or none (a fixed number of calls)."""
    r = p.add_mutually_exclusive_group()
    r.add_argument("--threshold", type=probability,
                   help="Fast-dLLM: commit every position whose probability is >= this (at least "
                   "one per call)")
    r.add_argument("--factor", type=positive_float,
                   help="Fast-dLLM's factor rule: the n surest while p_(n) >= 1 - f/(n+1)")
    r.add_argument("--entropy-budget", type=non_negative_float,
                   help="EB-Sampler: the longest prefix in --order whose entropies sum to at most "
                   "this (nats) beyond their largest (the paper: --order entropy)")
    return p


def rule_of(args):
    """The Rule the flags ask for, or None."""
    for kind, value in (("threshold", args.threshold), ("factor", args.factor),
                        ("eb", args.entropy_budget)):
        if value is not None:
            return Rule(kind, value)
    return None


def fast_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=non_negative_int, default=300,
                   help="steps to fit 04's tiny model")
    gen.add_model_args(p, ROOT / "checkpoints" / "dllm", hub=False)
    p.add_argument("--len", type=positive_int,
                   help="characters to decode (default: the model's context)")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed")
    p.add_argument("--device", default="auto", choices=runtime.DEVICES,
                   help="where to run")
    add = subcommands(p, ["generate"])
    g = gen.add_generate_args(add("generate", "generate with 06's flags and this lesson's"),
                              ROOT / "checkpoints" / "dllm")
    t = g.add_argument_group("this lesson")
    add_rule_args(t)
    t.add_argument("--block-size", type=positive_int,
                   help="semi-autoregressive blocks of this many positions (LLaDA)")
    t.add_argument("--cache", default="none", choices=["none", "prefix", "dual"],
                   help="Fast-dLLM's approximate KV cache, refreshed at each block (needs "
                        "--block-size)")
    return p


# ----------------------------------------------------------------------------------------------
# The demo: one model, one canvas, every way of decoding it
# ----------------------------------------------------------------------------------------------
def decoders(L):
    """(name, generate_fast keywords): lesson 04's one token per call first, then
    this lesson's ways."""
    blocks = max(1, L // 4)
    t9 = Rule("threshold", 0.9)
    return [("one token per call (lesson 04)", dict(steps=L)),
            ("threshold 0.9 (Fast-dLLM)", dict(rule=t9)),
            ("factor 1 (Fast-dLLM)", dict(rule=Rule("factor", 1.0))),
            ("entropy budget 1 nat (EB-Sampler)", dict(rule=Rule("eb", 1.0))),
            (f"threshold 0.9, blocks of {blocks}", dict(rule=t9, block_size=blocks)),
            ("  + prefix cache", dict(rule=t9, block_size=blocks, cache="prefix")),
            ("  + dual cache", dict(rule=t9, block_size=blocks, cache="dual"))]


def demo_decoders(args):
    """Decode one canvas greedily every way; count the calls; compare each text with one
    token per call."""
    torch.manual_seed(args.seed)
    if args.checkpoint or args.pretrained:  # a trained model; else one fitted here in seconds
        path = pretrained.choose(args.checkpoint, args.default_run, args.shipped, args.pretrained)
        model, tok, info = gen.load(path, "dllm", args.device)
        gen.check_objective(info)  # a text model: not Sudoku's, not a path model
        print(f"== {info['path']}: {model.num_params():,} parameters ==")
        L = args.len or model.config.block_size
        if L > model.config.block_size:
            raise UsageError(f"--len {L} is longer than this model's context "
                             f"({model.config.block_size})")
    else:
        print(f"== lesson 04's tiny model, fitted to five lines of Hamlet ({args.train_steps} "
              "steps) ==")
        model, tok, data = diff.demo_model(args.train_steps,
                                           torch.Generator().manual_seed(args.seed),
                                           log=lambda s: 0)
        L = len(data)
    canvas = torch.full((1, L), model.config.mask_id, device=next(model.parameters()).device)
    print(f"{'decoder':<36} {'calls':>5} {'tokens/call':>11} {'seconds':>8}  same text as one per "
          "call")
    base = None
    for name, kw in decoders(L):
        # the paper's orders
        order = "entropy" if kw.get("rule") and kw["rule"].kind == "eb" else "confidence"
        t0 = time.perf_counter()
        # greedy
        x, calls = generate_fast(model, canvas, diff.Sampling(temperature=0, order=order), **kw)
        dt = time.perf_counter() - t0
        base = x if base is None else base
        same = (x == base).float().mean().item()
        print(f"{name:<36} {calls:>5} {L / calls:>11.1f} {dt:>8.2f}  {same:.0%} of positions")
    print(f"\ngreedy text, one token per call:\n{tok.decode(base[0].tolist())}")


def main(argv=None):
    args = parse_args_given(fast_parser(), argv)
    if args.command == "generate":
        if rule_of(args) is not None and "steps" in args.given:
            raise UsageError("--steps fixes the number of calls; with --threshold, --factor or "
                             "--entropy-budget the model decides it: drop --steps")
        if args.cache != "none" and args.block_size is None:
            raise UsageError(f"--cache {args.cache} is refreshed at each block: give --block-size "
                             "too (e.g. 32)")
        return gen.generate_cli(args, sampler=sample_fast)
    return demo_decoders(args)


if __name__ == "__main__":
    run_cli(main)
