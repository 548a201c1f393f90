"""Lesson 14: from GPT to dLLM. Start the diffusion model from a trained GPT, as today's large
dLLMs are made.

Lessons 05-07 trained the dLLM from random weights; the GPT of the same size, trained the same way,
writes better text. Most large dLLMs of 2024-2026 were not trained from scratch: DiffuGPT and
DiffuLLaMA (Gong et al., ICLR 2025), Dream 7B (from Qwen2.5) and the dllm library's A2D recipe start
from an autoregressive model and go on training it with lesson 04's masked-diffusion loss. A GPT
already knows the language; what it lacks is seeing both sides and filling a masked position. Two
tricks make the move gentle (Gong et al. 2025):

  1. The shift (Dream; DiffuGPT). The GPT's output at position i means "the token at i+1". Keep
     that meaning: the dLLM predicts a masked x[i] at the hidden state of position i-1, so the
     GPT's head is reused as it is. Lesson 03 does this inside the model (ModelConfig.shift), so
     model(x)[:, i] still predicts x[:, i] and every sampler, likelihood and the playground work
     unchanged. Before x[0] there is nothing: a [MASK] slot stands there, so x[0] is predicted
     from a position that says "unknown", and the model reads one position more.
  2. Attention annealing (DiffuGPT and DiffuLLaMA). The GPT has only ever looked left. Switching
     to full attention at once changes every layer's input; instead, begin causal and let each
     query see each later key with a probability that rises linearly from 0 to 1 over the first
     --anneal-steps steps.

Then lesson 04's NELBO through lesson 05's loop, unchanged: only the starting weights and the
warm-up mask differ.

    python 14_from_gpt.py               # demo: adapt the shipped GPT, beside a dLLM from scratch
    python 14_from_gpt.py train         # 05's loop from the GPT -> checkpoints/dllm_from_gpt
    python 14_from_gpt.py train --no-shift --out checkpoints/noshift         # ablation: no shift
    python 14_from_gpt.py train --anneal-steps 0 --out checkpoints/noanneal  # ablation: no anneal
"""
import argparse
import dataclasses
import functools
import tempfile
from importlib import import_module
from pathlib import Path

import torch

from support.cli import (
    ArgumentParser,
    UsageError,
    non_negative_int,
    parse_args_given,
    positive_int,
    random_seed,
    run_cli,
    subcommands,
)
from support.files import read_text

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gen = import_module("06_generate")
ROOT = Path(__file__).resolve().parent


def adapt(gpt, shift=True):
    """A dLLM holding the GPT's weights: the same Transformer, bidirectional, with a [MASK] input
    row (the mean of the GPT's token embeddings: an average character) and, with `shift`, the GPT's
    head reused as it is."""
    # GPT vs dLLM
    config = dataclasses.replace(gpt.config, causal=False, mask_token=True, shift=shift)
    model = tfm.Transformer(config)
    state = gpt.state_dict()
    emb = state["tok_emb.weight"]  # (V, C); the tied head is the same tensor
    # + [MASK]
    state["tok_emb.weight"] = state["lm_head.weight"] = torch.cat([emb, emb.mean(0, keepdim=True)])
    if shift and "pos_emb.weight" in state:  # learned positions (07 --no-rope), not RoPE
        # the shifted model reads the slot before x[0] at position 0, so x[i] at i+1: the GPT's rows
        # move up by one, and the slot starts as the GPT's first position
        pos = state["pos_emb.weight"]  # (block_size, C)
        state["pos_emb.weight"] = torch.cat([pos[:1], pos])  # (block_size + 1, C)
    model.load_state_dict(state)
    return model


def annealed_mask(T, share, generator=None, device=None):
    """(T, T) bool, True = may attend: the causal mask, plus each later key with probability
    `share` (DiffuLLaMA's get_anneal_attn_mask: one draw per batch). share 0 is the GPT's mask,
    1 the dLLM's."""
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return (causal | (torch.rand(T, T, generator=generator) < share)).to(device)


class AdaptObjective(train.DiffusionObjective):
    """05's dLLM objective, with attention annealed from causal to bidirectional over
    the first steps."""

    trainer = "14_from_gpt.py train"

    def __init__(self, anneal_steps=1000, t_range=(diff.EPS, 1.0)):
        super().__init__(t_range)
        self.anneal_steps, self.step = anneal_steps, 0  # 05's loop sets step before every update

    def share(self):
        """The fraction of later keys a query sees at this step: 0 -> 1 over anneal_steps (0:
        full at once)."""
        return min(1.0, (self.step + 1) / self.anneal_steps) if self.anneal_steps else 1.0

    def loss(self, model, x, config):  # x: (B, L+1); the dLLM uses the first L tokens
        L = x.size(1) - 1
        # GPT vs dLLM: part causal, part bidirectional while the model gets used to it
        if self.share() < 1:
            mask = annealed_mask(L, self.share(), device=x.device)
            model = functools.partial(model, attn_mask=mask)
        return diff.diffusion_loss(model, x[:, :-1], config.mask_id, t_range=self.t_range)


def load_gpt(path, tokenizer, shift=True):
    """The GPT at `path`, made into a dLLM by adapt(): what lesson 05's loop starts from."""
    gpt, tok, info = gen.load(path, "gpt")
    if info["objective"] != "gpt":
        raise UsageError(f"{info['path']} is a {info['objective']} model, not a GPT of text")
    if tok.to_dict() != tokenizer.to_dict():
        raise UsageError(f"{info['path']} was trained on another vocabulary than this corpus")
    return adapt(gpt, shift)


