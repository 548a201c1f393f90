"""Lesson 13: self-correction. A GPT can never take back a token it wrote; a masked
diffusion LM can.

Lesson 04's sampler commits a token and never looks at it again. But every call sees the whole
canvas, so a token committed early can be masked again (remasked) and predicted anew by a later
call, with more context. Each call is then one step z_t -> z_s of ReMDM (Wang et al. 2025): commit
some masked positions, take back some tokens written BEFORE the step. What to take back:

  cap, rescale  ReMDM: every written token with probability sigma_t: min(eta, sigma_max)
                ("max-capped") or eta * sigma_max ("rescaled"), where
                sigma_max = min(1, (1 - alpha_s) / alpha_t), so 0 at the last step.
  loop          ReMDM's "loop", within the same calls: from t = 1 to t_on (0.55) the plain
                schedule decodes a fraction alpha_on (0.9) of the canvas; from t_on to t_off
                (0.05) it holds there, each call taking back every written token with
                probability eta and committing as many; the last calls decode the rest.
  confidence    ReMDM's idea as ReMDM-LLaDA applies it: take back the written token with the lowest
                confidence RECORDED WHEN IT WAS WRITTEN, if below --threshold (one per row per
                call). Not its probability at its visible position now: the masked-only loss never
                trained those outputs (LLaDA's own low-confidence rule only chooses which masked
                positions to commit; it never revisits one).

Remasking nothing is lesson 04's sampler exactly (the same tokens for the same seed). What it costs:
a remasked token must be predicted again, so for the same number of calls each call commits more
(the loop spends half of its calls rewriting). On Sudoku the rules say which digits are wrong: a
digit that repeats in a row, column or box is masked again.

    python 13_self_correction.py          # demo: characters taken back; Sudoku digits replaced
    python 13_self_correction.py generate --schedule confidence --threshold 0.05 --steps 50 --topk 5
"""
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import torch

from support import generate_args, pretrained
from support.cli import (
    ArgumentParser,
    UsageError,
    parse_args_given,
    positive_int,
    probability,
    run_cli,
    subcommands,
)

diff = import_module("04_diffusion")
gen = import_module("06_generate")
sudoku = import_module("12_sudoku")
puzzles = import_module("sudoku_puzzles")
ROOT = Path(__file__).resolve().parent
SCHEDULES = ("none", "cap", "rescale", "loop", "confidence")


# ----------------------------------------------------------------------------------------------
# The sampler: lesson 04's, plus taking tokens back
# ----------------------------------------------------------------------------------------------
@dataclass
class Remask:
    """What to take back, and when. schedule: none, cap, rescale, loop (ReMDM, Wang et al. 2025) or
    confidence (ReMDM-LLaDA's recorded confidence). eta: ReMDM's eta (cap, rescale, loop);
    threshold: the confidence rule's; t_on, t_off, alpha_on: the loop's window of time and the
    fraction decoded it holds (ReMDM's scripts/remdm-loop.sh: 0.55, 0.05, 0.9)."""

    schedule: str = "none"
    eta: float = 0.02
    threshold: float = 0.05
    t_on: float = 0.55
    t_off: float = 0.05
    alpha_on: float = 0.9


NO_REMASK = Remask()  # lesson 04's sampler
# the Sudoku repair's refill: drawn at temperature 1, margin order
REFILL = diff.Sampling(order="margin")


def sigma(schedule, eta, alpha_t, alpha_s):
    """ReMDM's remasking probability for one step t -> s, for every token decoded before it. It can
    never exceed sigma_max = min(1, (1 - alpha_s) / alpha_t), or the step could not end at alpha_s;
    0 at the last step."""
    sigma_max = torch.clamp((1 - alpha_s) / alpha_t.clamp_min(1e-9), max=1.0)  # (B, 1)
    # cap / rescale
    return torch.clamp(sigma_max, max=eta) if schedule == "cap" else eta * sigma_max


def take_back(x, written, conf, r, sig, generator):
    """(B, L) bool: which written tokens (decoded before this call) to mask again at the end of it.

    cap / rescale / loop: each with probability sig (B, 1) (ReMDM). confidence: the one with the
    lowest confidence recorded WHEN IT WAS WRITTEN, if below r.threshold (ReMDM-LLaDA). Never the
    logits at a visible position: the masked-only loss never trained the model's outputs there (it
    copies visible tokens through)."""
    if r.schedule == "confidence":
        c = conf.masked_fill(~written, float("inf"))
        worst = torch.zeros_like(written).scatter_(1, c.argmin(1, keepdim=True), True)
        return worst & (c < r.threshold)
    u = torch.rand(x.shape, generator=generator,
                   device=diff.rng_device(generator, x.device)).to(x.device)
    return written & (u < sig)


