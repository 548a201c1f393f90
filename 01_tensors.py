"""Lesson 01: tensors, shapes, broadcasting, autograd, nn.Module and a training loop.

Everything a language model does is built from the five ideas in this file. Run it:

    python 01_tensors.py

Read it top to bottom; each function is one idea, and `main` prints what it shows.
"""

import torch
import torch.nn as nn

from support.cli import ArgumentParser, positive_int, run_cli


def shapes_and_broadcasting():
    """Tensors are n-dimensional arrays with a shape; broadcasting stretches size-1 dims."""
    x = torch.arange(6.0).reshape(2, 3)  # (2, 3): 2 rows, 3 columns
    row = torch.tensor([10.0, 20.0, 30.0])  # (3,)  -> broadcast as (1, 3) -> (2, 3)
    col = torch.tensor([[1.0], [2.0]])  # (2, 1) -> broadcast to (2, 3)
    # A language model's activations have shape (B, T, C): batch, time
    # (sequence position), channels.
    acts = torch.randn(4, 8, 16)  # (B, T, C)
    w = torch.randn(16, 32)  # (C, C')
    out = acts @ w  # matmul acts on the last dim, batch dims broadcast: (B, T, C')
    return x, x + row, x * col, acts.shape, out.shape


def gradient_check():
    """Autograd computes d(loss)/d(w); we check it against the derivative done by hand.

    loss(w) = sum_i (w * x_i - y_i)^2   =>   d loss / d w = sum_i 2 * (w * x_i - y_i) * x_i
    """
    x = torch.tensor([1.0, 2.0, 3.0])
    y = torch.tensor([2.0, 4.0, 7.0])
    w = torch.tensor(1.5, requires_grad=True)
    loss = ((w * x - y) ** 2).sum()
    loss.backward()  # fills w.grad by the chain rule, walking the graph backwards
    by_hand = (2 * (w.detach() * x - y) * x).sum()
    return w.grad.item(), by_hand.item()


class TinyMLP(nn.Module):
    """nn.Module: parameters are registered as attributes, forward() says how to use them."""

    def __init__(self, n_in=1, n_hidden=32, n_out=1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))

    def forward(self, x):  # (N, n_in) -> (N, n_out)
        return self.net(x)


def fit_sine(steps=300, seed=0, log_every=50):
    """The training loop every later lesson uses: forward, loss, zero_grad, backward, step."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.rand(256, 1, generator=g) * 6 - 3  # (256, 1) in [-3, 3]
    y = torch.sin(x)
    model = TinyMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    history = []
    for step in range(steps + 1):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0:
            history.append((step, loss.item()))
    return history


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=positive_int, default=300,
                   help="training steps for the sine-fitting demo")
    args = p.parse_args(argv)

    print("== 1. shapes and broadcasting ==")
    x, plus_row, times_col, acts_shape, out_shape = shapes_and_broadcasting()
    print(f"x =\n{x}\nx + row (3,) =\n{plus_row}\nx * col (2,1) =\n{times_col}")
    print(f"(B, T, C) {tuple(acts_shape)} @ (C, C') (16, 32) -> {tuple(out_shape)}")

    print("\n== 2. autograd vs the hand-derived gradient ==")
    auto, hand = gradient_check()
    print(f"autograd dL/dw = {auto:.6f}   by hand = {hand:.6f}   |diff| = {abs(auto - hand):.2e}")

    print("\n== 3. nn.Module ==")
    m = TinyMLP()
    print(m)
    print(f"parameters: {sum(p.numel() for p in m.parameters())}")

    print(f"\n== 4. a training loop: fit sin(x) for {args.steps} steps ==")
    for step, loss in fit_sine(steps=args.steps):
        print(f"step {step:4d}  mse {loss:.5f}")


if __name__ == "__main__":
    run_cli(main)  # Ctrl-C: one line, exit status 130
