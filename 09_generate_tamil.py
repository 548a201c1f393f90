"""Lesson 09: generate Tamil with the model of 08: the flags of 06_generate.py (prompting, infilling, --gif).

    python 09_generate_tamil.py --steps 64 --len 120
    python 09_generate_tamil.py --prompt "அகர முதல" --show-steps
    python 09_generate_tamil.py --template "யாதும் ஊரே ______ கேளிர்" --gif kural.gif

GIFs need a Tamil font (Debian/Ubuntu: `sudo apt install fonts-lohit-taml`; or Noto Sans Tamil) and
matplotlib >= 3.11, which shapes complex scripts; older versions draw vowel signs in the wrong place.
"""
import sys
from importlib import import_module
from pathlib import Path

from support.cli import ArgumentParser, run_cli

gen = import_module("06_generate")
ROOT = Path(__file__).resolve().parent


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
    print("no Tamil font found: the GIF will show boxes (install fonts-lohit-taml or Noto Sans Tamil)",
          file=sys.stderr)
    return None


def main(argv=None):
    args = gen.add_generate_args(ArgumentParser(description=__doc__), ROOT / "checkpoints" / "tamil",
                                 shipped="thirukkural-dllm").parse_args(argv)
    return gen.generate_cli(args, font=tamil_font() if args.gif else None)


if __name__ == "__main__":
    run_cli(main)