def decoded_counts(n_free, steps, r):
    """(B, steps): how many positions are decoded after each call, and (steps,) bool: the calls
    inside the loop. n_free (B,) positions to write. Lesson 04's schedule spreads them evenly; the
    loop (ReMDM) decodes alpha_on of them by t_on, holds that count until t_off, then the rest.
    Time runs from t = 1 down to 0 in `steps` equal steps."""
    if r.schedule != "loop":
        return diff.commit_counts(n_free, steps).cumsum(1), torch.zeros(steps, dtype=torch.bool)
    first = max(1, round((1 - r.t_on) * steps))  # calls from t = 1 to t_on
    last = max(1, round(r.t_off * steps))  # calls from t_off to 0
    if first + last > steps:
        raise ValueError(f"the loop needs at least {first + last} calls, got {steps}")
    held = (r.alpha_on * n_free).round().long()  # (B,) decoded while the loop holds
    cum = torch.cat([diff.commit_counts(held, first).cumsum(1),
                     held[:, None].expand(-1, steps - first - last),
                     held[:, None] + diff.commit_counts(n_free - held, last).cumsum(1)], 1)
    in_loop = torch.arange(steps) >= first
    return cum, in_loop & (torch.arange(steps) < steps - last)


@torch.no_grad()
def generate_remask(model, canvas, steps=64, sampling=diff.DEFAULT, remask=NO_REMASK,
                    callback=None):
    """Lesson 04's generate(), with a remasking schedule. Returns (x, model calls,
    tokens taken back).

    Each call is one ReMDM step z_t -> z_s: (1) choose what to take back among the tokens decoded
    BEFORE the call (never fixed ones, never at the last call); (2) commit enough masked positions,
    the first in sampling.order, that after (3) masking the chosen ones again the canvas holds as
    many masks as the schedule says (decoded_counts). A token taken back is predicted again from
    [MASK] by a later call. Taking nothing back is lesson 04's sampler exactly, draw for draw."""
    mask_id = model.config.mask_id
    x = canvas.clone()
    # the positions the sampler writes; prompt, suffix, template never change
    free = canvas == mask_id
    n_free = free.sum(1, keepdim=True)  # (B, 1)
    if n_free.max() == 0:
        return x, 0, 0
    # as 04: never more calls than masks (the loop spends its calls rewriting, so it may)
    calls = steps if remask.schedule == "loop" else min(steps, int(n_free.max()))
    cum, in_loop = decoded_counts(n_free[:, 0], calls, remask)  # (B, calls), (calls,)
    cum = cum.to(x.device)
    # the confidence each token was written with
    conf = torch.full(x.shape, float("inf"), device=x.device)
    taken = 0
    for i in range(calls):
        # decoded before this call: the only tokens ReMDM may take back
        written = free & (x != mask_id)
        alpha_t = cum[:, i - 1 : i] / n_free if i > 0 else torch.zeros_like(n_free.float())
        alpha_s = cum[:, i : i + 1] / n_free  # (B, 1) decoded fractions before and after
        back = torch.zeros_like(free)
        if i < calls - 1 and written.any():
            if remask.schedule in ("cap", "rescale") and remask.eta > 0:
                sig = sigma(remask.schedule, remask.eta, alpha_t, alpha_s)
                back = take_back(x, written, conf, remask, sig, sampling.generator)
            elif remask.schedule == "loop" and in_loop[i]:  # outside the window: plain MDLM
                # alpha held: ReMDM's bound sigma <= (1 - alpha_on) / alpha_on still applies
                sig = sigma("cap", remask.eta, alpha_t, alpha_s)
                back = take_back(x, written, conf, remask, sig, sampling.generator)
            elif remask.schedule == "confidence":
                back = take_back(x, written, conf, remask, None, None)
        logits = model(x)  # (B, L, V)
        masked = x == mask_id
        # (B, 1) to commit now: the masks now, plus those taken back, minus the masks after
        after = n_free - cum[:, i : i + 1]
        count = masked.sum(1, keepdim=True) + back.sum(1, keepdim=True) - after
        proposal, prob, ranks = diff.propose(logits, masked, sampling)
        commit = (ranks < count) & masked
        x, conf = torch.where(commit, proposal, x), torch.where(commit, prob, conf)
        x, taken = torch.where(back, mask_id, x), taken + int(back.sum())
        if callback is not None:
            callback(i + 1, x)
    return x, calls, taken


