"""Lesson 05: train the masked diffusion LM on TinyShakespeare.

    python 05_train.py                           # TinyShakespeare (in data/), gpu/cpu preset
    python 05_train.py --preset tiny --out checkpoints/tiny  # seconds, to see everything work
    python 05_train.py --data my.txt --out checkpoints/my    # any UTF-8 text
    python 05_train.py --resume                  # continue checkpoints/dllm/latest.pt
    python 05_train.py --mask-rate 0.001 1 --out checkpoints/full  # t from all of [0.001, 1]

The lesson is train(args, objective, data): draw a batch from `data`, compute the `objective`, step
the optimizer, evaluate now and then, save. The same loop trains the GPT (07), the Tamil model (08),
block diffusion (11) and the Sudoku solvers (12): each passes its own objective (a small class: the
loss, the validation bits, a sampler) and its own data (windows of text, graphemes of Tamil,
puzzles). Plumbing that is not the lesson (files, checkpoints, the Hub, devices, DDP, metrics) lives
in the `support` package, which you may skip.

The mask rate t of each training sequence is drawn from [0.1, 0.9], not from all of [0.001, 1]
(BD3-LM's clipped schedule, Arriola et al. 2025): the NELBO weighs a sequence by 1/t, so the few
that draw t near 0 (a handful of masks) get weights up to 1000 and the gradient swings with them.
Clipping trains on a slightly different objective but a far steadier one; validation always reports
the full bound, and after 2,000 steps it is lower (RESULTS.md).
"""
import dataclasses
import math
import time
from functools import partial
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm import tqdm

from support import checkpoints, cli, hub, metrics, runtime, train_args
from support.cli import UsageError
from support.files import checked_text, make_dir, read_text

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")

ROOT = Path(__file__).resolve().parent
SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                   "tinyshakespeare/input.txt")
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE = ROOT / "data" / "tinyshakespeare.txt"  # shipped with the repository

# Each preset: lesson 03's model shape (block_size is --seq-len here) and the training settings
TRAIN_PRESETS = {name: {"seq_len": shape["block_size"], "dropout": shape.get("dropout", 0.0),
                        "rope": True, **{k: v for k, v in shape.items()
                                         if k not in ("block_size", "dropout")}, **train}
                 for name, shape, train in [
    ("tiny", tfm.PRESETS["tiny"], dict(steps=40, batch_size=8, lr=3e-3, warmup=5, eval_every=20,
                                       eval_windows=8, eval_k=4)),
    ("cpu", tfm.PRESETS["cpu"], dict(steps=2000, batch_size=16, lr=2e-3, warmup=100,
                                     eval_every=200, eval_windows=64, eval_k=32)),
    ("gpu", tfm.PRESETS["gpu"], dict(steps=10000, batch_size=64, lr=1e-3, warmup=500,
                                     eval_every=500, eval_windows=128, eval_k=32))]}


# --------------------------------------------------------------------------------------------------
# Data: one long stream of token ids; random windows for training, fixed windows for validation
# --------------------------------------------------------------------------------------------------
def shakespeare(data_dir=ROOT / "data"):
    """TinyShakespeare (1.1 MB, public domain, as char-rnn distributes it): the copy in data/,
    checked against its sha256 (downloaded again from char-rnn's repository if deleted)."""
    return checked_text(Path(data_dir) / "tinyshakespeare.txt", SHAKESPEARE_URL,
                        SHAKESPEARE_SHA256, "TinyShakespeare")


def interleaved_split(text, every=10):
    """(train, validation, test) texts: the blank-line-separated paragraphs (a couplet, a speech)
    dealt out in turn, of every 10 the 9th to validation and the 10th to test. Each paragraph lands
    in exactly one part, and all three sample the whole text (the last 10% of the Thirukkural is one
    topic, the book on love)."""
    paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    parts = ([], [], [])
    for i, para in enumerate(paragraphs):
        parts[{every - 2: 1, every - 1: 2}.get(i % every, 0)].append(para)
    return tuple("\n\n".join(part) + "\n" for part in parts)


def split_corpus(text, tokenizer, split="tail"):
    """Token ids for training and validation, and characters per token of the validation text (1.0
    for characters; > 1 for Tamil graphemes), to report bits per character.

    split="tail": the first 90% and the last 10% (as nanoGPT). "interleaved": interleaved_split's
    first two."""
    if split == "tail":  # one stream, cut by tokens (a cut inside a grapheme would change it)
        data = encode_ids(tokenizer, text)
        train_data, val_data = data[: int(0.9 * len(data))], data[int(0.9 * len(data)) :]
        val_text = text[int(0.9 * len(text)) :]
    else:
        train_text, val_text, _ = interleaved_split(text)
        train_data, val_data = encode_ids(tokenizer, train_text), encode_ids(tokenizer, val_text)
    return train_data, val_data, len(val_text) / max(1, len(val_data))


