"""What the benchmarks share: the repository on the import path (a script here runs as `python bench/x.py`), where
results go, and how samples are judged: generative bits/char under a GPT, distinct n-grams, character entropy.

Every script here starts with `import common` (then `# isort: split`), and then imports support/ and the lessons."""
import math
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


@torch.no_grad()
def generative_bpc(gpt, tokenizer, texts):
    """Mean -log2 p_GPT per character of `texts` (each scored after its first character; lower = more
    plausible to the GPT). Texts longer than the context are scored in windows."""
    ctx = gpt.config.block_size
    device = next(gpt.parameters()).device
    nll, n = 0.0, 0
    for text in texts:
        ids = torch.tensor(tokenizer.encode(text), device=device)
        for s in range(1, len(ids), ctx):  # targets ids[s : s+ctx], each predicted from what precedes it
            inp, tgt = ids[s - 1 : s - 1 + ctx], ids[s : s + ctx]
            logits = gpt(inp[None])[0, : len(tgt)]
            nll += F.cross_entropy(logits.float(), tgt, reduction="sum").item()
            n += len(tgt)
    return nll / max(n, 1) / math.log(2)


def distinct_ngrams(texts, n=4):
    """Unique / total character n-grams across the texts: 1.0 = never repeats, near 0 = loops."""
    grams = [t[i : i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def char_entropy(texts):
    """Entropy (bits) of the character distribution of the texts: collapses when a sampler repeats."""
    c = Counter("".join(texts))
    total = sum(c.values())
    return -sum(v / total * math.log2(v / total) for v in c.values())


def load_run(kind, path, device="cpu"):
    """(model, tokenizer, info) of any run or export here, English or Tamil: lesson 06's loader, with every
    tokenizer a checkpoint may name (09 adds Tamil's graphemes)."""
    from importlib import import_module

    tamil = import_module("09_generate_tamil")
    return tamil.gen.load(kind, path, device=device, tokenizers=tamil.TOKENIZERS)
