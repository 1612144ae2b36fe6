"""Build and search end to end with the hashing embedder: storage, manifest checks, language
filter, atomic swap and errors."""

import json
import threading

import pytest

from index import build_index
from index.manifest import MANIFEST, read_manifest
from index.versions import CURRENT, current_version, writer_lock
from tests.conftest import segment_dir
from polyseek.embedder import HashingEmbedder
from polyseek.errors import (CorpusError, IndexFormatError, IndexLockedError, IndexNotFoundError,
                             ModelMismatchError, QueryError)
from search import Hit, Searcher


@pytest.fixture
def built(corpus, tmp_path, fake):
    index_dir = tmp_path / "index"
    summary = build_index(corpus, index_dir, embedder=fake, chunk_tokens=32)
    return index_dir, summary


def test_build_summary_and_manifest(built, fake):
    index_dir, summary = built
    assert summary.documents_read == summary.documents_indexed == 5
    assert summary.passages >= 5 and not summary.skipped
    assert {"en", "ro", "ar", "zh"} <= set(summary.languages)
    manifest = read_manifest(current_version(index_dir))
    assert manifest.model == "fake:64" and manifest.model_fingerprint == fake.fingerprint
    assert manifest.dim == 64 and manifest.metric == "inner_product" and manifest.vector_index == "IDMap2,Flat"
    assert manifest.passages == summary.passages and manifest.documents == 5
    assert sum(manifest.languages.values()) == summary.passages
    assert manifest.prompts == {"query": "", "passage": ""}
    assert {"faiss-cpu", "numpy"} <= set(manifest.libraries)


def test_search_returns_typed_hits_best_first(built, fake):
    with Searcher.open(built[0], embedder=fake) as s:
        hits = s.search("legally binding guarantees missile shield", k=3)
        assert all(isinstance(h, Hit) for h in hits)
        assert hits[0].doc_id == "en/missiles.txt"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        doc = s.document_text(hits[0].doc_id)
        assert doc[hits[0].start : hits[0].end] == hits[0].text
        assert hits[0].title == "Missile defense in Europe."


def test_language_filter(built, fake):
    with Searcher.open(built[0], embedder=fake) as s:
        assert {h.lang for h in s.search("scutul antirachetă", k=20, langs=["ro"])} == {"ro"}
        assert {h.lang for h in s.search("scutul", k=20, langs=["RO", "ar"])} <= {"ro", "ar"}
        assert s.search("anything", k=5, langs=["fi"]) == []  # no Finnish here: nothing, not an error
        with pytest.raises(QueryError, match="ISO 639-1"):
            s.search("anything", langs=["english; DROP TABLE passages"])


def test_k_and_query_are_validated(built, fake):
    with Searcher.open(built[0], embedder=fake) as s:
        for bad in ("", "   \n\t"):
            with pytest.raises(QueryError, match="empty"):
                s.search(bad)
        for k in (0, 1001, -3, 2.5, True):
            with pytest.raises(QueryError, match="out of range"):
                s.search("missile", k=k)
        assert len(s.search("missile", k=1000)) == s.manifest.passages  # fewer passages than k
        assert s.search("missile " * 50_000, k=2)  # very long queries still answer


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="python -m index build"):
        Searcher.open(tmp_path / "nothing-here")


def test_the_manifest_decides_the_model(built):
    other = HashingEmbedder(dim=64, max_tokens=256)  # same name, other fingerprint
    with pytest.raises(ModelMismatchError, match="rebuild the index"):
        Searcher.open(built[0], embedder=other)
    with pytest.raises(ModelMismatchError):
        Searcher.open(built[0], embedder=HashingEmbedder(dim=32))
    # Without an embedder, the manifest's model id is loaded.
    with Searcher.open(built[0]) as s:
        assert s.embedder.name == "fake:64" and s.search("missile", k=1)


def test_unknown_format_version_and_damaged_files_are_refused(built, fake):
    version = current_version(built[0])
    data = json.loads((version / MANIFEST).read_text())
    (version / MANIFEST).write_text(json.dumps(dict(data, format_version=99)))
    with pytest.raises(IndexFormatError, match="format version 99"):
        Searcher.open(built[0], embedder=fake)
    (version / MANIFEST).write_text(json.dumps(data))
    with open(segment_dir(built[0]) / "vectors.faiss", "ab") as f:
        f.write(b"garbage")
    with pytest.raises(IndexFormatError, match="vectors.faiss"):
        Searcher.open(built[0], embedder=fake)


