"""Reading a corpus folder into documents.

Every file under the root is either a :class:`Document` or a :class:`Skipped` with its reason,
so a build can account for all of them. The formats are read by :mod:`index.readers` (one
module per format, dispatched by extension); this module turns what they find into Documents.

Hidden files and folders (``.name``) are not part of a corpus, and neither are the paths
matched by the patterns of a ``.polyseekignore`` file at the root (one glob per line).

A corpus is the folder's own regular files: a link that leaves the folder, a link to a folder, a
FIFO or a device is reported and never opened for reading (a FIFO would block, ``/dev/zero``
never ends), and no file is read past its byte limit. Each document has budgets of bytes,
characters and reading time (:mod:`index.limits`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from index.limits import DEFAULT, Limits, over
from index.manifest import open_unfollowed
from index.readers import EXTENSIONS, READERS, RECORD_READERS, Parsed, SkipDocument, decode
from index.readers.text import first_line
from polyseek.errors import CorpusError

DEFAULT_MAX_BYTES = DEFAULT.max_bytes
IGNORE_FILE = ".polyseekignore"
TITLE_MAX_CHARS = 120
URL_MAX_CHARS = 2048


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


@dataclass(frozen=True)
class Skipped:
    doc_id: str
    reason: str


def read_corpus(root: str | os.PathLike, max_bytes: int | None = None,
                fields: dict[str, str] | None = None, limits: Limits | None = None) -> Iterator[Document | Skipped]:
    """Yield each file of ``root`` (recursively, in path order) as a Document or a Skipped; a
    JSONL or CSV export yields one per record. ``fields`` renames export columns (see records).
    ``limits``: the budgets of each document (default: :meth:`Limits.resolve`); ``max_bytes``
    overrides its byte limit."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {str(root)!r} does not exist or is not a folder: give the folder that holds your articles")
    limits = (limits or Limits.resolve()).with_(max_bytes=max_bytes)
    real_root = os.path.realpath(root)
    ignore = _ignore_patterns(root, real_root)
    for path in corpus_files(root, ignore):
        doc_id = scrub(path.relative_to(root).as_posix())  # bytes not UTF-8 in a name: U+FFFD
        try:
            data = read_regular_file(path, real_root, limits.max_bytes, limits)
            yield from documents_from_bytes(data, doc_id, fields, limits)
        except SkipDocument as skip:
            yield Skipped(doc_id, str(skip))
        except OSError as exc:
            yield Skipped(doc_id, f"unreadable: {exc.strerror or exc}")


def corpus_files(root: Path, ignore: list[str]) -> list[Path]:
    """The corpus's files in path order, and the links to folders it holds (reported, not followed)."""
    return [root / rel for rel in corpus_paths(root, ignore)]


def corpus_stats(root: Path, ignore: list[str]) -> list[tuple[str, int, int]]:
    """:func:`corpus_paths` with each file's size and modification time (ns; -1 and -1 when it
    cannot be stat'ed), in the same order, from one ``os.scandir`` per folder: an update stats
    the whole corpus on every run, and this is the cheap way (no path joins, no second walk)."""
    out: list[tuple[str, int, int]] = []

    def visit(path: str, prefix: str) -> None:
        try:
            with os.scandir(path) as listing:
                found = list(listing)
        except OSError:
            return
        dirs, files = [], []
        for entry in found:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir and entry.is_symlink():  # a link to a folder is listed as a file, never followed
                files.append(entry)
            elif is_dir:
                dirs.append(entry)
            else:
                files.append(entry)
        for entry in sorted(files, key=lambda e: e.name):
            rel = prefix + entry.name
            if entry.name.startswith(".") or (ignore and any(fnmatch.fnmatch(rel, pat) for pat in ignore)):
                continue
            try:
                info = entry.stat()
                out.append((rel, info.st_size, info.st_mtime_ns))
            except OSError:
                out.append((rel, -1, -1))
        for entry in sorted(dirs, key=lambda e: e.name):
            if not entry.name.startswith("."):
                visit(entry.path, prefix + entry.name + "/")

    visit(os.fspath(root), "")
    return out


def corpus_paths(root: Path, ignore: list[str]) -> list[str]:
    """:func:`corpus_files` as paths relative to ``root`` ('/' separators), without making a
    Path of each (an update lists a large corpus on every run)."""
    top = os.fspath(root)
    files = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in links]
        prefix = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        for name in sorted(filenames + [d for d in links if not d.startswith(".")]):
            rel = prefix + name
            if name.startswith(".") or (ignore and any(fnmatch.fnmatch(rel, pat) for pat in ignore)):
                continue
            files.append(rel)
    return files


