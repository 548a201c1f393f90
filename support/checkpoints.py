"""Checkpoints: one file holding weights, model config, tokenizer, optimizer/scheduler/scaler state, step, RNG
states, the run's arguments and its objective. Written atomically, loaded with weights_only=True: a checkpoint from
the internet never runs code. read_model reads what a file, a run directory or a Hub export holds; lesson 06 builds
the model from it (support imports no lesson)."""
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from support import hub, runtime
from support.cli import UsageError, unwritable
from support.files import atomic_write, make_dir


def save_checkpoint(path, state):
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, kind=None, objective=None):
    """A tiny-dllm checkpoint as a dict (from a .pt file, or a run directory's best.pt / latest.pt).
    kind 'dllm'/'gpt' insists on a model family; objective (an object with .name) on the objective it trained."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "latest.pt"
    if not path.exists():
        raise UsageError(f"no checkpoint at {path} (train one first, or point to one)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or containing code: all the same to the user
        raise UsageError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if hub.is_legacy(ckpt):
        ckpt = hub.convert_legacy(ckpt, path)
    if not isinstance(ckpt, dict) or not {"model", "config", "tokenizer", "kind"} <= set(ckpt):
        raise UsageError(f"{path} is not a tiny-dllm checkpoint (missing model/config/tokenizer/kind)")
    ckpt["path"] = str(path)
    ckpt.setdefault("objective", objective_of(ckpt["kind"], ckpt["config"], ckpt["tokenizer"]))
    if objective is not None and ckpt["objective"] != objective.name:
        made = f" ({ckpt['trainer']})" if ckpt.get("trainer") else ""  # the objective says which script trains it
        raise UsageError(f"{path} holds a {ckpt['objective']} run{made}; this trains {objective.name}: resume it "
                         "with its own trainer, or start a new run elsewhere")
    if objective is not None and ckpt.get("trainer", objective.trainer) != objective.trainer:
        # the same objective, another trainer: 05 would drop 14's annealing, 14 would restart 05's run
        raise UsageError(f"{path} was trained by {ckpt['trainer']}: resume it with that script, or start a new run "
                         "elsewhere")
    return check_kind(ckpt, kind)


def objective_of(kind, config, tokenizer):
    """The objective of a file that does not record it (older checkpoints, Hub exports), from what it holds."""
    if isinstance(tokenizer, dict) and tokenizer.get("tokens") == list("0123456789"):
        return f"sudoku-{kind}"
    if isinstance(tokenizer, dict) and tokenizer.get("tokens") == list(".*#SGURDL$"):  # lesson 16's
        return f"paths-{kind}"
    if config.get("block_len"):
        return "block-diffusion"
    if config.get("time_input"):
        return "uniform"
    return "fim-gpt" if config.get("sentinels") else kind


def check_kind(ckpt, kind):
    if kind is not None and ckpt["kind"] != kind:
        raise UsageError(f"{ckpt['path']} holds a {ckpt['kind']} model; this script needs a {kind} checkpoint")
    return ckpt


def read_model(path, kind=None):
    """What a model file holds, from a .pt checkpoint, a run directory or a Hub export (config.json +
    model.safetensors): (state_dict, config dict, tokenizer dict, info). info: kind ('dllm' or 'gpt', refused with
    one line if it is not `kind`), objective, path, step, legacy (the upstream tiny-dllm block wiring). Only
    tensors and plain data are read: nothing from a file is ever unpickled."""
    if hub.is_export(path):
        state, config, tok = hub.read_export(path)
        info = {"kind": "gpt" if config.get("causal") else "dllm", "path": str(path), "step": None, "legacy": False}
    else:
        ckpt = load_checkpoint(path)
        state, config, tok = ckpt["model"], dict(ckpt["config"]), ckpt["tokenizer"]
        legacy = config.pop("legacy_residual", False) or ckpt.get("legacy_residual", False)  # older files store it
        info = {"kind": ckpt["kind"], "path": ckpt["path"], "step": ckpt.get("step"), "legacy": legacy,
                "objective": ckpt["objective"]}
    info.setdefault("objective", objective_of(info["kind"], config, tok))
    if not isinstance(tok, dict) or "tokens" not in tok:
        raise UsageError(f"{info['path']} has no tokenizer a script here reads")
    return state, config, tok, check_kind(info, kind)


MAX_CONTEXT = 1 << 16  # a config's block_size past this is a corrupt file, not a model to build


def build_model(transformer, config, state, path, block=None):
    """Lesson 03's Transformer.from_state, with one clear line for a config.json of impossible values or weights
    that do not fit it."""
    try:
        with warnings.catch_warnings(), torch.device("meta"):  # first on no memory: sizes that cannot fit the
            warnings.simplefilter("ignore")  # weights are refused before a 10**12-row table is allocated
            transformer.from_state(config, state, block)
        if config.get("block_size", 0) > MAX_CONTEXT:  # RoPE has no weights to check it against
            raise ValueError(f"config block_size = {config['block_size']:,} is past {MAX_CONTEXT:,} positions")
        return transformer.from_state(config, state, block)
    except ValueError as e:
        raise UsageError(f"{path}: its config does not describe a model here ({e})") from None
    except RuntimeError as e:
        raise UsageError(f"{path}: weights do not fit its config ({' '.join(str(e).split())[:200]})") from None


def tokenizer_of(tok, tokenizers, path):
    """The tokenizer a file names, made from the classes the lesson passes ({kind: class}), or one clear line."""
    if tok.get("kind") not in tokenizers:
        raise UsageError(f"{path}: its tokenizer {tok.get('kind')!r} is not one this script reads"
                         + (" (a Tamil model: use 09_generate_tamil.py)" if tok.get("kind") == "grapheme" else ""))
    return tokenizers[tok["kind"]](tok["tokens"])


# What a weight means depends on these switches as well as on the shapes: a shifted model (lesson 14) predicts x[i]
# at position i-1, a causal one sees only the left, ... Weights loaded under other switches fit and mean nothing.
MEANING = ("causal", "shift", "mask_token", "rope", "block_len", "sentinels", "tie_weights", "time_input")


def init_weights(model, path, tokenizer):
    """--init-from: a new run starts from the weights of a run, a checkpoint or a Hub export (nanoGPT's init_from).
    Only the weights: a fresh optimizer and LR schedule. Refused unless shapes, vocabulary and meaning are the same
    (MEANING: the switches that change what a weight does, such as lesson 14's shift)."""
    path = Path(path)
    try:
        state, config, tok, _ = read_model(path)  # a run, a checkpoint or an export; tied weights restored
        if tok != tokenizer.to_dict():
            raise UsageError(f"--init-from {path}: its vocabulary differs from this corpus's")
        mine = asdict(model.config)
        differ = [f"{k} {config.get(k, mine[k])} (this run: {mine[k]})" for k in MEANING
                  if config.get(k, mine[k]) != mine[k]]
        if differ:
            raise UsageError(f"--init-from {path}: its weights mean something else here: {', '.join(differ)}"
                             + (" (a shifted model from lesson 14: continue it with 14_from_gpt.py train "
                                "--init-from)" if config.get("shift") else ""))
        model.load_state_dict(state)
    except UsageError:
        raise
    except Exception as e:  # shapes that differ, an unreadable file
        raise UsageError(f"--init-from {path}: its weights do not fit this model (same --preset and shape flags?): "
                         f"{type(e).__name__}: {' '.join(str(e).split())[:160]}") from None


# ---------------------------------------------------------------------------------------------------------
# Run directories: a trained model is never overwritten by accident
# ---------------------------------------------------------------------------------------------------------
RUN_FILES = ("latest.pt", "best.pt", "metrics.csv", "loss.png", "hf")


def check_run_dir(out, resume=False, force=False):
    """Refuse to start a run over another one unless told which: --resume continues it, --force replaces it.
    And refuse, before anything is written, an --out that cannot be a folder or holds other things."""
    out = Path(out)
    if why := unwritable(out):
        raise UsageError(f"--out {out}: {why}")
    if resume:
        if not (out / "latest.pt").is_file():
            raise UsageError(f"nothing to resume: no latest.pt in {out} (drop --resume to start a new run there, "
                             "or give --out the run's folder)")
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not force:
        raise UsageError(f"{out} already holds a run ({', '.join(found)}): continue it with --resume, "
                         "replace it with --force, or choose another --out")
    # a folder of other things (a shipped model's config.json, data/) is no place for a run, --force or not
    # (a bench's train.log, written as it starts the run, and a lock are a run's own)
    other = sorted(p.name for p in out.iterdir() if p.name not in (".lock", "train.log")) if out.is_dir() else []
    if other and not found:
        raise UsageError(f"--out {out} holds files that are not a run ({', '.join(other[:3])}"
                         f"{', ...' if len(other) > 3 else ''}): name a new or empty folder")


def lock_run(out, resume=False, force=False):
    """Hold <out>/.lock while this process trains there: a second trainer on the same --out is refused in one
    line instead of both reporting success and one run silently lost. The lock goes with the process (flock),
    even if it is killed. Once held, the folder is checked again: another run may have been written there since
    this one's arguments were checked. Returns the open lock file, to keep."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        return None
    out = Path(out)
    make_dir(out)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(out / ".lock").st_ino != os.fstat(f.fileno()).st_ino:  # unlinked by its holder meanwhile
            raise OSError
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise UsageError(f"{out} is being trained by another process (pid {holder}): wait for it, or choose another "
                         "--out") from None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    check_run_dir(out, resume, force)
    return f


def release(lock):
    """The run directory that lock_run locked is free again (the lock also goes when the process ends, however it
    ends). None (no lock on this system) is fine."""
    if lock is not None:
        Path(lock.name).unlink(missing_ok=True)  # still held: no other trainer is between these lines
        lock.close()


def unlock_run(run):
    """release() for a training loop's run (05's), which keeps its lock as run.lock."""
    if getattr(run, "lock", None) is not None:
        release(run.lock)
        run.lock = None


def clear_run_dir(out):
    """--force: the old run's files go together into one hidden folder, which is then deleted. They leave before
    the new run writes anything, so the folder never mixes two runs (an old best.pt beside a new latest.pt)."""
    out = Path(out)
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    if found:
        trash = Path(tempfile.mkdtemp(dir=out, prefix=".replaced.", suffix=".tmp"))
        for p in found:
            p.rename(trash / p.name)
        shutil.rmtree(trash)
        print(f"--force: removed the previous run in {out}")


# ---------------------------------------------------------------------------------------------------------
# Training state: everything --resume needs to continue exactly where a run stopped
# ---------------------------------------------------------------------------------------------------------
def training_state(objective, model, tokenizer, optimizer, scheduler, scaler, data_gen, step, elapsed, best, rows,
                   args, device):
    return {"kind": objective.kind, "objective": objective.name, "trainer": objective.trainer,
            "model": model.state_dict(), "config": asdict(model.config), "tokenizer": tokenizer.to_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
            "elapsed_s": elapsed, "best_val_bpc": best, "val_bpc": rows[-1]["val_bpc"] if rows else None,
            "rng": {"torch": torch.get_rng_state(), "data": data_gen.get_state(),
                    "cuda": torch.cuda.get_rng_state() if device == "cuda" else None},
            "args": {k: v for k, v in vars(args).items() if k != "given"}}


# --resume continues a run with its own arguments; these may differ in the continuation
RESUME_MAY_CHANGE = {"steps", "eval_every", "device", "dtype", "compile", "plot", "push_to_hub", "sample_len",
                     "out", "resume", "force"}


def resume_args(args, saved):
    """The resumed run's arguments from its checkpoint. A flag typed again must agree with them (else one clear
    line); --steps and --eval-every may change (e.g. to extend a run), as may the device and precision, when typed:
    a run resumed without --dtype keeps its own (an fp32 run does not turn bf16 on a CPU that has bf16)."""
    given = getattr(args, "given", set())
    for k, v in saved.items():
        if k in RESUME_MAY_CHANGE:
            if k in ("steps", "eval_every", "dtype") and k not in given:
                setattr(args, k, v)
            continue
        if k in given and getattr(args, k) != v and not (k == "data" and v and Path(args.data).resolve() == Path(v)):
            flag = "--" + k.replace("_", "-")
            raise UsageError(f"{flag} {getattr(args, k)} conflicts with the run being resumed ({flag} {v}): drop it, "
                             "or start a new run with another --out")
        setattr(args, k, v)
    return args


def rank_seed(seed, rank, step=0):
    """A seed of its own for each DDP rank (and, after a resume, for each starting step)."""
    return seed + 1_000_003 * rank + step


def restore_training_state(ckpt, model, optimizer, scheduler, scaler, data_gen, rank=0, seed=0, device="cpu"):
    """Load the state training_state() saved. -> (step, elapsed seconds, best validation bits/char)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    for group in optimizer.param_groups:  # the saved groups carry the old device's choice: fused AdamW on CUDA
        group["fused"] = device == "cuda"
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt["scaler"] or not scaler.is_enabled():  # a bf16/fp32 run saved an empty state: fp16 starts a fresh one
        scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    data_gen.set_state(ckpt["rng"]["data"])  # rank 0's streams; the other ranks start fresh ones
    if rank:
        data_gen.manual_seed(rank_seed(seed, rank, ckpt["step"]))
        torch.manual_seed(rank_seed(seed, rank, ckpt["step"]) + 1)
    if device == "cuda" and ckpt["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
    return ckpt["step"], ckpt["elapsed_s"], ckpt["best_val_bpc"]


def save_run(run, name):
    """<out>/<name>: everything of a training run (lesson 05's namespace) that --resume needs."""
    save_checkpoint(run.out / name, training_state(
        run.objective, run.model, run.data.tokenizer, run.optimizer, run.scheduler, run.scaler,
        run.data_gen, run.step, run.elapsed, run.best, run.rows, run.args, run.args.device))


def finish_run(run, stop, t0):
    """After lesson 05's loop: a stopped run saves latest.pt and exits 130 (continue with --resume);
    a finished one reports, pushes to the Hub if asked, and returns its metrics rows."""
    log = print if run.rank == 0 else (lambda *a, **k: None)
    if run.world > 1:
        del run.fwd  # the DDP wrapper must go before the process group: see runtime.finish_ddp
        runtime.finish_ddp(run.model, run.world, log)
    if stop.requested or (run.world > 1 and run.step < run.args.steps):
        if run.rank == 0:
            run.elapsed += time.perf_counter() - t0  # the steps since the last evaluation
            save_run(run, "latest.pt")
        log(f"\ninterrupted at step {run.step}: saved {run.out / 'latest.pt'}; continue with --resume",
            file=sys.stderr)
        unlock_run(run)
        runtime.leave_process(130, run.world)
    log(f"done: {run.step} steps in {run.elapsed:.0f} s of training; best val {run.best:.4f} {run.data.unit}"
        f"{' (upper bound)' if run.objective.kind == 'dllm' else ''}; checkpoints in {run.out}, Hub export in "
        f"{run.out / 'hf'}")
    unlock_run(run)
    if run.args.push_to_hub and run.rank == 0:
        hub.push_to_hub(run.out / "hf", run.args.push_to_hub)
    if run.world > 1:
        runtime.leave_process(0, run.world)
    return run.rows
