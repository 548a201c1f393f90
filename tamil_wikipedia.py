"""Modern Tamil from Tamil Wikipedia, for the Tamil corpus: random articles via the API, or
    the full dump.

    python tamil_wikipedia.py --api --limit 200 --merge   # ~200 random articles, then the corpus
    python tamil_wikipedia.py --dump --merge              # the whole pages-articles dump (large)

--api: MediaWiki's generator=random + prop=extracts&explaintext (a full extract comes one page per
  request), sequential requests with a descriptive User-Agent, maxlag=5, and backoff on rate limits
  and errors. Articles are appended to data/tamil/wikipedia_api.jsonl; a rerun skips page ids
  already saved.
--dump: downloads tawiki-latest-pages-articles.xml.bz2 (HTTP Range resume), checks the published
  sha1 when the sums file is reachable, and extracts text with wikiextractor (>= 3.0.8, run as a
  tool).
--merge: cleans the saved text into data/tamil/wikipedia.txt and rebuilds data/tamil/corpus.txt.
"""
import hashlib
import html
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib import import_module
from pathlib import Path

from support.cli import (
    ArgumentParser,
    UsageError,
    number,
    positive_float,
    positive_int,
    run_cli,
    unwritable,
)
from support.files import RECORD, atomic_write, check_out_dir, make_dir, record_written

tamil = import_module("tamil_dataset")

API_URL = "https://ta.wikipedia.org/w/api.php"
DUMP_URL = "https://dumps.wikimedia.org/tawiki/latest/tawiki-latest-pages-articles.xml.bz2"
SUMS_URL = "https://dumps.wikimedia.org/tawiki/latest/tawiki-latest-sha1sums.txt"
USER_AGENT = "tiny-dllm/1.0 (educational diffusion-LM tutorial; sequential requests) python-urllib"


def http_get(url, user_agent=USER_AGENT, timeout=30, headers=None):
    req = urllib.request.Request(url, headers={"User-Agent": user_agent, **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)


# ----------------------------------------------------------------------------------------------
# API
# ----------------------------------------------------------------------------------------------
def api_random_article(api_url, user_agent, timeout, retries=5, backoff=2.0, sleep=time.sleep):
    """One random main-namespace article {pageid, title, text}, retrying rate limits
    and server errors."""
    params = dict(action="query", format="json", formatversion="2", generator="random",
                  grnnamespace="0", grnlimit="1", prop="extracts", explaintext="1", maxlag="5")
    url = f"{api_url}?{urllib.parse.urlencode(params)}"
    for attempt in range(retries + 1):
        wait = backoff * 2**attempt
        try:
            with http_get(url, user_agent, timeout) as r:
                data = json.loads(r.read().decode("utf-8"))
            if "error" in data:  # maxlag and ratelimited come back as API errors
                if data["error"].get("code") not in ("maxlag", "ratelimited"):
                    why = data["error"].get("info", data["error"])
                    raise UsageError(f"Wikipedia API error: {why}")
            else:
                page = data["query"]["pages"][0]
                return {"pageid": int(page["pageid"]), "title": page["title"],
                        "text": page.get("extract", "")}
        except urllib.error.HTTPError as e:
            if e.code not in (429, 500, 502, 503, 504):
                raise UsageError(f"Wikipedia API: HTTP {e.code} from {api_url}") from None
            wait = float(e.headers.get("Retry-After") or wait)
        except (urllib.error.URLError, OSError) as e:
            offline = isinstance(getattr(e, "reason", e), (socket.gaierror, ConnectionRefusedError))
            # no network or no server: waiting cannot help, so say so at once
            if attempt == retries or offline:
                why = getattr(e, "reason", e)
                raise UsageError(f"cannot reach the Wikipedia API at {api_url} ({why})") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise UsageError(f"Wikipedia API: unexpected response from {api_url}") from None
        if attempt < retries:
            sleep(wait)
    raise UsageError(f"Wikipedia API at {api_url}: still failing after {retries} retries")


def saved_articles(path):
    """Articles already in the JSONL log; a torn last line (crash mid-write) is ignored."""
    out = {}
    if Path(path).exists():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                a = json.loads(line)
                out[a["pageid"]] = a
            except (ValueError, KeyError, TypeError):
                continue
    return out


def fetch_api(limit, path, api_url=API_URL, user_agent=USER_AGENT, timeout=30, max_requests=None,
              **kw):
    """Save `limit` new random articles to the JSONL log at `path`, one line each, resumably."""
    from tqdm import tqdm

    have = saved_articles(path)
    # drop a torn last line (a crash mid-write) so the next article starts a fresh line
    if Path(path).exists():
        raw = Path(path).read_bytes()
        if raw and not raw.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(raw.rfind(b"\n") + 1)
    new, requests = 0, 0
    max_requests = max_requests or 5 * limit
    with tqdm(total=limit, desc="articles") as bar:
        while new < limit and requests < max_requests:
            a = api_random_article(api_url, user_agent, timeout, **kw)
            requests += 1
            if a["pageid"] in have or not a["text"].strip():
                continue  # already saved (resume) or an empty page
            make_dir(Path(path).parent)  # at the first article: no network leaves no empty log
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps(a, ensure_ascii=False) + "\n")  # one whole line per write
                log.flush()
                os.fsync(log.fileno())
            have[a["pageid"]] = a
            new += 1
            bar.update(1)
    print(f"{new} new articles ({len(have)} saved in {path})")
    return new


