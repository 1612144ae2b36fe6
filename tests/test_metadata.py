"""News exports and their metadata: JSONL/CSV records, HTML and PDF metadata, duplicates,
filters by source and date, sorting, and "also reported in"."""

import json
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from index import build_index
from polyseek.errors import QueryError
from search import Searcher
from index.margins import LINK_THRESHOLD
from tests.conftest import ROOT
from tests.test_formats import NEWS_PAGE, make_pdf

RECORDS = [
    {"id": "a1", "title": "Shield talks", "text": "NATO and Russia discussed the missile shield in Brussels.",
     "url": "https://example.org/a1", "date": "2011-06-01", "source": "Example Wire", "lang": "en"},
    {"id": "a2", "title": "Scutul", "text": "Rusia cere garanţii privind scutul antirachetă de la Deveselu.",
     "date": "2022-01-20T09:30:00", "source": "Ziarul", "lang": "ro"},
    {"id": "a3", "title": "No text here", "url": "https://example.org/a3"},
    {"id": "a4", "text": "NATO and Russia discussed the missile shield in Brussels.", "source": "Copycat"},  # duplicate of a1
    {"id": "a5", "title": "Undated", "text": "The missile shield debate continued without a date.", "source": "Example Wire"},
]


@pytest.fixture
def news(tmp_path, fake):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "wire.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\nnot json\n", encoding="utf-8")
    (corpus / "page.html").write_text(NEWS_PAGE.replace("<head>", '<head><link rel="canonical" href="https://news.example/nato">'),
                                      encoding="utf-8")
    (corpus / "report.pdf").write_bytes(make_pdf(["Page one: the Deveselu base.", "Page two: Moscow asked for guarantees."]))
    summary = build_index(corpus, tmp_path / "index", embedder=fake)
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        yield s, summary, corpus, tmp_path


def test_records_are_documents_and_bad_ones_are_reported(news):
    s, summary, _, _ = news
    skipped = {k.doc_id: k.reason for k in summary.skipped}
    assert "no text" in skipped["wire.jsonl#a3"]
    assert skipped["wire.jsonl#a4"] == "duplicate of wire.jsonl#a1 (same text)"
    assert "not JSON" in skipped["wire.jsonl#6"]
    assert summary.documents_indexed == 5  # a1, a2, a5, the page, the PDF
    hit = s.search("missile shield Brussels", 1)[0]
    assert (hit.doc_id, hit.title, hit.url, hit.source, hit.date) == (
        "wire.jsonl#a1", "Shield talks", "https://example.org/a1", "Example Wire", "2011-06-01")
    assert s.search("garanţii scutul Deveselu", 1, ["ro"])[0].date == "2022-01-20T09:30:00"


def test_html_and_pdf_metadata(news):
    s = news[0]
    page = s.search("disused Soviet airbase interceptor", 1)[0]
    assert (page.doc_id, page.source, page.date, page.url) == ("page.html", "Example News", "2011-05-05",
                                                               "https://news.example/nato")
    assert s.search("Moscow asked for guarantees", 5)[0].doc_id == "report.pdf"
    pages = {h.text[:8]: h.page for h in s.search("Page Deveselu Moscow", 10) if h.doc_id == "report.pdf"}
    assert set(pages.values()) <= {1, 2} and pages.get("Page one", 1) == 1


def test_filters_by_source_and_date_and_sort_by_date(news):
    s = news[0]
    wire = s.search("missile shield", 10, sources=["example wire"])
    assert {h.source for h in wire} == {"Example Wire"}
    recent = s.search("missile shield", 10, since="2020-01-01")
    assert [h.doc_id for h in recent] == ["wire.jsonl#a2"]
    old = s.search("missile shield", 10, until="2011-12-31")
    assert {h.doc_id for h in old} == {"wire.jsonl#a1", "page.html"}
    dated = s.search("missile shield", 10, sort="date")
    dates = [h.date for h in dated if h.date]
    assert dates == sorted(dates, reverse=True) and not dated[-1].date  # undated last
    with pytest.raises(QueryError, match="YYYY-MM-DD"):
        s.search("missile", since="last week")
    with pytest.raises(QueryError, match="sort"):
        s.search("missile", sort="alphabet")
    assert s.sources == {"Example Wire": 2, "Example News": 1, "Ziarul": 1}
    assert s.date_range == ("2011-05-05", "2022-01-20T09:30:00")


def test_field_names_of_other_exports(tmp_path, fake):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "export.csv").write_text("uid;headline;body;published\n7;Raport;Baza de la Deveselu;2020-02-03\n8;Gol;;\n",
                                       encoding="utf-8")
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = run("index", "build", str(corpus), "--index", str(tmp_path / "i"), "--model", "fake:64", "-q", "--json",
              "--fields", "id=uid,title=headline,text=body,date=published")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["documents_indexed"] == 1 and summary["skipped"][0]["doc_id"] == "export.csv#8"
    found = run("search", "Deveselu", "--index", str(tmp_path / "i"), "--json", "--since", "2020-01-01", "--sort", "date")
    row = json.loads(found.stdout.splitlines()[0])
    assert (row["doc_id"], row["title"], row["date"]) == ("export.csv#7", "Raport", "2020-02-03")
    bad = run("index", "build", str(corpus), "--index", str(tmp_path / "j"), "--model", "fake:64", "--fields", "body")
    assert bad.returncode == 2 and "ours=theirs" in bad.stderr


def test_page_filters_and_metadata(news, monkeypatch):
    _, _, corpus, tmp = news
    monkeypatch.setenv("POLYSEEK_INDEX", str(tmp / "index"))
    monkeypatch.setenv("POLYSEEK_CORPUS", str(corpus))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.text_input(key="query").input("missile shield").run()
    at.multiselect(key="sources").set_value(["Example Wire"]).run()
    at.selectbox(key="sort").set_value("date").run()
    assert not at.exception, at.exception
    cards = [h.value for h in at.html if h.value.startswith('<div class="ps-hit"')]
    assert cards and all("Example Wire" in c for c in cards)
    assert '<a class="ps-url" href="https://example.org/a1"' in cards[0] and "2011-06-01" in cards[0]


@pytest.mark.model
def test_also_reported_in_finds_the_translation(tmp_path, real_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "en.txt").write_text("Romania announced that it had reached an agreement with the United States to deploy "
                                   "a missile interceptor system at a disused Soviet airbase on its territory.", encoding="utf-8")
    (corpus / "ro.txt").write_text("România a anunţat că a ajuns la un acord cu Statele Unite pentru a amplasa un sistem de "
                                   "interceptoare antirachetă la o fostă bază aeriană sovietică de pe teritoriul său.", encoding="utf-8")
    (corpus / "ro-other.txt").write_text("Echipa naţională de fotbal a câştigat meciul de aseară cu trei goluri la zero, "
                                         "iar antrenorul a lăudat apărarea.", encoding="utf-8")
    build_index(corpus, tmp_path / "i", embedder=real_embedder)
    with Searcher.open(tmp_path / "i", embedder=real_embedder) as s:
        hit = s.search("missile interceptor agreement", 1, ["en"])[0]
        also = s.same_story(hit)
        assert [h.doc_id for h in also] == ["ro.txt"] and also[0].score >= LINK_THRESHOLD
        assert s.same_story(s.search("football match", 1, ["ro"])[0]) == []
