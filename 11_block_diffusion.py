"""Lesson 11: block diffusion (BD3-LM, Arriola et al. 2025): a GPT over blocks, a dLLM
inside each block.

Cut the text into blocks of B tokens: log p(x) = sum_b log p(x_b | x_<b), and bound each term by the
masked diffusion NELBO of block b given the CLEAN blocks before it. B = 1 is a GPT (trained with a
noisy estimate of its loss), B = the context is lesson 04's dLLM: one knob joins lessons 05 and 07.
Committed blocks never change, so their keys and values can be cached exactly (unlike lesson 10's
approximate cache), and the text can go on for any length. It trains through lesson 05's loop with
its own objective, as the GPT does (07).

    python 11_block_diffusion.py                          # demo: the mask, a tiny model, sampling
    python 11_block_diffusion.py train --block-diffusion 4   # 05's loop -> checkpoints/dllm_bd4
    python 11_block_diffusion.py generate --checkpoint checkpoints/dllm_bd4 --len 1000 \\
        --stop "\\n\\n"
"""
import time
from importlib import import_module
from pathlib import Path

import torch

from support.cli import (
    ArgumentParser,
    UsageError,
    non_negative_int,
    parse_args_given,
    positive_int,
    random_seed,
    run_cli,
    subcommands,
)
from support.files import read_text

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")
fast = import_module("10_fast_decoding")
ROOT = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------
# Training: each block denoised given the clean blocks before it, all blocks in one pass
# ----------------------------------------------------------------------------------------------
def block_diffusion_mask(L, block_len, device=None):
    """(2L, 2L) attention mask for one training pass over [x_t ; x_0] (True = may attend), BD3-LM's
    vectorised form. The 2L keys are L noisy then L clean ones:

        query   key:    noisy block c   clean block c
        noisy block b   c == b          c < b       denoised given the clean blocks before it
        clean block b   never           c <= b      block-causal: what the sampler's cache holds
    """
    blk = torch.arange(L, device=device) // block_len  # (L,) block of each position
    # GPT vs dLLM: a noisy token sees its own block both ways (as the dLLM does) and the clean past
    # (as a GPT does)
    same, before = blk[:, None] == blk[None, :], blk[:, None] > blk[None, :]  # (L, L) each
    top = torch.cat([same, before], 1)  # noisy queries
    bottom = torch.cat([torch.zeros_like(same), same | before], 1)  # clean queries
    return torch.cat([top, bottom], 0)


def block_logits(model, z, x0, block_len):
    """(B, L, V) logits at the noisy z_t, each block seeing itself and the clean blocks before
    it: one pass over [z_t ; x_0] (2L tokens; both halves sit at positions 0..L-1), about twice
    a plain pass."""
    L = z.size(1)
    pos = torch.arange(L, device=z.device).repeat(2)  # (2L,)
    mask = block_diffusion_mask(L, block_len, z.device)  # (2L, 2L)
    return model(torch.cat([z, x0], 1), pos=pos, attn_mask=mask)[:, :L]  # the noisy half only


