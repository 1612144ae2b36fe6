"""The vector index: FAISS, inner product over L2-normalized model vectors (each segment appends
a one-hot language code, so the query side takes off each language's mean: see
:mod:`index.balance` and index.segment), with a segment's rows as FAISS ids.

Its kind is chosen from the number of passages (:func:`plan_vector_index`):

* up to :data:`EXACT_MAX` passages, ``flat``: exact search (``IndexIDMap2`` over ``IndexFlatIP``),
  4 bytes per dimension in memory;
* above it, ``ivf-sq8``: an inverted file of ``nlist`` k-means cells whose vectors are stored with
  8-bit scalar quantization (1 byte per dimension, ~390 B per passage at 384 dimensions), searching
  the ``nprobe`` nearest cells for :data:`REFINE` times as many candidates as asked, which are
  then re-scored exactly from the model's float32 vectors on disk (:class:`ExactRows`: read with
  ``pread``, through the page cache, never held by the process). ``nprobe`` is tuned at build
  time: the smallest that finds :data:`TARGET_RECALL` of the exact top 10 for query-like vectors,
  and of the language-balanced top 10 the searcher serves by default (:func:`_tune_nprobe`).

A segment written into a larger index (an update's, a merge's) gets the cells of that index,
not of its own size (``index_size``), so that its cells are as fine as the others' and a query
scans the same share of the index over any number of segments as over one; where the index's
largest IVF segment has as many cells and at least as many passages, the new segment shares
them (``cells_from``, index.segment.shared_cells: only its 8-bit codes are trained), so a query
ranks one table of cells for all of them (search.segments.CellPool).

Above :data:`HNSW_FROM` passages the cells grow faster (~16·√n, up to 262,144: 65,536 at 10M,
131,072 at 100M) and the coarse quantizer becomes an HNSW graph over them, as FAISS's guidelines
say for 10M–100M vectors ("IVF65536_HNSW32" … "IVF262144_HNSW32"): finding the nearest cells
among so many by brute force would cost more than scanning them.

One IVF index can be built by many workers (FAISS wiki, "Indexes that do not fit in RAM";
``faiss.contrib.ondisk``): the cells are trained once, on a sample, and :func:`add_in_shards`
gives each worker a copy of the trained empty index to add its share of the vectors to; the
copies are merged in order, which gives exactly the index one process adding them all would.

The plan and the recall it measured are recorded in the manifest (``vector_params``).
HNSW was left out: its graph alone costs 2·M·4 bytes per passage (256 B at M = 32), which with
the vectors breaks the 500 B per passage that a million passages on one machine allows.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from polyseek.errors import IndexFormatError

METRIC = "inner_product"
KIND = "IDMap2,Flat"  # the manifest's name for "flat" (kept from format 2's first indexes)
IVF_KIND = "IVF,SQ8"
#: Passages up to which the index is exact. Flat search costs ~0.15 ms per 1,000 passages per
#: query on this 2-core machine (15 ms at 100k: twice the ONNX query encoding) and 1.5 kB of RAM
#: per passage; at 20k it stays near 3 ms (benchmarks/scale.py).
EXACT_MAX = 20_000
#: Share of the exact top 10 the approximate index must find for the tuning queries (measured
#: when it is built; real questions came out ~2 points lower in benchmarks/scale.py).
TARGET_RECALL = 0.98
#: Vectors sampled to train the k-means cells, per cell.
TRAIN_PER_CELL = 64
TUNING_QUERIES = 300
#: Words of a passage's opening that make one tuning query.
QUERY_WORDS = 12
#: Candidates per result an IVF search re-scores exactly (8-bit codes blur near-ties).
REFINE = 4
#: The tuned nprobe is multiplied by this: real questions sit farther from the cells' centres
#: than the tuning queries (at 1M passages nprobe 4 gave 0.989 on those and 0.935 on XQuAD
#: questions; benchmarks/scale.py).
NPROBE_MARGIN = 4
#: The same for the nprobe tuned on the language-balanced ranking: none. Its hard part, the
#: best of the languages far from the query, is as hard for the tuning queries as for real
#: questions (1M passages: 0.981 on those at nprobe 32, 0.965 on XQuAD questions; the plain top
#: 10 gave 0.989 and 0.935 at 4 and 16), so the margin that makes up for easy tuning queries
#: is not needed there.
BALANCED_NPROBE_MARGIN = 1
#: Passages above which the IVF cells are found by an HNSW graph and grow as ~16·√n.
HNSW_FROM = 2_000_000
HNSW_M = 32  # links per node of that graph (FAISS's usual "HNSW32")
MAX_NLIST = 262_144
#: efSearch of the HNSW quantizer: at least this, and at least twice nprobe.
HNSW_EF_SEARCH = 128


def plan_vector_index(n: int, exact_max: int = EXACT_MAX, index_size: int | None = None) -> dict:
    """The kind of index for ``n`` passages: {"kind": "flat"} or {"kind": "ivf-sq8", "nlist": …},
    with ``"quantizer": "hnsw32"`` above :data:`HNSW_FROM` passages.

    ``index_size``: the live passages of the whole index this segment joins. An IVF segment
    then gets the cells one index of that size would have (~√size; never so many that a cell
    holds fewer than :data:`TRAIN_PER_CELL` of its own passages), so that a query finds its
    neighbours in the same number of nearest cells of every segment and scans the same share
    of the index as one merged segment would: ten 100k segments with ~√100k cells each needed
    4× the scan of one 1M index for the same recall (BENCHMARKS.md, "Third round": cells sized for the index)."""
    if n <= exact_max:
        return {"kind": "flat"}
    if n <= HNSW_FROM:
        nlist = _sqrt_cells(n)
        if (index_size or n) > n:  # finer than its own √n, but at least TRAIN_PER_CELL passages per cell
            nlist = max(nlist, min(_sqrt_cells(min(index_size, HNSW_FROM)), 2 ** int(math.log2(max(1, n // TRAIN_PER_CELL)))))
        return {"kind": "ivf-sq8", "nlist": int(nlist)}
    nlist = min(MAX_NLIST, 2 ** round(math.log2(16 * math.sqrt(n))))  # 10M → 65,536; 100M → 131,072
    return {"kind": "ivf-sq8", "nlist": int(nlist), "quantizer": f"hnsw{HNSW_M}"}


def _sqrt_cells(size: int) -> int:
    """~√size cells, a power of two, at least 64: 1M passages → 1024."""
    return 2 ** round(math.log2(max(64.0, math.sqrt(size))))


def kind_name(plan: dict) -> str:
    return KIND if plan["kind"] == "flat" else IVF_KIND


def build_vector_index(ids: np.ndarray, vectors: np.ndarray, plan: dict | None = None,
                       queries: np.ndarray | None = None, seed: int = 0, add=None,
                       language_means: np.ndarray | None = None, cells_from: np.ndarray | None = None):
    """The FAISS index of ``vectors`` under ``ids``; for "ivf-sq8" also returns the plan with
    the tuned ``nprobe`` and its measured ``recall_at_10`` filled in (flat: the plan unchanged).
    ``queries`` (model vectors) tune ``nprobe``; by default a sample of the vectors themselves.
    ``add(index, vectors, ids)`` fills the trained IVF index (default: here, in one call; a
    cluster passes :func:`add_in_shards` over its workers). ``language_means`` (one row per
    language, in the order of the one-hot columns the vectors end with, index.segment): the IVF
    cells are made *centred* (:class:`CentredCells`); ``cells_from``: the model part of another
    segment's centred cells (``nlist`` rows) to use rather than training new ones, so that the
    segments of one index share their cells (only the 8-bit codes are trained: FAISS's way of
    sharding an IVF index)."""
    import faiss

    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for vectors of shape {vectors.shape}")
    plan = dict(plan or {"kind": "flat"})
    vectors = np.ascontiguousarray(vectors, np.float32)
    ids = np.ascontiguousarray(ids, np.int64)
    dim = vectors.shape[1]
    if plan["kind"] == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(ids):
            index.add_with_ids(vectors, ids)
        return index, plan
    if plan["kind"] != "ivf-sq8":
        raise ValueError(f"unknown vector index kind {plan['kind']!r}")
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError("an IVF index needs passage ids 0..n-1 in order")
    rng = np.random.default_rng(seed)
    nlist = int(plan["nlist"])
    quantizer = plan.get("quantizer", "")
    if quantizer not in ("", f"hnsw{HNSW_M}"):
        raise ValueError(f"unknown coarse quantizer {quantizer!r}: use hnsw{HNSW_M} or none")
    factory = f"IVF{nlist}_HNSW{HNSW_M},SQ8" if quantizer else f"IVF{nlist},SQ8"
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    train = vectors[np.sort(rng.choice(len(vectors), min(len(vectors), TRAIN_PER_CELL * nlist), replace=False))]
    cells = None
    # (an HNSW coarse quantizer, for the largest segments, keeps FAISS's own cells: centred ones
    # are ranked by a product with every centroid, too dear at 65k cells and more)
    if language_means is not None and len(language_means) and not quantizer:
        means = np.asarray(language_means, np.float32)
        if cells_from is not None and np.asarray(cells_from).shape == (nlist, means.shape[1]):
            index.quantizer.add(centred_rows(np.asarray(cells_from, np.float32), means, dim))
            plan["cells_shared"] = True
        else:
            index.quantizer.add(centred_centroids(train, means, nlist))
        plan["cells"] = "centred"
        cells = CentredCells(index, means.shape[1])
    index.train(train)  # with its cells already there (centred), only the 8-bit codes are trained
    plan["train"] = len(train)
    set_quantizer_ef(index, 1)
    (add or _add_here)(index, vectors, ids)
    index.make_direct_map()  # reconstruct(passage_id) works on every kind of index
    codes = None
    if cells is not None:  # each row's language, from its one-hot columns: tuned on the balanced ranking
        n_langs = len(language_means)
        codes = np.argmax(vectors[:, cells.model.shape[1] : cells.model.shape[1] + n_langs], axis=1)
        if queries is None:  # passages as queries, laid out as a segment's query rows
            sample = vectors[rng.choice(len(vectors), min(len(vectors), TUNING_QUERIES), replace=False), : cells.model.shape[1]]
            queries = np.zeros((len(sample), vectors.shape[1]), np.float32)
            queries[:, : sample.shape[1]] = sample
            queries[:, sample.shape[1] : sample.shape[1] + n_langs] = -(sample @ np.asarray(language_means, np.float32).T)
    plan["nprobe"], plan["recall_at_10"], balanced_recall, plain = _tune_nprobe(index, vectors, queries, rng, cells, codes)
    if balanced_recall is not None:
        plan["balanced_recall_at_10"] = balanced_recall
        # A search filtered to some passages ranks them as the model does (the balance is a
        # constant within a language): it widens from the nprobe the plain top 10 needs.
        plan["filter_nprobe"] = plain
    index.nprobe = plan["nprobe"]
    set_quantizer_ef(index, index.nprobe)
    return index, plan


def centred_centroids(train: np.ndarray, means: np.ndarray, nlist: int) -> np.ndarray:
    """IVF cells for rows ``[v, one-hot language]`` that group passages by meaning across
    languages: k-means (FAISS's, as an IVF trains) of the centred vectors ``v − mean_L``, each
    centroid ``c`` stored as ``[c, −mean_1·c, …, −mean_L·c]`` so that a row's nearest cell is the
    one nearest its centred vector. (Trained on ``[v, one-hot]`` itself, k-means splits by
    language first — the model's vectors carry their language too — and a query needed 8 times
    the cells for the same recall: nprobe 256 against 32 of 256 cells at 100k passages.)"""
    import faiss

    n_langs, dim = means.shape
    codes = np.argmax(train[:, dim : dim + n_langs], axis=1)
    centred = np.ascontiguousarray(train[:, :dim] - means[codes], np.float32)
    kmeans = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    kmeans.train(centred)
    return centred_rows(faiss.downcast_index(kmeans.quantizer).reconstruct_n(0, nlist), means, train.shape[1])


def centred_rows(centroids: np.ndarray, means: np.ndarray, width: int) -> np.ndarray:
    """Centroids ``c`` of centred vectors as cells of rows ``[v, one-hot language, zeros]`` of
    ``width`` columns, for the languages of ``means``: ``[c, −mean_1·c, …, −mean_L·c, zeros]``."""
    pad = np.zeros((len(centroids), width - centroids.shape[1] - len(means)), np.float32)  # the rows' zero columns
    return np.ascontiguousarray(np.hstack([centroids, -(centroids @ means.T), pad]), np.float32)


class CentredCells:
    """The coarse step of an IVF with centred cells (:func:`centred_centroids`): a query
    ``[q, −q·mean_L …]`` probes the cells nearest ``q`` by ``q·c`` alone (FAISS's own quantizer
    would add ``Σ_L (q·mean_L)(mean_L·c)``), and its fine scores start from ``query · centroid``
    as FAISS's would."""

    def __init__(self, index, dim: int):
        import faiss

        self.ivf = faiss.extract_index_ivf(index)
        self.centroids = faiss.downcast_index(self.ivf.quantizer).reconstruct_n(0, self.ivf.nlist)
        self.model = np.ascontiguousarray(self.centroids[:, :dim])

    def assign(self, queries: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(cells, query·centroid) of each query row, nearest first (FAISS's ``Iq``, ``Dq``)."""
        nprobe = max(1, min(int(nprobe), len(self.model)))
        near = queries[:, : self.model.shape[1]] @ self.model.T
        top = np.argpartition(-near, nprobe - 1, axis=1)[:, :nprobe] if nprobe < len(self.model) else \
            np.broadcast_to(np.arange(len(self.model)), (len(queries), len(self.model)))
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(near, top, 1), axis=1, kind="stable"), 1)
        dis = np.einsum("nd,npd->np", queries, self.centroids[top])
        return np.ascontiguousarray(top, np.int64), np.ascontiguousarray(dis, np.float32)

    def search(self, queries: np.ndarray, k: int, nprobe: int, params=None):
        """FAISS's ``search`` from these cells (``params``: a ``SearchParametersIVF``, for its
        ID selector)."""
        import faiss

        cells, dis = self.assign(queries, nprobe)
        params = params or faiss.SearchParametersIVF()
        params.nprobe = cells.shape[1]  # (faiss's Python search_preassigned takes no params: its C++ does)
        queries = np.ascontiguousarray(queries, np.float32)
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        self.ivf.search_preassigned_c(len(queries), faiss.swig_ptr(queries), k, faiss.swig_ptr(cells), faiss.swig_ptr(dis),
                                      faiss.swig_ptr(scores), faiss.swig_ptr(ids), False, params)
        return scores, ids

    def range_search(self, queries: np.ndarray, radius: float, nprobe: int, cells: np.ndarray | None = None,
                     selector=None):
        """FAISS's ``range_search`` from the ``nprobe`` nearest cells, or from ``cells`` (one
        query: the cells to probe, chosen elsewhere); ``selector``: a FAISS ID selector, whose
        rows alone are scored."""
        import faiss

        queries = np.ascontiguousarray(queries, np.float32)
        if cells is None:
            cells, dis = self.assign(queries, nprobe)
        else:
            cells = np.ascontiguousarray(np.asarray(cells, np.int64).reshape(1, -1))
            dis = np.ascontiguousarray((self.centroids[cells[0]] @ queries[0])[None, :], np.float32)
        params = faiss.SearchParametersIVF()
        params.nprobe = cells.shape[1]  # (FAISS's Python wrapper insists on the index's own nprobe)
        if selector is not None:
            params.sel = selector
        result = faiss.RangeSearchResult(len(queries))
        self.ivf.range_search_preassigned_c(len(queries), faiss.swig_ptr(queries), float(radius), faiss.swig_ptr(cells),
                                            faiss.swig_ptr(dis), result, False, params)
        lims = faiss.rev_swig_ptr(result.lims, len(queries) + 1).copy()
        found = int(lims[-1])
        return lims, faiss.rev_swig_ptr(result.distances, found).copy(), faiss.rev_swig_ptr(result.labels, found).copy()


def _tune_nprobe(index, vectors: np.ndarray, queries: np.ndarray | None, rng, cells: CentredCells | None = None,
                 codes: np.ndarray | None = None) -> tuple[int, float, float | None, int]:
    """The ``nprobe`` to search with: :data:`NPROBE_MARGIN` times the smallest power of two whose
    recall@10 against exact search (after re-scoring) is at least :data:`TARGET_RECALL`; that
    recall (measured at the smaller nprobe: a lower bound for the one returned); the balanced
    ranking's recall (below; None without ``codes``); and the nprobe of the plain top 10 alone.

    With centred cells and each row's language (``codes``), the ranking the searcher serves by
    default must reach the target too: each language's best :data:`index.balance.NEIGHBOURS`
    from one scan of the probed cells, re-scored exactly and put on one scale
    (:func:`index.balance.merge`), against the same from every row (:func:`balanced_top`). The
    plain top 10 alone gave a million passages nprobe 16 of 1,024 and a balanced recall of 0.927
    on questions: the best of a language far from the query lie in cells the plain top 10 never
    needs. Both must hold: nprobe is the larger of the two, each with its margin
    (:data:`NPROBE_MARGIN`, :data:`BALANCED_NPROBE_MARGIN`)."""
    import faiss

    if queries is None:
        queries = vectors[rng.choice(len(vectors), min(len(vectors), TUNING_QUERIES), replace=False)]
    queries = np.ascontiguousarray(queries, np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    del exact
    balanced = None
    if cells is not None and codes is not None:
        heads, balanced_truth = balanced_top(queries, vectors, codes, 10)
    nprobe, recall = 1, None
    while True:
        index.nprobe = nprobe
        set_quantizer_ef(index, nprobe)
        if recall is None or recall[1] < TARGET_RECALL:
            _, candidates = index.search(queries, 10 * REFINE) if cells is None else cells.search(queries, 10 * REFINE, nprobe)
            recall = (nprobe, recall_at(_rescore(candidates, queries, lambda ids: vectors[ids], 10), truth))
        if cells is not None and codes is not None and (balanced is None or balanced[1] < TARGET_RECALL):
            balanced = (nprobe, recall_at(_balanced_scan(cells, vectors, codes, queries, nprobe, heads, 10), balanced_truth))
        if nprobe >= index.nlist or (recall[1] >= TARGET_RECALL and (balanced is None or balanced[1] >= TARGET_RECALL)):
            plain = min(index.nlist, recall[0] * NPROBE_MARGIN)
            chosen = max(plain, min(index.nlist, balanced[0] * BALANCED_NPROBE_MARGIN) if balanced else 1)
            return chosen, round(float(recall[1]), 4), None if balanced is None else round(float(balanced[1]), 4), plain
        nprobe = min(nprobe * 2, index.nlist)


def balanced_top(queries: np.ndarray, rows: np.ndarray, codes: np.ndarray, k: int,
                 block: int = 65_536) -> tuple[list[dict], np.ndarray]:
    """The language-balanced top ``k`` of each query row over every row, exactly: each
    language's best :data:`index.balance.NEIGHBOURS` by ``query · row`` (rows laid out as a
    segment's, so that is ``q·v − q·mean_L``), merged by :func:`index.balance.merge`. Returns
    each query's heads (language code → best (score, row), best first) and the top ``k`` rows."""
    from index.balance import NEIGHBOURS, merge

    best: list[dict[int, tuple[np.ndarray, np.ndarray]]] = [{} for _ in queries]
    for start in range(0, len(rows), block):
        scores = queries @ rows[start : start + block].T
        mine = codes[start : start + block]
        for code in np.unique(mine).tolist():
            at = np.flatnonzero(mine == code)
            part = scores[:, at]
            keep = min(NEIGHBOURS, len(at))
            top = np.argpartition(-part, keep - 1, axis=1)[:, :keep] if keep < len(at) else np.broadcast_to(np.arange(len(at)), part.shape)
            for q in range(len(queries)):
                s, i = part[q, top[q]], at[top[q]] + start
                if code in best[q]:
                    s, i = np.concatenate([best[q][code][0], s]), np.concatenate([best[q][code][1], i])
                order = np.lexsort((i, -s))[:NEIGHBOURS]  # equal scores: the lower row
                best[q][code] = (s[order], i[order])
    heads = [{code: list(zip(s.astype(np.float64).tolist(), i.tolist())) for code, (s, i) in b.items()} for b in best]
    out = np.full((len(queries), k), -1, np.int64)
    for q, found in enumerate(heads):
        top = [row for _, row in merge(found, k)]
        out[q, : len(top)] = top
    return heads, out


def _balanced_scan(cells: CentredCells, rows: np.ndarray, codes: np.ndarray, queries: np.ndarray, nprobe: int,
                   heads: list[dict], k: int) -> np.ndarray:
    """The balanced top ``k`` as the searcher finds it (search.segments.scan_languages): one
    scan of the ``nprobe`` nearest cells, each language's best ``REFINE × NEIGHBOURS`` by the
    8-bit scores re-scored exactly; a language with too few in those cells is searched alone in
    4, 16 … times as many cells, as the searcher does (:func:`search_vectors`, ``widen=False``).
    (``heads``: the exact ones, for the languages to look at.)"""
    from index.balance import NEIGHBOURS, merge

    counts = np.bincount(codes)
    out = np.full((len(queries), k), -1, np.int64)
    everything = float(np.finfo(np.float32).min)

    def scan(query, probe):
        lims, approx, ids = cells.range_search(query[None, :], everything, probe)
        return ids[: lims[1]], approx[: lims[1]]

    for q, query in enumerate(queries):
        ids, approx = scan(query, nprobe)
        found = {}
        for code in heads[q]:
            need = min(min(NEIGHBOURS, int(counts[code])) * REFINE, int(counts[code]))
            mine_ids, mine_approx, probe = ids, approx, nprobe
            at = np.flatnonzero(codes[mine_ids] == code)
            while len(at) < need and probe < cells.ivf.nlist:
                probe = min(cells.ivf.nlist, probe * 4)
                mine_ids, mine_approx = scan(query, probe)
                at = np.flatnonzero(codes[mine_ids] == code)
            cand = mine_ids[at[first_best(mine_approx[at], need)]]
            exact = rows[cand] @ query
            order = np.lexsort((cand, -exact))[:NEIGHBOURS]
            found[code] = list(zip(exact[order].astype(np.float64).tolist(), cand[order].tolist()))
        top = [row for _, row in merge(found, k)]
        out[q, : len(top)] = top
    return out


def first_best(approx: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` highest of ``approx`` (among equal ones at the edge, the
    first): the set the first ``size`` of a stable descending sort holds, without the sort."""
    if size >= len(approx):
        return np.arange(len(approx))
    edge = np.partition(approx, len(approx) - size)[len(approx) - size]
    above = np.flatnonzero(approx > edge)
    return np.concatenate([above, np.flatnonzero(approx == edge)[: size - len(above)]])


def _add_here(index, vectors: np.ndarray, ids: np.ndarray) -> None:
    index.add_with_ids(vectors, ids)


def add_in_shards(index, vectors: np.ndarray, ids: np.ndarray, shards: int, run=None) -> None:
    """Fill the trained, empty IVF ``index`` as ``shards`` workers would: each gets a copy of it
    (FAISS's own serialization) and a contiguous share of the rows, adds them, and sends its
    copy back; the copies are merged into ``index`` in order (``IndexIVF.merge_from``), so each
    inverted list holds its vectors in the order one ``add_with_ids`` of all of them gives.
    ``run(fn, jobs)`` runs ``fn(*job)`` for each job and returns the results in order (default:
    here, one after the other; index.ray_build runs them as Ray tasks)."""
    import faiss

    if index.ntotal:
        raise ValueError(f"add_in_shards fills an empty trained index; this one holds {index.ntotal} vectors")
    empty = faiss.serialize_index(index)
    bounds = np.linspace(0, len(ids), max(1, int(shards)) + 1).astype(np.int64)
    jobs = [(empty, vectors[a:b], ids[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    run = run or (lambda fn, todo: [fn(*job) for job in todo])
    for part in run(add_shard, jobs):
        shard = faiss.deserialize_index(np.asarray(part, np.uint8))
        index.merge_from(shard, 0)


def add_shard(empty: np.ndarray, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """A worker's share: the serialized trained index with ``vectors`` added under ``ids``."""
    import faiss

    index = faiss.deserialize_index(np.asarray(empty, np.uint8))
    index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64))
    return faiss.serialize_index(index)


def set_quantizer_ef(index, nprobe: int) -> None:
    """An HNSW coarse quantizer must look at least as far as the cells it is asked for."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        quantizer.hnsw.efSearch = max(HNSW_EF_SEARCH, 2 * int(nprobe))


def _rescore(candidates: np.ndarray, queries: np.ndarray, rows, k: int) -> np.ndarray:
    """The top ``k`` of each row of candidate ids by exact inner product (``rows(ids)`` gives the
    stored vectors of ids)."""
    out = np.full((len(queries), k), -1, np.int64)
    for r, (cand, q) in enumerate(zip(candidates, queries)):
        cand = cand[cand >= 0]
        if len(cand):
            top = cand[np.argsort(-(rows(cand) @ q), kind="stable")[:k]]
            out[r, : len(top)] = top
    return out


class ExactRows:
    """Rows of a version's ``embeddings.npy`` read on demand with ``os.pread`` (sorted by id):
    exact vectors for re-scoring without keeping the file in the process's memory."""

    def __init__(self, path: Path):
        import os

        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self._offset = f.tell()
        if len(shape) != 2 or fortran or np.dtype(dtype) != np.dtype("<f4"):
            raise IndexFormatError(f"{path} does not hold float32 vectors: rebuild the index")
        self.shape = shape
        self._row = shape[1] * 4
        self._path = path
        self._fd = os.open(path, os.O_RDONLY)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        import os

        out = np.empty((len(ids), self.shape[1]), np.float32)
        if not len(ids):
            return out
        # each row read straight into its place (preadv: no bytes object per row; 720 rows in
        # 0.8 ms against 1.2 ms for pread + frombuffer)
        row, fd, read = self._row, self._fd, os.preadv
        view = memoryview(out).cast("B")
        for i, at in enumerate((self._offset + np.asarray(ids, np.int64) * row).tolist()):
            if read(fd, [view[i * row : (i + 1) * row]], at) != row:
                raise IndexFormatError(f"{self._path} ends before row {int(ids[i])}: rebuild the index")
        return out

    def close(self) -> None:
        import os

        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (exact ids) that the same row of ``found`` holds."""
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, (t >= 0).sum()) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def save_vector_index(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load_vector_index(path: Path, params: dict | None = None):
    import faiss

    if not path.is_file():
        raise IndexFormatError(f"the vector file {path} is missing: rebuild the index")
    ivf = bool(params) and params.get("kind") == "ivf-sq8"
    try:
        # An IVF's cells are mapped, not read: opening 1M passages took 0.7–1 s of reading 400 MB,
        # mapped it takes 0.03 s; a search reads the cells it probes (the page cache keeps them).
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if ivf else 0)
    except (RuntimeError, MemoryError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise IndexFormatError(f"the vector file {path} is unreadable ({first}): rebuild the index") from exc
    if ivf:
        try:
            found = faiss.extract_index_ivf(index)
            found.nprobe = int(params["nprobe"])
            set_quantizer_ef(index, found.nprobe)
        except (RuntimeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise IndexFormatError(f"the vector file {path} is not the IVF index its manifest says "
                                   f"({type(exc).__name__}): rebuild the index") from exc
    return index


def save_embeddings(path: Path, vectors: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(vectors, "<f4"), allow_pickle=False)


def load_embeddings(path: Path) -> np.ndarray:
    """The model's vectors of a version, memory-mapped (read only, nothing loaded until used)."""
    try:
        out = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path} is unreadable ({exc}): rebuild the index") from exc
    if out.ndim != 2 or out.dtype != np.dtype("<f4"):
        raise IndexFormatError(f"{path} holds {out.dtype} of shape {out.shape}, not float32 vectors: rebuild the index")
    return out


def search_vectors(index, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None, widen: bool = True,
                   selector=None, cells: CentredCells | None = None, filter_nprobe: int | None = None):
    """Top-``k`` (scores, ids) for each query row; only ``allowed_ids`` when given.
    Missing results (fewer than k candidates) come back as id -1.

    An IVF index restricted to a share s of the passages probes 1/s times as many cells, so it
    scans about as many allowed vectors as an unrestricted search does (a filter on a small
    language would otherwise find few of its passages in the usual cells). ``widen=False``
    starts from the usual cells instead (the per-language searches of one unfiltered query,
    index.balance: widening each would scan the index once per language); either way the cells
    are multiplied by 4 while fewer than ``k`` allowed passages are found. ``selector``: a FAISS
    ``IDSelectorBatch`` of ``allowed_ids`` made earlier (making one costs about as much as a
    search of a small index). ``cells``: the index's :class:`CentredCells`, when it has them.
    ``filter_nprobe``: the nprobe a widened search starts from (the plain top 10's, tuned with
    the index; default the index's own)."""
    queries = np.ascontiguousarray(queries, np.float32)
    with faiss_threads(1) if len(queries) == 1 else nullcontext():
        return _search(index, queries, k, allowed_ids, widen, selector, cells, filter_nprobe)


def _search(index, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None, widen: bool = True, selector=None,
            cells: CentredCells | None = None, filter_nprobe: int | None = None):
    import faiss

    ivf = _ivf(index)
    if allowed_ids is None:
        return index.search(queries, k) if cells is None else cells.search(queries, k, ivf.nprobe)
    if len(allowed_ids) == 0:
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    if selector is None:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, np.int64))
    if ivf is None:
        return index.search(queries, k, params=faiss.SearchParameters(sel=selector))
    share = len(allowed_ids) / max(1, index.ntotal) if widen else 1.0
    base = min(ivf.nprobe, filter_nprobe or ivf.nprobe) if widen else ivf.nprobe
    nprobe = min(ivf.nlist, max(base, math.ceil(base / max(share, 1e-9))))
    while True:
        if cells is None:
            scores, ids = index.search(queries, k, params=faiss.SearchParametersIVF(sel=selector, nprobe=nprobe))
        else:
            scores, ids = cells.search(queries, k, nprobe, params=faiss.SearchParametersIVF(sel=selector))
        if nprobe >= ivf.nlist or (ids >= 0).sum(axis=1).min() >= min(k, len(allowed_ids)):
            return scores, ids
        nprobe = min(ivf.nlist, nprobe * 4)  # too few of the allowed passages in those cells


@contextmanager
def faiss_threads(n: int):
    """FAISS's OpenMP threads limited to ``n`` in the calling thread, as before afterwards.

    FAISS parallelizes flat and IVF searches over the queries, so one query gains nothing from
    the OpenMP team; yet searching through ``IndexIDMap`` still wakes it, and its threads spin
    after the region, competing for the cores with the encoder of the next query (on 2 cores
    this made a whole search 1.24x the bare path instead of 1.02x; BENCHMARKS.md).
    OpenMP keeps the setting per thread, so other threads (a build, another search) are not
    touched."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _ivf(index):
    import faiss

    return faiss.try_extract_index_ivf(index)  # None for a flat index (no exception per query)


def tuning_queries(embedder, passages) -> np.ndarray:
    """Query vectors to tune an approximate index with: the opening words of a sample of the
    ``passages`` (objects with a ``text``), encoded *as queries* by the model. (The passages' own
    vectors sit closer to their cells' centres than queries do: tuned on them, nprobe comes out
    too small.)"""
    rng = np.random.default_rng(0)
    picks = rng.choice(len(passages), min(len(passages), TUNING_QUERIES), replace=False)
    texts = [" ".join(passages[i].text.split()[:QUERY_WORDS]) for i in sorted(picks.tolist())]
    return embedder.embed(texts, "query")
