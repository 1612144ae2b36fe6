"""Budgets, the reader process, records, queries and terminal output under hostile input
(the whole-corpus view is tests/test_hostile.py; index folders are tests/test_index_folder.py)."""

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from index import build_index
from index.corpus import Document, SkipDocument, Skipped, documents_from_bytes, read_regular_file
from index.limits import Limits
from index.readers.process import ReaderProcess
from polyseek.errors import CorpusError, QueryError
from polyseek.languages import normalize_tag
from polyseek.terminal import safe_json, visible
from search import Searcher
from search.searcher import MAX_QUERY_CHARS, clean_query
from tests.conftest import ROOT
from tests.hostile_corpus import pdf_sharing_one_stream

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


# --- limits ---------------------------------------------------------------------------------------

def test_limits_resolve_flag_over_environment_over_default(monkeypatch):
    assert Limits.resolve() == Limits()
    monkeypatch.setenv("POLYSEEK_MAX_CHARS", "5_000")
    monkeypatch.setenv("POLYSEEK_READ_SECONDS", "2.5")
    assert Limits.resolve() == Limits(max_chars=5000, read_seconds=2.5)
    assert Limits.resolve(max_chars=7).max_chars == 7
    monkeypatch.setenv("POLYSEEK_MAX_PASSAGES", "many")
    with pytest.raises(ValueError, match="POLYSEEK_MAX_PASSAGES='many' is not a number"):
        Limits.resolve()
    with pytest.raises(ValueError, match="max-bytes 0 must be positive"):
        Limits.resolve(max_bytes=0, max_passages=3)


