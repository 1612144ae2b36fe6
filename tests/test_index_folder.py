"""A damaged index folder — manifest fields fuzzed, files swapped for links, FIFOs, /dev/zero or
folders, a damaged FAISS or SQLite file whose checksum was made to match — opens as a usable
index or fails with a clear IndexFormatError: never a hang, never AttributeError or RuntimeError."""

import json
import os
import shutil
import signal
import sqlite3
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from index import build_index
from index.manifest import MANIFEST, Manifest, file_digest
from index.versions import CURRENT, current_version
from polyseek.errors import IndexFormatError, IndexNotFoundError, PolyseekError
from search import Searcher


@contextmanager
def no_hang(seconds: int = 30):
    """Fail (instead of stalling the suite) when the body blocks, as a FIFO or /dev/zero would."""
    def fail(*_):
        raise TimeoutError(f"hung for {seconds} s")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    from polyseek.embedder import HashingEmbedder

    root = tmp_path_factory.mktemp("template")
    (root / "corpus").mkdir()
    for i, text in enumerate(["Missile defense in Europe and guarantees for Russia.",
                              "Scutul antirachetă de la Deveselu și garanțiile cerute de Rusia.",
                              "Die Raketenabwehr in Europa und die Garantien für Russland."]):
        (root / "corpus" / f"{i}.txt").write_text(text, encoding="utf-8")
    build_index(root / "corpus", root / "index", embedder=HashingEmbedder(dim=64, max_tokens=128))
    return root / "index"


@pytest.fixture
def index(template, tmp_path):
    shutil.copytree(template, tmp_path / "index", symlinks=True)
    return tmp_path / "index"


def outcome(index_dir, fake) -> str:
    """'usable' (opened, and a hybrid search with "also reported in" answered) or the error's
    class name; any error that is not a PolyseekError fails the test."""
    with no_hang():
        try:
            with Searcher.open(index_dir, embedder=fake) as searcher:
                for hit in searcher.search("missile guarantees", k=3, mode="hybrid" if searcher.has_lexical else "dense"):
                    searcher.same_story(hit)
            return "usable"
        except PolyseekError as exc:
            # A clear message: it says to rebuild (or, for a model mismatch, names the models).
            assert "rebuild" in str(exc).lower() or isinstance(exc, IndexNotFoundError), exc
            return type(exc).__name__


def version(index_dir):
    return current_version(index_dir)


def edit_manifest(index_dir, change) -> None:
    path = version(index_dir) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=20) | st.sampled_from(["/dev/zero", "../../etc/passwd", "store.sqlite", "bm25",
                                                              "ivf-sq8", "fake:64", "\x00", ""]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)
FIELDS = [f for f in Manifest.__dataclass_fields__] + ["unknown_field"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON, min_size=1, max_size=3), drop=st.booleans())
def test_fuzzed_manifest_fields_open_or_say_the_index_is_damaged(template, tmp_path_factory, fake, changes, drop):
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(template, index_dir, symlinks=True)

    def change(data):
        for name, value in changes.items():
            if drop and name in data:
                del data[name]
            else:
                data[name] = value
    edit_manifest(index_dir, change)
    assert outcome(index_dir, fake) in ("usable", "IndexFormatError", "ModelMismatchError")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=st.sampled_from(["files", "checksums"]),
       name=st.sampled_from(["/dev/zero", "../../../dev/zero", "store.sqlite", "vectors.faiss", "bm25/params.index.json",
                             "nothing", "a/../../b", ".", "bm25", "pipe"]),
       value=st.one_of(st.integers(-5, 2**40), st.text(max_size=70), st.none()))
def test_fuzzed_file_lists_never_read_outside_or_hang(template, tmp_path_factory, fake, entry, name, value):
    index_dir = tmp_path_factory.mktemp("files") / "index"
    shutil.copytree(template, index_dir, symlinks=True)
    os.mkfifo(version(index_dir) / "pipe")
    edit_manifest(index_dir, lambda data: data[entry].__setitem__(name, value))
    assert outcome(index_dir, fake) in ("usable", "IndexFormatError")


