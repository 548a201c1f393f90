"""Lesson 04: absorbing-state masked diffusion: forward process, NELBO loss, likelihood, sampler.

A masked diffusion LM (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024; LLaDA, Nie et al. 2025)
corrupts text, each token replaced by [MASK] with probability 1 - alpha_t, and learns to undo it:

    t = 0.0   To be, or not to be: that is the question
    t = 0.5   T_ b_, o_ n__ __ b_: _h_t is t_e _ues_i_n      (about half the tokens masked)
    t = 1.0   ________________________________________      (all masked: where sampling starts)

Sampling runs the arrow backwards: start all-[MASK], predict every masked position in parallel,
commit a few of the predictions, repeat. Unlike a GPT, the model sees both sides of every gap.

Faster decoding (lesson 10) and block diffusion (lesson 11) build on what is here. Asides (the
cosine schedule, LLaDA's count-based estimator) are in bonus/04_nelbo_asides.py.

    python 04_diffusion.py
"""
import math
from dataclasses import dataclass
from importlib import import_module

import torch
import torch.nn.functional as F

from support.cli import ArgumentParser, non_negative_int, positive_int, random_seed, run_cli

tfm = import_module("03_transformer")

EPS = 1e-3  # t is drawn from [EPS, 1]: at t -> 0 nothing is masked and w(t) = 1/t explodes
LN2 = math.log(2)
ORDERS = ("confidence", "margin", "entropy", "random")  # which masked positions are committed first


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
        except KeyError:  # only now scan for every missing piece: the message names them all
            missing = " ".join(repr(s) for s in self.unknown(text))
            raise KeyError("not in the vocabulary: " + missing) from None

    def decode(self, ids, mask_char="_"):
        return "".join(self.tokens[i] if i < len(self.tokens) else mask_char for i in ids)

    def to_dict(self):
        return {"kind": self.kind, "tokens": self.tokens}


# --------------------------------------------------------------------------------------------------
# Noise schedule alpha_t = P(token still clean at time t); ELBO weight w(t) = -alpha'/(1 - alpha)
# --------------------------------------------------------------------------------------------------
def alpha(t):
    """Linear schedule (MDLM, LLaDA): a token is still clean at time t with probability 1 - t.
    Another schedule changes the loss's variance, not its value (bonus/04_nelbo_asides.py)."""
    return 1 - t


def loss_weight(t):
    """w(t) = -alpha'(t) / (1 - alpha(t)) = 1/t for the linear schedule (MDLM eq. 10): masking few
    tokens (small t) tells little about the whole text, so each of those predictions counts more."""
    return 1 / t


def rng_device(generator, device):
    """Random numbers are drawn where their generator lives (else on `device`): no copy, no sync."""
    return generator.device if generator is not None else device


def sample_times(batch_size, generator=None, device=None, eps=EPS, hi=1.0):
    """One t per sequence, low-discrepancy: t_i = (u + i/B) mod 1, mapped to [eps, hi] (MDLM)."""
    dev = rng_device(generator, device)
    u = torch.rand(1, generator=generator, device=dev)
    t = (u + torch.arange(batch_size, device=dev) / batch_size) % 1
    return (eps + (hi - eps) * t).to(device)  # (B,)


def forward_process(x0, t, mask_id, generator=None):
    """Mask each token independently with probability 1 - alpha_t: x0 (B, L), t (B,) or (B, L)."""
    p_mask = 1 - alpha(t if t.dim() == 2 else t[:, None])  # (B, 1) or (B, L): one t per token
    u = torch.rand(x0.shape, generator=generator, device=rng_device(generator, x0.device))
    mask = u.to(x0.device) < p_mask  # (B, L) True = masked
    return torch.where(mask, mask_id, x0), mask


