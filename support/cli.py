"""Command-line plumbing: bad input becomes one line on stderr and exit status 2, never a traceback."""
import argparse
import math
import sys
from pathlib import Path


class UsageError(Exception):
    """Something the user can fix (a flag, a file, the network). Printed as one line; exit status 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the docstring's layout and shows every default that is a value (not None, not False)."""

    def _get_help_string(self, action):
        help = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "%(default)" not in help:
            help += " (default: %(default)s)"
        return help


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args_given(parser, argv=None):
    """parser.parse_args(argv), plus args.given: the set of flags (dests) the user actually typed.

    --resume needs it: a flag typed again must agree with the run being resumed; an untyped one is taken from it."""
    args = parser.parse_args(argv)
    defaults, set_defaults = [(a, a.default) for a in parser._actions], parser._defaults
    try:
        for a, _ in defaults:
            a.default = argparse.SUPPRESS  # now only typed flags land in the namespace
        parser._defaults = {}  # nor what set_defaults() put there
        args.given = set(vars(parser.parse_args(argv, namespace=argparse.Namespace())))
    finally:
        for a, d in defaults:
            a.default = d
        parser._defaults = set_defaults
    return args


def run_cli(main, argv=None):
    """Run main(argv); a UsageError becomes one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UsageError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)


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


def require(checks):
    """checks: (ok, message) pairs; the first that fails becomes a UsageError."""
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def non_negative_int(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def finite_float(s):
    """A float flag: 'inf' and 'nan' are refused where they are parsed, not found out by a traceback later."""
    v = float(s)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
    return v


def non_negative_float(s):
    v = finite_float(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def probability(s):
    """A confidence threshold or a rate: in (0, 1]."""
    v = finite_float(s)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {s}")
    return v


def positive_float(s):
    v = finite_float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v
