"""The training flags of 05, 07, 08, 11 and 12 and their checks: every hyperparameter has a flag, and the ones not
given come from the preset. Plumbing: the presets themselves are the lessons' (05's TRAIN_PRESETS, 12's), passed in."""
import argparse
from pathlib import Path

from support import checkpoints, hub, runtime
from support.cli import (
    ArgumentParser,
    UsageError,
    below_one,
    finite_float,
    fraction,
    non_negative_float,
    non_negative_int,
    parse_args_given,
    positive_float,
    positive_int,
    random_seed,
)


class MaskRate(argparse.Action):
    """--mask-rate LO HI, checked as it is parsed: 0 < LO < HI <= 1."""

    def __call__(self, parser, namespace, values, option_string=None):
        lo, hi = values
        if not 0 < lo < hi <= 1:
            parser.error(f"--mask-rate needs 0 < LO < HI <= 1, got {lo:g} {hi:g}")
        setattr(namespace, self.dest, [lo, hi])


def add_mask_rate_arg(p, eps, default=None):
    """--mask-rate, the flag of every dLLM trainer (05, 08, 11, 14); eps: lesson 04's smallest t; default: the
    lesson's [LO, HI], or None for the whole [eps, 1]."""
    p.add_argument("--mask-rate", type=finite_float, nargs=2, metavar=("LO", "HI"), action=MaskRate,
                   default=default, help="draw the training mask rate t in [LO, HI] only (BD3-LM's clipped "
                   "schedule: less noisy gradients, no longer the NELBO; validation always uses the full bound); "
                   f"{eps} 1 is the whole NELBO" + ("" if default else f" (default: [{eps}, 1])"))
    return p


def training_parser(description, default_out, presets, parser=None, folder=None, samples=True):
    """The training flags of every trainer (05, 07, 08, 11, 12, 14, 16); presets: {name: {flag dest: value}} from
    the lesson, whose values --help shows. parser: add them to this one (a `train` subcommand's) instead of a new one.
    folder: (flag, default) of a task read from a folder's train.txt and val.txt (12's --puzzles, 16's --maps): it
    takes the place of the text flags --data and --split, and the preset gives weight decay and sample length.
    samples=False: no --sample-len (a model that writes no free text: 16's planners)."""
    p = parser or ArgumentParser(description=description)
    g = p.add_argument_group("training (defaults marked 'preset' come from --preset)")
    if folder:
        g.add_argument(folder[0], default=str(folder[1]), help="folder with train.txt and val.txt")
        p.set_defaults(data=None, split="tail", sample_len=None)  # not flags here (sample_len: the preset's)
    else:
        g.add_argument("--data", help="UTF-8 text file to train on (default: TinyShakespeare, shipped in data/)")
        g.add_argument("--split", default="tail", choices=["tail", "interleaved"],
                       help="validation text: the last 10%%, or every 9th of each 10 blank-line-separated "
                       "paragraphs (couplets, speeches; every 10th is held out as test)")
    g.add_argument("--preset", choices=list(presets), help="model + schedule size (default: "
                   + ("gpu on CUDA, else cpu)" if "gpu" in presets else f"{next(iter(presets))})"))
    g.add_argument("--out", default=str(default_out), help="run directory")
    g.add_argument("--resume", action="store_true", help="continue <out>/latest.pt with the run's own settings "
                   "(only --steps, --eval-every and where/how it runs may change)")
    g.add_argument("--force", action="store_true", help="replace the run already in <out> (default: refuse)")
    g.add_argument("--init-from", metavar="PATH", help="start from the weights of a run, checkpoint or Hub export of "
                   "the same shape (a fresh optimizer and schedule; default: random weights)")
    in_preset = lambda k: "preset: " + ", ".join(f"{name} {v[k]}" for name, v in presets.items())
    for flag, typ, what in [("steps", positive_int, "optimizer steps"),
                            ("batch-size", positive_int, "sequences per forward pass (a step is --grad-accum of them)"),
                            ("seq-len", positive_int, "context length in tokens"),
                            ("n-layer", positive_int, "transformer blocks"),
                            ("n-head", positive_int, "attention heads"), ("n-embd", positive_int, "model width"),
                            ("dropout", below_one, "dropout probability"),
                            ("lr", positive_float, "peak learning rate"),
                            ("warmup", non_negative_int, "linear warmup steps"),
                            ("eval-every", positive_int, "steps between evaluations/checkpoints"),
                            ("eval-windows", positive_int, "fixed validation windows per evaluation"),
                            ("eval-k", positive_int, "dLLM: stratified noise levels per window")]:
        g.add_argument(f"--{flag}", type=typ, help=f"{what} ({in_preset(flag.replace('-', '_'))})")
    g.add_argument("--rope", action=argparse.BooleanOptionalAction, default=None,
                   help="rotary positions or, with --no-rope, a learned position table as in GPT-2 (preset: rope)")
    g.add_argument("--min-lr-ratio", type=fraction, default=0.1, help="final LR as a fraction of --lr (cosine)")
    g.add_argument("--weight-decay", type=non_negative_float, default=None if folder else 0.1,
                   help="AdamW weight decay on matrices" + (f" ({in_preset('weight_decay')})" if folder else ""))
    g.add_argument("--beta2", type=below_one, default=0.95, help="AdamW beta2 (nanoGPT's char recipe uses 0.99)")
    g.add_argument("--grad-accum", type=positive_int, default=1, help="forward/backward passes per optimizer step, "
                   "gradients summed: --batch-size 8 --grad-accum 2 is the update of batch 16 in half the memory")
    g.add_argument("--grad-clip", type=non_negative_float, default=1.0, help="clip the gradient norm (0 = off)")
    if samples:
        g.add_argument("--sample-len", type=non_negative_int, default=None if folder else 128,
                       help="characters of the sample printed at each evaluation"
                       + (f" ({in_preset('sample_len')})" if folder else ""))
    g.add_argument("--device", default="auto", choices=runtime.DEVICES, help="where to train")
    g.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="mixed precision "
                   "(auto: bf16 on CUDA if supported, else fp16; bf16 on CPUs with AVX512-BF16/AMX)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps)")
    g.add_argument("--seed", type=random_seed, default=1337, help="random seed")
    g.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="draw <out>/loss.png")
    g.add_argument("--push-to-hub", metavar="REPO_ID", help="upload <out>/hf to this Hugging Face Hub repo at the end "
                   "(USER/NAME, checked before training)")
    return p