def encode_ids(tokenizer, text):
    """(N,) token ids of text; a character the tokenizer lacks is one line and exit status 2."""
    return torch.tensor(cli.encode_or_fail(tokenizer, text, "the corpus"), dtype=torch.long)


def get_batch(data, batch_size, length, generator):
    """(B, length) random windows of the token stream, on the stream's device (the whole corpus sits
    on the GPU: a batch is an index there, not a copy from the host each step). The start positions
    come from a CPU generator, so every device draws the same windows."""
    ix = torch.randint(len(data) - length, (batch_size,), generator=generator)  # (B,) on the CPU
    return data[(ix[:, None] + torch.arange(length)).to(data.device)]


def eval_windows(val, n, length):
    """n fixed, evenly spaced, non-overlapping windows of the validation stream, every run."""
    n = max(1, min(n, len(val) // length))
    stride = len(val) // n
    return torch.stack([val[i * stride : i * stride + length] for i in range(n)])


class TextData:
    """What the loop trains on: windows of a text. 08 passes graphemes of Tamil (this class with its
    tokenizer); 12 passes puzzles (a class of its own with the same members)."""

    unit = "bits/char"  # validation per character: bits per token / characters per token

    def __init__(self, text, tokenizer, split="tail"):
        self.text, self.tokenizer = text, tokenizer
        self.train, self.val, self.chars_per_token = split_corpus(text, tokenizer, split)

    def describe(self):
        return (f"{len(self.text):,} characters, {self.train.numel() + self.val.numel():,} tokens, "
                f"vocabulary {self.tokenizer.vocab_size}; train {len(self.train):,} / val "
                f"{len(self.val):,}")

    def batch(self, batch_size, length, generator):  # (B, length) random training windows
        return get_batch(self.train, batch_size, length, generator)

    def val_batch(self, n, length):  # (n, length): the same validation windows at every evaluation
        if len(self.val) < length or len(self.train) < length + 1:
            raise UsageError(f"corpus too short: {len(self.text):,} characters for context "
                             f"{length - 1} (need > {10 * (length + 1)} tokens)")
        return eval_windows(self.val, n, length)

    def to(self, device):  # a few MB of token ids: batches are then drawn on the device
        self.train = self.train.to(device)
        return self


def lr_lambda(args):
    """Linear warmup, then cosine decay to min_lr_ratio * lr (as in nanoGPT)."""

    def f(step):
        if step < args.warmup:
            return (step + 1) / (args.warmup + 1)
        progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0
        return args.min_lr_ratio + (1 - args.min_lr_ratio) * cosine

    return f


# --------------------------------------------------------------------------------------------------
# The objective: the one thing the dLLM and the GPT trainers do differently
# --------------------------------------------------------------------------------------------------
class DiffusionObjective:
    """Masked diffusion (04): NELBO loss, NELBO bits for validation, the iterative-unmasking
    sampler. Every objective has these members (07's GPT, 11's block diffusion and 12's Sudoku
    models give their own)."""

    kind = "dllm"  # the model family, which a generator checks: a dLLM or a GPT
    name = "dllm"  # the objective, recorded in every checkpoint: resuming with another is refused
    trainer = "05_train.py or 08_train_tamil.py"  # which script trains it, for that refusal
    model_overrides = dict(causal=False, mask_token=True)  # GPT vs dLLM: bidirectional, has [MASK]

    def __init__(self, t_range=(diff.EPS, 1.0)):
        self.t_range = t_range  # where training draws t: [EPS, 1] is the NELBO; --mask-rate clips

    def loss(self, model, x, config):  # x: (B, L+1); the dLLM uses the first L tokens
        # GPT vs dLLM: the objective is the NELBO of lesson 04 (mask a fraction t, predict the
        # masks, weight 1/t)
        return diff.diffusion_loss(model, x[:, :-1], config.mask_id, t_range=self.t_range)

    def val_bits(self, model, windows, K, config):  # windows: (N, L+1); upper bound, bits/token
        return diff.nelbo_bits(model, windows[:, :-1], config.mask_id, K=K)

    def score(self, model, windows):  # more to report than bits: 12 counts the puzzles solved
        return {}

    def sample(self, model, tokenizer, n, generator):
        # GPT vs dLLM: the sampler fills a canvas of [MASK]s in parallel, two characters per model
        # call here
        canvas = torch.full((1, n), model.config.mask_id, device=next(model.parameters()).device)
        x, _ = diff.generate(model, canvas, max(1, n // 2), diff.Sampling(generator=generator))
        return tokenizer.decode(x[0].tolist())


CLIPPED = [0.1, 0.9]  # 05's default mask rates: bench/recipe.py's best at 2,000 steps (RESULTS.md)


add_mask_rate_arg = partial(train_args.add_mask_rate_arg, eps=diff.EPS)  # the dLLM trainers' flag


def mask_rate(args):
    """--mask-rate as (lo, hi); the whole [EPS, 1] without it (a resumed run brings its own)."""
    return tuple(args.mask_rate) if args.mask_rate else (diff.EPS, 1.0)


# --------------------------------------------------------------------------------------------------
# The training loop, shared by 05 (dLLM), 07 (GPT), 08 (Tamil), 11 (block diffusion) and 12 (Sudoku)
# --------------------------------------------------------------------------------------------------
def train(args, objective, data, init=None):
    """Train `objective` on `data`; writes <out>/latest.pt, best.pt, metrics.csv, loss.png, hf/;
    returns the metrics rows. init: a model to start from (lesson 14's GPT made into a dLLM);
    default: lesson 03's Transformer with random weights, shaped by the flags."""
    run = setup(args, objective, data, init)  # resume, DDP, model, optimizer: below
    if run.step >= args.steps:  # --resume on a finished run: nothing to do
        print(f"{run.out} is finished: step {run.step} of {args.steps} (--steps N extends it)")
        checkpoints.unlock_run(run)
        return run.rows
    model, optimizer, scheduler, scaler = run.model, run.optimizer, run.scheduler, run.scaler
    L = run.config.block_size
    # Ctrl-C / SIGTERM: finish the current step (or the first evaluation), save latest.pt, exit: the
    # state saved is a step boundary, so --resume continues exactly. A second Ctrl-C stops at once.
    stop = runtime.StopOnSignal(tqdm.write, run.out / "latest.pt")
    oom = runtime.OutOfMemory(run.world, f"--batch-size {args.batch_size} "
                                         f"--grad-accum {args.grad_accum}")
    with stop, oom:  # Ctrl-C here: no step is taken, and step 0 is saved below
        if run.step == 0 and not run.rows and run.rank == 0:
            evaluate(run)  # the untrained model: where the curve starts
    bar = tqdm(total=args.steps, initial=run.step, desc=objective.name, dynamic_ncols=True,
               disable=run.rank != 0)
    loss_sum, n, t0 = 0.0, 0, time.perf_counter()
    with stop, oom, bar:  # the bar closes first: an error line comes after it
        while run.step < args.steps and not stop.everywhere(run.world, args.device, run.step):
            optimizer.zero_grad(set_to_none=True)
            objective.step = run.step  # an objective that changes as it trains (14's annealing)
            for micro in range(args.grad_accum):  # the batch in pieces, their gradients summed
                x = data.batch(args.batch_size, L + 1, run.data_gen)  # (B, L+1) token ids
                last = micro == args.grad_accum - 1  # DDP averages gradients after the last piece
                with runtime.autocast(args.device, args.dtype), runtime.no_sync(run.fwd, not last):
                    loss = objective.loss(run.fwd, x, run.config) / args.grad_accum  # NELBO or NLL
                scaler.scale(loss).backward()  # fp16 scales the loss so small gradients survive
                loss_sum = loss_sum + loss.detach()  # summed on the device: no host sync per step
            if args.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            run.step, n = run.step + 1, n + 1
            bar.update(1)
            if (run.step % args.eval_every == 0 or run.step == args.steps) and run.rank == 0:
                t0 = evaluate(run, loss_sum / n, n * x.numel() * args.grad_accum * run.world, t0)
                loss_sum, n = 0.0, 0
    return checkpoints.finish_run(run, stop, t0)  # saves a stopped run, exits 130


def evaluate(run, train_loss=None, tokens=0, t0=None):
    """Validation bits per unit, a sample, one log line; metrics.csv, latest.pt, and best.pt + hf/
    when it is the best so far. Returns when the next training interval starts."""
    args, model, objective, data = run.args, run.model, run.objective, run.data
    train_loss = float("nan") if train_loss is None else float(train_loss)  # waits for the device
    dt = time.perf_counter() - t0 if t0 is not None else float("nan")
    model.eval()
    with runtime.autocast(args.device, args.dtype):
        val = objective.val_bits(run.eval_fwd, run.windows, args.eval_k, run.config)
        val = val / data.chars_per_token
        if run.step and not (math.isfinite(train_loss) and math.isfinite(val)):  # before sampling
            what = "training" if not math.isfinite(train_loss) else "validation"
            kept = f"keeps step {run.rows[-1]['step']}" if run.rows else "was not written"
            raise UsageError(f"the {what} loss is not finite by step {run.step} (lr {args.lr:g}): "
                             f"training stopped; {run.out / 'latest.pt'} {kept}. Lower --lr")
        scores = objective.score(run.eval_fwd, run.windows)  # 12: the validation puzzles solved
        sample = None
        if args.sample_len:  # its own generator, on the model's device: never moves training's
            g = torch.Generator(args.device).manual_seed(0)
            n = min(args.sample_len, run.config.block_size)
            sample = objective.sample(model, data.tokenizer, n, g)
    run.elapsed += 0.0 if t0 is None else dt
    lr = run.scheduler.get_last_lr()[0]
    run.rows.append({"step": run.step, "train_loss": train_loss, "val_bpc": val, "lr": lr,
                     "tokens_per_s": tokens / dt if t0 is not None else float("nan"),
                     "elapsed_s": run.elapsed, **scores})
    # one line per evaluation, train and validation in one unit (the dLLM's: NELBO, a bound)
    trained = f"{train_loss / math.log(2) / data.chars_per_token:.3f}" if run.step else "  -  "
    speed = f"{tokens / dt:,.0f} tok/s" if run.step else "- tok/s"
    tqdm.write(f"step {run.step:>6} | train {trained} | val {val:.3f} {data.unit} | lr {lr:.2e} | "
               f"{speed} | {run.elapsed / 60:.1f} min"
               + "".join(f" | {k} {v:.3f}" for k, v in scores.items()))
    if sample is not None:
        tqdm.write(f"--- sample at step {run.step} ---\n{sample}\n---")
    improved = val < run.best or getattr(objective, "keep_last", False)  # 15's distillation
    run.best = val if improved else run.best  # before latest.pt is written: a resume keeps it
    metrics.write_metrics(run.out, run.rows)
    checkpoints.save_run(run, "latest.pt")  # model, optimizer, schedule, RNG, step: all of it
    if improved:
        checkpoints.save_run(run, "best.pt")
        bound = " (NELBO, upper bound)" if objective.kind == "dllm" else " (exact NLL)"
        hub.export(run.out / "hf", model, data.tokenizer, objective.kind, sample=sample,
                   metrics={"step": run.step, f"validation {data.unit}{bound}": val,
                            "preset": args.preset, "train seconds": round(run.elapsed)})
    if args.plot:
        metrics.plot_metrics(run.out, f"{objective.name} {args.preset}: {run.out}", unit=data.unit,
                             chars_per_token=data.chars_per_token)
    model.train()
    return time.perf_counter()


def setup(args, objective, data, init=None):
    """Everything the loop needs, in one namespace: DDP, the model (lesson 03's Transformer with the
    objective's switches), AdamW, the LR schedule, the RNG state; a resumed run's own state."""
    latest = Path(args.out) / "latest.pt"
    ckpt = checkpoints.load_checkpoint(latest, objective=objective) if args.resume else None
    rank, world = runtime.ddp_setup(args.device)  # torchrun: each rank its own GPU first
    log = print if rank == 0 else (lambda *a, **k: None)  # rank 0 alone logs, evaluates, writes
    run = SimpleNamespace(args=args, objective=objective, data=data, out=Path(args.out), rank=rank,
                          world=world, step=0, elapsed=0.0, best=float("inf"), rows=[])
    torch.manual_seed(args.seed)
    if ckpt:
        log(f"resuming {ckpt['path']} at step {ckpt['step']}")
        if ckpt["tokenizer"] != data.tokenizer.to_dict():
            raise UsageError(f"the corpus gives another vocabulary than the run in {args.out} was "
                             "trained on: resume it on its own corpus (--data as it was)")
    log(f"corpus: {data.describe()}")

    # The model: lesson 03's Transformer, with the objective's switches (causal, [MASK] row, ...)
    if ckpt:
        config = tfm.ModelConfig(**ckpt["config"])
    elif init is not None:
        config = dataclasses.replace(init.config, dropout=args.dropout)
        args.seq_len, args.n_layer, args.n_head, args.n_embd, args.rope = (  # the run's own
            config.block_size, config.n_layer, config.n_head, config.n_embd, config.rope)
    else:
        config = tfm.ModelConfig(vocab_size=data.tokenizer.vocab_size, block_size=args.seq_len,
                                 n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                                 dropout=args.dropout, rope=args.rope, **objective.model_overrides)
    run.config = config
    L = config.block_size
    if config.n_embd % config.n_head:
        raise UsageError(f"--n-embd {config.n_embd} is not divisible by --n-head {config.n_head}")
    run.windows = data.val_batch(args.eval_windows, L + 1).to(args.device)  # fixed, (N, L+1)
    run.model = model = tfm.Transformer(config)
    if args.init_from and not ckpt:  # a warm start: weights only (a resumed run has its own)
        checkpoints.init_weights(model, args.init_from, data.tokenizer)
    elif init is not None and not ckpt:  # lesson 14: a dLLM that starts as a trained GPT
        model.load_state_dict(init.state_dict())
    model.to(args.device)
    log(f"model: {objective.name}{f', blocks of {config.block_len}' if config.block_len else ''}, "
        f"{model.num_params():,} parameters, {config.n_layer} layers, {config.n_head} heads, "
        f"width {config.n_embd}, context {L}; device {args.device} "
        f"({runtime.machine_name(args.device)}), {args.dtype}"
        f"{', compiled' if args.compile else ''}{f', {world} processes (DDP)' * (world > 1)}")

    # AdamW, weight decay on matrices only (not norms and biases), warmup + cosine (nanoGPT)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    run.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=args.lr, betas=(0.9, args.beta2),
                                      fused=(args.device == "cuda"))
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.optimizer, lr_lambda(args))
    run.scaler = torch.amp.GradScaler(args.device, enabled=(args.dtype == "fp16"))  # loss scaling
    run.data_gen = torch.Generator().manual_seed(args.seed + rank)
    if rank:  # each rank its own noise levels and masks (rank 0 keeps the single-process stream)
        torch.manual_seed(checkpoints.rank_seed(args.seed, rank) + 1)
    if ckpt:
        run.step, run.elapsed, run.best = checkpoints.restore_training_state(
            ckpt, model, run.optimizer, run.scheduler, run.scaler, run.data_gen, rank, args.seed,
            args.device)
        run.rows = [r for r in metrics.read_metrics(run.out) if r["step"] <= run.step] if (
            run.out / "metrics.csv").exists() else []
    run.eval_fwd = run.fwd = torch.compile(model) if args.compile else model
    if world > 1:  # gradients are averaged across ranks inside backward()
        run.fwd = torch.nn.parallel.DistributedDataParallel(run.fwd)
    data.to(args.device)
    if rank == 0:  # one trainer per run directory, for as long as this process lives
        run.lock = checkpoints.lock_run(run.out, args.resume, args.force)
    if rank == 0 and args.force:
        checkpoints.clear_run_dir(run.out)
    make_dir(run.out)
    if run.step < args.steps:
        bound = " (the dLLM's bits: its NELBO, an upper bound)" * (objective.kind == "dllm")
        log(f"training {args.steps - run.step} steps (batch {args.batch_size} x {L}) -> {run.out}"
            + bound)
    model.train()
    return run


# --------------------------------------------------------------------------------------------------
# The command line: every setting has a flag (support/train_args.py), not given: the preset's
# --------------------------------------------------------------------------------------------------
training_parser = partial(train_args.training_parser, presets=TRAIN_PRESETS)  # 05, 07, 08, 11, 12


def parse_args(p, argv=None, presets=TRAIN_PRESETS, default_out=None, default_data=SHAKESPEARE):
    """support's parse_args with this lesson's presets and corpus: values checked, then <out>, then
    a resumed run's own settings, then the preset's values."""
    return train_args.parse_args(p, argv, presets, default_out, default_data)


# parse_args after parsing
resolve = partial(train_args.resolve, presets=TRAIN_PRESETS, default_data=SHAKESPEARE)


def main(argv=None, objective=None):
    """05's command line. objective: a subclass of DiffusionObjective to train instead
    (bench/recipe.py's variants, the tests' probes), made with the run's mask-rate range."""
    p = training_parser(__doc__, ROOT / "checkpoints" / "dllm")
    add_mask_rate_arg(p, default=CLIPPED)
    args = parse_args(p, argv)
    text = read_text(args.data) if args.data else shakespeare()
    data = TextData(text, diff.CharTokenizer.from_text(text), args.split)  # one token per character
    return train(args, (objective or DiffusionObjective)(t_range=mask_rate(args)), data)


if __name__ == "__main__":
    cli.run_cli(main)
