"""The generation flags of 06 (and 07's sampling flags; 09, 10, 11 and 13 take 06's). Plumbing: what the flags choose
among (lesson 04's orders, 06's default noise) the lesson passes in. Each flag is checked once, by its type."""
import argparse
from pathlib import Path

from support.cli import (
    UsageError,
    free_text,
    int_in,
    non_negative_float,
    non_negative_int,
    positive_int,
    probability,
    random_seed,
    samples,
)
from support.files import check_output
from support.pretrained import TEXT_DLLM
from support.runtime import DEVICES


def add_sampling_args(p):
    """How each token is drawn: shared by every sampler here, the GPT's in 07 included."""
    p.add_argument("--temp", type=non_negative_float, default=1.0, help="sampling temperature; 0 = greedy (argmax)")
    p.add_argument("--topk", type=non_negative_int, default=0, help="sample among the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=probability, default=1.0, help="nucleus sampling: smallest set with this mass")
    p.add_argument("--num-samples", type=samples, default=1, help="samples, generated together as one batch")
    return add_run_args(p)


def add_run_args(p):
    """--seed and --device: every sampler's, and the demos' that load a model."""
    p.add_argument("--seed", type=random_seed, default=0, help="random seed")
    p.add_argument("--device", default="auto", choices=DEVICES, help="where to run")
    return p


def add_model_args(p, default_run, shipped=TEXT_DLLM, hub=True):
    """Which model: --checkpoint, --pretrained [NAME] (and --from-hub, --filename); else the user's run, else the
    shipped one."""
    p.set_defaults(default_run=str(default_run), shipped=shipped)
    p.add_argument("--checkpoint", help=f"a .pt file, a run directory or a Hub export (default: your run in "
                   f"checkpoints/{Path(default_run).name}/ if there is one, else the shipped model)")
    p.add_argument("--pretrained", nargs="?", const=True, default=False, metavar="NAME",
                   help=f"use the model shipped in checkpoints/pretrained/{shipped} even if you have trained your "
                   "own; with a NAME, that shipped model" + (" (shakespeare-dllm: the 0.8M one)" if shipped ==
                                                              TEXT_DLLM else "") if shipped else argparse.SUPPRESS)
    if hub:
        p.add_argument("--from-hub", metavar="REPO_ID", help="load from the Hugging Face Hub instead of "
                       "--checkpoint (uses the Hub cache; HF_HUB_OFFLINE=1 works offline)")
        p.add_argument("--filename", help="with --from-hub: a .pt file in the repo (e.g. dllm_step50000.pt) "
                       "instead of config.json + model.safetensors")
    return p


def add_generate_args(p, default_run, shipped=TEXT_DLLM, orders=(), order="confidence", noise=0.0):
    """The flags of 06's sampler; 09, 10, 11 and 13 take them too (with their own run and shipped model).
    orders: the unmasking orders of lesson 04 (--order); order, noise: 06's defaults."""
    add_model_args(p, default_run, shipped)
    p.add_argument("--steps", type=positive_int, help="model calls in all (default: 64; lesson 11: one per character)")
    p.add_argument("--len", type=int_in(1, 10**6), help="characters to generate (default: the model's context; "
                   "lesson 11's block diffusion may go past it)")
    add_sampling_args(p)
    p.add_argument("--order", "--remasking", dest="order", default=order, choices=orders,
                   help="which masked positions to commit first (LLaDA's 'remasking strategy'); random: each "
                   "call commits positions drawn at random (how the default was chosen: RESULTS.md)")
    p.add_argument("--noise", type=non_negative_float, default=noise, help="with --order confidence, margin or "
                   "entropy: Gumbel noise on the log confidence of the order (MaskGIT's choice temperature); 0 "
                   "commits strictly the surest first, which loops ('I am a do do'), larger is nearer random")
    p.add_argument("--prompt", type=free_text, default="", help="text fixed at the beginning")
    p.add_argument("--suffix", type=free_text, default="", help="text fixed at the end")
    p.add_argument("--template", help="fixed text with gaps to fill, e.g. 'To be, or ____ to be'")
    p.add_argument("--fill-char", default="_", help="the gap character of --template (default _)")
    p.add_argument("--stop", help="end the text at the first occurrence of this string (\\n for a newline)")
    p.add_argument("--show-steps", action="store_true", help="print the canvas after every model call")
    p.add_argument("--gif", metavar="FILE", type=gif_path, help="write an animated GIF of the denoising")
    p.add_argument("--force", action="store_true", help="--gif may replace a file that no command here made")
    return p


def gif_path(s):
    if not s.lower().endswith(".gif"):
        raise argparse.ArgumentTypeError(f"needs a file name ending in .gif, not {s}")
    return s


def check_canvas_args(a):
    """The flags that describe one canvas together: a template is the whole canvas (--len, --prompt and --suffix
    would be ignored); --stop ends a text. And --gif's file, before any work."""
    if a.template is not None and a.len is not None:
        raise UsageError("--template fixes the whole canvas, its length too: drop --len")
    if a.template is not None and (a.prompt or a.suffix):
        raise UsageError("--template fixes the whole canvas: drop --prompt/--suffix")
    if a.stop is not None and (a.suffix or a.template is not None):
        raise UsageError("--stop ends the text: drop --suffix and --template")
    check_gif(a)


def check_gif(a):
    """--gif's file, before any work (a folder that can be written, no file of the user's replaced
    unless --force); --force alone does nothing."""
    if a.gif:
        check_output(a.gif, ".gif", a.force, "--gif")
    elif a.force:
        raise UsageError("--force lets --gif replace a file: without --gif it does nothing")
