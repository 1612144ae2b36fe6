"""One immutable segment: the passages of some documents, their vectors and their BM25 postings.

::

    segments/s-20261124T201500-3f9a/
        segment.json     what the segment holds, and each file's size and checksum (written last)
        store.sqlite     documents and passages (passage ids: ``base`` .. ``base + passages - 1``)
        embeddings.npy   the model's vectors, one row per passage (float32)
        vectors.faiss    FAISS over [vector, one-hot language] (ids: rows 0..n-1); its kind by size
        sums.npy         per language of the segment, the sum of its vectors (float64)
        languages.npy    each passage's language, as its index in ``languages`` (int16; a
                         reader groups the rows by language without a pass over SQLite)
        bm25/            BM25 postings (index.lexical)

A segment is written once and never changed: versions share it (as hard links in each version
folder, so the file system frees it when no version holds it any more). What a version removes
from it is recorded in the version (its deletions), never in the segment.

Language balancing stays exact without rewriting old segments: FAISS holds each passage's
model vector ``v`` followed by a one-hot code of its language, and a query ``q`` is searched as
``[q, −q·mean_L for each language L of the segment]``, so one inner product gives
``q·v − q·mean_L`` with the corpus's current means (``index.balance.language_means``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from index.lexical import LexicalIndex
from index.manifest import EMBEDDINGS, STORE, VECTORS, atomic_write_text, check_info, file_digest, read_small_file
from index.store import DocumentRow, PassageRow, write_store
from index.vectors import (CentredCells, build_vector_index, load_vector_index, plan_vector_index, save_embeddings,
                           save_vector_index)
from polyseek.errors import IndexFormatError

SEGMENT_MANIFEST = "segment.json"
SUMS = "sums.npy"
LANGUAGES = "languages.npy"


#: Rows are padded with zero columns to a multiple of this width: FAISS's SIMD scalar-quantizer
#: kernels need one (384 + 9 languages = 393 floats fell back to scalar code, ~10x slower:
#: benchmarks/sq8_width.py). Zeros change no score.
ROW_ALIGN = 16


def row_width(dim: int, n_langs: int) -> int:
    """Floats in a segment's FAISS rows: the model's ``dim``, one column per language, zeros."""
    return -(-(dim + n_langs) // ROW_ALIGN) * ROW_ALIGN


def augment(vectors: np.ndarray, codes: np.ndarray, n_langs: int) -> np.ndarray:
    """[vector, one-hot language code, zeros] rows (float32, :func:`row_width` wide)."""
    out = np.zeros((len(vectors), row_width(vectors.shape[1], n_langs)), np.float32)
    out[:, : vectors.shape[1]] = vectors
    if len(vectors):
        out[np.arange(len(vectors)), vectors.shape[1] + codes] = 1.0
    return out


def query_rows(queries: np.ndarray, langs: list[str], means: dict[str, np.ndarray]) -> np.ndarray:
    """Queries as a segment of languages ``langs`` searches them: [q, −q·mean_L …, zeros] (a language
    with no live passage left in the corpus has no mean: its rows are deleted, never returned)."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    extra = (np.stack([-(queries @ means[lang]) if lang in means else np.zeros(len(queries), np.float32)
                       for lang in langs], axis=1) if langs else np.zeros((len(queries), 0)))
    pad = np.zeros((len(queries), row_width(queries.shape[1], len(langs)) - queries.shape[1] - len(langs)), np.float32)
    return np.ascontiguousarray(np.hstack([queries, extra.astype(np.float32), pad]), np.float32)


