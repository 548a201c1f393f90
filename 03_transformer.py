"""Lesson 03: the Transformer that serves both models, the GPT and the masked diffusion LM.

One `ModelConfig` and one `Transformer`. The only architectural difference between the two models is
`causal` (marked `# GPT vs dLLM` below); the dLLM also has one extra input embedding row for [MASK].
Structure follows GPT-2 / karpathy's nanoGPT: token embeddings, positions by rotary embedding (RoPE,
the default; `rope=False` gives GPT-2's learned position table), pre-norm blocks (x + attn(ln(x)),
then x + mlp(ln(x))), GELU MLP, final LayerNorm, output head tied to the token embedding. After the
model, under its own heading: the KV cache that makes generation cheap.

    python 03_transformer.py    # parameter count of every preset and one forward pass's shapes
"""
import math
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from support.cli import ArgumentParser, int_in, run_cli

attn_lesson = import_module("02_attention")


@dataclass
class ModelConfig:
    vocab_size: int = 65  # real tokens the model can output (65 characters for TinyShakespeare)
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256  # context length: the longest sequence the position embedding covers
    dropout: float = 0.0
    # GPT vs dLLM: True = GPT (left-to-right), False = masked diffusion (bidirectional)
    causal: bool = False
    # GPT vs dLLM: the dLLM has one extra input row for [MASK] (id = vocab_size)
    mask_token: bool = True
    tie_weights: bool = True  # output head shares the token embedding (Press & Wolf 2017)
    # teaching switch: use lesson 02's written-out attention instead of SDPA
    manual_attention: bool = False
    # rotary position embedding (Su et al. 2021) instead of a learned position table
    rope: bool = True
    # GPT vs dLLM: > 0 = block diffusion (BD3-LM, lesson 04): causal over blocks of this many
    block_len: int = 0
    # input-only tokens after the real ones: the fill-in-the-middle GPT's <PRE> <SUF> <MID> (07)
    sentinels: int = 0
    # GPT vs dLLM: a dLLM adapted from a GPT (lesson 14) predicts x[i] at the hidden state of i-1
    shift: bool = False
    # GPT vs dLLM: uniform noise (lesson 15) hides its own level, so the model is told t
    time_input: bool = False
    # lesson 15: self-conditioning, the previous call's prediction fed back in (Chen et al. 2022)
    self_cond: bool = False

    @property
    def n_input_tokens(self):
        return self.vocab_size + int(self.mask_token) + self.sentinels

    @property
    def mask_id(self):
        return self.vocab_size if self.mask_token else None


# Model shapes shared by every trainer (05, 07, 08). Training hyperparameters live in 05_train.py.
PRESETS = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=32),  # seconds; tests
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=256),  # ~10 min on a 2-core laptop
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),  # ~10M, consumer GPU
}


