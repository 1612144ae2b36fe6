"""The catalog: the corpus as a version saw it, so an update reads only what changed.

For each file: its size, modification time and content digest; for each document it held (one
per file, or one per record of a JSONL/CSV export): its id, text hash, fingerprint (hash of
everything the index stores about it), what became of it when it was read ("ok", or the
reason it was skipped) and whether this version indexes it. An update stats every file; only a
file whose size or time changed is read, and re-processed only when its digest changed.
Stored in SQLite (``catalog.sqlite``), one per version. An update reads the rows of the files it
read again, and of the documents that share an id or a text with theirs (whose fate theirs
decides: a duplicate is indexed once, whichever comes first), never the whole table.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import NamedTuple

from index.sql_batches import select_in
from polyseek.errors import IndexFormatError

SCHEMA = """
CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL,
                    retry INTEGER NOT NULL);
CREATE TABLE summary (json TEXT NOT NULL);
CREATE TABLE docs (path BLOB NOT NULL, rec INTEGER NOT NULL, doc_id TEXT NOT NULL, content_hash TEXT NOT NULL,
                   fingerprint TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, indexed INTEGER NOT NULL,
                   PRIMARY KEY (path, rec));
CREATE INDEX docs_by_id ON docs(doc_id);
CREATE INDEX docs_by_text ON docs(content_hash);
"""
#: ``outcome`` of a document read and chunked; any other is a skip ("read": skipped while reading).
OK = "ok"
READ_SKIP = "read"


class FileState(NamedTuple):
    size: int
    mtime_ns: int
    digest: str  # blake2b-256 of the bytes; "" when the file could not be read
    retry: bool = False  # it could not be read for a passing reason: read it again, changed or not


class Entry(NamedTuple):
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


def write_catalog(path: Path, files: dict[bytes, FileState], docs: dict[bytes, list[Entry]], summary: dict,
                  previous: Path | None = None, dirty: set[bytes] | None = None) -> None:
    """``summary``: what an update that finds nothing changed reports (documents read and
    indexed, the skipped documents and why). With ``previous`` (the catalog of the version this
    one replaces), that catalog is copied and only the rows of the ``dirty`` files (read again,
    removed, or indexed differently) are rewritten: an update costs what changed."""
    import shutil

    if previous is not None and dirty is not None:
        shutil.copyfile(previous, path)
        rewrite = sorted(dirty)
    else:
        rewrite = None
    con = sqlite3.connect(path)
    try:
        with con:
            if rewrite is None:
                con.executescript(SCHEMA)
                chosen = list(files)
            else:
                con.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in rewrite))
                con.executemany("DELETE FROM docs WHERE path = ?", ((p,) for p in rewrite))
                con.execute("DELETE FROM summary")
                chosen = [p for p in rewrite if p in files]
            con.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)",
                            ((p, files[p].size, files[p].mtime_ns, files[p].digest, int(files[p].retry)) for p in chosen))
            con.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            ((p, *e[:-1], int(e.indexed)) for p in chosen for e in docs.get(p, [])))
            con.execute("INSERT INTO summary VALUES (?)", (json.dumps(summary, ensure_ascii=False),))
    finally:
        con.close()


def _query(path: Path, sql: str, params: tuple = (), values: list | None = None) -> list[tuple]:
    """The rows of ``sql``; with ``values``, its ``{}`` is a list of them, asked in batches on
    one connection (index.sql_batches)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute(sql, params).fetchall() if values is None else select_in(con, sql, values)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise IndexFormatError(f"the catalog {path} is unreadable ({exc}): rebuild the index") from exc


def read_files(path: Path) -> dict[bytes, FileState]:
    return {bytes(p): FileState(size, mtime, digest, bool(retry))
            for p, size, mtime, digest, retry in _query(path, "SELECT path, size, mtime_ns, digest, retry FROM files")}


_DOC_COLUMNS = "path, rec, doc_id, content_hash, fingerprint, outcome, reason, indexed"


def _entries(rows) -> dict[bytes, list[Entry]]:
    docs: dict[bytes, list[Entry]] = {}
    for p, rec, doc_id, content_hash, fp, outcome, reason, indexed in sorted(rows, key=lambda row: (bytes(row[0]), row[1])):
        docs.setdefault(bytes(p), []).append(Entry(rec, doc_id, content_hash, fp, outcome, reason, bool(indexed)))
    return docs


def read_docs(path: Path, paths=None) -> dict[bytes, list[Entry]]:
    """File → its documents' entries, in place order: every file's, or those of ``paths``."""
    if paths is None:
        return _entries(_query(path, f"SELECT {_DOC_COLUMNS} FROM docs"))
    return _entries(_query(path, f"SELECT {_DOC_COLUMNS} FROM docs WHERE path IN ({{}})", values=sorted(paths)))


def docs_sharing(path: Path, ids, hashes) -> dict[bytes, list[Entry]]:
    """The entries whose document id is one of ``ids`` or whose text hash is one of ``hashes``
    (by file, in place order)."""
    rows = set(_query(path, f"SELECT {_DOC_COLUMNS} FROM docs WHERE doc_id IN ({{}})", values=sorted(ids)))
    rows.update(_query(path, f"SELECT {_DOC_COLUMNS} FROM docs WHERE content_hash IN ({{}})", values=sorted(hashes)))
    return _entries(rows)


def read_summary(path: Path) -> dict:
    rows = _query(path, "SELECT json FROM summary")
    try:
        data = json.loads(rows[0][0]) if len(rows) == 1 else None
    except (ValueError, TypeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise IndexFormatError(f"the catalog {path} has no summary: rebuild the index")
    return data