def test_index_cli_takes_the_budgets_as_flags(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "long.txt").write_text("The summit ended without agreement. " * 200, encoding="utf-8")
    (tmp_path / "c" / "short.txt").write_text("The treaty was extended.", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "index", "build", str(tmp_path / "c"), "--index", str(tmp_path / "i"),
                           "--model", "fake:16", "--max-chars", "1000", "--json", "-q"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    skipped = {s["doc_id"]: s["reason"] for s in json.loads(done.stdout)["skipped"]}
    assert skipped == {"long.txt": "too much text: 7,200 characters; the limit is 1,000 characters per document "
                                   "(raise it with --max-chars or POLYSEEK_MAX_CHARS)"}


# --- declared languages ---------------------------------------------------------------------------

@pytest.mark.parametrize("tag, code", [("pt-BR", "pt"), (" EN ", "en"), ("zh_Hant_TW", "zh"), ("deu", "de"),
                                       ("ger", "de"), ("fil", "fil"), ("iw", "he"), ("sr-Latn-RS", "sr"),
                                       ("und", ""), ("", ""), ("  ", "")])
def test_language_tags_normalize_to_iso_639_1(tag, code):
    assert normalize_tag(tag) == code


@pytest.mark.parametrize("tag", ["xx", "pt-", "-BR", "english", "e n", "12", "x" * 1000, "\ud83d", "qq-ZZ"])
def test_language_tags_that_are_no_language_are_refused(tag):
    if tag == "pt-":
        assert normalize_tag(tag) == "pt"  # what main stored for "pt-BR" before: still a language
        return
    with pytest.raises(ValueError, match="language tag"):
        normalize_tag(tag)


def test_an_index_holding_a_malformed_stored_language_still_answers(tmp_path, corpus, fake):
    """Indexes built before tags were normalized stored "pt-BR" as "pt-": every search on the
    page asks for "also reported in", which must not fail on it."""
    from index import write_index
    from index.store import DocumentRow, PassageRow

    texts = {"ro.txt": ("pt-", "Scutul antirachetă de la Deveselu și garanţii pentru Rusia."),
             "en.txt": ("en", "The missile shield at Deveselu and guarantees for Russia.")}
    docs = [DocumentRow(d, d, "txt", lang, str(i), text) for i, (d, (lang, text)) in enumerate(texts.items())]
    passages = [PassageRow(i, d, 0, 0, len(text), lang, 10, text) for i, (d, (lang, text)) in enumerate(texts.items())]
    write_index(tmp_path / "index", fake, docs, passages, fake.embed([p.text for p in passages], "passage"))
    with Searcher.open(tmp_path / "index", embedder=fake) as searcher:
        hits = searcher.search("Deveselu scutul antirachetă garanţii", k=10)
        assert "pt-" in {h.lang for h in hits}
        for hit in hits:
            searcher.same_story(hit)
            searcher.counterparts(hit.text, k=3)
        assert searcher.stories(min_size=1)
        with pytest.raises(QueryError, match="not an ISO 639-1 code"):
            searcher.search("scutul", langs=["pt-"])  # as a user's filter it is still checked


# --- the reader process ---------------------------------------------------------------------------

def test_a_pdf_that_spins_is_stopped_at_the_time_limit_and_the_next_file_is_read():
    spinning = pdf_sharing_one_stream(100, b"BT /F1 10 Tf\n" + b"() Tj\n" * 450_000 + b"ET\n")
    good = pdf_sharing_one_stream(2, b"BT /F1 10 Tf 50 750 Td (The treaty was extended on Monday.) Tj ET\n")
    reader = ReaderProcess()
    try:
        started = time.monotonic()
        with pytest.raises(SkipDocument, match=r"reading took too long; the limit is 1\.0 s per file"):
            reader.read("pdf", spinning, Limits(read_seconds=1.0))
        assert time.monotonic() - started < 30  # stopped, not read to the end (minutes)
        parsed = reader.read("pdf", good, Limits())
        assert parsed.pages == ["The treaty was extended on Monday."] * 2
    finally:
        reader.close()


def test_the_pdf_reader_checks_its_budgets_page_by_page():
    # In the child the deadline and the character budget stop a PDF before its last page.
    from index.readers.pdf import read_pdf

    pdf = pdf_sharing_one_stream(3, b"BT /F1 10 Tf 50 750 Td (The treaty was extended on Monday.) Tj ET\n")
    with pytest.raises(SkipDocument, match=r"1 of 3 pages read in the time allowed per file "
                                           r"\(raise it with --read-seconds or POLYSEEK_READ_SECONDS\)"):
        read_pdf(pdf, deadline=time.monotonic() - 1)
    with pytest.raises(SkipDocument, match=r"too much text: more than 40 characters in the first 2 of 3 pages"):
        read_pdf(pdf, max_chars=40)
    assert read_pdf(pdf, max_chars=34 * 3, deadline=time.monotonic() + 60).pages == [
        "The treaty was extended on Monday."] * 3


def test_a_reader_over_its_memory_cap_is_a_skip_and_the_next_file_is_read():
    # pypdf decompresses the stream (60 MB of zeros) under a 64 MiB address-space cap.
    bomb = pdf_sharing_one_stream(1, b"0" * 60_000_000)
    reader = ReaderProcess()
    try:
        with pytest.raises(SkipDocument, match="memory|reader process"):
            reader.read("pdf", bomb, Limits(read_memory_mb=64))
        html = b"<html><body><article><p>" + b"The ministers met in Brussels on Monday. " * 20 + b"</p></article></body></html>"
        assert "ministers met" in reader.read("html", html, Limits()).text
    finally:
        reader.close()


def test_the_byte_limit_holds_while_reading_whatever_the_size_said(tmp_path, monkeypatch):
    path = tmp_path / "grows.txt"
    path.write_bytes(b"a" * 5000)
    real_fstat = os.fstat

    class Shrunk:
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 0  # as /proc files and growing files report

    monkeypatch.setattr(os, "fstat", lambda fd: Shrunk(real_fstat(fd)))
    with pytest.raises(SkipDocument, match="too large: more than 1,000 bytes read"):
        read_regular_file(path, str(tmp_path), 1000)


def test_devices_are_never_read_even_inside_the_folder():
    with pytest.raises(SkipDocument, match="not a regular file: a device"):
        read_regular_file(__import__("pathlib").Path("/dev/zero"), "/", 1000)


# --- records ----------------------------------------------------------------------------------------

SURROGATE = st.sampled_from(["\ud83d", "\udc00", "\udfff"])
TEXT = st.text(alphabet=st.one_of(st.characters(), SURROGATE), max_size=60)
VALUE = st.one_of(st.none(), TEXT, st.integers(-5, 10), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2))
RECORD = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.sampled_from(["1", "2", "a", "", " "]), VALUE),
    "text": st.one_of(TEXT, st.just("The coalition agreed on the budget after long talks."), VALUE),
    "title": VALUE, "url": VALUE, "date": VALUE, "source": VALUE,
    "lang": st.one_of(st.sampled_from(["pt-BR", " EN ", "zh_Hant", "xx-YY", "und", "", "DE", "ro-RO", "5"]), VALUE),
})