def masked_cross_entropy(logits, x0, mask):
    """-log p_theta(x0 | z_t), nats, at masked positions, else 0: (B, L) from logits (B, L, V)."""
    ce = F.cross_entropy(logits.float().flatten(0, 1), x0.flatten(), reduction="none").view_as(x0)
    return ce * mask  # unmasked positions are carried over unchanged: they cost 0 (SUBS)


def diffusion_loss(model, x0, mask_id, generator=None, t_range=(EPS, 1.0)):
    """The training objective: the continuous-time NELBO per token in nats (MDLM eq. 10, MD4 eq. 5).

    loss = E_t [ w(t) * sum_{masked l} -log p(x0_l | z_t) ] / L. Not a plain mean over masked
    tokens: that is no likelihood bound and cannot be compared with a GPT's loss. t_range (lo, hi):
    draw t in [lo, hi] only (BD3-LM's clipped schedule; 05 --mask-rate): no longer the bound, but
    without the rare huge weights 1/t near t = 0: steadier gradients. Validation keeps the bound."""
    B, L = x0.shape
    t = sample_times(B, generator, x0.device, *t_range)  # (B,) one noise level per sequence
    z, mask = forward_process(x0, t, mask_id, generator)  # (B, L) each
    # GPT vs dLLM: predict the masked tokens from both sides, weighted 1/t (07: next, from the left)
    return (loss_weight(t)[:, None] * masked_cross_entropy(model(z), x0, mask)).sum() / (B * L)


def time_masks(strata, inside, generator, eps=EPS):
    """The NELBO's estimator: t_k = eps + (1 - eps) * stratum, each position of the span masked with
    probability t_k, weight 1/t_k. strata (n,) in [0, 1), inside (L,) -> masks (n, L), weights (n,).
    """
    t = eps + (1 - eps) * strata
    return torch.rand(len(strata), len(inside), generator=generator) < t[:, None], 1 / t


