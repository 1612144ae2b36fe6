"""HTML and PDF articles: the text people read, not the page furniture."""

import pytest

from index import build_index
from index.corpus import SkipDocument, document_from_bytes
from search import Searcher

NEWS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>NATO shield | Example News</title>
<meta property="og:site_name" content="Example News"></head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav>
<article><h1>Romania signs interceptor agreement</h1><p class="byline">By Jane Doe, 5 May 2011</p>
<p>Romania announced in June that it had reached an agreement with the United States to deploy a U.S.
missile interceptor system at a disused Soviet airbase on its territory.</p>
<p>Russia and NATO agreed to cooperate on the so-called European missile defense system at the Lisbon
summit in November 2010. Şeful statului a confirmat acordul.</p></article>
<aside><h3>Related posts:</h3><ul><li><a href="/a">Another story</a></li></ul><p>Views: 0</p></aside>
<footer>Copyright 2011 Example News. All rights reserved.</footer></body></html>"""

PAGES = ["Page one: the Deveselu base will host the interceptors.",
         "Page two: Moscow asked for legally binding guarantees."]


def make_pdf(pages, title=None):
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_html_article_text_without_boilerplate():
    doc = document_from_bytes(NEWS_PAGE.encode("utf-8"), "news/nato.html")
    assert doc.title == "Romania signs interceptor agreement" and doc.format == "html"
    assert "disused Soviet airbase" in doc.text and "Şeful statului" in doc.text
    for junk in ("Related posts", "Views: 0", "Copyright", "Sport", "Another story"):
        assert junk not in doc.text, junk


def test_html_without_an_article_is_skipped_with_the_reason():
    with pytest.raises(SkipDocument, match="no article text"):
        document_from_bytes(b"<html><head><title>x</title></head><body><script>var a;</script></body></html>", "empty.htm")


def test_pdf_pages_in_order_and_title():
    doc = document_from_bytes(make_pdf(PAGES, title="Deveselu"), "report.pdf")
    assert doc.title == "Deveselu" and doc.format == "pdf"
    assert doc.text.index("Page one") < doc.text.index("Page two")
    assert "legally binding guarantees" in doc.text


def test_scanned_or_broken_pdfs_are_skipped_with_the_reason():
    with pytest.raises(SkipDocument, match="no text layer in 2 page"):
        document_from_bytes(make_pdf(["", ""]), "scan.pdf")
    with pytest.raises(SkipDocument, match="unreadable PDF"):
        document_from_bytes(b"%PDF-1.7 this is not really a pdf", "broken.pdf")


def test_html_and_pdf_are_indexed_and_found(tmp_path, fake):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "nato.html").write_text(NEWS_PAGE, encoding="utf-8")
    (corpus / "report.pdf").write_bytes(make_pdf(PAGES))
    (corpus / "scan.pdf").write_bytes(make_pdf([""]))
    summary = build_index(corpus, tmp_path / "index", embedder=fake)
    assert summary.documents_indexed == 2 and [s.doc_id for s in summary.skipped] == ["scan.pdf"]
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        assert s.search("legally binding guarantees Moscow", 1)[0].doc_id == "report.pdf"
        assert s.search("disused Soviet airbase interceptor", 1)[0].doc_id == "nato.html"
