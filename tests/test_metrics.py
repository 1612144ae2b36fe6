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


def test_average_precision_at_20_against_hand_computed_values():
    from search.metrics import average_precision_at

    # relevant at ranks 1, 3 and 6 of three relevant: (1/1 + 2/3 + 3/6) / 3
    ranked = ["a", "x", "b", "y", "z", "c"]
    assert average_precision_at(ranked, {"a", "b", "c"}) == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    # one of three relevant never retrieved: it counts as zero precision
    assert average_precision_at(ranked[:4], {"a", "b", "c"}) == pytest.approx((1 + 2 / 3) / 3)
    # a relevant item below the cut-off does not count: rank 3 of k=2
    assert average_precision_at(["x", "a", "b"], {"a", "b"}, k=2) == pytest.approx((1 / 2) / 2)
    # more relevant items than k: divided by k, so a perfect top k scores 1
    assert average_precision_at(["a", "b"], {"a", "b", "c"}, k=2) == 1.0
    assert average_precision_at(["x", "y"], {"a"}) == 0.0 and average_precision_at(["a"], set()) == 0.0


def test_r_precision_and_own_language_share():
    from search.metrics import r_precision, share_in

    # R = 3 relevant; two of the top 3 are relevant
    assert r_precision(["a", "x", "b", "c"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    assert r_precision(["a", "b"], {"a", "b"}) == 1.0 and r_precision(["x"], {"a"}) == 0.0
    langs = ["de", "de", "es", "de", "ru"]
    assert share_in(langs, "de", k=4) == pytest.approx(3 / 4)
    assert share_in(langs, "ru", k=10) == pytest.approx(1 / 5)  # of the five returned
    assert share_in([], "de") == 0.0
