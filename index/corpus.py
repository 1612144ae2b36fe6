"""Reading a corpus folder into documents.

Every file under the root is either a :class:`Document` or a :class:`Skipped` with its reason,
so a build can account for all of them. Formats are small functions registered in ``READERS``
by file extension; adding a format is adding one function.

Hidden files and folders (``.name``) are not part of a corpus, and neither are the paths
matched by the patterns of a ``.polyseekignore`` file at the root (one glob per line).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from polyseek.errors import CorpusError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
IGNORE_FILE = ".polyseekignore"
TITLE_MAX_CHARS = 120


@dataclass(frozen=True)
class Document:
    doc_id: str  # path relative to the corpus root, with '/' separators
    title: str
    text: str
    format: str
    content_hash: str  # sha256 of the text


@dataclass(frozen=True)
class Skipped:
    doc_id: str
    reason: str


class SkipDocument(Exception):
    """Raised by a reader for a file that cannot be indexed; the message is the reason."""


def read_corpus(root: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document | Skipped]:
    """Yield each file of ``root`` (recursively, in path order) as a Document or a Skipped."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {str(root)!r} does not exist or is not a folder: give the folder that holds your articles")
    ignore = _ignore_patterns(root)
    for path in corpus_files(root, ignore):
        doc_id = path.relative_to(root).as_posix()
        try:
            yield read_document(path, doc_id, max_bytes)
        except SkipDocument as skip:
            yield Skipped(doc_id, str(skip))
        except OSError as exc:
            yield Skipped(doc_id, f"unreadable: {exc.strerror or exc}")


def corpus_files(root: Path, ignore: list[str]) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or any(fnmatch.fnmatch(rel, pat) for pat in ignore):
                continue
            files.append(path)
    return files


def read_document(path: Path, doc_id: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise SkipDocument(f"unsupported format {path.suffix or '(no extension)'!r}; Polyseek reads {known}")
    size = path.stat().st_size
    if size > max_bytes:
        raise SkipDocument(f"too large: {size:,} bytes, the limit is {max_bytes:,}")
    return document_from_bytes(path.read_bytes(), doc_id)


def document_from_bytes(data: bytes, doc_id: str) -> Document:
    """The Document a file named ``doc_id`` holding ``data`` becomes, or SkipDocument saying why
    it cannot be indexed (unsupported format, binary, undecodable, empty)."""
    path = Path(doc_id)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise SkipDocument(f"unsupported format {path.suffix or '(no extension)'!r}; Polyseek reads {known}")
    title, text = reader(data)
    text = clean_text(text)
    if not has_visible_text(text):
        raise SkipDocument("empty: no visible text")
    title = shorten(title or "") or path.stem
    return Document(doc_id, title, text, path.suffix.lower().lstrip("."), hashlib.sha256(text.encode("utf-8")).hexdigest())


def decode(data: bytes) -> str:
    """Bytes → text: UTF-8 (BOM or not), UTF-16 with a BOM, else the encoding charset-normalizer
    finds. Binary data and bytes no encoding explains raise SkipDocument."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SkipDocument("undecodable: starts with a UTF-16 mark but is not UTF-16") from None
    if b"\x00" in data[:8192]:
        raise SkipDocument("binary: contains NUL bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise SkipDocument("undecodable: not UTF-8, and no other text encoding fits")
    return str(best)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Normalize newlines and drop control characters (NUL included), keeping everything else."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def has_visible_text(text: str) -> bool:
    """True when some character is neither white space nor an invisible format mark
    (zero-width spaces and joiners, direction marks, BOMs: Unicode categories Z*, C*)."""
    return any(not unicodedata.category(ch).startswith(("Z", "C")) for ch in text if not ch.isspace())


def shorten(line: str, limit: int = TITLE_MAX_CHARS) -> str:
    line = " ".join(line.split())
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else line[:limit]) + "…"


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def read_txt(data: bytes) -> tuple[str, str]:
    text = decode(data)
    return _first_line(text), text


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def read_md(data: bytes) -> tuple[str, str]:
    text = decode(data)
    heading = _HEADING.search(text)
    return (heading.group(1) if heading else _first_line(text)), text


def read_html(data: bytes) -> tuple[str, str]:
    from index.html_reader import read_html as read

    return read(data)


def read_pdf(data: bytes) -> tuple[str, str]:
    from index.pdf_reader import read_pdf as read

    return read(data)


READERS: dict[str, Callable[[bytes], tuple[str, str]]] = {
    ".txt": read_txt, ".md": read_md, ".html": read_html, ".htm": read_html, ".pdf": read_pdf,
}


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
