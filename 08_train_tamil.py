"""Lesson 08: train the same masked diffusion LM on Tamil, with a grapheme-cluster tokenizer.

    python tamil_dataset.py                # build data/tamil/corpus.txt once
    python 08_train_tamil.py               # same flags as 05_train.py; output checkpoints/tamil

Nothing about the model or the objective changes: only the corpus and the tokenizer (tamil_dataset.py).
"""
from importlib import import_module

from support.cli import run_cli

train = import_module("05_train")
tamil = import_module("tamil_dataset")


def main(argv=None):
    return train.main(argv, default_out=train.ROOT / "checkpoints" / "tamil", description=__doc__,
                      load_corpus=tamil.load_corpus, make_tokenizer=tamil.GraphemeTokenizer.from_text)


if __name__ == "__main__":
    run_cli(main)
