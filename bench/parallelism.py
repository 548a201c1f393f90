"""How much parallel decoding does a trained dLLM allow? Its confidence at masked positions of real text.

    python bench/parallelism.py                             # the dLLM of bench/block_sweep.py; seconds
    python bench/parallelism.py --checkpoint checkpoints/dllm

Fast samplers commit every masked position whose top probability p(max) is high (Fast-dLLM's threshold 0.9) in
one model call. That is safe only where the model is sure: positions decided together are drawn independently,
so two uncertain neighbours can disagree ("the the"). This script masks validation windows at rates 0.1 .. 0.9
(as a sampler's canvas looks at each stage) and measures, at the masked positions: the distribution of p(max),
how many per window exceed 0.9 (the tokens a threshold sampler could commit in one call), and how often the
argmax is right there (calibration). Writes bench/results/parallelism.csv and parallelism.png.
"""
from pathlib import Path

import torch

import common  # first: the repository on the import path

# isort: split
from support.cli import ArgumentParser, encode_or_fail, out_dir, positive_int, random_seed, run_cli
from support.files import check_out_dir, read_text, save_figure
from support.metrics import write_csv
from support.runtime import machine_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@torch.no_grad()
def confidence_at_masks(model, windows, rate, generator):
    """p(max) and correctness of the argmax at the masked positions of windows (N, L) masked at `rate`.

    Returns (p_max (M,), correct (M,) bool, count of p_max > 0.9 per window (N,))."""
    mask = torch.rand(windows.shape, generator=generator) < rate  # (N, L)
    z = torch.where(mask, model.config.mask_id, windows)
    probs = model(z).float().softmax(-1)  # (N, L, V)
    p_max, guess = probs.max(-1)  # (N, L) each
    return p_max[mask], (guess == windows)[mask], ((p_max > 0.9) & mask).sum(1)


# The files written to --out: what each one's first lines say (support.files.check_out_dir).
OUTPUTS = {"parallelism.csv": "mask_rate,", "parallelism.png": None}


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "sweep" / "dllm"), help="a dLLM run or .pt")
    p.add_argument("--data", default=str(ROOT / "data" / "tinyshakespeare.txt"),
                   help="the corpus it was trained on (its last 10%% is the validation text)")
    p.add_argument("--windows", type=positive_int, default=64, help="validation windows of the model's context")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed")
    p.add_argument("--out", type=out_dir, default=str(RESULTS), help="folder for the CSV and figure")
    args = p.parse_args(argv)
    check_out_dir(args.out, OUTPUTS, flag="--out")
    model, tok, _ = common.load_run("dllm", args.checkpoint)
    text = read_text(args.data)
    ids = torch.tensor(encode_or_fail(tok, text[int(0.9 * len(text)) :], "--data"))
    L = model.config.block_size
    starts = torch.linspace(0, len(ids) - L - 1, args.windows).long()
    windows = torch.stack([ids[s : s + L] for s in starts])  # (N, L), spread over the validation text
    g = torch.Generator().manual_seed(args.seed)
    rows, dists = [], []
    for rate in RATES:
        p_max, correct, count = confidence_at_masks(model, windows, rate, g)
        sure = p_max > 0.9
        q = p_max.quantile(torch.tensor([0.1, 0.5, 0.9]))
        rows.append(dict(mask_rate=rate, p_max_p10=q[0].item(), p_max_median=q[1].item(), p_max_p90=q[2].item(),
                         frac_above_0_9=sure.float().mean().item(), above_0_9_per_window=count.float().mean().item(),
                         masked_per_window=rate * L, acc_above_0_9=correct[sure].float().mean().item(),
                         acc_all=correct.float().mean().item()))
        dists.append(p_max)
        r = rows[-1]
        print(f"mask rate {rate:.1f}: median p(max) {r['p_max_median']:.2f}; {r['frac_above_0_9']:.0%} of masked "
              f"positions above 0.9 ({r['above_0_9_per_window']:.0f} of ~{rate * L:.0f} per window), argmax right "
              f"{r['acc_above_0_9']:.0%} of those, {r['acc_all']:.0%} overall")
    out, machine = Path(args.out), machine_name()
    write_csv(out / "parallelism.csv", [dict(r, checkpoint=Path(args.checkpoint).name) for r in rows],
              [*rows[0], "checkpoint"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.violinplot([d.numpy() for d in dists], positions=list(RATES), widths=0.08, showmedians=True)
    a.axhline(0.9, color="k", ls=":", lw=1)
    a.set(xlabel="mask rate", ylabel="p(max) at masked positions", title="the model's confidence where it must write")
    b.plot(RATES, [r["above_0_9_per_window"] for r in rows], "o-", label="positions with p(max) > 0.9")
    b.plot(RATES, [r["masked_per_window"] for r in rows], "--", color="gray", label="masked positions")
    b.set(xlabel="mask rate", ylabel=f"per window of {L}", title="what a threshold-0.9 call could commit")
    b.legend(fontsize=8)
    fig.suptitle(f"{Path(args.checkpoint).name}, {args.windows} validation windows; {machine}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "parallelism.png", dpi=110)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    run_cli(main)
