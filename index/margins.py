"""Margin scoring: when two passages in different languages say the same thing.

A fixed cosine threshold cannot tell a translation from another text on the same topic: a
multilingual encoder puts every passage about missile defence close to every other one. Bitext
mining solved this with a *margin* (Artetxe & Schwenk 2019, "Margin-based parallel corpus mining
with multilingual sentence embeddings"): a pair counts by how far its cosine stands out from each
side's neighbourhood,

    ratio margin(x, y) = cos(x, y) / ((mean_k(x) + mean_k(y)) / 2)

where ``mean_k(p)`` is the mean cosine of ``p`` to its :data:`MARGIN_K` nearest neighbours *in
other languages*. Everything here works on :func:`margin_vectors`; a change to how vectors are
stored or transformed changes that one function (and the calibration in BENCHMARKS.md, made with
``benchmarks/same_story.py``).

At build time every passage gets its :data:`CANDIDATES` nearest neighbours in other languages
(one batched search per pair of languages: exact blocks of matrix products for a flat index,
the index's own FAISS search with exact re-scoring for an approximate one), from which come its
``mean_k`` (stored with the version, for queries) and its links (pairs whose margin is at least
:data:`LINK_THRESHOLD`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Neighbours whose mean cosine is a passage's neighbourhood (LASER's k = 4; BENCHMARKS.md).
MARGIN_K = 4
#: Neighbours in other languages kept per passage at build time: the candidates for its links.
CANDIDATES = 8
#: Ratio margin at or above which two passages are linked ("also reported in"); calibrated on
#: XQuAD paragraphs in 9 languages in one pool (benchmarks/same_story.py; BENCHMARKS.md).
LINK_THRESHOLD = 1.08
#: Query rows per block of the exact neighbour search (a block of 1024 x 100k cosines is 400 MB).
BLOCK = 1024


def margin_vectors(vectors: np.ndarray) -> np.ndarray:
    """The vectors margins are computed on: the model's L2-normalized vectors as embedded (not
    the language-centred ones FAISS ranks with). The one place to change if the stored transform
    changes."""
    return np.ascontiguousarray(vectors, np.float32)


def ratio_margin(cosine, mean_x, mean_y):
    """``cos(x, y) / ((mean_k(x) + mean_k(y)) / 2)`` (arrays broadcast)."""
    return np.asarray(cosine, np.float32) / np.maximum((np.asarray(mean_x) + np.asarray(mean_y)) / 2, 1e-6)


@dataclass(frozen=True)
class Neighbourhoods:
    """Each passage's nearest passages in other languages, best first (-1 where fewer exist)."""

    ids: np.ndarray  # (n, CANDIDATES) int64
    cosines: np.ndarray  # (n, CANDIDATES) float32, -inf where ids is -1

    def means(self, k: int = MARGIN_K) -> np.ndarray:
        """Mean cosine to the first ``k`` neighbours (fewer where fewer exist; 0 with none)."""
        return knn_means(self.cosines, k)


def knn_means(cosines: np.ndarray, k: int = MARGIN_K) -> np.ndarray:
    top = cosines[:, :k]
    found = np.isfinite(top)
    total = np.where(found, top, 0).sum(axis=1)
    return (total / np.maximum(found.sum(axis=1), 1)).astype(np.float32)


def cross_language_neighbours(vectors: np.ndarray, langs, n: int = CANDIDATES, index=None,
                              centred_offsets: dict[str, np.ndarray] | None = None) -> Neighbourhoods:
    """The ``n`` nearest passages of each passage among those in other languages, by cosine of
    :func:`margin_vectors`. Exact (blocks of matrix products) unless ``index``, an approximate
    FAISS index of ``vector − mean(language)`` under passage ids, is given: then each language's
    passages search each other language's through it (ranking within one language is by cosine
    there, the mean being constant) and the candidates are re-scored exactly."""
    vectors = margin_vectors(vectors)
    langs = np.asarray(langs)
    total = len(vectors)
    ids = np.full((total, n), -1, np.int64)
    cos = np.full((total, n), -np.inf, np.float32)
    groups = {lang: np.flatnonzero(langs == lang) for lang in sorted(set(langs.tolist()))}
    for lang, rows in groups.items():
        others = np.flatnonzero(langs != lang)
        if not len(others):
            continue
        for start in range(0, len(rows), BLOCK):
            block = rows[start : start + BLOCK]
            if index is None:
                cand_ids, cand_cos = _exact_block(vectors, block, others, n)
            else:
                cand_ids, cand_cos = _approximate_block(index, vectors, block, groups, lang, n)
            ids[block, : cand_ids.shape[1]] = cand_ids
            cos[block, : cand_cos.shape[1]] = cand_cos
    return Neighbourhoods(ids, cos)


def _exact_block(vectors: np.ndarray, block: np.ndarray, others: np.ndarray, n: int):
    sims = vectors[block] @ vectors[others].T
    n = min(n, len(others))
    part = np.argpartition(-sims, n - 1, axis=1)[:, :n] if n < len(others) else np.tile(np.arange(len(others)), (len(block), 1))
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1, kind="stable")
    return others[np.take_along_axis(part, order, axis=1)], np.take_along_axis(part_sims, order, axis=1)


def _approximate_block(index, vectors: np.ndarray, block: np.ndarray, groups: dict, lang: str, n: int):
    from index.vectors import REFINE, search_vectors

    found = []
    for other, rows in groups.items():
        if other == lang:
            continue
        _, cand = search_vectors(index, vectors[block], min(n * REFINE, len(rows)), rows)
        found.append(cand)
    cand = np.concatenate(found, axis=1)
    sims = np.einsum("ij,ikj->ik", vectors[block], vectors[np.maximum(cand, 0)])
    sims[cand < 0] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    ids, sims = np.take_along_axis(cand, order, axis=1), np.take_along_axis(sims, order, axis=1)
    ids[~np.isfinite(sims)] = -1
    return ids, sims


def passage_links(neighbours: Neighbourhoods, threshold: float = LINK_THRESHOLD, k: int = MARGIN_K):
    """Linked pairs ``(a, b, margin, cosine)`` with a < b, each pair once: every candidate pair
    whose ratio margin is at least ``threshold``."""
    means = neighbours.means(k)
    a = np.repeat(np.arange(len(neighbours.ids)), neighbours.ids.shape[1])
    b = neighbours.ids.ravel()
    cos = neighbours.cosines.ravel()
    keep = b >= 0
    a, b, cos = a[keep], b[keep], cos[keep]
    margin = ratio_margin(cos, means[a], means[b])
    keep = margin >= threshold
    a, b, cos, margin = a[keep], b[keep], cos[keep], margin[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(lo * (len(neighbours.ids) + 1) + hi, return_index=True)
    return lo[first], hi[first], margin[first], cos[first]
