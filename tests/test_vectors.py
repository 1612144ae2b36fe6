"""FAISS against a brute-force numpy oracle on seeded random vectors."""

import numpy as np
import pytest

from index.vectors import build_vector_index, language_means, load_vector_index, save_vector_index, search_vectors


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_matches_numpy(seed, tmp_path):
    rng = np.random.default_rng(seed)
    vecs, queries = unit(rng, 500, 32), unit(rng, 20, 32)
    ids = rng.permutation(10_000)[:500].astype(np.int64)  # ids need not be 0..n-1
    save_vector_index(build_vector_index(ids, vecs), tmp_path / "v.faiss")
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
    scores, got = search_vectors(build_vector_index(ids, vecs), queries, 7, allowed)
    oracle = queries @ vecs[allowed].T
    for q in range(len(queries)):
        assert set(got[q]) == set(allowed[np.argsort(-oracle[q])[:7]])
    _, none = search_vectors(build_vector_index(ids, vecs), queries, 3, np.zeros(0, np.int64))
    assert (none == -1).all()


def test_k_larger_than_the_index_pads_with_minus_one():
    rng = np.random.default_rng(3)
    _, got = search_vectors(build_vector_index(np.arange(4), unit(rng, 4, 8)), unit(rng, 1, 8), 10)
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
