"""Saved searches that alert: watches and their matches, kept in the index folder's state.

::

    INDEX_DIR/state.sqlite     watches and matches (SQLite, WAL): outside every version folder,
                               so a build, an update or a failed update never touches them

Every update calls :func:`evaluate_update` once the new version is in service, with the
passages it added or changed (texts the previous version did not hold). Each watch's query is
encoded by the index's model and scored against them with the language-balanced score the
index stores (``q·(p − mean(language))``: the language's typical similarity taken off; step 1
of index.balance), divided by how widely that query's scores spread over the whole language's
passages (:func:`language_spread`). (Not the ranking margin of step 2, over the query's nearest
passages: when a subject already fills those, a new report on it would not stand out.) This *standardized* score says how far a passage stands out from
what its language typically scores for the query, so one threshold fires as readily in every
language. A passage at or above it is recorded once per watch (keyed by document and passage
text) with when it was found.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from polyseek.errors import PolyseekError, QueryError
from polyseek.languages import language_codes

STATE = "state.sqlite"
MODES = ("auto", "dense", "hybrid")
#: Standardized score at or above which a passage matches a watch (and counts on a timeline),
#: in standard deviations of the query's scores in the passage's language: about the best F1 of
#: "a question fires on its own paragraph, in every language" on XQuAD (9 languages, every
#: question against every paragraph; bundled model; benchmarks/watch_threshold.py, BENCHMARKS.md).
DEFAULT_THRESHOLD = 3.5
#: Passages per language whose scores estimate a query's spread there (a seeded sample).
SPREAD_SAMPLE = 2000
#: A language with few passages borrows this many passages' worth of the corpus-wide spread.
SPREAD_PRIOR = 20
#: A watch's query is a question, not an article.
MAX_WATCH_QUERY = 2000
#: New passages scored per step (bounds memory when an update re-embeds a whole corpus).
BATCH = 8192

SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    watch_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    query      TEXT NOT NULL,
    langs      TEXT NOT NULL DEFAULT '[]',     -- JSON list of ISO 639-1 codes; [] = every language
    sources    TEXT NOT NULL DEFAULT '[]',     -- JSON list of source names; [] = every source
    mode       TEXT NOT NULL DEFAULT 'auto',
    threshold  REAL NOT NULL,
    created_at TEXT NOT NULL,
    seen_match INTEGER NOT NULL DEFAULT 0      -- matches with a larger id are "new"
);
CREATE TABLE IF NOT EXISTS matches (
    match_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id   INTEGER NOT NULL REFERENCES watches(watch_id) ON DELETE CASCADE,
    doc_id     TEXT NOT NULL,
    text_hash  TEXT NOT NULL,
    title      TEXT NOT NULL,
    lang       TEXT NOT NULL,
    text       TEXT NOT NULL,
    score      REAL NOT NULL,                 -- language-balanced: q·(p − mean_L)
    z          REAL NOT NULL,                 -- standardized: what the threshold applies to
    cosine     REAL NOT NULL,
    start_char INTEGER NOT NULL,
    end_char   INTEGER NOT NULL,
    url        TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL DEFAULT '',
    published  TEXT NOT NULL DEFAULT '',
    version    TEXT NOT NULL,
    found_at   TEXT NOT NULL,
    UNIQUE (watch_id, doc_id, text_hash)
);
CREATE INDEX IF NOT EXISTS matches_by_watch ON matches(watch_id, match_id);
"""


