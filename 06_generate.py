"""Lesson 06: generate text with a trained masked diffusion LM: sampling, prompting, infilling.

    python 06_generate.py --steps 50 --topk 5
    python 06_generate.py --prompt "ROMEO:" --len 200 --show-steps
    python 06_generate.py --template "To be, or ____ to be: that is the ________."
    python 06_generate.py --threshold 0.9 --block-size 32 --cache dual     # Fast-dLLM decoding (lesson 04)
    python 06_generate.py --gif denoise.gif
    python 06_generate.py --checkpoint checkpoints/dllm_bd4 --len 1000 --stop "\n\n"   # block diffusion (04)

The canvas starts as [MASK] everywhere except the characters you fix (prompt, suffix, template); those are
never changed, and the model sees them on both sides of every gap: infilling comes for free.
A block-diffusion checkpoint (05 --block-diffusion B) writes left to right instead, block by block, with an exact
KV cache: prompting works and the text can be any length, but it cannot see the future, so no infilling.
"""
import math
import sys
from importlib import import_module
from pathlib import Path

import torch

from support.checkpoints import load_model
from support.cli import ArgumentParser, UsageError, encode_or_fail, require, run_cli
from support.files import atomic_write

diff = import_module("04_diffusion")
ROOT = Path(__file__).resolve().parent


def add_sampling_args(p):
    """How each token is drawn: shared by every sampler here, the GPT's in 07 included."""
    p.add_argument("--temp", type=float, default=1.0, help="sampling temperature; 0 = greedy (argmax)")
    p.add_argument("--topk", type=int, default=0, help="sample among the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: smallest set with this mass")
    p.add_argument("--num-samples", type=int, default=1, help="samples, generated together as one batch")
    return p


def check_sampling_args(a):
    require([
        (a.temp >= 0, f"--temp must be >= 0, got {a.temp}"),
        (a.topk >= 0, f"--topk must be >= 0, got {a.topk}"),
        (0 < a.top_p <= 1, f"--top-p must be in (0, 1], got {a.top_p}"),
        (a.num_samples >= 1, f"--num-samples must be >= 1, got {a.num_samples}"),
    ])


def add_sampler_args(p):
    """The sampler flags of lesson 04, shared by 06 and 09."""
    p.add_argument("--steps", type=int, help="model calls in all (ignored with --threshold/--factor/"
                   "--entropy-budget); default: 64, or one per character for block diffusion")
    p.add_argument("--len", type=int, help="characters to generate (default: the model's context; block "
                   "diffusion: any length)")
    add_sampling_args(p)
    p.add_argument("--remasking", default="confidence", choices=diff.REMASKING,
                   help="which masked positions to commit each step")
    p.add_argument("--block-size", type=int, help="semi-autoregressive blocks of this many positions (LLaDA)")
    p.add_argument("--threshold", type=float, help="Fast-dLLM: commit every position with confidence >= this")
    p.add_argument("--factor", type=float, help="Fast-dLLM factor rule: commit n while c_(n) >= 1 - f/(n+1)")
    p.add_argument("--entropy-budget", type=float, help="EB-Sampler: commit positions in --remasking order while "
                   "their summed entropy (nats) stays within this; at least one per call (the paper: --remasking "
                   "entropy)")
    p.add_argument("--cache", choices=["none", "prefix", "dual", "exact"],
                   help="dLLM: Fast-dLLM's approximate KV cache, refreshed at each block (with --block-size); block "
                   "diffusion: exact, the keys and values of committed blocks (default: exact for block diffusion, "
                   "else none)")
    p.add_argument("--stop", help="end the text at the first occurrence of this string (\\n for a newline); "
                   "block diffusion stops generating there")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--prompt", default="", help="text fixed at the beginning")
    p.add_argument("--suffix", default="", help="text fixed at the end")
    p.add_argument("--template", help="fixed text with gaps to fill, e.g. 'To be, or ____ to be'")
    p.add_argument("--fill-char", default="_", help="the gap character of --template (default _)")
    p.add_argument("--show-steps", action="store_true", help="print the canvas after every model call")
    p.add_argument("--gif", metavar="FILE", help="write an animated GIF of the denoising")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run")
    return p


def add_hub_args(p):
    p.add_argument("--from-hub", metavar="REPO_ID", help="load from the Hugging Face Hub instead of --checkpoint "
                   "(uses the Hub cache; HF_HUB_OFFLINE=1 works offline)")
    p.add_argument("--filename", help="with --from-hub: a .pt file in the repo (e.g. dllm_step50000.pt) instead of "
                   "config.json + model.safetensors")
    return p