def block_diffusion_loss(model, x0, mask_id, block_len, generator=None, t_range=(diff.EPS, 1.0)):
    """Lesson 04's NELBO per token with one noise level t per block, each block given the clean
    ones before it.

    t_range (lo, hi): draw t in [lo, hi] only (BD3-LM's clipped schedule: lower variance on small
    blocks, but no longer the bound; validation always uses the full one)."""
    B, L = x0.shape
    n_blocks = -(-L // block_len)
    # strata spread over the batch
    t = diff.sample_times(B * n_blocks, generator, x0.device, *t_range)
    # (B, L): each token its block's t
    t = t.view(n_blocks, B).T.repeat_interleave(block_len, dim=1)[:, :L]
    z, mask = diff.forward_process(x0, t, mask_id, generator)
    logits = block_logits(model, z, x0, block_len)
    return (diff.loss_weight(t) * diff.masked_cross_entropy(logits, x0, mask)).sum() / (B * L)


def block_nelbo_bits(model, windows, K=32, **kw):
    """Lesson 04's bound with each block seeing the clean blocks before it: the sum over blocks of
    each block's bound (every block of a window shares the window's t_k: still K stratified draws
    for each block's term)."""
    bl = model.config.block_len
    return diff.nelbo_bits(model, windows, model.config.mask_id, K=K,
                           denoise=lambda z, x0: block_logits(model, z, x0, bl), **kw)


class BlockDiffusionObjective(train.DiffusionObjective):
    """05's dLLM objective with blocks: the block-diffusion loss, its bound,
    the block-by-block sampler."""

    name, trainer = "block-diffusion", "11_block_diffusion.py train"

    def __init__(self, block_len=4, t_range=(diff.EPS, 1.0)):
        self.block_len, self.t_range = block_len, t_range
        # GPT vs dLLM: a dLLM with [MASK], attention block-causal (03's attention_mask)
        self.model_overrides = dict(causal=False, mask_token=True, block_len=block_len)

    def loss(self, model, x, config):
        return block_diffusion_loss(model, x[:, :-1], config.mask_id, config.block_len,
                                    t_range=self.t_range)

    def val_bits(self, model, windows, K, config):
        return block_nelbo_bits(model, windows[:, :-1], K=K)

    def sample(self, model, tokenizer, n, generator):
        # GPT vs dLLM: block diffusion writes left to right, block by block, 2 characters per call
        empty = torch.empty(1, 0, dtype=torch.long, device=next(model.parameters()).device)
        steps = max(1, model.config.block_len // 2)
        x, _ = generate_blocks(model, empty, n, diff.Sampling(generator=generator), steps)
        return tokenizer.decode(x[0].tolist())


# ----------------------------------------------------------------------------------------------
# Sampling: block by block, left to right, with an exact KV cache
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_blocks(model, prompt, n_new, sampling=diff.DEFAULT, steps=None, rule=None, cache=True,
                    stop=(), callback=None):
    """Write n_new tokens after prompt (B, P) with a block-diffusion model: block by block,
    left to right.

    Inside a block: `steps` calls (default: one token per call), or the model decides how many per
    call
      (rule: lesson 10's Rule, as in generate_fast).
    cache=True: the keys and values of committed blocks are computed once and kept, exactly (they
    never change:
      a clean block attends only to itself and earlier blocks). The first call of each block feeds
      the block just finished together with the new masked one, so caching costs no extra call.
      cache=False recomputes the whole window at every call: the same numbers, the same output.
    stop: token-id sequences; generation ends with the block in which every row has written one of
    them. When the context is full, the window slides (the last half, whole blocks, is read again;
    as 07's GPT does). callback(calls, x) after every call. Returns (x (B, P + n) with n <= n_new,
    number of model calls).
    """
    cfg, mask_id = model.config, model.config.mask_id
    bl, ctx = cfg.block_len or cfg.block_size, cfg.block_size
    B, P = prompt.shape
    total = P + n_new
    # (B, P + n_new): everything, [MASK] to write
    x = torch.cat([prompt, prompt.new_full((B, n_new), mask_id)], 1)
    kv = tfm.KVCache(cfg, B, ctx, x.device) if cache else None
    done = [False] * B
    w0, c, calls = 0, 0, 0  # the model sees x[:, w0:]; x[:, w0:c] is in the cache
    a = P // bl * bl  # the first block with something to write (it may begin inside the prompt)
    # GPT vs dLLM: left to right over blocks, as a GPT; inside a block, unmasking as the dLLM
    while a < total:
        e = min(a + bl, total)  # this block: x[:, a:e]
        if e - w0 > ctx:  # the context is full: slide the window, keep the last half, re-read it
            w0 = a - (ctx // 2) // bl * bl
            c = w0
        if kv is not None and c == w0:
            kv.filled = 0  # nothing of this window is cached yet
        n_masked = (x[:, a:e] == mask_id).sum(1)  # (B,)
        counts = None if rule else diff.commit_counts(n_masked,
                                                      min(steps or bl, max(1, int(n_masked.max()))))
        i = 0
        while (x[:, a:e] == mask_id).any():
            # feed x[:, s:e]: uncached clean blocks, then this block
            s = c if kv is not None else w0
            logits = model(x[:, s:e], cache=kv, start=s - w0)[:, a - s :]  # (B, e - a, V)
            calls += 1
            if kv is not None:
                # the clean blocks before this one are cached now; later calls feed this block alone
                c = a
            count = None if rule else counts[:, min(i, counts.size(1) - 1)][:, None]
            x[:, a:e] = fast.commit_step(logits, x[:, a:e], mask_id, count, rule, sampling)
            i += 1
            if callback is not None:
                callback(calls, x[:, :e])
        if stop:  # look for a stop sequence in what this block may have completed
            lo = max(P, a - max(len(s) for s in stop) + 1)
            done = [d or gen.find_stop(row, stop) is not None for d, row
                    in zip(done, x[:, lo:e].tolist())]
            if all(done):
                return x[:, :e], calls
        a = e
    return x, calls


def sample_blocks(model, tokenizer, args, callback=None):
    """06's --prompt continued for --len characters, block by block. Returns (x (N, P +
    n), model calls)."""
    if args.suffix or args.template is not None:
        raise UsageError("a block-diffusion model writes left to right and cannot fill gaps: use "
                         "--prompt")
    device, bl = next(model.parameters()).device, model.config.block_len
    prompt = torch.tensor(gen.encode_or_fail(tokenizer, args.prompt, "--prompt"), dtype=torch.long,
                          device=device)
    prompt = prompt[None].repeat(args.num_samples, 1)  # (N, P)
    n = args.len or model.config.block_size
    n_blocks = -(-(prompt.size(1) % bl + n) // bl)
    steps = args.steps and min(bl, -(-args.steps // n_blocks))  # --steps in all -> per block
    stop = gen.stop_ids(tokenizer, args.stop)
    return generate_blocks(model, prompt, n, gen.sampling(model, args), steps, fast.rule_of(args),
                           args.cache == "exact", [stop] if stop else (), callback=callback)


# ----------------------------------------------------------------------------------------------
# The command line: the demo, `train` (05's flags) or `generate` (06's and 10's)
# ----------------------------------------------------------------------------------------------
def block_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=non_negative_int, default=300,
                   help="demo: steps to fit a tiny model")
    p.add_argument("--seed", type=random_seed, default=0, help="demo: random seed")
    sub_parser = subcommands(p, ["train", "generate"])
    t = train.training_parser(None, ROOT / "checkpoints" / "dllm_bd4", parser=sub_parser(
        "train", "train a block-diffusion model through lesson 05's loop"))
    g = t.add_argument_group("block diffusion")
    g.add_argument("--block-diffusion", type=positive_int, default=4, metavar="B",
                   help="blocks of B tokens (1 = a GPT's factorisation; --seq-len = the plain "
                   "dLLM); default --out checkpoints/dllm_bd<B>")
    train.add_mask_rate_arg(g)
    g = gen.add_generate_args(sub_parser("generate", "generate from a block-diffusion checkpoint"),
                              ROOT / "checkpoints" / "dllm_bd4", shipped=None)
    fast.add_rule_args(g)
    g.add_argument("--cache", default="exact", choices=["exact", "none"],
                   help="keep the keys and values of committed blocks (exact: they never change), "
                   "or recompute the window at every call")
    return p


def main(argv=None):
    args = parse_args_given(block_parser(), argv)
    if args.command == "train":
        run_dir = lambda a: ROOT / "checkpoints" / f"dllm_bd{a.block_diffusion}"
        args = train.resolve(args, default_out=run_dir)
        if args.block_diffusion > args.seq_len:
            raise UsageError(f"--block-diffusion {args.block_diffusion} is longer than the "
                             f"context (--seq-len {args.seq_len})")
        text = read_text(args.data) if args.data else train.shakespeare()
        data = train.TextData(text, diff.CharTokenizer.from_text(text), args.split)
        return train.train(args,
                           BlockDiffusionObjective(args.block_diffusion, train.mask_rate(args)),
                           data)
    if args.command == "generate":
        return gen.generate_cli(args, sampler=sample_blocks, objective="block-diffusion")
    return demo_blocks(args.train_steps, args.seed)


def demo_blocks(train_steps, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    L, bl = 8, 4
    m = block_diffusion_mask(L, bl)
    print(f"== the training mask over [x_t ; x_0], {L} positions, blocks of {bl} (# = may attend) "
          "==")
    print("            noisy    clean")
    for i, row in enumerate(m.tolist()):
        cells = "".join("#" if v else "." for v in row)
        print(f"{'noisy' if i < L else 'clean'} {i % L}:    {cells[:L]} {cells[L:]}")
    print("a noisy block sees itself (both ways) and the clean blocks before it; a clean block, "
          "the clean past")

    print(f"\n== fit a tiny block-diffusion model (blocks of {bl}) to five lines of "
          f"Hamlet, {train_steps} steps ==")
    tok = diff.CharTokenizer.from_text(diff.DEMO_TEXT)
    data = torch.tensor(tok.encode(diff.DEMO_TEXT))
    cfg = tfm.build_config("tiny", vocab_size=tok.vocab_size, block_size=len(data), n_embd=64,
                           n_head=4, rope=False, block_len=bl)
    model = tfm.Transformer(cfg)
    # (4, L): 4 copies, each its own noise levels (a 2L pass costs twice 04's)
    batch = data[None].repeat(4, 1)
    diff.fit(model, lambda m: block_diffusion_loss(m, batch, cfg.mask_id, bl, generator=g),
             train_steps)
    model.eval()
    print(f"NELBO of the text: {block_nelbo_bits(model, data[None], K=16):.3f} bits/char (upper "
          "bound)")

    prompt = data[None, :5]  # "To be"
    print(f"\n== continue {tok.decode(prompt[0].tolist())!r} block by block, greedy, one "
          "character per call ==")
    texts = []
    for cache in (True, False):
        t0 = time.perf_counter()
        x, calls = generate_blocks(model, prompt, len(data) - 5, diff.GREEDY, cache=cache)
        texts.append(tok.decode(x[0].tolist()))
        print(f"exact KV cache {'on ' if cache else 'off'}: {calls} model "
              f"calls, {time.perf_counter() - t0:.2f} s")
    print(f"the same text both ways: {texts[0] == texts[1]} (the cache is exact: committed blocks "
          "never change)")
    print(texts[0])
    wrong = sum(a != b for a, b in zip(tok.decode(x[0].tolist()), diff.DEMO_TEXT))
    print("memorised: the five lines, exactly" if wrong == 0
          else f"not memorised: {wrong} characters differ")


if __name__ == "__main__":
    run_cli(main)
