"""Turn a finished (or interim) training run into a shipped model: checkpoints/pretrained/<name>/, the Hub layout
(config.json, model.safetensors in fp16, tokenizer.json) with a card (README.md) that says how it was made.

    python bench/ship_model.py --run checkpoints/long/shakespeare-dllm --name shakespeare-dllm --command \\
        "python 05_train.py --preset cpu --steps 24000 --eval-every 500 --out checkpoints/long/shakespeare-dllm"

The run's best checkpoint (by validation) is scored here again on the run's own validation windows, in fp32 and
after rounding to fp16, so the card's figure is the shipped weights' own, and the cost of fp16 is measured.
Training reads only the training split (the first 90% of TinyShakespeare; the Thirukkural's interleaved training
couplets), so the validation figure stays a held-out one.
"""
import contextlib
import io
import re
import shlex
from importlib import import_module
from pathlib import Path

import torch

import common  # first: the repository on the import path

# isort: split
from support import checkpoints, pretrained
from support.cli import ArgumentParser, UsageError, parse_args_given, refuse_unused, run_cli
from support.files import read_text, write_text
from support.metrics import read_metrics
from support.runtime import machine_name

ROOT = Path(__file__).resolve().parent.parent
train = import_module("05_train")


def val_bits(model, tokenizer, ckpt, objective):
    """Validation bits/char of `model` on the run's own evaluation windows (as its log line computed them)."""
    a = ckpt["args"]
    tamil = ckpt["tokenizer"]["kind"] == "grapheme"
    text = read_text(a["data"]) if a.get("data") else tamil_corpus() if tamil else train.shakespeare()
    _, val, chars_per_token = train.split_corpus(text, tokenizer, a.get("split", "tail"))
    windows = train.eval_windows(val, a["eval_windows"], model.config.block_size + 1)
    windows = windows.to(next(model.parameters()).device)
    with torch.no_grad():
        return objective.val_bits(model, windows, a["eval_k"], model.config) / chars_per_token


def tamil_corpus():
    return import_module("tamil_dataset").load_corpus()


# what --pretrained alone loads (in 06, 07, 09 and 15)
DEFAULTS = {pretrained.TEXT_DLLM, "shakespeare-gpt", "thirukkural-dllm", pretrained.UNIFORM}
NAMED = {"shakespeare-dllm"}  # shipped models a generator reaches with --pretrained NAME


def sample_command(kind, tokenizer, name, objective="dllm"):
    """The command whose output the card shows: 06's quick start (15's for a uniform-noise model), or 07's with
    a prompt the vocabulary has; --pretrained (NAME) for the models that flag loads, else --checkpoint with the
    shipped folder."""
    model = ("--pretrained" if name in DEFAULTS else f"--pretrained {name}" if name in NAMED
             else f"--checkpoint checkpoints/pretrained/{name}")
    if objective == "uniform":
        return f"python 15_uniform_noise.py generate {model} --steps 50 --topk 5"
    if kind == "dllm":
        lesson = "09_generate_tamil" if tokenizer.kind == "grapheme" else "06_generate"
        return f"python {lesson}.py {model} --steps 50 --topk 5"
    prompt = '--prompt "ROMEO:" ' if not tokenizer.unknown("ROMEO:") else ""  # else 07's default, a newline
    return f"python 07_train_gpt.py generate {model} {prompt}--tokens 200"


SAMPLE = re.compile(r"Sample, as `(?P<cmd>[^`]+)` prints it[^\n]*:\n\n```\n.*?\n```", re.S)


