"""Lesson 04: absorbing-state masked diffusion: forward process, NELBO loss, likelihood, samplers, block diffusion.

A masked diffusion LM (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024; LLaDA, Nie et al. 2025) corrupts
text by replacing each token with [MASK] with probability 1 - alpha_t, and learns to undo it:

    t = 0.0   To be, or not to be: that is the question
    t = 0.5   T_ b_, o_ n__ __ b_: _h_t is t_e _ues_i_n      (about half the tokens masked)
    t = 1.0   ________________________________________      (all masked: where sampling starts)

Sampling runs the arrow backwards: start all-[MASK], predict every masked position in parallel, commit a
few of the predictions, repeat. Unlike a GPT, the model sees both sides of every gap.

The last section joins the two: block diffusion (BD3-LM), a GPT over blocks of B tokens and a dLLM inside each.

    python 04_diffusion.py
"""
import argparse
import math
from importlib import import_module

import torch
import torch.nn.functional as F

tfm = import_module("03_transformer")

EPS = 1e-3  # t is drawn from [EPS, 1]: at t -> 0 nothing is masked and w(t) = 1/t explodes
LN2 = math.log(2)
REMASKING = ("confidence", "margin", "entropy", "random")


class CharTokenizer:
    """One token per character; [MASK] (id = vocab_size) is shown as `mask_char` when decoding."""

    kind = "char"

    def __init__(self, tokens):
        self.tokens = list(tokens)
        self.stoi = {s: i for i, s in enumerate(self.tokens)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(cls.split(text))))

    @property
    def vocab_size(self):
        return len(self.tokens)

    @staticmethod
    def split(text):
        return list(text)

    def unknown(self, text):
        """The pieces of `text` that have no id, in order of first appearance."""
        return list(dict.fromkeys(s for s in self.split(text) if s not in self.stoi))

    def encode(self, text):
        try:
            return [self.stoi[s] for s in self.split(text)]
        except KeyError:  # only now scan for every missing piece, so that the message names them all
            missing = " ".join(repr(s) for s in self.unknown(text))
            raise KeyError("not in the vocabulary: " + missing) from None

    def decode(self, ids, mask_char="_"):
        return "".join(self.tokens[i] if i < len(self.tokens) else mask_char for i in ids)

    def to_dict(self):
        return {"kind": self.kind, "tokens": self.tokens}


# ---------------------------------------------------------------------------------------------------------
# Noise schedule alpha_t = P(token still clean at time t), and the ELBO weight w(t) = -alpha_t' / (1 - alpha_t)
# ---------------------------------------------------------------------------------------------------------
def alpha(t, schedule="linear"):
    if schedule == "linear":  # what every model here trains with
        return 1 - t
    if schedule == "cosine":  # aside: another schedule; the NELBO is the same in expectation (MD4 sec. 3)
        return torch.cos(0.5 * math.pi * t)
    raise ValueError(f"unknown schedule {schedule!r}")


