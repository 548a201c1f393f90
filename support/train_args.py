"""The training flags of 05, 07, 08 and 11: every hyperparameter has a flag, and unset ones come from the preset.
Plumbing: the presets themselves are in the lessons (03's model shapes, 05's TRAIN_PRESETS)."""
import argparse
from importlib import import_module
from pathlib import Path

from support import runtime
from support.cli import UsageError, positive_float, positive_int


def presets():
    """name -> every value of the preset: 03's model shape and 05's training hyperparameters."""
    tfm, train = import_module("03_transformer"), import_module("05_train")
    return {name: {"dropout": 0.0, **tfm.PRESETS[name], **train.TRAIN_PRESETS[name]} for name in train.TRAIN_PRESETS}


def preset_values(key):
    """'preset: tiny 40, cpu 2000, gpu 10000': a flag's value in each preset, for --help."""
    key = {"seq_len": "block_size"}.get(key, key)
    return "preset: " + ", ".join(f"{name} {v[key]}" for name, v in presets().items())


def add_train_args(p, default_out):
    g = p.add_argument_group("training (defaults marked 'preset' come from --preset)")
    g.add_argument("--data", help="UTF-8 text file to train on (default: TinyShakespeare, shipped in data/)")
    g.add_argument("--tokenizer", choices=["char", "grapheme"], help="tokens: Unicode code points, or grapheme "
                   "clusters (a Tamil letter such as கி is one token); default: char, grapheme in 08")
    g.add_argument("--split", default="tail", choices=["tail", "interleaved"],
                   help="validation text: the last 10%%, or every 9th of each 10 blank-line-separated paragraphs "
                   "(couplets, speeches; every 10th is held out as test)")
    g.add_argument("--preset", choices=list(presets()),
                   help="model + schedule size (default: gpu on CUDA, else cpu)")
    g.add_argument("--out", default=str(default_out), help="run directory")
    g.add_argument("--resume", action="store_true",
                   help="continue <out>/latest.pt with the run's own settings (only --steps, --eval-every and "
                   "where/how it runs may change)")
    g.add_argument("--force", action="store_true", help="replace the run already in <out> (default: refuse)")
    for flag, typ, what in [("steps", positive_int, "optimizer steps"),
                            ("batch-size", positive_int, "sequences per forward pass (a step is --grad-accum of them)"),
                            ("seq-len", positive_int, "context length in tokens"),
                            ("n-layer", positive_int, "transformer blocks"),
                            ("n-head", positive_int, "attention heads"), ("n-embd", positive_int, "model width"),
                            ("dropout", float, "dropout probability"), ("lr", positive_float, "peak learning rate"),
                            ("warmup", int, "linear warmup steps"),
                            ("eval-every", positive_int, "steps between evaluations/checkpoints"),
                            ("eval-windows", positive_int, "fixed validation windows per evaluation"),
                            ("eval-k", positive_int, "dLLM: stratified noise levels per window")]:
        g.add_argument(f"--{flag}", type=typ, help=f"{what} ({preset_values(flag.replace('-', '_'))})")
    g.add_argument("--rope", action=argparse.BooleanOptionalAction, default=None,
                   help="rotary positions (default) or, with --no-rope, a learned position table as in GPT-2")
    g.add_argument("--min-lr-ratio", type=float, default=0.1, help="final LR as a fraction of --lr (cosine)")
    g.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay on matrices")
    g.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2 (nanoGPT's char recipe uses 0.99)")
    g.add_argument("--grad-accum", type=positive_int, default=1, help="forward/backward passes per optimizer step, "
                   "gradients summed: --batch-size 8 --grad-accum 2 is the update of batch 16 in half the memory")
    g.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
    g.add_argument("--sample-len", type=int, default=128, help="characters of the sample printed at each evaluation")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to train")
    g.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="mixed precision "
                   "(auto: bf16 on CUDA if supported, else fp16; bf16 on CPUs with AVX512-BF16/AMX)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps)")
    g.add_argument("--seed", type=int, default=1337, help="random seed")
    g.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="draw <out>/loss.png")
    g.add_argument("--push-to-hub", metavar="REPO_ID", help="upload <out>/hf to this Hugging Face Hub repo at the end")
    return p


def resolve_args(args, log=print):
    """Fill preset defaults into unset flags and check what argparse cannot."""
    device = runtime.resolve_device(args.device)
    if args.preset is None:
        args.preset = "gpu" if device == "cuda" else "cpu"
        log(f"no --preset given: using {args.preset!r} on {device}")
    for k, v in import_module("05_train").TRAIN_PRESETS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.data:
        args.data = str(Path(args.data).resolve())  # saved in the checkpoint: --resume works from any folder
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 <= args.min_lr_ratio <= 1:
        raise UsageError(f"--min-lr-ratio must be in [0, 1], got {args.min_lr_ratio}")
    if not 0 <= args.beta2 < 1:
        raise UsageError(f"--beta2 must be in [0, 1), got {args.beta2}")
    if args.warmup < 0 or args.grad_clip < 0 or args.weight_decay < 0 or args.sample_len < 0:
        raise UsageError("--warmup, --grad-clip, --weight-decay and --sample-len must be >= 0")
    args.device, args.dtype = device, runtime.resolve_dtype(args.dtype, device)
    if args.dtype in ("bf16", "fp16") and device == "mps":
        raise UsageError(f"--dtype {args.dtype} is not supported on mps here; use fp32")
    return args
