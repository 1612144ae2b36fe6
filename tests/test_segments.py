"""Segments: after any sequence of updates and merges, the index answers exactly as a full build
of the same corpus (same passages, scores within 1e-5, same top 10 for dense, hybrid, filtered
and one-per-document searches); an update reads only what changed."""

import json
import random
import shutil

import numpy as np
import pytest

from index import build_index, merge, update_index
from index.merge import optimize_index, plan_merge
from index.manifest import read_manifest
from index.versions import current_version
from polyseek.embedder import HashingEmbedder
from search import Searcher

WORDS = {
    "en": "missile shield talks treaty border election market storm harvest vaccine railway festival budget".split(),
    "ro": "scutul garanţii alegeri piaţa furtună recolta vaccin calea ferată festival bugetul tratat granița".split(),
    "de": "Raketenschild Verhandlungen Vertrag Grenze Wahl Markt Sturm Ernte Impfstoff Eisenbahn Haushalt".split(),
}
SOURCES = ["Agerpres", "Reuters", "DW"]


#: Words of 25 topics: passages drawn from one topic share words (the hashing model clusters them).
TOPICS = [[f"w{t}x{i}" for i in range(30)] for t in range(25)]


def write_topic_docs(corpus, rng: random.Random, ids) -> None:
    """One .txt document per id: 12 words of topic ``id % 25``."""
    corpus.mkdir(exist_ok=True)
    for i in ids:
        (corpus / f"d{i:05d}.txt").write_text(" ".join(rng.choice(TOPICS[i % 25]) for _ in range(12)), encoding="utf-8")


def text(rng: random.Random, lang: str) -> str:
    words = WORDS[lang]
    return " ".join(rng.choice(words) + ("." if rng.random() < 0.15 else "") for _ in range(rng.randint(6, 40)))


def snapshot(index_dir, fake):
    """(doc_id, ordinal, lang, text) of every live passage, by document and place, and its model
    vector (tests/test_update.py uses it too)."""
    with Searcher.open(index_dir, embedder=fake) as s:
        ids = s._all_ids
        rows = s._segments.passages(ids)
        raw = s._segments.raw(ids)
    keyed = sorted(((rows[p][0].doc_id, rows[p][0].ordinal, rows[p][0].lang, rows[p][0].text), i)
                   for i, p in enumerate(ids.tolist()))
    return [k for k, _ in keyed], raw[[i for _, i in keyed]]


SEARCHES = [dict(mode="dense"), dict(mode="hybrid"), dict(mode="dense", langs=["ro"]),
            dict(mode="hybrid", langs=["en", "de"]), dict(mode="dense", per_document=True),
            dict(mode="hybrid", per_document=True), dict(mode="dense", sources=["Reuters"]),
            dict(mode="dense", since="2020-03-01", until="2020-09-30", per_document=True)]


def assert_same_answers(updated, full, fake, rng):
    with Searcher.open(updated, embedder=fake) as u, Searcher.open(full, embedder=fake) as f:
        assert u.languages == f.languages and u.sources == f.sources and u.date_range == f.date_range
        for _ in range(4):
            lang = rng.choice(sorted(WORDS))
            query = " ".join(rng.sample(WORDS[lang], 3))
            for options in SEARCHES:
                hu, hf = u.search(query, 10, **options), f.search(query, 10, **options)
                assert [(h.doc_id, h.start, h.end) for h in hu] == [(h.doc_id, h.start, h.end) for h in hf], (query, options)
                assert [h.score for h in hu] == pytest.approx([h.score for h in hf], abs=1e-5)
                assert [h.cosine for h in hu] == pytest.approx([h.cosine for h in hf], abs=1e-5)
            if hu:
                su = [(h.doc_id, h.start) for h in u.same_story(hu[0])]
                sf = [(h.doc_id, h.start) for h in f.same_story(hf[0])]
                assert su == sf
        assert [x.to_dict() for x in u.stories()] == [x.to_dict() for x in f.stories()]