def encode(records, fmt: str) -> bytes:
    if fmt == "jsonl":  # ensure_ascii writes a lone surrogate as its \\u escape, as exports do
        return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "title", "url", "date", "source", "lang"])
    for r in records:
        row = ["" if r.get(k) is None else str(r.get(k)) for k in ("id", "text", "title", "url", "date", "source", "lang")]
        writer.writerow([v.encode("utf-8", "replace").decode("utf-8") for v in row])
    return out.getvalue().encode("utf-8", "replace")


@FUZZ
@given(records=st.lists(RECORD, max_size=8), fmt=st.sampled_from(["jsonl", "csv"]))
def test_every_record_is_indexed_or_skipped_and_nothing_stored_can_break_a_query(records, fmt):
    try:
        items = documents_from_bytes(encode(records, fmt), f"export.{fmt}")
    except SkipDocument as skip:  # the file as a whole (a raw NUL in a CSV: binary), with its reason
        assert fmt == "csv" and str(skip).startswith(("binary", "undecodable")), skip
        return
    if fmt == "jsonl":
        assert len(items) == len(records)  # one outcome per record, whatever it holds
    docs = [d for d in items if isinstance(d, Document)]
    assert all(isinstance(d, (Document, Skipped)) and d.doc_id for d in items)
    assert len({d.doc_id for d in docs}) == len(docs)  # ids unique: no UNIQUE constraint can fail
    for d in docs:
        assert re.fullmatch(r"([a-z]{2,3})?", d.lang), d.lang
        for value in (d.doc_id, d.title, d.text, d.url, d.source, d.date, d.author):
            value.encode("utf-8")  # no lone surrogate anywhere


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(records=st.lists(RECORD, min_size=1, max_size=8), fmt=st.sampled_from(["jsonl", "csv"]))
def test_any_export_builds_and_searches_with_also_reported_in(tmp_path_factory, fake, records, fmt):
    root = tmp_path_factory.mktemp("records")
    (root / "corpus").mkdir()
    (root / "corpus" / f"export.{fmt}").write_bytes(encode(records, fmt))
    (root / "corpus" / "base.txt").write_text("Missile defense talks in Geneva went on for hours.", encoding="utf-8")
    summary = build_index(root / "corpus", root / "index", embedder=fake)
    assert summary.documents_read == summary.documents_indexed + len(summary.skipped)
    with Searcher.open(root / "index", embedder=fake) as searcher:
        for hit in searcher.search("talks budget coalition", k=10, mode="hybrid"):
            searcher.same_story(hit)
            searcher.counterparts(hit.text, k=3)
            assert searcher.story(hit.story_id).story.size >= 1
        for story in searcher.stories(min_size=1):
            searcher.story(story.story_id)
        for lang in searcher.languages:
            searcher.search("talks", k=3, langs=[lang])


def test_a_csv_field_over_the_csv_modules_limit_hides_no_row():
    giant = "word " * 40_000  # 200,000 characters
    data = f"id,text\n1,first row\n2,{giant}\n3,third row\n4,fourth row\n".encode()
    items = {d.doc_id: d for d in documents_from_bytes(data, "t.csv", limits=Limits(max_chars=100_000))}
    assert set(items) == {"t.csv#1", "t.csv#2", "t.csv#3", "t.csv#4"}
    assert isinstance(items["t.csv#2"], Skipped) and items["t.csv#2"].reason.startswith("too much text: 200,000")
    assert all(isinstance(items[f"t.csv#{n}"], Document) for n in (1, 3, 4))
    assert isinstance(documents_from_bytes(data, "t.csv")[1], Document)  # within the default 2 M characters


def test_surrogate_pairs_survive_and_halves_become_replacement_characters():
    data = b'{"id": "1", "title": "Half \\ud83d", "text": "Pair \\ud83d\\ude00 and half \\udc00 here."}\n'
    (doc,) = documents_from_bytes(data, "x.jsonl")
    assert doc.text == "Pair \U0001F600 and half \ufffd here." and doc.title == "Half \ufffd"


def test_an_export_with_nothing_indexable_is_a_clear_corpus_error(tmp_path, fake):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.jsonl").write_text('{"id": "1", "lang": "xx", "text": "bad tag"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="not an ISO 639 language"):
        build_index(tmp_path / "c", tmp_path / "i", embedder=fake)


# --- queries ---------------------------------------------------------------------------------------

