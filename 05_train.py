"""Lesson 05: train the masked diffusion LM on TinyShakespeare.

    python 05_train.py                       # downloads the corpus, picks the gpu/cpu preset, trains
    python 05_train.py --preset tiny         # a few seconds, to see everything work
    python 05_train.py --data my.txt         # any UTF-8 text (also: the way to train offline)
    python 05_train.py --resume              # continue checkpoints/dllm/latest.pt

This file also holds the machinery every later script shares: the training loop (07 and 08 call it with
their own objective), data download, checkpoints (one file: weights, config, tokenizer, optimizer, RNG,
step, arguments; written atomically) and the command-line error handling.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")

ROOT = Path(__file__).resolve().parent
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
METRICS = ["step", "train_loss", "val_bpc", "lr", "tokens_per_s", "elapsed_s"]

# Training hyperparameters per preset; the model shapes are 03's PRESETS of the same name.
TRAIN_PRESETS = {
    "tiny": dict(steps=40, batch_size=8, lr=3e-3, warmup=5, eval_every=20, eval_windows=8, eval_k=4),
    "cpu": dict(steps=2000, batch_size=16, lr=2e-3, warmup=100, eval_every=200, eval_windows=64, eval_k=32),
    "gpu": dict(steps=10000, batch_size=64, lr=1e-3, warmup=500, eval_every=500, eval_windows=128, eval_k=32),
}


# ---------------------------------------------------------------------------------------------------------
# Command-line plumbing: bad input -> one line on stderr, exit status 2, never a traceback
# ---------------------------------------------------------------------------------------------------------
class UsageError(Exception):
    """Something the user can fix (a flag, a file, the network). Printed as one line; exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_cli(main, argv=None):
    """Run main(argv); a UsageError becomes one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UsageError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)


def atomic_write(path, write):
    """write(tmp_path) then rename: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")  # keep the
    # extension: writers such as Pillow pick the format from it
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(url, dest, sha256=None, timeout=30):
    """Download url to dest with a progress bar, check sha256, write atomically. Errors -> UsageError."""
    from tqdm import tqdm

    dest = Path(dest)
    print(f"downloading {url} -> {dest}")

    def fetch(tmp):
        h = hashlib.sha256()
        req = urllib.request.Request(url, headers={"User-Agent": "tiny-dllm (educational)"})
        with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as f:
            size = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        if sha256 and h.hexdigest() != sha256:
            raise UsageError(f"checksum mismatch for {url}: got sha256 {h.hexdigest()}, expected {sha256}")

    try:
        atomic_write(dest, fetch)
    except urllib.error.HTTPError as e:
        raise UsageError(f"cannot download {url} (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UsageError(f"cannot download {url} ({reason})") from None
    return dest


def read_text(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if not text:
        raise UsageError(f"{path} is empty")
    return text


def shakespeare(data_dir=ROOT / "data"):
    """The TinyShakespeare text: the cached copy, else a download from the canonical URL."""
    path = Path(data_dir) / "tinyshakespeare.txt"
    if not path.exists():
        try:
            download(SHAKESPEARE_URL, path, SHAKESPEARE_SHA256)
        except UsageError as e:
            raise UsageError(f"{e}; offline? pass --data FILE with any UTF-8 text") from None
    return read_text(path)


# ---------------------------------------------------------------------------------------------------------
# Checkpoints: one file, loadable with weights_only=True (a checkpoint from the internet never runs code)
# ---------------------------------------------------------------------------------------------------------
def save_checkpoint(path, state):
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, kind=None):
    """Load a tiny-dllm checkpoint (a .pt file or a run directory). kind: 'dllm'/'gpt' to insist on one."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "latest.pt"
    if not path.exists():
        raise UsageError(f"no checkpoint at {path} (train one first, or pass --checkpoint)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or containing code: all the same to the user
        raise UsageError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if isinstance(ckpt, dict) and LEGACY_KEYS <= set(ckpt) and "config" not in ckpt:
        ckpt = convert_legacy(ckpt, path)
    if not isinstance(ckpt, dict) or not {"model", "config", "tokenizer", "kind"} <= set(ckpt):
        raise UsageError(f"{path} is not a tiny-dllm checkpoint (missing model/config/tokenizer/kind)")
    ckpt["path"] = str(path)
    return check_kind(ckpt, kind)


def check_kind(ckpt, kind):
    if kind is not None and ckpt["kind"] != kind:
        raise UsageError(f"{ckpt['path']} holds a {ckpt['kind']} model; this script needs a {kind} checkpoint")
    return ckpt


def tokenizer_from_dict(d):
    cls = diff.TOKENIZERS.get(d.get("kind"))
    if cls is None:
        hint = " (a Tamil model: use 09_generate_tamil.py)" if d.get("kind") == "grapheme" else ""
        raise UsageError(f"unknown tokenizer kind {d.get('kind')!r}{hint}")
    return cls(d["tokens"])


def model_from_checkpoint(ckpt, device="cpu"):
    """(model in eval mode, tokenizer) from a loaded checkpoint."""
    model = tfm.Transformer(tfm.ModelConfig(**ckpt["config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"{ckpt.get('path', 'checkpoint')}: weights do not fit its config ({e})") from None
    return model.to(device).eval(), tokenizer_from_dict(ckpt["tokenizer"])


# ---------------------------------------------------------------------------------------------------------
# Hugging Face Hub: config.json + model.safetensors + README.md (model card), the Hub's conventions
# ---------------------------------------------------------------------------------------------------------
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # sorted set of the corpus
LEGACY_KEYS = {"step", "model", "vocab_size", "hidden", "n_layers", "n_heads", "seq_len"}
LEGACY_NAMES = [("token_emb.", "tok_emb."), ("pos_emb.", "pos_emb."), (".norm1.", ".ln1."), (".norm2.", ".ln2."),
                (".attn.out.", ".attn.proj."), (".ff.net.0.", ".mlp.fc."), (".ff.net.2.", ".mlp.proj."),
                ("norm.", "ln_f."), ("head.", "lm_head.")]


def export_hf(out_dir, model, tokenizer, kind, metrics=None, sample=None):
    """Write <out_dir>/config.json, model.safetensors (tied weights stored once) and a model card."""
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    config = {"model_type": "tiny-dllm", "kind": kind, **asdict(model.config), "tokenizer": tokenizer.to_dict()}
    atomic_write(out_dir / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(config, ensure_ascii=False, indent=1)))
    atomic_write(out_dir / "model.safetensors", lambda tmp: save_model(model, tmp))
    lines = [f"---\nlibrary_name: pytorch\ntags: [tiny-dllm, {'diffusion' if kind == 'dllm' else 'gpt'}, character-level]\n---",
             f"# tiny-dllm {kind}", "",
             f"A {model.num_params():,}-parameter {'masked diffusion LM' if kind == 'dllm' else 'GPT'} trained with "
             "[tiny-dllm](https://github.com/) (`05_train.py` / `07_train_gpt.py`).", "",
             "| metric | value |", "|---|---|"]
    for k, v in (metrics or {}).items():
        lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    if sample:
        lines += ["", "Sample:", "", "```", sample, "```"]
    lines += ["", "Load: `python 06_generate.py --from-hub REPO_ID` (dLLM) or "
              "`python 07_train_gpt.py --generate --from-hub REPO_ID` (GPT)."]
    atomic_write(out_dir / "README.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def load_hf(path):
    """A checkpoint-like dict from a directory holding config.json + model.safetensors."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
        state = load_file(path / "model.safetensors")
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} is not a tiny-dllm export (config.json + model.safetensors): {e}") from None
    kind, tokenizer = config.pop("kind", None), config.pop("tokenizer", None)
    config.pop("model_type", None)
    if config.get("tie_weights", True):  # safetensors stores a tied tensor once, under either name
        tied = state.get("tok_emb.weight", state.get("lm_head.weight"))
        state["tok_emb.weight"] = state["lm_head.weight"] = tied
    return {"kind": kind, "model": state, "config": config, "tokenizer": tokenizer, "step": None, "path": str(path)}


