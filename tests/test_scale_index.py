"""An index past the exact-search threshold: IVF with 8-bit codes, chosen and tuned when it is
written, recorded in the manifest, and searched by the same Searcher as a flat one."""

import json

import numpy as np
import pytest

from index import update_index, write_index
from index.manifest import EMBEDDINGS, MANIFEST, MARGINS, read_manifest
from index.store import DocumentRow, PassageRow
from index.vectors import recall_at
from index.versions import current_version
from polyseek.embedder import HashingEmbedder
from search import Searcher

N = 4_000
LANGS = ["en", "en", "ro", "ar"]


def passages_of(n, seed=0):
    """Passages of 12 words drawn from a few topics (so the hashing model's vectors cluster)."""
    rng = np.random.default_rng(seed)
    topics = [[f"w{t}x{i}" for i in range(30)] for t in range(25)]
    docs, passages = [], []
    for pid in range(n):
        words = rng.choice(topics[pid % 25], 12)
        text = " ".join(words)
        docs.append(DocumentRow(f"doc-{pid}.txt", f"Doc {pid}", "txt", LANGS[pid % 4], f"h{pid}", text))
        passages.append(PassageRow(pid, f"doc-{pid}.txt", 0, 0, len(text), LANGS[pid % 4], 12, text))
    return docs, passages


@pytest.fixture(scope="module")
def two_indexes(tmp_path_factory):
    """The same passages written exact (flat) and approximate (IVF, threshold lowered)."""
    root = tmp_path_factory.mktemp("scale")
    fake = HashingEmbedder(64)
    docs, passages = passages_of(N)
    vectors = fake.embed([p.text for p in passages], "passage")
    write_index(root / "flat", fake, docs, passages, vectors)
    write_index(root / "ivf", fake, docs, passages, vectors, exact_max=1_000)
    return root, fake, passages, vectors


def test_the_manifest_records_the_chosen_index_and_its_measured_recall(two_indexes):
    root, _, _, _ = two_indexes
    flat = read_manifest(current_version(root / "flat"))
    ivf = read_manifest(current_version(root / "ivf"))
    assert flat.vector_index == "IDMap2,Flat" and flat.vector_params == {"kind": "flat"}
    assert ivf.vector_index == "IVF,SQ8"
    params = ivf.vector_params
    assert params["kind"] == "ivf-sq8" and params["nlist"] == 64 and 1 <= params["nprobe"] <= 64
    assert params["recall_at_10"] >= 0.98
    assert any(name.endswith(f"/{EMBEDDINGS}") for name in ivf.files)  # the model's vectors (FAISS keeps 8-bit codes)


def test_the_approximate_searcher_finds_what_the_exact_one_finds(two_indexes):
    root, fake, passages, _ = two_indexes
    queries = [" ".join(p.text.split()[:5]) for p in passages[::97]]
    with Searcher.open(root / "flat", embedder=fake) as exact, Searcher.open(root / "ivf", embedder=fake) as approx:
        truth = np.array([[h.passage_id for h in exact.search(q, 10)] for q in queries])
        found = np.array([[h.passage_id for h in approx.search(q, 10)] for q in queries])
        assert recall_at(found, truth) >= 0.95
        # Candidates are re-scored from the model's float32 vectors: the scores are the exact ones.
        for q in queries[:5]:
            mine, theirs = approx.search(q, 3), {h.passage_id: h.score for h in exact.search(q, 50)}
            assert all(abs(h.score - theirs[h.passage_id]) < 1e-5 for h in mine if h.passage_id in theirs)
        # Filters, hybrid ranking and "also reported in" work on it as on a flat index.
        ro = approx.search(queries[0], 10, ["ro"])
        assert len(ro) == 10 and {h.lang for h in ro} == {"ro"}
        hybrid = approx.search(queries[1], 5, ["en"], mode="hybrid")
        assert len(hybrid) == 5 and all(h.lang == "en" for h in hybrid)
        top = approx.search(queries[2], 1)[0]
        assert abs(top.cosine - float(fake.embed([top.text], "passage")[0] @ fake.embed([queries[2]], "query")[0])) < 0.02
        others = [lang for lang in ("en", "ro", "ar") if lang != top.lang]
        found = approx.counterparts(top.text, langs=others, k=5)
        assert len(found) == 5 and all(h.lang in others for h in found)