def loss_weight(t, schedule="linear"):
    """w(t) = -alpha'(t) / (1 - alpha(t)): 1/t for the linear schedule (MDLM eq. 10)."""
    if schedule == "linear":
        return 1 / t
    if schedule == "cosine":  # aside, as in alpha()
        return 0.5 * math.pi * torch.sin(0.5 * math.pi * t) / (1 - torch.cos(0.5 * math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r}")


def rng_device(generator, device):
    """Random numbers are drawn where their generator lives (else on `device`): on a GPU no copy, no sync."""
    return generator.device if generator is not None else device


def sample_times(batch_size, generator=None, device=None, eps=EPS, hi=1.0):
    """One t per sequence, low-discrepancy: t_i = (u + i/B) mod 1, mapped to [eps, hi] (MDLM / VDM)."""
    dev = rng_device(generator, device)
    u = torch.rand(1, generator=generator, device=dev)
    t = (u + torch.arange(batch_size, device=dev) / batch_size) % 1
    return (eps + (hi - eps) * t).to(device)  # (B,)


def forward_process(x0, t, mask_id, schedule="linear", generator=None):
    """Mask each token independently with probability 1 - alpha_t. x0: (B, L), t: (B,) or (B, L) -> z_t, mask."""
    p_mask = 1 - alpha(t if t.dim() == 2 else t[:, None], schedule)  # (B, 1) or (B, L): one t per token
    u = torch.rand(x0.shape, generator=generator, device=rng_device(generator, x0.device))
    mask = u.to(x0.device) < p_mask  # (B, L) True = masked
    return torch.where(mask, mask_id, x0), mask


def masked_cross_entropy(model, x0, z, mask, block_len=0):
    """-log p_theta(x0 | z_t) at masked positions, 0 elsewhere: (B, L), in nats.

    block_len > 0: block diffusion, where each block is denoised given the CLEAN blocks before it (below)."""
    logits = block_logits(model, z, x0, block_len) if 0 < block_len < x0.size(1) else model(z)  # (B, L, V)
    ce = F.cross_entropy(logits.float().flatten(0, 1), x0.flatten(), reduction="none").view_as(x0)
    return ce * mask  # unmasked positions are carried over unchanged: they cost 0 (SUBS)


def diffusion_loss(model, x0, mask_id, schedule="linear", generator=None, eps=EPS, block_len=0, t_range=None):
    """The training objective: the continuous-time NELBO per token, in nats (MDLM eq. 10, MD4 eq. 5).

    loss = E_t [ w(t) * sum_{masked l} -log p(x0_l | z_t) ] / L.  Not a plain mean over masked tokens:
    that is not a likelihood bound and cannot be compared with a GPT's loss.
    block_len > 0: block diffusion, one t per block (the NELBO of each block given the ones before it).
    t_range (lo, hi): draw t in [lo, hi] only (BD3-LM's clipped schedule: lower variance, no longer the bound).
    """
    B, L = x0.shape
    n_blocks = -(-L // block_len) if block_len else 1
    t = sample_times(B * n_blocks, generator, x0.device, *(t_range or (eps, 1.0)))  # strata spread over the batch
    t = t.view(n_blocks, B).T.repeat_interleave(block_len or L, dim=1)[:, :L]  # (B, L): each token its block's t
    z, mask = forward_process(x0, t, mask_id, schedule, generator)
    return (loss_weight(t, schedule) * masked_cross_entropy(model, x0, z, mask, block_len)).sum() / (B * L)


@torch.no_grad()
def nelbo_bits(model, windows, mask_id, K=32, method="time", seed=0, batch_size=64, eps=EPS, block_len=0,
               span=None):
    """Upper bound on -log2 p(x) per token, averaged over `windows` (N, L), K stratified draws each.

    method="time": t_k = eps + (1 - eps)(k + u)/K with the linear schedule, weight 1/t (valid for a model
      trained with any schedule and no time input, MD4 sec. 3).
    method="count" (an aside): LLaDA's form: mask exactly l_k = 1 + floor(L (k + u)/K) tokens, weight L/l
      (lower variance).
    block_len > 0: block diffusion; the sum over blocks of each block's bound given the clean blocks before it
      (every block of a window shares the window's t_k: still K stratified draws for each block's term).
    span (lo, hi) or a (L,) bool mask: only those positions are ever masked and scored: a bound on
      -log2 p(x[span] | the rest), per token of the span (infilling; span=(1, L) scores what a GPT scores given
      the first token; a mask with several runs is a template with several gaps).
    Fixed seed -> the same masks every call, so curves are comparable across runs.
    """
    g = torch.Generator().manual_seed(seed)
    N, L = windows.shape
    inside = span_mask(span, L)  # (L,) the positions the bound is about
    n_span = int(inside.sum())
    device = windows.device
    total = 0.0
    for i in range(0, N, max(1, batch_size // K)):
        x0 = windows[i : i + max(1, batch_size // K)].repeat_interleave(K, dim=0)  # (n*K, L)
        n = x0.size(0) // K
        u = torch.rand(n, 1, generator=g)
        strata = ((torch.arange(K) + u) / K).flatten()  # (n*K,) one stratum per copy
        if method == "time":
            t = eps + (1 - eps) * strata
            mask = torch.rand(x0.shape, generator=g) < t[:, None]
            weight = 1 / t
        elif method == "count":  # aside: the same bound with lower variance; not used by the trainers
            n_mask = (1 + (strata * n_span).long()).clamp(max=n_span)  # (n*K,) in 1..n_span
            u = torch.rand(x0.shape, generator=g).masked_fill(~inside, 2.0)  # outside the span: ranked last
            ranks = u.argsort(1).argsort(1)  # a random order of the span's positions, per row
            mask = ranks < n_mask[:, None]  # exactly n_mask masked
            weight = n_span / n_mask.float()
        else:
            raise ValueError(f"unknown method {method!r}")
        mask = (mask & inside).to(device)
        z = torch.where(mask, mask_id, x0)
        total += (weight.to(device)[:, None] * masked_cross_entropy(model, x0, z, mask, block_len)).sum().item()
    return total / (N * K) / n_span / LN2


@torch.no_grad()
def left_to_right_bits(model, windows, mask_id, batch_size=64, span=None):
    """Exact -log2 p(x) per token of the dLLM used as a left-to-right sampler, averaged over `windows` (N, L).

    Unmasking one position at a time, in order, is a generative model in its own right:
    p_LR(x) = prod_i p_theta(x_i | x_<i, [MASK] at every position >= i). Its likelihood is exact, not a bound,
    so it is directly comparable with a GPT's NLL; the NELBO is the same quantity averaged over random orders.
    span (lo, hi) or a (L,) bool mask: the exact -log2 p(x[span] | everything else) by the chain rule inside the
    span, left to right, with both sides visible: the infilling likelihood (several gaps: one mask with several
    runs). Costs one forward pass per scored position.
    """
    N, L = windows.shape
    scored = span_mask(span, L).to(windows.device)  # (L,)
    pos = torch.arange(L, device=windows.device)
    rows = pos[scored]  # the position each canvas predicts
    hidden = (pos[None, :] >= rows[:, None]) & scored[None, :]  # (n, L): row i hides the span from i on
    total = 0.0
    for x in windows:  # x: (L,)
        canvases = torch.where(hidden, mask_id, x)  # row i: x_<i, [MASK] over the rest of the span, the rest of x
        for r in range(0, len(rows), batch_size):
            i = rows[r : r + batch_size]  # (b,)
            logits = model(canvases[r : r + batch_size])[torch.arange(len(i)), i]  # (b, V)
            total -= logits.float().log_softmax(-1).gather(1, x[i][:, None]).sum().item()
    return total / (N * len(rows)) / LN2


def span_mask(span, L):
    """(L,) bool: the positions a likelihood is about. span: None (all), (lo, hi), or already a mask."""
    if span is None:
        return torch.ones(L, dtype=torch.bool)
    if isinstance(span, torch.Tensor):
        return span.cpu().bool()
    pos = torch.arange(L)
    return (pos >= span[0]) & (pos < span[1])


# ---------------------------------------------------------------------------------------------------------
# Sampling: the reverse process
# ---------------------------------------------------------------------------------------------------------
def filter_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Temperature, then top-k (keep the k largest), then top-p (smallest set with mass >= p)."""
    logits = logits / temperature
    if top_k and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already reaches p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_tokens(logits, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """Draw one token per position from (..., V) logits; temperature 0 = argmax.

    torch.multinomial, not Gumbel-max in float32, which lowers the effective temperature (Zheng et al. 2024).
    """
    if temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float(), temperature, top_k, top_p).softmax(-1)
    flat = probs.reshape(-1, probs.size(-1)).to(rng_device(generator, logits.device))  # no copy if they match
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1]).to(logits.device)


def confidence(logits, remasking, proposal, generator=None):
    """How sure the model is at each position (higher = commit first), from its own softmax(logits).

    proposal (...,): the tokens just drawn; "confidence" scores the probability of the drawn token, as LLaDA
    does, so a low-probability draw is not committed early on the strength of some other token."""
    if remasking == "random":  # random order: with LLaDA's counts this is the exact ancestral sampler
        u = torch.rand(logits.shape[:-1], generator=generator, device=rng_device(generator, logits.device))
        return u.to(logits.device)
    probs = logits.float().softmax(-1)
    if remasking == "confidence":  # LLaDA low_confidence remasking: p(drawn token)
        return probs.gather(-1, proposal[..., None]).squeeze(-1)
    if remasking == "margin":  # top-1 minus top-2 probability
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    if remasking == "entropy":  # lowest entropy first
        return (probs * probs.clamp_min(1e-12).log()).sum(-1)
    raise ValueError(f"unknown remasking {remasking!r}; choose from {', '.join(REMASKING)}")


def steps_per_block(steps, n_blocks):
    """Spread `steps` model calls over the blocks, the remainder over the first blocks."""
    return [steps // n_blocks + (b < steps % n_blocks) for b in range(n_blocks)]


def commit_counts(n_masked, n_steps):
    """(B,) masked counts -> (B, n_steps) tokens to commit per step; sums to n_masked (LLaDA)."""
    base = n_masked[:, None] // n_steps
    rem = n_masked[:, None] % n_steps
    return base + (torch.arange(n_steps, device=n_masked.device) < rem).long()


def _ranks(conf):
    """Rank of each position by confidence, 0 = most confident. conf: (B, n)."""
    order = conf.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(conf.size(1), device=conf.device).expand_as(order))
    return ranks


def propose(logits, masked, temperature, top_k, top_p, remasking, generator):
    """One reverse step's raw material: a token drawn at every position, and the confidence ranks of the
    still-masked ones (0 = commit first; positions already known rank last)."""
    proposal = sample_tokens(logits, temperature, top_k, top_p, generator)  # (B, n)
    conf = confidence(logits, remasking, proposal, generator).masked_fill(~masked, float("-inf"))
    return proposal, conf, _ranks(conf)


@torch.no_grad()
def generate(model, canvas, mask_id, steps=64, temperature=1.0, top_k=0, top_p=1.0, remasking="confidence",
             block_size=None, callback=None, generator=None):
    """Fill every [MASK] of `canvas` (B, L) in `steps` model calls; known tokens (prompt, suffix, template)
    are never changed. Each call predicts every masked position, and the `counts` most confident are kept.

    block_size: semi-autoregressive blocks (LLaDA): block b is finished before block b+1 is touched, the steps
      spread over the blocks. With fewer masks than steps, one call per mask.
    callback(calls, x) is called after every model call. Returns (x, number of model calls).
    """
    x = canvas.clone()
    B, L = x.shape
    starts = list(range(0, L, block_size or L))
    if steps < len(starts):
        raise ValueError(f"steps ({steps}) must be >= the number of blocks ({len(starts)})")
    calls = 0
    for s, budget in zip(starts, steps_per_block(steps, len(starts))):
        e = min(s + (block_size or L), L)
        n_masked = (x[:, s:e] == mask_id).sum(1)  # (B,)
        if n_masked.max() == 0:
            continue
        counts = commit_counts(n_masked, min(budget, int(n_masked.max())))  # (B, n_steps) to commit per call
        for i in range(counts.size(1)):
            logits = model(x)[:, s:e]  # (B, n, V): the whole canvas is seen, both sides of every gap
            masked = x[:, s:e] == mask_id
            proposal, _, ranks = propose(logits, masked, temperature, top_k, top_p, remasking, generator)
            commit = (ranks < counts[:, i : i + 1]) & masked  # the counts[i] most confident masked positions
            x[:, s:e] = torch.where(commit, proposal, x[:, s:e])
            calls += 1
            if callback is not None:
                callback(calls, x)
    return x, calls


# ---------------------------------------------------------------------------------------------------------
# Fast decoding (Fast-dLLM, Wu et al. 2025): commit as many as the model is sure of; reuse keys and values
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


@torch.no_grad()
def generate_fast(model, canvas, mask_id, threshold=None, factor=None, entropy_budget=None, steps=64,
                  block_size=None, cache="none", temperature=1.0, top_k=0, top_p=1.0, remasking="confidence",
                  callback=None, generator=None):
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
            counts = commit_counts(n_masked, min(budget, int(n_masked.max())))
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
            masked = x[:, s:e] == mask_id  # (B, n) still masked in this block
            proposal, conf, ranks = propose(logits, masked, temperature, top_k, top_p, remasking, generator)
            if adaptive:
                commit = parallel_commit(logits, masked, conf, ranks, **rule)
            else:
                commit = (ranks < counts[:, i : i + 1]) & masked
            x[:, s:e] = torch.where(commit, proposal, x[:, s:e])
            i += 1
            if callback is not None:
                callback(calls, x)
    return x, calls


# ---------------------------------------------------------------------------------------------------------
# Block diffusion (BD3-LM, Arriola et al. 2025): a GPT over blocks, a dLLM inside each block
# ---------------------------------------------------------------------------------------------------------
# Cut the text into blocks of B tokens: log p(x) = sum_b log p(x_b | x_<b), and bound each term by the masked
# diffusion NELBO of block b given the CLEAN blocks before it. B = 1 is a GPT (trained with a noisy estimate of
# its loss), B = L the dLLM above: one knob joins lessons 05 and 07. Committed blocks never change, so their keys
# and values can be cached exactly (unlike Fast-dLLM's approximate cache), and the text can go on for any length.
def block_diffusion_mask(L, block_len, device=None):
    """(2L, 2L) attention mask for one training pass over [x_t ; x_0] (True = may attend), BD3-LM's vectorised
    form. The 2L keys are L noisy then L clean ones:

        query   key:    noisy block c      clean block c
        noisy block b   c == b             c < b          each block denoised given the clean blocks before it
        clean block b   never              c <= b         block-causal: what the sampler's cache holds
    """
    blk = torch.arange(L, device=device) // block_len  # (L,) block of each position
    # GPT vs dLLM: a noisy token sees its own block both ways (as the dLLM does) and the clean past (as a GPT does)
    same, before = blk[:, None] == blk[None, :], blk[:, None] > blk[None, :]  # (L, L) each
    return torch.cat([torch.cat([same, before], 1), torch.cat([torch.zeros_like(same), same | before], 1)], 0)


def block_logits(model, z, x0, block_len):
    """(B, L, V) logits at the noisy z_t, each block seeing itself and the clean blocks before it: one pass
    over [z_t ; x_0] (2L tokens; both halves sit at positions 0..L-1), about twice a plain pass."""
    L = z.size(1)
    pos = torch.arange(L, device=z.device).repeat(2)  # (2L,)
    mask = block_diffusion_mask(L, block_len, z.device)  # (2L, 2L)
    return model(torch.cat([z, x0], 1), pos=pos, attn_mask=mask)[:, :L]  # the noisy half only


def find_stop(ids, stops, start=0):
    """The end of the first of the token sequences `stops` in the list `ids` (from `start`), or None."""
    for i in range(start, len(ids)):
        for s in stops:
            if ids[i : i + len(s)] == s:
                return i + len(s)
    return None


@torch.no_grad()
def generate_blocks(model, prompt, n_new, mask_id, steps=None, threshold=None, factor=None, entropy_budget=None,
                    cache=True, temperature=1.0, top_k=0, top_p=1.0, remasking="confidence", stop=(),
                    callback=None, generator=None):
    """Write n_new tokens after prompt (B, P) with a block-diffusion model: block by block, left to right.

    Inside a block: `steps` calls (default: one token per call), or the model decides how many per call
      (threshold / factor / entropy_budget, as in generate_fast).
    cache=True: the keys and values of committed blocks are computed once and kept, exactly (they never change:
      a clean block attends only to itself and earlier blocks). The first call of each block feeds the block just
      finished together with the new masked one, so caching costs no extra call. cache=False recomputes the
      whole window at every call: the same numbers, the same output.
    stop: token-id sequences; generation ends with the block in which every row has written one of them.
    When the context is full, the window slides (the last half, whole blocks, is read again; as 07's GPT does).
    callback(calls, x) after every call. Returns (x (B, P + n) with n <= n_new, number of model calls).
    """
    cfg = model.config
    bl, ctx = cfg.block_len or cfg.block_size, cfg.block_size
    B, P = prompt.shape
    total = P + n_new
    x = torch.cat([prompt, prompt.new_full((B, n_new), mask_id)], 1)  # (B, P + n_new): everything, [MASK] to write
    kv = tfm.KVCache(cfg, B, ctx, x.device) if cache else None
    rule = dict(threshold=threshold, factor=factor, entropy_budget=entropy_budget)
    adaptive = any(v is not None for v in rule.values())
    done = [False] * B
    w0, c, calls = 0, 0, 0  # the model sees x[:, w0:]; x[:, w0:c] is in the cache
    a = P // bl * bl  # the first block with something to write (it may begin inside the prompt)
    while a < total:  # GPT vs dLLM: left to right over blocks, as a GPT; inside a block, unmasking as the dLLM
        e = min(a + bl, total)  # this block: x[:, a:e]
        if e - w0 > ctx:  # the context is full: slide the window, keep the last half, re-read it
            w0 = a - (ctx // 2) // bl * bl
            c = w0
        if kv is not None and c == w0:
            kv.filled = 0  # nothing of this window is cached yet
        n_masked = (x[:, a:e] == mask_id).sum(1)  # (B,)
        counts = None if adaptive else commit_counts(n_masked, min(steps or bl, max(1, int(n_masked.max()))))
        i = 0
        while (x[:, a:e] == mask_id).any():
            s = c if kv is not None else w0  # feed x[:, s:e]: uncached clean blocks, then this block
            logits = model(x[:, s:e], cache=kv, start=s - w0)[:, a - s :]  # (B, e - a, V)
            calls += 1
            if kv is not None:
                c = a  # the clean blocks before this one are cached now; later calls feed this block alone
            masked = x[:, a:e] == mask_id
            proposal, conf, ranks = propose(logits, masked, temperature, top_k, top_p, remasking, generator)
            if adaptive:
                commit = parallel_commit(logits, masked, conf, ranks, **rule)
            else:
                commit = (ranks < counts[:, min(i, counts.size(1) - 1)][:, None]) & masked
            x[:, a:e] = torch.where(commit, proposal, x[:, a:e])
            i += 1
            if callback is not None:
                callback(calls, x[:, :e])
        if stop:  # look for a stop sequence in what this block may have completed
            lo = max(P, a - max(len(s) for s in stop) + 1)
            done = [d or find_stop(row, stop) is not None for d, row in zip(done, x[:, lo:e].tolist())]
            if all(done):
                return x[:, :e], calls
        a = e
    return x, calls


# ---------------------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------------------
DEMO_TEXT = (  # Hamlet III.1, public domain
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-steps", type=int, default=300, help="steps to fit a tiny model on the demo text")
    p.add_argument("--steps", type=int, default=16, help="denoising steps of the printed sampling run")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args(argv)
    if args.train_steps < 0 or args.steps < 1:
        p.error("--train-steps must be >= 0 and --steps >= 1")
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    tok = CharTokenizer.from_text(DEMO_TEXT)
    data = torch.tensor(tok.encode(DEMO_TEXT))  # (L,): the five lines, 216 characters
    L = len(data)

    print("== the forward process: mask each character with probability 1 - alpha_t = t ==")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        z, _ = forward_process(data[None, :42], torch.tensor([t]), tok.vocab_size, generator=g)  # first line
        print(f"t = {t:4.2f}  {tok.decode(z[0].tolist())}")

    # One window holding the whole text. Learned positions (rope=False): when every input is [MASK], a model
    # that knows only relative positions (RoPE) sees L identical tokens and must predict the same at each.
    cfg = tfm.build_config("tiny", vocab_size=tok.vocab_size, block_size=L, n_embd=64, n_head=4, rope=False)
    model = tfm.Transformer(cfg)
    batch = data[None].repeat(8, 1)  # (8, L): 8 copies, each gets its own t and its own mask
    print(f"\n== the loss of an untrained model ({model.num_params():,} parameters) ==")
    loss = diffusion_loss(model, batch, cfg.mask_id, generator=g).item()
    print(f"NELBO per token {loss:.3f} nats  vs  ln(V) = ln({tok.vocab_size}) = {math.log(tok.vocab_size):.3f}: "
          "a uniform guess costs ln V at every masked position, and E[w(t) * #masked / L] = 1")

    print(f"\n== fit it to the five lines for {args.train_steps} steps (a tiny model learning them by heart) ==")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(1, args.train_steps + 1):
        loss = diffusion_loss(model, batch, cfg.mask_id, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.train_steps:  # one batch: noisy, the 1/t weight has variance
            print(f"step {step:4d}  NELBO {loss.item():.3f} nats/char")

    model.eval()
    print(f"NELBO of the text: {nelbo_bits(model, data[None], cfg.mask_id, K=16):.3f} bits/char (upper bound)")
    print(f"\n== denoising {L} characters of [MASK] in {args.steps} steps (confidence remasking, temperature 0.8) ==")
    frames = [torch.full((1, L), cfg.mask_id)]
    x, _ = generate(model, frames[0], cfg.mask_id, steps=args.steps, temperature=0.8, generator=g,
                    callback=lambda calls, x: frames.append(x.clone()))
    for i in sorted({0, 1, len(frames) // 2, len(frames) - 1}):
        print(f"-- after step {i} --\n{tok.decode(frames[i][0].tolist())}")
    wrong = sum(a != b for a, b in zip(tok.decode(x[0].tolist()), DEMO_TEXT))
    print("memorised: the five lines, exactly" if wrong == 0 else f"not memorised: {wrong} of {L} characters differ")


if __name__ == "__main__":
    main()
