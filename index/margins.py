"""Margin scoring: when two passages in different languages say the same thing.

A fixed cosine threshold cannot tell a translation from another text on the same topic: a
multilingual encoder puts every passage about missile defence close to every other one. Bitext
mining solved this with a *margin* (Artetxe & Schwenk 2019, "Margin-based parallel corpus mining
with multilingual sentence embeddings"): a pair counts by how far its cosine stands out from
each side's neighbourhood in the other side's language,

    ratio margin(x, y) = cos(x, y) / ((mean_k(x → lang y) + mean_k(y → lang x)) / 2)

where ``mean_k(p → L)`` is the mean cosine of ``p`` to its :data:`MARGIN_K` nearest passages in
language L. Measured on XQuAD paragraphs of 9 languages in one pool, these per-language
neighbourhoods beat one pooled over all other languages by far (precision 0.997 against 0.93 at
recall 0.90; BENCHMARKS.md, ``benchmarks/same_story.py``).

Everything here works on :func:`margin_vectors`: a change to how vectors are stored or
transformed changes that one function (and the calibration).

At build time every passage gets its :data:`MARGIN_K` nearest passages in each other language
(exact, one batched FAISS search per pair of languages). Their means are stored
with the version (``margins.npy``: one column per language, for queries), and the candidate pairs
whose margin reaches :data:`LINK_THRESHOLD` are the passage links stories are made of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Neighbours whose mean cosine is a passage's neighbourhood in a language (LASER's k = 4; k = 2
#: gave a little more recall on XQuAD but left the threshold 0.002 above the seed corpus's highest
#: false margin, k = 4 leaves 0.0065; BENCHMARKS.md).
MARGIN_K = 4
#: Ratio margin at or above which two passages are linked ("also reported in"): on XQuAD
#: paragraphs in 9 languages in one pool, precision 0.9966 (same-article paragraphs included as
#: false links) at recall 0.943; the seed corpus's highest cross-language margin is 1.0185
#: (benchmarks/same_story.py; BENCHMARKS.md).
LINK_THRESHOLD = 1.025
#: Query rows per batched search (bounds the copies of the query vectors: 16k x 384 floats = 25 MB).
BATCH = 16_384


def margin_vectors(vectors: np.ndarray) -> np.ndarray:
    """The vectors margins are computed on: the model's L2-normalized vectors as embedded (not
    the language-centred ones FAISS ranks with). The one place to change if the stored transform
    changes."""
    return np.ascontiguousarray(vectors, np.float32)


def load_means(path, passages: int, columns) -> np.ndarray:
    """A version's ``margins.npy``: (passages, languages) float32, checked against the manifest's
    ``columns`` (its ``stories["margin_languages"]``)."""
    from polyseek.errors import IndexFormatError

    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise IndexFormatError(f"the manifest beside {path} names no languages for its columns: rebuild the index")
    languages = len(columns)
    try:
        means = np.load(path, mmap_mode="r", allow_pickle=False)  # read where used (36 B a passage at 9 languages)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path} is unreadable ({exc}): rebuild the index") from exc
    if means.dtype != np.float32 or means.shape != (passages, languages):
        raise IndexFormatError(f"{path} holds {means.dtype} of shape {means.shape}, not ({passages}, {languages}) "
                               "float32: rebuild the index")
    return means


def ratio_margin(cosine, mean_x, mean_y):
    """``cos(x, y) / ((mean_k(x) + mean_k(y)) / 2)`` (arrays broadcast)."""
    return np.asarray(cosine, np.float32) / np.maximum((np.asarray(mean_x) + np.asarray(mean_y)) / 2, 1e-6)


def knn_mean(cosines: np.ndarray, k: int = MARGIN_K) -> np.ndarray:
    """Mean of the first ``k`` cosines of each row (best first; -inf = none; NaN when none)."""
    top = cosines[..., :k]
    found = np.isfinite(top)
    count = found.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(found, top, 0).sum(axis=-1) / count).astype(np.float32)


@dataclass(frozen=True)
class Neighbourhoods:
    """Each passage's nearest passages in each language (its own language's column is empty)."""

    langs: tuple[str, ...]  # the column of each language
    ids: np.ndarray  # (n, languages, MARGIN_K) int64, best first, -1 where none
    cosines: np.ndarray  # (n, languages, MARGIN_K) float32, -inf where none

    @property
    def means(self) -> np.ndarray:
        """(n, languages) float32: mean cosine to the MARGIN_K nearest in each language (NaN
        for the passage's own language)."""
        return knn_mean(self.cosines, MARGIN_K)


def cross_language_neighbours(vectors: np.ndarray, langs, k: int = MARGIN_K) -> Neighbourhoods:
    """The ``k`` (:data:`MARGIN_K`) nearest passages of each passage in each other language, by
    cosine of :func:`margin_vectors`: exact, whatever kind of index the version has. Each
    language's vectors go into a FAISS flat index, and every other language's passages search
    it in one batched call (BLAS; n² · dim work in all: about 4 minutes at 100k passages on
    2 cores, BENCHMARKS.md). An approximate index would not be exact, and searching it with a
    filter per pair of languages probed nearly every cell: it was slower."""
    import faiss

    vectors = margin_vectors(vectors)
    langs = np.asarray(langs)
    columns = tuple(sorted(set(langs.tolist())))
    groups = {lang: np.flatnonzero(langs == lang) for lang in columns}
    ids = np.full((len(vectors), len(columns), k), -1, np.int64)
    cos = np.full((len(vectors), len(columns), k), -np.inf, np.float32)
    for col, other in enumerate(columns):
        targets = groups[other]
        if len(columns) == 1:
            break
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors[targets])
        n = min(k, len(targets))
        for lang, rows in groups.items():
            if lang == other:
                continue
            for start in range(0, len(rows), BATCH):
                block = rows[start : start + BATCH]
                sims, found = flat.search(vectors[block], n)
                ids[block, col, :n] = targets[found]
                cos[block, col, :n] = sims
        del flat
    return Neighbourhoods(columns, ids, cos)


def passage_links(neighbours: Neighbourhoods, langs, threshold: float = LINK_THRESHOLD, means=None):
    """Linked pairs ``(a, b, margin, cosine)`` with a < b, each pair once: every candidate pair
    (one is among the other's nearest in its language) whose ratio margin reaches ``threshold``.
    ``means``: the neighbourhoods' (default: :attr:`Neighbourhoods.means`)."""
    means = neighbours.means if means is None else means
    n, n_langs, k = neighbours.ids.shape
    a = np.repeat(np.arange(n), n_langs * k)
    b = neighbours.ids.ravel()
    cos = neighbours.cosines.ravel()
    keep = b >= 0
    a, b, cos = a[keep], b[keep], cos[keep]
    if not len(a):
        return a, b, cos, cos
    col = {lang: i for i, lang in enumerate(neighbours.langs)}
    lang_col = np.array([col[lang] for lang in langs], np.int64)
    margin = ratio_margin(cos, means[a, lang_col[b]], means[b, lang_col[a]])
    keep = margin >= threshold
    a, b, cos, margin = a[keep], b[keep], cos[keep], margin[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, first = np.unique(lo * (n + 1) + hi, return_index=True)
    return lo[first], hi[first], margin[first], cos[first]
