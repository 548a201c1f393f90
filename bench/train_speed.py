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
"""
import argparse
import statistics
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
tfm = import_module("03_transformer")
diff = import_module("04_diffusion")
train = import_module("05_train")
gpt = import_module("07_train_gpt")


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_train(device, manual, dtype, compile_, batch, seq, steps, warmup):
    torch.manual_seed(0)
    cfg = tfm.build_config("gpu", vocab_size=65, manual_attention=manual, dropout=0.0)
    model = tfm.Transformer(cfg).to(device)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=(device == "cuda"))
    x = torch.randint(0, 65, (batch, seq), device=device)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with train.autocast(device, dtype):
            loss = diff.diffusion_loss(fwd, x, cfg.mask_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch * seq / statistics.median(times)


def time_generate(device, dtype, n_chars=256):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    d = tfm.Transformer(tfm.build_config("gpu", vocab_size=65)).to(device).eval()
    m = tfm.Transformer(tfm.build_config("gpu", vocab_size=65, causal=True, mask_token=False)).to(device).eval()
    out = {}
    with train.autocast(device, dtype):
        for name, fn in [
            ("dLLM, 64 steps", lambda: diff.generate(d, torch.full((1, n_chars), d.config.mask_id, device=device),
                                                     d.config.mask_id, steps=64, generator=g)),
            ("GPT + KV cache", lambda: gpt.generate_gpt(m, torch.zeros(1, 1, dtype=torch.long, device=device),
                                                        n_chars - 1, generator=g)),
        ]:
            fn()  # warm-up
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            out[name] = n_chars / (time.perf_counter() - t0)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="where to measure")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per training step")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (compile happens here)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = p.parse_args(argv)
    device = train.resolve_device(args.device)
    half = "bf16" if device == "cpu" or torch.cuda.is_bf16_supported() else "fp16"
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    variants = [("baseline: manual attention, fp32", True, "fp32", False), ("fp32 + SDPA", False, "fp32", False),
                (f"{half} autocast + SDPA", False, half, False)]
    if not args.no_compile:
        variants.append((f"{half} autocast + SDPA + compile", False, half, True))
    rows = []
    for name, manual, dtype, comp in variants:
        tps = time_train(device, manual, dtype, comp, args.batch_size, args.seq_len, args.steps, args.warmup)
        rows.append((name, tps))
        print(f"  {name}: {tps:,.0f} tokens/s", flush=True)
    base = rows[0][1]
    print(f"\n| training, batch {args.batch_size} x {args.seq_len} | tokens/s | vs baseline |\n|---|---|---|")
    for name, tps in rows:
        print(f"| {name} | {tps:,.0f} | {tps / base:.2f}x |")
    gen = time_generate(device, half if device == "cuda" else "fp32")
    print("\n| generation, 256 chars, batch 1 | chars/s |\n|---|---|")
    for name, cps in gen.items():
        print(f"| {name} | {cps:,.0f} |")


if __name__ == "__main__":
    main()
