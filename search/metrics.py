"""Retrieval metrics over 1-based ranks of the gold item (None: not retrieved)."""

from __future__ import annotations

from typing import Collection, Hashable, Sequence


def rank_of(ranked: Sequence[Hashable], gold: Hashable) -> int | None:
    """1-based position of ``gold`` in ``ranked``; None when absent."""
    for i, item in enumerate(ranked, 1):
        if item == gold:
            return i
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose gold is in the top ``k``."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr_at(ranks: Sequence[int | None], k: int) -> float:
    """Mean reciprocal rank, counting 0 for a gold below ``k`` or absent."""
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def summarize(ranks: Sequence[int | None]) -> dict[str, float]:
    """Recall@1, Recall@10 and MRR@10, and the number of queries."""
    return {"r1": recall_at(ranks, 1), "r10": recall_at(ranks, 10), "mrr10": mrr_at(ranks, 10), "n": len(ranks)}


def average_precision_at(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int = 20) -> float:
    """Average precision of the top ``k`` (LAReQA's mAP@20 per query): the precision at the rank
    of each relevant item found in the top ``k``, summed, over ``min(len(relevant), k)``."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    found, total = 0, 0.0
    for i, item in enumerate(ranked[:k], 1):
        if item in relevant:
            found += 1
            total += found / i
    return total / min(len(relevant), k)


def r_precision(ranked: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    """Share of the top R that is relevant, R being the number of relevant items."""
    relevant = set(relevant)
    return len(relevant.intersection(ranked[: len(relevant)])) / len(relevant) if relevant else 0.0


def share_in(ranked_langs: Sequence[str], lang: str, k: int = 10) -> float:
    """Share of the top ``k`` results in language ``lang`` (of those returned)."""
    top = list(ranked_langs[:k])
    return sum(1 for x in top if x == lang) / len(top) if top else 0.0
