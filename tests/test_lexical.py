"""Script-aware tokens and the BM25 index stored in each index version."""

import numpy as np

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
