"""Lesson 17: learning from rewards. The Sudoku dLLM tries, the rules grade it, it learns from that.

    python 17_rewards.py                         # the idea in a minute: attempts, grades, gradients
    python sudoku_puzzles.py --train 100000 --train-givens 17 50 --hard 1000 --workers 2 \\
        --out data/sudoku-100k                   # the puzzles lesson 12's shipped model trained on
    python 17_rewards.py train --method exact    # RL from the shipped model (checkpoints/)
    python 17_rewards.py train --method sft      # control (a): the same compute, supervised steps
    python 17_rewards.py train --method rft      # control (b): fine-tune on its own solved attempts
    python bench/rewards.py --runs checkpoints/rewards-*   # the test bands, with standard errors

Lesson 12's dLLM solves 60% of the puzzles with 17-27 givens, and more examples had stopped
paying. Here it learns from its own attempts, as the dLLMs of 2025 are post-trained (d1, Zhao et
al. 2025; wd1, Tang et al. 2025). It writes G answers per puzzle with a *stochastic* surest-first
sampler (a greedy one writes one answer G times: nothing to compare); the rules grade each (1 if
every row, column and box holds 1-9 and the givens are kept, else 0: no partial credit to game);
an answer is reinforced by how much better it did than the other G - 1 (RLOO). The gradient needs
log pi(answer), which a GPT has exactly and a dLLM does not. Three ways:
  exact: the sampler's own trajectory. Every call drew some cells given the canvas at that call;
         log pi = the sum of log p(drawn digit | that canvas). One pass per call: costly, unbiased
         for the digits drawn (the order, drawn by confidence, is treated as the environment).
  d1:    one pass, every blank masked at once, log p of each final digit (d1's one-step estimate:
         the t = 1 term of the ELBO). Cheap, low variance, biased: cells are scored as if alone.
  wd1:   d1's estimate in a ratio-free weighted likelihood: weights softmax(A) pull a group's better
         answers up, softmax(-A) push its worse ones down.
--beta adds a KL to the starting model (d1's k3). Controls at equal compute in model passes (a
forward pass over one grid = 1, with backward = 3): `sft` continues 12's supervised loss on the
100,000 puzzles; `rft` fine-tunes on its own solved attempts (rejection sampling). Each evaluates
the deployed sampler (greedy, surest cell first) on fresh puzzles with 17-27 givens.
"""
import copy
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path

import torch
from tqdm import tqdm

from support import checkpoints, metrics, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    int_in,
    non_negative_float,
    parse_args_given,
    positive_float,
    positive_int,
    random_seed,
    run_cli,
    subcommands,
)

diff = import_module("04_diffusion")
sudoku = import_module("12_sudoku")
puzzles = import_module("sudoku_puzzles")

ROOT = Path(__file__).resolve().parent
CELLS = sudoku.CELLS
METHODS = ("exact", "d1", "wd1", "sft", "rft")
VAL_SEED = 10_017  # fresh validation puzzles (17-27 givens); a grid shared with a test is ~1e-21
CANVASES = 16_384  # attempts (or sft puzzles) a step at most: 2,048 attempts took 1 GiB on a CPU


@dataclass
class Practice:
    """G attempts at each of `prompts` puzzles per step; digits drawn at `temperature`; cells chosen
    surest first, with Gumbel noise of `order_noise` on the log confidence (MaskGIT's)."""

    group: int = 8
    prompts: int = 8
    temperature: float = 1.0
    order_noise: float = 0.0  # 0.2 dropped the solved attempts from 60% to 8% (RESULTS 7.7)
    cells_per_call: int = 2


