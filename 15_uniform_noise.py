"""Lesson 15: the other noise. Uniform-state diffusion, where every token can be rewritten.

Every dLLM so far hides tokens behind [MASK] (absorbing noise, lesson 04). The other family replaces
them with random tokens: UDLM (Schiff et al. 2024), Duo (Sahoo et al., ICML 2025), DiffusionGemma
(Google, 2026), whose canvas starts as random tokens and has no [MASK] at all:

    t = 0.0   To be, or not to be, that is the question:
    t = 0.5   To bz, oF not Wo be,Jtvat is thh quUstiog:      (each character random with prob. t)
    t = 1.0   xK;q ,eVbhEo?a !Rmd zqT'Lp: iAgunhWe?BsT.       (pure noise: where sampling starts)

What changes from lesson 04, each line marked `# masked vs uniform`:
  1. the forward process: a token is replaced by one drawn uniformly from the K tokens (it may draw
     itself), not by [MASK];
  2. the model is told t (ModelConfig.time_input): a noisy text does not show its own noise level,
     while a masked one shows it in its count of [MASK]s;
  3. the loss: any token may be noise, so every position counts, not only the hidden ones; the
     continuous-time NELBO (UDLM's, in Duo's closed form) replaces 04's 1/t-weighted cross-entropy;
  4. the sampler: every call redraws every position from the posterior q(z_s | z_t, x_theta), so a
     wrong token can be corrected at any step (the masked sampler needed lesson 13 for that); the
     last call keeps the model's best guess (Duo's greedy tail).
The price: a looser bound (published: UDLM 31.3 against MDLM 27.0 perplexity on LM1B). Then one
idea that serves both kinds of noise, self-conditioning (--self-cond): each call also sees the
previous call's prediction. And few calls: Duo's consistency distillation (--distill) teaches a
trained model to jump further per call, so 8-16 calls write what 64 did.

    python 15_uniform_noise.py                                # demo: random characters settle
    python 15_uniform_noise.py train                          # 05's loop -> checkpoints/uniform
    python 15_uniform_noise.py train --noise masked --self-cond --out checkpoints/masked_sc
    python 15_uniform_noise.py train --distill --init-from checkpoints/uniform --steps 2000 \
        --lr 4e-4 --min-lr-ratio 1 --out checkpoints/uniform_dcd  # the teacher: a trained run
    python 15_uniform_noise.py generate --steps 50 --topk 5   # 06's flags and output
"""
import copy
import math
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

from support import pretrained
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
ROOT = Path(__file__).resolve().parent
# t lies in [EPS, 1 - EPS]: at t = 1 (alpha = 0) the weight alpha'/(K alpha) is infinite, and near
# t = 0 the loss's terms (each about K/t) cancel. Both papers clamp t the same way.
EPS = 1e-3


# ----------------------------------------------------------------------------------------------
# The forward process and its posterior (lesson 04's linear schedule: alpha_t = 1 - t, UDLM's too)
# ----------------------------------------------------------------------------------------------
alpha = diff.alpha  # a token is still the clean one with probability 1 - t


def add_noise(x0, t, K, generator=None, s=None):
    """Each token of x0 (B, L) replaced with probability 1 - alpha_t (t: (B,)) by one drawn
    uniformly from the K tokens; a replacement may draw the token itself, so (1 - alpha)(1 - 1/K)
    of them change. With s (B,), s < t: also z_s, the same text less noisy on the same trajectory
    (the same draws: a token replaced at s is replaced at t, by the same token). -> z_t or both"""
    dev = diff.rng_device(generator, x0.device)
    replace = torch.rand(x0.shape, generator=generator, device=dev).to(x0.device)
    random = torch.randint(K, x0.shape, generator=generator, device=dev).to(x0.device)
    # masked vs uniform: a random token, not [MASK]
    z_t = torch.where(replace < 1 - alpha(t)[:, None], random, x0)
    return z_t if s is None else (z_t, torch.where(replace < 1 - alpha(s)[:, None], random, x0))


def posterior(x, z_t, a_t, a_s):
    """q(z_s | z_t, x) for s < t: x (..., K) a distribution over the clean token (one-hot: the true
    posterior; the model's prediction x_theta: the reverse step p_theta(z_s | z_t)), z_t (...) the
    noisy token, a_t and a_s the schedule at t and s. Bayes' rule, q(z_t | z_s) q(z_s | x) divided
    by q(z_t | x), written out as UDLM and Duo do. -> (..., K)."""
    K = x.size(-1)
    z = F.one_hot(z_t, K).to(x.dtype)  # (..., K)
    a_ts = a_t / a_s  # alpha_{t|s}: the chance that a token survives from s to t
    num = K * a_t * z * x + (a_ts - a_t) * z + (a_s - a_t) * x + (1 - a_ts) * (1 - a_s) / K
    return num / (K * a_t * (z * x).sum(-1, keepdim=True) + 1 - a_t)


