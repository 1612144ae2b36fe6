"""Script-aware tokens and the BM25 index stored in each index version."""

import numpy as np
import pytest

from index import build_index
from index.lexical import FOLDER, TOKENIZER, LexicalIndex, normalize_arabic, tokenize
from index.manifest import read_manifest
from index.versions import current_version


def test_romanian_diacritics_fold_as_people_type_them():
    # cedilla (ş ţ) and comma-below (ș ț) forms, upper and lower case, and none at all
    assert tokenize("Şeful ţării") == tokenize("Șeful țării") == tokenize("SEFUL TARII") == ["seful", "tarii"]
    assert tokenize("garanţiile de securitate, «NATO»!") == ["garantiile", "de", "securitate", "nato"]


def test_words_are_stemmed_in_their_language():
    assert tokenize("гарантий", "ru") == tokenize("гарантии", "ru") == ["гарант"]
    assert tokenize("garanţiile securității", "ro") == tokenize("Garanții securitate", "ro") == ["garant", "secur"]
    assert tokenize("Guarantees", "en") == tokenize("guaranteed", "en")
    assert tokenize("гарантия") != tokenize("гарантии")  # no language, no stemmer
    assert tokenize("garanţiile", "xx") == ["garantiile"]  # a language Snowball lacks: words as they are
    assert tokenize("المعاهدة", "ar") == tokenize("معاهدة", "ar") == ["معاهد"]  # article and ta marbuta go


def test_arabic_is_normalized():
    # tashkeel and tatweel go; alef forms, ta marbuta and alef maqsura are unified
    assert tokenize("وَقَالَ الأمريكيـــة") == ["وقال", "الامريكيه"]
    assert normalize_arabic("إلى") == normalize_arabic("الى") == normalize_arabic("إلي") == "الي"
    assert normalize_arabic("آمن") == normalize_arabic("امن")
    assert tokenize("مدرسة، مستشفى ٢٠١٠") == ["مدرسه", "مستشفي", "2010"]


def test_chinese_becomes_character_bigrams_and_mixed_text_splits_by_script():
    assert tokenize("导弹防御") == ["导弹", "弹防", "防御"]
    assert tokenize("北约NATO在2010年") == ["北约", "nato", "在", "2010", "年"]
    assert tokenize("中") == ["中"]
    assert tokenize("Россия, Ελλάδα") == ["россия", "ελλαδα"]
    assert tokenize("  …  ") == []


def test_bm25_search_filter_and_round_trip_without_pickle(tmp_path):
    texts = ["Rusia cere garanţii de securitate", "Missile defense guarantees", "北约导弹防御系统", "nothing"]
    idx = LexicalIndex.build(texts)
    assert [pid for pid, _ in idx.search("garanții securitate", 5)] == [0]
    assert [pid for pid, _ in idx.search("导弹防御", 5)] == [2]
    assert idx.search("guarantees", 5, np.array([0, 2, 3])) == []  # filtered out
    assert idx.search("xyzzy", 5) == [] and idx.search("", 5) == []
    files = idx.save(tmp_path)
    assert files and all((tmp_path / f).is_file() for f in files)
    for f in files:
        if f.endswith(".npy"):
            np.load(tmp_path / f, allow_pickle=False)  # plain arrays: loads with pickle off
    again = LexicalIndex.load(tmp_path, len(texts))
    assert again.search("garantii", 5) == idx.search("garantii", 5)


def test_builds_store_bm25_and_rebuilds_keep_it_consistent(corpus, tmp_path, fake):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake)
    version = current_version(index_dir)
    manifest = read_manifest(version)
    assert manifest.lexical == TOKENIZER
    assert any(f"/{FOLDER}/" in name for name in manifest.files)
    (corpus / "new.txt").write_text("Zanzibar spice markets reopened on Tuesday.", encoding="utf-8")
    build_index(corpus, index_dir, embedder=fake)
    version = current_version(index_dir)
    manifest = read_manifest(version)
    from tests.conftest import segment_dir

    lexical = LexicalIndex.load(segment_dir(index_dir), manifest.passages)
    [(pid, _)] = lexical.search("zanzibar", 5)
    from search import Searcher

    with Searcher.open(index_dir, embedder=fake) as s:
        assert s.search("zanzibar", 1, mode="hybrid")[0].doc_id == "new.txt"
    # a damaged BM25 file is caught by the manifest's size check
    npy = next(n for n in manifest.files if n.endswith("rows.npy"))
    (version / npy).write_bytes(b"\x00")
    import pytest
    from polyseek.errors import IndexFormatError

    with pytest.raises(IndexFormatError, match="damaged"):
        read_manifest(version)


