"""Retrieval metrics over 1-based ranks of the gold item (None: not retrieved)."""

from __future__ import annotations

from typing import Hashable, Sequence


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
