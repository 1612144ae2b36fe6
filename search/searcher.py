"""Answering queries from an index: the manifest decides the model, FAISS ranks, SQLite
supplies the passages."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from index.lexical import TOKENIZER as LEXICAL_TOKENIZER
from index.manifest import (CATALOG, DELETED, EMBEDDINGS, MARGINS, MEANS, SEGMENTS, STORIES, WRITER_STATE, Manifest,
                            read_manifest, require_regular)
from index.margins import MARGIN_K, load_means as load_knn_means, margin_vectors, ratio_margin
from index.versions import current_version
from polyseek import settings
from polyseek.embedder import Embedder, load_embedder
from polyseek.errors import IndexFormatError, ModelMismatchError, QueryError
from polyseek.languages import language_codes
from index.balance import NEIGHBOURS, merge
from index.store import PassageStore
from search.fusion import rrf
import search.segments as fanout
from search.segments import SegmentReader, Segments, SegmentsLexical
from search.stories import SORTS as STORY_SORTS, Story, StoryDetail, StoryDocument, story_from_row

MAX_K = 1000
OPEN_ATTEMPTS = 5
MODES = ("auto", "dense", "hybrid")
SORTS = ("relevance", "date")
#: Candidates per target language that :meth:`Searcher.counterparts` scores by margin.
COUNTERPART_CANDIDATES = 16
#: "auto" is hybrid when the search is restricted to the query's own language, dense otherwise:
#: BM25 lifts same-language R@1 on XQuAD by 1.3 points, but in a mixed-language result list it
#: lifts the query's language above the others (BENCHMARKS.md, issue 4).
DEFAULT_MODE = "auto"
#: Passages each retriever contributes to a hybrid ranking (at least; more when k asks for more).
CANDIDATES = 100
#: A query is cut to this many characters on every path (the model, BM25, language
#: identification, the page's echo and input box): the model reads at most 512 tokens of it
#: anyway (about 2,500 characters of English), and a 1 MB paste must not cost seconds of
#: tokenizing and identification.
MAX_QUERY_CHARS = 4_000


@dataclass(frozen=True)
class Hit:
    passage_id: int
    doc_id: str
    title: str
    lang: str
    text: str
    score: float  # ranking: margin over the query's nearest passages in its language (index.balance); hybrid: RRF
    start: int  # character offsets of the passage in its document
    end: int
    cosine: float  # plain cosine similarity of query and passage
    url: str = ""
    source: str = ""
    date: str = ""  # the document's publication date, ISO 8601; "" when unknown
    page: int | None = None  # PDF: the page the passage starts on (1-based)
    story_id: str = ""  # the story its document belongs to (Searcher.story)

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    """An open index: one version, searched across its segments as one index (search.segments).
    Thread-safe for searching; open it once and reuse it."""

    def __init__(self, folder: Path, manifest: Manifest, embedder: Embedder, segments: Segments,
                 means: dict[str, np.ndarray], knn_means: np.ndarray | None = None):
        self.folder = folder
        self.manifest = manifest
        self.embedder = embedder
        self._segments = segments
        self._means = means
        self._lexical = SegmentsLexical(segments) if manifest.lexical == LEXICAL_TOKENIZER else None
        # Each live passage's mean cosine to its k nearest passages in each language (index.margins).
        self._knn_means = knn_means
        self._margin_col = ({lang: i for i, lang in enumerate(manifest.stories["margin_languages"])}
                            if knn_means is not None else {})  # columns checked by load_knn_means
        self._doc_langs_read: dict[str, int] | None = None  # documents per language: on first use
        self._spread: dict[str, np.ndarray] | None = None  # _spread_rows, on first use
        by_lang: dict[str, list[np.ndarray]] = {}
        for reader in segments.readers:
            for lang, rows in reader.rows_by_lang.items():
                by_lang.setdefault(lang, []).append(rows + reader.base if reader.base else rows)
        # (one segment from 0, as after optimize: its reader's arrays, not copies: 8 B a passage)
        self._ids_by_lang = {lang: np.concatenate(parts) if len(parts) > 1 else parts[0]
                             for lang, parts in sorted(by_lang.items())}
        self._all_ids_read: np.ndarray | None = None  # _all_ids, on first use
        self._pooled_ivf = sum(r.cells is not None for r in segments.readers)  # IVF segments with centred cells
        self._live_count = sum(len(ids) for ids in self._ids_by_lang.values())
        # each passage id's language, as its place in _ids_by_lang (filters split by it in one pass)
        self._lang_order = list(self._ids_by_lang)
        self._lang_of = np.full(max((r.base + r.size for r in segments.readers), default=0), -1, np.int16)
        for code, ids in enumerate(self._ids_by_lang.values()):
            self._lang_of[ids] = code
        if self._live_count != manifest.passages:
            raise IndexFormatError(f"the index at {folder} is inconsistent: {self._live_count} live passages, "
                                   f"the manifest says {manifest.passages}: rebuild it")
        if any(lang not in self._means or self._means[lang].shape != (manifest.dim,) for lang in self._ids_by_lang):
            raise IndexFormatError(f"the index at {folder} lacks a {manifest.dim}-dimension mean vector for "
                                   "a language it holds: rebuild the index")

    @classmethod
    def open(cls, index_dir=None, embedder: Embedder | None = None) -> "Searcher":
        """Open the index in service at ``index_dir`` with the model that built it.

        ``embedder`` may be given (tests, or a model already loaded); it must be the model the
        manifest names, with the same fingerprint."""
        index_dir = settings.index_dir(index_dir)
        for attempt in range(OPEN_ATTEMPTS):
            folder = current_version(index_dir)
            try:
                return cls.open_version(folder, embedder)
            except IndexFormatError:
                # A writer may have put a new version in service and removed this one between
                # reading CURRENT and opening the files: read CURRENT again.
                if attempt == OPEN_ATTEMPTS - 1 or current_version(index_dir) == folder:
                    raise

    @classmethod
    def open_version(cls, folder: Path, embedder: Embedder | None = None) -> "Searcher":
        """Open one version folder (``INDEX_DIR/v-…``), e.g. the one a page has cached."""
        from index.commit import load_means, read_deleted

        manifest = read_manifest(folder)
        if embedder is None:
            embedder = load_embedder(manifest.model)
        if embedder.name != manifest.model or embedder.fingerprint != manifest.model_fingerprint:
            raise ModelMismatchError(
                f"the index at {folder.parent} was built with model {manifest.model!r} (fingerprint "
                f"{manifest.model_fingerprint}), but the model offered is {embedder.name!r} (fingerprint "
                f"{embedder.fingerprint}). Queries must be encoded by the model that built the index: "
                f"rebuild the index with this model, or open it without naming a model.")
        if embedder.dim != manifest.dim:
            raise ModelMismatchError(f"model {embedder.name!r} gives {embedder.dim} dimensions, the index holds "
                                     f"{manifest.dim}: rebuild the index with this model, or open it with its own")
        # Searching never reads the model's vectors of a flat segment, the catalog or the writer's
        # state (updates read those, and check them first): at 1M passages the neighbour lists
        # alone are 288 MB that an open would otherwise hash every time.
        from index.verify import verify_version

        verify_version(folder.parent, folder, manifest,
                       skip=(CATALOG, *WRITER_STATE, *(f"{SEGMENTS}/{info['name']}/{EMBEDDINGS}" for info in manifest.segments
                                                       if info["vector_params"].get("kind") != "ivf-sq8")))
        for name in (MEANS, DELETED, *[n for n in (MARGINS, STORIES) if n in manifest.files]):
            require_regular(folder / name)
        knn_means = (load_knn_means(folder / MARGINS, manifest.passages, manifest.stories.get("margin_languages"))
                     if MARGINS in manifest.files else None)
        means = load_means(folder, manifest)
        deleted = read_deleted(folder, manifest)
        readers = []
        try:
            for info in manifest.segments:
                if info["dim"] != manifest.dim:
                    raise IndexFormatError(f"segment {info['name']} of {folder} holds {info['dim']} dimensions, the "
                                           f"manifest says {manifest.dim}: rebuild the index")
                entry = deleted.get(info["name"], {"rows": [], "documents": []})
                readers.append(SegmentReader(folder / SEGMENTS / info["name"], info, entry["rows"],
                                             manifest.lexical == LEXICAL_TOKENIZER))
            stories = PassageStore(folder / STORIES) if STORIES in manifest.files else None
            segments = Segments(readers, {name: set(d["documents"]) for name, d in deleted.items()}, stories)
            return cls(folder, manifest, embedder, segments, means, knn_means)
        except BaseException:
            for reader in readers:
                reader.close()
            raise

    @property
    def languages(self) -> dict[str, int]:
        """Passage count of each language in the index, most frequent first."""
        return dict(self.manifest.languages)

    def search(self, query: str, k: int = 10, langs: list[str] | None = None, *,
               per_document: bool = False, mode: str = DEFAULT_MODE, sources: list[str] | None = None,
               since: str | None = None, until: str | None = None, sort: str = "relevance") -> list[Hit]:
        """The ``k`` passages closest to ``query``, best first; only ``langs`` (ISO 639-1 codes)
        when given. A language with no passages in the index simply matches nothing.
        ``per_document``: only the best passage of each document (k documents).
        ``mode``: "dense" (the embedding model alone), "hybrid" (fused with BM25 by reciprocal
        rank fusion; see :meth:`search_vector`) or "auto" (:meth:`resolve_mode`).
        ``sources``, ``since``, ``until`` (ISO dates): only documents from those sources, published
        in that range. ``sort="date"``: the k most relevant, newest first."""
        _check_k(k)
        _check_mode(mode)
        query = clean_query(query)
        return self.search_vector(self.encode_query(query), k, langs, per_document=per_document, mode=mode,
                                  query=query, sources=sources, since=since, until=until, sort=sort)

    def encode_query(self, query: str) -> np.ndarray:
        """The query's vector, shape (dim,), as :meth:`search_vector` and highlighting use it."""
        return self.embedder.embed([clean_query(query)], "query")[0]

    @property
    def sources(self) -> dict[str, int]:
        """Documents per source (site or publication) in the index, most first."""
        return self._segments.sources()

    @property
    def date_range(self) -> tuple[str, str] | None:
        """Earliest and latest publication dates in the index; None when no document has one."""
        return self._segments.date_range()

    @property
    def has_lexical(self) -> bool:
        return self._lexical is not None

    def search_vector(self, qvec: np.ndarray, k: int = 10, langs: list[str] | None = None, *,
                      per_document: bool = False, mode: str = "dense", query: str | None = None,
                      lexical_weight: float = 1.0, lexical_same_language: bool = True,
                      sources: list[str] | None = None, since: str | None = None, until: str | None = None,
                      sort: str = "relevance", exclude_doc: str | None = None) -> list[Hit]:
        """:meth:`search` for a vector from :meth:`encode_query` (and, for "hybrid", the query's
        text). Hybrid ranking: ``1/(60 + dense rank) + lexical_weight/(60 + BM25 rank)``. With
        ``lexical_same_language``, BM25 only proposes passages in the query's own language
        (lexical overlap across languages is mostly noise); its choice comes from BENCHMARKS.md."""
        _check_k(k)
        _check_mode(mode)
        if query is not None:
            query = clean_query(query)
        if mode == "auto":
            mode = self.resolve_mode(mode, query, langs)
        if mode == "hybrid":
            if query is None:
                raise QueryError("hybrid search needs the query's text as well as its vector")
            if self._lexical is None:
                raise IndexFormatError(f"the index at {self.folder.parent} has no lexical index (built before "
                                       "hybrid search existed): rebuild it, or search in dense mode")
        if sort not in SORTS:
            raise QueryError(f"sort {sort!r} is unknown: use one of {', '.join(SORTS)}")
        allowed = self._allowed_ids(langs)
        if sources or since or until:
            where = self._segments.ids_where(sources, _check_date(since, "since"), _check_date(until, "until"))
            allowed = where if allowed is None else np.intersect1d(allowed, where, assume_unique=True)
        if exclude_doc is not None:
            drop = self._segments.ids_of_document(exclude_doc)
            base = self._all_ids if allowed is None else allowed
            allowed = np.setdiff1d(base, drop, assume_unique=True)
        qvec = np.ascontiguousarray(qvec, np.float32).reshape(1, -1)
        total = self._live_count if allowed is None else len(allowed)
        fetch = min(int(k) * 4, total) if per_document else int(k)
        lexical_allowed, query_lang = allowed, None
        if mode == "hybrid":
            query_lang = self.query_language(query)
            if lexical_same_language:
                own = self._ids_by_lang.get(query_lang, np.zeros(0, np.int64))
                lexical_allowed = own if allowed is None else self._split(allowed).get(query_lang, own[:0])
        while True:
            if mode == "hybrid":
                found = self._fused(qvec, query, query_lang, max(fetch, CANDIDATES), allowed, lexical_allowed,
                                    lexical_weight)
            else:
                found = self._dense(qvec, max(fetch, 1), allowed)
            if not per_document:  # only the k returned passages are fetched from the store
                return _sorted(self._hits(qvec[0], found[: int(k)]), sort)
            hits = self._hits(qvec[0], found)
            best: dict[str, Hit] = {}
            for hit in hits:
                best.setdefault(hit.doc_id, hit)
            # Enough documents, or every passage seen: done. Otherwise look deeper.
            if len(best) >= k or fetch >= total:
                return _sorted(list(best.values())[: int(k)], sort)
            fetch = min(fetch * 4, total)

    def _fused(self, qvec: np.ndarray, query: str, query_lang: str, n: int, allowed, lexical_allowed,
               weight: float) -> list[tuple[float, int]]:
        """Reciprocal rank fusion of the dense and the BM25 rankings, best first."""
        dense = [pid for _, pid in self._dense(qvec, n, allowed)]
        lexical = []
        if weight > 0 and (lexical_allowed is None or len(lexical_allowed)):
            lexical = [pid for pid, _ in self._lexical.search(query, n, lexical_allowed, query_lang)]
        return rrf([dense, lexical], [1.0, weight])

    def _dense(self, qvec: np.ndarray, n: int, allowed) -> list[tuple[float, int]]:
        """The ``n`` best (score, passage_id): each language's best ``max(n, NEIGHBOURS)``
        passages by ``q·(p − mean_L)`` over every segment, put on one scale by
        :func:`index.balance.merge` (a margin over the query's neighbourhood in that language;
        the order within a language is kept); equal margins by document and place."""
        m = max(n, NEIGHBOURS)
        groups = self._ids_by_lang if allowed is None else self._split(allowed)
        q32 = np.asarray(qvec[0], np.float32)
        offsets = self._offsets(q32)
        found: dict[str, list[tuple[float, int]]] = {lang: [] for lang in groups}
        # A filter of whole languages over several IVF segments is scanned as an unfiltered
        # search is, in cells chosen over all of them (widened by the share it keeps).
        whole = allowed is None or all(len(ids) == len(self._ids_by_lang[lang]) for lang, ids in groups.items())
        pool = fanout.SINGLE_SCAN and (allowed is None or self._pooled_ivf > 1)
        scanned = []  # IVF segments searched for whole languages: their candidates are pooled
        for reader in self._segments.readers:
            # (every live row of each language: the reader has them, no search through the global ids)
            local = ({lang: reader.rows_by_lang[lang] for lang in groups if lang in reader.rows_by_lang} if whole
                     else {lang: reader.local(ids) for lang, ids in groups.items()})
            if whole and pool and reader.exact is not None:
                scanned.append((reader, local))
                continue
            for lang, pairs in reader.dense_languages(q32, offsets, m, local, whole=allowed is None).items():
                found[lang] += pairs
        if scanned:
            kept = None
            if allowed is not None:
                rows = [sum(len(x) for x in local.values()) for _, local in scanned]
                kept = sum(rows) / max(1, sum(r.size - len(r.deleted) for r, _ in scanned))
            for lang, pairs in fanout.scan_languages(scanned, q32, offsets, m, kept).items():
                found[lang] += pairs
        found = {lang: self._segments.order(pairs, m) for lang, pairs in found.items() if pairs}
        merged = merge(found, sum(len(pairs) for pairs in found.values()))
        return self._segments.order(merged, n)

    def _split(self, allowed: np.ndarray) -> dict[str, np.ndarray]:
        """The allowed (live) passage ids of each language, sorted."""
        allowed = np.asarray(allowed, np.int64)
        if len(allowed) > 1 and not (allowed[1:] > allowed[:-1]).all():  # usually sorted already
            allowed = np.sort(allowed)
        codes = self._lang_of[allowed]
        out = {}
        for code, lang in enumerate(self._lang_order):
            mine = allowed[codes == code]
            if len(mine):
                out[lang] = mine
        return out

    def _offsets(self, q32: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """q·mean_L of every language, in float32 (FAISS's query) and float64 (exact scores)."""
        q64 = q32.astype(np.float64)
        return ({lang: float(q32 @ mean) for lang, mean in self._means.items()},
                {lang: float(q64 @ mean.astype(np.float64)) for lang, mean in self._means.items()})

    def _centred(self, ids: np.ndarray, langs: list[str]) -> np.ndarray:
        """Model vector minus its language's mean, of passage ``ids`` (exact, from any segment);
        ``langs``: each passage's language (known to every caller: no store lookup)."""
        out = self._segments.raw(np.asarray(ids, np.int64))
        for i, lang in enumerate(langs):
            out[i] -= self._means[lang]
        return out

    def _spread_rows(self) -> dict[str, np.ndarray]:
        """The seeded sample of each language's passages (index.watches.spread_sample), centred:
        the same for every query, so read once per open index rather than on every
        :meth:`language_spread` (a timeline asks once per language)."""
        if self._spread is None:
            from index.watches import spread_sample

            self._spread = {lang: self._centred(ids, [lang] * len(ids))
                            for lang, ids in spread_sample(self._ids_by_lang).items()}
        return self._spread

    def _nearest(self, qvec: np.ndarray, n: int, allowed: np.ndarray, whole: bool = False) -> list[tuple[float, int]]:
        """The ``n`` best (q·(p − mean_L), passage_id) among ``allowed`` (sorted) over every
        segment, merged by score (``whole``: ``allowed`` is a whole language)."""
        q32 = np.asarray(qvec[0], np.float32)
        offsets = self._offsets(q32)
        found = []
        for reader in self._segments.readers:
            found += reader.dense(q32, offsets, n, reader.local(allowed), whole=whole)
        return self._segments.order(found, n)

    def same_story(self, hit: Hit, k: int = 3) -> list[Hit]:
        """Passages of *other documents in other languages* of ``hit``'s story that say what
        ``hit`` says: its passage links (ratio margin at least the calibrated threshold; see
        index.margins), one per document, strongest first. ``score`` is the margin."""
        _check_k(k)
        links = self._segments.links_of(hit.passage_id, MAX_K)
        hits = self._passage_hits([(pid, margin, cosine) for pid, margin, cosine in links])
        best: dict[str, Hit] = {}
        for other in hits:
            if other.doc_id != hit.doc_id and other.lang != hit.lang:
                best.setdefault(other.doc_id, other)
        return list(best.values())[:k]

    def counterparts(self, text: str, langs: list[str] | None = None, k: int = 5) -> list[Hit]:
        """The passages in other languages that say what ``text`` (a pasted sentence or passage)
        says, best first: scored by ratio margin against the index's own cross-language
        neighbourhoods (index.margins), so the translation, when the index holds one, comes
        first. ``langs``: the languages to look in (default: all but the text's own).
        ``score`` is the margin, ``cosine`` the plain cosine."""
        _check_k(k)
        text = clean_query(text)
        if langs:
            targets = [c for c in language_codes(langs) if c in self._ids_by_lang]
            rest = [lang for lang in self._ids_by_lang if lang not in targets]
            from index.language import detect_among

            own = detect_among(text, rest) if rest else None
        else:
            own = self.query_language(text)
            targets = [lang for lang in self._ids_by_lang if lang != own]
        if not targets:
            return []
        vector = self.embedder.embed([text], "passage")[0]
        return self.counterparts_vector(vector, own, targets, k)

    def counterparts_vector(self, vector: np.ndarray, own: str | None, targets: list[str], k: int = 5) -> list[Hit]:
        """:meth:`counterparts` for a text's vector (encoded as a passage, as the index's are),
        in language ``own`` (None: unknown), among passages in ``targets``."""
        _check_k(k)
        if self._knn_means is None:
            raise IndexFormatError(f"the index at {self.folder.parent} was built before margins existed: rebuild it")
        targets = [lang for lang in targets if lang in self._ids_by_lang]
        if not targets:
            return []
        vector = margin_vectors(np.asarray(vector, np.float32).reshape(1, -1))[0]
        ids, cosines, mean_x = [], [], []
        for lang in targets:  # q·(p − mean_L) within one language: the cosine less a constant
            offset = float(vector @ self._means[lang])
            found = self._nearest(vector.reshape(1, -1), COUNTERPART_CANDIDATES, self._ids_by_lang[lang], whole=True)
            cos = np.array([score + offset for score, _ in found], np.float32)
            order = np.argsort(-cos, kind="stable")
            ids += [found[i][1] for i in order]
            cosines.append(cos[order])
            mean_x += [float(cos[order][:MARGIN_K].mean())] * len(found)
        if not ids:
            return []
        ids, cosines = np.array(ids, np.int64), np.concatenate(cosines)
        rows = self._knn_means[np.searchsorted(self._all_ids, ids)]  # margins.npy is in passage-id order
        col = self._margin_col.get(own)
        mean_y = rows[:, col] if col is not None else np.nanmean(rows, axis=1)  # text in a language the index lacks
        margins = ratio_margin(cosines, np.array(mean_x, np.float32), np.nan_to_num(mean_y, nan=1.0))
        order = np.argsort(-margins, kind="stable")[:k]
        return self._passage_hits([(int(ids[i]), float(margins[i]), float(cosines[i])) for i in order])

    def stories(self, langs: list[str] | None = None, sources: list[str] | None = None, since: str | None = None,
                until: str | None = None, sort: str = "size", limit: int = 100, min_size: int = 1) -> list[Story]:
        """The corpus's stories (index.stories): those with a document in one of ``langs`` and
        from one of ``sources``, reported within [since, until]; ``sort`` "size" (most documents
        first) or "date" (latest report first); at most ``limit``; ``min_size=2`` leaves out
        documents no other language reported."""
        if sort not in STORY_SORTS:
            raise QueryError(f"sort {sort!r} is unknown for stories: use one of {', '.join(STORY_SORTS)}")
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= 100_000:
            raise QueryError(f"limit of {limit!r} is out of range: ask for 1 to 100000 stories")
        rows = self._segments.list_stories(language_codes(langs) if langs else None, sources,
                                        _check_date(since, "since"), _check_date(until, "until"), sort, limit, min_size)
        return [story_from_row(row, self._doc_langs) for row in rows]

    def stories_by_id(self, story_ids) -> dict[str, Story]:
        """story_id → :class:`Story` for the given ids (e.g. the ``story_id`` of some hits)."""
        return {row[0]: story_from_row(row, self._doc_langs) for row in self._segments.stories_by_id(story_ids)}

    def story(self, story_id: str) -> StoryDetail | None:
        """One story opened: its documents (earliest first), each with its best passage; None
        when the index has no story of that id."""
        head, members = self._segments.story(str(story_id))
        if head is None:
            return None
        passages = self._segments.passages(m[4] for m in members)
        documents = tuple(
            StoryDocument(doc_id, title, lang, published, source, url, best, passages[best][0].text if best in passages else "",
                          links)
            for doc_id, lang, published, source, best, links, title, url in members)
        return StoryDetail(story_from_row(head, self._doc_langs), documents)

    @property
    def _all_ids(self) -> np.ndarray:
        """Every live passage id, sorted (8 bytes a passage: made when first needed, not by a
        search with no document excluded)."""
        if self._all_ids_read is None:
            self._all_ids_read = np.concatenate(
                [np.arange(r.base, r.base + r.size) if r.live is None else np.flatnonzero(r.live) + r.base
                 for r in self._segments.readers] or [np.zeros(0, np.int64)])
        return self._all_ids_read

    @property
    def _doc_langs(self) -> dict[str, int]:
        """Documents per language (read from every segment's store once, when first asked: a
        pass over the documents that opening an index need not wait for)."""
        if self._doc_langs_read is None:
            self._doc_langs_read = self._segments.document_languages()
        return self._doc_langs_read

    @property
    def document_languages(self) -> dict[str, int]:
        """Documents per language in the index, most first."""
        return dict(self._doc_langs)

    @property
    def has_stories(self) -> bool:
        return self._knn_means is not None

    def language_spread(self, qvec: np.ndarray) -> dict[str, float]:
        """How widely the query's scores ``q·(p − mean_L)`` spread over each language's passages
        (a seeded sample; index.watches.language_spread)."""
        from index.watches import language_spread

        counts = {lang: len(ids) for lang, ids in self._ids_by_lang.items()}
        return {lang: float(v[0]) for lang, v in language_spread(qvec, self._spread_rows(), counts).items()}

    def standardized(self, qvec: np.ndarray, hits: list[Hit], spread: dict[str, float] | None = None) -> list[float]:
        """Each hit's standardized score, what watches and timelines threshold: ``q·(p − mean_L)``
        over the query's spread across the whole language (:meth:`language_spread`). Unlike the
        ranking margin (``hit.score``, over the query's nearest passages), it does not sink when
        a subject already fills the language's nearest passages. ``spread``: the query's
        :meth:`language_spread`, when the caller has it (a timeline asks once per language)."""
        if not hits:
            return []
        qvec = np.asarray(qvec, np.float32).reshape(-1)
        spread = spread or self.language_spread(qvec)
        balanced = self._centred([h.passage_id for h in hits], [h.lang for h in hits]) @ qvec
        return [float(b) / spread[h.lang] for b, h in zip(balanced, hits)]

    def resolve_mode(self, mode: str, query: str | None, langs: list[str] | None) -> str:
        """The mode a search runs in: "auto" becomes "hybrid" when the search is restricted to
        the query's own language (and the index has BM25), "dense" otherwise."""
        _check_mode(mode)
        if mode != "auto":
            return mode
        if query is None or self._lexical is None or not langs:
            return "dense"
        query = clean_query(query)
        wanted = {str(lang).strip().lower() for lang in ([langs] if isinstance(langs, str) else langs)}
        return "hybrid" if wanted == {self.query_language(query)} else "dense"

    def query_language(self, query: str) -> str:
        """The query's language, chosen among the index's languages ('und' if none fits)."""
        from index.language import detect_among

        return detect_among(clean_query(query), self._ids_by_lang)

    def _hits(self, qvec: np.ndarray, found: list[tuple[float, int]]) -> list[Hit]:
        """Hits for ranked (score, passage_id). Scores are margins (index.balance) or rank
        fusions: the cosine comes from the stored model vectors."""
        if not found:
            return []
        ids = np.array([pid for _, pid in found], np.int64)
        cosines = (self._segments.raw(ids) @ np.asarray(qvec, np.float32)).tolist()
        return self._passage_hits([(pid, score, cos) for (score, pid), cos in zip(found, cosines)])

    def _passage_hits(self, found: list[tuple[int, float, float]]) -> list[Hit]:
        """Hits for (passage_id, score, cosine), in that order (passages no longer live are left out)."""
        rows = self._segments.passages(pid for pid, _, _ in found)
        meta = self._segments.document_meta_of(rows)  # only the segments holding these passages
        stories = self._segments.stories_of(rows[pid][0].doc_id for pid, _, _ in found if pid in rows)
        hits = []
        for pid, score, cosine in found:
            if pid in rows:
                row, title = rows[pid]
                url, source, date, _author, pages = meta.get(row.doc_id, ("", "", "", "", ()))
                page = bisect.bisect_right(pages, row.start) if pages else None
                hits.append(Hit(pid, row.doc_id, title, row.lang, row.text, float(score), row.start, row.end,
                                float(cosine), url, source, date, page, stories.get(row.doc_id, "")))
        return hits

    def passage_languages(self) -> list[tuple[str, str]]:
        """(doc_id, lang) of every passage, in passage-id order."""
        return self._segments.passage_languages()

    def document_text(self, doc_id: str) -> str | None:
        doc = self._segments.document(doc_id)
        return doc.text if doc else None

    def document(self, doc_id: str):
        """The document's row (text and metadata) and its passages in order; None if unknown."""
        doc = self._segments.document(doc_id)
        if doc is None:
            return None
        rows = self._segments.passages(self._segments.ids_of_document(doc_id))
        return doc, [rows[pid][0] for pid in sorted(rows)]

    def _allowed_ids(self, langs: list[str] | None) -> np.ndarray | None:
        if not langs:
            return None
        codes = language_codes(langs)
        parts = [self._ids_by_lang[c] for c in codes if c in self._ids_by_lang]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def close(self) -> None:
        self._segments.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clean_query(query) -> str:
    """The query as every path reads it: stripped and cut to MAX_QUERY_CHARS characters.
    QueryError for an empty query, and for text that is not Unicode (a lone surrogate: what
    Python makes of bytes that are not UTF-8 in a terminal's arguments)."""
    if not isinstance(query, str):
        raise QueryError(f"the query must be text, not {type(query).__name__}")
    query = query.strip()[:MAX_QUERY_CHARS].strip()
    if not query:
        raise QueryError("the query is empty: type some words to search for")
    bad = next((i for i, ch in enumerate(query) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        raise QueryError(f"the query is not valid text: character {bad + 1} is U+{ord(query[bad]):04X}, half of a "
                         "UTF-16 pair (bytes that are not UTF-8?); type or paste the query again as UTF-8")
    return query


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise QueryError(f"k of {k!r} is out of range: ask for 1 to {MAX_K} results")


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise QueryError(f"search mode {mode!r} is unknown: use one of {', '.join(MODES)}")


def _check_date(value: str | None, name: str) -> str | None:
    if value in (None, ""):
        return None
    from datetime import date

    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise QueryError(f"{name} {value!r} is not a date: write it as YYYY-MM-DD") from None


def _sorted(hits: list[Hit], sort: str) -> list[Hit]:
    """Relevance order as found; by date: newest first, undated last, ties by relevance."""
    if sort != "date":
        return hits
    dated = sorted((h for h in hits if h.date), key=lambda h: h.date, reverse=True)
    return dated + [h for h in hits if not h.date]
