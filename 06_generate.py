"""Lesson 06: generate text with a trained masked diffusion LM: sampling, prompting, infilling.

    python 06_generate.py --steps 50 --topk 5
    python 06_generate.py --prompt "ROMEO:" --len 200 --show-steps
    python 06_generate.py --template "To be, or ____ to be: that is the ________."
    python 06_generate.py --gif denoise.gif

The canvas starts as [MASK] everywhere except the characters you fix (prompt, suffix, template);
those are never changed, and the model sees them on both sides of every gap: infilling comes for
free. Each model call predicts every masked position and commits some of them, in random order by
default (lesson 04's sampler; --order confidence commits the surest first). The model is yours once
you have trained one (05), else the shipped 10.7M dLLM. Lesson 10 decodes faster; lesson 11's
block-diffusion models write left to right, block by block.
"""
import sys
from functools import partial
from importlib import import_module
from pathlib import Path

import torch

from support import checkpoints, generate_args, hub, pretrained, runtime
from support.cli import ArgumentParser, UsageError, encode_or_fail, parse_args_given, run_cli
from support.gif import write_gif

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
ROOT = Path(__file__).resolve().parent
# the tokenizers a checkpoint may name (09 adds Tamil's graphemes)
TOKENIZERS = {"char": diff.CharTokenizer}
# lesson 04's default order, random: the rule of RESULTS.md 9.3 chose it (bench/default_order.py)
ORDER = diff.DEFAULT.order
NOISE = 12.0  # Gumbel noise on a confidence order when one is asked for (--order confidence)


# ----------------------------------------------------------------------------------------------
# Loading a model: lesson 03's Transformer with a file's weights (every script loads this way)
# ----------------------------------------------------------------------------------------------
def load(path, kind=None, device="auto", tokenizers=TOKENIZERS):
    """(model in eval mode, tokenizer, info) from a run directory, a .pt checkpoint or a Hub
    export. kind 'dllm' or 'gpt' refuses the other family with one clear line; tokenizers None:
    no tokenizer (None)."""
    # tensors and JSON only, nothing unpickled
    state, config, tok, info = checkpoints.read_model(path, kind)
    # the upstream tiny-dllm checkpoint (--from-hub sutharsan311/tiny-dllm) wires its blocks
    # another way: y = x + MLP(LN2(x + Attn(LN1(x))))
    block = hub.legacy_block(tfm.Block) if info["legacy"] else None
    model = checkpoints.build_model(tfm.Transformer, config, state, info["path"], block)
    tokenizer = checkpoints.tokenizer_of(tok, tokenizers, info["path"]) if tokenizers else None
    return model.to(runtime.resolve_device(device)).eval(), tokenizer, info


# ----------------------------------------------------------------------------------------------
# The lesson: a canvas with [MASK] where the model writes, lesson 04's sampler, the text
# ----------------------------------------------------------------------------------------------
def build_canvas(tokenizer, mask_id, context, args):
    """(L,) token ids: [MASK] where the model writes, known ids where the flags fix text.

    --prompt + [MASK] * n + --suffix, or a --template whose --fill-char characters are the gaps:
    the sampler treats both alike, since it never changes a known token and sees every one of them
    from every gap."""
    if args.template is not None:
        fill = args.fill_char
        if len(tokenizer.split(fill)) != 1:
            raise UsageError(f"--fill-char must be a single character, got {fill!r}")
        pieces = tokenizer.split(args.template)
        if fill not in pieces:
            raise UsageError(f"--template has no {fill!r} to fill")
        encode_or_fail(tokenizer, "".join(c for c in pieces if c != fill), "--template")
        ids = [mask_id if c == fill else tokenizer.stoi[c] for c in pieces]
    else:
        length = args.len or context
        pre = encode_or_fail(tokenizer, args.prompt, "--prompt")
        suf = encode_or_fail(tokenizer, args.suffix, "--suffix")
        if len(pre) + len(suf) >= length:
            raise UsageError(f"--prompt and --suffix fill {len(pre) + len(suf)} of {length} "
                             "positions: nothing left to generate")
        ids = pre + [mask_id] * (length - len(pre) - len(suf)) + suf
    if len(ids) > context:
        raise UsageError(f"the canvas has {len(ids)} positions; this model's context is {context}")
    return torch.tensor(ids)


def hole_id(config):
    """The id a canvas holds where the sampler writes: [MASK]; for a model without one (lesson
    15's uniform noise), V, one past the vocabulary, marks the positions its sampler fills."""
    return config.mask_id if config.mask_token else config.vocab_size


def canvases(model, tokenizer, args):
    """(N, L) the canvas the flags describe, once per sample, on the model's device: all samples
    in one batch."""
    canvas = build_canvas(tokenizer, hole_id(model.config), model.config.block_size, args)
    return canvas.to(next(model.parameters()).device)[None].repeat(args.num_samples, 1)


def sampling(model, args):
    """Lesson 04's Sampling from the flags: how each token is drawn and in which order
    positions are committed."""
    # on the model's device: no copies
    g = torch.Generator(next(model.parameters()).device).manual_seed(args.seed)
    return diff.Sampling(args.temp, args.topk, args.top_p, args.order, args.noise, g)


