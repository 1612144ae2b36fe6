"""The language balance (index/balance.py): hand-computed scales, the order within a language
kept, and a synthetic pool where the model's language bias hides the right passage."""

import numpy as np
import pytest

from index import write_index
from index.balance import calibrate, language_means, merge
from index.store import DocumentRow, PassageRow
from polyseek.embedder import HashingEmbedder
from search import Searcher


def test_a_language_with_a_full_neighbourhood_is_scaled_by_its_own_best_scores():
    heads = {"en": np.array([0.9, 0.5, 0.3, 0.3, 0.1, -1.0]), "ro": np.array([0.2, 0.0])}
    scale = calibrate(heads, neighbours=4)["en"]  # its best 4: 0.9, 0.5, 0.3, 0.3
    assert scale.location == pytest.approx(0.5)
    assert scale.spread == pytest.approx(np.sqrt((0.16 + 0 + 0.04 + 0.04) / 4))
    assert scale.margin(0.9) == pytest.approx(0.4 / scale.spread)
    assert scale.score(scale.margin(0.123)) == pytest.approx(0.123)


def test_missing_neighbours_are_made_up_from_the_pooled_statistics():
    heads = {"en": np.array([0.9, 0.5, 0.3, 0.3]), "ro": np.array([0.2, 0.0])}
    scales = calibrate(heads, neighbours=4)
    # pooled mean: all six scores; pooled variance: the mean within-language variance
    pooled_mean = (0.9 + 0.5 + 0.3 + 0.3 + 0.2 + 0.0) / 6
    pooled_var = (4 * np.var([0.9, 0.5, 0.3, 0.3]) + 2 * np.var([0.2, 0.0])) / 6
    # ro has 2 of 4: half its statistics are its own, half pooled
    assert scales["ro"].location == pytest.approx((2 * 0.1 + 2 * pooled_mean) / 4)
    assert scales["ro"].spread == pytest.approx(np.sqrt((2 * 0.01 + 2 * pooled_var) / 4))
    # one passage alone, or all scores equal, still gives a finite, positive spread
    single = calibrate({"cy": np.array([0.4])}, neighbours=4)["cy"]
    assert single.spread > 0 and np.isfinite(single.margin(0.4))
    assert calibrate({}) == {}


def test_merge_keeps_each_languages_order_and_ranks_by_margin():
    found = {"en": [(0.9, 1), (0.5, 2), (0.3, 3), (0.3, 4)], "ro": [(0.2, 10), (-0.4, 11), (-0.5, 12), (-0.6, 13)]}
    merged = merge(found, 8, neighbours=4)
    order = [pid for _, pid in merged]
    for lang, pairs in found.items():  # within a language: the model's order
        assert [pid for pid in order if pid in {p for _, p in pairs}] == [p for _, p in pairs]
    # ro's best stands out more from its neighbours than en's does: it comes first,
    # although its score is lower than all of en's
    assert order[0] == 10 and [m for m, _ in merged] == sorted((m for m, _ in merged), reverse=True)
    assert len(merge(found, 3, neighbours=4)) == 3


