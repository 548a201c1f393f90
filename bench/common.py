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


def sampler_args(kw, generator=None):
    """A benchmark row's flat keywords (remasking, temperature, top_k, top_p, noise; threshold, factor or
    entropy_budget; schedule, eta, t_on, t_off, alpha_on; the rest as they are) -> (lesson 04's Sampling, lesson
    10's Rule or None, lesson 13's Remask or None, the remaining keywords): the objects the lessons' samplers take."""
    from importlib import import_module

    diff, fast, remask = (import_module(m) for m in ("04_diffusion", "10_fast_decoding", "13_self_correction"))
    kw = dict(kw)
    sampling = diff.Sampling(kw.pop("temperature", 1.0), kw.pop("top_k", 0), kw.pop("top_p", 1.0),
                             kw.pop("remasking", "random"), kw.pop("noise", 0.0), generator)
    rules = [(kind, kw.pop(name)) for name, kind in (("threshold", "threshold"), ("factor", "factor"),
                                                     ("entropy_budget", "eb")) if name in kw]
    r = None
    if "schedule" in kw:
        r = remask.Remask(kw.pop("schedule"), kw.pop("eta", 0.02), rules.pop()[1] if rules else 0.05,
                          **{k: kw.pop(k) for k in ("t_on", "t_off", "alpha_on") if k in kw})
    return sampling, fast.Rule(*rules[0]) if rules else None, r, kw


def load_judged(dllm_path, gpt_path, length=None, device="cpu"):
    """(dLLM, its tokenizer, the GPT that judges its text): one line, not a traceback, when the two do not share a
    vocabulary (a Tamil model judged by the English GPT) or `length` (--len) is past the dLLM's context."""
    from support.cli import UsageError

    dllm, tok, _ = load_run("dllm", dllm_path, device)
    gpt, gtok, _ = load_run("gpt", gpt_path, device)
    if tok.to_dict() != gtok.to_dict():
        raise UsageError(f"{dllm_path} and {gpt_path} have different vocabularies: the judge must read the dLLM's "
                         "tokens")
    if length is not None and length > dllm.config.block_size:
        raise UsageError(f"--len {length} is past the dLLM's context ({dllm.config.block_size})")
    return dllm, tok, gpt


def shown(path):
    """A path as a result file names it: relative to the repository when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def load_run(kind, path, device="cpu"):
    """(model, tokenizer, info) of any run or export here, English or Tamil: lesson 06's loader, with every
    tokenizer a checkpoint may name (09 adds Tamil's graphemes)."""
    from importlib import import_module

    tamil = import_module("09_generate_tamil")
    return tamil.gen.load(path, kind, device, tamil.TOKENIZERS)
