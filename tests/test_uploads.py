"""Uploads into the corpus: safe names, no silent overwrite, bad content refused before writing."""

import os
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from index.uploads import UnsafeName, existing, safe_filename, save_uploads

TEXT = "Rusia cere garanţii de securitate.".encode()


@pytest.mark.parametrize("name, expected", [
    ("article.txt", "article.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\Windows\\evil.md", "evil.md"),
    ("/abs/path/news.TXT", "news.txt"),
    (".hidden.txt", "hidden.txt"),
    ("ştiri azi — 1.txt", "ştiri azi _ 1.txt"),
    ("خبر.txt", "خبر.txt"),
    ("a<b>:c|d?.md", "a_b_c_d_.md"),
])
def test_safe_names(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["..", "../.txt", "notes.exe", "README", "....txt", "/", ""])
def test_names_without_a_safe_form_are_refused(name):
    with pytest.raises(UnsafeName):
        safe_filename(name)


@hsettings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_any_name_stays_one_visible_file_in_the_folder(name):
    try:
        safe = safe_filename(name + ".txt")
    except UnsafeName:
        return
    assert "/" not in safe and "\\" not in safe and "\0" not in safe
    assert not safe.startswith(".") and safe not in (".", "..") and safe.endswith(".txt")
    assert len(safe) <= 120
    assert (Path("/corpus") / safe).parent == Path("/corpus")


def test_saves_new_files_and_never_overwrites_unasked(tmp_path):
    (tmp_path / "old.txt").write_text("the original", encoding="utf-8")
    result = save_uploads(tmp_path, [("new.txt", TEXT), ("old.txt", b"replacement text")])
    assert result.saved == ["new.txt"] and result.conflicts == ["old.txt"] and not result.rejected
    assert (tmp_path / "new.txt").read_bytes() == TEXT
    assert (tmp_path / "old.txt").read_text(encoding="utf-8") == "the original"
    assert existing(tmp_path, ["old.txt", "../x/new.txt", "other.md", "bad.exe"]) == ["old.txt", "new.txt"]

    result = save_uploads(tmp_path, [("old.txt", b"replacement text")], overwrite=True)
    assert result.replaced == ["old.txt"] and result.written == ["old.txt"]
    assert (tmp_path / "old.txt").read_text(encoding="utf-8") == "replacement text"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".upload-")]  # no temporary left


def test_traversal_lands_inside_the_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = save_uploads(corpus, [("../../outside.txt", TEXT)])
    assert result.saved == ["outside.txt"] and (corpus / "outside.txt").is_file()
    assert not (tmp_path / "outside.txt").exists()


def test_bad_content_is_refused_with_its_reason(tmp_path):
    result = save_uploads(tmp_path, [
        ("binary.txt", b"\x00\x01\x02" * 10), ("empty.md", "  \n\u200b".encode()),
        ("big.txt", b"a" * 101), ("program.exe", TEXT), ("a.txt", TEXT), ("A.TXT", TEXT),
    ], max_bytes=100)
    reasons = dict(result.rejected)
    assert "binary" in reasons["binary.txt"] and "empty" in reasons["empty.md"]
    assert "too large" in reasons["big.txt"] and "unsupported format" in reasons["program.exe"]
    assert "also named" in reasons["A.TXT"]
    assert result.saved == ["a.txt"] and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_exports_are_accepted_when_a_record_has_text(tmp_path):
    good = b'{"id": "1", "text": "Rusia cere garan\\u0163ii."}\n'
    result = save_uploads(tmp_path, [("wire.jsonl", good), ("empty.csv", b"id,text\n1,\n")])
    assert result.saved == ["wire.jsonl"] and "no record with text" in dict(result.rejected)["empty.csv"]