def parse_args(p, argv, presets, default_out=None, default_data=None):
    """Flags -> args: every value checked first, then <out> (never train over a run by accident), then a resumed
    run's own settings, then the preset's values for the flags not given. default_out(args): where a run goes when
    --out is not given, if that depends on another flag (08's --model, 11's block size, 12's model)."""
    return resolve(parse_args_given(p, argv), presets, default_out, default_data)


def resolve(args, presets, default_out=None, default_data=None):
    """parse_args after the parsing: what a `train` subcommand's args go through once the mode is known."""
    if default_data and args.data and Path(args.data).resolve() == Path(default_data).resolve():
        args.data = None  # --data naming the lesson's own corpus is the same as no --data (also for --resume)
        args.given.discard("data")
    if default_out is not None and "out" not in args.given:
        args.out = str(default_out(args))
    if args.push_to_hub is not None and not hub.valid_repo_id(args.push_to_hub):
        raise UsageError(f"--push-to-hub needs a repo id USER/NAME, got {args.push_to_hub!r}")
    checkpoints.check_run_dir(args.out, args.resume, args.force)
    if args.resume:
        args = checkpoints.resume_args(args, checkpoints.load_checkpoint(Path(args.out) / "latest.pt")["args"])
    device = runtime.resolve_device(args.device)
    rank, _ = runtime.ddp_setup(device)  # under torchrun each rank takes its own GPU before the dtype asks CUDA
    if args.preset is None:
        args.preset = "gpu" if device == "cuda" and "gpu" in presets else "cpu" if "cpu" in presets else next(
            iter(presets))
        if rank == 0:
            print(f"no --preset given: using {args.preset!r} on {device}")
    for k, v in presets.get(args.preset, {}).items():  # (a resumed run of another preset table has them all)
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.init_from:
        args.init_from = str(Path(args.init_from).resolve())
    if args.data:
        args.data = str(Path(args.data).resolve())  # saved in the checkpoint: --resume works from any folder
    args.device, args.dtype = device, runtime.resolve_dtype(args.dtype, device)
    if args.dtype in ("bf16", "fp16") and device == "mps":
        raise UsageError(f"--dtype {args.dtype} is not supported on mps here; use fp32")
    return args