@dataclass(frozen=True)
class Watch:
    watch_id: int
    query: str
    langs: list[str]
    sources: list[str]
    mode: str
    threshold: float
    created_at: str
    new: int = 0  # matches found since the watch was last looked at
    matches: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Match:
    match_id: int
    watch_id: int
    doc_id: str
    title: str
    lang: str
    text: str
    score: float  # language-balanced: q·(p − mean_L), as the index stores passages
    z: float  # standardized: score / spread of the query's scores in the language (the threshold's)
    cosine: float
    start: int
    end: int
    url: str
    source: str
    date: str
    version: str
    found_at: str

    def to_dict(self) -> dict:
        return asdict(self)


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class WatchStore:
    """Watches and matches of one index folder. Each call opens its own connection, so one store
    may be shared by threads, and several processes may use the same file."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.path = self.index_dir / STATE

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def _connect(self) -> sqlite3.Connection:
        from index.manifest import regular_file_size

        self.index_dir.mkdir(parents=True, exist_ok=True)
        # Never opened through a link, a FIFO or a device: it could block or never end.
        if os.path.lexists(self.path) and regular_file_size(self.path) is None:
            raise PolyseekError(f"the watch state {self.path} is not a regular file: move it aside to start with no "
                                "watches")
        try:
            con = sqlite3.connect(self.path, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise PolyseekError(f"the watch state {self.path} is unreadable ({exc}): move it aside to start "
                                "with no watches") from exc
        return con

    def add(self, query: str, langs=None, sources=None, mode: str = "auto",
            threshold: float | None = None) -> Watch:
        query = " ".join(str(query or "").split())
        if not query:
            raise QueryError("the watch's query is empty: give the words to watch for")
        if len(query) > MAX_WATCH_QUERY:
            raise QueryError(f"the watch's query has {len(query)} characters: keep it to {MAX_WATCH_QUERY}")
        if mode not in MODES:
            raise QueryError(f"watch mode {mode!r} is unknown: use one of {', '.join(MODES)}")
        langs = language_codes(langs)
        sources = sorted({str(s).strip() for s in sources or [] if str(s).strip()})
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not -100.0 <= threshold <= 100.0:
            raise QueryError(f"threshold {threshold} is out of range: it is in standard deviations, "
                             f"between -100 and 100 (the default is {DEFAULT_THRESHOLD})")
        with closing(self._connect()) as con, con:
            cur = con.execute("INSERT INTO watches (query, langs, sources, mode, threshold, created_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              (query, json.dumps(langs), json.dumps(sources), mode, threshold, now()))
            watch_id = cur.lastrowid
        return self.get(watch_id)

    def list(self, watch_id: int | None = None) -> list[Watch]:
        """Every watch (or only ``watch_id``), with its counts of new and all matches."""
        if not self.exists():
            return []
        where, params = ("WHERE w.watch_id = ?", (int(watch_id),)) if watch_id is not None else ("", ())
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT w.watch_id, w.query, w.langs, w.sources, w.mode, w.threshold, w.created_at, "
                "(SELECT count(*) FROM matches m WHERE m.watch_id = w.watch_id AND m.match_id > w.seen_match), "
                "(SELECT count(*) FROM matches m WHERE m.watch_id = w.watch_id) "
                f"FROM watches w {where} ORDER BY w.watch_id", params).fetchall()
        return [_watch(r) for r in rows]

    def get(self, watch_id: int) -> Watch | None:
        return next(iter(self.list(watch_id)), None)

    def remove(self, watch_id: int) -> bool:
        if not self.exists():
            return False
        with closing(self._connect()) as con, con:
            return con.execute("DELETE FROM watches WHERE watch_id = ?", (int(watch_id),)).rowcount > 0

    def matches(self, watch_id: int, since: str | None = None, new_only: bool = False,
                limit: int | None = None) -> list[Match]:
        """Matches of a watch in the order they were found; ``since``: found on or after that
        ISO date or time; ``new_only``: not seen yet."""
        if not self.exists():
            return []
        sql = ("SELECT m.match_id, m.watch_id, m.doc_id, m.title, m.lang, m.text, m.score, m.z, m.cosine, m.start_char, "
               "m.end_char, m.url, m.source, m.published, m.version, m.found_at FROM matches m "
               "JOIN watches w ON w.watch_id = m.watch_id WHERE m.watch_id = ?")
        params: list = [int(watch_id)]
        if since:
            sql += " AND m.found_at >= ?"
            params.append(_check_since(since))
        if new_only:
            sql += " AND m.match_id > w.seen_match"
        sql += " ORDER BY m.match_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with closing(self._connect()) as con:
            return [Match(*r) for r in con.execute(sql, params).fetchall()]

    def mark_seen(self, watch_id: int) -> None:
        with closing(self._connect()) as con, con:
            con.execute("UPDATE watches SET seen_match = (SELECT coalesce(max(match_id), 0) FROM matches "
                        "WHERE watch_id = ?) WHERE watch_id = ?", (int(watch_id), int(watch_id)))

    def record(self, rows: list[tuple]) -> int:
        """Insert matches (the columns of ``matches`` after match_id); ones already recorded for
        the watch are skipped. Returns how many were new."""
        if not rows:
            return 0
        with closing(self._connect()) as con, con:
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO matches (watch_id, doc_id, text_hash, title, lang, text, score, z, cosine, "
                "start_char, end_char, url, source, published, version, found_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return con.total_changes - before


class PreviousTexts:
    """The passage texts an update replaced (digests: little memory): an update's passage with
    one of them is not new, whatever else changed in its document."""

    def __init__(self, keys: set[str]):
        self._keys = keys

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._keys


def previous_texts(index_dir: Path, replaced=None) -> PreviousTexts | None:
    """What a build's passages are new against, to tell them from the rest; None when no watch
    is saved (then nothing is evaluated and nothing read). An update gives ``replaced``: the
    texts of the passages of the documents it deletes or changes (the builder finds them to
    reuse their vectors), so what it costs stays what changed. A full build (None) compares
    with every passage of the index in service."""
    from index.versions import current_version

    store = WatchStore(index_dir)
    if not store.exists() or not store.list():
        return None
    if replaced is not None:
        return PreviousTexts({text_key(text) for text in replaced})
    from index.commit import read_deleted
    from index.manifest import SEGMENTS, read_manifest
    from index.version_stories import live_passages

    try:
        folder = current_version(index_dir)
        manifest = read_manifest(folder)
        pairs = [(folder / SEGMENTS / info["name"], info) for info in manifest.segments]
        live = live_passages(pairs, read_deleted(folder, manifest))
    except PolyseekError:
        return PreviousTexts(set())  # no index or an unreadable one: everything is new
    return PreviousTexts({text_key(p.text) for p in live})


def evaluate_update(index_dir: Path, version: Path, embedder, new_ids: list[int]) -> int:
    """Score every watch against passages ``new_ids`` of the version just put in service
    (``version``); record those at or above each watch's threshold. Returns the matches recorded."""
    from index.language import detect_among
    from index.lexical import tokenize
    store = WatchStore(index_dir)
    watches = store.list()
    if not watches or not new_ids:
        return 0
    from index.version_reader import VersionRows  # the version's segments read by passage id

    passages = VersionRows(version)
    try:
        means = passages.means
        ids_by_lang = passages.ids_by_lang
        qvecs = embedder.embed([w.query for w in watches], "query")
        spread = language_spread(qvecs, {lang: np.asarray(passages.vectors(ids), np.float32) - means[lang]
                                         for lang, ids in spread_sample(ids_by_lang).items()},
                                 {lang: len(ids) for lang, ids in ids_by_lang.items()})
        # "auto" and "hybrid" also match by words: every query token, in the query's own language
        # (auto: only when the watch is restricted to that language, as the searcher resolves it).
        words = {}
        for w in watches:
            qlang = detect_among(w.query, ids_by_lang)
            if w.mode == "hybrid" or (w.mode == "auto" and set(w.langs) == {qlang}):
                words[w.watch_id] = (qlang, set(tokenize(w.query, qlang)))
        found_at, recorded = now(), 0
        ids = np.sort(np.asarray(new_ids, np.int64))
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            rows = passages.passages(chunk)
            meta = passages.document_meta(row.doc_id for row, _ in rows.values())
            raw = np.asarray(passages.vectors(chunk), np.float32)  # the model's vectors
            langs = [rows[int(pid)][0].lang for pid in chunk]
            cosines = qvecs @ raw.T
            scores = qvecs @ (raw - np.stack([means[lang] for lang in langs])).T  # q·(p − mean_L), as the index stores them
            z = scores / np.stack([spread[lang] for lang in langs], axis=1)
            lang_of = np.asarray(langs)
            source_of = np.asarray([meta.get(rows[int(pid)][0].doc_id, ("", ""))[1].lower() for pid in chunk])
            tokens: dict[int, set[str]] = {}  # passage tokens, for word matches, made once
            out = []
            for w_i, w in enumerate(watches):
                allowed = np.ones(len(chunk), bool)
                if w.langs:
                    allowed &= np.isin(lang_of, w.langs)
                if w.sources:
                    allowed &= np.isin(source_of, [src.lower() for src in w.sources])
                hits = allowed & (z[w_i] >= w.threshold)
                qlang, qtokens = words.get(w.watch_id, (None, None))
                if qtokens:
                    for j in np.flatnonzero(allowed & ~hits & (lang_of == qlang)):
                        row = rows[int(chunk[j])][0]
                        if j not in tokens:
                            tokens[j] = set(tokenize(row.text, row.lang))
                        hits[j] = qtokens <= tokens[j]
                for j in np.flatnonzero(hits):
                    row, title = rows[int(chunk[j])]
                    url, source, published, _author, _pages = meta.get(row.doc_id, ("", "", "", "", ()))
                    out.append((w.watch_id, row.doc_id, text_key(row.text), title, row.lang, row.text,
                                float(scores[w_i, j]), float(z[w_i, j]), float(cosines[w_i, j]), row.start, row.end,
                                url, source, published, version.name, found_at))
            recorded += store.record(out)
        return recorded
    finally:
        passages.close()