def write_doc(corpus, rng, name, lang):
    (corpus / name).parent.mkdir(parents=True, exist_ok=True)
    (corpus / name).write_text(text(rng, lang), encoding="utf-8")


def write_export(corpus, records):
    (corpus / "feed.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()),
                                       encoding="utf-8")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_adds_edits_deletes_and_merges_equal_a_full_build(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(merge, "FLOOR", 5)  # merges happen at this corpus size
    monkeypatch.setattr(merge, "SEGMENTS_PER_TIER", 3)
    monkeypatch.setattr(merge, "MERGE_AT_ONCE", 3)
    rng = random.Random(seed)
    fake = HashingEmbedder(64)
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    files: dict[str, str] = {}
    records: dict[str, dict] = {}
    for i in range(12):
        lang = rng.choice(sorted(WORDS))
        files[f"{lang}/doc-{i}.txt"] = lang
        write_doc(corpus, rng, f"{lang}/doc-{i}.txt", lang)
    for i in range(8):
        lang = rng.choice(sorted(WORDS))
        records[str(i)] = {"id": str(i), "text": text(rng, lang), "lang": lang, "source": rng.choice(SOURCES),
                           "date": f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
    write_export(corpus, records)
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=16)
    merged = written = 0
    for step in range(10):
        for _ in range(rng.randint(1, 4)):
            op = rng.choice(["add", "edit", "delete", "record", "unrecord", "duplicate", "touch"])
            if op == "add" or not files:
                lang = rng.choice(sorted(WORDS))
                name = f"{lang}/new-{step}-{rng.randint(0, 10**6)}.txt"
                files[name] = lang
                write_doc(corpus, rng, name, lang)
            elif op == "edit":
                name = rng.choice(sorted(files))
                write_doc(corpus, rng, name, files[name])
            elif op == "delete":
                name = rng.choice(sorted(files))
                (corpus / name).unlink()
                del files[name]
            elif op == "record":  # a new or changed record of the export
                rid = str(rng.randint(0, 12))
                lang = rng.choice(sorted(WORDS))
                records[rid] = {"id": rid, "text": text(rng, lang), "lang": lang, "source": rng.choice(SOURCES),
                                "date": f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
                write_export(corpus, records)
            elif op == "unrecord" and records:
                del records[rng.choice(sorted(records))]
                write_export(corpus, records)
            elif op == "duplicate":  # the same text under another name: indexed once, whichever comes first
                name = rng.choice(sorted(files))
                copy = f"a-copy-{step}.txt"
                (corpus / copy).write_bytes((corpus / name).read_bytes())
                files[copy] = files[name]
            else:  # a new modification time, the same bytes: read, not re-indexed
                name = rng.choice(sorted(files))
                (corpus / name).write_bytes((corpus / name).read_bytes())
        summary = update_index(corpus, index_dir, embedder=fake)
        merged += summary.segments_merged
        written += summary.segments_written
        if step == 6:
            optimize_index(index_dir)
            assert len(read_manifest(current_version(index_dir)).segments) == 1
        full = build_index(corpus, tmp_path / f"full-{step}", embedder=fake, chunk_tokens=16)
        assert (summary.documents_read, summary.documents_indexed, summary.passages) == \
               (full.documents_read, full.documents_indexed, full.passages)
        # the same skips, in the same order (an update decides again only around what it read)
        assert [(s.doc_id, s.reason) for s in summary.skipped] == [(s.doc_id, s.reason) for s in full.skipped]
        (rows_u, vec_u), (rows_f, vec_f) = snapshot(index_dir, fake), snapshot(tmp_path / f"full-{step}", fake)
        assert rows_u == rows_f
        np.testing.assert_allclose(vec_u, vec_f, atol=1e-6)
        assert_same_answers(index_dir, tmp_path / f"full-{step}", fake, rng)
    assert written > 5 and merged > 0  # the sequence did write and merge segments


def test_an_update_reads_only_changed_files(corpus, tmp_path, monkeypatch):
    import index.builder as builder

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    monkeypatch.setattr(builder, "RACY_NS", 0)  # files written just now count as settled
    reads = []
    original = builder._read_file
    monkeypatch.setattr(builder, "_read_file", lambda path, *a: reads.append(path.name) or original(path, *a))
    before = current_version(tmp_path / "index")
    summary = update_index(corpus, tmp_path / "index", embedder=fake)
    assert reads == [] and current_version(tmp_path / "index") == before  # nothing changed: no new version
    assert summary.documents_indexed == 5 and summary.embedded == 0
    (corpus / "en" / "new.txt").write_text("Fresh news from Geneva about the treaty.", encoding="utf-8")
    summary = update_index(corpus, tmp_path / "index", embedder=fake)
    assert reads == ["new.txt"] and summary.embedded == 1 and summary.segments_written == 1
    assert summary.segments == 2 and summary.documents_indexed == 6


def test_the_tiered_policy_merges_similar_sizes_and_reclaims_deletes():
    small = {f"s{i}": (100, 100) for i in range(11)}
    assert len(plan_merge(small)) == merge.MERGE_AT_ONCE
    assert plan_merge({f"s{i}": (100, 100) for i in range(5)}) == []
    assert plan_merge({"big": (50_000, 50_000), "holey": (400, 1000)}) == ["holey"]
    assert plan_merge({f"s{i}": (30_000, 30_000) for i in range(11)}) == []  # too big for an update: optimize


def test_new_and_merged_segments_are_planned_for_the_whole_index(corpus, tmp_path, monkeypatch):
    """A segment an update or a merge writes sizes its vector index (its IVF cells) for the live
    passages of the version it joins, not for its own (index.vectors.plan_vector_index)."""
    from index import builder
    from index.commit import read_deleted
    from index.segment import write_segment

    sizes = []

    def spy(*args, **kwargs):
        sizes.append((len(args[3]), kwargs.get("index_size")))
        return write_segment(*args, **kwargs)

    monkeypatch.setattr(builder, "write_segment", spy)
    monkeypatch.setattr(merge, "write_segment", spy)
    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    (corpus / "de.txt").write_text("Die NATO sagt, der Raketenschild bedrohe Russland nicht.", encoding="utf-8")
    (corpus / "ro" / "deveselu.txt").unlink()
    update_index(corpus, tmp_path / "index", embedder=fake, merge=False)
    optimize_index(tmp_path / "index")

    def live(folder):
        deleted = read_deleted(folder, read_manifest(folder))
        return sum(info["passages"] - len(deleted.get(info["name"], {}).get("rows", []))
                   for info in read_manifest(folder).segments)

    total = live(current_version(tmp_path / "index"))
    assert len(sizes) == 3
    assert sizes[0][1] == sizes[0][0]  # the first build: the segment is the index
    assert sizes[1][0] < sizes[1][1] == total  # the update's new passages join an index of `total`
    assert sizes[2] == (total, total)  # optimize: one segment of every live passage


def test_the_cell_pool_sorts_only_the_cells_it_may_probe():
    """probe_cells' choice (the nearest cells until they hold the share) is the prefix of a full
    stable sort, ties included, though only a partition's worth of cells is sorted."""
    from search.segments import CellPool

    rng = np.random.default_rng(3)
    pool = CellPool(())
    for trial in range(20):
        n = int(rng.integers(50, 5_000))
        near = rng.choice(rng.standard_normal(int(rng.integers(5, 200))).astype(np.float32), n)  # many ties
        pool.sizes = rng.integers(0, 60, n)
        pool.sizes[rng.random(n) < 0.2] = 0  # empty cells too
        pool.total = int(pool.sizes.sum())
        for share in (0.0, 0.01, 0.0625, 0.3, 1.0):
            order = np.argsort(-near, kind="stable")
            expected = order[: int(np.searchsorted(np.cumsum(pool.sizes[order]), share * pool.total)) + 1]
            assert np.array_equal(pool._nearest_holding(near, share * pool.total), expected)


def test_readers_of_an_old_version_keep_answering_after_merges(corpus, tmp_path):
    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    (corpus / "de.txt").write_text("Die NATO sagt, der Raketenschild bedrohe Russland nicht.", encoding="utf-8")
    update_index(corpus, tmp_path / "index", embedder=fake, merge=False)
    with Searcher.open(tmp_path / "index", embedder=fake) as old:
        before = [(h.doc_id, h.score) for h in old.search("missile shield", 5, mode="hybrid")]
        optimize_index(tmp_path / "index")
        optimize_index(tmp_path / "index")
        (corpus / "fr.txt").write_text("Le bouclier antimissile de l'OTAN.", encoding="utf-8")
        update_index(corpus, tmp_path / "index", embedder=fake)
        assert [(h.doc_id, h.score) for h in old.search("missile shield", 5, mode="hybrid")] == before
        assert old.document_text("de.txt").startswith("Die NATO")
    # segments no version holds are gone: only the version in service remains, with its segments
    assert [p.name for p in (tmp_path / "index").iterdir() if p.name.startswith("v-")] == \
           [current_version(tmp_path / "index").name]


def test_a_merge_never_folds_a_damaged_file_into_a_new_segment(corpus, tmp_path):
    """A segment file damaged on disk after it was checked is named when a merge reads it; the
    merge writes nothing (its new segment would carry fresh checksums of the damage)."""
    from index.manifest import EMBEDDINGS, SEGMENTS
    from polyseek.errors import IndexFormatError

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    (corpus / "de.txt").write_text("Die NATO sagt, der Raketenschild bedrohe Russland nicht.", encoding="utf-8")
    update_index(corpus, tmp_path / "index", embedder=fake, merge=False)
    with Searcher.open(tmp_path / "index", embedder=fake):
        pass  # opened once: both segments are recorded as checked
    folder = current_version(tmp_path / "index")
    first = read_manifest(folder).segments[0]["name"]
    path = folder / SEGMENTS / first / EMBEDDINGS
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one vector's last byte: same size, a new modification time
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=f"{first}/{EMBEDDINGS}"):
        optimize_index(tmp_path / "index")
    assert current_version(tmp_path / "index") == folder  # nothing published
    assert len(read_manifest(folder).segments) == 2


def test_an_export_is_updated_by_its_records_own_hashes(tmp_path, monkeypatch):
    import index.builder as builder

    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    records = {str(i): {"id": str(i), "text": f"Record {i} about the treaty talks in Geneva, day {i}."} for i in range(30)}
    write_export(corpus, records)
    build_index(corpus, tmp_path / "index", embedder=fake)
    chunked = []
    original = builder._chunk_document
    monkeypatch.setattr(builder, "_chunk_document", lambda doc, *a: chunked.append(doc.doc_id) or original(doc, *a))
    records["7"]["text"] = "Record 7 was corrected: the talks moved to Vienna."
    records["30"] = {"id": "30", "text": "Record 30: a new day of talks."}
    del records["3"]
    write_export(corpus, records)
    summary = update_index(corpus, tmp_path / "index", embedder=fake)
    assert sorted(chunked) == ["feed.jsonl#30", "feed.jsonl#7"]  # the other 28 records were not chunked again
    assert summary.embedded == 2 and summary.documents_indexed == 30
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        assert s.document_text("feed.jsonl#7").endswith("Vienna.") and s.document_text("feed.jsonl#3") is None


def test_each_segment_chooses_its_vector_index_by_size_and_keeps_its_recall(tmp_path, monkeypatch):
    """A large segment is IVF (tuned to its recall target), a small one flat; searched together
    they find what an exact search of the same passages finds."""
    from index import vectors
    from index.vectors import TARGET_RECALL, recall_at

    monkeypatch.setattr(vectors, "EXACT_MAX", 1_000)
    fake = HashingEmbedder(64)
    rng = random.Random(5)
    corpus = tmp_path / "corpus"
    write_topic_docs(corpus, rng, range(2_000))
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=64)
    for i in range(2_000, 2_050):
        (corpus / f"d{i:05d}.txt").write_text(" ".join(rng.choice(TOPICS[i % 25]) for _ in range(12)), encoding="utf-8")
    update_index(corpus, tmp_path / "index", embedder=fake)
    monkeypatch.setattr(vectors, "EXACT_MAX", 10_000)
    build_index(corpus, tmp_path / "flat", embedder=fake, chunk_tokens=64)
    kinds = [info["vector_params"]["kind"] for info in read_manifest(current_version(tmp_path / "index")).segments]
    assert kinds == ["ivf-sq8", "flat"]
    with Searcher.open(tmp_path / "index", embedder=fake) as approx, Searcher.open(tmp_path / "flat", embedder=fake) as exact:
        queries = [" ".join(rng.choice(TOPICS[t]) for _ in range(4)) for t in range(25) for _ in range(4)]
        key = lambda hits: np.array([int(h.doc_id[1:6]) for h in hits] + [-1] * (10 - len(hits)))  # noqa: E731
        found = np.stack([key(approx.search(q, 10, mode="dense")) for q in queries])
        truth = np.stack([key(exact.search(q, 10, mode="dense")) for q in queries])
    assert recall_at(found, truth) >= TARGET_RECALL - 0.03