@pytest.mark.parametrize("name", ["store.sqlite", "vectors.faiss", "bm25/rows.npy", "bm25/vocab.json"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_files_are_named_never_served(built, fake, name, damage):
    path = segment_dir(built[0]) / name
    data = bytearray(path.read_bytes())
    if damage == "flip":  # same size, different bytes: only the checksum can tell
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.")):
        Searcher.open(built[0], embedder=fake)


def test_rebuild_swaps_atomically_and_old_readers_keep_answering(built, corpus, fake):
    index_dir, first = built
    old = Searcher.open(index_dir, embedder=fake)
    before = [h.passage_id for h in old.search("missile", k=3)]
    (corpus / "en" / "new.txt").write_text("A brand new article about Deveselu interceptors.")
    second = build_index(corpus, index_dir, embedder=fake, chunk_tokens=32)
    assert second.version != first.version and second.documents_indexed == 6
    assert [h.passage_id for h in old.search("missile", k=3)] == before  # still serving its version
    assert sorted(p.name for p in index_dir.iterdir() if p.name.startswith(("v-", ".build-"))) == [second.version]
    with Searcher.open(index_dir, embedder=fake) as new:
        assert new.manifest.documents == 6
    old.close()


def test_failed_build_leaves_the_previous_index_in_service(built, corpus, fake):
    index_dir, first = built

    class Exploding(HashingEmbedder):
        def embed(self, texts, kind, batch_size=32):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        build_index(corpus, index_dir, embedder=Exploding(dim=64))
    assert (index_dir / CURRENT).read_text().strip() == first.version
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".build-")]
    with Searcher.open(index_dir, embedder=fake) as s:
        assert s.search("missile", k=1)


def test_skipped_files_are_reported_and_an_all_skipped_corpus_is_an_error(tmp_path, fake):
    root = tmp_path / "c"
    root.mkdir()
    (root / "empty.txt").write_text("")
    (root / "bin.txt").write_bytes(b"\x00\x01\x02")
    with pytest.raises(CorpusError, match="nothing to index.*empty.txt: empty"):
        build_index(root, tmp_path / "i", embedder=fake)
    (root / "ok.txt").write_text("Finally some text to index.")
    summary = build_index(root, tmp_path / "i", embedder=fake)
    assert summary.documents_read == 3 and summary.documents_indexed == 1
    assert {s.doc_id for s in summary.skipped} == {"empty.txt", "bin.txt"}
    assert "Skipped 2" in summary.to_text()


def test_missing_corpus_folder_is_a_clear_error(tmp_path, fake):
    with pytest.raises(CorpusError, match="does not exist"):
        build_index(tmp_path / "nope", tmp_path / "i", embedder=fake)


def test_one_writer_at_a_time(built, corpus, fake):
    index_dir = built[0]
    held, release = threading.Event(), threading.Event()

    def hold():
        with writer_lock(index_dir):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        with pytest.raises(IndexLockedError, match="another process is writing"):
            build_index(corpus, index_dir, embedder=fake)
    finally:
        release.set()
        t.join()
    build_index(corpus, index_dir, embedder=fake)  # free again


def test_progress_reports_every_stage(corpus, tmp_path, fake):
    seen = []
    build_index(corpus, tmp_path / "i", embedder=fake, progress=lambda *a: seen.append(a))
    stages = [s for s, _, _ in seen]
    assert stages.index("reading") < stages.index("chunking") < stages.index("embedding") < stages.index("writing")
    embedding = [(d, n) for s, d, n in seen if s == "embedding"]
    assert embedding[-1][0] == embedding[-1][1] > 0


def test_hostile_files_are_indexed_or_skipped_never_crash(tmp_path, fake):
    import random

    rng = random.Random(1)
    root = tmp_path / "c"
    root.mkdir()
    (root / "huge_line.txt").write_text(" ".join(f"token{i}" for i in range(40_000)))  # one 400 KB line
    (root / "noise.txt").write_bytes(bytes(rng.randrange(128, 256) for _ in range(4000)))
    (root / "rtl_zero_width.txt").write_text("\u200f\u200bمرحبا\u200d بالعالم\u202e abc \ufeff")
    (root / "only_marks.txt").write_text("\u200b\u200c\u200d\u2060 \u200b")
    summary = build_index(root, tmp_path / "i", embedder=fake, chunk_tokens=64)
    skipped = {s.doc_id: s.reason for s in summary.skipped}
    assert summary.documents_read == 4 == summary.documents_indexed + len(skipped)
    assert skipped["noise.txt"].startswith("undecodable")
    assert skipped["only_marks.txt"] == "empty: no visible text"
    with Searcher.open(tmp_path / "i", embedder=fake) as s:
        hits = [h for h in s.search("token1", k=1000) if h.doc_id == "huge_line.txt"]
        text = s.document_text("huge_line.txt")
    assert max(len(fake.token_spans([h.text])[0]) for h in hits) <= 64
    spans = sorted((h.start, h.end) for h in hits)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)  # nothing cut off the end
    assert all(b[0] <= a[1] + 1 for a, b in zip(spans, spans[1:]))  # and no gap in between