# --------------------------------------------------------------------------------------------------
# Attempts and their grades
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def attempt(model, puzzle, practice, generator=None):
    """G attempts per puzzle (P, 81) -> grids (P*G, 81), when (P*G, 81): the call (0, 1, ...) that
    filled each blank, -1 for a given, and the model calls. Lesson 04's sampler, stochastic."""
    x = puzzle.repeat_interleave(practice.group, 0)  # (P*G, 81): G copies of each puzzle
    canvas = x.masked_fill(x == 0, model.config.mask_id)
    when = torch.full_like(x, -1)

    def record(call, grid):  # the cells filled by this call
        when.masked_fill_((when < 0) & (x == 0) & (grid != model.config.mask_id), call - 1)

    steps = math.ceil(int((x == 0).sum(1).max()) / practice.cells_per_call)
    sampling = diff.Sampling(temperature=practice.temperature, order="confidence",
                             noise=practice.order_noise, generator=generator)
    grids, calls = diff.generate(model, canvas, steps, sampling, record)
    return grids, when, calls


def rewards(grids, puzzle, group):
    """1 if a grid obeys every row, column and box and keeps its givens, else 0: the rules grade."""
    return sudoku.valid(grids, puzzle.repeat_interleave(group, 0)).float()  # (P*G,)


def rloo(reward, group):
    """Each attempt against the mean of the other G - 1 of its puzzle (no std scaling, as d1)."""
    r = reward.view(-1, group)  # (P, G)
    return ((r - (r.sum(1, keepdim=True) - r) / (group - 1))).flatten()  # (P*G,)


# --------------------------------------------------------------------------------------------------
# log pi(attempt), three ways: the canvases where drawn digits are scored. The loss is a sum over
# canvases, so each chunk of them is backpropagated alone (memory stays small)
# --------------------------------------------------------------------------------------------------
def scored_canvases(grids, when, method, mask_id):
    """-> canvases z (N, 81), the cells scored on each (N, 81), whose attempt each is (N,).
    GPT vs dLLM: a GPT's log pi is one pass (its next-token log-probs); a dLLM's depends on the
    order it filled the cells in, and the canvas each saw."""
    blank, rows = when >= 0, torch.arange(len(grids), device=grids.device)  # (B, 81), (B,)
    if method != "exact":  # exact vs d1: one canvas per attempt, every blank masked at once
        return grids.masked_fill(blank, mask_id), blank, rows
    n = int(when.max()) + 1  # exact vs d1: the canvas of every call, as the sampler saw it
    call = torch.arange(n, device=grids.device)[None, :, None]  # (1, n, 1)
    z = torch.where(blank[:, None] & (when[:, None] >= call), mask_id, grids[:, None])  # (B, n, 81)
    score = when[:, None] == call  # (B, n, 81): the cells drawn at that call
    row = rows[:, None].expand(-1, n)
    keep = score.any(-1)  # drop the calls after an attempt was complete
    return z[keep], score[keep], row[keep]


def logp_digits(model, z, digits, cells, temperature):
    """log p(digit | z) at the sampler's temperature on the cells, 0 elsewhere (0 * -inf is nan)."""
    logp = diff.filter_logits(model(z).float(), temperature).log_softmax(-1)  # (N, 81, V)
    return logp.gather(-1, digits[..., None]).squeeze(-1).where(cells, 0)


@torch.no_grad()
def log_pi(model, grids, when, method, temperature=1.0):
    """Each attempt's log pi as the estimator sees it (exact or d1): (B,) nats."""
    z, score, row = scored_canvases(grids, when, method, model.config.mask_id)
    nats = logp_digits(model, z, grids[row], score, temperature).sum(1)  # (N,)
    return nats.new_zeros(len(grids)).index_add_(0, row, nats)


def weights(adv, blanks, method, group):
    """What each attempt's log-likelihood is multiplied by in the loss (to be minimised)."""
    if method == "wd1":  # wd1 vs d1: -softmax(A) + softmax(-A) in the group, no ratio, no mean
        a = adv.view(-1, group)
        return (a.neg().softmax(1) - a.softmax(1)).flatten() / adv.numel() * group
    return -adv / blanks / adv.numel()  # REINFORCE, each attempt's cells averaged


