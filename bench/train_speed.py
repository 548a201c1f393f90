"""Training and generation speed of the `gpu` preset model (~10.8M) on this machine, side by side.

    python bench/train_speed.py                 # CPU: about 3-5 minutes on 2 cores
    python bench/train_speed.py --device cuda

Training: dLLM steps (forward + backward + AdamW) at batch 32 x 128 for
  baseline   written-out attention (lesson 02), fp32, no autocast, no compile: a straightforward implementation
  fp32       fused scaled_dot_product_attention
  bf16       + bf16 autocast
  compile    + torch.compile
Generation: characters/s of the dLLM sampler (256 chars, 64 steps) and of the GPT with its KV cache.
Prints a Markdown table; numbers are medians over the timed steps.

    python bench/train_speed.py --dropout-cost  # only this: what dropout costs a `cpu`-preset step (a minute)

Dropout's price: on a CPU, PyTorch's fused attention kernel takes no dropout, so dropout_p > 0 sends
scaled_dot_product_attention to its written-out path, with a (B, H, T, T) random mask per layer. --dropout-cost
times the `cpu` preset's dLLM step (batch 16 x 256, fp32) at dropout 0 and 0.1, with fused and written-out
attention, to show what that costs on this machine.

The ceiling: how much faster can bf16 make this model on this chip at all? The script times one matmul of the
model's MLP shape in fp32 and in bf16 (GFLOP/s), and reports each training variant's achieved GFLOP/s with
the usual count of 6N + 12 L T C FLOPs per token (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, app. B).
"""
import statistics
import time
from importlib import import_module

import torch

import common  # noqa: F401 (first: the repository on the import path)

# isort: split
from support import runtime
from support.cli import ArgumentParser, below_one, non_negative_int, positive_int, run_cli

tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
gpt = import_module("07_train_gpt")


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, device, reps, warmup):
    """Median wall time of fn() over `reps` timed calls, after `warmup` untimed ones (compile happens there)."""
    times = []
    for i in range(warmup + reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_train(device, manual, dtype, compile_, batch, seq, steps, warmup, preset="gpu", dropout=0.2):
    torch.manual_seed(0)
    cfg = tfm.build_config(preset, vocab_size=65, manual_attention=manual, dropout=dropout)
    model = tfm.Transformer(cfg).to(device)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=(device == "cuda"))
    scaler = torch.amp.GradScaler(device, enabled=(dtype == "fp16"))  # fp16 trains with loss scaling, as 05 does
    x = torch.randint(0, 65, (batch, seq), device=device)

    def step():
        with runtime.autocast(device, dtype):
            loss = diff.diffusion_loss(fwd, x, cfg.mask_id)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        loss.item()

    return batch * seq / median_seconds(step, device, steps, warmup)


def matmul_gflops(device, dtype, M=4096, K=384, N=1536, reps=10):
    """GFLOP/s of an (M, K) @ (K, N) matmul: the MLP's shape at batch 32 x 128, width 384."""
    a = torch.randn(M, K, device=device, dtype=dtype)
    b = torch.randn(K, N, device=device, dtype=dtype)
    return 2 * M * K * N / median_seconds(lambda: a @ b, device, reps, warmup=1) / 1e9


def flops_per_token(cfg, seq):
    """Training FLOPs per token: 6 per parameter (forward 2, backward 4) + attention's 12 L T C."""
    n = tfm.Transformer(cfg).num_params()
    return 6 * n + 12 * cfg.n_layer * seq * cfg.n_embd


def time_generate(device, dtype, n_chars=256):
    torch.manual_seed(0)
    g = torch.Generator(device).manual_seed(0)  # on the model's device: no copy of the probabilities per call
    d = tfm.Transformer(tfm.build_config("gpu", vocab_size=65)).to(device).eval()
    m = tfm.Transformer(tfm.build_config("gpu", vocab_size=65, causal=True, mask_token=False)).to(device).eval()
    out = {}
    with runtime.autocast(device, dtype):
        for name, fn in [
            ("dLLM, 64 steps", lambda: diff.generate(d, torch.full((1, n_chars), d.config.mask_id, device=device),
                                                     64, diff.Sampling(generator=g))),
            ("GPT + KV cache", lambda: gpt.generate_gpt(m, torch.zeros(1, 1, dtype=torch.long, device=device),
                                                        n_chars - 1, diff.Sampling(generator=g))),
        ]:
            fn()  # warm-up
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            out[name] = n_chars / (time.perf_counter() - t0)
    return out