def read_regular_file(path: Path, real_root: str, max_bytes: int, limits: Limits | None = None) -> bytes:
    """The bytes of ``path`` when it is a regular file inside the folder ``real_root`` (a real
    path) of at most ``max_bytes``; SkipDocument otherwise. A FIFO or device is never read (it is
    opened without blocking, then refused), and the byte limit holds while reading, whatever the
    file's size said."""
    limits = (limits or DEFAULT).with_(max_bytes=max_bytes)
    target = path
    if os.path.islink(path):
        real = os.path.realpath(path)
        if os.path.commonpath([real, real_root]) != real_root:
            raise SkipDocument(f"a link to {scrub(real)!r}, outside the corpus folder: not read "
                               "(copy the file into the folder to index it)")
        target = Path(real)
    fd, info = open_unfollowed(target)
    try:
        if not stat.S_ISREG(info.st_mode):
            kind = ("a folder reached through a link (links to folders are not followed)" if stat.S_ISDIR(info.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or
                    stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
            raise SkipDocument(f"not a regular file: {kind}; only files are read")
        if info.st_size > max_bytes:
            raise SkipDocument(over("max_bytes", limits, f"{info.st_size:,} bytes"))
        parts, total = [], 0
        while total <= max_bytes:
            block = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not block:
                break
            parts.append(block)
            total += len(block)
        if total > max_bytes:
            raise SkipDocument(over("max_bytes", limits, f"more than {max_bytes:,} bytes read"))
        return b"".join(parts)
    finally:
        os.close(fd)


_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """``text`` with lone surrogates (JSON's ``"\\ud83d"``, undecodable file-name bytes) replaced
    by U+FFFD: they are not Unicode text, and SQLite, UTF-8 and the model refuse them."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def documents_from_bytes(data: bytes, doc_id: str, fields: dict[str, str] | None = None,
                         limits: Limits | None = None) -> list[Document | Skipped]:
    """What a file named ``doc_id`` holding ``data`` becomes: one Document (or a SkipDocument
    raised with the reason) for an article format, one Document or Skipped per record for an
    export (JSONL, CSV; ``fields`` renames its columns)."""
    if Path(doc_id).suffix.lower() in RECORD_READERS:
        return list(documents_from_records(data, doc_id, fields, limits))
    return [document_from_bytes(data, doc_id, limits)]


def document_from_bytes(data: bytes, doc_id: str, limits: Limits | None = None) -> Document:
    """The Document a file named ``doc_id`` holding ``data`` becomes, or SkipDocument saying why
    it cannot be indexed (unsupported format, binary, undecodable, empty, over a budget)."""
    limits = limits or Limits.resolve()
    path = Path(doc_id)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        if path.suffix.lower() in RECORD_READERS:
            raise SkipDocument(f"{path.suffix} exports hold many articles: read them with documents_from_bytes")
        raise SkipDocument(f"unsupported format {path.suffix or '(no extension)'!r}; Polyseek reads {', '.join(EXTENSIONS)}")
    if len(data) > limits.max_bytes:
        raise SkipDocument(over("max_bytes", limits, f"{len(data):,} bytes"))
    found = reader(data, limits)
    if isinstance(found, tuple):
        found = Parsed(title=found[0], text=found[1])
    return make_document(found, doc_id, path.suffix.lower().lstrip("."), path.stem, limits)


def make_document(found: Parsed, doc_id: str, fmt: str, fallback_title: str, limits: Limits = DEFAULT) -> Document:
    """A Document from what a reader found: text cleaned (pages joined, their offsets kept),
    title shortened, date normalized, declared language normalized to ISO 639-1; SkipDocument
    when there is no visible text, too much of it, or the declared language is no language."""
    from polyseek.languages import normalize_tag

    chars = len(found.text or "") if found.pages is None else sum(len(p) for p in found.pages)
    if chars > limits.max_chars:
        raise SkipDocument(over("max_chars", limits, f"{chars:,} characters"))
    try:
        lang = normalize_tag(scrub(str(found.lang or "")))
    except ValueError as exc:
        raise SkipDocument(str(exc)) from None
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
    meta = lambda value: scrub(clean_text(str(value or "")))  # noqa: E731
    title = shorten(meta(found.title)) or shorten(first_line(text)) or scrub(fallback_title)
    return Document(scrub(doc_id), title, text, fmt, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    url=meta(found.url).strip()[:URL_MAX_CHARS], source=shorten(meta(found.source)),
                    date=iso_date(meta(found.date)), author=shorten(meta(found.author)), lang=lang, pages=pages)


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


def documents_from_records(data: bytes, doc_id: str, fields: dict[str, str] | None = None,
                           limits: Limits | None = None) -> Iterator[Document | Skipped]:
    """One Document or Skipped per record of an export. A record's id is ``file#id`` (``file#N``,
    its number, when it has none); a record whose id another record of the file already has is
    skipped with the reason, so ids stay unique."""
    from index.readers.records import RECORD_FIELDS, read_export

    limits = limits or Limits.resolve()
    names = {**RECORD_FIELDS, **(fields or {})}
    fmt = Path(doc_id).suffix.lower().lstrip(".")
    taken: dict[str, int] = {}  # record id -> number of the record that has it
    for number, record in read_export(data, fmt, names, limits):
        if isinstance(record, SkipDocument):
            yield Skipped(f"{doc_id}#{number}", str(record))
            continue
        given = record.get("id")
        rid = scrub(str(given if given not in (None, "") else number)).strip()[:200] or str(number)
        record_id = f"{doc_id}#{rid}"
        if rid in taken:
            how = "has" if given not in (None, "") else "has no id; its number"
            yield Skipped(record_id, f"record {number} {how} id {rid!r}, already the id of record {taken[rid]} of this file: "
                          "give each record its own id")
            continue
        taken[rid] = number
        if not has_visible_text(str(record.get("text") or "")):
            yield Skipped(record_id, f"record {number} has no text (field {names['text']!r})")
            continue
        found = Parsed(title=str(record.get("title") or ""), text=scrub(str(record["text"])),
                       url=str(record.get("url") or ""), source=str(record.get("source") or ""),
                       date=str(record.get("date") or ""), lang=str(record.get("lang") or ""))
        try:
            yield make_document(found, record_id, fmt, rid, limits)
        except SkipDocument as skip:
            yield Skipped(record_id, str(skip))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Normalize newlines, drop control characters (NUL included) and replace lone surrogates,
    keeping everything else."""
    return scrub(_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))


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


def _ignore_patterns(root: Path, real_root: str) -> list[str]:
    path = root / IGNORE_FILE
    if not os.path.lexists(path):
        return []
    try:
        data = read_regular_file(path, real_root, 1 << 20)
    except (SkipDocument, OSError):
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
