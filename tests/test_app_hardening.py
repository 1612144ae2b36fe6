"""The page never shows an exception panel: uploads that fail in the operating system, an
index damaged in each way tests/test_index_folder.py knows, and hostile queries each give a
message (AppTest, hashing embedder)."""

import errno
import json
import os
import re
import sqlite3

import pytest

from index.manifest import MANIFEST, file_digest
from index.versions import CURRENT, current_version
from search.searcher import MAX_QUERY_CHARS
from tests.test_app import cards, open_page, plain, search, site  # noqa: F401 (site is a fixture)


def messages(at) -> str:
    return " | ".join(plain(at.error) + plain(at.warning) + plain(at.success) + plain(at.info))


def upload(at, files, replace=False):
    at.file_uploader[0].set_value(files).run()
    if replace:
        at.checkbox(key="replace").check().run()
    at.button(key="add_files").click().run()
    assert not at.exception, at.exception
    return at


def test_upload_name_long_in_bytes_is_shortened_and_saved(site):
    _, corpus = site
    name = "中" * 116 + ".txt"  # 116 characters, 348 bytes: over the 255-byte limit of file names
    at = upload(open_page(), [(name, "北约秘书长表示，欧洲导弹防御系统不会威胁俄罗斯。".encode(), "text/plain")])
    saved = [p.name for p in corpus.iterdir() if p.name.startswith("中")]
    assert len(saved) == 1 and len(saved[0].encode()) <= 200 and saved[0].endswith(".txt")
    assert "Added to" in messages(at)


def test_upload_onto_a_folder_of_that_name_says_why(site):
    _, corpus = site
    (corpus / "report.txt").mkdir()
    at = upload(open_page(), [("report.txt", b"A new report on the treaty talks.", "text/plain")], replace=True)
    assert re.search(r"Not added: report\.txt: cannot be written as 'report\.txt' in .*: Is a directory", messages(at))
    assert (corpus / "report.txt").is_dir()


@pytest.mark.parametrize("error", [errno.ENAMETOOLONG, errno.ENOSPC, errno.EACCES])
def test_upload_failing_in_the_os_says_why(site, monkeypatch, error):
    import index.uploads

    def fail(*_):
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(index.uploads, "_write", fail)
    at = upload(open_page(), [("news.txt", b"The ministers met in Brussels on Monday.", "text/plain")])
    assert f"Not added: news.txt: cannot be written as 'news.txt'" in messages(at)
    assert os.strerror(error) in messages(at)


def _edit_manifest(version, change):
    data = json.loads((version / MANIFEST).read_text())
    change(data)
    (version / MANIFEST).write_text(json.dumps(data))


def _recompute(version, name):
    _edit_manifest(version, lambda d: (d["files"].__setitem__(name, (version / name).stat().st_size),
                                       d["checksums"].__setitem__(name, file_digest(version / name))))


def damage(index_dir, kind):
    v = current_version(index_dir)
    if kind == "files null":
        _edit_manifest(v, lambda d: d.__setitem__("files", None))
    elif kind == "checksums name /dev/zero":
        _edit_manifest(v, lambda d: d["checksums"].__setitem__("/dev/zero", "0" * 64))
    elif kind == "manifest nested":
        (v / MANIFEST).write_text("[" * 100_000)
    elif kind == "CURRENT a FIFO":
        (index_dir / CURRENT).unlink()
        os.mkfifo(index_dir / CURRENT)
    elif kind == "store a FIFO":
        (v / "store.sqlite").unlink()
        os.mkfifo(v / "store.sqlite")
    elif kind == "vectors a link to /dev/zero":
        (v / "vectors.faiss").unlink()
        (v / "vectors.faiss").symlink_to("/dev/zero")
    elif kind == "faiss damaged, checksum matching":
        (v / "vectors.faiss").write_bytes(b"\xff" * 64 + (v / "vectors.faiss").read_bytes()[64:])
        _recompute(v, "vectors.faiss")
    elif kind == "store without documents, checksum matching":
        con = sqlite3.connect(v / "store.sqlite")
        con.execute("DROP TABLE documents")
        con.commit()
        con.close()
        _recompute(v, "store.sqlite")
    elif kind == "vector_params wrong":
        _edit_manifest(v, lambda d: d.__setitem__("vector_params", {"kind": "ivf-sq8", "nprobe": 4}))


@pytest.mark.parametrize("kind", ["files null", "checksums name /dev/zero", "manifest nested", "CURRENT a FIFO",
                                  "store a FIFO", "vectors a link to /dev/zero", "faiss damaged, checksum matching",
                                  "store without documents, checksum matching", "vector_params wrong"])
def test_each_kind_of_damaged_index_is_a_message(site, kind):
    index_dir, _ = site
    damage(index_dir, kind)
    at = open_page()  # asserts no exception
    assert any("cannot be used" in e and "rebuild" in e.lower() for e in plain(at.error)), messages(at)
    assert at.button(key="build_first")


def test_a_huge_query_is_cut_to_the_limit_everywhere(site):
    at = open_page()
    assert at.text_input(key="query").max_chars == MAX_QUERY_CHARS
    at = search(at, "missile shield " * 70_000)  # 1 MB: the box refuses it (Streamlit checks max_chars)
    assert not cards(at) and not at.error and at.text_input(key="query").value == ""
    at = search(at, ("missile shield " * 700)[:MAX_QUERY_CHARS])  # the longest query the box takes
    assert cards(at)
    echo = next(h.value for h in at.html if h.value.startswith('<p class="ps-summary"'))
    assert len(re.search(r'data-query="([^"]*)"', echo).group(1)) <= MAX_QUERY_CHARS


@pytest.mark.parametrize("query", ["\u202e\u2066 missile", "\x1b[2J\x07 shield", "<script>alert(1)</script>",
                                   "\x00\x00", "🚀" * 3000, "ok " + "\u0301" * 3900])
def test_hostile_queries_answer_or_say_why(site, query):
    at = search(open_page(), query)
    assert cards(at) or at.warning or at.info


def test_a_lone_surrogate_cannot_reach_the_page(site):
    """The browser sends widget values as UTF-8 protobuf, which cannot hold a lone surrogate:
    AppTest refuses to send one, as a browser would. (The Searcher turns one into a QueryError
    for the other callers: tests/test_hardening.py.)"""
    at = open_page()
    with pytest.raises(UnicodeEncodeError):
        at.text_input(key="query").input("caf\udce9 missile").run()