def test_segments_are_checked_once_and_again_after_any_write(corpus, tmp_path, monkeypatch):
    from index import verify
    from index.manifest import file_digest as digest
    from index.segment import SEGMENT_MANIFEST
    from polyseek.errors import IndexFormatError
    from tests.conftest import segment_dir

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    checked = []
    monkeypatch.setattr(verify, "verify_files", lambda folder, manifest, skip=(): checked.append(
        {n for n in manifest.checksums if n not in skip}))
    segment_files = lambda names: {n for n in names if n.startswith("segments/") and not n.endswith(SEGMENT_MANIFEST)}  # noqa: E731
    Searcher.open(tmp_path / "index", embedder=fake).close()  # the writer recorded the segment it hashed
    update_index(corpus, tmp_path / "index", embedder=fake)  # (nothing changed: nothing checked)
    (corpus / "new.txt").write_text("News.", encoding="utf-8")
    update_index(corpus, tmp_path / "index", embedder=fake)  # the kept segment is not hashed again
    Searcher.open(tmp_path / "index", embedder=fake).close()  # nor the new one
    assert len(checked) == 3 and not any(segment_files(names) for names in checked), checked
    assert all("deleted.json" in names for names in checked)  # the version's own files always are
    # A segment not recorded (records lost, or a copied index) is checked in full, once settled.
    monkeypatch.setattr(verify, "SETTLE_NS", 0)
    for record in (tmp_path / "index" / verify.VERIFIED).iterdir():
        record.unlink()
    Searcher.open(tmp_path / "index", embedder=fake).close()
    assert len(segment_files(checked[-1])) >= 8, checked[-1]
    Searcher.open(tmp_path / "index", embedder=fake).close()
    assert not segment_files(checked[-1])
    monkeypatch.undo()
    # a write to a segment file (same size, new bytes) is found at the next open
    path = segment_dir(tmp_path / "index") / "store.sqlite"
    Searcher.open(tmp_path / "index", embedder=fake).close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert digest(path)  # readable, but not what the manifest says
    with pytest.raises(IndexFormatError, match="store.sqlite"):
        Searcher.open(tmp_path / "index", embedder=fake)


