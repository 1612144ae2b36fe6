"""Hostile input, generated: arbitrary bytes and text through the reader, the chunker, the whole
build, and queries. Nothing crashes; every document is indexed or skipped with a reason."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from index import build_index
from index.chunking import chunk_text
from index.corpus import SkipDocument, document_from_bytes
from index.lexical import tokenize
from polyseek.embedder import HashingEmbedder
from polyseek.errors import QueryError
from search import Searcher

FAKE = HashingEmbedder(32, max_tokens=64)
# Characters that break naive code: BOM, NUL, RTL/LTR marks and embeddings, zero-width ones,
# combining marks, surrogate-free astral emoji, Arabic, CJK, newlines of every kind.
NASTY = "\ufeff\x00\u200f\u200e\u202b\u202c\u200b\u200c\u200d\u0301\u0651\U0001F600\u0640مرحبا中文\r\n\u2028\u2029\t "
TEXT = st.text(alphabet=st.sampled_from(NASTY) | st.characters(blacklist_categories=("Cs",)), max_size=400)
BYTES = st.binary(max_size=600) | TEXT.map(lambda t: t.encode("utf-8")) | TEXT.map(lambda t: t.encode("utf-16"))
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=BYTES, ext=st.sampled_from([".txt", ".md", ".TXT", ".pdf", ""]))
def test_reader_indexes_or_skips_any_bytes(data, ext):
    try:
        doc = document_from_bytes(data, f"doc{ext}")
    except SkipDocument as skip:
        assert str(skip)  # a reason
        return
    assert doc.text.strip() and "\x00" not in doc.text and "\r" not in doc.text
    assert doc.title and len(doc.title) <= 121


@FUZZ
@given(text=TEXT, lang=st.sampled_from(["en", "ar", "zh", "ro", "und"]), budget=st.integers(8, 40))
def test_chunks_point_into_the_text_and_fit_the_budget(text, lang, budget):
    for chunk in chunk_text(text, lang, FAKE, budget):
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.n_tokens <= budget


@FUZZ
@given(text=TEXT, lang=st.sampled_from(["en", "ar", "ru", None]))
def test_lexical_tokens_of_any_text(text, lang):
    assert all(isinstance(t, str) and t for t in tokenize(text, lang))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(BYTES, min_size=1, max_size=6), long_line=st.booleans())
def test_documents_in_equal_indexed_plus_skipped(tmp_path_factory, files, long_line):
    root = tmp_path_factory.mktemp("fuzz")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, data in enumerate(files):
        (corpus / f"f{i}.txt").write_bytes(data)
    if long_line:  # one word of 20,000 letters and a 50,000-character line
        (corpus / "long.txt").write_text("x" * 20_000 + " " + "word " * 10_000, encoding="utf-8")
    try:
        summary = build_index(corpus, root / "index", embedder=FAKE, chunk_tokens=32)
    except Exception as exc:  # only "nothing to index" is allowed, and only when nothing was indexable
        assert type(exc).__name__ == "CorpusError" and "nothing to index" in str(exc)
        return
    assert summary.documents_read == len(files) + long_line
    assert summary.documents_indexed + len(summary.skipped) == summary.documents_read
    assert all(s.reason for s in summary.skipped)


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    (root / "c").mkdir()
    (root / "c" / "a.txt").write_text("Robert'); DROP TABLE passages;-- and <script>alert(1)</script> news.", encoding="utf-8")
    (root / "c" / "b.txt").write_text("Rusia cere garanţii de securitate. قال المتحدث إن روسيا", encoding="utf-8")
    build_index(root / "c", root / "i", embedder=FAKE)
    with Searcher.open(root / "i", embedder=FAKE) as s:
        yield s


@pytest.mark.parametrize("query", [
    "x" * 100_000, "?!…,;:()[]{}", "😀🚀🔥", "\x00\x01\x1b[31m", "'; DROP TABLE passages; --", "<script>alert(1)</script>",
    "\u200f\u200b", "مرحبا", "  a  ", "%", "_", "*", "NULL",
])
def test_hostile_queries_answer_or_say_why(searcher, query):
    for mode in ("dense", "hybrid", "auto"):
        try:
            hits = searcher.search(query, 5, mode=mode)
        except QueryError as exc:
            assert "empty" in str(exc)
            continue
        assert len(hits) <= 5 and all(np.isfinite(h.score) for h in hits)
    assert searcher._segments.count_passages() == 2  # nothing dropped


@FUZZ
@given(query=TEXT)
def test_any_query_text(searcher, query):
    try:
        searcher.search(query, 3, mode="auto")
    except QueryError as exc:
        assert "empty" in str(exc)