def policy_step(model, reference, grids, when, adv, args):
    """Accumulate the policy gradient (and --beta's KL) chunk by chunk. -> model passes spent."""
    z, score, row = scored_canvases(grids, when, args.method, model.config.mask_id)
    w = weights(adv, (when >= 0).sum(1).clamp_min(1), args.method, args.practice.group)
    useful = w[row] != 0 if not args.beta or args.skip_agreeing else torch.ones_like(row).bool()
    passes = 0
    for idx in useful.nonzero()[:, 0].split(args.chunk):  # weight 0: nothing to learn there
        digits, cells = grids[row[idx]], score[idx]
        logp = logp_digits(model, z[idx], digits, cells, args.practice.temperature)  # (n, 81)
        loss = (w[row[idx]] * logp.sum(1)).sum()
        if args.beta:  # k3 KL to the starting model: exp(r) - r - 1, r = log p_ref - log p
            with torch.no_grad():
                ref = logp_digits(reference, z[idx], digits, cells, args.practice.temperature)
            r = ref - logp  # 0 outside the drawn cells, where k3 is 0 too
            kl = (r.exp() - r - 1).sum() / score.sum()
            loss = loss + args.beta * kl
        loss.backward()
        passes += (4 if args.beta else 3) * len(idx)  # the reference's forward pass counts too
    return passes


def supervised_step(model, pairs, mask_id):
    """Lesson 12's loss (NELBO on masked blanks) on (B, 162) puzzle + solution rows."""
    sudoku.sudoku_diffusion_loss(model, pairs, mask_id).backward()
    return 3 * len(pairs)


# --------------------------------------------------------------------------------------------------
# Training: rollouts, grades, one update per step, until the compute budget is spent
# --------------------------------------------------------------------------------------------------
def fresh(n, seed):
    """n new puzzles with 17-27 givens (22-27: sudoku_puzzles' removal reaches 22): (n, 162)."""
    return torch.tensor([p + s for p, s in puzzles.make_split(n, (17, 27), random.Random(seed),
                                                              set())])


@torch.no_grad()
def solved_share(model, val):
    """The deployed sampler: greedy, surest cell first, one per call. -> share solved."""
    model.eval()
    grids, _ = sudoku.solve_dllm(model, val[:, :CELLS])
    return sudoku.solved(grids, val).float().mean().item()