def test_rows_are_grouped_by_language_from_the_segment_or_its_store(corpus, tmp_path):
    """A segment's languages.npy groups its rows by language; one written without it (before it
    existed) is grouped from its store, the same way; a languages.npy that disagrees with the
    segment's counts is reported as damage."""
    from index.manifest import read_manifest
    from index.segment import LANGUAGES
    from polyseek.errors import IndexFormatError
    from search.segments import SegmentReader
    from tests.conftest import segment_dir

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    folder = segment_dir(tmp_path / "index")
    [info] = read_manifest(current_version(tmp_path / "index")).segments
    assert LANGUAGES in info["files"] and len(info["languages"]) > 1
    with_file = SegmentReader(folder, info, [], lexical=True)
    old = dict(info, files={k: v for k, v in info["files"].items() if k != LANGUAGES})
    from_store = SegmentReader(folder, old, [], lexical=True)
    try:
        assert np.array_equal(with_file.codes, from_store.codes)
        assert with_file.rows_by_lang.keys() == from_store.rows_by_lang.keys()
        assert all(np.array_equal(with_file.rows_by_lang[k], from_store.rows_by_lang[k]) for k in with_file.rows_by_lang)
        with_file.store.close()
        np.save(folder / LANGUAGES, np.zeros(info["passages"], np.int16), allow_pickle=False)  # every row one language
        with pytest.raises(IndexFormatError, match=LANGUAGES):
            SegmentReader(folder, info, [], lexical=True)
    finally:
        from_store.close()