# ----------------------------------------------------------------------------------------------
# Dump
# ----------------------------------------------------------------------------------------------
def download_resumable(url, dest, user_agent=USER_AGENT, timeout=60):
    """Download to dest, resuming a previous dest.part with an HTTP Range request."""
    from tqdm import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with http_get(url, user_agent, timeout, headers) as r:
            if have and r.status != 206:  # the server ignored the range: start again
                have = 0
            total = int(r.headers.get("Content-Length") or 0) + have or None
            with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B",
                                                               unit_scale=True,
                                                               desc=dest.name) as bar:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range past the end: the .part is already complete
            pass
        else:
            msg = f"cannot download {url} (HTTP {e.code}); {part} kept for resuming"
            raise UsageError(msg) from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", e)
        raise UsageError(f"cannot download {url} ({why}); rerun to resume") from None
    return part


def published_sha1(sums_url, filename, user_agent=USER_AGENT, timeout=30):
    """The sha1 the dump site publishes for filename, or None when the sums file cannot be had."""
    # the sums name dated files: tawiki-20261101-pages-articles...
    suffix = filename.split("-latest", 1)[-1]
    try:
        with http_get(sums_url, user_agent, timeout) as r:
            for line in r.read().decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) == 2 and (parts[1] == filename or parts[1].endswith(suffix)):
                    return parts[0]
    except (urllib.error.URLError, OSError):
        pass
    return None


def dump_name(url):
    """The file a dump URL downloads to: the last part of its path."""
    return Path(urllib.parse.urlparse(url).path).name


# Flag types. A file: or ftp: URL, or a typo, would only be retried for a minute; a URL that names
# no file would be saved as a file named as the folder.
http_url = number(str, lambda s: urllib.parse.urlsplit(s).scheme in ("http", "https"),
                  "an http(s) URL", "http_url")
dump_url = number(http_url, lambda s: dump_name(s).endswith(".bz2"), "the URL of a .xml.bz2 file",
                  "dump_url")


