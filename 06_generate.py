"""Lesson 06: generate text with a trained masked diffusion LM: sampling, prompting, infilling.

    python 06_generate.py --steps 50 --topk 5
    python 06_generate.py --prompt "ROMEO:" --len 200 --show-steps
    python 06_generate.py --template "To be, or ____ to be: that is the ________."
    python 06_generate.py --gif denoise.gif

The canvas starts as [MASK] everywhere except the characters you fix (prompt, suffix, template); those are
never changed, and the model sees them on both sides of every gap: infilling comes for free. Each model call
commits the surest predictions (lesson 04's sampler). Lesson 10 decodes faster; lesson 11's block-diffusion
models write left to right, block by block.
"""
import argparse
import dataclasses
import sys
from importlib import import_module
from pathlib import Path

import torch

from support import checkpoints, hub, pretrained, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    encode_or_fail,
    non_negative_float,
    non_negative_int,
    parse_args_given,
    positive_int,
    probability,
    require,
    run_cli,
)
from support.gif import write_gif

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
ROOT = Path(__file__).resolve().parent
TOKENIZERS = {"char": diff.CharTokenizer}  # the tokenizers a checkpoint may name (09 adds Tamil's graphemes)
NOISE = 12.0  # the default Gumbel noise on the confidence, chosen by bench/first_command.py (RESULTS.md section 13)


# ---------------------------------------------------------------------------------------------------------
# The lesson: a canvas with [MASK] where the model writes, lesson 04's sampler, the text
# ---------------------------------------------------------------------------------------------------------
def build_canvas(tokenizer, mask_id, context, length=None, prompt="", suffix="", template=None, fill="_"):
    """(L,) token ids: [MASK] where the model writes, known ids where the user fixed text.

    prompt + [MASK] * n + suffix, or a template whose `fill` characters are the gaps: the sampler treats both
    alike, since it never changes a known token and sees every one of them from every gap."""
    if template is not None:
        if len(tokenizer.split(fill)) != 1:
            raise UsageError(f"--fill-char must be a single character, got {fill!r}")
        pieces = tokenizer.split(template)
        if fill not in pieces:
            raise UsageError(f"--template has no {fill!r} to fill")
        encode_or_fail(tokenizer, "".join(c for c in pieces if c != fill), "--template")
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


def canvases(model, tokenizer, args):
    """(N, L) the canvas the flags describe, once per sample, on the model's device: all samples in one batch."""
    c = model.config
    canvas = build_canvas(tokenizer, c.mask_id, c.block_size, args.len, args.prompt, args.suffix, args.template,
                          args.fill_char)
    return canvas.to(next(model.parameters()).device)[None].repeat(args.num_samples, 1)


def sampling_kw(model, args):
    """How each token is drawn and in which order positions are committed: the flags every sampler shares."""
    device = next(model.parameters()).device
    return dict(temperature=args.temp, top_k=args.topk, top_p=args.top_p, remasking=args.remasking, noise=args.noise,
                generator=torch.Generator(device).manual_seed(args.seed))  # on the model's device: no copies


def sample(model, tokenizer, args, callback=None):
    """Lesson 04's sampler on the canvas: `--steps` model calls, the surest predictions committed in each.
    Returns (x (N, L) token ids, model calls)."""
    x = canvases(model, tokenizer, args)
    return diff.generate(model, x, model.config.mask_id, steps=args.steps or 64, callback=callback,
                         **sampling_kw(model, args))


def find_stop(ids, stops, start=0):
    """The end of the first of the token sequences `stops` in the list `ids` (from `start`), or None."""
    for i in range(start, len(ids)):
        for s in stops:
            if ids[i : i + len(s)] == s:
                return i + len(s)
    return None


def stop_ids(tokenizer, stop):
    """--stop as token ids; '\\n' and '\\t' typed on a command line mean a newline and a tab."""
    if stop is None:
        return None
    return encode_or_fail(tokenizer, stop.replace("\\n", "\n").replace("\\t", "\t"), "--stop")


def to_texts(x, tokenizer, args):
    """(N, L) ids -> N strings, each ended after the first --stop string written after the prompt."""
    stop = stop_ids(tokenizer, args.stop)
    start = len(tokenizer.encode(args.prompt)) if args.template is None else 0
    rows = x.tolist()
    return [tokenizer.decode(row[: find_stop(row, [stop], start) if stop else None]) for row in rows]


def print_texts(texts):
    """Each sample on stdout, numbered when there are several (07's GPT prints the same way)."""
    for i, t in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(t)


# ---------------------------------------------------------------------------------------------------------
# Loading a model: the one function every script here uses (07, 09, 10, 11, 12 and bench/)
# ---------------------------------------------------------------------------------------------------------
def build_model(config, legacy=False):
    """Lesson 03's Transformer, untrained, from a checkpoint's config dict. legacy: the upstream tiny-dllm
    checkpoint (`--from-hub sutharsan311/tiny-dllm`) wires its blocks another way (support.hub.legacy_block)."""
    names = {f.name for f in dataclasses.fields(tfm.ModelConfig)}
    cfg = tfm.ModelConfig(**{k: v for k, v in config.items() if k in names})
    model = tfm.Transformer(cfg)
    if legacy:
        model.blocks = torch.nn.ModuleList(hub.legacy_block(tfm.Block)(cfg, i) for i in range(cfg.n_layer))
    return model