# ----------------------------------------------------------------------------------------------
# Sudoku: the rules say which digits are wrong
# ----------------------------------------------------------------------------------------------
def conflicts(grid, puzzle):
    """(B, 81) bool: cells not given whose digit repeats in one of their row, column or box."""
    units = sudoku.UNITS.to(grid.device)  # (27, 9)
    vals = grid[:, units]  # (B, 27, 9)
    # (B, 27, 9): this cell's digit is repeated
    dup = (vals[..., :, None] == vals[..., None, :]).sum(-1) > 1
    bad = torch.zeros_like(grid, dtype=torch.bool)
    for u in range(units.size(0)):  # 27 units: a cell is bad if it repeats in any of its three
        bad[:, units[u]] |= dup[:, u]
    return bad & (puzzle == 0) & (grid > 0) & (grid < 10)


@torch.no_grad()
def solve_remask(model, puzzle, rounds=8, sampling=REFILL, callback=None):
    """12's greedy solver, then up to `rounds` repairs: every digit that breaks a rule is masked
    again and the holes refilled with `sampling` (default: drawn at temperature 1, margin order: a
    greedy refill in the same context would write the same digits again). -> (grids (B, 81), model
    calls per puzzle (B,), digits taken back)."""
    mask_id = model.config.mask_id
    grid, _ = sudoku.solve_dllm(model, puzzle, "margin", callback=callback)
    # a puzzle's own calls: one per cell it fills (a batch runs as long as its longest)
    per = (puzzle == 0).sum(1)
    taken = 0
    for _ in range(rounds):
        bad = conflicts(grid, puzzle)
        if not bad.any():
            break
        taken += int(bad.sum())
        holes = torch.where(bad, mask_id, grid)
        refill, _ = diff.generate(model, holes, sudoku.CELLS, sampling, callback)
        grid = torch.where(bad.any(1, keepdim=True), refill, grid)
        per += bad.sum(1)  # one call per hole refilled
    return grid, per, taken


# ----------------------------------------------------------------------------------------------
# The demo: characters taken back, a digit replaced
# ----------------------------------------------------------------------------------------------
def demo_text(args):
    path = pretrained.choose(args.checkpoint, ROOT / "checkpoints" / "dllm", pretrained.TEXT_DLLM,
                             args.pretrained)
    model, tok, info = gen.load(path, "dllm", args.device)
    gen.check_objective(info)  # a text model: the Sudoku demo below loads its own
    mask_id = model.config.mask_id
    canvas = torch.full((1, min(96, model.config.block_size)), mask_id)
    frames = []
    g = torch.Generator().manual_seed(args.seed)
    r = Remask("confidence", threshold=args.threshold)
    x, calls, taken = generate_remask(model, canvas, 32, diff.Sampling(top_k=5, generator=g), r,
                                      callback=lambda i, x: frames.append(x[0].clone()))
    print(f"\n== {canvas.size(1)} characters in {calls} calls; the written character with the "
          f"lowest recorded confidence is taken back when below {args.threshold}: {taken} taken "
          "back ==")
    shown = 0
    for i in range(1, len(frames)):
        back = (frames[i - 1] != mask_id) & (frames[i] == mask_id)
        for pos in back.nonzero().flatten().tolist()[:1]:
            later = next((int(f[pos]) for f in frames[i:] if f[pos] != mask_id), None)
            print(f"call {i + 1:>2}: {tok.decode([int(frames[i - 1][pos])])!r} at position {pos} "
                  "taken back, written again "
                  f"as {tok.decode([later]) if later is not None else '?'!r}")
            print(f"   before  {tok.decode(frames[i - 1].tolist())!r}\n   after  "
                  f" {tok.decode(frames[i].tolist())!r}")
            shown += 1
        if shown == 3:
            break
    print(f"final   {tok.decode(x[0].tolist())!r}")


