"""The vector index: FAISS, inner product over L2-normalized vectors (= cosine), with the
passage ids as FAISS ids (``IndexIDMap2``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polyseek.errors import IndexFormatError

METRIC = "inner_product"
KIND = "IDMap2,Flat"


def build_vector_index(ids: np.ndarray, vectors: np.ndarray):
    import faiss

    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for vectors of shape {vectors.shape}")
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64))
    return index


def save_vector_index(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load_vector_index(path: Path):
    import faiss

    if not path.is_file():
        raise IndexFormatError(f"the vector file {path} is missing: rebuild the index")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexFormatError(f"the vector file {path} is unreadable ({str(exc).splitlines()[0]}): rebuild the index") from exc


def search_vectors(index, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None):
    """Top-``k`` (scores, ids) for each query row; only ``allowed_ids`` when given.
    Missing results (fewer than k candidates) come back as id -1."""
    import faiss

    queries = np.ascontiguousarray(queries, np.float32)
    if allowed_ids is None:
        return index.search(queries, k)
    if len(allowed_ids) == 0:
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, np.int64))
    return index.search(queries, k, params=faiss.SearchParameters(sel=selector))


#: Passages a language needs before its own mean counts fully (shrinkage toward the corpus mean).
LANGUAGE_PRIOR = 1.0


def language_means(vectors: np.ndarray, langs: list[str], prior: float = LANGUAGE_PRIOR) -> dict[str, np.ndarray]:
    """The mean vector of each language, shrunk toward the corpus mean for languages with few
    passages: ``(n·mean_L + prior·mean_all) / (n + prior)``.

    Multilingual encoders score passages in the query's own language higher across the board.
    Vectors are stored as ``p − mean_L``, so a passage's score is ``q·p − q·mean_L``: the
    language's typical similarity to the query is taken off, and passages in other languages
    compete on content. Within one language the offset is a constant, so rankings there are
    exactly the model's. (On XQuAD de/es/ru/zh this raised the share of other-language gold
    paragraphs in the top 10 of a mixed pool from 0.44 to 0.85; see BENCHMARKS.md.)"""
    overall = vectors.mean(axis=0)
    langs_arr = np.asarray(langs)
    out = {}
    for lang in sorted(set(langs)):
        rows = vectors[langs_arr == lang]
        out[lang] = ((rows.sum(axis=0) + prior * overall) / (len(rows) + prior)).astype(np.float32)
    return out
