"""Answering queries from an index: the manifest decides the model, FAISS ranks, SQLite
supplies the passages."""

from __future__ import annotations

import bisect
import re
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from index.balance import NEIGHBOURS, merge
from index.lexical import FOLDER as LEXICAL_FOLDER, TOKENIZER as LEXICAL_TOKENIZER, LexicalIndex
from index.manifest import (EMBEDDINGS, MARGINS, STORE, VECTORS, Manifest, read_manifest, require_regular,
                            verify_files)
from index.margins import MARGIN_K, load_means, margin_vectors, ratio_margin
from index.store import PassageStore
from index.vectors import REFINE, ExactRows, load_vector_index, search_vectors
from index.versions import current_version
from polyseek import settings
from polyseek.embedder import Embedder, load_embedder
from polyseek.errors import IndexFormatError, ModelMismatchError, QueryError
from search.fusion import rrf
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
_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


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
    """An open index. Thread-safe for searching; open it once and reuse it."""

    def __init__(self, folder: Path, manifest: Manifest, embedder: Embedder, vectors, store: PassageStore,
                 lexical: LexicalIndex | None = None, knn_means: np.ndarray | None = None):
        self.folder = folder
        self._lexical = lexical
        self.manifest = manifest
        self.embedder = embedder
        self._vectors = vectors
        self._store = store
        try:
            self._ids_by_lang = store.ids_by_language()
            self._means = store.language_means()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"the passage store in {folder} is unreadable ({exc}): rebuild the index") from exc
        self._all_ids = np.sort(np.concatenate(list(self._ids_by_lang.values()))) if self._ids_by_lang else np.zeros(0, np.int64)
        if len(self._all_ids) and (self._all_ids[0] < 0 or self._all_ids[-1] >= manifest.passages):
            raise IndexFormatError(f"the passage store in {folder} holds passage ids outside 0..{manifest.passages - 1}: "
                                   "rebuild the index")
        if any(lang not in self._means or self._means[lang].shape != (manifest.dim,) for lang in self._ids_by_lang):
            raise IndexFormatError(f"the passage store in {folder} lacks a {manifest.dim}-dimension mean vector for "
                                   "a language it holds: rebuild the index")
        # Each passage's language as a code (2 bytes a passage): splits allowed ids by language.
        self._langs = sorted(self._ids_by_lang)
        self._lang_of = np.zeros(manifest.passages, np.uint16)
        for code, lang in enumerate(self._langs):
            self._lang_of[self._ids_by_lang[lang]] = code
        self._selectors: dict[str, object] = {}  # FAISS selectors of whole languages, made once
        # Each passage's mean cosine to its k nearest passages in each language (index.margins).
        self._knn_means = knn_means
        self._margin_col = ({lang: i for i, lang in enumerate(manifest.stories["margin_languages"])}
                            if knn_means is not None else {})  # columns checked by load_means
        try:
            self._doc_langs = store.document_languages()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"the passage store in {folder} is unreadable ({exc}): rebuild the index") from exc
        # Approximate (IVF) indexes re-score their candidates from the model's vectors on disk.
        self._exact = None
        if manifest.vector_params.get("kind") == "ivf-sq8":
            self._exact = ExactRows(folder / EMBEDDINGS)
            self._mean_matrix = np.stack([self._means[lang] for lang in self._langs]).astype(np.float32)
        self._rows = _flat_rows(vectors)  # an exact index's vectors, by passage id: scored in one product

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
        verify_files(folder, manifest, skip=(EMBEDDINGS,))  # searching never reads the model's vectors
        # Nothing is opened that could block (a FIFO) or never end (a link to /dev/zero).
        require_regular(folder / STORE)
        require_regular(folder / VECTORS)
        if manifest.vector_params.get("kind") == "ivf-sq8":
            require_regular(folder / EMBEDDINGS)
        vectors = load_vector_index(folder / VECTORS, manifest.vector_params)
        if MARGINS in manifest.files:
            require_regular(folder / MARGINS)
        knn_means = (load_means(folder / MARGINS, manifest.passages, manifest.stories.get("margin_languages"))
                     if MARGINS in manifest.files else None)
        if vectors.d != manifest.dim:
            raise IndexFormatError(f"the vector file in {folder} holds {vectors.d} dimensions, the manifest says "
                                   f"{manifest.dim}: rebuild the index")
        lexical = None
        if manifest.lexical == LEXICAL_TOKENIZER:
            lexical_dir = folder / LEXICAL_FOLDER
            try:
                for path in lexical_dir.rglob("*"):
                    if not path.is_dir() or path.is_symlink():
                        require_regular(path)
                lexical = LexicalIndex.load(folder, manifest.passages)
            except IndexFormatError:
                raise
            except Exception as exc:  # bm25s and numpy raise many kinds on damaged files
                raise IndexFormatError(f"the lexical index in {folder} is unreadable ({type(exc).__name__}: "
                                       f"{str(exc)[:200]}): rebuild the index") from exc
        store = PassageStore(folder / STORE)
        try:
            counts = (vectors.ntotal, store.count_passages(), manifest.passages)
            if len(set(counts)) != 1:
                raise IndexFormatError(
                    f"the index at {folder} is inconsistent: {counts[0]} vectors, {counts[1]} stored passages, "
                    f"manifest says {counts[2]}: rebuild it")
            return cls(folder, manifest, embedder, vectors, store, lexical, knn_means)
        except BaseException:
            store.close()
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
        return self._store.sources()

    @property
    def date_range(self) -> tuple[str, str] | None:
        """Earliest and latest publication dates in the index; None when no document has one."""
        return self._store.date_range()

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
            where = self._store.ids_where(sources, _check_date(since, "since"), _check_date(until, "until"))
            allowed = where if allowed is None else np.intersect1d(allowed, where, assume_unique=True)
        if exclude_doc is not None:
            drop = self._store.ids_of_document(exclude_doc)
            base = self._all_ids if allowed is None else allowed
            allowed = np.setdiff1d(base, drop, assume_unique=True)
        qvec = np.ascontiguousarray(qvec, np.float32).reshape(1, -1)
        total = self._vectors.ntotal if allowed is None else len(allowed)
        fetch = min(int(k) * 4, total) if per_document else int(k)
        lexical_allowed, query_lang = allowed, None
        if mode == "hybrid":
            query_lang = self.query_language(query)
            if lexical_same_language:
                own = self._ids_by_lang.get(query_lang, np.zeros(0, np.int64))
                lexical_allowed = own if allowed is None else np.intersect1d(own, allowed, assume_unique=True)
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
        passages by ``q·(p − mean_L)``, put on one scale by :func:`index.balance.merge` (a margin
        over the query's neighbourhood in that language; the order within a language is kept)."""
        m = max(n, NEIGHBOURS)
        groups = self._ids_by_lang if allowed is None else self._split(allowed)
        if self._rows is not None:  # exact index: scores by matrix products, then each language's best
            if allowed is None:
                scores = _products(self._rows, qvec[0])
                return merge({lang: _best(scores[ids], ids, m) for lang, ids in groups.items()}, n)
            return merge({lang: _best(_products(self._rows[ids], qvec[0]), ids, m) for lang, ids in groups.items()}, n)
        if allowed is None:  # whole languages: their FAISS selectors are made once; the index's
            # usual cells, widened only if too few are found (a filter widens them from the start)
            found = {lang: self._nearest(qvec, m, ids, widen=False, selector=self._selector(lang))
                     for lang, ids in groups.items()}
        else:
            found = {lang: self._nearest(qvec, m, ids) for lang, ids in groups.items()}
        return merge(found, n)

    def _split(self, allowed: np.ndarray) -> dict[str, np.ndarray]:
        """The allowed passage ids (sorted) of each language, sorted."""
        allowed = np.asarray(allowed, np.int64)
        codes = self._lang_of[allowed]
        order = np.argsort(codes, kind="stable")
        codes, ids = codes[order], allowed[order]
        bounds = np.flatnonzero(np.diff(codes)) + 1
        return {self._langs[int(part_codes[0])]: part for part_codes, part in
                zip(np.split(codes, bounds), np.split(ids, bounds)) if len(part)}

    def _selector(self, lang: str):
        import faiss

        selector = self._selectors.get(lang)
        if selector is None:  # two threads may both make one: the same, harmless
            selector = self._selectors[lang] = faiss.IDSelectorBatch(np.ascontiguousarray(self._ids_by_lang[lang], np.int64))
        return selector

    def _nearest(self, qvec: np.ndarray, n: int, allowed, widen: bool = True, selector=None) -> list[tuple[float, int]]:
        """The ``n`` best (q·(p − mean_L), passage_id) among ``allowed`` (None: all) by the vector
        index; an approximate index's candidates (REFINE times as many) are re-scored exactly
        from the model's vectors."""
        if self._exact is None:
            scores, ids = search_vectors(self._vectors, qvec, n, allowed, selector=selector)
            return [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
        _, ids = search_vectors(self._vectors, qvec, n * REFINE, allowed, widen, selector)
        cand = np.sort(ids[0][ids[0] >= 0])
        if not len(cand):
            return []
        scores = self._centred(cand) @ qvec[0]
        order = np.argsort(-scores, kind="stable")[:n]
        return [(float(scores[i]), int(cand[i])) for i in order]

    def _centred(self, ids: np.ndarray) -> np.ndarray:
        """The indexed vectors (model vector minus its language's mean) of passage ``ids``; exact
        even where the index holds 8-bit codes (from the model's vectors on disk)."""
        ids = np.asarray(ids, np.int64)
        if self._exact is None:
            return self._vectors.reconstruct_batch(ids)
        return self._exact(ids) - self._mean_matrix[self._lang_of[ids]]

    def same_story(self, hit: Hit, k: int = 3) -> list[Hit]:
        """Passages of *other documents in other languages* of ``hit``'s story that say what
        ``hit`` says: its passage links (ratio margin at least the calibrated threshold; see
        index.margins), one per document, strongest first. ``score`` is the margin."""
        _check_k(k)
        links = self._store.links_of(hit.passage_id, MAX_K)
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
            targets = [c for c in self._allowed_langs(langs) if c in self._ids_by_lang]
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
            found = self._nearest(vector.reshape(1, -1), COUNTERPART_CANDIDATES, self._ids_by_lang[lang])
            cos = np.array([score + offset for score, _ in found], np.float32)
            order = np.argsort(-cos, kind="stable")
            ids += [found[i][1] for i in order]
            cosines.append(cos[order])
            mean_x += [float(cos[order][:MARGIN_K].mean())] * len(found)
        if not ids:
            return []
        ids, cosines = np.array(ids, np.int64), np.concatenate(cosines)
        rows = self._knn_means[ids]
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
        rows = self._store.list_stories(self._allowed_langs(langs) if langs else None, sources,
                                        _check_date(since, "since"), _check_date(until, "until"), sort, limit, min_size)
        return [story_from_row(row, self._doc_langs) for row in rows]

    def stories_by_id(self, story_ids) -> dict[str, Story]:
        """story_id → :class:`Story` for the given ids (e.g. the ``story_id`` of some hits)."""
        return {row[0]: story_from_row(row, self._doc_langs) for row in self._store.stories_by_id(story_ids)}

    def story(self, story_id: str) -> StoryDetail | None:
        """One story opened: its documents (earliest first), each with its best passage; None
        when the index has no story of that id."""
        head, members = self._store.story(str(story_id))
        if head is None:
            return None
        passages = self._store.passages(m[4] for m in members)
        documents = tuple(
            StoryDocument(doc_id, title, lang, published, source, url, best, passages[best][0].text if best in passages else "",
                          links)
            for doc_id, lang, published, source, best, links, title, url in members)
        return StoryDetail(story_from_row(head, self._doc_langs), documents)

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
        from index.watches import language_spread, spread_sample

        centred = {lang: self._centred(ids) for lang, ids in spread_sample(self._ids_by_lang).items()}
        counts = {lang: len(ids) for lang, ids in self._ids_by_lang.items()}
        return {lang: float(v[0]) for lang, v in language_spread(qvec, centred, counts).items()}

    def standardized(self, qvec: np.ndarray, hits: list[Hit]) -> list[float]:
        """Each hit's standardized score, what watches and timelines threshold: ``q·(p − mean_L)``
        over the query's spread across the whole language (:meth:`language_spread`). Unlike the
        ranking margin (``hit.score``, over the query's nearest passages), it does not sink when
        a subject already fills the language's nearest passages."""
        if not hits:
            return []
        qvec = np.asarray(qvec, np.float32).reshape(-1)
        spread = self.language_spread(qvec)
        balanced = self._centred([h.passage_id for h in hits]) @ qvec
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
        rows = self._store.passages(i for _, i in found)
        doc_ids = [rows[pid][0].doc_id for _, pid in found if pid in rows]
        meta, stories = self._store.document_meta(doc_ids), self._store.stories_of(doc_ids)
        # Scores are margins (index.balance) or rank fusions: the cosine comes from the stored
        # vectors, q·(p − mean_L) + q·mean_L.
        centred = {}
        if found:
            ids = np.array([pid for _, pid in found], np.int64)
            centred = dict(zip(ids.tolist(), (self._centred(ids) @ qvec).tolist()))
        hits = []
        for score, pid in found:
            if pid in rows:
                row, title = rows[pid]
                offset = float(qvec @ self._means[row.lang])
                url, source, date, _author, pages = meta.get(row.doc_id, ("", "", "", "", ()))
                page = bisect.bisect_right(pages, row.start) if pages else None
                hits.append(Hit(pid, row.doc_id, title, row.lang, row.text, score, row.start, row.end,
                                centred[pid] + offset,
                                url, source, date, page, stories.get(row.doc_id, "")))
        return hits

    def _passage_hits(self, found: list[tuple[int, float, float]]) -> list[Hit]:
        """Hits for (passage_id, score, cosine), in that order."""
        rows = self._store.passages(pid for pid, _, _ in found)
        doc_ids = [rows[pid][0].doc_id for pid, _, _ in found if pid in rows]
        meta, stories = self._store.document_meta(doc_ids), self._store.stories_of(doc_ids)
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
        return self._store.passage_languages()

    def document_text(self, doc_id: str) -> str | None:
        doc = self._store.document(doc_id)
        return doc.text if doc else None

    def document(self, doc_id: str):
        """The document's row (text and metadata) and its passages in order; None if unknown."""
        doc = self._store.document(doc_id)
        if doc is None:
            return None
        rows = self._store.passages(self._store.ids_of_document(doc_id))
        return doc, [rows[pid][0] for pid in sorted(rows)]

    def _allowed_ids(self, langs: list[str] | None) -> np.ndarray | None:
        if not langs:
            return None
        codes = self._allowed_langs(langs)
        parts = [self._ids_by_lang[c] for c in codes if c in self._ids_by_lang]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    @staticmethod
    def _allowed_langs(langs) -> list[str]:
        """Language codes as given, checked and lower-cased."""
        if isinstance(langs, str):
            langs = [langs]
        codes = []
        for lang in langs:
            code = str(lang).strip().lower()
            if not _LANG_CODE.match(code):
                raise QueryError(f"language {lang!r} is not an ISO 639-1 code such as 'en', 'ro' or 'ar'")
            codes.append(code)
        return codes

    def close(self) -> None:
        self._store.close()
        if self._exact is not None:
            self._exact.close()

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


def _flat_rows(vectors) -> np.ndarray | None:
    """The vectors of an exact (IDMap2 over IndexFlatIP) index as a read-only numpy view, row i =
    passage i; None for another kind, or ids not 0..n-1 in order."""
    import faiss

    inner = faiss.downcast_index(vectors.index) if hasattr(vectors, "id_map") else None
    if not isinstance(inner, faiss.IndexFlat) or not np.array_equal(faiss.vector_to_array(vectors.id_map),
                                                                   np.arange(vectors.ntotal)):
        return None
    rows = faiss.rev_swig_ptr(inner.get_xb(), vectors.ntotal * vectors.d).reshape(vectors.ntotal, vectors.d)
    rows.flags.writeable = False
    return rows


def _products(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``rows @ q`` by einsum's own loop: a BLAS matrix-vector product wakes its thread pool,
    which on a busy 2-core machine cost ten times the product itself."""
    return np.einsum("ij,j->i", rows, q, optimize=False)


def _best(mine: np.ndarray, ids: np.ndarray, m: int) -> list[tuple[float, int]]:
    """The ``m`` best (score, id) of scores ``mine`` of passages ``ids``, best first, ties by id."""
    if len(mine) > m:
        keep = np.argpartition(-mine, m - 1)[:m]
        mine, ids = mine[keep], ids[keep]
    order = np.lexsort((ids, -mine))
    return [(float(mine[i]), int(ids[i])) for i in order]


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