def test_passages_without_words_still_make_an_index():
    idx = LexicalIndex.build(["😀 🚀", "… —"])
    assert idx.search("rocket", 5) == [] and idx.search("😀", 5) == []


def _zipf_texts(rng, n: int, vocabulary: int = 300) -> list[str]:
    """Texts whose words follow Zipf's law (a few tokens in most texts, most in few), with the
    first fifth repeated at the end (identical texts: tied scores)."""
    words = [f"w{i}" for i in range(vocabulary)]
    p = 1 / np.arange(1, vocabulary + 1) ** 1.1
    p /= p.sum()
    texts = [" ".join(rng.choice(words, int(rng.integers(3, 30)), p=p)) for _ in range(n)]
    return texts + texts[: n // 5], words, p


@pytest.mark.parametrize("scan", [0, 32, 10**9])  # lists searched by candidate / the default / always scanned
def test_pruned_bm25_is_exactly_full_bm25(monkeypatch, scan):
    """MaxScore pruning returns what scoring every posting returns: the same ids, bit-equal
    scores, the same ties at the k-th place, over segments with deleted rows and filters."""
    from index import lexical
    from index.lexical import LexicalPart, search_segments

    monkeypatch.setattr(lexical, "SCAN", scan)
    rng = np.random.default_rng(7 + scan % 1000)
    texts, words, p = _zipf_texts(rng, 400)
    weighed = {"pruned": 0, "full": 0}
    for trial in range(80):
        cuts = np.sort(rng.choice(np.arange(1, len(texts)), int(rng.integers(0, 4)), replace=False))
        edges = [0, *cuts.tolist(), len(texts)]
        parts = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            live = rng.random(hi - lo) > 0.2 if rng.random() < 0.5 else None
            allowed = np.flatnonzero(rng.random(hi - lo) > 0.5) if rng.random() < 0.5 else None
            deleted = np.flatnonzero(~live) if live is not None and trial % 3 else None  # known or not
            parts.append(LexicalPart(LexicalIndex.build(texts[lo:hi]), live, allowed, lo, deleted=deleted))
        query = " ".join(rng.choice(words, int(rng.integers(1, 8)), p=p))
        k, ties = int(rng.integers(1, 60)), bool(trial % 2)
        monkeypatch.setattr(lexical, "PRUNE", True)
        pruned = search_segments(parts, query, k, ties=ties)
        monkeypatch.setattr(lexical, "PRUNE", False)
        full = search_segments(parts, query, k, ties=ties)
        assert pruned == full, (trial, query, k, ties)
        if ties and len(full) > k:
            assert full[k][0] == full[k - 1][0]  # rows tied with the k-th come too
        weighed["full"] += len(full)
    assert weighed["full"] > 500  # the searches found plenty


def test_pruning_skips_most_postings_of_a_common_token(monkeypatch):
    from index.lexical import LexicalPart, search_segments

    texts = [f"common filler{i % 7}" for i in range(3000)] + ["common rare"] * 3
    index = LexicalIndex.build(texts)
    weighed = []
    original = LexicalPart.weights
    monkeypatch.setattr(LexicalPart, "weights", lambda self, where, rows, *a: weighed.append(len(rows)) or
                        original(self, where, rows, *a))
    found = search_segments([LexicalPart(index, None, None, 0)], "rare common", 3)
    assert [pid for _, pid in found] == [3000, 3001, 3002]
    assert 0 < sum(weighed) < 50  # the 3,003 postings of "common" were not all weighed


def test_segments_without_stored_bounds_search_the_same(tmp_path):
    """A segment written before the bounds were stored is searched with the idf as its bound."""
    from index.lexical import BOUNDS

    rng = np.random.default_rng(3)
    texts, words, p = _zipf_texts(rng, 300)
    LexicalIndex.build(texts).save(tmp_path)
    with_bounds = LexicalIndex.load(tmp_path, len(texts))
    assert with_bounds.bounds is not None
    (tmp_path / FOLDER / BOUNDS).unlink()
    without = LexicalIndex.load(tmp_path, len(texts))
    assert without.bounds is None
    for _ in range(40):
        query = " ".join(rng.choice(words, 4, p=p))
        assert with_bounds.search(query, 10) == without.search(query, 10)


def test_stored_bounds_bound_every_weight():
    from index.lexical import B, K1

    rng = np.random.default_rng(5)
    texts, _, _ = _zipf_texts(rng, 200)
    index = LexicalIndex.build(texts)
    avgdl = index.total_length / index.n_passages
    for col in range(len(index.vocab)):
        lo, hi = index.indptr[col], index.indptr[col + 1]
        tf, dl = index.tfs[lo:hi].astype(np.float64), index.lengths[index.rows[lo:hi]]
        assert index.bounds[col] == (tf / (K1 * ((1 - B) + B * dl / avgdl) + tf)).max()