def test_cosines_shown_from_an_ivf_index_are_the_models_not_the_8_bit_codes(two_indexes):
    """Hybrid hits' cosines and "also reported in" (which searches from a passage's vector) use
    the model's float32 vectors, as on a flat index."""
    root, fake, passages, _ = two_indexes
    vec = lambda text, kind: fake.embed([text], kind)[0]  # noqa: E731
    q = " ".join(passages[5].text.split()[:5])
    with Searcher.open(root / "ivf", embedder=fake) as approx:
        hybrid = approx.search(q, 5, ["en"], mode="hybrid")
        assert hybrid and all(abs(h.cosine - float(vec(h.text, "passage") @ vec(q, "query"))) < 1e-5 for h in hybrid)
        top = approx.search(q, 1)[0]
        found = approx.counterparts(top.text, langs=[lang for lang in ("en", "ro", "ar") if lang != top.lang], k=5)
        assert found
        assert all(abs(h.cosine - float(vec(h.text, "passage") @ vec(top.text, "passage"))) < 1e-5 for h in found)


def test_margins_of_an_approximate_index_are_exact(two_indexes):
    """Margins come from exact neighbourhoods whatever kind of index a version has."""
    root, _, _, _ = two_indexes
    flat, ivf = (np.load(current_version(root / name) / MARGINS) for name in ("flat", "ivf"))
    np.testing.assert_allclose(flat, ivf, atol=1e-6)


def test_the_search_of_a_tiny_language_in_a_large_index_is_not_starved(tmp_path):
    """A language with 0.5% of the passages still gets its k results from an IVF index."""
    fake = HashingEmbedder(64)
    docs, passages = passages_of(N, seed=3)
    rare = set(range(0, N, 200))  # 20 passages
    passages = [PassageRow(p.passage_id, p.doc_id, 0, p.start, p.end, "cy" if p.passage_id in rare else "en",
                           12, p.text) for p in passages]
    vectors = fake.embed([p.text for p in passages], "passage")
    write_index(tmp_path / "ivf", fake, docs, passages, vectors, exact_max=1_000)
    with Searcher.open(tmp_path / "ivf", embedder=fake) as s:
        hits = s.search("w3x1 w3x2", 10, ["cy"])
        assert len(hits) == 10 and {h.lang for h in hits} == {"cy"}


def test_filtered_searches_widen_from_the_plain_nprobe_and_unfiltered_ones_scan_the_balanced_one(two_indexes,
                                                                                                   monkeypatch):
    """An IVF segment records two nprobes: the one an unfiltered (language-balanced) search scans,
    and the one the plain top 10 needed, which a search filtered to a share s of the passages
    widens from (nprobe / s cells): within a language the balance is a constant."""
    import faiss

    from index.vectors import CentredCells

    root, fake, _, _ = two_indexes
    params = read_manifest(current_version(root / "ivf")).segments[0]["vector_params"]
    assert 1 <= params["filter_nprobe"] <= params["nprobe"] and params["balanced_recall_at_10"] >= 0.98
    asked = []
    search = CentredCells.search
    monkeypatch.setattr(CentredCells, "search", lambda self, q, k, nprobe, params=None:
                        asked.append(nprobe) or search(self, q, k, nprobe, params))
    with Searcher.open(root / "ivf", embedder=fake) as searcher:
        [reader] = searcher._segments.readers
        faiss.extract_index_ivf(reader.vectors).nprobe = 16
        reader.info["vector_params"]["filter_nprobe"] = 2
        hits = searcher.search("w3x1 w3x2 w3x5", 10, ["en"])  # half of the passages: 2 / 0.5 cells
        assert len(hits) == 10 and {h.lang for h in hits} == {"en"} and asked[0] == 4
        asked.clear()
        searcher.search("w3x1 w3x2 w3x5", 10, ["ro"])  # a quarter: 2 / 0.25
        assert asked[0] == 8


