"""The catalog: the corpus as a version saw it, so an update reads only what changed.

For each file: its size, modification time and content digest; for each document it held (one
per file, or one per record of a JSONL/CSV export): its id, text hash, fingerprint (hash of
everything the index stores about it), what became of it when it was read ("ok", or the
reason it was skipped) and whether this version indexes it. An update stats every file; only a
file whose size or time changed is read, and re-processed only when its digest changed.
Stored in SQLite (``catalog.sqlite``), one per version.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import astuple, dataclass
from pathlib import Path

from polyseek.errors import IndexFormatError

SCHEMA = """
CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL);
CREATE TABLE docs (path BLOB NOT NULL, rec INTEGER NOT NULL, doc_id TEXT NOT NULL, content_hash TEXT NOT NULL,
                   fingerprint TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, indexed INTEGER NOT NULL,
                   PRIMARY KEY (path, rec));
"""
#: ``outcome`` of a document read and chunked; any other is a skip ("read": skipped while reading).
OK = "ok"
READ_SKIP = "read"


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    digest: str  # blake2b-256 of the bytes; "" when the file could not be read


@dataclass(frozen=True)
class Entry:
    rec: int  # place of the document in its file (0 for a file of one document)
    doc_id: str
    content_hash: str  # "" for a document skipped while reading
    fingerprint: str
    outcome: str  # OK, READ_SKIP, or "chunk" (skipped when chunked: no tokens, too many passages)
    reason: str
    indexed: bool = False


def fingerprint(doc) -> str:
    """A hash of everything the index stores about a document (its text by its hash)."""
    fields = [doc.doc_id, doc.title, doc.format, doc.content_hash, doc.url, doc.source, doc.date, doc.author,
              doc.lang, list(doc.pages)]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_catalog(path: Path, files: dict[bytes, FileState], docs: dict[bytes, list[Entry]]) -> None:
    con = sqlite3.connect(path)
    try:
        with con:
            con.executescript(SCHEMA)
            con.executemany("INSERT INTO files VALUES (?, ?, ?, ?)",
                            ((p, s.size, s.mtime_ns, s.digest) for p, s in files.items()))
            con.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            ((p, *astuple(e)[:-1], int(e.indexed)) for p, entries in docs.items() for e in entries))
    finally:
        con.close()


def read_catalog(path: Path) -> tuple[dict[bytes, FileState], dict[bytes, list[Entry]]]:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            files = {bytes(p): FileState(*rest) for p, *rest in con.execute("SELECT * FROM files")}
            docs: dict[bytes, list[Entry]] = {}
            for p, *rest, indexed in con.execute("SELECT * FROM docs ORDER BY path, rec"):
                docs.setdefault(bytes(p), []).append(Entry(*rest, bool(indexed)))
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise IndexFormatError(f"the catalog {path} is unreadable ({exc}): rebuild the index") from exc
    return files, docs
