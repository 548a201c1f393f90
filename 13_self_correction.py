"""Lesson 13: self-correction. A GPT can never take back a token it wrote; a masked diffusion LM can.

Lesson 04's sampler commits a token and never looks at it again. But every call sees the whole canvas, so a
token committed early can be judged again later, with more context, and masked again (remasked) if it no
longer fits; the next call predicts it anew. Three ways to choose what to take back:

  cap             ReMDM (Wang et al. 2025): after each call, every committed token is masked again with a small
                  probability sigma_t = min(eta, (1 - alpha_s) / alpha_t) (their "max-capped" schedule).
  loop            ReMDM's "loop": run the plain schedule until a fraction t_on of the canvas is still masked, then
                  hold that fraction for --loop-steps extra calls, each remasking committed tokens with
                  probability eta and filling as many again; then finish the schedule.
  low-confidence  LLaDA's low-confidence remasking, applied to committed tokens: a token whose probability under
                  the new context has fallen below --threshold is masked again (at most one per row per call).

Remasking nothing is lesson 04's sampler exactly (the same tokens for the same seed). What it costs: a remasked
token must be predicted again, so for the same number of calls each call commits more; `loop` adds calls.
On Sudoku the rules say which digits are wrong: a digit that repeats in a row, column or box is masked again.

    python 13_self_correction.py                      # demo: a character taken back; a Sudoku digit replaced
    python 13_self_correction.py --generate --schedule low-confidence --threshold 0.05 --steps 50 --topk 5
"""
import sys
from importlib import import_module
from pathlib import Path

import torch

from support.cli import (
    ArgumentParser,
    UsageError,
    parse_args_given,
    positive_int,
    probability,
    refuse_unused,
    run_cli,
)

diff = import_module("04_diffusion")
gen = import_module("06_generate")
sudoku = import_module("12_sudoku")
puzzles = import_module("sudoku_puzzles")
ROOT = Path(__file__).resolve().parent
SCHEDULES = ("none", "cap", "loop", "low-confidence")


# ---------------------------------------------------------------------------------------------------------
# The sampler: lesson 04's, plus taking tokens back
# ---------------------------------------------------------------------------------------------------------
def take_back_low_confidence(logits, x, free, masked, threshold):
    """(B, L) bool: per row, the committed token (not a fixed one) whose probability under the new context is the
    lowest, if it is below `threshold`. LLaDA's low-confidence rule, aimed at what is already written."""
    p_now = logits.float().softmax(-1).gather(-1, x.clamp_max(logits.size(-1) - 1)[..., None]).squeeze(-1)
    p_now = p_now.masked_fill(~free | masked, float("inf"))  # only committed, generated positions compete
    worst = p_now.argmin(1, keepdim=True)  # (B, 1)
    pick = torch.zeros_like(masked).scatter_(1, worst, True)
    return pick & (p_now < threshold)


def remask_random(x, free, masked, sigma, generator):
    """(B, L) bool: every committed generated token, each with probability sigma (ReMDM's remasking step)."""
    u = torch.rand(x.shape, generator=generator, device=diff.rng_device(generator, x.device)).to(x.device)
    return free & ~masked & (u < sigma)