@pytest.mark.parametrize("value", [None, [], "store.sqlite", {"store.sqlite": "big"}, {"store.sqlite": -1}, 7])
def test_files_of_the_wrong_type(index, fake, value):
    edit_manifest(index, lambda data: data.__setitem__("files", value))
    assert outcome(index, fake) == "IndexFormatError"


def swap(path, how, tmp_path):
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    elif how == "link-outside":
        (tmp_path / "elsewhere").write_bytes(b"x" * 100)
        path.symlink_to(tmp_path / "elsewhere")
    elif how == "folder":
        path.mkdir()
    elif how == "empty":
        path.write_bytes(b"")


HOW = ["fifo", "dev-zero", "link-outside", "folder", "empty"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", ["manifest.json", "store.sqlite", "vectors.faiss", "embeddings.npy",
                                  "bm25/params.index.json", "bm25/vocab.index.json", CURRENT])
def test_files_swapped_for_special_files(index, fake, tmp_path, name, how):
    path = (index / CURRENT) if name == CURRENT else version(index) / name
    swap(path, how, tmp_path)
    assert outcome(index, fake) in (["IndexFormatError", "IndexNotFoundError"] if name == CURRENT else ["IndexFormatError"])


def recompute(index_dir, name) -> None:
    """Make the manifest agree with a damaged file: size and checksum."""
    path = version(index_dir) / name
    edit_manifest(index_dir, lambda data: (data["files"].__setitem__(name, path.stat().st_size),
                                           data["checksums"].__setitem__(name, file_digest(path))))


@pytest.mark.parametrize("damage", ["truncated", "header", "random", "empty"])
def test_damaged_faiss_file_with_a_matching_checksum(index, fake, damage):
    path = version(index) / "vectors.faiss"
    data = bytearray(path.read_bytes())
    data = {"truncated": data[: len(data) // 2], "header": b"\xff" * 40 + data[40:],
            "random": os.urandom(len(data)), "empty": b""}[damage]
    path.write_bytes(bytes(data))
    recompute(index, "vectors.faiss")
    assert outcome(index, fake) == "IndexFormatError"


@pytest.mark.parametrize("damage", ["no documents table", "no means", "wrong mean size", "passage ids out of range",
                                    "not sqlite"])
def test_damaged_store_with_a_matching_checksum(index, fake, damage):
    path = version(index) / "store.sqlite"
    if damage == "not sqlite":
        path.write_bytes(b"SQLite format 3\x00" + os.urandom(5000))
    else:
        con = sqlite3.connect(path)
        con.execute({"no documents table": "DROP TABLE documents", "no means": "DELETE FROM language_means",
                     "wrong mean size": "UPDATE language_means SET vector = x'00000000'",
                     "passage ids out of range": "UPDATE passages SET passage_id = passage_id + 1000"}[damage])
        con.commit()
        con.close()
    recompute(index, "store.sqlite")
    assert outcome(index, fake) == "IndexFormatError"


@pytest.mark.parametrize("content", [b"[" * 100_000, b"{" + b" " * (2 << 20) + b"}", b"\xff\xfe", b"null",
                                     b'{"format_version": 2, "files": null}'])
def test_unreadable_manifest(index, fake, content):
    (version(index) / MANIFEST).write_bytes(content)
    assert outcome(index, fake) == "IndexFormatError"


@pytest.mark.parametrize("content", ["v-../../etc", "v-\x00", "x" * 5000, "v-" + "a" * 300, ""])
def test_current_naming_no_version(index, fake, content):
    (index / CURRENT).write_text(content, encoding="utf-8")
    assert outcome(index, fake) == "IndexFormatError"


def test_a_damaged_index_is_rebuilt_by_the_next_update(index, fake, tmp_path):
    from index import update_index

    swap(version(index) / "store.sqlite", "fifo", tmp_path)
    corpus = json.loads((version(index) / MANIFEST).read_text())["corpus"]
    with no_hang():
        summary = update_index(corpus, index, embedder=fake)
    assert summary.passages and outcome(index, fake) == "usable"