def write_segment(folder: Path, base: int, documents: list[DocumentRow], passages: list[PassageRow],
                  vectors: np.ndarray, means: dict[str, np.ndarray], *, exact_max: int,
                  tuning_queries=None, add_vectors=None, index_size: int | None = None,
                  cells_from: list[tuple[Path, dict]] | None = None) -> dict:
    """Write a segment into ``folder`` (which must not exist) and return its description (what
    ``segment.json`` holds). Passage ids must be ``base`` .. ``base + n − 1`` in order; ``means``
    are the corpus's language means, used only to make and tune an approximate index (its
    centred cells, index.vectors.centred_centroids); ``tuning_queries`` is a callable giving
    query vectors for that; ``add_vectors``: how an IVF index is filled
    (index.vectors.build_vector_index's ``add``); ``index_size``: the live passages of the index
    it joins, which sizes an IVF segment's cells (index.vectors.plan_vector_index); ``cells_from``:
    the (folder, description) of the index's other segments, whose cells an IVF segment shares
    when one fits (:func:`shared_cells`)."""
    if len(passages) != len(vectors) or any(p.passage_id != base + i for i, p in enumerate(passages)):
        raise ValueError("a segment needs one vector per passage and passage ids base..base+n-1 in order")
    folder.mkdir(parents=True)
    langs = sorted({p.lang for p in passages})
    code_of = {lang: i for i, lang in enumerate(langs)}
    codes = np.fromiter((code_of[p.lang] for p in passages), np.int64, len(passages))
    write_store(folder / STORE, documents, passages, {})
    vectors = np.ascontiguousarray(vectors, np.float32)
    save_embeddings(folder / EMBEDDINGS, vectors)
    sums = np.zeros((len(langs), vectors.shape[1]), np.float64)
    np.add.at(sums, codes, vectors.astype(np.float64))
    np.save(folder / SUMS, sums, allow_pickle=False)
    np.save(folder / LANGUAGES, codes.astype(np.int16), allow_pickle=False)
    plan = plan_vector_index(len(passages), exact_max, index_size)
    own_means = {lang: means.get(lang, np.zeros(vectors.shape[1], np.float32)) for lang in langs}
    queries = None
    if plan["kind"] != "flat" and tuning_queries is not None:
        queries = query_rows(tuning_queries(), langs, own_means)
    index, plan = build_vector_index(np.arange(len(passages), dtype=np.int64), augment(vectors, codes, len(langs)),
                                     plan, queries=queries, add=add_vectors,
                                     language_means=np.stack([own_means[lang] for lang in langs]) if langs else None,
                                     cells_from=shared_cells(cells_from or [], plan, len(passages), vectors.shape[1]))
    save_vector_index(index, folder / VECTORS)
    del index
    lexical = LexicalIndex.build([p.text for p in passages], [p.lang for p in passages])
    names = [STORE, EMBEDDINGS, SUMS, LANGUAGES, VECTORS, *lexical.save(folder)]
    counts: dict[str, int] = {}
    for p in passages:
        counts[p.lang] = counts.get(p.lang, 0) + 1
    info = {
        "name": folder.name, "base": int(base), "passages": len(passages), "documents": len(documents),
        "languages": langs, "counts": counts, "dim": int(vectors.shape[1]), "vector_params": plan,
        "lexical_length": int(np.asarray(lexical.lengths, np.int64).sum()),
        "files": {name: (folder / name).stat().st_size for name in names},
        "checksums": {name: file_digest(folder / name) for name in names},
    }
    atomic_write_text(folder / SEGMENT_MANIFEST, json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return info


def shared_cells(segments: list[tuple[Path, dict]], plan: dict, n: int, dim: int) -> np.ndarray | None:
    """The cells (model part of the centroids) a new IVF segment of ``n`` passages planned as
    ``plan`` shares: those of the largest of ``segments`` with centred cells of the same count
    and dimension, holding at least ``n`` passages (cells fit to no less data than they will
    hold; a larger import trains its own). None: it trains its own. Segments sharing cells
    have them ranked once per query (search.segments.CellPool)."""
    if plan.get("kind") != "ivf-sq8" or plan.get("quantizer"):
        return None
    fits = [(info["passages"], folder, info) for folder, info in segments
            if info["vector_params"].get("kind") == "ivf-sq8" and info["vector_params"].get("cells") == "centred"
            and not info["vector_params"].get("quantizer") and info["vector_params"].get("nlist") == plan["nlist"]
            and info["dim"] == dim and info["passages"] >= n]
    if not fits:
        return None
    _, folder, info = max(fits, key=lambda f: f[0])
    return CentredCells(load_vector_index(folder / VECTORS, info["vector_params"]), dim).model.copy()


def read_segment_info(folder: Path) -> dict:
    """The description a segment folder holds (IndexFormatError when it is missing or damaged)."""
    try:
        info = json.loads(read_small_file(folder / SEGMENT_MANIFEST, 1 << 20).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{folder / SEGMENT_MANIFEST} cannot be read ({type(exc).__name__}): rebuild the index") from exc
    check_info(info, folder)
    return info