# ----------------------------------------------------------------------------------------------
# The NELBO: every position counts
# ----------------------------------------------------------------------------------------------
def nelbo_terms(logits, z_t, x0, t):
    """The continuous-time NELBO's integrand at each position, nats: (B, L) from logits (B, L, K),
    the noisy z_t and clean x0 (B, L), t (B,). The NELBO is its integral over t in [0, 1] (UDLM;
    Duo's closed form of it, which never builds the clean token's one-hot vector). With xbar =
    K alpha x_theta + 1 - alpha (the model's q(z_t | x_theta), times K) and alpha' = -1:
      z_t kept:     -1/(K a) [K/(K a + 1 - a) - K/xbar_z + c (S - K log xbar_z) - (K-1) c log c]
      z_t replaced: -1/(K a) [K/(1 - a) - K/xbar_z + S - K log xbar_z
                              + K a/(1 - a) (log xbar_x - log xbar_z) + log(c)/c]
    where S = sum_j log xbar_j and c = (1 - a)/(K a + 1 - a). A perfect model scores 0. In fp32:
    terms of size K/t cancel near t = 0 (in fp16 they overflow)."""
    K = logits.size(-1)
    a = alpha(t).float()[:, None, None]  # (B, 1, 1)
    xbar = K * a * logits.float().softmax(-1) + 1 - a  # (B, L, K)
    log_xbar = xbar.log()
    lz = log_xbar.gather(-1, z_t[..., None])[..., 0]  # (B, L) log xbar at the noisy token
    lx = log_xbar.gather(-1, x0[..., None])[..., 0]  # (B, L) log xbar at the clean token
    S = log_xbar.sum(-1)  # (B, L)
    a = a[..., 0]  # (B, 1)
    c = (1 - a) / (K * a + 1 - a)
    kept = K / (K * a + 1 - a) - K * (-lz).exp() + c * (S - K * lz) - (K - 1) * c * c.log()
    changed = (K / (1 - a) - K * (-lz).exp() + S - K * lz + K * a / (1 - a) * (lx - lz)
               + c.log() / c)
    # masked vs uniform: every position, kept or replaced, not only the masked ones
    return -torch.where(z_t == x0, kept, changed) / (K * a)


def uniform_loss(model, x0, generator=None):
    """The training objective: the NELBO per token in nats, one t per sequence (stratified, as in
    lesson 04), t in [EPS, 1 - EPS]."""
    B, L = x0.shape
    t = diff.sample_times(B, generator, x0.device, EPS, 1 - EPS)  # (B,)
    z = add_noise(x0, t, model.config.vocab_size, generator)  # (B, L)
    # masked vs uniform: the model is told t
    return nelbo_terms(model(z, t=t), z, x0, t).sum() / (B * L)