def build_config(preset="gpu", **overrides):
    """ModelConfig from a preset name plus any overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    kw = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return ModelConfig(**kw)


def rope_tables(config, pos, base=10000.0):
    """cos, sin (T, D/2) for the positions pos (T,): pair i rotates by angle pos * base^(-2i/D)."""
    D = config.n_embd // config.n_head
    inv_freq = base ** (-torch.arange(0, D, 2, device=pos.device).float() / D)  # (D/2,)
    angles = pos.float()[:, None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate (x1, x2) pairs of x (B, H, T, D) by position: q.k then depends only on the offset
    i - j."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


def attention_mask(config, pos, key_pos, cached=False):
    """Which keys each query may see: a (T, Tk) bool tensor, True = may attend, for queries at
    positions pos (T,) and keys at key_pos (Tk,). None where no tensor is needed: the dLLM sees
    every key, and a GPT's pass over a whole sequence (no cache) uses SDPA's built-in causal mask
    (is_causal: FlashAttention on a GPU)."""
    # GPT vs dLLM: the causal mask is the whole difference; a token sees itself and the past
    if config.causal:
        if not cached and not config.manual_attention:
            return None
        return key_pos[None, :] <= pos[:, None]
    # GPT vs dLLM: block diffusion (lesson 11) sees its own block
    if 0 < config.block_len < config.block_size:
        return key_pos[None, :] // config.block_len <= pos[:, None] // config.block_len  # & before
    return None


def additive_mask(mask, device_type):
    """(T, Tk) bool -> float, 0 where attention may look and -inf where not, in autocast's dtype
    when it is on."""
    on = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if on else torch.get_default_dtype()
    zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zeros.masked_fill(~mask, float("-inf"))


class SelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # q, k, v in one matmul
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x, rope, mask=None, cache=None, start=0):
        """x (B, T, C) at positions [start, start+T); rope: (cos, sin) or None;
        mask from attention_mask()."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        # (B, H, T, D)
        q, k, v = (attn_lesson.split_heads(t, self.config.n_head) for t in (q, k, v))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:  # store this call's keys/values, attend to every valid one
            k, v = cache.update(self.layer_idx, k, v, start)
        p = self.config.dropout if self.training else 0.0  # attention dropout, in training only
        if self.config.manual_attention:
            y, _ = attn_lesson.attention(q, k, v, mask, dropout_p=p)  # lesson 02, written out
        else:  # fused kernel (FlashAttention on GPU); same math
            causal = mask is None and self.config.causal
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                               dropout_p=p)
        return self.resid_drop(self.proj(attn_lesson.merge_heads(y)))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm residual block: the residual stream x is only ever added to, never replaced."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config, layer_idx)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, rope, mask=None, cache=None, start=0):
        # (B, T, C): tokens exchange information
        x = x + self.attn(self.ln1(x), rope, mask, cache, start)
        return x + self.mlp(self.ln2(x))  # (B, T, C): each token thinks on its own