def demo_sudoku(args):
    import random

    model = sudoku.load_solver("dllm", None, args.pretrained, args.device)
    # the hardest it makes
    pairs = puzzles.make_split(args.puzzles, (17, 27), random.Random(args.seed), set())
    x = torch.tensor([p + s for p, s in pairs])
    greedy, _ = sudoku.solve_dllm(model, x[:, :81], "margin")
    g = torch.Generator().manual_seed(args.seed)
    fixed, calls, taken = solve_remask(model, x[:, :81], 8,
                                       diff.Sampling(order="margin", generator=g))
    ok0, ok1 = sudoku.solved(greedy, x), sudoku.solved(fixed, x)
    print(f"\n== {len(x)} of the hardest puzzles ({min(sum(v > 0 for v in p) for p, _ in pairs)}-"
          f"{max(sum(v > 0 for v in p) for p, _ in pairs)} givens): margin order alone solves "
          f"{int(ok0.sum())}; "
          f"with up to 8 rounds of taking back rule-breaking digits, {int(ok1.sum())} ==")
    print(f"{taken} digits taken back; model calls per puzzle {calls.float().mean():.1f} (81 - "
          f"givens alone: {(x[:, :81] == 0).sum(1).float().mean():.1f})")
    # a repaired one first, if any
    order = sorted(range(len(x)), key=lambda b: not (ok1[b] and not ok0[b]))
    for b in order:
        bad = conflicts(greedy[b : b + 1], x[b : b + 1, :81])[0]
        if bad.any():
            # 10 shows as '.'
            marked = [10 if bad[c] else v for c, v in enumerate(greedy[b].tolist())]
            print(f"\npuzzle {b + 1}: the digits that break a rule (.) are masked again and "
                  "refilled:")
            print(puzzles.show(marked, fixed[b].tolist(), titles=("margin order", "after taking "
                                                                                  "back")))
            print("solved" if ok1[b] else "still not solved")
            break


# ----------------------------------------------------------------------------------------------
# The command line: the demo, or `generate` (06's flags plus a remasking schedule)
# ----------------------------------------------------------------------------------------------
def remask_parser():
    p = ArgumentParser(description=__doc__)
    generate_args.add_run_args(gen.add_model_args(p, ROOT / "checkpoints" / "dllm", hub=False))
    p.add_argument("--threshold", type=probability, default=0.05,
                   help="the text demo's confidence threshold")
    p.add_argument("--puzzles", type=positive_int, default=8,
                   help="hard puzzles made for the Sudoku part")
    add = subcommands(p, ["generate"])
    g = gen.add_generate_args(add("generate", "generate with a remasking schedule (06's flags)"),
                              ROOT / "checkpoints" / "dllm")
    t = g.add_argument_group("this lesson")
    t.add_argument("--schedule", choices=SCHEDULES, default="confidence",
                   help="what to take back (see above)")
    t.add_argument("--eta", type=probability, default=0.02, help="cap, rescale, loop: ReMDM's eta")
    t.add_argument("--threshold", type=probability, default=0.05,
                   help="confidence: take back below this")
    t.add_argument("--t-on", type=probability, default=0.55,
                   help="loop: the time the loop starts (1 = all masked; ReMDM's default)")
    t.add_argument("--t-off", type=probability, default=0.05,
                   help="loop: the time it ends (below --t-on)")
    t.add_argument("--alpha-on", type=probability, default=0.9,
                   help="loop: the fraction decoded that the loop holds")
    return p


def sample_remask(model, tokenizer, args, callback=None):
    """06's canvas, decoded by generate_remask with this lesson's flags. Returns (x (N,
    L), model calls)."""
    x = gen.canvases(model, tokenizer, args)
    r = Remask(args.schedule, args.eta, args.threshold, args.t_on, args.t_off, args.alpha_on)
    try:
        x, calls, taken = generate_remask(model, x, args.steps or 64, gen.sampling(model, args), r,
                                          callback=callback)
    except ValueError as e:  # a loop with too few calls
        raise UsageError(str(e)) from None
    print(f"({taken} tokens taken back and written again)", file=sys.stderr)
    return x, calls


def main(argv=None):
    args = parse_args_given(remask_parser(), argv)
    if args.command == "generate":
        uses = {"eta": ("cap", "rescale", "loop"), "threshold": ("confidence",),
                "t_on": ("loop",), "t_off": ("loop",),
                "alpha_on": ("loop",)}
        # a schedule's own settings, typed for another schedule
        for flag, schedules in uses.items():
            if flag in args.given and args.schedule not in schedules:
                raise UsageError(f"--{flag.replace('_', '-')} is the {' and '.join(schedules)} "
                                 f"schedule's: add --schedule {schedules[0]}")
        if args.t_off >= args.t_on:
            raise UsageError(f"--t-off ({args.t_off}) must be below --t-on ({args.t_on})")
        return gen.generate_cli(args, sampler=sample_remask)
    demo_text(args)
    demo_sudoku(args)


if __name__ == "__main__":
    run_cli(main)