def command_output(command, model_dir):
    """What `command` (a lesson's, with --pretrained) prints on this machine when its model is `model_dir`: the lesson
    itself, run in-process, its stdout kept (so the sampler, flags, seed and precision are the command's own)."""
    script, *argv = shlex.split(command)[1:]
    if "--checkpoint" in argv:  # the shipped folder's name in the card, this folder here
        i = argv.index("--checkpoint")
        del argv[i : i + 2]
    if "--pretrained" in argv:  # --pretrained, or --pretrained NAME
        i = argv.index("--pretrained")
        del argv[i : i + (2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1)]
    argv += ["--checkpoint", str(model_dir)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        import_module(Path(script).stem).main(argv)
    return out.getvalue().rstrip("\n")


def resample(model_dir):
    """Write into a shipped model's card the sample its command prints now, and where (a lesson's defaults can
    change: 06's sampler did). -> the sample."""
    path = Path(model_dir) / "README.md"
    text = read_text(path)
    m = SAMPLE.search(text)
    if m is None:
        raise UsageError(f"{path} shows no sample to refresh")
    sample = command_output(m["cmd"], model_dir)
    block = (f"Sample, as `{m['cmd']}` prints it ({machine_name('cpu')}; a CPU samples in fp32: the same text "
             f"with or without bf16 units):\n\n```\n{sample}\n```")
    write_text(path, text[: m.start()] + block + text[m.end() :])
    return sample


def card(name, ckpt, rows, bits32, bits16, model, command, machine, tokenizer):
    a, kind = ckpt["args"], ckpt["kind"]
    best = min(rows, key=lambda r: r["val_bpc"])
    L = model.config.block_size
    tokens = best["step"] * a["batch_size"] * L
    unit = "NELBO, an upper bound on the NLL" if kind == "dllm" else "exact NLL"
    uniform = ckpt["objective"] == "uniform"
    final = "" if rows[-1]["step"] >= a["steps"] else (
        f"\n**Interim**: the run was at step {rows[-1]['step']:,} of its {a['steps']:,}-step schedule when this was "
        "shipped; training goes on.\n")
    tamil = tokenizer.kind == "grapheme"
    data = Path(a["data"]).name if a.get("data") else "TinyShakespeare (data/tinyshakespeare.txt)"
    what = "uniform-noise diffusion LM" if uniform else "masked diffusion LM" if kind == "dllm" else "GPT"
    lesson = ("lesson 08" if tamil else "lesson 15" if uniform else "lesson 14, adapted from a GPT" if a.get("gpt")
              else "lesson 05" if kind == "dllm" else "lesson 07")
    c = model.config
    started = (f"\n| started from | the weights of `{Path(a['init_from']).name}` (`--init-from`: a fresh optimizer and "
               "schedule; its own training is not counted above) |") if a.get("init_from") else ""
    if a.get("gpt"):  # lesson 14: the GPT's weights, the shift, attention annealed from causal
        shift = "on" if a["shift"] else "off"
        started = (f"\n| started from | the GPT `{Path(a['gpt']).name}` (lesson 14: shift {shift}"
                   f", attention annealed over {a['anneal_steps']:,} steps; the GPT's own training is not counted "
                   "above) |")
    return f"""# {name}

A {model.num_params():,}-parameter {what} trained with tiny-dllm ({lesson}):
{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, context {L}, vocabulary {c.vocab_size}; fp16 safetensors.
{final}
| | |
|---|---|
| data | {data}, `--split {a.get('split', 'tail')}`: trained on the training split only |
| steps | best validation at step {best['step']:,} (schedule {a['steps']:,} steps, batch {a['batch_size']} x {L}) |
| tokens seen | {tokens:,}{' in this run' if started else ''} |{started}
| training time | {best['elapsed_s'] / 3600:.2f} h to that step (training only, evaluation excluded) |
| machine | {machine} |
| validation bits/char ({unit}) | {bits16:.4f} with these fp16 weights ({bits32:.4f} in fp32) |
| the command that trained it | `{command}` |

Sample, as `{sample_command(kind, tokenizer, name, ckpt["objective"])}` prints it:

```
(written by resample() once the model is in place)
```
"""


def sudoku_card(name, ckpt, rows, scores, model, command, machine):
    """The card of a lesson 12 model: validation puzzles solved (fp16 and fp32), as 12's evaluation counts them."""
    a, c = ckpt["args"], model.config
    best = min(rows, key=lambda r: r["val_bpc"])  # best.pt: the lowest validation loss
    folder = Path(a["puzzles"]).resolve()
    folder = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    decoding = "surest cell first, one cell per call" if ckpt["kind"] == "dllm" else "greedy, left to right"
    givens = [81 - p.count(0) for p, _ in import_module("sudoku_puzzles").read_pairs(Path(a["puzzles"]) / "train.txt")]
    data = f"{len(givens):,} unique puzzles with {min(givens)}-{max(givens)} givens"
    return f"""# {name}

A {model.num_params():,}-parameter {'masked diffusion LM' if ckpt['kind'] == 'dllm' else 'GPT'} that solves Sudoku,
trained with tiny-dllm's lesson 12: {c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, learned positions,
vocabulary {c.vocab_size} (the digits, 0 = blank); fp16 safetensors.

| | |
|---|---|
| data | `sudoku_puzzles.py` (seed 0): {folder}/train.txt, {data},
each batch turned into new ones by Sudoku's symmetries; validation puzzles share no solution grid with them |
| steps | best validation at step {best['step']:,} (schedule {a['steps']:,} steps, batch {a['batch_size']} puzzles) |
| training time | {best['elapsed_s'] / 60:.1f} min to that step (training only, evaluation excluded) |
| machine | {machine} |
| validation puzzles solved ({decoding}) | {scores[1]:.1%} of {scores[2]} with these fp16 weights
({scores[0]:.1%} in fp32) |
| the command that trained it | `{command}` |

Use it: `python 12_sudoku.py --pretrained` (the demo), `python 12_sudoku.py solve FILE --model {ckpt['kind']}`.
""".replace("givens,\neach", "givens, each").replace("\n(", " (")


def sudoku_scores(model, rounded, ckpt):
    """(fp32 solved, fp16 solved, puzzles) on the run's validation puzzles, as lesson 12's evaluation does."""
    S = import_module("12_sudoku")
    a = ckpt["args"]
    objective = S.SudokuDiffusion() if ckpt["kind"] == "dllm" else S.SudokuGPT()
    windows = S.PuzzleData(a["puzzles"]).val_batch(a["eval_windows"], 2 * S.CELLS + 1)
    with torch.no_grad():
        return (*(objective.score(m.eval(), windows)["val_solved"] for m in (model, rounded)), len(windows))


def paths_scores(model, rounded, ckpt):
    """{fp32/fp16: (valid, shortest)} on the run's validation maps, the dLLM surest cell first, one per call."""
    P = import_module("16_robot_paths")
    a, kind = ckpt["args"], ckpt["kind"]
    grid = P.MapData(a["maps"], kind).val_batch(a["eval_windows"], P.CELLS + P.MAX_MOVES + 1)[:, : P.CELLS]
    grid = grid.to(next(model.parameters()).device)  # --device cuda: the maps where the model is
    out = {}
    with torch.no_grad():
        for name, m in (("fp32", model), ("fp16", rounded)):
            paths = P.plan_gpt(m.eval(), grid) if kind == "gpt" else P.plan_dllm(m.eval(), grid, "confidence")
            r = P.rates(grid, paths)
            out[name] = (r["val_valid"], r["val_shortest"])
    return out, len(grid)


def paths_card(name, ckpt, rows, scores, n, model, command, machine):
    """The card of a lesson 16 model: validation maps planned (valid, shortest), fp16 and fp32."""
    a, c = ckpt["args"], model.config
    best = min(rows, key=lambda r: r["val_bpc"])
    folder = Path(a["maps"]).resolve()
    folder = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    n_train = sum(1 for line in read_text(Path(a["maps"]) / "train.txt").splitlines() if line.strip())
    how = ("fills the free cells of a map, surest cell first (one per call)" if ckpt["kind"] == "dllm"
           else "writes the moves from the start, greedy")
    (v32, s32), (v16, s16) = scores["fp32"], scores["fp16"]
    what = "masked diffusion LM" if ckpt["kind"] == "dllm" else "GPT"
    k = ckpt["kind"]  # the lesson's pair is the default (and --pretrained); any other model loads by its folder
    flag = "" if name == f"paths-{k}" else f" --checkpoint checkpoints/pretrained/{name}"
    demo = "" if flag else "`python 16_robot_paths.py --pretrained` (the demo), "
    return f"""# {name}

A {model.num_params():,}-parameter {what} that plans a path on a 16 x 16
occupancy grid: it {how}.
Trained with tiny-dllm's lesson 16: {c.n_layer} layers, {c.n_head} heads, width {c.n_embd},
{'RoPE' if c.rope else 'learned positions'}, vocabulary {c.vocab_size}; fp16 safetensors.

| | |
|---|---|
| data | `robot_maps.py` (seed 0): {folder}/train.txt, {n_train:,} maps of five kinds (none shares a wall layout) |
| steps | best validation at step {best['step']:,} (schedule {a['steps']:,} steps, batch {a['batch_size']} maps) |
| training time | {best['elapsed_s'] / 60:.1f} min to that step (training only, evaluation excluded) |
| machine | {machine} |
| validation maps ({n}) | {v16:.1%} valid paths, {s16:.1%} shortest, fp16 weights ({v32:.1%}, {s32:.1%} in fp32) |
| the command that trained it | `{command}` |

Use it: {demo}`python 16_robot_paths.py solve FILE --model {k}{flag}`,
`python 16_robot_paths.py plan MAP.yaml --start X Y --goal X Y --model {k}{flag}`.
"""


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--run", help="a run directory with best.pt and metrics.csv")
    p.add_argument("--name", required=True, help="the folder under checkpoints/pretrained/")
    p.add_argument("--command", help="the command that trained the run, for the card")
    p.add_argument("--resample", action="store_true", help="only write into the shipped --name's card the sample its "
                   "command prints now (after a lesson's sampling defaults change)")
    p.add_argument("--machine", help="where it trained, for the card (default: this machine's --device)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to score it (fp32 either way)")
    p.add_argument("--out-root", default=str(pretrained.PRETRAINED), help="where shipped models go")
    p.add_argument("--force", action="store_true", help="replace a shipped model of the same --name")
    args = parse_args_given(p, argv)
    if args.resample:
        refuse_unused(args, {"name", "out_root", "resample"}, "--resample")
        out = pretrained.ship_dir(args.out_root, args.name, force=True)  # a plain folder name
        if not (out / "README.md").is_file():
            raise UsageError(f"no shipped model at {out}")
        print(resample(out))
        return out
    if not (args.run and args.command):
        raise UsageError("--run and --command say what to ship (or --resample to refresh a card's sample)")
    out = pretrained.ship_dir(args.out_root, args.name, args.force)  # a plain folder name; never replaced silently
    ckpt = checkpoints.load_checkpoint(Path(args.run) / "best.pt")
    rows = read_metrics(args.run)
    model, tokenizer, _ = common.load_run(ckpt["kind"], Path(args.run) / "best.pt", args.device)
    args.machine = args.machine or machine_name(args.device)
    objective = import_module("07_train_gpt").NextTokenObjective() if ckpt["kind"] == "gpt" else (
        import_module("15_uniform_noise").UniformObjective(model.config.self_cond)
        if ckpt["objective"] == "uniform" else train.DiffusionObjective())
    if ckpt["objective"] not in ("dllm", "gpt", "uniform", "sudoku-dllm", "sudoku-gpt", "paths-dllm", "paths-gpt"):
        raise UsageError(f"{ckpt['objective']} runs are not shipped yet")
    rounded = type(model)(model.config).to(args.device)
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    if "maps" in ckpt["args"]:  # a path model (lesson 16): its card counts paths planned
        scores, n = paths_scores(model, rounded, ckpt)
        pretrained.ship(model, tokenizer, out, paths_card(args.name, ckpt, rows, scores, n, model, args.command,
                                                          args.machine))
        print(f"wrote {out}: validation maps {scores['fp16'][0]:.1%} valid, {scores['fp16'][1]:.1%} shortest in fp16")
        return scores
    if "puzzles" in ckpt["args"]:  # a Sudoku model (lesson 12): its card counts puzzles solved
        scores = sudoku_scores(model, rounded, ckpt)
        text = sudoku_card(args.name, ckpt, rows, scores, model, args.command, args.machine)
        pretrained.ship(model, tokenizer, out, text)
        print(f"wrote {out}: validation puzzles solved {scores[1]:.1%} in fp16 ({scores[0]:.1%} in fp32)")
        return scores
    bits32 = val_bits(model, tokenizer, ckpt, objective)
    bits16 = val_bits(rounded.eval(), tokenizer, ckpt, objective)
    text = card(args.name, ckpt, rows, bits32, bits16, model, args.command, args.machine, tokenizer)
    pretrained.ship(model, tokenizer, out, text)
    resample(out)  # the sample its command prints from the shipped fp16 weights
    print(f"wrote {out}: validation {bits16:.4f} bits/char in fp16 ({bits32:.4f} in fp32)")
    return bits32, bits16


if __name__ == "__main__":
    run_cli(main)