def biased_pool(dim=64, topics=30, seed=0):
    """Two languages sharing 30 topics; "en" vectors carry a strong language direction and
    their content spread wide, "ro" vectors carry their content compressed: the model's usual
    bias, where every English passage outscores every Romanian one for an English query."""
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((topics, dim))
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    e_en, e_ro = np.eye(dim)[0], np.eye(dim)[1]
    noise = 0.05 * rng.standard_normal((2, topics, dim))
    en = content + noise[0] + 1.5 * e_en
    ro = 0.1 * (content + noise[1]) + 1.5 * e_ro
    vectors = np.concatenate([en, ro]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = content[0] + 1.5 * e_en
    return vectors, (query / np.linalg.norm(query)).astype(np.float32), ["en"] * topics + ["ro"] * topics


def test_the_right_passage_in_each_language_comes_first_despite_the_bias(tmp_path):
    vectors, query, langs = biased_pool()
    docs, passages = [], []
    for pid, lang in enumerate(langs):
        text = f"{lang} topic {pid % 30}"
        docs.append(DocumentRow(f"{lang}/{pid % 30:02d}.txt", text, "txt", lang, f"h{pid}", text))
        passages.append(PassageRow(pid, docs[-1].doc_id, 0, 0, len(text), lang, 3, text))
    fake = HashingEmbedder(64)
    write_index(tmp_path / "index", fake, docs, passages, vectors)
    with Searcher.open(tmp_path / "index", embedder=fake) as searcher:
        hits = searcher.search_vector(query, 10)
        filtered = {lang: searcher.search_vector(query, 30, [lang]) for lang in ("en", "ro")}
    # the topic-0 passage of both languages, first and second
    assert {h.doc_id for h in hits[:2]} == {"en/00.txt", "ro/00.txt"}, [(h.doc_id, h.score) for h in hits]
    # ... where mean-centring alone ranks several English passages above the Romanian one
    means = language_means(vectors, langs)
    centred = (vectors - np.stack([means[lang] for lang in langs])) @ query
    assert np.sum(centred[:30] > centred[30]) >= 3
    # a filtered search ranks exactly as the model's cosine; the hit's cosine is the model's
    for lang, found in filtered.items():
        cosines = [h.cosine for h in found]
        assert cosines == sorted(cosines, reverse=True)
        assert [h.passage_id for h in found] == [int(i) for i in np.argsort(-(vectors @ query))
                                                 if langs[i] == lang][:30]
        for h in found:
            assert h.cosine == pytest.approx(float(vectors[h.passage_id] @ query), abs=1e-5)


@pytest.mark.parametrize("exact_max", [None, 100])  # exact index, and IVF (re-scored exactly)
def test_search_matches_a_numpy_oracle_of_means_and_margins(tmp_path, exact_max):
    rng = np.random.default_rng(3)
    langs = ["en"] * 150 + ["ro"] * 90 + ["ar"] * 6  # ar: fewer than NEIGHBOURS passages
    vectors = rng.standard_normal((len(langs), 32)).astype(np.float32)
    vectors += 2.0 * np.eye(32, dtype=np.float32)[[("en", "ro", "ar").index(x) for x in langs]]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [DocumentRow(f"d{i}.txt", "", "txt", lang, f"h{i}", str(i)) for i, lang in enumerate(langs)]
    passages = [PassageRow(i, f"d{i}.txt", 0, 0, 1, lang, 1, str(i)) for i, lang in enumerate(langs)]
    fake = HashingEmbedder(32)
    write_index(tmp_path / "index", fake, docs, passages, vectors, exact_max=exact_max)
    means = language_means(vectors, langs)
    centred = vectors - np.stack([means[lang] for lang in langs])
    with Searcher.open(tmp_path / "index", embedder=fake) as searcher:
        assert (searcher.manifest.vector_params["kind"] == "flat") == (exact_max is None)
        for query in rng.standard_normal((5, 32)).astype(np.float32):
            query /= np.linalg.norm(query)
            scores = centred @ query
            heads = {lang: np.sort(scores[[i for i, x in enumerate(langs) if x == lang]])[::-1] for lang in means}
            scales = calibrate(heads)
            oracle = sorted(((float(scales[x].margin(s)), i) for i, (x, s) in enumerate(zip(langs, scores))),
                            key=lambda t: (-t[0], t[1]))[:10]
            hits = searcher.search_vector(query, 10)
            assert [h.passage_id for h in hits] == [i for _, i in oracle]
            assert [h.score for h in hits] == pytest.approx([m for m, _ in oracle], abs=1e-4)
            assert [h.cosine for h in hits] == pytest.approx([float(vectors[i] @ query) for _, i in oracle], abs=1e-5)


def test_standardized_scores_match_an_oracle_and_read_the_spread_sample_once(tmp_path, monkeypatch):
    """Searcher.standardized: q·(p − mean_L) over the query's spread in L (index.watches), the
    spread measured on a seeded sample that is read from the segments once per open index."""
    from index.watches import language_spread, spread_sample

    rng = np.random.default_rng(5)
    langs = ["en"] * 60 + ["ro"] * 40
    vectors = rng.standard_normal((len(langs), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [DocumentRow(f"d{i}.txt", "", "txt", lang, f"h{i}", str(i)) for i, lang in enumerate(langs)]
    passages = [PassageRow(i, f"d{i}.txt", 0, 0, 1, lang, 1, str(i)) for i, lang in enumerate(langs)]
    fake = HashingEmbedder(16)
    write_index(tmp_path / "index", fake, docs, passages, vectors)
    means = language_means(vectors, langs)
    centred = vectors - np.stack([means[lang] for lang in langs])
    ids_by_lang = {lang: np.array([i for i, x in enumerate(langs) if x == lang]) for lang in means}
    with Searcher.open(tmp_path / "index", embedder=fake) as searcher:
        reads = []
        raw = searcher._segments.raw
        monkeypatch.setattr(searcher._segments, "raw", lambda ids: reads.append(len(ids)) or raw(ids))
        for query in rng.standard_normal((3, 16)).astype(np.float32):
            query /= np.linalg.norm(query)
            spread = language_spread(query, {lang: centred[ids] for lang, ids in spread_sample(ids_by_lang).items()},
                                     {lang: len(ids) for lang, ids in ids_by_lang.items()})
            hits = searcher.search_vector(query, 10)
            z = searcher.standardized(query, hits)
            assert z == pytest.approx([float(centred[h.passage_id] @ query / spread[h.lang][0]) for h in hits],
                                      rel=1e-4, abs=1e-5)
    # the sample (one read per language: 60 en, 40 ro) once over the three queries; the other
    # reads are the hits' vectors (10 at a time)
    assert sum(1 for n in reads if n in (60, 40)) == 2, reads
