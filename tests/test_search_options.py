"""Searcher options the page uses: one passage per document, and a query encoded once."""

import numpy as np
import pytest

from index import build_index
from polyseek.errors import QueryError
from search import Searcher


@pytest.fixture
def searcher(corpus_searcher):
    return corpus_searcher(8)  # small passages, so a document has several of them


def test_one_passage_per_document_is_each_documents_best(searcher):
    all_hits = searcher.search("missile shield guarantees NATO", k=200)
    assert len({h.doc_id for h in all_hits}) < len(all_hits)  # documents repeat without grouping
    grouped = searcher.search("missile shield guarantees NATO", k=200, per_document=True)
    assert len({h.doc_id for h in grouped}) == len(grouped) == len({h.doc_id for h in all_hits})
    best = {}
    for h in all_hits:
        best.setdefault(h.doc_id, h)
    assert grouped == list(best.values())


def test_grouping_looks_deeper_until_it_has_k_documents(tmp_path, fake):
    # One document with 40 passages that all match better than the other two documents: the
    # first look (k×4 = 12 passages) finds one document, so grouping must look deeper.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.txt").write_text(" ".join(f"Missile shield {i}." for i in range(40)), encoding="utf-8")
    (corpus / "b.txt").write_text("A missile was seen over the sea near the coast today.", encoding="utf-8")
    (corpus / "c.txt").write_text("The missile story ran in the evening paper with photos.", encoding="utf-8")
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=8)
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        top = s.search("missile shield", k=12)
        assert {h.doc_id for h in top} == {"long.txt"}
        grouped = s.search("missile shield", k=3, per_document=True)
        assert [h.doc_id for h in grouped][0] == "long.txt"
        assert sorted(h.doc_id for h in grouped) == ["b.txt", "c.txt", "long.txt"]
        assert s.search("missile", k=2, per_document=True, langs=["fi"]) == []


def test_search_vector_equals_search(searcher):
    qvec = searcher.encode_query("garanţii de securitate")
    assert qvec.shape == (64,) and np.isclose(np.linalg.norm(qvec), 1)
    assert searcher.search_vector(qvec, 5) == searcher.search("garanţii de securitate", 5, mode="dense")
    with pytest.raises(QueryError, match="empty"):
        searcher.encode_query("  ")
    with pytest.raises(QueryError, match="out of range"):
        searcher.search("", k=0)  # k is checked before the query is encoded