def convert_legacy(ckpt, path="checkpoint"):
    """The upstream tiny-dllm .pt layout (see LEGACY_KEYS) -> our checkpoint dict.

    Its block is y = x + FF(LN2(x + Attn(LN1(x)))): converted with legacy_residual=True, which reproduces it,
    plus learned positions (rope=False) and an untied 65-row head."""
    C, V = ckpt["hidden"], ckpt["vocab_size"]
    if V != len(SHAKESPEARE_CHARS):
        raise UsageError(f"{path}: legacy checkpoint with vocab_size {V}; only the 65-character TinyShakespeare one is known")
    config = tfm.ModelConfig(vocab_size=V, n_layer=ckpt["n_layers"], n_head=ckpt["n_heads"], n_embd=C,
                             block_size=ckpt["seq_len"], rope=False, tie_weights=False, legacy_residual=True)
    state = {}
    for k, v in ckpt["model"].items():
        for old, new in LEGACY_NAMES:
            if k.startswith(old) or (old.startswith(".") and old in k):
                k = k.replace(old, new, 1)
                break
        state[k] = v
    print(f"converted an upstream tiny-dllm checkpoint (step {ckpt['step']}): its block y = x + FF(LN2(x + Attn(LN1(x)))) "
          "is reproduced with legacy_residual=True", file=sys.stderr)
    return {"kind": "dllm", "model": state, "config": asdict(config), "step": ckpt["step"], "path": str(path),
            "tokenizer": diff.CharTokenizer(SHAKESPEARE_CHARS).to_dict()}