# PyTorchModelHubMixin (huggingface_hub) adds save_pretrained / from_pretrained / push_to_hub: the
# ModelConfig goes to config.json and the weights to model.safetensors, the Hub's conventions.
# Nothing else changes.
class Transformer(nn.Module, PyTorchModelHubMixin, library_name="pytorch", tags=["tiny-dllm"]):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.n_input_tokens, config.n_embd)
        self.pos_emb = None if config.rope else nn.Embedding(config.block_size + config.shift,
                                                             config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        # lesson 15: t -> a vector added at every position (a masked canvas shows t: its [MASK]s)
        C = config.n_embd
        self.time_mlp = nn.Sequential(nn.Linear(1, C), nn.GELU(),
                                      nn.Linear(C, C)) if config.time_input else None
        # no biases, as DiffusionGemma's: no previous prediction (zeros) adds exactly nothing
        self.sc_mlp = nn.Sequential(nn.RMSNorm(C), nn.Linear(C, C, bias=False), nn.GELU(),
                                    nn.Linear(C, C, bias=False)) if config.self_cond else None
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.n_input_tokens if config.tie_weights
                                 else config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one Parameter, two uses
        self.apply(self._init_weights)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())  # a tied Parameter is counted once

    @classmethod
    def from_state(cls, config, state, block=None):
        """The one way a saved model is rebuilt (06's load and from_pretrained both come here):
        the ModelConfig from a saved config dict, each value checked (ValueError if it cannot be
        one), then the weights (RuntimeError if they do not fit). block: another Block class."""
        kw = {k: v for k, v in config.items() if k in ModelConfig.__dataclass_fields__}
        for k, v in kw.items():
            want = type(getattr(ModelConfig, k))  # int, float or bool, from the defaults
            ok = isinstance(v, want) and (want is bool or not isinstance(v, bool)) or (
                want is float and type(v) is int)
            if not ok or (want is int and v < (k not in ("block_len", "sentinels"))):
                raise ValueError(f"config {k} = {v!r} is not a valid value")
        if kw.get("n_embd", 1) % kw.get("n_head", 1) or not 0 <= kw.get("dropout", 0) < 1:
            raise ValueError("n_embd must divide by n_head, and dropout lie in [0, 1)")
        model = cls(ModelConfig(**kw))
        if block is not None:  # the upstream tiny-dllm checkpoint wires its blocks another way
            n = model.config.n_layer
            model.blocks = nn.ModuleList(block(model.config, i) for i in range(n))
        model.load_state_dict(state)
        return model

    @classmethod
    def _from_pretrained(cls, *, model_id, **kwargs):
        """A local export (one model.safetensors, or shards for a model over 16 MB) goes through
        from_state; a Hub repo id through the mixin, which downloads it."""
        from support import hub  # plumbing: the files, the shards and their index

        if not Path(model_id).is_dir():
            return super()._from_pretrained(model_id=model_id, **kwargs)
        state, config, _ = hub.read_export(model_id)
        return cls.from_state(config, state).to(kwargs.get("map_location", "cpu")).eval()

    def forward(self, idx, cache=None, start=0, pos=None, attn_mask=None, t=None, prev=None):
        """idx: (B, T) token ids at positions [start, start+T). Returns logits (B, T, vocab_size).
        t (B,): the noise level, for a model with time_input; prev (B, T, V): the previous call's
        logits, for a model with self_cond (lesson 15).

        The logits never include [MASK]: the head's [MASK] row is dropped, so the model cannot
        predict it. pos (T,) and attn_mask (T, T) override the positions and the mask: block
        diffusion trains on [x_t ; x_0], two copies of the same positions, in one pass (lesson 11).
        """
        B, T = idx.shape
        if pos is None and start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} positions exceeds "
                             f"block_size {self.config.block_size}")
        # GPT vs dLLM: lesson 14, the token before each position goes in first
        if self.config.shift:
            idx, attn_mask = self.shift_in(idx, cache, start, attn_mask)
        if pos is None:
            pos = torch.arange(start, start + idx.size(1), device=idx.device)
        end = start + idx.size(1)
        key_pos = torch.arange(max(cache.filled, end),
                               device=idx.device) if cache is not None else pos
        mask = attn_mask if attn_mask is not None else attention_mask(self.config, pos, key_pos,
                                                                      cache is not None)
        # no position attends to the [MASK] slot: it only reads, to predict x_0
        if self.config.shift:
            keep = (key_pos[None, :] != 0) | (pos[:, None] == 0)  # (T+1, Tk)
            mask = keep if mask is None else mask & keep
        # once, not in every layer: the additive form
        if mask is not None and not self.config.manual_attention:
            # SDPA works with, in the dtype it computes in
            mask = additive_mask(mask, idx.device.type)
        rope = rope_tables(self.config, pos) if self.config.rope else None  # once for all layers
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)
        if self.time_mlp is not None:
            x = x + self.time_mlp(t.view(-1, 1, 1).to(x.dtype))  # (B, 1, C): at every position
        if self.sc_mlp is not None and prev is not None:  # the expected embedding of its guess
            guess = prev.float().softmax(-1) @ self.tok_emb.weight[: self.config.vocab_size].float()
            x = x + self.sc_mlp(guess.to(x.dtype))  # (B, T, C)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope, mask, cache, start)
        if cache is not None:
            cache.filled = max(cache.filled, end)
        # shift: the last hidden state would predict the token after the canvas
        x = self.ln_f(x[:, :T])
        return F.linear(x, self.lm_head.weight[: self.config.vocab_size])  # (B, T, V)

    def shift_in(self, idx, cache, start, attn_mask):
        """The shift of DiffuGPT / Dream (lesson 14): the model reads [token before x_0] + x, so
        that the output at x[i] comes from the hidden state at x[i-1], where the GPT's head learned
        to predict "the next token". Before x_0 there is nothing: a [MASK] slot stands there, which
        sees the canvas but which no position looks at, so with the GPT's causal mask the adapted
        model computes exactly what the GPT did. A cached call starting at `start` > 0 reads the
        token before it from the cache. Positions move one on: (B, T) -> (B, T+1)."""
        if cache is not None and start > 0:
            # (B, 1) the token at the position before `start`
            before = cache.ids[:, start : start + 1]
        elif start == 0:
            # the [MASK] slot before x_0
            before = idx.new_full((idx.size(0), 1), self.config.mask_id)
        else:
            raise ValueError("a shifted model needs a KV cache to start after position 0")
        idx = torch.cat([before, idx], 1)  # (B, T+1)
        if cache is not None:
            cache.ids[:, start + 1 : start + idx.size(1)] = idx[:, 1:]
        # (T, T) -> (T+1, T+1): the slot sees what x_0 sees (forward() hides the slot)
        if attn_mask is not None:
            attn_mask = torch.cat([torch.cat([attn_mask[:1, :1], attn_mask[:1]], 1),
                                   torch.cat([attn_mask[:, :1], attn_mask], 1)], 0)
        return idx, attn_mask


