"""The query side of segments: each segment of a version opened for searching, and the fan-out
that searches them all and merges their rankings into the ranking one index would give.

Dense: each segment's FAISS index holds [v, one-hot language]; the query is searched as
[q, −q·mean_L …] with the version's corpus means (index.segment), so each segment's scores are
``q·v − q·mean_L`` exactly; rows a version deleted are excluded by a FAISS ID selector. The
best ``n`` of each segment, merged by score, are the best ``n`` overall.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from index.lexical import FOLDER as LEXICAL_FOLDER, LexicalIndex, LexicalPart
from index.manifest import EMBEDDINGS, STORE, VECTORS, require_regular
from index.segment import LANGUAGES, row_width
from index.store import PassageStore
from index.vectors import REFINE, CentredCells, ExactRows, faiss_threads, first_best, load_vector_index, search_vectors
from polyseek.errors import IndexFormatError


#: An IVF segment finds each language's best for an unfiltered search in one pass over its
#: probed cells (False: one FAISS search per language; benchmarks/scale.py compares both).
SINGLE_SCAN = True
#: Scores closer than this are ties (float64 sums of the same terms in another order differ by ~1e-16).
TIE = 1e-9


#: Language sets whose scan selectors a segment keeps (a bitmap of one bit a row each).
BITMAPS_KEPT = 16


def tie_key(score: float) -> float:
    return round(score, 9)


class SegmentReader:
    """One segment of an open version: its store, vectors, BM25 postings, and the version's
    deletions in it. Passage ids are global (``base`` + row)."""

    def __init__(self, folder: Path, info: dict, deleted_rows: list[int], lexical: bool):
        self.folder, self.info, self.name = folder, info, info["name"]
        self.base, self.size = int(info["base"]), int(info["passages"])
        self.langs: list[str] = list(info["languages"])
        for name in (STORE, VECTORS):
            require_regular(folder / name)
        self.vectors = load_vector_index(folder / VECTORS, info["vector_params"])
        width = row_width(int(info["dim"]), len(self.langs))
        if self.vectors.ntotal != self.size or self.vectors.d != width:
            raise IndexFormatError(f"the vector file in {folder} holds {self.vectors.ntotal} vectors of "
                                   f"{self.vectors.d} dimensions; its segment says {self.size} of "
                                   f"{width}: rebuild the index")
        self.dim = int(info["dim"])
        self.flat = _flat_rows(self.vectors)  # a flat segment's [v, one-hot] rows: scored in one product
        self.deleted = np.asarray(deleted_rows, np.int64)
        self.live = None
        if len(self.deleted):
            self.live = np.ones(self.size, bool)
            self.live[self.deleted] = False
        self._selectors: dict[str, object] = {}  # FAISS selectors of whole languages' live rows, made once
        self._bitmaps: dict[tuple[str, ...], object] = {}  # scan selectors of language sets (_language_bitmap)
        self.exact = None
        # an IVF segment written with centred cells ranks them by the query's model part
        self.cells = CentredCells(self.vectors, self.dim) if info["vector_params"].get("cells") == "centred" else None
        if info["vector_params"].get("kind") == "ivf-sq8":
            require_regular(folder / EMBEDDINGS)
            self.exact = ExactRows(folder / EMBEDDINGS)
        self.lexical = None
        self._lexical_stats = None
        if lexical:
            try:
                for path in (folder / LEXICAL_FOLDER).rglob("*"):
                    if not path.is_dir() or path.is_symlink():
                        require_regular(path)
                self.lexical = LexicalIndex.load(folder, self.size)
            except IndexFormatError:
                raise
            except Exception as exc:  # numpy and json raise many kinds on damaged files
                raise IndexFormatError(f"the lexical index in {folder} is unreadable ({type(exc).__name__}: "
                                       f"{str(exc)[:200]}): rebuild the index") from exc
        self.store = PassageStore(folder / STORE)
        try:
            if self.store.count_passages() != self.size:
                raise IndexFormatError(f"the passage store in {folder} holds {self.store.count_passages()} passages; "
                                       f"its segment says {self.size}: rebuild the index")
            if self.size and self.store.id_range() != (self.base, self.base + self.size - 1):
                raise IndexFormatError(f"the passage store in {folder} holds passages its segment does not "
                                       "describe: rebuild the index")
            self.codes = self._codes(folder, info)
        except Exception:
            self.store.close()
            raise
        self.rows_by_lang = {}  # each language's live rows (local; global ids: + base)
        for code, lang in enumerate(self.langs):
            rows = np.flatnonzero(self.codes == code)
            live = rows if self.live is None else rows[self.live[rows]]
            if len(live):
                live.flags.writeable = False  # shared with the searcher's ids (search.searcher)
                self.rows_by_lang[lang] = live
        self._cell_sizes = None  # an IVF segment's vectors per cell, on first shared probe
        self._pools: dict[tuple, CellPool] = {}  # probe_cells' pools of the readers this one leads

    def _codes(self, folder: Path, info: dict) -> np.ndarray:
        """Each row's language (its index in ``self.langs``): the segment's ``languages.npy``,
        or for a segment written without one, the store's."""
        if LANGUAGES in info["files"]:
            require_regular(folder / LANGUAGES)
            try:
                codes = np.load(folder / LANGUAGES, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"{folder / LANGUAGES} is unreadable ({exc}): rebuild the index") from exc
            counts = np.bincount(codes, minlength=len(self.langs)) if codes.dtype == np.int16 and len(codes) and codes.min() >= 0 else None
            if (codes.shape != (self.size,) or (self.size and (counts is None or len(counts) != len(self.langs)
                                                               or counts.tolist() != [info["counts"].get(lang) for lang in self.langs]))):
                raise IndexFormatError(f"{folder / LANGUAGES} does not hold the languages its segment describes: "
                                       "rebuild the index")
            return codes
        codes = np.full(self.size, -1, np.int16)
        for lang, ids in self.store.ids_by_language().items():
            if lang not in self.langs or (len(ids) and (ids[0] < self.base or ids[-1] >= self.base + self.size)):
                raise IndexFormatError(f"the passage store in {folder} holds passages its segment does not "
                                       "describe: rebuild the index")
            codes[ids - self.base] = self.langs.index(lang)
        return codes

    def query_row(self, qvec: np.ndarray, offsets32: dict[str, float]) -> np.ndarray:
        """The query as this segment's rows are laid out: [q, −q·mean_L per language, zeros]
        (``offsets32``: q·mean_L per language, float32)."""
        query = np.zeros(self.vectors.d, np.float32)
        query[: self.dim] = qvec
        query[self.dim : self.dim + len(self.langs)] = [-offsets32.get(lang, 0.0) for lang in self.langs]
        return query

    def local(self, ids: np.ndarray | None) -> np.ndarray | None:
        """The rows of global ``ids`` (sorted) that lie in this segment (None: every live row)."""
        if ids is None:
            return None
        lo, hi = np.searchsorted(ids, [self.base, self.base + self.size])
        return ids[lo:hi] - self.base

    def dense(self, qvec: np.ndarray, means: tuple[dict, dict], n: int,
              rows: np.ndarray | None, whole: bool = False) -> list[tuple[float, int]]:
        """The best ``n`` (score, global id) of this segment's live rows (only ``rows`` when given),
        scored exactly (float64) — and every row tied with the n-th, so that the caller can break
        ties the same way however the corpus is split into segments. ``whole``: ``rows`` are all
        the live rows of one language (its FAISS selector is kept; an IVF segment starts from its
        usual cells, index.balance)."""
        if rows is not None and len(rows) == 0:
            return []
        if rows is None and self.live is not None:
            rows = np.flatnonzero(self.live)
        elif rows is not None and self.live is not None and not whole:
            rows = rows[self.live[rows]]
        selector = None
        if rows is not None and len(rows):
            lang = self.langs[int(self.codes[rows[0]])]
            mine = self.rows_by_lang.get(lang)
            # all of one language's live rows (a language filter, or one language of an
            # unfiltered search): its FAISS selector is made once
            if whole or (mine is not None and len(mine) == len(rows)):
                selector = self._selectors.get(lang)
                if selector is None:  # two threads may both make one: the same, harmless
                    import faiss

                    selector = self._selectors[lang] = faiss.IDSelectorBatch(np.ascontiguousarray(rows, np.int64))
        available = self.size if rows is None else len(rows)
        if available == 0:
            return []
        offsets32, offsets64 = means  # per language: q·mean_L in float32 and float64 (search.searcher)
        query = self.query_row(qvec, offsets32)[None, :]
        want = min(n, available)
        fetch = want
        while True:
            _, ids = search_vectors(self.vectors, query, min(available, fetch * (1 if self.exact is None else REFINE)), rows,
                                    widen=not whole, selector=selector, cells=self.cells,
                                    filter_nprobe=self.info["vector_params"].get("filter_nprobe"))
            cand = np.sort(ids[0][ids[0] >= 0])
            if not len(cand):
                return []
            scores = self.scores(cand, qvec, offsets64)
            ranked = np.sort(scores)[::-1]
            cut = ranked[min(want, len(ranked)) - 1]
            # The n-th is tied with the last one fetched: rows tied with it may lie beyond; fetch more.
            if fetch >= available or len(cand) < fetch or ranked[-1] < cut - TIE:
                break
            fetch = min(available, fetch * 2)
        keep = np.flatnonzero(scores >= cut - TIE)
        return [(float(scores[i]), int(cand[i]) + self.base) for i in keep.tolist()]

    def dense_languages(self, qvec: np.ndarray, means: tuple[dict, dict], n: int,
                        groups: dict[str, np.ndarray | None], whole: bool) -> dict[str, list[tuple[float, int]]]:
        """:meth:`dense` for each language's rows (``groups``: language → local rows, sorted). A
        flat segment scores all its rows in one product and takes each language's best; an IVF
        segment searched for whole languages scans its probed cells once (:meth:`_scan_languages`)."""
        if self.flat is None:
            if whole and SINGLE_SCAN and self.exact is not None:
                return self._scan_languages(qvec, means, n, groups)
            return {lang: self.dense(qvec, means, n, rows, whole=whole) for lang, rows in groups.items()}
        offsets32, offsets64 = means
        query = self.query_row(qvec, offsets32)
        scores = np.einsum("ij,j->i", self.flat, query, optimize=False)  # no BLAS thread pool for one query
        out = {}
        for lang, rows in groups.items():
            if rows is None or not len(rows):
                continue
            if self.live is not None and not whole:
                rows = rows[self.live[rows]]
            mine = scores[rows]
            if len(rows) > n:  # the n best, and any within float32 noise of the n-th (ties)
                cut32 = np.partition(-mine, n - 1)[n - 1]
                keep = -mine <= cut32 + 1e-5
                rows, mine = rows[keep], mine[keep]
            exact = self.scores(rows, qvec, offsets64)
            cut = np.sort(exact)[::-1][min(n, len(exact)) - 1]
            keep = np.flatnonzero(exact >= cut - TIE)
            out[lang] = [(float(exact[i]), int(rows[i]) + self.base) for i in keep.tolist()]
        return out

    def _scan_languages(self, qvec: np.ndarray, means: tuple[dict, dict], n: int,
                        groups: dict[str, np.ndarray | None]) -> dict[str, list[tuple[float, int]]]:
        """:meth:`dense` of each whole language (``groups``: its live rows) from one pass over
        the cells an unfiltered search probes (:func:`scan_languages` of this segment alone)."""
        return scan_languages([(self, groups)], qvec, means, n)

    def cell_sizes(self) -> np.ndarray:
        """Vectors in each cell of this IVF segment (deleted rows included), read once."""
        if self._cell_sizes is None:
            invlists = self.cells.ivf.invlists
            self._cell_sizes = np.fromiter((invlists.list_size(c) for c in range(self.cells.ivf.nlist)),
                                           np.int64, self.cells.ivf.nlist)
        return self._cell_sizes

    def tuned_share(self, filtered: bool = False) -> float:
        """The share of this IVF segment's cells its tuned nprobe scans (``filtered``: the plain
        top 10's, which a filtered search widens from: index.vectors.search_vectors)."""
        nprobe = self.cells.ivf.nprobe
        if filtered:
            nprobe = min(nprobe, self.info["vector_params"].get("filter_nprobe") or nprobe)
        return nprobe / self.cells.ivf.nlist

    def scan(self, qvec: np.ndarray, offsets32: dict[str, float], cells: np.ndarray | None = None,
             radius: float | None = None, langs: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every live row in the cells an unfiltered search of this IVF segment probes (or in
        ``cells``, chosen with other segments' by :func:`probe_cells`), with its approximate
        score (FAISS's range search, one pass): all of them, or those scoring above ``radius``;
        ``langs``: only rows of these languages (the others are not scored; a segment whose
        cells are not centred, the HNSW-quantized largest, returns them all)."""
        if cells is not None and not len(cells):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = self.query_row(qvec, offsets32)[None, :]
        radius = float(np.finfo(np.float32).min) if radius is None else radius
        selector = None if langs is None or set(self.langs) <= set(langs) else self._language_bitmap(langs)
        with faiss_threads(1):
            if self.cells is None:
                lims, approx, ids = self.vectors.range_search(query, radius)
            else:
                lims, approx, ids = self.cells.range_search(query, radius, self.cells.ivf.nprobe, cells, selector)
        ids, approx = ids[: lims[1]], approx[: lims[1]]
        if self.live is not None:
            keep = self.live[ids]
            ids, approx = ids[keep], approx[keep]
        return ids, approx

    def _language_bitmap(self, langs: tuple[str, ...]):
        """A FAISS selector of this segment's rows in ``langs`` (a bitmap: one bit a row, made
        once per set of languages, at most :data:`BITMAPS_KEPT` sets; deleted rows are dropped
        after the scan). The selector holds its bitmap (FAISS's one-argument form keeps a
        reference to the array), so one replaced by another thread's stays valid."""
        key = tuple(sorted(langs))
        found = self._bitmaps.get(key)
        if found is None:  # two threads may both make one: each holds its own bitmap
            import faiss

            codes = [self.langs.index(lang) for lang in key if lang in self.langs]
            found = faiss.IDSelectorBitmap(np.packbits(np.isin(self.codes, codes), bitorder="little"))
            if len(self._bitmaps) >= BITMAPS_KEPT:
                self._bitmaps.clear()
            self._bitmaps[key] = found
        return found

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The model's vectors of ``rows``."""
        rows = np.asarray(rows, np.int64)
        if self.exact is not None:
            return self.exact(rows)
        return self.vectors.reconstruct_batch(rows)[:, : self.dim]

    def scores(self, rows: np.ndarray, qvec: np.ndarray, offsets64: dict[str, float]) -> np.ndarray:
        """Exact ``q·v − q·mean_L`` of ``rows`` (``offsets64``: q·mean_L per language, float64)."""
        q = np.asarray(qvec, np.float64)
        offsets = np.asarray([offsets64.get(lang, 0.0) for lang in self.langs], np.float64)
        return self.raw(rows).astype(np.float64) @ q - offsets[self.codes[np.asarray(rows, np.int64)]]

    def lexical_part(self, allowed: np.ndarray | None) -> LexicalPart:
        """This segment in a BM25 search (``allowed``: local rows, sorted); its live passages'
        count and length are computed once."""
        part = LexicalPart(self.lexical, self.live, allowed, self.base, self._lexical_stats, self.deleted)
        self._lexical_stats = part.stats()
        return part

    def close(self) -> None:
        self.store.close()
        if self.exact is not None:
            self.exact.close()
        self._pools.clear()  # (a pool holds its readers: no cycle left for the collector)


def probe_cells(readers: list["SegmentReader"], qvec: np.ndarray, filtered: float | None = None) -> list[np.ndarray | None]:
    """The cells each IVF segment's scan probes for one unfiltered query (None: the segment's
    own ``nprobe`` nearest). Segments with centred cells, two or more, share one budget: their
    cells are ranked together by ``q·centroid`` (all in the same centred space) and probed,
    nearest first, until they hold the share of all their vectors that the most selective of
    them was tuned to scan (its nprobe / nlist), never more than the segments would scan each
    alone, and in the cells nearest the query over all of them. A segment's cells are as many
    as one index of the whole version would have (index.vectors.plan_vector_index), so the
    share is that of one index's probe; segments sharing one table of cells probe the same
    ones (:class:`CellPool`). (Ten 100k segments of a 1M index, 1,024 cells each and
    tuned to 64 of them, find 0.986 of the exact balanced top 10 at that share and 0.963 at half
    of it, which is what one 1M index finds at its own tuned 32 of 1,024; with 256 cells each,
    32 of them: 0.983, and 0.969 at half. BENCHMARKS.md.)

    ``filtered``: the search keeps only this share of the pooled segments' rows (whole
    languages): the budget starts from the share the plain top 10 needs (``filter_nprobe``)
    and is widened by 1 / ``filtered``, as a filtered search of one segment is
    (index.vectors.search_vectors)."""
    return CellPool.of(readers).probe(qvec, filtered)


class CellPool:
    """The centred cells of several IVF segments as :func:`probe_cells` ranks them: each distinct
    table of centroids once (segments written into one index share theirs: index.segment.shared_cells;
    a shared cell holds the vectors of every segment that has it), stacked in one matrix (one
    product per query, not one per segment), with each cell's table and size; made once per set
    of readers (kept by the first of them). Ten 1M-index segments: 0.2–0.3 ms a query sharing one
    table, 0.8–1.1 ms with ten (benchmarks/dense_steps.py, BENCHMARKS.md)."""

    def __init__(self, readers: tuple["SegmentReader", ...]):
        self.readers = readers
        self.shared = [i for i, r in enumerate(readers) if r.cells is not None]
        if len(self.shared) < 2:
            return
        self.dim = readers[self.shared[0]].dim
        tables: list[np.ndarray] = []
        self.members: list[list[int]] = []  # the readers (positions) of each table
        for i in self.shared:
            model = readers[i].cells.model
            for t, table in enumerate(tables):
                if table.shape == model.shape and np.array_equal(table, model):
                    self.members[t].append(i)
                    break
            else:
                tables.append(model)
                self.members.append([i])
        self.model = np.ascontiguousarray(np.vstack(tables), np.float32)
        self.sizes = np.concatenate([sum(readers[i].cell_sizes() for i in group) for group in self.members])
        self.owner = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
        self.cell = np.concatenate([np.arange(len(t)) for t in tables])
        self.total = int(self.sizes.sum())

    @staticmethod
    def of(readers) -> "CellPool":
        readers = tuple(readers)
        holder = readers[0] if readers else None
        key = tuple(id(r) for r in readers)  # (the pool holds the readers: their ids stay theirs)
        pools = holder._pools if holder is not None else {}
        if key not in pools:
            pools[key] = CellPool(readers)
        return pools[key]

    def probe(self, qvec: np.ndarray, filtered: float | None) -> list[np.ndarray | None]:
        out: list[np.ndarray | None] = [None] * len(self.readers)
        if len(self.shared) < 2:
            return out
        share = min(self.readers[i].tuned_share(filtered is not None) for i in self.shared)
        if filtered is not None:
            share = min(1.0, share / max(filtered, 1e-9))
        near = self.model @ np.asarray(qvec, np.float32)[: self.dim]
        chosen = self._nearest_holding(near, share * self.total)
        for t, group in enumerate(self.members):
            cells = self.cell[chosen[self.owner[chosen] == t]]  # nearest first
            for i in group:
                out[i] = cells
        return out

    def _nearest_holding(self, near: np.ndarray, target: float) -> np.ndarray:
        """The cells by ``near`` (highest first; equal: lower index first, as a stable sort),
        up to the first at which they hold ``target`` vectors. Only the candidates that can be
        among them are sorted: a partition by the expected count, widened until they hold it."""
        k = min(len(near), 2 * int(math.ceil(target / max(1, self.total) * len(near))) + 64)
        while True:
            if k < len(near):
                kth = np.partition(near, len(near) - k)[len(near) - k]
                top = np.flatnonzero(near >= kth)  # every cell as near as the k-th (ties kept)
            else:
                top = np.arange(len(near))
            order = top[np.lexsort((top, -near[top]))]
            held = np.cumsum(self.sizes[order])
            if held[-1] >= target or len(top) == len(near):
                return order[: int(np.searchsorted(held, target)) + 1]
            k = min(len(near), k * 4)


class _ExactScores:
    """Exact scores of segment rows, by global id, for one query: what every language asks first
    is read in one pass per segment (rows sorted: the file is read in order); later asks read
    only what is new."""

    def __init__(self, parts, qvec: np.ndarray, offsets64: dict[str, float]):
        self.parts, self.qvec, self.offsets64 = parts, qvec, offsets64
        self.bases = np.array([reader.base for reader, _ in parts], np.int64)
        self.by_base = np.argsort(self.bases, kind="stable")
        self.ids, self.scores = np.zeros(0, np.int64), np.zeros(0)

    def _read(self, ids: np.ndarray) -> np.ndarray:
        """Scores of ``ids`` (unique, sorted), one read per segment."""
        place = self.by_base[np.searchsorted(self.bases[self.by_base], ids, side="right") - 1]
        out = np.empty(len(ids), np.float64)
        for p in np.unique(place).tolist():
            mine = place == p
            reader = self.parts[p][0]
            out[mine] = reader.scores(ids[mine] - reader.base, self.qvec, self.offsets64)
        return out

    def prefetch(self, ids: np.ndarray) -> None:
        self.ids = np.unique(ids)
        self.scores = self._read(self.ids)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(self.ids, ids), max(0, len(self.ids) - 1))
        hit = self.ids[at] == ids if len(self.ids) else np.zeros(len(ids), bool)
        if hit.all():
            return self.scores[at]
        out = np.empty(len(ids), np.float64)
        out[hit] = self.scores[at[hit]]
        new, back = np.unique(ids[~hit], return_inverse=True)
        out[~hit] = self._read(new)[back]
        return out


def scan_languages(parts: list[tuple["SegmentReader", dict]], qvec: np.ndarray, means: tuple[dict, dict],
                   n: int, filtered: float | None = None) -> dict[str, list[tuple[float, int]]]:
    """Each whole language's best ``n`` (score, global id) over IVF segments (``parts``:
    each reader with its groups, language → its live local rows), as :meth:`SegmentReader.dense`
    scores them, from one scan of each segment's probed cells (:meth:`SegmentReader.scan`, the
    cells of several segments chosen together: :func:`probe_cells`; a search restricted to one
    language probes the same cells: the coarse step ignores ID selectors). Each language takes
    its best candidates by approximate score over all the segments (equal scores: the first
    scanned) and re-scores them exactly, with the same fetch-more rule; the first candidates of
    every language are read together, one pass per segment. A language with fewer candidates in
    those cells than it needs is searched in each segment alone, which widens the cells. With
    one segment this is exactly one FAISS search per language (tests/test_scale_index.py); over
    several, the candidates re-scored are the best of all segments together rather than of each
    (a tenth of the exact reads at ten segments; the recall is measured, BENCHMARKS.md)."""
    offsets32, offsets64 = means
    probes = probe_cells([reader for reader, _ in parts], qvec, filtered)
    pooled: dict[str, list] = {}
    # Each language's first candidates: its best min(n, its rows) × REFINE by approximate score.
    first = {}
    for reader, groups in parts:
        for lang, rows in groups.items():
            first[lang] = first.get(lang, 0) + (0 if rows is None else len(rows))
    first = {lang: min(rows, min(n, rows) * REFINE) for lang, rows in first.items() if rows}
    edges: dict[str, np.ndarray] = {}  # each language's best approximate scores so far (up to its first)
    radius = None  # once every language has its first candidates: the lowest score any still needs
    for place, (reader, groups) in enumerate(parts):
        ids, approx = reader.scan(qvec, offsets32, probes[place], radius, None if filtered is None else tuple(groups))
        codes = reader.codes[ids]
        by_lang = np.argsort(codes, kind="stable")  # each language's rows in scan order, in one sort
        bounds = np.searchsorted(codes[by_lang], np.arange(len(reader.langs) + 1))
        for lang, rows in groups.items():
            if rows is not None and len(rows):
                code = reader.langs.index(lang)
                mine = by_lang[bounds[code]:bounds[code + 1]]
                pooled.setdefault(lang, []).append((place, ids[mine] + reader.base, approx[mine], len(rows)))
                if len(parts) > 1:
                    best = np.concatenate([edges.get(lang, approx[:0]), approx[mine]])
                    edges[lang] = best if len(best) <= first[lang] else np.partition(best, len(best) - first[lang])[-first[lang]:]
        if len(parts) > 1 and all(len(edges.get(lang, ())) >= size for lang, size in first.items()):
            # a row below every language's first-th best so far can be none's first candidate:
            # the next segments' scans keep only rows above it (FAISS's range search)
            radius = float(np.nextafter(min(float(e.min()) for e in edges.values()), -np.inf, dtype=np.float32))
    pruned = radius is not None
    plans = {}
    firsts = {}  # every language's first candidates (global ids, sorted): read together
    for lang, lists in pooled.items():
        found = np.concatenate([ids for _, ids, _, _ in lists])
        approx = np.concatenate([approx for _, _, approx, _ in lists])
        available = sum(size for *_, size in lists)
        plans[lang] = (found, approx, available)
        size = min(available, min(n, available) * REFINE)
        if len(found) >= size:
            firsts[lang] = np.sort(found[first_best(approx, size)])
    exact = _ExactScores(parts, qvec, offsets64)
    exact.prefetch(np.concatenate(list(firsts.values())) if firsts else np.zeros(0, np.int64))
    out = {}
    for lang, (found, approx, available) in plans.items():
        want = fetch = min(n, available)
        while True:
            size = min(available, fetch * REFINE)
            if len(found) < size or (pruned and size > first[lang]):  # its own searches would look in more cells
                out[lang] = [pair for place, *_ in pooled[lang] for pair in parts[place][0].dense(
                    qvec, means, n, parts[place][1][lang], whole=True)]
                break
            # (in id order, as each segment's own search gives; the first pick is the prefetched one)
            cand = firsts[lang] if fetch == want and lang in firsts else np.sort(found[first_best(approx, size)])
            scores = exact(cand)
            ranked = np.sort(scores)[::-1]
            cut = ranked[min(want, len(ranked)) - 1]
            if fetch >= available or len(cand) < fetch or ranked[-1] < cut - TIE:
                keep = np.flatnonzero(scores >= cut - TIE)
                out[lang] = [(float(scores[i]), int(cand[i])) for i in keep.tolist()]
                break
            fetch = min(available, fetch * 2)
    return out


def _flat_rows(vectors) -> np.ndarray | None:
    """The rows of a flat (IDMap2 over IndexFlatIP) index as a read-only numpy view, row i = id i;
    None for another kind, or ids not 0..n-1 in order."""
    import faiss

    inner = faiss.downcast_index(vectors.index) if hasattr(vectors, "id_map") else None
    if not isinstance(inner, faiss.IndexFlat) or not np.array_equal(faiss.vector_to_array(vectors.id_map),
                                                                   np.arange(vectors.ntotal)):
        return None
    if vectors.ntotal == 0:
        return np.zeros((0, vectors.d), np.float32)
    rows = faiss.rev_swig_ptr(inner.get_xb(), vectors.ntotal * vectors.d).reshape(vectors.ntotal, vectors.d)
    rows.flags.writeable = False
    return rows


class Segments:
    """The segments of an open version, searched and read as one index."""

    def __init__(self, readers: list[SegmentReader], deleted_docs: dict[str, set[str]], stories=None):
        self.readers = sorted(readers, key=lambda r: r.base)
        self._stories = stories  # the version's story tables (index.version_stories), or None
        self._bases = np.asarray([r.base for r in self.readers], np.int64)
        self._dead_docs = {r.name: deleted_docs.get(r.name, set()) for r in self.readers}

    def split(self, ids) -> list[tuple[SegmentReader, np.ndarray]]:
        """Global ids grouped by segment (as rows), in segment order; ids need not be sorted."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        if not len(ids):
            return []
        which = np.searchsorted(self._bases, ids, side="right") - 1
        out = []
        for i in np.unique(which).tolist():
            if i < 0:
                continue
            reader = self.readers[i]
            rows = ids[which == i] - reader.base
            out.append((reader, rows[(rows >= 0) & (rows < reader.size)]))
        return out

    def raw(self, ids: np.ndarray) -> np.ndarray:
        """The model's vectors of global ``ids``, in the order given."""
        ids = np.asarray(ids, np.int64)
        out = np.empty((len(ids), self.readers[0].dim if self.readers else 0), np.float32)
        which = np.searchsorted(self._bases, ids, side="right") - 1
        for i in np.unique(which).tolist():
            pos = np.flatnonzero(which == i)
            out[pos] = self.readers[i].raw(ids[pos] - self.readers[i].base)
        return out

    def order(self, found: list[tuple[float, int]], n: int) -> list[tuple[float, int]]:
        """The best ``n``; passages of equal scores (:data:`TIE`) by (document id, ordinal), so the
        order does not depend on how the corpus is split into segments. Only ties that reach
        into the best ``n`` are looked up."""
        found = sorted(found, key=lambda si: -tie_key(si[0]))
        if len(found) <= 1:
            return found[:n]
        keys = [tie_key(s) for s, _ in found]
        last = keys[min(n, len(found)) - 1]
        head = [i for i in range(len(found)) if keys[i] >= last]
        tied = [found[i][1] for i in head if (i and keys[i - 1] == keys[i]) or (i + 1 < len(found) and keys[i + 1] == keys[i])]
        if not tied:
            return found[:n]
        rows = {}
        for reader, local in self.split(tied):
            rows.update(reader.store.places((local + reader.base).tolist()))
        top = sorted((found[i] for i in head), key=lambda si: (-tie_key(si[0]), rows.get(si[1], ("", si[1]))))
        return top[:n]

    # The PassageStore interface, over the live rows of every segment.
    def passages(self, ids) -> dict:
        out = {}
        for reader, rows in self.split(ids):
            out.update(reader.store.passages((rows + reader.base).tolist()))
        return out

    def count_passages(self) -> int:
        return sum(r.size - len(r.deleted) for r in self.readers)

    def document(self, doc_id: str):
        for reader in reversed(self.readers):
            if doc_id not in self._dead_docs[reader.name]:
                doc = reader.store.document(doc_id)
                if doc is not None:
                    return doc
        return None

    def document_meta_of(self, rows: dict) -> dict:
        """doc_id → meta for the passages ``rows`` (from :meth:`passages`), each from its own segment."""
        out = {}
        for reader, local in self.split(list(rows)):
            docs = {rows[int(r) + reader.base][0].doc_id for r in local.tolist()}
            out.update(reader.store.document_meta(docs))
        return out

    def _live(self, reader: SegmentReader, ids: np.ndarray) -> np.ndarray:
        return ids if reader.live is None else ids[reader.live[ids - reader.base]]

    def ids_where(self, sources=None, since=None, until=None) -> np.ndarray:
        parts = [self._live(r, r.store.ids_where(sources, since, until)) for r in self.readers]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def ids_of_document(self, doc_id: str) -> np.ndarray:
        parts = [self._live(r, r.store.ids_of_document(doc_id)) for r in self.readers]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def sources(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reader in self.readers:
            for source, n in reader.store.sources().items():
                counts[source] = counts.get(source, 0) + n
            for _, (_, source, _, _, _) in reader.store.document_meta(self._dead_docs[reader.name]).items():
                if source:
                    counts[source] -= 1
        counts = {s: n for s, n in counts.items() if n > 0}
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def date_range(self) -> tuple[str, str] | None:
        dates = []
        for reader in self.readers:
            dead = self._dead_docs[reader.name]
            if not dead:
                found = reader.store.date_range()
                dates += list(found) if found else []
            else:
                dates += [published for doc, published in reader.store.dated_documents() if doc not in dead]
        return (min(dates), max(dates)) if dates else None

    def passage_languages(self) -> list[tuple[str, str]]:
        out = []
        for reader in self.readers:
            rows = reader.store.passage_languages()
            out += rows if reader.live is None else [r for r, ok in zip(rows, reader.live.tolist()) if ok]
        return out

    def document_languages(self) -> dict[str, int]:
        """Documents per language (live ones), most first."""
        counts: dict[str, int] = {}
        for reader in self.readers:
            for lang, n in reader.store.document_languages().items():
                counts[lang] = counts.get(lang, 0) + n
            dead = self._dead_docs[reader.name]
            if dead:
                for doc in dead:
                    row = reader.store.document(doc)
                    if row is not None:
                        counts[row.lang] -= 1
        counts = {lang: n for lang, n in counts.items() if n > 0}
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    # The version's stories (their tables live in the version, not in a segment).
    def links_of(self, passage_id: int, limit: int) -> list[tuple[int, float, float]]:
        return self._stories.links_of(passage_id, limit) if self._stories else []

    def stories_of(self, doc_ids) -> dict[str, str]:
        return self._stories.stories_of(doc_ids) if self._stories else {}

    def list_stories(self, *args, **kwargs) -> list[tuple]:
        return self._stories.list_stories(*args, **kwargs) if self._stories else []

    def stories_by_id(self, story_ids) -> list[tuple]:
        return self._stories.stories_by_id(story_ids) if self._stories else []

    def story(self, story_id: str) -> tuple[tuple | None, list[tuple]]:
        """As PassageStore.story: the story's row and its members (doc_id, lang, published,
        source, best_passage, links, title, url), earliest first."""
        if self._stories is None:
            return None, []
        head = self._stories.stories_by_id([story_id])
        if not head:
            return None, []
        out = []
        for doc_id, lang, published, source, best, links in self._stories.story_members(story_id):
            doc = self.document(doc_id)
            out.append((doc_id, lang, published, source, best, links, doc.title if doc else "", doc.url if doc else ""))
        return head[0], out

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        if self._stories is not None:
            self._stories.close()


class SegmentsLexical:
    """Corpus-wide BM25 over the segments (index.lexical.search_segments), ids global."""

    def __init__(self, segments: Segments):
        self.segments = segments
        self.n_passages = segments.count_passages()

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None,
               lang: str | None = None) -> list[tuple[int, float]]:
        from index.lexical import search_segments

        if allowed_ids is not None:
            allowed_ids = np.asarray(allowed_ids, np.int64)
            if len(allowed_ids) > 1 and not (allowed_ids[1:] > allowed_ids[:-1]).all():  # usually sorted already
                allowed_ids = np.sort(allowed_ids)
        parts = [r.lexical_part(r.local(allowed_ids)) for r in self.segments.readers]
        found = self.segments.order(search_segments(parts, query, k, lang, ties=True), k)
        return [(pid, score) for score, pid in found]