@torch.no_grad()
def uniform_bits(model, windows, n_t=32, seed=0, batch_size=64):
    """The NELBO in bits per token over `windows` (N, L), n_t stratified t per window, the same
    draws for the same seed (curves compare). An upper bound on -log2 p(x) up to the two ends the
    clamp leaves out (t < EPS: a reconstruction term near 0; t > 1 - EPS: the prior's)."""
    g = torch.Generator().manual_seed(seed)
    N, L = windows.shape
    per = max(1, batch_size // n_t)  # windows per forward pass, n_t copies each
    total = 0.0
    for i in range(0, N, per):
        x0 = windows[i : i + per].repeat_interleave(n_t, dim=0)  # (n * n_t, L)
        u = torch.rand(x0.size(0) // n_t, 1, generator=g)
        t = EPS + (1 - 2 * EPS) * ((torch.arange(n_t) + u) / n_t).flatten()  # (n * n_t,)
        z = add_noise(x0, t.to(x0.device), model.config.vocab_size, g)
        t = t.to(x0.device)
        logits = two_passes(model, z, t=t) if model.config.self_cond else model(z, t=t)
        terms = nelbo_terms(logits, z, x0, t)
        total += terms.sum().item() * (1 - 2 * EPS)  # the integral over [EPS, 1 - EPS]
    return total / (N * n_t * L) / math.log(2)


# ----------------------------------------------------------------------------------------------
# The sampler: every position redrawn at every step
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_uniform(model, canvas, steps=64, sampling=diff.DEFAULT, callback=None):
    """Fill the positions of canvas (B, L) that hold V (the vocabulary size: "to write"); known
    tokens never change. They start as uniform random tokens (t = 1); each of the `steps` calls
    predicts x_theta, reshaped by the Sampling's temperature, top-k and top-p, and redraws every
    free position from q(z_s | z_t, x_theta); the last call keeps the argmax of x_theta (Duo's
    greedy tail). callback(calls, x) after each call. Returns (x, model calls)."""
    K, g = model.config.vocab_size, sampling.generator
    B, L = canvas.shape
    free = canvas == K
    dev = diff.rng_device(g, canvas.device)
    noise = torch.randint(K, canvas.shape, generator=g, device=dev).to(canvas.device)
    x = torch.where(free, noise, canvas)  # masked vs uniform: the canvas starts as random tokens
    time = lambda i: (1 - EPS) * (1 - i / steps)  # t from (almost) pure noise to clean
    for i in range(steps):
        t, s = time(i), time(i + 1)
        logits = model(x, t=torch.full((B,), t, device=x.device)).float()  # (B, L, K)
        if sampling.temperature == 0:
            x_theta = F.one_hot(logits.argmax(-1), K).float()
        else:
            x_theta = diff.filter_logits(logits, sampling.temperature, sampling.top_k,
                                         sampling.top_p).softmax(-1)
        if i == steps - 1:  # the greedy tail: the model's best guess of the clean text
            new = x_theta.argmax(-1)
        else:  # masked vs uniform: every free position redrawn, not only the masked ones
            q = posterior(x_theta, x, alpha(t), alpha(s)).view(-1, K)  # (B*L, K)
            new = torch.multinomial(q.to(dev), 1, generator=g).view(B, L).to(x.device)
        x = torch.where(free, new, x)
        if callback is not None:
            callback(i + 1, x)
    return x, steps


# ----------------------------------------------------------------------------------------------
# Self-conditioning (Chen, Zhang & Hinton 2022; DiffusionGemma): the last guess fed back
# ----------------------------------------------------------------------------------------------
class SelfCondition:
    """The model as training calls it with self-conditioning: half the time a first pass, without
    gradients, guesses and its logits go into the second pass (ModelConfig.self_cond); the other
    half nothing goes in, as at a sampler's first call. Only the second pass learns."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def __call__(self, z, **kw):
        if torch.rand(()) < 0.5:
            with torch.no_grad():
                prev = self.model(z, **kw)
            return self.model(z, prev=prev, **kw)
        return self.model(z, **kw)


class FeedBack:
    """The model as a sampler calls it with self-conditioning: each call gets the last one's
    logits. A new one per canvas; two calls on one canvas: the two passes the NELBO scores."""

    def __init__(self, model):
        self.model, self.config, self.prev = model, model.config, None

    def __call__(self, x, **kw):
        self.prev = self.model(x, prev=self.prev, **kw)
        return self.prev


def two_passes(model, z, **kw):
    """A self-conditioned model's prediction, as scored: its own first guess fed back once."""
    feed = FeedBack(model)
    feed(z, **kw)
    return feed(z, **kw)


# ----------------------------------------------------------------------------------------------
# Lesson 05's loop trains it: an objective with 05's members
# ----------------------------------------------------------------------------------------------
class UniformObjective:
    """Uniform-state diffusion for lesson 05's train(): this lesson's NELBO and sampler."""

    kind = "dllm"
    name = "uniform"  # recorded in every checkpoint: 05 or 14 cannot resume it, nor this one theirs
    trainer = "15_uniform_noise.py train"

    def __init__(self, self_cond=False):
        self.self_cond = self_cond
        # masked vs uniform: no [MASK] input row; the model is told t
        self.model_overrides = dict(causal=False, mask_token=False, time_input=True,
                                    self_cond=self_cond)

    def loss(self, model, x, config):  # x: (B, L+1); the first L tokens
        return uniform_loss(SelfCondition(model) if self.self_cond else model, x[:, :-1])

    def val_bits(self, model, windows, K, config):  # windows (N, L+1): bits per token
        return uniform_bits(model, windows[:, :-1], K)

    def score(self, model, windows):
        return {}

    def sample(self, model, tokenizer, n, generator):  # two characters per call, as 05's
        canvas = torch.full((1, n), model.config.vocab_size, device=next(model.parameters()).device)
        x, _ = generate_uniform(fed(model), canvas, max(1, n // 2),
                                diff.Sampling(generator=generator))
        return tokenizer.decode(x[0].tolist())


class Distillation(UniformObjective):
    """Duo's discrete consistency distillation (DCD; Sahoo et al. 2025, algo.py::Distillation):
    the student, which starts as the trained teacher (--init-from), learns to say at (z_t, t) what
    the teacher says at (z_s, s), dt earlier on the same trajectory, where it sees more of the clean
    text. Every round of `round_steps` the teacher becomes a copy of the student and dt doubles
    (1/T, 2/T, 4/T, ...): each round the student jumps twice as far (progressive distillation).
    The loss is KL(student || teacher) (Duo's kl-bwd), no 1/t weight: it seeks the teacher's modes,
    so predictions sharpen, which a sampler taking few big steps needs. Its aim is not the NELBO
    (which it loosens), so its last state is its best. A resumed run's teacher is the student as
    resumed until the next round (Duo's teacher is the student at the round's start)."""

    trainer = "15_uniform_noise.py train --distill"
    keep_last = True  # 05's evaluate: best.pt is the latest state, not the lowest NELBO

    def __init__(self, calls=64, round_steps=500):
        super().__init__()
        self.calls, self.round_steps = calls, round_steps  # T, and the steps per round
        self.step, self.round, self.teacher = 0, None, None

    def loss(self, model, x, config):
        x0, n = x[:, :-1], self.step // self.round_steps  # (B, L), the round
        if self.round != n:  # a new round: the teacher is a frozen copy of the student as it is
            student = getattr(model, "_orig_mod", getattr(model, "module", model))  # compiled, DDP
            self.teacher = copy.deepcopy(student).eval().requires_grad_(False)
            self.round = n
        dt = 2**n / self.calls
        s = diff.sample_times(x0.size(0), None, x0.device, EPS, 1 - EPS - dt)  # (B,)
        z_t, z_s = add_noise(x0, s + dt, config.vocab_size, s=s)  # one trajectory, two points
        log_student = model(z_t, t=s + dt).float().log_softmax(-1)  # (B, L, K)
        with torch.no_grad():
            log_teacher = self.teacher(z_s, t=s).float().log_softmax(-1)
        return (log_student.exp() * (log_student - log_teacher)).sum(-1).mean()


class SelfConditionedMasked(train.DiffusionObjective):
    """Lesson 04's masked diffusion with self-conditioning: the same NELBO, scored with the model's
    first guess fed back, and the same sampler, each call fed the last one's logits."""

    trainer = "15_uniform_noise.py train --noise masked --self-cond"
    model_overrides = dict(causal=False, mask_token=True, self_cond=True)

    def loss(self, model, x, config):
        return diff.diffusion_loss(SelfCondition(model), x[:, :-1], config.mask_id,
                                   t_range=self.t_range)

    def val_bits(self, model, windows, K, config):
        return diff.nelbo_bits(model, windows[:, :-1], config.mask_id, K=K,
                               denoise=lambda z, x0: two_passes(model, z))

    def sample(self, model, tokenizer, n, generator):
        canvas = torch.full((1, n), model.config.mask_id, device=next(model.parameters()).device)
        x, _ = diff.generate(FeedBack(model), canvas, max(1, n // 2),
                             diff.Sampling(generator=generator))
        return tokenizer.decode(x[0].tolist())


def fed(model):
    """The model as a sampler calls it: fed its last guess if it was trained so, else as it is."""
    return FeedBack(model) if model.config.self_cond else model


# ----------------------------------------------------------------------------------------------
# The demo: the five lines of 04's demo, learnt by a uniform-noise model; noise settles
# ----------------------------------------------------------------------------------------------
def demo_settle(args):
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    tok = diff.CharTokenizer.from_text(diff.DEMO_TEXT)
    data = torch.tensor(tok.encode(diff.DEMO_TEXT))  # (L,)
    K, L = tok.vocab_size, len(data)
    print(f"== the forward process: each character random with probability t (K = {K}) ==")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        z = add_noise(data[None, :42], torch.tensor([t]), K, g)
        print(f"t = {t:4.2f}  {tok.decode(z[0].tolist())!r}")
    # lesson 04's tiny demo model, told t and without a [MASK] row
    cfg = tfm.build_config("tiny", vocab_size=K, block_size=L, n_embd=64, n_head=4, rope=False,
                           **UniformObjective().model_overrides)
    model = tfm.Transformer(cfg)
    batch = data[None].repeat(8, 1)  # (8, L): 8 copies, each its own t and noise
    print(f"\n== fit a {model.num_params():,}-parameter model to the five lines, "
          f"{args.train_steps} steps ==")
    diff.fit(model, lambda m: uniform_loss(m, batch, g), args.train_steps)
    model.eval()
    print(f"NELBO of the text: {uniform_bits(model, data[None], 16):.3f} bits/char (upper bound)")
    print(f"\n== {L} random characters settle in {args.steps} calls (every one may change at "
          "every call) ==")
    frames = []
    x, _ = generate_uniform(model, torch.full((1, L), K), args.steps,
                            diff.Sampling(temperature=0.8, generator=g),
                            callback=lambda i, x: frames.append(x[0].tolist()))
    for i in sorted({0, len(frames) // 4, len(frames) // 2, len(frames) - 1}):
        print(f"-- after call {i + 1} --\n{tok.decode(frames[i])}")
    wrong = sum(a != b for a, b in zip(tok.decode(x[0].tolist()), diff.DEMO_TEXT))
    print("memorised: the five lines, exactly" if wrong == 0
          else f"not memorised: {wrong} of {L} characters differ")


# ----------------------------------------------------------------------------------------------
# The command line: the demo, `train` (05's flags) or `generate` (06's)
# ----------------------------------------------------------------------------------------------
def sample_uniform(model, tokenizer, args, callback=None):
    """06's canvas (prompt, suffix, template), filled by generate_uniform. -> (x (N, L), calls)."""
    return generate_uniform(fed(model), gen.canvases(model, tokenizer, args), args.steps or 64,
                            gen.sampling(model, args), callback)


def uniform_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=non_negative_int, default=600,
                   help="demo: steps fitting the tiny model")
    p.add_argument("--steps", type=positive_int, default=32, help="demo: model calls when sampling")
    p.add_argument("--seed", type=random_seed, default=0, help="demo: random seed")
    add = subcommands(p, ["train", "generate"])
    t = train.training_parser(None, ROOT / "checkpoints" / "uniform",
                              parser=add("train", "train through lesson 05's loop (its flags)"))
    g = t.add_argument_group("this lesson")
    g.add_argument("--noise", choices=["uniform", "masked"], default="uniform",
                   help="which noise: this lesson's, or lesson 04's [MASK] (with --self-cond)")
    g.add_argument("--self-cond", action="store_true",
                   help="self-conditioning: the model also sees its previous prediction")
    g.add_argument("--distill", action="store_true", help="Duo's consistency distillation of the "
                   "--init-from run (the teacher) to fewer calls")
    g.add_argument("--dcd-calls", type=positive_int, default=64,
                   help="--distill: the first round's step is 1/N of the way from noise to text")
    g.add_argument("--dcd-round", type=positive_int, default=500,
                   help="--distill: steps per round (then a new teacher, the step doubled)")
    gen.add_generate_args(add("generate", "sample with 06's flags"),
                          ROOT / "checkpoints" / "uniform", shipped=pretrained.UNIFORM)
    return p


def main(argv=None):
    args = parse_args_given(uniform_parser(), argv)
    if args.command == "train":
        if args.noise == "masked" and not args.self_cond:
            raise UsageError("--noise masked without --self-cond is lesson 05's: run 05_train.py")
        args = train.resolve(args)
        if args.distill and (args.self_cond or args.noise == "masked" or not args.init_from):
            raise UsageError("--distill distils a trained uniform model: give it with --init-from "
                             "(without --self-cond or --noise masked)")
        rounds = -(-args.steps // args.dcd_round)  # the last one steps 2^(rounds - 1) / dcd_calls
        if args.distill and 2 ** (rounds - 1) / args.dcd_calls >= 1 - 2 * EPS:
            raise UsageError(f"--distill: {rounds} rounds of --dcd-round {args.dcd_round} double "
                             f"the step past the whole way (1/{args.dcd_calls} x 2^{rounds - 1})")
        text = read_text(args.data) if args.data else train.shakespeare()
        data = train.TextData(text, diff.CharTokenizer.from_text(text), args.split)
        objective = (Distillation(args.dcd_calls, args.dcd_round) if args.distill
                     else UniformObjective(args.self_cond) if args.noise == "uniform"
                     else SelfConditionedMasked((diff.EPS, 1.0)))
        return train.train(args, objective, data)
    if args.command == "generate":
        if {"order", "noise"} & args.given:  # no order to choose: every position is redrawn
            raise UsageError("--order and --noise choose which masked positions to commit: the "
                             "uniform sampler redraws every position at every call; drop them")
        return gen.generate_cli(args, sampler=sample_uniform, objective="uniform")
    return demo_settle(args)


if __name__ == "__main__":
    run_cli(main)
