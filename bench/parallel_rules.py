"""How many positions lesson 10's rules commit per model call on a trained dLLM, and what the text costs.

    python bench/parallel_rules.py                 # the shipped dLLM and GPT; about 3 minutes on 2 cores

Fast-dLLM's threshold and factor rules and the EB-Sampler let the model decide how many masked positions one call
commits. Each rule here decodes 16 samples of 128 characters, one at a time, top-k 5 (README's first command), with
06's order: confidence and the default Gumbel noise on the order, and with no noise (strictly surest first). A rule
reads the model's own probability (or entropy): the noise may change which positions go first, never how many.
Judged as bench/first_command.py judges: distinct 4-grams, generative bits/char under the shipped GPT.
Writes bench/results/parallel_rules/parallel_rules.txt and .csv.
"""
import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from importlib import import_module

import torch

from support.cli import ArgumentParser, out_dir, positive_int, random_seed, run_cli, samples
from support.files import check_out_dir, write_text
from support.metrics import write_csv
from support.runtime import setting

diff, gen, fast = (import_module(m) for m in ("04_diffusion", "06_generate", "10_fast_decoding"))
SHIPPED = common.ROOT / "checkpoints" / "pretrained"
RULES = [("threshold", 0.99), ("threshold", 0.9), ("threshold", 0.7), ("threshold", 0.5), ("factor", 1.0),
         ("eb", 0.1), ("eb", 1.0), (None, 50)]  # (None, steps): lesson 04's fixed count, the baseline


# The files written to --out-dir: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"parallel_rules.csv": "rule,", "parallel_rules.txt": "bench/parallel_rules.py"}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--dllm", default=str(SHIPPED / "shakespeare-dllm"), help="the dLLM to decode with")
    p.add_argument("--gpt", default=str(SHIPPED / "shakespeare-gpt"), help="the GPT that judges the text")
    p.add_argument("--len", type=positive_int, default=128, help="characters per sample")
    p.add_argument("--num-samples", type=samples, default=16, help="samples per row, one batch")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed")
    p.add_argument("--out-dir", type=out_dir, default=str(common.RESULTS / "parallel_rules"),
                   help="where the table goes")
    args = p.parse_args(argv)
    check_out_dir(args.out_dir, OUTPUTS)
    dllm, tok, judge = common.load_judged(args.dllm, args.gpt, args.len)
    lines = [f"# python bench/parallel_rules.py (machine: {setting()}, fp32)",
             f"# {common.shown(args.dllm)}: {args.num_samples} samples x {args.len} characters, top-k 5, seed "
             f"{args.seed}", "",
             "| rule | noise on the order | model calls per sample | characters per call | distinct 4-grams "
             "| gen bits/char |",
             "|---|---|---|---|---|---|"]
    rows = []
    for kind, value in RULES:
        for noise in (gen.NOISE, 0.0):
            order = "entropy" if kind == "eb" else "confidence"  # the EB-Sampler's own order (entropy, lowest first)
            g = torch.Generator().manual_seed(args.seed)
            s = diff.Sampling(top_k=5, order=order, noise=noise, generator=g)
            canvas = torch.full((1, args.len), dllm.config.mask_id)
            rule = fast.Rule(kind, value) if kind else None
            texts, n_calls = [], 0
            with torch.no_grad():  # one sample at a time: a batch would run as long as its slowest row
                for _ in range(args.num_samples):
                    x, c = fast.generate_fast(dllm, canvas, s, steps=value if kind is None else 64, rule=rule)
                    texts.append(tok.decode(x[0].tolist()))
                    n_calls += c
            calls = n_calls / args.num_samples
            name = f"{kind} {value:g}" if kind else f"fixed: {value} calls (lesson 04)"
            rows.append(dict(rule=name, order=order, noise=noise, calls=calls, chars_per_call=args.len / calls,
                             distinct4=common.distinct_ngrams(texts),
                             gen_bpc=common.generative_bpc(judge, tok, texts)))
            r = rows[-1]
            lines.append(f"| {name} ({order}) | {noise:g} | {calls:.1f} | {r['chars_per_call']:.2f} | "
                         f"{r['distinct4']:.3f} | {r['gen_bpc']:.3f} |")
            print(lines[-1], flush=True)
    write_text(f"{args.out_dir}/parallel_rules.txt", "\n".join(lines) + "\n")
    write_csv(f"{args.out_dir}/parallel_rules.csv", rows, list(rows[0]))
    return rows


if __name__ == "__main__":
    run_cli(main)
