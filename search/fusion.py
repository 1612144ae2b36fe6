"""Reciprocal rank fusion (Cormack, Clarke and Büttcher 2009): a document's fused score is the
sum over rankings of ``weight / (k + rank)``, rank counted from 1. Scores of different kinds
(cosines, BM25) never need to be made comparable; only positions count."""

from __future__ import annotations

from typing import Hashable, Sequence

RRF_K = 60


def rrf(rankings: Sequence[Sequence[Hashable]], weights: Sequence[float] | None = None,
        k: int = RRF_K) -> list[tuple[float, Hashable]]:
    """``(fused score, item)`` best first; ties keep the order in which items were first seen."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    fused: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(fused)}
    return sorted(((score, item) for item, score in fused.items()), key=lambda si: (-si[0], order[si[1]]))