def test_one_query_limit_on_every_path(corpus_searcher, monkeypatch):
    searcher = corpus_searcher(16)
    seen = {}
    from index import language, lexical

    for module, name in ((lexical, "search_segments"), (language, "detect_among")):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kw):
            text = next(a for a in args if isinstance(a, str))
            seen[_name] = max(seen.get(_name, 0), len(text))
            return _original(*args, **kw)
        monkeypatch.setattr(module, name, spy)
    embed = searcher.embedder.embed
    monkeypatch.setattr(searcher.embedder, "embed", lambda texts, kind, **kw: (
        seen.__setitem__("model", max(seen.get("model", 0), *map(len, texts))) or embed(texts, kind, **kw)))
    query = "missile شبكة 导弹 " * 70_000  # 1 MB alternating scripts
    for mode in ("hybrid", "auto", "dense"):
        searcher.search(query, k=5, mode=mode, langs=["en"] if mode == "auto" else None)
    assert set(seen) == {"search_segments", "detect_among", "model"}
    assert max(seen.values()) <= MAX_QUERY_CHARS


@pytest.mark.parametrize("query", ["caf\udce9", "\ud83d", "ok \udfff ok"])
def test_a_lone_surrogate_in_a_query_is_a_query_error(corpus_searcher, query):
    searcher = corpus_searcher(16)
    with pytest.raises(QueryError, match=r"not valid text: character \d+ is U\+D[89A-F][0-9A-F]{2}"):
        searcher.search(query)
    with pytest.raises(QueryError):
        clean_query(query)


def test_the_search_cli_prints_a_query_error_for_bytes_that_are_not_utf8(corpus, tmp_path):
    subprocess.run([sys.executable, "-m", "index", "build", str(corpus), "--index", str(tmp_path / "i"), "--model",
                    "fake:64", "-q"], cwd=ROOT, check=True, capture_output=True, timeout=300,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    done = subprocess.run([sys.executable, "-m", "search", b"caf\xe9 missile", "--index", str(tmp_path / "i")],
                          cwd=ROOT, capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert done.stderr.decode().startswith("error: the query is not valid text: character 4 is U+DCE9")


# --- terminal output ------------------------------------------------------------------------------

def test_control_characters_are_made_visible():
    assert visible("a\x1b[2Jb\x07c\rd\x9be\u202ef\ud800") == "a\\x1b[2Jb\\x07c\\rd\\x9be\\u202ef\\ud800"
    assert visible("Știri · 北约 · عربي") == "Știri · 北约 · عربي"
    line = safe_json(json.dumps({"t": "a\x1b\x9b\u202e\u2028b"}, ensure_ascii=False))
    assert json.loads(line) == {"t": "a\x1b\x9b\u202e\u2028b"} and not re.search("[\x00-\x1f\x7f-\x9f\u202e\u2028]", line)


def test_the_search_cli_shows_escapes_in_names_titles_sources_and_urls(tmp_path, fake):
    (tmp_path / "c").mkdir()
    name = "\x1b]0;pwned\x07\x1b[2J.txt"
    (tmp_path / "c" / name).write_text("Missile shield talks in Geneva.", encoding="utf-8")
    (tmp_path / "c" / "w.jsonl").write_text(json.dumps({
        "id": "r\x1b[31m", "title": "T\x1b]0;x\x07itle", "source": "S\rrc", "url": "https://e.org/\x9b2J",
        "text": "Missile shield talks resumed in Vienna."}) + "\n", encoding="utf-8")
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for extra in ([], ["--json"], ["--also"]):
        done = subprocess.run([sys.executable, "-m", "search", "missile shield talks", "--index", str(tmp_path / "i"),
                               *extra], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", done.stdout), repr(done.stdout)
    assert "\\x1b]0;pwned\\x07\\x1b[2J.txt" in subprocess.run(
        [sys.executable, "-m", "search", "missile shield talks", "--index", str(tmp_path / "i")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env).stdout


def test_a_long_name_in_a_wide_script_is_cut_to_what_a_file_system_holds(tmp_path):
    # 150 CJK characters are 450 bytes of UTF-8; most file systems hold 255 bytes of name.
    from index.uploads import NAME_MAX_BYTES, safe_filename, save_uploads

    name = safe_filename("新闻" * 75 + ".txt")
    assert name.endswith(".txt") and len(name.encode("utf-8")) <= NAME_MAX_BYTES and set(name[:-4]) == {"新", "闻"}
    result = save_uploads(tmp_path, [("新闻" * 75 + ".txt", "导弹防御条约延长了。".encode("utf-8"))])
    assert result.saved == [name] and not result.rejected and (tmp_path / name).is_file()
