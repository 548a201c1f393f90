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
import dataclasses
import sys
from functools import partial
from importlib import import_module
from pathlib import Path

import torch

from support import checkpoints, generate_args, hub, pretrained, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    encode_or_fail,
    parse_args_given,
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
# The command line (shared with 07, 09, 10, 11 and 13): the flags live in support/generate_args.py
# ---------------------------------------------------------------------------------------------------------
add_generate_args = partial(generate_args.add_generate_args, orders=diff.REMASKING, noise=NOISE)
check_generate_args = generate_args.check_generate_args


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
