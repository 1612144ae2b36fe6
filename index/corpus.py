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
    doc_id: str  # path relative to the corpus root, with '/' separators ("file.jsonl#id" for a record)
    title: str
    text: str
    format: str
    content_hash: str  # sha256 of the text
    url: str = ""
    source: str = ""  # site or publication
    date: str = ""  # publication date, ISO 8601 ("2011-05-05" or with a time)
    author: str = ""
    lang: str = ""  # the language the file declares (JSONL/CSV "lang"); "" = identify it
    pages: tuple[int, ...] = ()  # PDF: character offset where each page starts


@dataclass
class Parsed:
    """What a reader found in a file (or a record): text and whatever metadata it has. ``pages``,
    when given, replaces ``text``: the pages are cleaned and joined, and their offsets kept."""

    title: str = ""
    text: str = ""
    url: str = ""
    source: str = ""
    date: str = ""
    author: str = ""
    lang: str = ""
    pages: list[str] | None = None


@dataclass(frozen=True)
class Skipped:
    doc_id: str
    reason: str


class SkipDocument(Exception):
    """Raised by a reader for a file that cannot be indexed; the message is the reason."""


def read_corpus(root: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
                fields: dict[str, str] | None = None) -> Iterator[Document | Skipped]:
    """Yield each file of ``root`` (recursively, in path order) as a Document or a Skipped; a
    JSONL or CSV export yields one per record. ``fields`` renames export columns (see records)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {str(root)!r} does not exist or is not a folder: give the folder that holds your articles")
    ignore = _ignore_patterns(root)
    for path in corpus_files(root, ignore):
        doc_id = path.relative_to(root).as_posix()
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise SkipDocument(f"too large: {size:,} bytes, the limit is {max_bytes:,}")
            yield from documents_from_bytes(path.read_bytes(), doc_id, fields)
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


def documents_from_bytes(data: bytes, doc_id: str, fields: dict[str, str] | None = None) -> list[Document | Skipped]:
    """What a file named ``doc_id`` holding ``data`` becomes: one Document (or a SkipDocument
    raised with the reason) for an article format, one Document or Skipped per record for an
    export (JSONL, CSV; ``fields`` renames its columns)."""
    if Path(doc_id).suffix.lower() in RECORD_READERS:
        return list(documents_from_records(data, doc_id, fields))
    return [document_from_bytes(data, doc_id)]


def document_from_bytes(data: bytes, doc_id: str) -> Document:
    """The Document a file named ``doc_id`` holding ``data`` becomes, or SkipDocument saying why
    it cannot be indexed (unsupported format, binary, undecodable, empty)."""
    path = Path(doc_id)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        if path.suffix.lower() in RECORD_READERS:
            raise SkipDocument(f"{path.suffix} exports hold many articles: read them with documents_from_bytes")
        raise SkipDocument(f"unsupported format {path.suffix or '(no extension)'!r}; Polyseek reads {', '.join(EXTENSIONS)}")
    found = reader(data)
    if isinstance(found, tuple):
        found = Parsed(title=found[0], text=found[1])
    return make_document(found, doc_id, path.suffix.lower().lstrip("."), path.stem)


def make_document(found: Parsed, doc_id: str, fmt: str, fallback_title: str) -> Document:
    """A Document from what a reader found: text cleaned (pages joined, their offsets kept),
    title shortened, date normalized; SkipDocument when there is no visible text."""
    pages: tuple[int, ...] = ()
    if found.pages is not None:
        cleaned = [clean_text(p).strip() for p in found.pages]
        offsets, parts, pos = [], [], 0
        for page in cleaned:
            offsets.append(pos)
            parts.append(page)
            pos += len(page) + len(PAGE_BREAK)
        text, pages = PAGE_BREAK.join(parts), tuple(offsets)
    else:
        text = clean_text(found.text or "")
    if not has_visible_text(text):
        raise SkipDocument("empty: no visible text")
    title = shorten(found.title or "") or shorten(_first_line(text)) or fallback_title
    return Document(doc_id, title, text, fmt, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    url=(found.url or "").strip(), source=shorten(found.source or ""), date=iso_date(found.date),
                    author=shorten(found.author or ""), lang=(found.lang or "").strip().lower()[:3], pages=pages)


#: Pages of a PDF are joined by a blank line, so sentences never run across a page break.
PAGE_BREAK = "\n\n"


def iso_date(value) -> str:
    """An ISO 8601 date (or date and time) from what a file says; "" when it says nothing usable."""
    from datetime import datetime

    value = str(value or "").strip()
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return parsed.date().isoformat() if len(value) <= 10 else parsed.isoformat()


def documents_from_records(data: bytes, doc_id: str, fields: dict[str, str] | None = None) -> Iterator[Document | Skipped]:
    from index.record_reader import RECORD_FIELDS, read_export

    names = {**RECORD_FIELDS, **(fields or {})}
    fmt = Path(doc_id).suffix.lower().lstrip(".")
    for number, record in read_export(data, fmt, names):
        if isinstance(record, SkipDocument):
            yield Skipped(f"{doc_id}#{number}", str(record))
            continue
        rid = str(record.get("id") or number)
        record_id = f"{doc_id}#{rid}"
        if not has_visible_text(str(record.get("text") or "")):
            yield Skipped(record_id, f"record {number} has no text (field {names['text']!r})")
            continue
        found = Parsed(title=str(record.get("title") or ""), text=str(record["text"]), url=str(record.get("url") or ""),
                       source=str(record.get("source") or ""), date=str(record.get("date") or ""),
                       lang=str(record.get("lang") or ""))
        try:
            yield make_document(found, record_id, fmt, rid)
        except SkipDocument as skip:
            yield Skipped(record_id, str(skip))


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


READERS: dict[str, Callable[[bytes], "tuple[str, str] | Parsed"]] = {
    ".txt": read_txt, ".md": read_md, ".html": read_html, ".htm": read_html, ".pdf": read_pdf,
}
#: Exports holding one article per record (index/record_reader.py).
RECORD_READERS = (".jsonl", ".csv")
#: Every extension the corpus reads.
EXTENSIONS = tuple(sorted({*READERS, *RECORD_READERS}))


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
