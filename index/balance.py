"""Language balance: scores that mean the same whatever the passage's language.

Multilingual encoders score passages in the query's own language (and in the languages they
know best) higher across the board, so a search with no language filter fills its first page
with one language. Two steps take that away, in this order:

1. **At build time**, each passage vector is stored minus its language's mean
   (:func:`language_means`): ``q·(p − mean_L)`` takes off the language's typical similarity.
2. **At query time**, each language's scores are put on one scale, a *margin* over the query's
   own neighbourhood in that language (:func:`calibrate`): ``(s − m) / sd``, where ``m`` and
   ``sd`` are the mean and standard deviation of the query's :data:`NEIGHBOURS` best scores among
   that language's passages. A passage ranks high when it stands out from what the query finds
   closest in its language, as margin scoring does in bitext mining (Artetxe & Schwenk 2019) and
   CSLS in word translation (Conneau et al. 2018). Languages the model places tighter or wider,
   nearer or farther from the query, compete on one scale.

Both steps are affine with a positive slope within one language, so a search restricted to
one language ranks exactly as the model does; only the order *between* languages changes.
A language with fewer passages than :data:`NEIGHBOURS` has the missing neighbours made up from
the query's pooled statistics (one or two passages make no spread of their own).

On XQuAD's mixed pool (9 languages, 2,160 paragraphs, every question asked with no filter) this
raised mAP@20 from 0.668 (mean-centring alone) to 0.740, every filtered language pair unchanged;
``NEIGHBOURS`` was chosen on de, es, ru, zh and confirmed on tr, el, hi, vi, th (BENCHMARKS.md,
``benchmarks/language_agnostic.py``). Removing language directions (LIR, Yang et al. 2021; LSAR,
Xie et al. 2022), whitening per language and a closed-form z-score over the whole language were
measured there too and gave less, or cost filtered pairs.

This module is the one place the balance lives. The searcher calls :func:`merge` with each
language's best passages (stories and watches search through the searcher); anything that
ranks passages of several languages from its own FAISS neighbours can do the same: give
:func:`calibrate` each language's best scores, then compare ``Scale.margin`` values. Sentence
highlighting compares sentences of one passage, one language: the balance cannot change it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Passages a language needs before its own mean counts fully (shrinkage toward the corpus mean).
LANGUAGE_PRIOR = 1.0
#: The query's best scores in a language that make its neighbourhood (mean and spread). Chosen
#: on XQuAD de/es/ru/zh among 5, 10, 20, 50, 100 and the whole language; held-out languages
#: agreed (BENCHMARKS.md).
NEIGHBOURS = 20
#: Smallest spread used (a language whose best scores are all equal has none).
MIN_SPREAD = 1e-3


def language_means(vectors: np.ndarray, langs: list[str], prior: float = LANGUAGE_PRIOR) -> dict[str, np.ndarray]:
    """The mean vector of each language, shrunk toward the corpus mean for languages with few
    passages: ``(n·mean_L + prior·mean_all) / (n + prior)``. Vectors are stored as ``p − mean_L``
    (step 1 above); within one language the offset ``q·mean_L`` is a constant."""
    overall = vectors.mean(axis=0)
    langs_arr = np.asarray(langs)
    out = {}
    for lang in sorted(set(langs)):
        rows = vectors[langs_arr == lang]
        out[lang] = ((rows.sum(axis=0) + prior * overall) / (len(rows) + prior)).astype(np.float32)
    return out


@dataclass(frozen=True)
class Scale:
    """One language's scale for one query: ``margin = (score − location) / spread``."""

    location: float
    spread: float

    def margin(self, scores):
        return (np.asarray(scores, np.float64) - self.location) / self.spread

    def score(self, margins):
        """The stored-vector score back from a margin."""
        return np.asarray(margins, np.float64) * self.spread + self.location


def calibrate(heads: dict[str, np.ndarray], neighbours: int = NEIGHBOURS) -> dict[str, Scale]:
    """The scale of each language from the query's best scores there (``heads[lang]``: scores of
    ``q·(p − mean_L)``, best first, at least ``min(neighbours, passages in L)`` of them).

    Each language's location and spread are the mean and standard deviation of its top
    ``neighbours`` scores. A language with fewer (n < neighbours) has the missing ones made up
    from the pooled values of all languages: ``(n·own + (neighbours − n)·pooled) / neighbours``,
    the pooled mean being that of all the scores and the pooled variance the mean
    within-language variance. (So a language of a few passages, whose own spread means little,
    is judged mostly on the pooled one; one with ``neighbours`` or more on its own.)"""
    tops = {lang: np.asarray(h, np.float64)[:neighbours] for lang, h in heads.items()}
    tops = {lang: t for lang, t in tops.items() if len(t)}
    if not tops:
        return {}
    sizes = np.array([len(t) for t in tops.values()], np.float64)
    p_mean = float(sum(t.sum() for t in tops.values()) / sizes.sum())
    p_var = float(sum(len(t) * t.var() for t in tops.values()) / sizes.sum())
    out = {}
    for lang, t in tops.items():
        n = len(t)
        w = max(0, neighbours - n)
        mean = (n * t.mean() + w * p_mean) / (n + w)
        var = (n * t.var() + w * p_var) / (n + w)
        out[lang] = Scale(float(mean), max(float(np.sqrt(var)), MIN_SPREAD))
    return out


def merge(found: dict[str, list[tuple[float, int]]], n: int, neighbours: int = NEIGHBOURS) -> list[tuple[float, int]]:
    """The ``n`` best (margin, passage id) over languages, from each language's best
    (score, passage id) pairs, best first (see :func:`calibrate`)."""
    scales = calibrate({lang: np.array([s for s, _ in pairs]) for lang, pairs in found.items()}, neighbours)
    merged = []
    for lang, pairs in found.items():
        if pairs:
            margins = scales[lang].margin([s for s, _ in pairs])
            merged += [(float(m), pid) for m, (_, pid) in zip(margins, pairs)]
    merged.sort(key=lambda x: (-x[0], x[1]))
    return merged[:n]