def check_sampler_args(a):
    check_sampling_args(a)
    require([
        (a.steps is None or a.steps >= 1, f"--steps must be >= 1, got {a.steps}"),
        (a.len is None or a.len >= 1, f"--len must be >= 1, got {a.len}"),
        (a.threshold is None or 0 < a.threshold <= 1, f"--threshold must be in (0, 1], got {a.threshold}"),
        (a.factor is None or a.factor > 0, f"--factor must be > 0, got {a.factor}"),
        (a.entropy_budget is None or a.entropy_budget >= 0, f"--entropy-budget must be >= 0, got {a.entropy_budget}"),
        (sum(r is not None for r in (a.threshold, a.factor, a.entropy_budget)) <= 1,
         "--threshold, --factor and --entropy-budget are three rules: pick one"),
        (a.stop is None or (a.stop and not a.suffix and a.template is None),
         "--stop ends the text: give a non-empty string, without --suffix or --template"),
        (a.block_size is None or a.block_size >= 1, f"--block-size must be >= 1, got {a.block_size}"),
        (a.template is None or not (a.prompt or a.suffix), "--template fixes the whole canvas: drop --prompt/--suffix"),
        (a.cache not in ("prefix", "dual") or a.block_size is not None,
         f"--cache {a.cache} is refreshed at each block: give --block-size too (e.g. 32)"),
        (a.gif is None or a.gif.lower().endswith(".gif"), f"--gif needs a file name ending in .gif, not {a.gif}"),
    ])


def build_canvas(tokenizer, mask_id, context, length=None, prompt="", suffix="", template=None, fill="_"):
    """(L,) token ids: [MASK] where the model writes, known ids where the user fixed text."""
    if template is not None:
        if len(tokenizer.split(fill)) != 1:
            raise UsageError(f"--fill-char must be a single character, got {fill!r}")
        pieces = tokenizer.split(template)
        if fill not in pieces:
            raise UsageError(f"--template has no {fill!r} to fill")
        known = "".join(c for c in pieces if c != fill)
        encode_or_fail(tokenizer, known, "--template")
        ids = [mask_id if c == fill else tokenizer.stoi[c] for c in pieces]
    else:
        length = length or context
        pre = encode_or_fail(tokenizer, prompt, "--prompt")
        suf = encode_or_fail(tokenizer, suffix, "--suffix")
        if len(pre) + len(suf) >= length:
            raise UsageError(f"--prompt and --suffix fill {len(pre) + len(suf)} of {length} positions: "
                             "nothing left to generate")
        ids = pre + [mask_id] * (length - len(pre) - len(suf)) + suf
    if len(ids) > context:
        raise UsageError(f"the canvas has {len(ids)} positions; this model's context is {context}")
    return torch.tensor(ids)


def stop_ids(tokenizer, stop):
    """--stop as token ids; '\\n' and '\\t' typed on a command line mean a newline and a tab."""
    if stop is None:
        return None
    return encode_or_fail(tokenizer, stop.replace("\\n", "\n").replace("\\t", "\t"), "--stop")