@torch.no_grad()
def nelbo_bits(model, windows, mask_id, K=32, seed=0, batch_size=64, span=None, denoise=None,
               draw=time_masks):
    """Upper bound on -log2 p(x) per token, averaged over `windows` (N, L), K stratified draws each.

    t_k = eps + (1 - eps)(k + u)/K, linear schedule, weight 1/t (valid for a model trained with any
    schedule and no time input, MD4 sec. 3). A fixed seed draws the same masks: curves compare.
    span (lo, hi) or a (L,) bool mask: only those positions are masked and scored, a bound on
    -log2 p(x[span] | the rest) per token of the span (infilling; (1, L): what a GPT scores given
    the first token; a mask with several runs: a template with several gaps). denoise(z, x0):
    how the model sees a noisy window (default model(z); 11 also shows it the clean blocks
    before each block). draw: the estimator (bonus: LLaDA's count form)."""
    g = torch.Generator().manual_seed(seed)
    denoise = denoise or (lambda z, x0: model(z))
    N, L = windows.shape
    inside = span_mask(span, L)  # (L,) the positions the bound is about
    per = max(1, batch_size // K)  # windows per forward pass, K copies each
    total = 0.0
    for i in range(0, N, per):
        x0 = windows[i : i + per].repeat_interleave(K, dim=0)  # (n*K, L)
        u = torch.rand(x0.size(0) // K, 1, generator=g)
        strata = ((torch.arange(K) + u) / K).flatten()  # (n*K,) one stratum per copy
        mask, weight = draw(strata, inside, g)
        mask = (mask & inside).to(windows.device)
        z = torch.where(mask, mask_id, x0)
        nats = masked_cross_entropy(denoise(z, x0), x0, mask)  # (n*K, L)
        total += (weight.to(windows.device)[:, None] * nats).sum().item()
    return total / (N * K) / int(inside.sum()) / LN2


@torch.no_grad()
def left_to_right_bits(model, windows, mask_id, batch_size=64, span=None):
    """Exact -log2 p(x) per token of the dLLM as a left-to-right sampler, over `windows` (N, L).

    Unmasking one position at a time, in order, is a generative model in its own right:
    p_LR(x) = prod_i p_theta(x_i | x_<i, [MASK] at every position >= i). Its likelihood is exact,
    comparable with a GPT's NLL; the NELBO is the same quantity averaged over random orders. span
    (lo, hi) or a (L,) bool mask: the exact -log2 p(x[span] | the rest), chain rule inside the span,
    both sides visible: the infilling likelihood. One forward pass per scored position."""
    N, L = windows.shape
    scored = span_mask(span, L).to(windows.device)  # (L,)
    pos = torch.arange(L, device=windows.device)
    rows = pos[scored]  # the position each canvas predicts
    hidden = (pos[None, :] >= rows[:, None]) & scored[None, :]  # (n, L): row i hides the span >= i
    total = 0.0
    for x in windows:  # x: (L,)
        canvases = torch.where(hidden, mask_id, x)  # row i: x_<i, [MASK] over the rest of the span
        for r in range(0, len(rows), batch_size):
            i = rows[r : r + batch_size]  # (b,)
            logits = model(canvases[r : r + batch_size])[torch.arange(len(i)), i]  # (b, V)
            total -= logits.float().log_softmax(-1).gather(1, x[i][:, None]).sum().item()
    return total / (N * len(rows)) / LN2


def span_mask(span, L):
    """(L,) bool: the positions a likelihood is about. span: None (all), (lo, hi), or a mask."""
    if span is None:
        return torch.ones(L, dtype=torch.bool)
    if isinstance(span, torch.Tensor):
        return span.cpu().bool()
    pos = torch.arange(L)
    return (pos >= span[0]) & (pos < span[1])


# --------------------------------------------------------------------------------------------------
# Sampling: the reverse process
# --------------------------------------------------------------------------------------------------
def filter_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """Temperature, then top-k (keep the k largest), then top-p (smallest set with mass >= p)."""
    # Shift each row so that its largest logit is 0: softmax, top-k and top-p do not change, and a
    # tiny temperature then gives the argmax (-x/T -> -inf), not inf - inf = nan. T is kept at least
    # the dtype's smallest normal number, so that it never rounds to 0 (0/0 = nan).
    logits = logits - logits.amax(-1, keepdim=True).nan_to_num(neginf=0.0)  # (..., V), max 0
    logits = logits / max(temperature, torch.finfo(logits.dtype).tiny)
    if top_k and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already reaches p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@dataclass
class Sampling:
    """How every sampler here draws each token and orders its commits: one object, passed whole.

    temperature, top_k, top_p: the draw (temperature 0 = argmax). order: which masked positions to
    commit first (LLaDA's and Dream's "remasking strategy"); the default, random, is the one every
    sampler here starts from, chosen by a rule stated before measuring (RESULTS.md 9.3): strictly
    surest first loops ("I am a do do"). noise: Gumbel noise of this scale on
    the log confidence of the ORDER, MaskGIT's "choice temperature" (Chang et al. 2022): 0 commits
    strictly the surest first, larger is closer to random order; it never changes the token drawn,
    nor a probability a rule compares with a threshold (lesson 10). generator: the random stream."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    order: str = "random"
    noise: float = 0.0
    generator: torch.Generator | None = None

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose from {', '.join(ORDERS)}")


DEFAULT = Sampling()  # temperature 1, every token, random order: where every sampler starts
GREEDY = Sampling(temperature=0, order="confidence")  # argmax, surest first: Sudoku's decoding


def sample_tokens(logits, s):
    """Draw one token per position from (..., V) logits with the Sampling s; temperature 0 = argmax.
    torch.multinomial, not Gumbel-max in float32, which cools the draw (Zheng et al. 2024)."""
    if s.temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float(), s.temperature, s.top_k, s.top_p).softmax(-1)
    flat = probs.reshape(-1, probs.size(-1)).to(rng_device(s.generator, logits.device))  # (N, V)
    drawn = torch.multinomial(flat, 1, generator=s.generator)  # (N, 1)
    return drawn.view(probs.shape[:-1]).to(logits.device)


def confidence(probs, order, proposal, generator=None):
    """How sure the model is at each position (higher = commit first), from its probs (..., V).
    proposal (...,): the tokens just drawn; "confidence" scores the drawn token's probability, as
    LLaDA's low_confidence remasking does: a weak draw is not committed for others' strength."""
    if order == "random":  # at one token per call, the exact ancestral sampler
        dev = rng_device(generator, probs.device)
        return torch.rand(probs.shape[:-1], generator=generator, device=dev).to(probs.device)
    if order == "confidence":  # LLaDA low_confidence: p(drawn token)
        return probs.gather(-1, proposal[..., None]).squeeze(-1)
    if order == "margin":  # top-1 minus top-2 probability (Kim et al. 2025)
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    return (probs * probs.clamp_min(1e-12).log()).sum(-1)  # "entropy": minus it, lowest first


def commit_counts(n_masked, n_steps):
    """(B,) masked counts -> (B, n_steps) tokens to commit per step; sums to n_masked (LLaDA)."""
    base = n_masked[:, None] // n_steps
    rem = n_masked[:, None] % n_steps
    return base + (torch.arange(n_steps, device=n_masked.device) < rem).long()


def _ranks(score):
    """Rank of each position by score, 0 = the highest. score: (B, n)."""
    order = score.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(score.size(1), device=score.device).expand_as(order))
    return ranks


def propose(logits, masked, s):
    """One reverse step's raw material: a token drawn at every position (B, n), the model's
    probability of it (B, n), and the commit ranks of the masked positions (0 = first; known: last).

    The ranks follow s.order; with s.noise > 0 they are drawn (MaskGIT's choice temperature: Gumbel
    noise on the log confidence, surest first only on average). The probability is the model's own,
    untouched by the noise: what lesson 10's thresholds compare and lesson 13 records."""
    probs = logits.float().softmax(-1)  # (B, n, V)
    proposal = sample_tokens(logits, s)  # (B, n)
    prob = probs.gather(-1, proposal[..., None]).squeeze(-1)  # (B, n) p(drawn token)
    score = confidence(probs, s.order, proposal, s.generator)
    if s.noise and s.order != "random":
        dev = rng_device(s.generator, score.device)
        u = torch.rand(score.shape, generator=s.generator, device=dev, dtype=torch.float64)
        gumbel = -(-u.clamp_min(1e-300).log()).log()  # float64: no ties, no lost tail (Zheng 2024)
        log_score = score if s.order == "entropy" else score.clamp_min(1e-12).log()  # (B, n)
        score = (log_score.double() + s.noise * gumbel.to(score.device)).float()
    return proposal, prob, _ranks(score.masked_fill(~masked, float("-inf")))


@torch.no_grad()
def generate(model, canvas, steps=64, sampling=DEFAULT, callback=None):
    """Fill every [MASK] of `canvas` (B, L) in `steps` model calls; known tokens (prompt, suffix,
    template) never change. Each call predicts every masked position and keeps the `counts` first in
    sampling.order (fewer masks than steps: one call per mask). callback(calls, x) after every call.
    Returns (x, model calls). Lesson 10 makes it faster; lesson 11 writes block by block."""
    mask_id = model.config.mask_id
    x = canvas.clone()
    n_masked = (x == mask_id).sum(1)  # (B,)
    if n_masked.max() == 0:
        return x, 0
    counts = commit_counts(n_masked, min(steps, int(n_masked.max())))  # (B, n_steps) per call
    for i in range(counts.size(1)):  # GPT vs dLLM: every gap predicted at once (07: one token)
        logits = model(x)  # (B, L, V): the whole canvas is seen, both sides of every gap
        masked = x == mask_id
        proposal, _, ranks = propose(logits, masked, sampling)
        commit = (ranks < counts[:, i : i + 1]) & masked  # the counts[i] first masked positions
        x = torch.where(commit, proposal, x)
        if callback is not None:
            callback(i + 1, x)
    return x, counts.size(1)


# --------------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------------
DEMO_TEXT = (  # Hamlet III.1, public domain
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
)


def demo_model(train_steps=300, generator=None, log=print, **config):
    """(model, tokenizer, ids (L,)): a tiny dLLM fitted to DEMO_TEXT, one window holding all of it.
    Lessons 10 and 11 reuse it. config overrides the tiny model's shape."""
    tok = CharTokenizer.from_text(DEMO_TEXT)
    data = torch.tensor(tok.encode(DEMO_TEXT))  # (L,): the five lines, 216 characters
    # Learned positions (rope=False): when every input is [MASK], a model that knows only relative
    # positions (RoPE) sees L identical tokens and must predict the same at each.
    cfg = tfm.build_config("tiny", vocab_size=tok.vocab_size, block_size=len(data), n_embd=64,
                           n_head=4, rope=False, **config)
    model = tfm.Transformer(cfg)
    batch = data[None].repeat(8, 1)  # (8, L): 8 copies, each gets its own t and its own mask
    log(f"\n== the loss of an untrained model ({model.num_params():,} parameters) ==")
    loss = diffusion_loss(model, batch, cfg.mask_id, generator=generator).item()
    log(f"NELBO per token {loss:.3f} nats  vs  ln(V) = ln({tok.vocab_size}) = "
        f"{math.log(tok.vocab_size):.3f}: a uniform guess costs ln V at every masked position, "
        "and E[w(t) * #masked / L] = 1")
    log(f"\n== fit it to the five lines for {train_steps} steps (learning them by heart) ==")
    fit(model, lambda m: diffusion_loss(m, batch, cfg.mask_id, generator=generator),
        train_steps, log)
    return model.eval(), tok, data


def fit(model, loss_fn, steps, log=print, lr=1e-2):
    """The demos' whole training loop: AdamW on one fixed batch (lesson 05 has the real one)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        loss = loss_fn(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps:  # one batch: noisy, the 1/t weight has variance
            log(f"step {step:4d}  NELBO {loss.item():.3f} nats/char")


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=non_negative_int, default=300,
                   help="steps fitting the tiny model")
    p.add_argument("--steps", type=positive_int, default=16, help="denoising steps when sampling")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    tok = CharTokenizer.from_text(DEMO_TEXT)
    data = torch.tensor(tok.encode(DEMO_TEXT))
    print("== the forward process: mask each character with probability 1 - alpha_t = t ==")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        z, _ = forward_process(data[None, :42], torch.tensor([t]), tok.vocab_size, generator=g)
        print(f"t = {t:4.2f}  {tok.decode(z[0].tolist())}")

    model, tok, data = demo_model(args.train_steps, g)
    L, mask_id = len(data), model.config.mask_id
    bits = nelbo_bits(model, data[None], mask_id, K=16)
    print(f"NELBO of the text: {bits:.3f} bits/char (upper bound)")
    print(f"\n== denoising {L} characters of [MASK] in {args.steps} steps (random order, "
          "temperature 0.8) ==")
    frames = [torch.full((1, L), mask_id)]
    x, _ = generate(model, frames[0], args.steps, Sampling(temperature=0.8, generator=g),
                    callback=lambda calls, x: frames.append(x.clone()))
    for i in sorted({0, 1, len(frames) // 2, len(frames) - 1}):
        print(f"-- after step {i} --\n{tok.decode(frames[i][0].tolist())}")
    wrong = sum(a != b for a, b in zip(tok.decode(x[0].tolist()), DEMO_TEXT))
    print("memorised: the five lines, exactly" if wrong == 0
          else f"not memorised: {wrong} of {L} characters differ")


if __name__ == "__main__":
    run_cli(main)  # Ctrl-C: one line, exit status 130