@torch.no_grad()
def generate_remask(model, canvas, mask_id, steps=64, schedule="none", eta=0.02, threshold=0.05, loop_steps=0,
                    t_on=0.55, temperature=1.0, top_k=0, top_p=1.0, remasking="confidence", noise=0.0,
                    callback=None, generator=None):
    """Lesson 04's generate(), with a remasking schedule. Returns (x, model calls, tokens taken back).

    Each call: (1) low-confidence: take back the worst committed token if it fell below `threshold`; (2) commit
    ceil(masked / calls left) positions, the surest first (04's counts when nothing is taken back); (3) cap /
    loop: remask committed tokens at random. Never in the last call: the canvas always ends without [MASK].
    """
    x = canvas.clone()
    free = canvas == mask_id  # the positions the sampler writes; prompt, suffix, template never change
    n_masked = free.sum(1)
    if n_masked.max() == 0:
        return x, 0, 0
    plain = min(steps, int(n_masked.max()))  # as 04: never more calls than masks
    loop = loop_steps if schedule == "loop" else 0
    total, on = plain + loop, round((1 - t_on) * plain)  # the loop starts after this many plain calls
    hold, taken = None, 0
    for i in range(total):
        logits = model(x)  # (B, L, V)
        masked = x == mask_id
        if schedule == "low-confidence" and i < total - 1:
            back = take_back_low_confidence(logits, x, free, masked, threshold)
            x, masked, taken = torch.where(back, mask_id, x), masked | back, taken + int(back.sum())
        in_loop = schedule == "loop" and on <= i < on + loop
        if in_loop and hold is None:
            hold = masked.sum(1, keepdim=True)  # the loop holds this many masked: alpha stays constant
        left = plain - i if i < on else total - i  # plain calls left, this one included
        count = masked.sum(1, keepdim=True) - hold if in_loop else -(-masked.sum(1, keepdim=True) // max(1, left))
        proposal, _, ranks = diff.propose(logits, masked, temperature, top_k, top_p, remasking, generator, noise)
        x = torch.where((ranks < count) & masked, proposal, x)  # the `count` surest masked positions
        if (schedule == "cap" or in_loop) and i < total - 1 and eta > 0:  # (eta 0 draws nothing: 04's sampler)
            t, s = 1 - i / plain, 1 - (i + 1) / plain  # 04's linear schedule: alpha_t = 1 - t
            sigma = eta if in_loop else min(eta, s / max(1 - t, 1e-9))  # ReMDM's cap: sigma_t <= (1-a_s)/a_t
            back = remask_random(x, free, x == mask_id, sigma, generator)
            x, taken = torch.where(back, mask_id, x), taken + int(back.sum())
        if callback is not None:
            callback(i + 1, x)
    return x, total, taken


# ---------------------------------------------------------------------------------------------------------
# Sudoku: the rules say which digits are wrong
# ---------------------------------------------------------------------------------------------------------
def conflicts(grid, puzzle):
    """(B, 81) bool: cells not given whose digit repeats in one of their row, column or box."""
    units = sudoku.UNITS.to(grid.device)  # (27, 9)
    vals = grid[:, units]  # (B, 27, 9)
    dup = (vals[..., :, None] == vals[..., None, :]).sum(-1) > 1  # (B, 27, 9): this cell's digit is repeated
    bad = torch.zeros_like(grid, dtype=torch.bool)
    for u in range(units.size(0)):  # 27 units: a cell is bad if it repeats in any of its three
        bad[:, units[u]] |= dup[:, u]
    return bad & (puzzle == 0) & (grid > 0) & (grid < 10)


@torch.no_grad()
def solve_remask(model, puzzle, rounds=8, temperature=1.0, generator=None, callback=None):
    """12's greedy solver, then up to `rounds` repairs: every digit that breaks a rule is masked again and the
    holes refilled, sampled at `temperature` in margin order (a greedy refill in the same context would write the
    same digits again). -> (grids (B, 81), model calls per puzzle (B,), digits taken back)."""
    mask_id = model.config.mask_id
    grid, _ = sudoku.solve_dllm(model, puzzle, "margin", callback=callback)
    per = (puzzle == 0).sum(1)  # a puzzle's own calls: one per cell it fills (a batch runs as long as its longest)
    taken = 0
    for _ in range(rounds):
        bad = conflicts(grid, puzzle)
        if not bad.any():
            break
        taken += int(bad.sum())
        holes = torch.where(bad, mask_id, grid)
        refill, _ = diff.generate(model, holes, mask_id, steps=sudoku.CELLS, temperature=temperature,
                                  remasking="margin", generator=generator, callback=callback)
        grid = torch.where(bad.any(1, keepdim=True), refill, grid)
        per += bad.sum(1)  # one call per hole refilled
    return grid, per, taken


# ---------------------------------------------------------------------------------------------------------
# The demo: a character taken back, a digit replaced
# ---------------------------------------------------------------------------------------------------------
def demo_text(args):
    model, tok, info = gen.load("dllm", args.checkpoint, ROOT / "checkpoints" / "dllm", "shakespeare-dllm",
                                args.pretrained, args.device, log=print)
    L = min(args.len or 96, model.config.block_size)
    canvas = torch.full((1, L), model.config.mask_id)
    frames = []
    g = torch.Generator().manual_seed(args.seed)
    x, calls, taken = generate_remask(model, canvas, model.config.mask_id, steps=args.steps or 32,
                                      schedule="low-confidence", threshold=args.threshold, top_k=5, generator=g,
                                      callback=lambda i, x: frames.append(x[0].clone()))
    print(f"\n== {L} characters in {calls} calls, low-confidence remasking (threshold {args.threshold}): "
          f"{taken} characters taken back ==")
    shown = 0
    for i in range(1, len(frames)):
        back = (frames[i - 1] != model.config.mask_id) & (frames[i] == model.config.mask_id)
        for pos in back.nonzero().flatten().tolist()[:1]:
            later = next((int(f[pos]) for f in frames[i:] if f[pos] != model.config.mask_id), None)
            print(f"call {i + 1:>2}: {tok.decode([int(frames[i - 1][pos])])!r} at position {pos} taken back, "
                  f"written again as {tok.decode([later]) if later is not None else '?'!r}")
            print(f"   before  {tok.decode(frames[i - 1].tolist())!r}\n   after   {tok.decode(frames[i].tolist())!r}")
            shown += 1
        if shown == 3:
            break
    print(f"final   {tok.decode(x[0].tolist())!r}")


def demo_sudoku(args):
    import random

    model = sudoku.load_solver("dllm", None, args.pretrained, args.device, log=print)
    pairs = puzzles.make_split(args.puzzles, (17, 27), random.Random(args.seed), set())  # the hardest it makes
    x = torch.tensor([p + s for p, s in pairs])
    greedy, _ = sudoku.solve_dllm(model, x[:, :81], "margin")
    g = torch.Generator().manual_seed(args.seed)
    fixed, calls, taken = solve_remask(model, x[:, :81], rounds=8, generator=g)
    ok0, ok1 = sudoku.solved(greedy, x), sudoku.solved(fixed, x)
    print(f"\n== {len(x)} of the hardest puzzles ({min(sum(v > 0 for v in p) for p, _ in pairs)}-"
          f"{max(sum(v > 0 for v in p) for p, _ in pairs)} givens): margin order alone solves {int(ok0.sum())}; "
          f"with up to 8 rounds of taking back rule-breaking digits, {int(ok1.sum())} ==")
    print(f"{taken} digits taken back; model calls per puzzle {calls.float().mean():.1f} (81 - givens alone: "
          f"{(x[:, :81] == 0).sum(1).float().mean():.1f})")
    order = sorted(range(len(x)), key=lambda b: not (ok1[b] and not ok0[b]))  # a repaired one first, if any
    for b in order:
        bad = conflicts(greedy[b : b + 1], x[b : b + 1, :81])[0]
        if bad.any():
            marked = [10 if bad[c] else v for c, v in enumerate(greedy[b].tolist())]  # 10 shows as '.'
            print(f"\npuzzle {b + 1}: the digits that break a rule (.) are masked again and refilled:")
            print(puzzles.show(marked, fixed[b].tolist(), titles=("margin order", "after taking back")))
            print("solved" if ok1[b] else "still not solved")
            break


def main(argv=None):
    p = gen.add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "dllm")
    g = p.add_argument_group("this lesson")
    g.add_argument("--generate", action="store_true", help="generate text with a remasking schedule (06's flags)")
    g.add_argument("--schedule", choices=SCHEDULES, default="low-confidence", help="what to take back (see above)")
    g.add_argument("--eta", type=probability, default=0.02, help="cap / loop: remasking probability per token")
    g.add_argument("--threshold", type=probability, default=0.05, help="low-confidence: take back below this")
    g.add_argument("--loop-steps", type=positive_int, default=10, help="loop: extra calls at a constant mask rate")
    g.add_argument("--puzzles", type=positive_int, default=8, help="demo: hard puzzles made for the Sudoku part")
    args = parse_args_given(p, argv)
    if args.generate:
        refuse_unused(args, set(vars(args)) - {"puzzles"}, "--generate")
        if args.schedule != "loop" and "loop_steps" in args.given:
            raise UsageError("--loop-steps is the loop schedule's: add --schedule loop")
        return gen.generate_cli(args, sampler=sample_remask)
    refuse_unused(args, {"checkpoint", "pretrained", "device", "seed", "len", "steps", "threshold", "puzzles"},
                  "the demo")
    demo_text(args)
    demo_sudoku(args)


def sample_remask(model, tokenizer, args, callback=None):
    """06's canvas, decoded by generate_remask with this lesson's flags. Returns (x (N, L), model calls)."""
    x = gen.canvases(model, tokenizer, args)
    x, calls, taken = generate_remask(model, x, model.config.mask_id, steps=args.steps or 64, schedule=args.schedule,
                                      eta=args.eta, threshold=args.threshold, loop_steps=args.loop_steps,
                                      callback=callback, **gen.sampling_kw(model, args))
    print(f"({taken} tokens taken back and written again)", file=sys.stderr)
    return x, calls


if __name__ == "__main__":
    run_cli(main)
