"""Hybrid search: BM25 fused with the dense ranking by reciprocal rank fusion."""

import json
import subprocess
import sys

import pytest

from index.manifest import MANIFEST
from index.versions import current_version
from polyseek.errors import IndexFormatError, QueryError
from search import Searcher
from search.fusion import rrf
from tests.conftest import ROOT


@pytest.fixture
def searcher(corpus_searcher):
    return corpus_searcher(16)


def test_hybrid_ranks_by_fused_reciprocal_ranks(searcher):
    query = "garanţii de securitate NATO"
    qvec = searcher.encode_query(query)
    dense = [h.passage_id for h in searcher.search_vector(qvec, 100)]
    lang = searcher.query_language(query)
    assert lang == "ro"
    own = searcher._ids_by_lang["ro"]
    lexical = [pid for pid, _ in searcher._lexical.search(query, 100, own, lang)]
    assert lexical  # the Romanian passage shares the query's (folded) words
    hybrid = searcher.search(query, k=5, mode="hybrid")
    expected = rrf([dense, lexical])[:5]
    assert [(h.passage_id, h.score) for h in hybrid] == [(pid, pytest.approx(score)) for score, pid in expected]
    assert all(-1.0 <= h.cosine <= 1.0 for h in hybrid)
    top = hybrid[0]
    assert top.cosine == pytest.approx(float(qvec @ searcher.embedder.embed([top.text], "passage")[0]), abs=1e-5)


def test_lexical_matches_only_in_the_querys_language_by_default(searcher):
    # A Romanian query filtered to English: BM25 may only propose Romanian passages, so none, and
    # the hybrid order is the dense order.
    query = "scutul antirachetă Deveselu NATO missile"
    dense = [h.passage_id for h in searcher.search(query, 10, ["en"], mode="dense")]
    same = [h.passage_id for h in searcher.search_vector(searcher.encode_query(query), 10, ["en"], mode="hybrid", query=query)]
    assert same == dense
    every = searcher.search_vector(searcher.encode_query(query), 10, ["en"], mode="hybrid", query=query,
                                   lexical_same_language=False)
    assert {h.lang for h in every} == {"en"}


def test_modes_are_checked_and_old_indexes_say_how_to_get_hybrid(searcher, tmp_path, fake):
    with pytest.raises(QueryError, match="unknown"):
        searcher.search("missile", mode="fuzzy")
    with pytest.raises(QueryError, match="query's text"):
        searcher.search_vector(searcher.encode_query("missile"), mode="hybrid")
    version = current_version(tmp_path / "index")
    data = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
    data["lexical"] = ""  # as written before hybrid search existed
    data["files"] = {k: v for k, v in data["files"].items() if not k.startswith("bm25/")}
    (version / MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    with Searcher.open(tmp_path / "index", embedder=fake) as old:
        assert not old.has_lexical and old.search("missile", 3, mode="dense")
        with pytest.raises(IndexFormatError, match="rebuild it, or search in dense mode"):
            old.search("missile", 3, mode="hybrid")


def test_cli_mode(corpus, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run("index", "build", str(corpus), "--index", str(tmp_path / "i"), "--model", "fake:64", "-q").returncode == 0
    out = run("search", "Deveselu scutul", "--index", str(tmp_path / "i"), "--mode", "hybrid", "--json", "-k", "1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["doc_id"] == "ro/deveselu.txt"
    bad = run("search", "x", "--index", str(tmp_path / "i"), "--mode", "fuzzy")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_short_queries_are_identified_among_the_index_languages():
    from index.language import detect, detect_among

    assert detect("garanţii de securitate NATO", fallback="und") == "und"  # too short to identify openly
    assert detect_among("garanţii de securitate NATO", {"en", "ro", "ar"}) == "ro"
    assert detect_among("missile defense guarantees", {"en", "ro", "ar"}) == "en"
    assert detect_among("ضمانات", {"en", "ro", "ar"}) == "ar"
    assert detect_among("1954", {"en", "ro"}) == "und" and detect_among("text", set()) == "und"


def test_auto_mode_is_hybrid_only_within_the_querys_language(searcher):
    query = "Rusia cere garanţii de securitate privind scutul antirachetă"
    assert searcher.resolve_mode("auto", query, ["ro"]) == "hybrid"
    assert searcher.resolve_mode("auto", query, ["RO"]) == "hybrid"
    assert searcher.resolve_mode("auto", query, None) == "dense"  # a mixed-language list
    assert searcher.resolve_mode("auto", query, ["ro", "en"]) == "dense"
    assert searcher.resolve_mode("auto", query, ["en"]) == "dense"
    assert searcher.resolve_mode("auto", None, ["ro"]) == "dense"
    assert searcher.resolve_mode("dense", query, ["ro"]) == "dense"
    assert searcher.resolve_mode("hybrid", query, None) == "hybrid"
    qvec = searcher.encode_query(query)
    auto = searcher.search_vector(qvec, 5, ["ro"], mode="auto", query=query)
    assert auto == searcher.search_vector(qvec, 5, ["ro"], mode="hybrid", query=query)
    assert searcher.search(query, 5) == searcher.search(query, 5, mode="dense")  # the default is auto
