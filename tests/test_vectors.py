"""FAISS against a brute-force numpy oracle on seeded random vectors; the approximate index
against the exact one."""

import numpy as np
import pytest

from index.balance import language_means
from index.vectors import (EXACT_MAX, HNSW_FROM, IVF_KIND, TARGET_RECALL, TRAIN_PER_CELL, add_in_shards,
                           build_vector_index, load_vector_index, plan_vector_index, recall_at, save_vector_index,
                           search_vectors)


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_matches_numpy(seed, tmp_path):
    rng = np.random.default_rng(seed)
    vecs, queries = unit(rng, 500, 32), unit(rng, 20, 32)
    ids = rng.permutation(10_000)[:500].astype(np.int64)  # ids need not be 0..n-1
    save_vector_index(build_vector_index(ids, vecs)[0], tmp_path / "v.faiss")
    index = load_vector_index(tmp_path / "v.faiss")
    scores, got = search_vectors(index, queries, 10)
    oracle = queries @ vecs.T
    for q in range(len(queries)):
        order = np.argsort(-oracle[q])[:10]
        assert set(got[q]) == set(ids[order])
        np.testing.assert_allclose(scores[q], oracle[q][order], rtol=1e-5, atol=1e-6)


def test_allowed_ids_restrict_the_search():
    rng = np.random.default_rng(7)
    vecs, queries = unit(rng, 300, 16), unit(rng, 5, 16)
    ids = np.arange(300, dtype=np.int64)
    allowed = ids[ids % 3 == 0]
    scores, got = search_vectors(build_vector_index(ids, vecs)[0], queries, 7, allowed)
    oracle = queries @ vecs[allowed].T
    for q in range(len(queries)):
        assert set(got[q]) == set(allowed[np.argsort(-oracle[q])[:7]])
    _, none = search_vectors(build_vector_index(ids, vecs)[0], queries, 3, np.zeros(0, np.int64))
    assert (none == -1).all()


def test_k_larger_than_the_index_pads_with_minus_one():
    rng = np.random.default_rng(3)
    _, got = search_vectors(build_vector_index(np.arange(4), unit(rng, 4, 8))[0], unit(rng, 1, 8), 10)
    assert sorted(got[0][:4]) == [0, 1, 2, 3] and (got[0][4:] == -1).all()


def test_language_offsets_keep_rankings_within_a_language():
    rng = np.random.default_rng(5)
    vecs = unit(rng, 60, 16)
    langs = ["en"] * 30 + ["ro"] * 29 + ["ar"]
    means = language_means(vecs, langs, prior=1.0)
    stored = vecs - np.stack([means[lang] for lang in langs])
    q = unit(rng, 1, 16)[0]
    en = np.arange(30)
    assert list(np.argsort(-(stored[en] @ q))) == list(np.argsort(-(vecs[en] @ q)))
    # A one-passage language is not centred to a zero vector.
    assert np.linalg.norm(stored[59]) > 0.1
    # Offsets are exactly the language means for large languages without a prior.
    np.testing.assert_allclose(language_means(vecs, langs, prior=0.0)["en"], vecs[:30].mean(0), rtol=1e-5)