def test_updates_reuse_the_model_vectors_not_the_8_bit_codes(tmp_path, corpus):
    """update_index takes unchanged passages' vectors from embeddings.npy: exactly the model's."""
    from index import build_index

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    (corpus / "de.txt").write_text("Die NATO sagt, der Raketenschild bedrohe Russland nicht.", encoding="utf-8")
    calls = fake.texts_embedded
    summary = update_index(corpus, tmp_path / "index", embedder=fake)
    assert summary.reused > 0 and fake.texts_embedded - calls == summary.embedded
    with Searcher.open(tmp_path / "index", embedder=fake) as s:
        for reader in s._segments.readers:
            stored = np.load(reader.folder / EMBEDDINGS, allow_pickle=False)
            rows = reader.store.all_passages()
            np.testing.assert_array_equal(stored, fake.embed([p.text for p in rows], "passage"))


def test_an_index_of_the_previous_format_is_rebuilt_in_full_with_a_message(tmp_path, corpus):
    from index import build_index

    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    folder = current_version(tmp_path / "index")
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(dict(manifest, format_version=2)))
    summary = update_index(corpus, tmp_path / "index", embedder=fake)
    assert "rebuilt in full" in summary.notice and "format version 2" in summary.notice
    assert "rebuilt in full" in summary.to_text() and summary.embedded == summary.passages


def test_write_index_refuses_ids_out_of_order(tmp_path):
    fake = HashingEmbedder(64)
    docs, passages = passages_of(3)
    with pytest.raises(ValueError, match="0..n-1"):
        write_index(tmp_path / "x", fake, docs, passages[::-1], np.zeros((3, 64), np.float32))


def test_one_scan_of_the_probed_cells_equals_a_search_per_language(two_indexes, monkeypatch):
    """The language-balanced dense search of an IVF segment scans its probed cells once and
    takes each language's best: exactly what one FAISS search per language finds (scores,
    ties and all), with deleted rows and with languages that need more cells than one scan."""
    from search import segments

    root, fake, passages, _ = two_indexes
    rng = np.random.default_rng(11)
    queries = fake.embed([" ".join(p.text.split()[:4]) for p in passages[::53]], "query")
    with Searcher.open(root / "ivf", embedder=fake) as searcher:
        [reader] = searcher._segments.readers
        assert reader.exact is not None and reader.cells is not None  # an IVF segment, with centred cells
        import faiss

        faiss.extract_index_ivf(reader.vectors).nprobe = 4  # of 64 cells (the tuned nprobe here is all 64)
        alone, fallbacks = [], {}
        monkeypatch.setattr(reader, "dense", lambda *a, _d=reader.dense, **kw: alone.append(1) or _d(*a, **kw))
        for deleted in (None, rng.random(reader.size) < 0.3):
            reader.live = None if deleted is None else ~deleted
            reader._selectors.clear()  # FAISS selectors of each language's live rows, made anew
            groups = {lang: ids if reader.live is None else ids[reader.live[ids]]
                      for lang, ids in searcher._ids_by_lang.items()}
            for q in queries:
                offsets = searcher._offsets(np.asarray(q, np.float32))
                for n in (1, 20, 300):
                    monkeypatch.setattr(segments, "SINGLE_SCAN", True)
                    before = len(alone)
                    scan = reader.dense_languages(q, offsets, n, groups, whole=True)
                    fallbacks[n] = fallbacks.get(n, 0) + len(alone) - before
                    monkeypatch.setattr(segments, "SINGLE_SCAN", False)
                    each = reader.dense_languages(q, offsets, n, groups, whole=True)
                    assert scan == each, n
        reader.live = None
    asked = 2 * len(queries) * len(searcher._ids_by_lang)  # languages searched at each depth
    assert fallbacks[1] < asked / 2 and fallbacks[1] < fallbacks[300]  # mostly one scan; deeper searches widen


def test_dense_search_is_the_same_with_one_scan_or_a_search_per_language(two_indexes, monkeypatch):
    from search import segments

    root, fake, passages, _ = two_indexes
    queries = [" ".join(p.text.split()[:5]) for p in passages[::131]]
    with Searcher.open(root / "ivf", embedder=fake) as searcher:
        answers = {}
        for scan in (True, False):
            monkeypatch.setattr(segments, "SINGLE_SCAN", scan)
            answers[scan] = [[(h.passage_id, h.score) for h in searcher.search(q, 10, mode=mode)]
                             for q in queries for mode in ("dense", "hybrid")]
    assert answers[True] == answers[False]