def dropout_cost(device, steps, warmup):
    """tokens/s of a `cpu`-preset dLLM step, fp32, batch 16 x 256: dropout 0 and 0.1, fused and written-out."""
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("\n| `cpu` preset dLLM step, batch 16 x 256, fp32 | dropout 0 | dropout 0.1 | 0.1 vs 0 |\n|---|---|---|---|")
    for name, manual in (("fused attention (SDPA)", False), ("written-out attention", True)):
        tps = [time_train(device, manual, "fp32", False, 16, 256, steps, warmup, "cpu", d) for d in (0.0, 0.1)]
        print(f"| {name} | {tps[0]:,.0f} | {tps[1]:,.0f} | {tps[1] / tps[0]:.2f}x |", flush=True)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="where to measure")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sequences per training step")
    p.add_argument("--seq-len", type=positive_int, default=128, help="tokens per sequence")
    p.add_argument("--steps", type=positive_int, default=5, help="timed steps per variant")
    p.add_argument("--warmup", type=non_negative_int, default=2,
                   help="untimed steps per variant (compile happens here)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--dropout", type=below_one, default=0.2, help="dropout of the timed model (the gpu preset's; "
                   "RESULTS.md's CPU table was measured with --dropout 0)")
    p.add_argument("--dropout-cost", action="store_true", help="only time the cpu preset at dropout 0 and 0.1")
    args = p.parse_args(argv)
    device = runtime.resolve_device(args.device)
    if args.dropout_cost:
        return dropout_cost(device, args.steps, args.warmup)
    half = runtime.half_dtype(device)  # bf16 on CPUs and Ampere+, fp16 (with loss scaling) on older GPUs
    print(f"device {device}: {runtime.setting(device)}, dropout {args.dropout}")
    variants = [("baseline: manual attention, fp32", True, "fp32", False), ("fp32 + SDPA", False, "fp32", False),
                (f"{half} autocast + SDPA", False, half, False)]
    if not args.no_compile:
        variants.append((f"{half} autocast + SDPA + compile", False, half, True))
    half_t = torch.bfloat16 if half == "bf16" else torch.float16
    too_big = runtime.OutOfMemory(1, f"--batch-size {args.batch_size} --seq-len {args.seq_len}", "make one smaller")
    with too_big:
        # Fail fast: a batch whose token ids alone do not fit is refused before the matmul rounds, which take
        # minutes in bf16 on a CPU without bf16 units (AVX2 only).
        torch.empty(args.batch_size, args.seq_len, dtype=torch.long, device=device)
    rounds = {dt: [matmul_gflops(device, dt) for _ in range(5)] for dt in (torch.float32, half_t)}
    for dt, g in rounds.items():  # it varies from round to round: the best round is the ceiling we quote
        print(f"matmul (4096 x 384) @ (384 x 1536), {str(dt)[6:]}: {min(g):.0f}-{max(g):.0f} GFLOP/s over 5 rounds")
    peak = max(rounds[half_t])
    fpt = flops_per_token(tfm.build_config("gpu", vocab_size=65), args.seq_len)
    rows = []
    with too_big:
        for name, manual, dtype, comp in variants:
            tps = time_train(device, manual, dtype, comp, args.batch_size, args.seq_len, args.steps, args.warmup,
                             dropout=args.dropout)
            rows.append((name, tps))
            print(f"  {name}: {tps:,.0f} tokens/s", flush=True)
    base = rows[0][1]
    print(f"ceiling: a step running every FLOP at the best {half} matmul speed would be "
          f"{peak / (base * fpt / 1e9):.2f}x the baseline")
    print(f"\n| training, batch {args.batch_size} x {args.seq_len} | tokens/s | vs baseline | achieved GFLOP/s |"
          "\n|---|---|---|---|")
    for name, tps in rows:
        print(f"| {name} | {tps:,.0f} | {tps / base:.2f}x | {tps * fpt / 1e9:.0f} |")
    gen = time_generate(device, half if device == "cuda" else "fp32")
    print("\n| generation, 256 chars, batch 1 | chars/s |\n|---|---|")
    for name, cps in gen.items():
        print(f"| {name} | {cps:,.0f} |")


if __name__ == "__main__":
    run_cli(main)