# ----------------------------------------------------------------------------------------------
# The demo: the shipped GPT adapted for a few hundred steps, beside a dLLM from scratch
# ----------------------------------------------------------------------------------------------
def write(model, tokenizer, seed):
    """128 characters in 64 calls, lesson 04's sampler with 06's order and top-k 5."""
    canvas = torch.full((1, 128), model.config.mask_id)
    s = diff.Sampling(top_k=5, order=gen.ORDER, generator=torch.Generator().manual_seed(seed))
    return tokenizer.decode(diff.generate(model.eval(), canvas, 64, s)[0][0].tolist())


def demo_adapt(args):
    """Two runs of lesson 05's loop on the cpu preset, the same steps, windows and seed: one from
    the shipped GPT (shift + annealing), one from random weights; their bounds side by side, then a
    sample of each."""
    text = train.shakespeare()
    data = train.TextData(text, diff.CharTokenizer.from_text(text))
    gpt_path = ROOT / "checkpoints" / "pretrained" / "shakespeare-gpt"
    runs = {
            "from the GPT": (AdaptObjective(args.steps // 2, (0.1, 0.9)),
                             load_gpt(gpt_path, data.tokenizer)),
            "from scratch": (train.DiffusionObjective((0.1, 0.9)), None)}
    curves, samples = {}, {
                           "from the GPT, before any step": write(runs["from the GPT"][1],
                                                                  data.tokenizer, args.seed)}
    every = max(1, args.steps // 4)  # four evaluations after the untrained one
    with tempfile.TemporaryDirectory() as tmp:
        for name, (objective, init) in runs.items():
            print(f"\n== a dLLM {name}: {args.steps} steps of lesson 05's loop ==")
            out = Path(tmp) / name.replace(" ", "_")
            argv = ["--preset", "cpu", "--steps", str(args.steps), "--eval-every",
                    str(every),
                    "--warmup", str(args.steps // 10), "--eval-windows", "16", "--eval-k", "8",
                    "--sample-len", "0", "--no-plot", "--dtype", "fp32", "--out", str(out)]
            rows = train.train(train.parse_args(train.training_parser(__doc__, out), argv),
                               objective, data, init)
            curves[name] = [r["val_bpc"] for r in rows]
            samples[name] = write(gen.load(out / "latest.pt", "dllm")[0], data.tokenizer, args.seed)
    print("\n== validation bits/char (NELBO, an upper bound, on the same 16 windows) ==")
    print(f"{'step':>6} {'from the GPT':>13} {'from scratch':>13}")
    for i, (a, b) in enumerate(zip(*curves.values())):
        print(f"{i * every:>6} {a:>13.3f} {b:>13.3f}")
    for name, text in samples.items():
        print(f"\n== 128 characters {name}, 64 calls ==\n{text}")


# ----------------------------------------------------------------------------------------------
# The command line: the demo, or `train` (05's flags plus this lesson's)
# ----------------------------------------------------------------------------------------------
def adapt_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=positive_int, default=400,
                   help="demo: training steps of each of the two runs")
    p.add_argument("--seed", type=random_seed, default=0, help="demo: random seed of the samples")
    add = subcommands(p, ["train"])
    t = train.training_parser(None, ROOT / "checkpoints" / "dllm_from_gpt",
                              parser=add("train", "adapt a GPT through lesson 05's loop"))
    for a in t._actions:  # 05's warm start: here --gpt names the weights, so it is not offered
        if a.dest == "init_from":
            a.help = argparse.SUPPRESS
    g = t.add_argument_group("this lesson")
    g.add_argument("--gpt", default=str(ROOT / "checkpoints" / "pretrained" / "shakespeare-gpt"),
                   help="the GPT to start from: a run directory, checkpoint or Hub export (07's "
                        "run: checkpoints/gpt)")
    g.add_argument("--shift", action=argparse.BooleanOptionalAction, default=True,
                   help="predict x[i] at position i-1, as the GPT did; --no-shift, the ablation: "
                   "at i itself (the head must learn a new meaning)")
    g.add_argument("--anneal-steps", type=non_negative_int, default=1000,
                   help="steps over which attention goes from causal to bidirectional (0: at once)")
    train.add_mask_rate_arg(g, default=train.CLIPPED)
    return p


def main(argv=None):
    args = parse_args_given(adapt_parser(), argv)
    if args.command != "train":
        return demo_adapt(args)
    # the GPT's shape is the model's: a shape flag would be ignored (a resumed run brings its own)
    shape = sorted({"seq_len", "n_layer", "n_head", "n_embd", "rope"} & args.given)
    if shape:
        flags = " ".join("--" + k.replace("_", "-") for k in shape)
        raise UsageError(f"{flags}: the model's shape is the GPT's (--gpt); drop them")
    if args.init_from:  # 05's flag would start from other weights than --gpt's, silently
        raise UsageError("--init-from: this lesson starts from the GPT of --gpt; name it there")
    args = train.resolve(args)
    text = read_text(args.data) if args.data else train.shakespeare()
    data = train.TextData(text, diff.CharTokenizer.from_text(text), args.split)
    args.gpt = str(Path(args.gpt).resolve())  # recorded in the checkpoint as a full path
    init = None if args.resume else load_gpt(args.gpt, data.tokenizer, args.shift)
    return train.train(args, AdaptObjective(args.anneal_steps, train.mask_rate(args)), data, init)


if __name__ == "__main__":
    run_cli(main)
