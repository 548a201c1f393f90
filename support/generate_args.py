"""The generation flags of 06 (and 07's sampling flags; 09, 10, 11 and 13 take 06's) and their checks. Plumbing:
what the flags choose among (lesson 04's unmasking orders, 06's default noise) the lesson passes in."""
import argparse
from pathlib import Path

from support.cli import non_negative_float, non_negative_int, positive_int, probability, require


def add_sampling_args(p):
    """How each token is drawn: shared by every sampler here, the GPT's in 07 included."""
    p.add_argument("--temp", type=non_negative_float, default=1.0, help="sampling temperature; 0 = greedy (argmax)")
    p.add_argument("--topk", type=non_negative_int, default=0, help="sample among the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=probability, default=1.0, help="nucleus sampling: smallest set with this mass")
    p.add_argument("--num-samples", type=positive_int, default=1, help="samples, generated together as one batch")
    return p


def check_sampling_args(a):
    require([
        (a.temp >= 0, f"--temp must be >= 0, got {a.temp}"),
        (a.topk >= 0, f"--topk must be >= 0, got {a.topk}"),
        (0 < a.top_p <= 1, f"--top-p must be in (0, 1], got {a.top_p}"),
        (a.num_samples >= 1, f"--num-samples must be >= 1, got {a.num_samples}"),
    ])


def add_generate_args(p, default_run, shipped="shakespeare-dllm", orders=(), noise=0.0):
    """The flags of 06's sampler; 09, 10, 11 and 13 take them too (with their own run and shipped model).
    orders: the unmasking orders of lesson 04 (--remasking); noise: 06's default Gumbel noise."""
    p.set_defaults(default_run=str(default_run), shipped=shipped)
    p.add_argument("--checkpoint", help=f"a .pt file, a run directory or a Hub export (default: your run in "
                   f"checkpoints/{Path(default_run).name}/ if there is one, else the shipped model)")
    p.add_argument("--pretrained", action="store_true", help="use the model shipped in checkpoints/pretrained/"
                   f"{shipped} even if you have trained your own" if shipped else argparse.SUPPRESS)
    add_hub_args(p)
    p.add_argument("--steps", type=positive_int, help="model calls in all (default: 64; lesson 11: one per character)")
    p.add_argument("--len", type=positive_int, help="characters to generate (default: the model's context)")
    add_sampling_args(p)
    p.add_argument("--remasking", default="confidence", choices=orders,
                   help="which masked positions to commit each step")
    p.add_argument("--noise", type=non_negative_float, default=noise, help="Gumbel noise on the confidence (LLaDA): "
                   "0 commits strictly the surest first, which loops ('I am a do do'); 12 is a random order nudged "
                   "toward the sure positions, the most plausible varied text at 50 calls (bench/first_command.py)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--prompt", default="", help="text fixed at the beginning")
    p.add_argument("--suffix", default="", help="text fixed at the end")
    p.add_argument("--template", help="fixed text with gaps to fill, e.g. 'To be, or ____ to be'")
    p.add_argument("--fill-char", default="_", help="the gap character of --template (default _)")
    p.add_argument("--stop", help="end the text at the first occurrence of this string (\\n for a newline)")
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


def check_generate_args(a):
    check_sampling_args(a)
    require([
        (a.steps is None or a.steps >= 1, f"--steps must be >= 1, got {a.steps}"),
        (a.len is None or a.len >= 1, f"--len must be >= 1, got {a.len}"),
        (a.stop is None or (a.stop and not a.suffix and a.template is None),
         "--stop ends the text: give a non-empty string, without --suffix or --template"),
        (a.template is None or not (a.prompt or a.suffix), "--template fixes the whole canvas: drop --prompt/--suffix"),
        (a.gif is None or a.gif.lower().endswith(".gif"), f"--gif needs a file name ending in .gif, not {a.gif}"),
        ("noise" not in getattr(a, "given", ()) or a.remasking in ("confidence", "margin", "entropy"),
         "--noise perturbs an order by confidence: --remasking random has none to perturb"),
    ])