def spread_sample(ids_by_lang: dict[str, np.ndarray], sample: int = SPREAD_SAMPLE) -> dict[str, np.ndarray]:
    """Up to ``sample`` passage ids of each language (seeded: the same index gives the same sample)."""
    rng = np.random.default_rng(0)
    return {lang: np.sort(rng.choice(ids, sample, replace=False)) if len(ids) > sample else np.asarray(ids)
            for lang, ids in sorted(ids_by_lang.items())}


def language_spread(qvecs: np.ndarray, centred: dict[str, np.ndarray], counts: dict[str, int],
                    prior: float = SPREAD_PRIOR) -> dict[str, np.ndarray]:
    """For each language, the standard deviation of each query's language-balanced scores over
    the language's passages (``centred``: a sample of them, minus the language's mean), shrunk
    toward all languages' pooled spread for a language of few passages (``counts``):
    ``var = (n·var_L + prior·var_all) / (n + prior)``. Shape per language: (len(qvecs),)."""
    qvecs = np.atleast_2d(np.asarray(qvecs, np.float32))
    var = {lang: (rows @ qvecs.T).var(axis=0) if len(rows) else np.zeros(len(qvecs), np.float32)
           for lang, rows in centred.items()}
    total = sum(counts.get(lang, 0) for lang in var)
    pooled = sum(var[lang] * counts.get(lang, 0) for lang in var) / max(total, 1)
    return {lang: np.sqrt(np.maximum((counts.get(lang, 0) * v + prior * pooled) / (counts.get(lang, 0) + prior),
                                     1e-12)).astype(np.float32)
            for lang, v in var.items()}


def append_jsonl(path: Path, matches: list[Match]) -> None:
    """Append matches to a JSON-lines file, one object per line, for other tools."""
    with open(path, "a", encoding="utf-8") as out:
        for m in matches:
            out.write(json.dumps(m.to_dict(), ensure_ascii=False) + "\n")


def _watch(row) -> Watch:
    watch_id, query, langs, sources, mode, threshold, created_at, new, total = row
    return Watch(watch_id, query, json.loads(langs), json.loads(sources), mode, threshold, created_at, new, total)


def _check_since(value: str) -> str:
    text = str(value).strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"since {value!r} is not a date or time: write it as YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SS") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="microseconds")