def train_step(model, reference, optimizer, data, args, g):
    """One step of args.method -> (passes spent, a dict of what to log)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    p = args.practice
    if args.method == "sft":
        batch = puzzles.symmetric_batch(data, args.sft_batch, g).to(args.device)
        return supervised_step(model, batch, model.config.mask_id), {}
    pairs = puzzles.symmetric_batch(data, p.prompts, g).to(args.device)  # (P, 162): new by symmetry
    puzzle = pairs[:, :CELLS]
    model.eval()  # attempts: no dropout (the preset has none), no gradient
    grids, when, calls = attempt(model, puzzle, p, g)
    reward = rewards(grids, puzzle, p.group)
    groups = reward.view(-1, p.group)
    log = {"reward": reward.mean().item(), "pass_at_g": (groups.max(1).values > 0).float().mean()
           .item(), "nothing_to_learn": (groups.std(1) == 0).float().mean().item()}
    passes = len(grids) * calls
    model.train()
    if args.method == "rft":  # (b): the solved attempts become supervised examples
        ok = reward > 0
        if ok.any():
            x = torch.cat([puzzle.repeat_interleave(p.group, 0)[ok], grids[ok]], 1)  # (n, 162)
            passes += supervised_step(model, x, model.config.mask_id)
    else:
        passes += policy_step(model, reference, grids, when, rloo(reward, p.group), args)
    return passes, log


def train_rewards(args):
    out = Path(args.out)
    checkpoints.check_run_dir(out, args.resume, args.force)  # before any work, nothing written yet
    saved = checkpoints.load_checkpoint(out / "latest.pt") if args.resume else None
    if saved is not None:  # its own flags, but a longer --budget (or more --evals) may be typed
        args = checkpoints.resume_args(args, {k: v for k, v in saved["args"].items()
                                              if k not in {"budget", "evals"} & args.given})
    args.practice = Practice(args.group, args.prompts, args.temperature, args.order_noise,
                             args.cells_per_call)
    folder, notes = sudoku.puzzle_folder(args.puzzles), []  # the model before 100,000 puzzles
    model = sudoku.load_solver("dllm", args.init, not args.init, args.device, notes.append).float()
    data = sudoku.PuzzleData.read(folder / "train.txt")  # (N, 162); RL on --givens, sft on all
    lo, hi = (0, CELLS) if args.method == "sft" else args.givens
    givens = (data[:, :CELLS] > 0).sum(1)  # (N,)
    data = data[(givens >= lo) & (givens <= hi)]
    if not len(data):
        raise UsageError(f"{folder}: no training puzzles with {lo}-{hi} givens")
    sys.stderr.write("".join(f"{n}\n" for n in notes))  # which model: after a bad input's line
    val = fresh(args.val_puzzles, VAL_SEED).to(args.device)  # the same for every run and method
    reference = copy.deepcopy(model).eval().requires_grad_(False) if args.beta else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    lock = checkpoints.lock_run(out, args.resume, args.force)  # the inputs are good: the run's now
    g = torch.Generator().manual_seed(args.seed)  # on the CPU on any --device: the same draws
    torch.manual_seed(args.seed)
    step, passes, elapsed, rows = 0, 0, 0.0, []
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"]["torch"])
        g.set_state(saved["rng"]["data"])
        step, passes, elapsed, rows = (saved[k] for k in ("step", "passes", "elapsed_s", "rows"))
    elif args.force:
        checkpoints.clear_run_dir(out)
    print(f"{args.method}: {len(data):,} training puzzles, {len(val)} fresh validation puzzles "
          f"(17-27 givens), budget {args.budget:,} model passes -> {out}")
    def save():  # everything --resume needs, in one file; its model reads as 12's Sudoku dLLM
        checkpoints.save_checkpoint(out / "latest.pt", {
            "kind": "dllm", "objective": "sudoku-dllm", "trainer": "17_rewards.py train",
            "model": model.state_dict(), "config": asdict(model.config),
            "tokenizer": diff.CharTokenizer(sudoku.TOKENS).to_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "passes": passes,
            "elapsed_s": elapsed, "rows": rows,
            "rng": {"torch": torch.get_rng_state(), "data": g.get_state()},
            "args": {k: v for k, v in vars(args).items() if k not in ("given", "practice")}})
        metrics.write_csv(out / "metrics.csv", rows, [*dict.fromkeys(k for r in rows for k in r)])

    def evaluation(row):  # one row per evaluation: metrics.csv and latest.pt, one log line
        rows.append({"step": step, "passes": passes, "elapsed_s": round(elapsed, 1),
                     "val_solved": solved_share(model, val)} | row)
        seen = [f"{k} {v:.3f}" for k, v in row.items() if k in ("reward", "nothing_to_learn")]
        tqdm.write(" | ".join([f"step {step}", f"{passes:,} passes", f"val solved "
                               f"{rows[-1]['val_solved']:.1%}", *seen, f"{elapsed / 60:.1f} min"]))
        save()

    every, logs = args.budget / args.evals, []
    bar = tqdm(total=args.budget, initial=passes, unit="pass", unit_scale=True, desc=args.method)
    oom = runtime.OutOfMemory(1, f"--prompts {args.prompts} --group {args.group}",
                              "fewer --prompts, --group or --chunk (sft: --sft-batch)")
    with runtime.StopOnSignal(tqdm.write, out / "latest.pt") as stop, oom:
        if not rows:
            evaluation({})  # the starting model
        t0 = time.perf_counter()
        while passes < args.budget and not stop.requested:
            spent, log = train_step(model, reference, optimizer, data, args, g)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step, passes = step + 1, passes + spent
            logs.append(log)
            bar.update(spent)
            if passes // every > (passes - spent) // every or passes >= args.budget:
                elapsed += time.perf_counter() - t0
                evaluation({k: sum(x[k] for x in logs) / len(logs) for k in logs[-1]})
                logs, t0 = [], time.perf_counter()
        if stop.requested:
            elapsed += time.perf_counter() - t0
            save()
            print(f"interrupted at step {step}: saved {out / 'latest.pt'}; continue with --resume",
                  file=sys.stderr)
            checkpoints.release(lock)
            sys.exit(130)
    bar.close()
    metrics.plot_rows(out / "loss.png", {args.method: rows}, "passes", "val_solved",
                      "model passes (forward = 1, forward + backward = 3)", "validation solved")
    checkpoints.release(lock)  # the folder is free for --resume again
    print(f"done: {step} steps, {passes:,} model passes, {elapsed / 60:.1f} min; validation solved "
          f"{rows[0]['val_solved']:.1%} -> {rows[-1]['val_solved']:.1%}; model in {out}")
    return rows


# --------------------------------------------------------------------------------------------------
# The demo: fresh puzzles, G attempts each, their grades, and the three gradients side by side
# --------------------------------------------------------------------------------------------------
def gradient(model, grids, when, adv, method, practice):
    """The policy gradient of one method on the same attempts, as one flat vector."""
    model.zero_grad(set_to_none=True)
    args = type("Args", (), dict(method=method, practice=practice, chunk=256, beta=0.0))
    policy_step(model, None, grids, when, adv, args)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def demo_rewards(args):
    print(f"making {args.prompts} fresh puzzles with 22-27 givens (seed {args.seed}) ...")
    pairs = fresh(args.prompts, args.seed)
    model = sudoku.load_solver("dllm", None, True).float()
    puzzle = pairs[:, :CELLS]
    greedy = sudoku.solved(sudoku.solve_dllm(model, puzzle)[0], pairs)
    practice = Practice(group=args.group, prompts=args.prompts)
    g = torch.Generator().manual_seed(args.seed)
    grids, when, calls = attempt(model, puzzle, practice, g)
    reward = rewards(grids, puzzle, practice.group)
    adv = rloo(reward, practice.group)
    print(f"\n{practice.group} attempts a puzzle ({calls} calls, {practice.cells_per_call} cells a "
          f"call, temperature {practice.temperature}); reward 1 = the rules hold:")
    print(f"{'puzzle':>6} | {'greedy':>6} | rewards of the attempts | advantages (RLOO)")
    for i, (r, a) in enumerate(zip(reward.view(-1, practice.group), adv.view(-1, practice.group))):
        grades = " ".join(f"{v:.0f}" for v in r)
        print(f"{i:>6} | {'solved' if greedy[i] else 'wrong':>6} | {grades:<23} | "
              + " ".join(f"{v:+.2f}" for v in a))
    print("\nA group all 1 or all 0 has advantages 0: it teaches nothing (d1's zero_std_ratio).")
    exact, d1 = (log_pi(model, grids[:1], when[:1], m).item() for m in ("exact", "d1"))
    print(f"\nlog pi of attempt 0 ({int((when[0] >= 0).sum())} blanks): exact, one canvas per call"
          f" {exact:.2f} nats; d1, one pass with every blank masked, {d1:.2f} nats")
    if not adv.any():
        print("every group agreed: no gradient to compare (try another --seed)")
        return
    grads = {m: gradient(model, grids, when, adv, m, practice) for m in ("exact", "d1", "wd1")}
    cos = [torch.cosine_similarity(grads["exact"], grads[m], 0).item() for m in ("d1", "wd1")]
    print(f"the gradients on these attempts: cosine(exact, d1) {cos[0]:.2f}, cosine(exact, wd1) "
          f"{cos[1]:.2f} (1 = the same direction)")
    print("\nThe real run: `python 17_rewards.py train` (and --method d1 / wd1 / sft / rft).")


# --------------------------------------------------------------------------------------------------
# The command line: the demo, or `train`
# --------------------------------------------------------------------------------------------------
def practice_flags(p):
    p.add_argument("--prompts", type=positive_int, default=8, help="puzzles (per step in train)")
    p.add_argument("--group", type=int_in(2, CANVASES), default=8,
                   help="attempts per puzzle, G (at least 2: each is compared with the others)")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed: puzzles and attempts")
    return p


def rewards_parser():
    p = practice_flags(ArgumentParser(description=__doc__))
    sub = subcommands(p, ["train"])
    t = practice_flags(sub("train", "RL (or a control) from the shipped Sudoku dLLM, resumable"))
    t.add_argument("--method", choices=METHODS, default="exact",
                   help="exact / d1 / wd1: the log-likelihood estimator; sft, rft: the controls")
    t.add_argument("--puzzles", default=str(ROOT / "data" / "sudoku-100k"),
                   help="sudoku_puzzles.py's folder (train.txt; validation is on fresh puzzles)")
    t.add_argument("--givens", type=positive_int, nargs=2, default=[17, 27], metavar=("LO", "HI"),
                   help="RL practises on training puzzles with LO-HI givens (sft: all of them)")
    t.add_argument("--init", help="the model to start from (default: the shipped sudoku-dllm)")
    t.add_argument("--budget", type=positive_int, default=1_000_000,
                   help="model passes to spend (forward = 1, forward + backward = 3)")
    t.add_argument("--evals", type=positive_int, default=10, help="evaluations over the budget")
    t.add_argument("--lr", type=positive_float, help="AdamW learning rate (default: 2e-5 for RL, "
                   "1e-4 for sft and rft; RL at 1e-4 fell from 54.5%% to 40.5%% solved)")
    t.add_argument("--beta", type=non_negative_float, default=0.0,
                   help="KL to the starting model (k3; d1 uses 0.04)")
    t.add_argument("--skip-agreeing", action="store_true", help="leave a group whose attempts all "
                   "agree out of the step, its KL too (DAPO's filter): cheaper steps, more of them")
    t.add_argument("--temperature", type=positive_float, default=1.0, help="the attempts' digits")
    t.add_argument("--order-noise", type=non_negative_float, default=0.0,
                   help="Gumbel noise on the attempts' log confidence (0: surest first)")
    t.add_argument("--cells-per-call", type=int_in(1, CELLS), default=2, help="the attempts' pace")
    t.add_argument("--sft-batch", type=int_in(1, CANVASES), default=128, help="sft: puzzles a step")
    t.add_argument("--val-puzzles", type=int_in(1, 10_000), default=200,
                   help="fresh validation puzzles (17-27 givens) each evaluation solves")
    t.add_argument("--chunk", type=positive_int, default=512, help="canvases per backward pass")
    t.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to run")
    t.add_argument("--out", help="the run's folder (default: checkpoints/rewards-METHOD)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--force", action="store_true", help="replace the run in --out")
    return p


def main(argv=None):
    args = parse_args_given(rewards_parser(), argv)
    if args.prompts * args.group > CANVASES:
        raise UsageError(f"--prompts x --group: at most {CANVASES:,} attempts a step")
    if args.command != "train":
        return demo_rewards(args)
    if args.givens[0] > args.givens[1] or args.givens[1] > CELLS:
        raise UsageError(f"--givens {args.givens[0]} {args.givens[1]}: LO <= HI <= 81")
    if args.resume and args.force:
        raise UsageError("--resume continues the run in --out, --force replaces it: give one")
    args.out = args.out or str(ROOT / "checkpoints" / f"rewards-{args.method}")
    args.lr = args.lr or (1e-4 if args.method in ("sft", "rft") else 2e-5)
    args.device = runtime.resolve_device(args.device)  # --device cuda with none: one line, at once
    return train_rewards(args)


if __name__ == "__main__":
    run_cli(main)