def fetch_dump(url, sums_url, dest_dir, user_agent=USER_AGENT):
    dest = Path(dest_dir) / dump_name(url)
    part = download_resumable(url, dest, user_agent)
    expected = published_sha1(sums_url, dest.name, user_agent)
    if expected:
        h = hashlib.sha1()
        with open(part, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != expected:
            part.unlink()
            raise UsageError(f"{url}: sha1 {h.hexdigest()} does not match the "
                             f"published {expected}; deleted")
        print(f"sha1 verified against {sums_url}")
    else:
        print(f"no published checksum found at {sums_url}: not verified", file=sys.stderr)
    os.replace(part, dest)
    record_written(dest)  # ours now: a later --dump may replace it, a learner's own file never
    return dest


def extract_dump(dump, out_jsonl):
    """wikiextractor (a tool, in its own process) -> one JSON article per line
    in out_jsonl, streamed.

    Its JSON goes to stdout (`-o -`): wikiextractor 3.0.8 leaves its per-directory
    output files empty."""
    cmd = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "--json", "-o", "-",
           "-q"]
    count = 0

    def write(tmp):
        nonlocal count
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot run wikiextractor ({e})") from None
        with open(tmp, "w", encoding="utf-8") as f:
            for line in proc.stdout:
                a = json.loads(line)
                a = {"pageid": int(a["id"]), "title": a["title"], "text": html.unescape(a["text"])}
                f.write(json.dumps(a, ensure_ascii=False) + "\n")
                count += 1
        err = proc.stderr.read()
        if proc.wait() != 0:
            if "No module named" in err:
                raise UsageError("the dump needs wikiextractor: pip install 'wikiextractor>=3.0.8'")
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
            raise UsageError(f"wikiextractor failed: {last}")

    atomic_write(out_jsonl, write)
    record_written(out_jsonl)
    print(f"extracted {count} articles -> {out_jsonl}")
    return saved_articles(out_jsonl)


# ----------------------------------------------------------------------------------------------
# Cleaning and merging
# ----------------------------------------------------------------------------------------------
def clean_article(text):
    """NFC, entities unescaped, section headings and lines without Tamil
    dropped, whitespace collapsed."""
    lines = []
    for line in html.unescape(tamil.nfc(text)).splitlines():
        line = " ".join(line.split())
        if line.startswith("==") or not tamil.TAMIL.search(line):
            continue
        lines.append(line)
    return "\n".join(lines)


def merge(data_dir):
    articles = {}
    for name in ("wikipedia_api.jsonl", "wikipedia_dump.jsonl"):
        articles.update(saved_articles(Path(data_dir) / name))
    if not articles:
        raise UsageError(f"no Wikipedia articles saved in {data_dir}: run with --api or --dump "
                         "first")
    texts = [t for t in (clean_article(a["text"]) for _, a in sorted(articles.items())) if t]
    tamil.write_source(Path(data_dir) / "wikipedia.txt", "\n\n".join(texts) + "\n")
    return tamil.combine(data_dir)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--api", action="store_true",
                   help="fetch random articles through the MediaWiki API")
    p.add_argument("--limit", type=positive_int, default=100, help="--api: new articles to fetch")
    p.add_argument("--dump", action="store_true",
                   help="download and extract the pages-articles dump")
    p.add_argument("--merge", action="store_true",
                   help="add the saved articles to the Tamil training corpus")
    p.add_argument("--api-url", type=http_url, default=API_URL, help="MediaWiki API endpoint")
    p.add_argument("--dump-url", type=dump_url, default=DUMP_URL,
                   help="pages-articles .xml.bz2 URL")
    p.add_argument("--sums-url", type=http_url, default=SUMS_URL,
                   help="the dump's published sha1 sums")
    p.add_argument("--user-agent", default=USER_AGENT,
                   help="User-Agent header (Wikimedia asks for a descriptive one)")
    p.add_argument("--timeout", type=positive_float, default=30, help="network timeout in seconds")
    p.add_argument("--out-dir", default=str(tamil.DATA_DIR), help="where to write")
    args = p.parse_args(argv)
    if not (args.api or args.dump or args.merge):
        p.error("say what to do: --api, --dump and/or --merge")
    out = Path(args.out_dir)
    if why := unwritable(out.absolute()):  # before any download, not at the write after it
        raise UsageError(f"--out-dir {out}: {why}")
    writes = ([dump_name(args.dump_url), "wikipedia_dump.jsonl"] if args.dump else []) + (
        ["wikipedia.txt", "corpus.txt"] if args.merge else [])
    check_out_dir(out, dict.fromkeys(writes, RECORD))  # no file of the user's written over
    if args.api:
        fetch_api(args.limit, out / "wikipedia_api.jsonl", args.api_url, args.user_agent,
                  args.timeout)
    if args.dump:
        dump = fetch_dump(args.dump_url, args.sums_url, out, args.user_agent)
        extract_dump(dump, out / "wikipedia_dump.jsonl")
    if args.merge:
        merge(out)


if __name__ == "__main__":
    run_cli(main)
