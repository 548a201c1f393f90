"""Lesson 09: generate Tamil with 08's model and watch it write whole letters (06's flags).

    python 09_generate_tamil.py --steps 64 --len 120
    python 09_generate_tamil.py --prompt "அகர முதல" --show-steps   # the canvas, call by call
    python 09_generate_tamil.py --template "யாதும் ஊரே ______ கேளிர்" --gif kural.gif

The canvas is a row of graphemes (lesson 08's tokens): each [MASK] (shown as _) becomes a whole
letter such as கி or க், never half of one, and --show-steps marks how many code points each
committed letter holds. GIFs need a Tamil font (Debian/Ubuntu: `sudo apt install fonts-lohit-taml`;
or Noto Sans Tamil) and matplotlib >= 3.11, which shapes complex scripts; older versions draw vowel
signs in the wrong place.
"""
import sys
from importlib import import_module
from pathlib import Path

from support.cli import ArgumentParser, parse_args_given, run_cli

gen = import_module("06_generate")
tamil_lesson = import_module("08_train_tamil")
ROOT = Path(__file__).resolve().parent
TOKENIZERS = {**gen.TOKENIZERS, "grapheme": tamil_lesson.GraphemeTokenizer}


def tamil_font():
    """The first installed font family that covers Tamil, or None (with a hint on stderr)."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if "tamil" in f.name.lower():
            return f.name
    for path in font_manager.findSystemFonts():  # installed after matplotlib cached its font list
        if "tamil" in Path(path).name.lower():
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    print("no Tamil font found: the GIF will show boxes (install fonts-lohit-taml or Noto Sans "
          "Tamil)",
          file=sys.stderr)
    return None


def grapheme_sizes(text, mask_char="_"):
    """Under each grapheme of `text`, how many code points it holds ('.' for a [MASK]): '2' under
    கி = க + ி."""
    g = tamil_lesson.GraphemeTokenizer.split(text)
    return " ".join(("." if c == mask_char else str(len(c))) for c in g if c != "\n")


def main(argv=None):
    p = gen.add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "tamil",
                              shipped="thirukkural-dllm")
    args = parse_args_given(p, argv)
    texts = gen.generate_cli(args, font=tamil_font() if args.gif else None, tokenizers=TOKENIZERS)
    if args.show_steps:  # what a grapheme tokenizer buys: every committed token is a whole letter
        print(f"code points per grapheme of the first sample: {grapheme_sizes(texts[0])}")
    return texts


if __name__ == "__main__":
    run_cli(main)
