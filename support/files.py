"""File plumbing: atomic writes (readers never see half a file), checked downloads, reading text."""
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from support.cli import UsageError, unwritable


def make_dir(path):
    """mkdir -p `path`, or one line saying why it cannot be made (a read-only disk, /proc), not a traceback."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot make the folder {path}: {e.strerror or e}") from None


def atomic_write(path, write):
    """write(tmp_path) then rename: readers see the old file or the new one, never half of one."""
    path = Path(path)
    try:  # where the file goes must be a folder we can write: else one line, not a traceback
        path.parent.mkdir(parents=True, exist_ok=True)
        # keep the extension: writers such as Pillow pick the format from it
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        write(tmp)  # its own errors (a download's, say) pass through as they are
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        try:
            os.replace(tmp, path)
        except OSError as e:  # e.g. a folder already has the file's name
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# What the images written here carry (PNG: the "Software" text chunk; GIF: the comment): a file a command here
# made. Such a file may be written again; any other file at an output path is replaced only with --force.
MARK = "tiny-dllm"


def made_here(path):
    """True if the image at `path` was written by a command here (it carries MARK)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return MARK in str(im.info.get("Software", "")) or MARK.encode() in im.info.get("comment", b"")
    except Exception:  # not an image, unreadable: not ours
        return False


def check_output(path, suffix, force=False, flag="--out"):
    """An output file, checked before any work starts: its extension, a folder that can be written, and no file
    there that a command here did not make (unless force). Returns the path."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise UsageError(f"{flag} {path}: needs a file name ending in {suffix}")
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory: name a {suffix} file")
    if path.exists() and not force and not made_here(path):
        raise UsageError(f"{flag} {path} already exists and was not made here: choose another name, or add "
                         "--force to replace it")
    if why := unwritable(path.parent):
        raise UsageError(f"{flag} {path}: {why}")
    return path


RECORD = ".made_here.json"  # in a data folder: the sha256 of each file a command here wrote in it


def written_here(folder):
    """{file name: sha256} of the files a command here wrote in `folder` (record_written)."""
    try:
        return json.loads((Path(folder) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no record yet, or a torn one: nothing is known to be ours
        return {}


def record_written(path):
    """Note in its folder's record that a command here wrote `path`, as it is now."""
    path = Path(path)
    made = written_here(path.parent) | {path.name: sha256_file(path)}
    write_text(path.parent / RECORD, json.dumps(made, indent=1, sort_keys=True) + "\n")


def check_out_dir(folder, outputs, flag="--out-dir"):
    """A results or data folder, checked before any work starts: none of the files it will write may be there
    unless a command here made it. `outputs` maps each file name to what its first lines say when a bench wrote
    it (its command, or its CSV header); None for an image, which carries MARK; RECORD for text with no room for
    a mark (a corpus: a line in it would be trained on), known by its sha256 in the folder's record."""
    made = written_here(folder)
    for name, sign in outputs.items():
        path = Path(folder) / name
        if path.is_dir():
            raise UsageError(f"{flag} {folder}: {name} in it is a directory, where a file goes: choose another folder")
        if not path.exists():
            continue
        if sign is None:
            ours = made_here(path)
        elif sign == RECORD:
            ours = made.get(name) == sha256_file(path)  # and not changed since
        else:
            try:
                with open(path, "rb") as f:
                    ours = sign in f.read(8192).decode("utf-8", errors="replace")
            except OSError:  # unreadable: it cannot be shown to be ours
                ours = False
        if not ours:
            raise UsageError(f"{flag} {folder} already holds {name}, which a command here did not make: choose "
                             "another folder, or move that file away")


def save_figure(fig, path, dpi=110):
    """A matplotlib figure as a PNG, atomically, marked as made here."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": MARK}))


def write_text(path, text):
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(url, dest, sha256=None, timeout=30):
    """Download url to dest with a progress bar, check sha256, write atomically. Errors -> UsageError."""
    from tqdm import tqdm

    dest = Path(dest)
    print(f"downloading {url} -> {dest}")

    def fetch(tmp):
        h = hashlib.sha256()
        req = urllib.request.Request(url, headers={"User-Agent": "tiny-dllm (educational)"})
        with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as f:
            size = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        if sha256 and h.hexdigest() != sha256:
            raise UsageError(f"checksum mismatch for {url}: got sha256 {h.hexdigest()}, expected {sha256}")

    try:
        atomic_write(dest, fetch)
    except urllib.error.HTTPError as e:
        raise UsageError(f"cannot download {url} (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UsageError(f"cannot download {url} ({reason})") from None
    return dest


def read_bytes(path, what="file"):
    """The bytes of a file; a missing file, a directory or an unreadable one -> UsageError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a {what}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def data_folder(folder, noun, maker):
    """folder as a Path if it holds train.txt and val.txt; else one line on how to make them
    (maker: the script that writes such a folder, as `python maker --out folder`)."""
    folder = Path(folder)
    if not all((folder / f"{split}.txt").is_file() for split in ("train", "val")):
        raise UsageError(f"no {noun} in {folder}: " + ("a file, not a folder" if folder.is_file()
                         else f"make them with `python {maker} --out {folder}`"))
    return folder


def read_text(path):
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, which some editors write, is not text
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text (byte {e.start})") from None
    if not text:
        raise UsageError(f"{path} is empty")
    return text


def checked_text(path, url, sha256, name):
    """A text shipped with the repository (path), checked against its sha256; if it was deleted, downloaded again
    from url. A changed file is refused with one line (the results were measured on the original)."""
    path = Path(path)
    if not path.exists():
        try:
            download(url, path, sha256)
        except UsageError as e:
            raise UsageError(f"{e}; offline? pass --data FILE with any UTF-8 text") from None
    elif sha256_file(path) != sha256:
        raise UsageError(f"{path} is not the {name} text (sha256 differs): delete it to download it again, or pass "
                         "your own file with --data")
    return read_text(path)