def clustered(rng, n, d, centres=40):
    """Unit vectors in clusters, as embeddings of texts on a few dozen topics are (the same
    topics for every call with the same ``d``: corpus and queries alike)."""
    c = unit(np.random.default_rng(d), centres, d)
    x = c[rng.integers(0, centres, n)] + 0.6 * unit(rng, n, d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_plan_is_exact_up_to_the_threshold_then_ivf_with_about_sqrt_n_cells():
    assert plan_vector_index(EXACT_MAX) == {"kind": "flat"}
    assert plan_vector_index(EXACT_MAX + 1)["kind"] == "ivf-sq8"
    assert plan_vector_index(1_000_000)["nlist"] == 1024
    assert plan_vector_index(5_000, exact_max=1_000)["nlist"] == 64  # never fewer than 64 cells


def test_a_segment_of_a_larger_index_gets_the_cells_of_that_index():
    # Ten 100k segments of a 1M index: each gets one 1M index's 1,024 cells (not √100k = 256), so a
    # query scans the same share of the index as one merged segment would.
    assert plan_vector_index(100_000, index_size=1_000_000)["nlist"] == 1024
    assert plan_vector_index(1_000_000, index_size=1_000_000) == plan_vector_index(1_000_000)
    assert plan_vector_index(100_000, index_size=50_000) == plan_vector_index(100_000)  # never coarser than its own
    # never fewer than TRAIN_PER_CELL of its own passages per cell: 30k passages → at most 256 cells
    assert plan_vector_index(30_000, index_size=1_000_000)["nlist"] == 256
    assert plan_vector_index(30_000, index_size=1_000_000)["nlist"] * TRAIN_PER_CELL <= 30_000
    # the flat/IVF choice and the HNSW quantizer still follow the segment's own size
    assert plan_vector_index(EXACT_MAX, index_size=10**7) == {"kind": "flat"}
    assert "quantizer" not in plan_vector_index(1_000_000, index_size=10**8)


def test_the_plan_grows_to_an_hnsw_quantizer_over_many_cells_at_10m_to_100m():
    # FAISS's guidelines: IVF65536_HNSW32 at 10M vectors, up to IVF262144_HNSW32 at 100M+.
    assert "quantizer" not in plan_vector_index(HNSW_FROM)
    assert plan_vector_index(10_000_000) == {"kind": "ivf-sq8", "nlist": 65_536, "quantizer": "hnsw32"}
    assert plan_vector_index(100_000_000) == {"kind": "ivf-sq8", "nlist": 131_072, "quantizer": "hnsw32"}
    assert plan_vector_index(10**10)["nlist"] == 262_144


@pytest.mark.parametrize("quantizer", ["", "hnsw32"])
def test_an_ivf_index_filled_in_shards_and_merged_is_the_one_process_index(quantizer, tmp_path):
    # FAISS's recipe across machines: train once, add shares to copies of the empty index, merge.
    import faiss

    rng = np.random.default_rng(21)
    vecs = clustered(rng, 6_000, 32)
    plan = dict(plan_vector_index(6_000, exact_max=1_000), **({"quantizer": quantizer} if quantizer else {}))
    one, one_plan = build_vector_index(np.arange(6_000), vecs, plan)
    jobs_seen = []
    run = lambda fn, jobs: [jobs_seen.append(len(job[1])) or fn(*job) for job in jobs]  # noqa: E731
    merged, merged_plan = build_vector_index(np.arange(6_000), vecs, plan,
                                             add=lambda index, v, ids: add_in_shards(index, v, ids, 4, run))
    assert jobs_seen == [1_500] * 4 and merged_plan == one_plan and merged.ntotal == 6_000
    assert faiss.serialize_index(merged).tobytes() == faiss.serialize_index(one).tobytes()
    save_vector_index(merged, tmp_path / "v.faiss")
    loaded = load_vector_index(tmp_path / "v.faiss", merged_plan)
    queries = clustered(np.random.default_rng(22), 50, 32)
    assert np.array_equal(search_vectors(loaded, queries, 10)[1], search_vectors(one, queries, 10)[1])


def test_ivf_sq8_is_tuned_to_the_target_recall_and_survives_saving(tmp_path):
    rng = np.random.default_rng(11)
    vecs = clustered(rng, 6_000, 32)
    index, plan = build_vector_index(np.arange(6_000), vecs, plan_vector_index(6_000, exact_max=1_000))
    assert plan["kind"] == "ivf-sq8" and 1 <= plan["nprobe"] <= plan["nlist"]
    assert plan["recall_at_10"] >= TARGET_RECALL
    save_vector_index(index, tmp_path / "v.faiss")
    loaded = load_vector_index(tmp_path / "v.faiss", plan)
    # Fresh queries (not the tuning sample): recall against exact search, and 8-bit codes that
    # decode to the vectors within quantization error.
    queries = clustered(np.random.default_rng(12), 200, 32)
    _, found = search_vectors(loaded, queries, 10)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    assert recall_at(found, truth) >= 0.95
    assert np.abs(loaded.reconstruct_batch(np.arange(50)) - vecs[:50]).max() < 0.02
    assert IVF_KIND == "IVF,SQ8"


def test_ivf_filter_on_a_small_share_still_finds_k_of_the_allowed_passages():
    rng = np.random.default_rng(13)
    vecs = clustered(rng, 6_000, 32)
    index, _ = build_vector_index(np.arange(6_000), vecs, plan_vector_index(6_000, exact_max=1_000))
    allowed = np.sort(rng.choice(6_000, 30, replace=False))  # half a percent of the index
    queries = clustered(np.random.default_rng(14), 20, 32)
    _, got = search_vectors(index, queries, 10, allowed)
    oracle = queries @ vecs[allowed].T
    assert (got >= 0).all() and np.isin(got, allowed).all()
    truth = allowed[np.argsort(-oracle, axis=1)[:, :10]]
    assert recall_at(got, truth) >= 0.9


def test_ivf_search_without_widening_still_finds_k_of_the_allowed_passages():
    """The per-language searches of one unfiltered query start from the usual cells and widen
    only while fewer than k allowed passages turn up."""
    rng = np.random.default_rng(13)
    vecs = clustered(rng, 6_000, 32)
    index, _ = build_vector_index(np.arange(6_000), vecs, plan_vector_index(6_000, exact_max=1_000))
    queries = clustered(np.random.default_rng(14), 20, 32)
    for allowed in (np.arange(0, 6_000, 3), np.sort(rng.choice(6_000, 30, replace=False))):
        _, got = search_vectors(index, queries, 10, allowed, widen=False)
        assert (got >= 0).all() and np.isin(got, allowed).all()
        truth = allowed[np.argsort(-(queries @ vecs[allowed].T), axis=1)[:, :10]]
        assert recall_at(got, truth) >= 0.8


def test_ivf_needs_ids_in_passage_order():
    rng = np.random.default_rng(15)
    with pytest.raises(ValueError, match="0..n-1"):
        build_vector_index(np.arange(1, 3_001), clustered(rng, 3_000, 16), plan_vector_index(3_000, exact_max=100))


def test_one_query_searches_on_one_openmp_thread_and_restores_the_setting():
    """One query gains nothing from FAISS's OpenMP team (it parallelizes over queries), and a
    woken team spins and slows the encoder of the next query; a batch keeps its threads."""
    import faiss

    rng = np.random.default_rng(5)
    index = build_vector_index(np.arange(50), unit(rng, 50, 8))[0]
    seen = []
    original = index.search

    def recording(*args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return original(*args, **kwargs)

    index.search = recording
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        search_vectors(index, unit(rng, 1, 8), 3)
        search_vectors(index, unit(rng, 1, 8), 3, np.arange(10))
        assert faiss.omp_get_max_threads() == 2
        search_vectors(index, unit(rng, 4, 8), 3)
    finally:
        faiss.omp_set_num_threads(before)
    assert seen == [1, 1, 2]