def sample(model, tokenizer, args, callback=None):
    """Lesson 04's sampler on the canvas: `--steps` model calls, the first in --order committed in
    each. Returns (x (N, L) token ids, model calls)."""
    x = canvases(model, tokenizer, args)
    return diff.generate(model, x, args.steps or 64, sampling(model, args), callback=callback)


def find_stop(ids, stops, start=0):
    """The end of the first of the token sequences `stops` in the list `ids` (from
    `start`), or None."""
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
    """(N, L) ids -> N strings, each cut after the first --stop string written after the prompt."""
    stop = stop_ids(tokenizer, args.stop)
    start = len(tokenizer.encode(args.prompt)) if args.template is None else 0
    rows = x.tolist()
    return [tokenizer.decode(row[: find_stop(row, [stop], start) if stop else None]) for row
            in rows]


def print_texts(texts):
    """Each sample on stdout, numbered when there are several (07's GPT prints the same way)."""
    for i, t in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(t)


# ----------------------------------------------------------------------------------------------
# The command line (shared with 09, 10, 11 and 13): the flags live in support/generate_args.py
# ----------------------------------------------------------------------------------------------
add_generate_args = partial(generate_args.add_generate_args, orders=diff.ORDERS, order=ORDER,
                            noise=NOISE)
add_model_args = generate_args.add_model_args


def check_objective(info, objective="dllm"):
    """One line if a loaded model was trained for another canvas than this sampler's (10 and 13
    demo text models too): a Sudoku or path model writes no text."""
    # GPT vs dLLM: block diffusion writes left to right (lesson 11)
    if info["objective"] != objective:
        use = {"block-diffusion": "11_block_diffusion.py generate",
               "sudoku-dllm": "12_sudoku.py solve", "uniform": "15_uniform_noise.py generate",
               "paths-dllm": "16_robot_paths.py solve or plan"}
        other = use.get(info["objective"], "06_generate.py or 10_fast_decoding.py generate")
        raise UsageError(f"{info['path']} is a {info['objective']} model: generate with {other}")


def generate_cli(args, sampler=sample, objective="dllm", font=None, tokenizers=TOKENIZERS):
    """Load the model, sample with `sampler`, print the texts (and the cost), write --gif. 09, 10
    and 11 call it with their own parser's args; 10 and 11 with their own sampler; 11 for its
    block-diffusion models. Ctrl-C stops at once: the canvas so far is printed ([MASK] as _) and the
    exit status is 130."""
    generate_args.check_canvas_args(args)
    if "noise" in getattr(args, "given", ()) and args.order == "random":
        raise UsageError("--noise perturbs an order by confidence: --order random (the default) "
                         "has no confidence to perturb; add --order confidence")
    # which model is used: said after the text, so that a bad input gets its error line alone
    notes = []
    model, tokenizer, info = load(pretrained.from_flags(args, notes.append), "dllm", args.device,
                                  tokenizers)
    check_objective(info, objective)

    # the canvas after each call, kept only for --gif / --show-steps (no copies otherwise)
    frames, last = [], {}
    # a bar only if sampling runs past 2 s (lesson 15's --steps 5000, --num-samples 1024 on a CPU)
    bar = runtime.SamplingBar(args.steps, "call")

    def show(calls, x):
        bar.update(calls - bar.n)
        last["x"] = x
        if args.gif or args.show_steps:
            frames.append(x[0].tolist())
        if args.show_steps:
            print(f"[{calls:3d}] {tokenizer.decode(frames[-1])!r}")

    device = next(model.parameters()).device.type
    start = lambda: canvases(model, tokenizer, args)  # built only if no call has run yet
    so_far = lambda: print_texts(to_texts(last["x"] if "x" in last else start(), tokenizer, args))
    # bf16/fp16 on GPUs, as training evaluates; fp32 on a CPU: the same text on every CPU
    dtype = runtime.sampling_dtype(device)
    with runtime.stop_cleanly(so_far), runtime.autocast(device, dtype), bar:
        x, calls = sampler(model, tokenizer, args, show)
    texts = to_texts(x, tokenizer, args)
    print_texts(texts)
    step = f", step {info['step']}" if info["step"] is not None else ""
    for note in notes:
        print(note, file=sys.stderr)
    print(f"({info['path']}{step}, {model.num_params():,} parameters: {calls} model calls)",
          file=sys.stderr)
    if args.gif:
        start = tokenizer.encode(args.prompt) if objective != "dllm" else canvases(model, tokenizer,
                                                                                   args)[0].tolist()
        write_gif(args.gif, [tokenizer.decode(f) for f in [start] + frames], font=font)
        print(f"wrote {args.gif} ({len(frames) + 1} frames)", file=sys.stderr)
    return texts


def main(argv=None):
    p = add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "dllm")
    return generate_cli(parse_args_given(p, argv))


if __name__ == "__main__":
    run_cli(main)
