"""Incremental update: only new and changed passages are embedded, and the result is the index
a full build of the same corpus makes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from index import build_index, update_index
from index.store import PassageStore
from index.manifest import SEGMENTS, VECTORS, read_manifest
from index.vectors import load_vector_index
from index.versions import current_version
from polyseek.embedder import HashingEmbedder
from polyseek.errors import IndexNotFoundError
from search import Searcher
from tests.conftest import ROOT
from tests.test_segments import snapshot as segments_snapshot


def snapshot(index_dir):
    return segments_snapshot(index_dir, HashingEmbedder(64))


def edit(corpus):
    (corpus / "en" / "weather.md").write_text("# Weather report\n\nSnow is expected in Bucharest on Monday.",
                                              encoding="utf-8")  # changed
    (corpus / "zh" / "news.txt").unlink()  # deleted
    (corpus / "de.txt").write_text("Die NATO sagt, der Raketenschild bedrohe Russland nicht.", encoding="utf-8")  # new


def test_update_embeds_only_new_and_changed_passages(corpus, tmp_path):
    fake = HashingEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=16)
    before, _ = snapshot(index_dir)
    assert update_index(corpus, index_dir, embedder=fake).embedded == 0  # nothing changed: nothing embedded

    edit(corpus)
    calls = fake.texts_embedded
    summary = update_index(corpus, index_dir, embedder=fake)
    after, _ = snapshot(index_dir)
    new_texts = {t for *_, t in after} - {t for *_, t in before}
    assert fake.texts_embedded - calls == summary.embedded == len(new_texts) > 0
    assert summary.reused == len(after) - len(new_texts) > 0
    assert "zh/news.txt" not in {d for d, *_ in after} and "de.txt" in {d for d, *_ in after}
    assert "reused" in summary.to_text()


def test_update_is_indistinguishable_from_a_full_build(corpus, tmp_path):
    fake = HashingEmbedder(64)
    build_index(corpus, tmp_path / "updated", embedder=fake, chunk_tokens=16)
    edit(corpus)
    update_index(corpus, tmp_path / "updated", embedder=fake)
    build_index(corpus, tmp_path / "full", embedder=fake, chunk_tokens=16)
    (rows_u, vec_u), (rows_f, vec_f) = snapshot(tmp_path / "updated"), snapshot(tmp_path / "full")
    assert rows_u == rows_f
    np.testing.assert_allclose(vec_u, vec_f, atol=1e-5)
    with Searcher.open(tmp_path / "updated", embedder=fake) as u, Searcher.open(tmp_path / "full", embedder=fake) as f:
        for query in ("missile shield Russia", "Raketenschild", "Bucharest snow", "معاهدة ستارت"):
            for mode in ("dense", "hybrid"):
                hu, hf = u.search(query, 10, mode=mode), f.search(query, 10, mode=mode)
                assert [(h.doc_id, h.start) for h in hu] == [(h.doc_id, h.start) for h in hf]
                assert [h.score for h in hu] == pytest.approx([h.score for h in hf], abs=1e-5)


def test_update_uses_the_index_model_and_corpus(corpus, tmp_path):
    with pytest.raises(IndexNotFoundError):
        update_index(None, tmp_path / "none")
    index_dir = tmp_path / "i"
    run = lambda *a: subprocess.run([sys.executable, "-m", "index", *a], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run("build", str(corpus), "--index", str(index_dir), "--model", "fake:64", "-q").returncode == 0
    edit(corpus)
    out = run("update", "--index", str(index_dir), "--json", "-q")  # no corpus, no model: the index's own
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["model"] == "fake:64" and summary["documents_indexed"] == 5 and 0 < summary["embedded"] < summary["passages"]


def test_a_damaged_index_is_not_reused(corpus, tmp_path):
    fake = HashingEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=16)
    passages = len(snapshot(index_dir)[0])
    folder = current_version(index_dir)
    path = folder / SEGMENTS / read_manifest(folder).segments[0]["name"] / VECTORS
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a vector's bytes, same size
    path.write_bytes(bytes(data))
    (corpus / "new.txt").write_text("Something changed in the corpus.", encoding="utf-8")
    summary = update_index(corpus, index_dir, embedder=fake)
    assert summary.embedded == passages + 1 and summary.reused == 0  # embedded afresh, nothing taken from it
    assert "damaged" in summary.notice
    with Searcher.open(index_dir, embedder=fake) as s:
        assert s.search("missile shield", 1)[0].doc_id == "en/missiles.txt"