# ----------------------------------------------------------------------------------------------
# Inference: the KV cache (07's GPT sampler, 10's Fast-dLLM cache, 11's block diffusion)
# ----------------------------------------------------------------------------------------------
class KVCache:
    """Keys and values of every layer for a canvas of up to `max_len` positions.

    GPT: filled left to right, so each new token costs one position of compute. dLLM (Fast-dLLM, Wu
    et al. 2025): filled by one full pass at the start of a block, then a pass over just the block
    (and, for the prefix cache, the suffix) overwrites those positions and attends to the rest.
    """

    def __init__(self, config, batch_size, max_len, device=None):
        # lesson 14's shifted model reads one position more: the slot before x_0
        max_len += config.shift
        D = config.n_embd // config.n_head
        self.shape = (config.n_layer, batch_size, config.n_head, max_len, D)
        # allocated at the first update, on the device and in the dtype of the keys
        self.k = self.v = None
        self.filled = 0  # positions [0, filled) hold valid keys and values
        # the tokens read there
        self.ids = torch.zeros(batch_size, max_len, dtype=torch.long, device=device)

    def update(self, layer, k, v, start):
        """Write k, v (B, H, T, D) at [start, start+T) and return every valid key and value."""
        # under autocast the keys are bf16/fp16: the cache holds them as they are
        if self.k is None:
            self.k = torch.zeros(self.shape, device=k.device, dtype=k.dtype)
            self.v = torch.zeros(self.shape, device=v.device, dtype=v.dtype)
        end = start + k.size(2)
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        n = max(self.filled, end)
        return self.k[layer, :, :, :n], self.v[layer, :, :, :n]


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--preset", choices=list(PRESETS), default="gpu",
                   help="which preset to run forward")
    # The demo's logits are (2, T, V) floats: past Gemma 3's 262,144 tokens, only memory runs out.
    p.add_argument("--vocab-size", type=int_in(1, 2**18), default=65,
                   help="number of real tokens (65 = TinyShakespeare)")
    args = p.parse_args(argv)

    print("== presets: real parameter counts (dLLM with [MASK] row / GPT) ==")
    for name in PRESETS:
        d = Transformer(build_config(name, vocab_size=args.vocab_size))
        gpt = dict(causal=True, mask_token=False)
        g = Transformer(build_config(name, vocab_size=args.vocab_size, **gpt))
        c = d.config
        print(f"{name:>5}: {c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, "
              f"context {c.block_size}: {d.num_params():,} / {g.num_params():,} parameters")

    torch.manual_seed(0)
    cfg = build_config(args.preset, vocab_size=args.vocab_size)
    model = Transformer(cfg).eval()
    idx = torch.randint(0, cfg.n_input_tokens, (2, cfg.block_size))  # (B, T)
    print(f"\n== one forward pass of the {args.preset!r} dLLM ==")
    print(f"config: {asdict(cfg)}")
    print(f"input ids        {tuple(idx.shape)}  (B, T)")
    with torch.no_grad():
        x = model.tok_emb(idx)  # positions enter later, inside attention (RoPE rotates q and k)
        print(f"embeddings       {tuple(x.shape)}  (B, T, C)")
        # (B, T, C)
        q = model.blocks[0].attn.qkv(model.blocks[0].ln1(x)).split(cfg.n_embd, dim=2)[0]
        heads = attn_lesson.split_heads(q, cfg.n_head)
        print(f"layer-0 queries  {tuple(heads.shape)}  (B, H, T, C/H)")
        logits = model(idx)
    print(f"logits           {tuple(logits.shape)}  (B, T, V): no output for [MASK] "
          f"(id {cfg.mask_id})")
    print(f"head tied to embedding: {model.lm_head.weight is model.tok_emb.weight}")


if __name__ == "__main__":
    run_cli(main)  # Ctrl-C: one line, exit status 130
