"""The passage store: documents and passages in SQLite (stdlib ``sqlite3``).

Passage ids are the ids of the vectors in FAISS. Every statement takes its values as
parameters; nothing from a document or a query is ever formatted into SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from polyseek.errors import IndexFormatError

SCHEMA = """
CREATE TABLE documents (
    doc_id       TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    format       TEXT NOT NULL,
    lang         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text         TEXT NOT NULL,
    url          TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL DEFAULT '',
    published    TEXT NOT NULL DEFAULT '',   -- ISO 8601, '' when unknown
    author       TEXT NOT NULL DEFAULT '',
    pages        TEXT NOT NULL DEFAULT '[]'  -- JSON list: character offset where each page starts
);
CREATE TABLE passages (
    passage_id   INTEGER PRIMARY KEY,
    doc_id       TEXT NOT NULL REFERENCES documents(doc_id),
    ordinal      INTEGER NOT NULL,
    start_char   INTEGER NOT NULL,
    end_char     INTEGER NOT NULL,
    lang         TEXT NOT NULL,
    n_tokens     INTEGER NOT NULL,
    text         TEXT NOT NULL
);
CREATE TABLE language_means (
    lang         TEXT PRIMARY KEY,
    vector       BLOB NOT NULL      -- float32, little-endian; see index.balance.language_means
);
CREATE TABLE passage_links (     -- index.margins: each pair in both directions
    a            INTEGER NOT NULL,
    b            INTEGER NOT NULL,
    margin       REAL NOT NULL,
    cosine       REAL NOT NULL,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE TABLE stories (              -- index.stories
    story_id     TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    size         INTEGER NOT NULL,
    languages    TEXT NOT NULL,     -- JSON object: documents per language
    first_date   TEXT NOT NULL,
    last_date    TEXT NOT NULL,
    first_lang   TEXT NOT NULL,
    representative TEXT NOT NULL
);
CREATE TABLE story_documents (
    doc_id       TEXT PRIMARY KEY,
    story_id     TEXT NOT NULL,
    lang         TEXT NOT NULL,
    published    TEXT NOT NULL,
    source       TEXT NOT NULL,
    best_passage INTEGER NOT NULL,
    links        INTEGER NOT NULL
);
CREATE INDEX passages_by_lang ON passages(lang);
CREATE INDEX passages_by_doc ON passages(doc_id, ordinal);
CREATE INDEX story_documents_by_story ON story_documents(story_id);
CREATE INDEX story_documents_by_lang ON story_documents(lang, story_id);
CREATE INDEX story_documents_by_source ON story_documents(lower(source), story_id);
CREATE INDEX stories_by_size ON stories(size DESC, last_date DESC);
CREATE INDEX stories_by_date ON stories(last_date DESC, size DESC);
"""


_COLUMNS = {
    "documents": ("doc_id", "title", "format", "lang", "content_hash", "text", "url", "source", "published", "author",
                  "pages"),
    "passages": ("passage_id", "doc_id", "ordinal", "start_char", "end_char", "lang", "n_tokens", "text"),
    "language_means": ("lang", "vector"),
}


@dataclass(frozen=True)
class DocumentRow:
    doc_id: str
    title: str
    format: str
    lang: str
    content_hash: str
    text: str
    url: str = ""
    source: str = ""
    published: str = ""
    author: str = ""
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class PassageRow:
    passage_id: int
    doc_id: str
    ordinal: int
    start: int
    end: int
    lang: str
    n_tokens: int
    text: str


def write_store(path: Path, documents: Iterable[DocumentRow], passages: Iterable[PassageRow],
                means: dict[str, np.ndarray], stories: Iterable = (), members: Iterable = (),
                links: tuple | None = None) -> None:
    """Create the store at ``path`` (which must not exist) in one transaction. ``stories`` and
    ``members``: :class:`index.stories.StoryRow` and ``StoryMember``; ``links``: arrays
    ``(a, b, margin, cosine)`` of linked passage pairs, each pair once."""
    con = sqlite3.connect(path)
    try:
        with con:
            con.executescript(SCHEMA)
            con.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            ((d.doc_id, d.title, d.format, d.lang, d.content_hash, d.text, d.url, d.source,
                              d.published, d.author, json.dumps(list(d.pages))) for d in documents))
            con.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            ((p.passage_id, p.doc_id, p.ordinal, p.start, p.end, p.lang, p.n_tokens, p.text)
                             for p in passages))
            con.executemany("INSERT INTO language_means VALUES (?, ?)",
                            ((lang, np.asarray(v, "<f4").tobytes()) for lang, v in means.items()))
            con.executemany("INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            ((s.story_id, s.title, s.size, json.dumps(s.languages), s.first_date, s.last_date,
                              s.first_lang, s.representative) for s in stories))
            con.executemany("INSERT INTO story_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ((m.doc_id, m.story_id, m.lang, m.published, m.source, m.best_passage, m.links)
                             for m in members))
            if links is not None:
                a, b, margin, cosine = (np.asarray(x).tolist() for x in links)
                con.executemany("INSERT INTO passage_links VALUES (?, ?, ?, ?)",
                                (row for x, y, m, c in zip(a, b, margin, cosine) for row in ((x, y, m, c), (y, x, m, c))))
    finally:
        con.close()


class PassageStore:
    """Read-only access to a store, safe to share between threads."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise IndexFormatError(f"the passage store {path} is missing: rebuild the index")
        try:
            self._con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            for table, columns in _COLUMNS.items():  # every column a query reads: a damaged store fails here
                self._con.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 0").fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"the passage store {path} is unreadable ({exc}): rebuild the index") from exc
        self._lock = threading.Lock()

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    def count_passages(self) -> int:
        return self._all("SELECT count(*) FROM passages")[0][0]

    def id_range(self) -> tuple[int | None, int | None]:
        """The smallest and largest passage id (rowids: read from the table's b-tree ends)."""
        # two queries: SQLite reads a lone min() or max() of the key from one end, both at once by a scan
        return (self._all("SELECT min(passage_id) FROM passages")[0][0], self._all("SELECT max(passage_id) FROM passages")[0][0])

    def count_documents(self) -> int:
        return self._all("SELECT count(*) FROM documents")[0][0]

    def language_counts(self) -> dict[str, int]:
        return dict(self._all("SELECT lang, count(*) FROM passages GROUP BY lang ORDER BY count(*) DESC, lang"))

    def ids_by_language(self) -> dict[str, np.ndarray]:
        out: dict[str, list[int]] = {}
        for pid, lang in self._all("SELECT passage_id, lang FROM passages ORDER BY passage_id"):
            out.setdefault(lang, []).append(pid)
        return {lang: np.asarray(ids, dtype=np.int64) for lang, ids in out.items()}

    def passage_texts(self) -> list[tuple[int, str, str]]:
        """(passage_id, lang, text) of every passage, in passage-id order."""
        return self._all("SELECT passage_id, lang, text FROM passages ORDER BY passage_id")

    def passage_languages(self) -> list[tuple[str, str]]:
        """(doc_id, lang) of every passage, in passage-id order."""
        return self._all("SELECT doc_id, lang FROM passages ORDER BY passage_id")

    def languages_of(self, ids) -> list[str]:
        """The language of each passage id, in the order given."""
        ids = [int(i) for i in ids]
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found.update(self._all(f"SELECT passage_id, lang FROM passages WHERE passage_id IN ({','.join('?' * len(part))})",
                                   tuple(part)))
        return [found[i] for i in ids]

    def ids_of_documents(self, doc_ids) -> dict[str, list[int]]:
        """doc_id → its passage ids, for those of ``doc_ids`` this store holds."""
        doc_ids = list(dict.fromkeys(doc_ids))
        out: dict[str, list[int]] = {}
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start : start + 500]
            for pid, doc in self._all(f"SELECT passage_id, doc_id FROM passages WHERE doc_id IN ({','.join('?' * len(part))}) "
                                      "ORDER BY passage_id", tuple(part)):
                out.setdefault(doc, []).append(pid)
        return out

    def all_documents(self) -> list[DocumentRow]:
        rows = self._all("SELECT doc_id, title, format, lang, content_hash, text, url, source, published, author, pages "
                         "FROM documents")
        return [DocumentRow(*r[:10], tuple(json.loads(r[10]))) for r in rows]

    def all_passages(self) -> list[PassageRow]:
        """Every passage, in passage-id order."""
        return [PassageRow(*r) for r in self._all(
            "SELECT passage_id, doc_id, ordinal, start_char, end_char, lang, n_tokens, text FROM passages ORDER BY passage_id")]

    def language_means(self) -> dict[str, np.ndarray]:
        return {lang: np.frombuffer(blob, "<f4").copy() for lang, blob in self._all("SELECT lang, vector FROM language_means")}

    def passages(self, ids: Iterable[int]) -> dict[int, tuple[PassageRow, str]]:
        """Passages by id, each with its document's title."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._all(
            "SELECT p.passage_id, p.doc_id, p.ordinal, p.start_char, p.end_char, p.lang, p.n_tokens, p.text, d.title "
            f"FROM passages p JOIN documents d ON d.doc_id = p.doc_id WHERE p.passage_id IN ({marks})", tuple(ids))
        return {r[0]: (PassageRow(*r[:8]), r[8]) for r in rows}

    def places(self, ids: Iterable[int]) -> dict[int, tuple[str, int]]:
        """(doc_id, ordinal) of passages by id (what ties are broken by; no text, no join)."""
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {r[0]: (r[1], r[2]) for r in self._all(
            f"SELECT passage_id, doc_id, ordinal FROM passages WHERE passage_id IN ({marks})", tuple(ids))}

    def document(self, doc_id: str) -> DocumentRow | None:
        rows = self._all("SELECT doc_id, title, format, lang, content_hash, text, url, source, published, author, pages "
                         "FROM documents WHERE doc_id = ?", (doc_id,))
        if not rows:
            return None
        *head, pages = rows[0]
        return DocumentRow(*head, tuple(json.loads(pages)))

    def document_meta(self, doc_ids) -> dict[str, tuple[str, str, str, str, tuple[int, ...]]]:
        """doc_id → (url, source, published, author, page offsets), for the given documents."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._all(f"SELECT doc_id, url, source, published, author, pages FROM documents WHERE doc_id IN ({marks})",
                         tuple(ids))
        return {r[0]: (r[1], r[2], r[3], r[4], tuple(json.loads(r[5]))) for r in rows}

    def ids_where(self, sources: list[str] | None = None, since: str | None = None,
                  until: str | None = None) -> np.ndarray:
        """Passage ids whose document is from one of ``sources`` (case-insensitive) and was
        published in [since, until] (ISO dates; a document without a date fails a date filter)."""
        sql, params = ["SELECT p.passage_id FROM passages p JOIN documents d ON d.doc_id = p.doc_id WHERE 1=1"], []
        if sources:
            sql.append(f"AND lower(d.source) IN ({','.join('?' * len(sources))})")
            params += [s.strip().lower() for s in sources]
        if since:
            sql.append("AND d.published != '' AND substr(d.published, 1, 10) >= ?")
            params.append(since)
        if until:
            sql.append("AND d.published != '' AND substr(d.published, 1, 10) <= ?")
            params.append(until)
        rows = self._all(" ".join(sql) + " ORDER BY p.passage_id", tuple(params))
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def ids_of_document(self, doc_id: str) -> np.ndarray:
        rows = self._all("SELECT passage_id FROM passages WHERE doc_id = ? ORDER BY passage_id", (doc_id,))
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def date_range(self) -> tuple[str, str] | None:
        lo, hi = self._all("SELECT min(published), max(published) FROM documents WHERE published != ''")[0]
        return (lo, hi) if lo else None

    def dated_documents(self) -> list[tuple[str, str]]:
        """(doc_id, published) of every document with a date."""
        return self._all("SELECT doc_id, published FROM documents WHERE published != ''")

    def sources(self) -> dict[str, int]:
        """Documents per source (site or publication), most first; documents without one left out."""
        return dict(self._all("SELECT source, count(*) FROM documents WHERE source != '' GROUP BY source "
                              "ORDER BY count(*) DESC, source"))

    # --- stories (index.stories) and passage links (index.margins) ---

    def has_stories(self) -> bool:
        return bool(self._all("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stories'"))

    def links_of(self, passage_id: int, limit: int) -> list[tuple[int, float, float]]:
        """(passage_id, margin, cosine) of the passages linked to ``passage_id``, strongest first."""
        return self._all("SELECT b, margin, cosine FROM passage_links WHERE a = ? ORDER BY margin DESC, b LIMIT ?",
                         (int(passage_id), int(limit)))

    def stories_of(self, doc_ids) -> dict[str, str]:
        """doc_id → story_id, for the given documents."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self._all(f"SELECT doc_id, story_id FROM story_documents WHERE doc_id IN ({marks})", tuple(ids)))

    def document_languages(self) -> dict[str, int]:
        """Documents per language, most first."""
        return dict(self._all("SELECT lang, count(*) FROM documents GROUP BY lang ORDER BY count(*) DESC, lang"))

    def list_stories(self, langs=None, sources=None, since=None, until=None, sort: str = "size",
                     limit: int = 100, min_size: int = 1) -> list[tuple]:
        """Rows of ``stories`` (see SCHEMA) matching the filters: a story qualifies when one of
        its documents is in ``langs`` / from ``sources``, and when its dated span meets
        [since, until]. ``sort``: "size" (largest, then latest) or "date" (latest first)."""
        sql, params = ["SELECT story_id, title, size, languages, first_date, last_date, first_lang, representative "
                       "FROM stories WHERE size >= ?"], [int(min_size)]
        if langs:
            sql.append(f"AND story_id IN (SELECT story_id FROM story_documents WHERE lang IN ({','.join('?' * len(langs))}))")
            params += list(langs)
        if sources:
            sql.append("AND story_id IN (SELECT story_id FROM story_documents "
                       f"WHERE lower(source) IN ({','.join('?' * len(sources))}))")
            params += [x.strip().lower() for x in sources]
        if since:
            sql.append("AND last_date != '' AND last_date >= ?")
            params.append(since)
        if until:
            sql.append("AND first_date != '' AND first_date <= ?")
            params.append(until)
        order = "size DESC, last_date DESC, story_id" if sort == "size" else "last_date DESC, size DESC, story_id"
        return self._all(" ".join(sql) + f" ORDER BY {order} LIMIT ?", (*params, int(limit)))

    def stories_by_id(self, story_ids) -> list[tuple]:
        """Rows of ``stories`` for the given ids (those that exist)."""
        ids = list(dict.fromkeys(story_ids))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._all("SELECT story_id, title, size, languages, first_date, last_date, first_lang, representative "
                         f"FROM stories WHERE story_id IN ({marks})", tuple(ids))

    def story_members(self, story_id: str) -> list[tuple]:
        """(doc_id, lang, published, source, best_passage, links) of the story's documents,
        earliest first (their titles and addresses are in the segments' stores)."""
        return self._all("SELECT doc_id, lang, published, source, best_passage, links FROM story_documents "
                         "WHERE story_id = ? ORDER BY published = '', published, lang, doc_id", (story_id,))

    def story(self, story_id: str) -> tuple[tuple | None, list[tuple]]:
        """The story's row and its members: (doc_id, lang, published, source, best_passage, links,
        title, url), earliest first."""
        head = self._all("SELECT story_id, title, size, languages, first_date, last_date, first_lang, representative "
                         "FROM stories WHERE story_id = ?", (story_id,))
        members = self._all(
            "SELECT s.doc_id, s.lang, s.published, s.source, s.best_passage, s.links, d.title, d.url "
            "FROM story_documents s JOIN documents d ON d.doc_id = s.doc_id WHERE s.story_id = ? "
            "ORDER BY s.published = '', s.published, s.lang, s.doc_id", (story_id,))
        return (head[0] if head else None), members

    def close(self) -> None:
        with self._lock:
            self._con.close()
