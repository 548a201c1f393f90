"""Command-line plumbing: bad input becomes one line on stderr and exit status 2, never a traceback."""
import argparse
import math
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """Something the user can fix (a flag, a file, the network). Printed as one line; exit status 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the docstring's layout and shows every default that is a value (not None, not False)."""

    def _get_help_string(self, action):
        help = action.help or ""
        # `is`, not `in`: 0 == False, and a default of 0 (--seed, --beta) is a value worth showing
        shown = all(action.default is not v for v in (None, False, argparse.SUPPRESS)) and action.option_strings
        if shown and "%(default)" not in help:
            help += " (default: %(default)s)"
        return help


class Subcommands(argparse._SubParsersAction):
    """Subcommands (`07_train_gpt.py generate ...`) that refuse the flags of the script's own mode typed before
    them: each flag acts in one mode, or is one error line as it is parsed."""

    def __call__(self, parser, namespace, values, option_string=None):
        typed = [a.option_strings[0] for a in parser._actions
                 if a.option_strings and a.dest != "help" and getattr(namespace, a.dest, a.default) != a.default]
        if typed:
            parser.error(f"{' '.join(typed)}: not a flag of {values[0]!r} (its flags go after it)")
        super().__call__(parser, namespace, values, option_string)


def subcommands(parser, names):
    """parser's subcommands, each with its own flags: -> add(name, help), which returns the new parser (it shows
    the script's docstring in --help, as the script does)."""
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(names) + "}")
    return lambda name, help: sub.add_parser(name, help=help, description=parser.description,
                                             formatter_class=parser.formatter_class)


def free_text(s):
    """A flag type for free text (a prompt, a suffix): the one kind of value that may be empty."""
    return s


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # --train is never read as --train-steps
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", Subcommands)

    def _check_value(self, action, value):
        # a word that is not a command is most often the value of a flag this mode lacks, read as the command
        if isinstance(action, Subcommands) and value not in action.choices:
            self.error(f"{value!r} is not a command ({', '.join(action.choices)}): is a flag before it not one "
                       "of this mode's? (--help lists them)")
        super()._check_value(action, value)

    def _get_value(self, action, arg_string):
        # An empty value is never a file, a number or a choice: `--data ""` (a shell variable left unset) is refused
        # here, not read as no --data at all and the default corpus trained on (or `--check ""` as no --check).
        # (A subcommand's own parser checks its own flags.)
        if arg_string == "" and action.type is not free_text and not isinstance(action, Subcommands):
            raise argparse.ArgumentError(action, "needs a value, got an empty string")
        return super()._get_value(action, arg_string)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args_given(parser, argv=None):
    """parser.parse_args(argv), plus args.given: the set of flags (dests) the user actually typed.

    --resume needs it: a flag typed again must agree with the run being resumed; an untyped one is taken from it.
    Subcommands (`07_train_gpt.py generate ...`) are parsed the same way: their flags count too."""
    args = parser.parse_args(argv)
    parsers = list(all_parsers(parser))
    saved = [([(a, a.default) for a in q._actions], q._defaults) for q in parsers]
    try:
        for q in parsers:
            for a in q._actions:
                a.default = argparse.SUPPRESS  # now only typed flags land in the namespace
            q._defaults = {}  # nor what set_defaults() put there
        args.given = set(vars(parser.parse_args(argv, namespace=argparse.Namespace())))
    finally:
        for q, (defaults, set_defaults) in zip(parsers, saved):
            for a, d in defaults:
                a.default = d
            q._defaults = set_defaults
    return args


def all_parsers(parser):
    """The parser and, depth first, the parsers of its subcommands."""
    yield parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in dict.fromkeys(a.choices.values()):  # aliases share a parser
                yield from all_parsers(sub)


def run_cli(main, argv=None):
    """Run main(argv); a UsageError becomes one line on stderr and exit status 2; Ctrl-C anywhere (a demo, a
    download, loading a model) one line and exit status 130. Training and sampling catch it first, to save their
    work or print the text so far (support.runtime)."""
    try:
        return main(argv)
    except UsageError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{Path(sys.argv[0]).name}: interrupted", file=sys.stderr)
        sys.exit(130)


def encode_or_fail(tokenizer, text, what):
    """Token ids of `text`; characters the tokenizer lacks become one line naming them all (exit status 2)."""
    try:
        return tokenizer.encode(text)
    except KeyError:  # the tokenizer's own check failed: only now look up what is missing, for the message
        missing = " ".join(repr(c) for c in tokenizer.unknown(text))
        raise UsageError(f"{what} has characters not in the model's vocabulary: {missing}") from None


def refuse_unused(args, uses, mode):
    """Every flag acts or is refused: the flags typed (args.given, from parse_args_given) that `mode` does not use,
    `uses` being the dests it does, become one line naming them."""
    unused = [f"--{d.replace('_', '-')}" for d in sorted(getattr(args, "given", set()) - set(uses))]
    if unused:
        raise UsageError(f"{' '.join(unused)} {'does' if len(unused) == 1 else 'do'} nothing in {mode}: drop "
                         f"{'it' if len(unused) == 1 else 'them'}")


def number(convert, ok, says, name):
    """A flag type: convert(s), then ok(value) or argparse's one line 'must be <says>, got <s>'."""

    def parse(s):
        v = convert(s)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {says}, got {s}")
        return v

    parse.__name__ = name  # argparse names the type in "invalid <name> value"
    return parse


# 'inf' and 'nan' are refused where they are parsed, not found out by a traceback later
finite_float = number(float, math.isfinite, "a finite number", "finite_float")
non_negative_float = number(finite_float, lambda v: v >= 0, ">= 0", "non_negative_float")
positive_float = number(finite_float, lambda v: v > 0, "> 0", "positive_float")
probability = number(finite_float, lambda v: 0 < v <= 1, "in (0, 1]", "probability")  # a threshold or a rate
non_negative_int = number(int, lambda v: v >= 0, ">= 0", "non_negative_int")
fraction = number(finite_float, lambda v: 0 <= v <= 1, "in [0, 1]", "fraction")  # a share, ends included
below_one = number(finite_float, lambda v: 0 <= v < 1, "in [0, 1)", "below_one")  # dropout, Adam's beta2
positive_int = number(int, lambda v: v >= 1, ">= 1", "positive_int")


def int_in(lo, hi):
    """A flag type: an int in [lo, hi] (a size past hi would only run out of memory or time)."""
    return number(int, lambda v: lo <= v <= hi, f"in [{lo}, {hi}]", "int_in")


# --seed: every generator here takes [0, 2**32) (torch.manual_seed overflows past 2**64, numpy past 2**32)
SEEDS = 2**32
random_seed = number(int, lambda v: 0 <= v < SEEDS, "in [0, 2**32)", "random_seed")
samples = int_in(1, 1024)  # --num-samples: sampled as one batch; 10**8 would need 200 GB of canvases


def unwritable(folder):
    """Why `folder` (made later if it is missing) cannot hold files, or None: the nearest part of it that exists is
    a file, or cannot be written. Checked before any work, by every command that writes."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} (permission denied)"
    return None


def out_dir(s):
    """A flag type for a folder results go to: refused where it is parsed, not after an hour of work."""
    why = unwritable(Path(s).absolute())
    if why:
        raise argparse.ArgumentTypeError(why)
    return s