def test_a_search_does_not_hash_files_it_never_reads(corpus, tmp_path, monkeypatch):
    """Opening for search checks what a search reads; the catalog and the margins' neighbour
    lists (read by updates, which check them) are not hashed (288 MB at 1M passages)."""
    from index import manifest
    from index.manifest import CATALOG, NEIGHBOURS

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    hashed = []
    original = manifest.file_digest
    monkeypatch.setattr(manifest, "file_digest", lambda path, *a, **kw: hashed.append(path.name) or original(path, *a, **kw))
    shutil.rmtree(tmp_path / "index" / ".verified")  # as for a copied index: every segment file checked
    Searcher.open(tmp_path / "index", embedder=fake).close()
    assert "store.sqlite" in hashed and "margins.npy" in hashed
    assert CATALOG not in hashed and NEIGHBOURS not in hashed


def test_a_new_segment_shares_the_cells_of_the_largest_that_fits(tmp_path, monkeypatch):
    """An update's IVF segment reuses the cells of the index's largest IVF segment of the same
    cell count when that one holds at least as many passages (only its 8-bit codes are
    trained); a larger import trains its own."""
    from index import vectors
    from search.segments import CellPool

    monkeypatch.setattr(vectors, "EXACT_MAX", 500)
    fake = HashingEmbedder(64)
    rng = random.Random(4)
    corpus = tmp_path / "corpus"
    sizes = (700, 900, 600)  # documents (one passage each) of the build and two updates
    start = 0
    for i, size in enumerate(sizes):
        write_topic_docs(corpus, rng, range(start, start + size))
        start += size
        if i == 0:
            build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=64)
        else:
            update_index(corpus, tmp_path / "index", embedder=fake, merge=False)
    infos = read_manifest(current_version(tmp_path / "index")).segments
    assert [info["passages"] for info in infos] == list(sizes)
    assert [bool(info["vector_params"].get("cells_shared")) for info in infos] == [False, False, True]
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        first, larger, third = s._segments.readers
        assert not np.array_equal(first.cells.model, larger.cells.model)  # 900 > 700: its own cells
        assert np.array_equal(third.cells.model, larger.cells.model)  # 600: the largest's (900), not the first's
        assert [len(g) for g in CellPool.of(s._segments.readers).members] == [1, 2]


