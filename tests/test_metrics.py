import pytest

from search.fusion import rrf
from search.metrics import mrr_at, rank_of, recall_at, summarize


def test_metrics_against_hand_computed_values():
    ranks = [1, 3, None, 12, 2]  # five queries: gold at 1, 3, absent, 12, 2
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 10) == pytest.approx(3 / 5)
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 0 + 0 + 1 / 2) / 5)  # 0.36667
    assert summarize(ranks) == pytest.approx({"r1": 0.2, "r10": 0.6, "mrr10": 0.3666667, "n": 5})
    assert summarize([]) == {"r1": 0.0, "r10": 0.0, "mrr10": 0.0, "n": 0}


def test_rank_of():
    assert rank_of(["a", "b", "c"], "c") == 3
    assert rank_of(["a", "b"], "z") is None
    assert rank_of([], "a") is None


def test_rrf_orders_by_summed_reciprocal_ranks():
    dense, lexical = ["a", "b", "c"], ["c", "d"]
    fused = rrf([dense, lexical], k=60)
    scores = dict((item, score) for score, item in fused)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)  # third in one list, first in the other
    assert scores["a"] == pytest.approx(1 / 61)
    assert [item for _, item in fused] == ["c", "a", "b", "d"]
    # weights scale a ranking's say: a small one leaves the dense order alone
    assert [item for _, item in rrf([dense, ["c"]], [1.0, 1.0])] == ["c", "a", "b"]
    assert [item for _, item in rrf([dense, ["c"]], [1.0, 0.01])] == ["a", "b", "c"]
    # ties keep first-seen order; a zero weight adds nothing
    assert [item for _, item in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]
    assert [item for _, item in rrf([dense, lexical], [1.0, 0.0])] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        rrf([dense], [1.0, 2.0])