def load(kind, checkpoint=None, default_run=None, shipped=None, use_pretrained=False, device="auto", from_hub=None,
         filename=None, tokenizers=TOKENIZERS, log=lambda s: print(s, file=sys.stderr)):
    """(model, tokenizer, info) of kind 'dllm' or 'gpt': from the Hub (--from-hub), else --checkpoint (a .pt file, a
    run directory or a Hub export), else your own run in default_run, else the shipped model. Says which."""
    if from_hub:
        path = hub.from_hub(from_hub, filename)
    elif filename:
        raise UsageError("--filename names a file in a Hub repo: give --from-hub too")
    else:
        path = pretrained.choose(checkpoint, default_run, shipped, use_pretrained, log=log)
    return checkpoints.load_model(path, build_model, tokenizers, kind, device)


# ---------------------------------------------------------------------------------------------------------
# The command line (shared with 07, 09, 10 and 11)
# ---------------------------------------------------------------------------------------------------------
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


def add_generate_args(p, default_run, shipped="shakespeare-dllm"):
    """The flags of this lesson's sampler; 09, 10 and 11 take them too (with their own run and shipped model)."""
    p.set_defaults(default_run=str(default_run), shipped=shipped)
    p.add_argument("--checkpoint", help=f"a .pt file, a run directory or a Hub export (default: your run in "
                   f"checkpoints/{Path(default_run).name}/ if there is one, else the shipped model)")
    p.add_argument("--pretrained", action="store_true", help="use the model shipped in checkpoints/pretrained/"
                   f"{shipped} even if you have trained your own" if shipped else argparse.SUPPRESS)
    add_hub_args(p)
    p.add_argument("--steps", type=positive_int, help="model calls in all (default: 64; lesson 11: one per character)")
    p.add_argument("--len", type=positive_int, help="characters to generate (default: the model's context)")
    add_sampling_args(p)
    p.add_argument("--remasking", default="confidence", choices=diff.REMASKING,
                   help="which masked positions to commit each step")
    p.add_argument("--noise", type=non_negative_float, default=NOISE, help="Gumbel noise on the confidence (LLaDA): "
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


def generate_cli(args, sampler=sample, objective="dllm", font=None, tokenizers=TOKENIZERS):
    """Load the model, sample with `sampler`, print the texts (and the cost), write --gif. 09, 10 and 11 call it
    with their own parser's args; 10 and 11 with their own sampler; 11 for its block-diffusion models.
    Ctrl-C stops at once: the canvas so far is printed ([MASK] as _) and the exit status is 130."""
    check_generate_args(args)
    notes = []  # which model is used: said after the text, so that a bad input gets its error line alone
    model, tokenizer, info = load("dllm", args.checkpoint, args.default_run, args.shipped, args.pretrained,
                                  args.device, args.from_hub, args.filename, tokenizers, log=notes.append)
    if info["objective"] != objective:  # GPT vs dLLM: block diffusion writes left to right (lesson 11)
        use = {"block-diffusion": "11_block_diffusion.py --generate", "sudoku-dllm": "12_sudoku.py --solve"}
        raise UsageError(f"{info['path']} is a {info['objective']} model: generate with "
                         f"{use.get(info['objective'], '06_generate.py or 10_fast_decoding.py --generate')}")

    frames, last = [], {}  # the canvas after each call, kept only for --gif / --show-steps (no copies otherwise)

    def show(calls, x):
        last["x"] = x
        if args.gif or args.show_steps:
            frames.append(x[0].tolist())
        if args.show_steps:
            print(f"[{calls:3d}] {tokenizer.decode(frames[-1])!r}")

    device = next(model.parameters()).device.type
    so_far = lambda: print_texts(to_texts(last.get("x", canvases(model, tokenizer, args)), tokenizer, args))
    with runtime.stop_cleanly(so_far), runtime.autocast(device, runtime.resolve_dtype("auto", device)):
        x, calls = sampler(model, tokenizer, args, show)  # bf16/fp16 on GPUs, as training evaluates
    texts = to_texts(x, tokenizer, args)
    print_texts(texts)
    step = f", step {info['step']}" if info["step"] is not None else ""
    for note in notes:
        print(note, file=sys.stderr)
    print(f"({info['path']}{step}, {model.num_params():,} parameters: {calls} model calls)", file=sys.stderr)
    if args.gif:
        start = tokenizer.encode(args.prompt) if objective != "dllm" else canvases(model, tokenizer, args)[0].tolist()
        write_gif(args.gif, [tokenizer.decode(f) for f in [start] + frames], font=font)
        print(f"wrote {args.gif} ({len(frames) + 1} frames)", file=sys.stderr)
    return texts


def main(argv=None):
    p = add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "dllm")
    return generate_cli(parse_args_given(p, argv))


if __name__ == "__main__":
    run_cli(main)