@pytest.mark.parametrize("shared", [True, False])
def test_several_ivf_segments_pool_their_candidates_and_keep_the_recall(tmp_path, monkeypatch, shared):
    """An unfiltered search over several IVF segments re-scores the best candidates of all of
    them together (not each segment's own): it finds what an exact index of the same passages
    finds, as the search per segment and language does. ``shared``: the later segments share the
    first one's cells (index.segment.shared_cells), or each trains its own."""
    from index import segment, vectors
    from index.vectors import TARGET_RECALL, recall_at
    from search import segments

    if not shared:
        monkeypatch.setattr(segment, "shared_cells", lambda *args: None)
    monkeypatch.setattr(vectors, "EXACT_MAX", 500)
    fake = HashingEmbedder(64)
    rng = random.Random(9)
    corpus = tmp_path / "corpus"
    for batch in range(3):  # three segments of 800 documents: IVF each
        write_topic_docs(corpus, rng, range(batch * 800, (batch + 1) * 800))
        if batch == 0:
            build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=64)
        else:
            update_index(corpus, tmp_path / "index", embedder=fake, merge=False)
    monkeypatch.setattr(vectors, "EXACT_MAX", 10_000)
    build_index(corpus, tmp_path / "flat", embedder=fake, chunk_tokens=64)
    params = [info["vector_params"] for info in read_manifest(current_version(tmp_path / "index")).segments]
    assert [p["kind"] for p in params] == ["ivf-sq8"] * 3
    assert [bool(p.get("cells_shared")) for p in params] == [False, shared, shared]
    queries = [" ".join(rng.choice(TOPICS[t]) for _ in range(4)) for t in range(25) for _ in range(3)]
    key = lambda hits: np.array([int(h.doc_id[1:6]) for h in hits] + [-1] * (10 - len(hits)))  # noqa: E731
    with Searcher.open(tmp_path / "index", embedder=fake) as approx, Searcher.open(tmp_path / "flat", embedder=fake) as exact:
        truth = np.stack([key(exact.search(q, 10, mode="dense")) for q in queries])
        found = {}
        for pooled in (True, False):
            monkeypatch.setattr(segments, "SINGLE_SCAN", pooled)
            found[pooled] = np.stack([key(approx.search(q, 10, mode="dense")) for q in queries])
        assert recall_at(found[True], truth) >= TARGET_RECALL - 0.03
        assert recall_at(found[True], truth) >= recall_at(found[False], truth) - 0.01

        # The segments' cells are probed as one pool (segments.probe_cells): nearest first over
        # all of them, up to the smallest share any segment was tuned to scan. Here the tuned
        # nprobe (all 64 cells) is lowered to 16, 32 and 64 cells (shares 1/4, 1/2, 1).
        import faiss

        monkeypatch.setattr(segments, "SINGLE_SCAN", True)
        readers = approx._segments.readers
        for reader, nprobe in zip(readers, (16, 32, 64)):
            faiss.extract_index_ivf(reader.vectors).nprobe = nprobe
        pool = segments.CellPool.of(readers)
        assert len(pool.members) == (1 if shared else 3)  # shared cells: one table ranked per query
        if shared:
            assert all(np.array_equal(r.cells.model, readers[0].cells.model) for r in readers)
            assert all(np.array_equal(c, chosen[0]) for qv in [fake.embed([queries[0]], "query")[0]]
                       for chosen in [segments.probe_cells(readers, qv)] for c in chosen)
        sizes = [r.cell_sizes() for r in readers]
        total = sum(int(x.sum()) for x in sizes)
        scanned_shared = scanned_own = 0
        for q in queries:
            qvec = fake.embed([q], "query")[0]
            chosen = segments.probe_cells(readers, qvec)
            near = [r.cells.model @ qvec for r in readers]
            picked = [int(sizes[i][c].sum()) for i, c in enumerate(chosen)]
            assert sum(picked) >= total / 4  # the smallest share: 16 of 64 cells
            worst, owner = min((float(near[i][c[-1]]), i) for i, c in enumerate(chosen) if len(c))
            for i, c in enumerate(chosen):
                assert (np.diff(near[i][c]) <= 0).all()  # nearest first
                left = np.setdiff1d(np.arange(len(near[i])), c)
                assert (near[i][left] <= worst + 1e-6).all()  # no cell left out is nearer than one probed
            # and no more than the share: less the last cell probed (in every segment sharing it)
            last = sum(int(sizes[i][c[-1]]) for i, c in enumerate(chosen) if len(c) and float(near[i][c[-1]]) == worst)
            assert sum(picked) - last < total / 4
            scanned_shared += sum(picked)
            scanned_own += sum(int(sizes[i][np.argsort(-n)[: r.cells.ivf.nprobe]].sum())
                               for i, (n, r) in enumerate(zip(near, readers)))
        assert scanned_shared < scanned_own  # a quarter of everything against 1/4 + 1/2 + 1 of each
        shared = np.stack([key(approx.search(q, 10, mode="dense")) for q in queries])
        # Once every language has its first candidates, later segments' scans keep only rows
        # scoring above the lowest any language still needs: the same answers as keeping all.
        scan, radii = segments.SegmentReader.scan, []
        parts = [(r, r.rows_by_lang) for r in readers]
        for q in queries:
            qvec = fake.embed([q], "query")[0]
            offsets = approx._offsets(qvec)
            for n in (1, 5, 20):
                pruned = segments.scan_languages(parts, qvec, offsets, n)
                monkeypatch.setattr(segments.SegmentReader, "scan", lambda self, q, o, cells=None, radius=None, langs=None:
                                    radii.append(radius) or scan(self, q, o, cells, None, langs))
                assert segments.scan_languages(parts, qvec, offsets, n) == pruned
                monkeypatch.setattr(segments.SegmentReader, "scan", scan)
        assert any(r is not None for r in radii)  # pruning was in play

        # A filter of whole languages is scanned the same way, its budget widened by the share
        # of the rows it keeps; it finds what the exact index finds under the same filter.
        lang = max(approx._ids_by_lang, key=lambda code: len(approx._ids_by_lang[code]))
        kept, pooled_scan = [], segments.scan_languages
        monkeypatch.setattr(segments, "scan_languages", lambda *a: kept.append(a[4]) or pooled_scan(*a))
        filtered = np.stack([key(approx.search(q, 10, [lang], mode="dense")) for q in queries])
        exact_filtered = np.stack([key(exact.search(q, 10, [lang], mode="dense")) for q in queries])
        monkeypatch.setattr(segments, "scan_languages", pooled_scan)
        assert kept and all(0 < x < 1 for x in kept)
        assert recall_at(filtered, exact_filtered) >= TARGET_RECALL - 0.03
        # Its scans score only the filter's rows (a FAISS selector): the same rows and scores as
        # the unfiltered scan's rows of that language.
        qvec = fake.embed([queries[0]], "query")[0]
        offsets32 = approx._offsets(qvec)[0]
        for reader in readers:
            every, every_score = reader.scan(qvec, offsets32)
            only, only_score = reader.scan(qvec, offsets32, langs=(lang,))
            mine = reader.codes[every] == reader.langs.index(lang)
            assert 0 < len(only) < len(every)
            assert dict(zip(only.tolist(), only_score.tolist())) == dict(zip(every[mine].tolist(), every_score[mine].tolist()))
        # A selector outlives its cache entry (another thread's may replace it): it holds its bitmap.
        import gc

        selector = readers[0]._language_bitmap((lang,))
        readers[0]._bitmaps.clear()
        gc.collect()
        junk = [np.full(len(readers[0].codes) // 8 + 1, 0xFF, np.uint8) for _ in range(50)]  # noqa: F841
        member = np.array([selector.is_member(int(i)) for i in range(readers[0].size)])
        assert np.array_equal(member, readers[0].codes == readers[0].langs.index(lang))
        # and the selectors kept are bounded, whatever language sets users filter by
        import itertools

        for combo in itertools.islice(itertools.combinations(readers[0].langs, 2), segments.BITMAPS_KEPT + 4):
            readers[0]._language_bitmap(combo)
        assert 0 < len(readers[0]._bitmaps) <= segments.BITMAPS_KEPT
        monkeypatch.setattr(segments, "probe_cells", lambda readers, qvec, filtered=None: [None] * len(readers))
        own = np.stack([key(approx.search(q, 10, mode="dense")) for q in queries])
    assert recall_at(shared, truth) >= TARGET_RECALL - 0.03
    assert recall_at(shared, truth) >= recall_at(own, truth) - 0.02