def run_sampler(model, tokenizer, args, on_step=None):
    """Generate args.num_samples texts from the canvas the flags describe. Returns (texts, calls, frames)."""
    c = model.config
    device = next(model.parameters()).device
    stop = stop_ids(tokenizer, args.stop)
    frames = []

    def callback(calls, x):
        frames.append(x[0].tolist())
        if on_step:
            on_step(calls, x)

    kw = dict(temperature=args.temp, top_k=args.topk, top_p=args.top_p, remasking=args.remasking, callback=callback,
              generator=torch.Generator(device).manual_seed(args.seed))  # on the model's device: no copies
    rule = dict(threshold=args.threshold, factor=args.factor, entropy_budget=args.entropy_budget)  # parallel commits
    if c.block_len:  # GPT vs dLLM: block diffusion writes left to right, block by block; the future is unseen
        bd = f"this checkpoint is block diffusion (blocks of {c.block_len}): it writes left to right"
        require([(not args.suffix and args.template is None, f"{bd} and cannot fill gaps: use --prompt"),
                 (args.block_size is None, f"{bd} in its own blocks: drop --block-size"),
                 (args.cache in (None, "none", "exact"), f"{bd} with an exact cache: --cache exact or none")])
        prompt = torch.tensor(encode_or_fail(tokenizer, args.prompt, "--prompt"), dtype=torch.long, device=device)
        prompt = prompt[None].repeat(args.num_samples, 1)  # (N, P)
        n = args.len or c.block_size
        n_blocks = math.ceil((prompt.size(1) % c.block_len + n) / c.block_len)
        steps = args.steps and min(c.block_len, math.ceil(args.steps / n_blocks))  # --steps in all, per block
        frames.append(prompt[0].tolist())
        x, calls = diff.generate_blocks(model, prompt, n, c.mask_id, steps=steps, cache=args.cache != "none",
                                        stop=[stop] if stop else (), **rule, **kw)
    else:
        require([(args.cache != "exact", "--cache exact is for block-diffusion checkpoints (their committed blocks "
                                         "never change); for this dLLM use --cache prefix or dual")])
        canvas = build_canvas(tokenizer, c.mask_id, c.block_size, args.len, args.prompt, args.suffix,
                              args.template, args.fill_char)
        canvas = canvas.to(device)[None].repeat(args.num_samples, 1)  # (N, L): all samples in one batch
        frames.append(canvas[0].tolist())
        kw.update(steps=args.steps or 64, block_size=args.block_size)
        try:
            if all(v is None for v in rule.values()) and args.cache in (None, "none"):
                x, calls = diff.generate(model, canvas, c.mask_id, **kw)  # lesson 04's plain sampler
            else:  # lesson 04's fast path: parallel commits and/or the approximate KV cache
                x, calls = diff.generate_fast(model, canvas, c.mask_id, cache=args.cache or "none", **rule, **kw)
        except ValueError as e:
            raise UsageError(str(e)) from None
    P = len(tokenizer.encode(args.prompt)) if args.template is None else 0
    ends = [diff.find_stop(row, [stop], P) if stop else None for row in x.tolist()]  # cut after the first stop
    rows = [row[:end] if end else row for row, end in zip(x.tolist(), ends)]
    return [tokenizer.decode(row) for row in rows], calls, frames


def write_gif(path, frames, tokenizer, width=64, font=None, fps=8, dpi=160):
    """Animated GIF of the canvas after each step (matplotlib, headless).

    dpi 160: a GIF has 256 colours, and at screen resolution the palette drops the thin anti-aliased strokes
    of scripts such as Tamil (ப and ம lose their loops); more pixels per stroke keep them."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    def wrap(ids):
        text = tokenizer.decode(ids, mask_char="_")
        return "\n".join(textwrap.fill(line, width) if line else "" for line in text.split("\n"))

    texts = [wrap(f) for f in frames]
    n_lines = max(t.count("\n") + 1 for t in texts)
    fig = plt.figure(figsize=(width * 0.11 + 0.4, n_lines * 0.22 + 0.6))
    family = font or "monospace"
    txt = fig.text(0.02, 0.98, "", va="top", ha="left", family=family, fontsize=10)
    title = fig.text(0.98, 0.01, "", va="bottom", ha="right", fontsize=8, color="gray")

    def draw(i):
        txt.set_text(texts[i])
        title.set_text(f"step {i}/{len(texts) - 1}")
        return txt, title

    def save(tmp):  # hold the final text for 4 extra frames
        anim = FuncAnimation(fig, lambda i: draw(min(i, len(texts) - 1)), frames=len(texts) + 4)
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)

    try:
        atomic_write(path, save)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)


def generate_cli(argv, default_checkpoint, description, font=None):
    """Parse the flags, load the model, sample, print; 09 calls this with its own defaults."""
    p = ArgumentParser(description=description)
    p.add_argument("--checkpoint", default=str(default_checkpoint), help="a .pt file, a run directory or a Hub export")
    add_hub_args(p)
    args = add_sampler_args(p).parse_args(argv)
    check_sampler_args(args)
    model, tokenizer, info = load_model("dllm", args.checkpoint, args.device, args.from_hub, args.filename)

    def show(calls, x):
        print(f"[{calls:3d}] {tokenizer.decode(x[0].tolist())!r}")

    texts, calls, frames = run_sampler(model, tokenizer, args, show if args.show_steps else None)
    for i, t in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(t)
    step = f", step {info['step']}" if info["step"] is not None else ""
    print(f"({info['path']}{step}, {model.num_params():,} parameters: {calls} model calls)", file=sys.stderr)
    if args.gif:
        write_gif(args.gif, frames, tokenizer, font=font)
        print(f"wrote {args.gif} ({len(frames)} frames)", file=sys.stderr)
    return texts


def main(argv=None):
    return generate_cli(argv, ROOT / "checkpoints" / "dllm", __doc__)


if __name__ == "__main__":
    run_cli(main)
