"""The trained models shipped in checkpoints/pretrained/ (the Hub layout: config.json, model.safetensors in fp16,
tokenizer.json, a card README.md), which model a command uses when none is named, and how a run becomes one."""
import json
import shutil
import tempfile
from pathlib import Path

from support import hub
from support.cli import UsageError
from support.files import make_dir

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "checkpoints" / "pretrained"
# The text dLLM a generator falls back on: the best shipped ~10M one (RESULTS 4.1), what a newcomer sees first.
# The 0.8M model trained on 2 cores stays one flag away: --pretrained shakespeare-dllm.
TEXT_DLLM = "shakespeare-dllm-from-gpt-10m"
TEXT_GPT = "shakespeare-gpt-10m"  # the GPT of the same size, beside it in the playground and the benchmarks
UNIFORM = "shakespeare-uniform-10m"  # lesson 15's uniform-noise dLLM, the same size (RESULTS 3.4)


def has_run(path):
    """A run directory with a checkpoint in it (what a trainer writes)."""
    path = Path(path)
    return path.is_dir() and any((path / n).is_file() for n in ("best.pt", "latest.pt"))


def choose(checkpoint, default_run, shipped, pretrained=False, log=print):
    """The checkpoint a generator loads: --checkpoint if given; with --pretrained the shipped model (a name: that
    shipped model); else the user's own run in default_run when there is one, otherwise the shipped model. Says
    which in one line."""
    if checkpoint is not None and pretrained:
        raise UsageError("--checkpoint and --pretrained each name the model: give one")
    if checkpoint is not None:
        return checkpoint
    if isinstance(pretrained, str):  # --pretrained NAME: another shipped model
        shipped = ship_dir(PRETRAINED, pretrained, force=True).name  # a plain folder name
    if not pretrained and has_run(default_run):
        log(f"using your run {default_run} (--pretrained: the shipped model instead)")
        return str(default_run)
    if shipped is None:  # nothing of this kind is shipped
        raise UsageError((f"--pretrained: no model of this kind is shipped; train one into {default_run}"
                          if pretrained else f"no run in {default_run}: train one first") + ", or pass --checkpoint")
    shipped_dir = PRETRAINED / shipped
    if not hub.is_export(shipped_dir):
        raise UsageError(f"no shipped model at {shipped_dir} (config.json + model.safetensors); "
                         f"train your own run into {default_run}, or pass --checkpoint")
    shown = shipped_dir.relative_to(ROOT) if shipped_dir.is_relative_to(ROOT) else shipped_dir
    log(f"using the shipped model {shown}" + ("" if pretrained else
        f" (no run in {Path(default_run).name}/ yet: train your own, then it is used)"))
    return str(shipped_dir)


def from_flags(args, log=print):
    """The model path the flags of a generator name: --from-hub (with --filename), --checkpoint, --pretrained, or
    (none of them) the user's own run in args.default_run, else the shipped model args.shipped."""
    if args.from_hub:
        if args.checkpoint is not None or args.pretrained:
            raise UsageError("--from-hub, --checkpoint and --pretrained each name the model: give one")
        return hub.from_hub(args.from_hub, args.filename)
    if args.filename:
        raise UsageError("--filename names a file in a Hub repo: give --from-hub too")
    return choose(args.checkpoint, args.default_run, args.shipped, args.pretrained, log)


def ship_dir(root, name, force=False):
    """Where a shipped model named `name` goes: root/name. A plain folder name only (not '', '.', '..' or a path),
    so a name can never point at root itself or outside it; an existing model is replaced only with force."""
    if not name or name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name:
        raise UsageError(f"a shipped model's name is a plain folder name such as shakespeare-dllm, got {name!r}")
    out = Path(root) / name
    if out.exists() and not force:
        raise UsageError(f"{out} already holds a shipped model: --force replaces it, or choose another --name")
    return out


def ship(model, tokenizer, out_dir, card):
    """Write a shipped model: the weights in fp16 (half the size; bench/ship_model.py measures what the rounding
    costs in bits/char and writes it in the card), config.json, tokenizer.json and `card` as README.md; into a
    temporary folder first, then renamed into place. Transformer.from_pretrained loads it back in fp32."""
    out_dir = Path(out_dir)
    make_dir(out_dir.parent)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        half = type(model)(model.config)
        half.load_state_dict(model.state_dict())
        half.half().save_pretrained(tmp)  # config.json + model.safetensors (fp16)
        if (tmp / "model.safetensors").stat().st_size > hub.SHARD_BYTES:
            hub.save_weights(half, tmp, hub.SHARD_BYTES)  # over 16 MB: shards + index, the Hub way
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False, indent=1))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes 0700: give the folder and its files the usual permissions
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = out_dir.with_name(f".{out_dir.name}.old")
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def weights_dtype(path):
    """The dtype of every tensor in a shipped model's safetensors files (read from their headers, no unpickling)."""
    from safetensors import safe_open

    dtypes = set()
    for name in hub.weight_files(path):
        with safe_open(name, framework="pt") as f:
            dtypes |= {f.get_tensor(k).dtype for k in f.keys()}
    return dtypes