def from_hub(repo_id, filename=None, kind=None):
    """Download (or take from the Hub cache; HF_HUB_OFFLINE=1 works) and load a checkpoint from the Hub."""
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if filename:
            return load_checkpoint(hf_hub_download(repo_id, filename), kind)
        return check_kind(load_hf(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md"])), kind)
    except UsageError:
        raise
    except Exception as e:  # no network, missing repo or file, offline and not cached: one line for the user
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UsageError(f"cannot load {repo_id}{'/' + filename if filename else ''} from the Hub "
                         f"({type(e).__name__}{': ' + msg[:160] if msg else ''})") from None


def push_to_hub(hf_dir, repo_id):
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(hf_dir), commit_message="tiny-dllm export")
    except Exception as e:
        raise UsageError(f"cannot push to {repo_id} ({type(e).__name__}: {str(e).strip().splitlines()[0][:160]})") from None
    print(f"pushed {hf_dir} to https://huggingface.co/{repo_id}")


# ---------------------------------------------------------------------------------------------------------
# Devices and precision
# ---------------------------------------------------------------------------------------------------------
def resolve_device(name):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: Apple MPS is not available")
    return name


def cpu_has_fast_bf16():
    """bf16 matmuls pay on CPUs with AVX512-BF16 or AMX (measured 1.4-1.9x here); elsewhere fp32 is faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name, device):
    if name != "auto":
        return name
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def autocast(device, dtype):
    """Mixed precision: matmuls in bf16/fp16, reductions (softmax, norms, losses) stay fp32."""
    if dtype == "fp32":
        return torch.autocast(device_type=device, enabled=False)
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


# ---------------------------------------------------------------------------------------------------------
# The objective: the one thing the dLLM and the GPT trainers do differently
# ---------------------------------------------------------------------------------------------------------
class DiffusionObjective:
    """Masked diffusion (04): NELBO loss, NELBO bits for validation, the iterative-unmasking sampler."""

    kind = "dllm"
    model_overrides = dict(causal=False, mask_token=True)  # GPT vs dLLM: bidirectional, has [MASK]

    def loss(self, model, x, config):  # x: (B, L+1); the dLLM uses the first L tokens
        # GPT vs dLLM: the objective is the NELBO of lesson 04 (mask a fraction t, predict the masks, weight 1/t)
        return diff.diffusion_loss(model, x[:, :-1], config.mask_id)

    def val_bits(self, model, windows, K, config):  # windows: (N, L+1); upper bound on bits per token
        return diff.nelbo_bits(model, windows[:, :-1], config.mask_id, K=K)

    def sample(self, model, tokenizer, n, generator):
        canvas = torch.full((1, n), model.config.mask_id, device=next(model.parameters()).device)
        # GPT vs dLLM: the sampler fills a canvas of [MASK]s in parallel, two characters per model call here
        x, _ = diff.generate(model, canvas, model.config.mask_id, steps=n // 2, generator=generator)
        return tokenizer.decode(x[0].tolist())


# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------
def positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def positive_float(s):
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v


def add_train_args(p, default_out):
    p.add_argument("--data", help="UTF-8 text file to train on (default: download TinyShakespeare)")
    p.add_argument("--preset", choices=list(TRAIN_PRESETS), help="model + schedule size (default: gpu on CUDA, else cpu)")
    p.add_argument("--out", default=str(default_out), help=f"run directory (default {default_out})")
    p.add_argument("--resume", action="store_true", help="continue from <out>/latest.pt")
    p.add_argument("--steps", type=positive_int, help="optimizer steps (preset default)")
    p.add_argument("--batch-size", type=positive_int, help="sequences per step (preset default)")
    p.add_argument("--seq-len", type=positive_int, help="context length in tokens (preset default)")
    p.add_argument("--n-layer", type=positive_int, help="transformer blocks (preset default)")
    p.add_argument("--n-head", type=positive_int, help="attention heads (preset default)")
    p.add_argument("--n-embd", type=positive_int, help="model width (preset default)")
    p.add_argument("--dropout", type=float, help="dropout probability (preset default)")
    p.add_argument("--rope", action=argparse.BooleanOptionalAction, default=None,
                   help="rotary positions (default) or, with --no-rope, a learned position table as in GPT-2")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (preset default)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final LR as a fraction of --lr (cosine)")
    p.add_argument("--warmup", type=int, help="linear warmup steps (preset default)")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay on matrices")
    p.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2 (nanoGPT's char recipe uses 0.99)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
    p.add_argument("--eval-every", type=positive_int, help="steps between evaluations/checkpoints")
    p.add_argument("--eval-windows", type=positive_int, help="fixed validation windows per evaluation")
    p.add_argument("--eval-k", type=positive_int, help="dLLM: stratified noise levels per window")
    p.add_argument("--sample-len", type=int, default=128, help="characters of the sample printed at each evaluation")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to train")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="mixed precision (auto: bf16 on CUDA if supported else fp16; bf16 on CPUs with AVX512-BF16/AMX)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps)")
    p.add_argument("--seed", type=int, default=1337, help="random seed")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="draw <out>/loss.png")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="upload <out>/hf to this Hugging Face Hub repo at the end")
    return p


def resolve_args(args):
    """Fill preset defaults into unset flags and check what argparse cannot."""
    device = resolve_device(args.device)
    if args.preset is None:
        args.preset = "gpu" if device == "cuda" else "cpu"
        print(f"no --preset given: using {args.preset!r} on {device}")
    for k, v in TRAIN_PRESETS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 <= args.min_lr_ratio <= 1:
        raise UsageError(f"--min-lr-ratio must be in [0, 1], got {args.min_lr_ratio}")
    if not 0 <= args.beta2 < 1:
        raise UsageError(f"--beta2 must be in [0, 1), got {args.beta2}")
    if args.warmup < 0 or args.grad_clip < 0 or args.weight_decay < 0 or args.sample_len < 0:
        raise UsageError("--warmup, --grad-clip, --weight-decay and --sample-len must be >= 0")
    args.device, args.dtype = device, resolve_dtype(args.dtype, device)
    if args.dtype in ("bf16", "fp16") and device == "mps":
        raise UsageError(f"--dtype {args.dtype} is not supported on mps here; use fp32")
    return args


# ---------------------------------------------------------------------------------------------------------
# Metrics and plots
# ---------------------------------------------------------------------------------------------------------
def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.csv"
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        raise UsageError(f"no metrics.csv in {run_dir}") from None
    except (ValueError, TypeError, csv.Error) as e:
        raise UsageError(f"{path} is malformed ({e})") from None


def write_csv(path, rows, fieldnames):
    """rows (dicts) -> a CSV file with a header, written atomically."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fieldnames)
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def write_metrics(run_dir, rows):
    write_csv(Path(run_dir) / "metrics.csv", rows, METRICS)


def plot_metrics(run_dir, title=None):
    """<run_dir>/loss.png from metrics.csv: train loss and validation bits/char against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(steps, [r["train_loss"] / math.log(2) for r in rows], label="train loss (bits/token)")
    ax.plot(steps, [r["val_bpc"] for r in rows], marker="o", label="validation bits/char")
    ax.set_xlabel("step")
    ax.set_ylabel("bits")
    ax.set_title(title or str(run_dir))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(Path(run_dir) / "loss.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# The training loop, shared by 05 (dLLM), 07 (GPT) and 08 (Tamil)
# ---------------------------------------------------------------------------------------------------------
def lr_lambda(args):
    """Linear warmup, then cosine decay to min_lr_ratio * lr (as in nanoGPT)."""

    def f(step):
        if step < args.warmup:
            return (step + 1) / (args.warmup + 1)
        progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def split_corpus(text, tokenizer):
    """Token ids of the first 90% (train) and the last 10% (validation), and characters per token of the
    validation text (1.0 for characters; > 1 for Tamil graphemes), to report bits per character."""
    try:
        data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    except KeyError as e:
        raise UsageError(f"the corpus has characters the model's tokenizer lacks: {e.args[0]}") from None
    n_train = int(0.9 * len(data))
    train_data, val_data = data[:n_train], data[n_train:]
    return train_data, val_data, len(text[int(0.9 * len(text)) :]) / max(1, len(val_data))


def get_batch(data, batch_size, length, generator, device):
    """(B, length) random windows of the token stream."""
    ix = torch.randint(len(data) - length, (batch_size,), generator=generator)
    return data[ix[:, None] + torch.arange(length)].to(device, non_blocking=True)


def eval_windows(val, n, length):
    """n fixed, evenly spaced, non-overlapping windows of the validation stream: the same every run."""
    n = max(1, min(n, len(val) // length))
    stride = len(val) // n
    return torch.stack([val[i * stride : i * stride + length] for i in range(n)])


def ddp_setup(device):
    """Under torchrun (WORLD_SIZE > 1) join the process group: NCCL on CUDA, gloo on CPU. -> (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" now means this process's GPU
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world


def weights_checksum(model):
    return sum(p.detach().double().sum().item() * (i + 1) for i, p in enumerate(model.parameters()))


def finish_ddp(model, world, print_):
    """Check every rank ended with the same weights (DDP keeps them in sync), then leave the group.

    The caller must have dropped its DistributedDataParallel wrapper first: it holds the process group, and a
    group still alive when the interpreter shuts down tears down Gloo's threads too late ("terminate called
    without an active exception", SIGABRT). See leave_process for the rest of that story."""
    import gc

    import torch.distributed as dist

    gc.collect()  # the DDP wrapper and its gradient reducer, if a reference cycle still holds them
    sums = [None] * world
    dist.all_gather_object(sums, weights_checksum(model))
    if len(set(sums)) != 1:
        raise RuntimeError(f"ranks out of sync: weight checksums {sums}")
    print_(f"all {world} ranks hold identical weights (checksum {sums[0]:.6f})")
    dist.destroy_process_group()


def leave_process(code, world):
    """End a run that cannot simply return: sys.exit alone; a torchrun worker skips interpreter finalization.

    With PyTorch 2.13's Gloo backend a worker can abort *after* all its work, while the interpreter tears
    down Gloo's threads ("terminate called without an active exception", SIGABRT, no Python frame; measured
    with 2 CPU processes: 3 of 40 launches; still 1 of 100 once finish_ddp dropped the DDP wrapper first).
    Everything is saved by then (checkpoints are written atomically and fsynced), so once the output is flushed
    os._exit loses nothing and never reaches that teardown."""
    if world == 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def train(args, objective, load_corpus=None, make_tokenizer=None):
    """Train `objective` on the corpus; writes <out>/latest.pt, best.pt, metrics.csv, loss.png.

    load_corpus() -> text and make_tokenizer(text) -> tokenizer let 08 swap in the Tamil corpus/tokenizer.
    """
    from tqdm import tqdm

    args = resolve_args(args)
    out = Path(args.out)
    device, dtype = args.device, args.dtype
    rank, world = ddp_setup(device)
    main_rank = rank == 0  # rank 0 alone logs, evaluates and writes; every rank trains on its own batches
    torch.manual_seed(args.seed)

    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(out / "latest.pt", kind=objective.kind)
        print(f"resuming {ckpt['path']} at step {ckpt['step']}")
    text = read_text(args.data) if args.data else (load_corpus or shakespeare)()
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"]) if ckpt else (make_tokenizer or diff.CharTokenizer.from_text)(text)
    train_data, val_data, chars_per_token = split_corpus(text, tokenizer)
    n_tokens = len(train_data) + len(val_data)

    if ckpt:
        config = tfm.ModelConfig(**ckpt["config"])
    else:
        config = tfm.build_config(args.preset, vocab_size=tokenizer.vocab_size, block_size=args.seq_len,
                                  n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                                  dropout=args.dropout, rope=args.rope, **objective.model_overrides)
    L = config.block_size
    if config.n_embd % config.n_head:
        raise UsageError(f"--n-embd {config.n_embd} is not divisible by --n-head {config.n_head}")
    if len(val_data) < L + 1 or len(train_data) < L + 2:
        raise UsageError(f"corpus too short: {n_tokens} tokens for context {L} (need > {10 * (L + 2)})")
    print_ = print if main_rank else (lambda *a, **k: None)
    print_(f"corpus: {len(text):,} characters, {n_tokens:,} tokens, vocabulary {tokenizer.vocab_size}; "
          f"train {len(train_data):,} / val {len(val_data):,}")

    model = tfm.Transformer(config).to(device)
    print_(f"model: {objective.kind}, {model.num_params():,} parameters, {config.n_layer} layers, "
          f"{config.n_head} heads, width {config.n_embd}, context {L}; device {device}, {dtype}"
          f"{', compiled' if args.compile else ''}{f', {world} processes (DDP)' if world > 1 else ''}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, args.beta2), fused=(device == "cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args))
    scaler = torch.amp.GradScaler(device, enabled=(dtype == "fp16"))
    data_gen = torch.Generator().manual_seed(args.seed + rank)
    step, elapsed, best, rows = 0, 0.0, float("inf"), []
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        data_gen.set_state(ckpt["rng"]["data"])  # rank 0's stream; the others start fresh ones below
        if rank:
            data_gen.manual_seed(args.seed + 1_000_003 * rank + ckpt["step"])
        if device == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
        step, elapsed, best = ckpt["step"], ckpt["elapsed_s"], ckpt["best_val_bpc"]
        if (out / "metrics.csv").exists():
            rows = [r for r in read_metrics(out) if r["step"] <= step]
    eval_fwd = fwd = torch.compile(model) if args.compile else model
    if world > 1:  # gradients are averaged across ranks inside backward()
        fwd = torch.nn.parallel.DistributedDataParallel(fwd)
    windows = eval_windows(val_data, args.eval_windows, L + 1).to(device)

    def state():
        return {"kind": objective.kind, "model": model.state_dict(), "config": asdict(config),
                "tokenizer": tokenizer.to_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
                "elapsed_s": elapsed, "best_val_bpc": best,
                "val_bpc": rows[-1]["val_bpc"] if rows else None,
                "rng": {"torch": torch.get_rng_state(), "data": data_gen.get_state(),
                        "cuda": torch.cuda.get_rng_state() if device == "cuda" else None},
                "args": {k: v for k, v in vars(args).items()}}

    def evaluate(train_loss, tokens_per_s):
        nonlocal best
        model.eval()
        with autocast(device, dtype):
            val = objective.val_bits(eval_fwd, windows, args.eval_k, config) / chars_per_token
            sample = None
            if args.sample_len:  # its own generator: sampling never moves the training RNG
                sample = objective.sample(model, tokenizer, min(args.sample_len, L), torch.Generator().manual_seed(0))
                tqdm.write(f"--- sample at step {step} ---\n{sample}\n---")
        rows.append({"step": step, "train_loss": train_loss, "val_bpc": val, "lr": scheduler.get_last_lr()[0],
                     "tokens_per_s": tokens_per_s, "elapsed_s": elapsed})
        write_metrics(out, rows)
        save_checkpoint(out / "latest.pt", state())
        if val < best:
            best = val
            save_checkpoint(out / "best.pt", state())
            export_hf(out / "hf", model, tokenizer, objective.kind, sample=sample,
                      metrics={"step": step, "validation bits/char" + (" (NELBO, upper bound)" if objective.kind == "dllm"
                                                                        else " (exact NLL)"): val,
                               "preset": args.preset, "train seconds": round(elapsed)})
        if args.plot:
            plot_metrics(out, f"{objective.kind} {args.preset}: {out}")
        model.train()
        return val

    # Ctrl-C / SIGTERM: finish the current step, save latest.pt, exit. The state saved is then always a step
    # boundary (never half an optimizer update), so --resume continues exactly. A second Ctrl-C stops at once.
    stop = []

    def request_stop(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
        tqdm.write("stopping after this step (Ctrl-C again to stop at once)")

    def stop_everywhere():  # every rank must leave the loop at the same step, or the others hang
        if world == 1:
            return bool(stop)
        import torch.distributed as dist

        flag = torch.tensor([float(bool(stop))], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0

    handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[sig] = signal.signal(sig, request_stop)
        except ValueError:  # not the main thread: leave signals alone
            pass
    out.mkdir(parents=True, exist_ok=True)
    print_(f"training {args.steps - step} steps (batch {args.batch_size} x {L}) -> {out}")
    bar = tqdm(total=args.steps, initial=step, desc=objective.kind, dynamic_ncols=True, disable=not main_rank)
    model.train()
    loss_sum, loss_n, tokens, t_interval = 0.0, 0, 0, 0.0
    try:
        if step == 0 and not rows and main_rank:
            evaluate(float("nan"), float("nan"))
        while step < args.steps and not stop_everywhere():
            t0 = time.perf_counter()
            x = get_batch(train_data, args.batch_size, L + 1, data_gen, device)
            with autocast(device, dtype):
                loss = objective.loss(fwd, x, config)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if args.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss_sum += loss.item()  # .item() syncs; once per step is cheap next to the step itself
            loss_n += 1
            tokens += x.numel() * world
            dt = time.perf_counter() - t0
            t_interval += dt
            elapsed += dt
            bar.update(1)
            if (step % args.eval_every == 0 or step == args.steps) and main_rank:
                val = evaluate(loss_sum / loss_n, tokens / t_interval)
                bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", val_bpc=f"{val:.3f}", tok_s=f"{tokens / t_interval:.0f}")
                loss_sum, loss_n, tokens, t_interval = 0.0, 0, 0, 0.0
    except KeyboardInterrupt:  # the second Ctrl-C: latest.pt from the last evaluation or stop stays as it was
        bar.close()
        print(f"\nstopped at once during step {step + 1}; {out / 'latest.pt'} holds the last saved state", file=sys.stderr)
        sys.exit(130)
    finally:
        bar.close()
        for sig, h in handlers.items():
            signal.signal(sig, h)
    if world > 1:
        del fwd  # the DDP wrapper: see finish_ddp
        finish_ddp(model, world, print_)
    if stop or (world > 1 and step < args.steps):
        if main_rank:
            save_checkpoint(out / "latest.pt", state())
        print_(f"\ninterrupted at step {step}: saved {out / 'latest.pt'}; continue with --resume", file=sys.stderr)
        leave_process(130, world)
    if main_rank:
        print(f"done: {step} steps in {elapsed:.0f} s of training; best val {best:.4f} bits/char"
              f"{' (upper bound)' if objective.kind == 'dllm' else ''}; checkpoints in {out}, Hub export in {out / 'hf'}")
        if args.push_to_hub:
            push_to_hub(out / "hf", args.push_to_hub)
    if world > 1:
        leave_process(0, world)
    return rows


def main(argv=None, objective=None, default_out=ROOT / "checkpoints" / "dllm", description=None, **hooks):
    p = ArgumentParser(description=description or __doc__.splitlines()[0])
    args = add_train_args(p, default_out).parse_args(argv)
    return train(args, objective or DiffusionObjective(), **hooks)


if __name__ == "__main__":
    run_cli(main)
