"""Builds on Ray (index.ray_build) against in-process builds of the same corpus: same passages,
vectors within 1e-5, same top 10 for dense, hybrid and filtered searches, same stories — for a
build of a few hundred documents, an update, and a large segment whose IVF index the workers
fill in shards. One local Ray instance (2 CPUs, 0.5 CPU per embedding actor) serves the whole
test run; a worker that dies is retried by Ray, and a worker that raises fails the build and
leaves the version in service untouched."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e '.[ray]' (make test does)")

from index import build_index, cli, ray_build, update_index, vectors  # noqa: E402
from index.manifest import read_manifest  # noqa: E402
from index.ray_build import ClusterBuildError, RayExecutor, split_segments  # noqa: E402
from index.versions import current_version  # noqa: E402
from polyseek.embedder import HashingEmbedder  # noqa: E402
from tests.conftest import DATA, ROOT  # noqa: E402
from tests.test_segments import SOURCES, WORDS, assert_same_answers, snapshot, text  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole test run (small: this machine has 2 cores)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=160 << 20, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def executor(ray_cluster):
    def make(**options):
        options.setdefault("actors", 2)
        options.setdefault("cpus_per_actor", 0.5)
        ex = RayExecutor("local", **options)
        ex.start()
        return ex

    return make


def make_corpus(root, rng: random.Random, n_files: int = 240, n_records: int = 60):
    """``n_files`` articles in three languages, a JSONL export with dates and sources, a CSV
    export, and files every build skips (empty, a duplicate, an unknown format)."""
    for i in range(n_files):
        lang = sorted(WORDS)[i % 3]
        (root / lang).mkdir(parents=True, exist_ok=True)
        (root / lang / f"doc-{i:03d}.txt").write_text(text(rng, lang), encoding="utf-8")
    records = [{"id": str(i), "text": text(rng, lang), "lang": lang, "source": rng.choice(SOURCES),
                "date": f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
               for i, lang in ((i, rng.choice(sorted(WORDS))) for i in range(n_records))]
    records.append({"id": "3", "text": "the same id twice"})
    (root / "feed.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    rows = ["id,title,text,lang"] + [f"c{i},Title {i},{text(rng, 'de')},de" for i in range(20)]
    (root / "wire.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    (root / "copy.txt").write_bytes((root / "de" / "doc-000.txt").read_bytes())
    (root / "image.png").write_bytes(b"\x89PNG\r\n")


def assert_same_index(ray_dir, local_dir, fake, rng):
    (rows_r, vec_r), (rows_l, vec_l) = snapshot(ray_dir, fake), snapshot(local_dir, fake)
    assert rows_r == rows_l
    np.testing.assert_allclose(vec_r, vec_l, atol=1e-5)
    assert_same_answers(ray_dir, local_dir, fake, rng)


def test_a_ray_build_equals_the_local_build(tmp_path, executor):
    rng = random.Random(16)
    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, rng)
    events = []
    ex = executor(segment_passages=150)
    on_ray = build_index(corpus, tmp_path / "ray", embedder=fake, chunk_tokens=16, executor=ex,
                         progress=lambda *event: events.append(event))
    local_events = []
    local = build_index(corpus, tmp_path / "local", embedder=fake, chunk_tokens=16,
                        progress=lambda *event: local_events.append(event))
    assert on_ray.documents_read == local.documents_read > 300
    assert (on_ray.documents_indexed, on_ray.passages, on_ray.languages) == \
           (local.documents_indexed, local.passages, local.languages)
    assert [(s.doc_id, s.reason) for s in on_ray.skipped] == [(s.doc_id, s.reason) for s in local.skipped]
    assert {"de/doc-000.txt", "empty.txt", "image.png", "feed.jsonl#3"} <= {s.doc_id for s in on_ray.skipped}
    assert (on_ray.stories, on_ray.links) == (local.stories, local.links)
    # The workers wrote several segments (at most 150 passages each, split between documents),
    # published as one version.
    segments = read_manifest(current_version(tmp_path / "ray")).segments
    assert on_ray.segments_written == len(segments) > 1
    assert all(info["passages"] <= 150 for info in segments) and sum(i["passages"] for i in segments) == local.passages
    # Progress on the driver: documents chunked, passages embedded out of the total.
    embedded = [(done, total) for stage, done, total in events if stage == "embedding"]
    assert embedded[0] == (0, local.passages) and embedded[-1] == (local.passages, local.passages)
    chunked = [max(done for stage, done, _ in got if stage == "chunking") for got in (events, local_events)]
    assert chunked[0] == chunked[1] == local.documents_indexed + 1  # and the duplicate, chunked before it is found
    assert_same_index(tmp_path / "ray", tmp_path / "local", fake, rng)


def test_an_update_on_ray_equals_a_full_build(tmp_path, executor):
    rng = random.Random(17)
    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, rng, n_files=60, n_records=20)
    ex = executor()
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16, executor=ex)
    (corpus / "en" / "doc-004.txt").unlink()
    (corpus / "de" / "doc-003.txt").write_text(text(rng, "de"), encoding="utf-8")
    for i in range(5):
        (corpus / "ro" / f"new-{i}.txt").write_text(text(rng, "ro"), encoding="utf-8")
    lines = (corpus / "feed.jsonl").read_text(encoding="utf-8").splitlines()
    edited = json.loads(lines[2])
    edited["text"] = text(rng, "en")
    (corpus / "feed.jsonl").write_text("\n".join(lines[:2] + [json.dumps(edited)] + lines[3:]) + "\n", encoding="utf-8")
    before = fake.texts_embedded
    summary = update_index(corpus, tmp_path / "index", embedder=fake, executor=ex)
    assert fake.texts_embedded == before  # the driver's model embedded nothing: the actors did
    assert 0 < summary.embedded < summary.passages and summary.reused > 0
    full = build_index(corpus, tmp_path / "full", embedder=fake, chunk_tokens=16)
    assert (summary.documents_indexed, summary.passages) == (full.documents_indexed, full.passages)
    assert_same_index(tmp_path / "index", tmp_path / "full", fake, rng)


def test_a_large_segment_gets_its_ivf_index_from_shards_the_workers_fill(tmp_path, executor, monkeypatch):
    # Above the exact-search size the segment's IVF cells are trained once; Ray tasks add the
    # vectors to copies of the trained index, merged in order: the very file a local build writes.
    monkeypatch.setattr(vectors, "EXACT_MAX", 100)
    monkeypatch.setattr(ray_build, "SHARD_ROWS", 100)
    rng = random.Random(18)
    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, rng, n_files=90, n_records=0)
    build_index(corpus, tmp_path / "ray", embedder=fake, chunk_tokens=16, executor=executor())
    build_index(corpus, tmp_path / "local", embedder=fake, chunk_tokens=16)
    ray_manifest, local_manifest = (read_manifest(current_version(tmp_path / d)) for d in ("ray", "local"))
    assert ray_manifest.vector_params["kind"] == "ivf-sq8" and ray_manifest.vector_params == local_manifest.vector_params
    assert ray_manifest.passages > 2 * 100  # three shards of at most 100 rows
    name = "segments/{}/vectors.faiss"
    [ray_seg], [local_seg] = ray_manifest.segments, local_manifest.segments
    assert ray_manifest.checksums[name.format(ray_seg["name"])] == local_manifest.checksums[name.format(local_seg["name"])]
    assert_same_index(tmp_path / "ray", tmp_path / "local", fake, rng)


def test_a_worker_that_raises_fails_the_build_and_the_version_in_service_stays(tmp_path, executor, monkeypatch):
    rng = random.Random(19)
    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, rng, n_files=30, n_records=0)
    build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16)
    current = (tmp_path / "index" / "CURRENT").read_bytes()

    def failing_actor():  # a local class: Ray ships it by value to the workers
        class Failing(ray_build.EmbedActor):
            def __call__(self, batch):
                raise RuntimeError("CUDA out of memory (a test's actor)")
        return Failing

    monkeypatch.setattr(ray_build, "EmbedActor", failing_actor())
    (corpus / "en" / "doc-001.txt").write_text(text(rng, "en"), encoding="utf-8")
    with pytest.raises(ClusterBuildError, match="while embedding: RuntimeError: CUDA out of memory .*index in service is unchanged"):
        build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=16, executor=executor())
    assert (tmp_path / "index" / "CURRENT").read_bytes() == current
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".build-")]


def test_a_worker_that_dies_is_retried_by_ray(tmp_path, executor, monkeypatch):
    marker = tmp_path / "died-once"
    chunk = ray_build._chunk_task

    def dies_once(batch, context):  # the first chunking task's worker process dies
        if not marker.exists():
            marker.write_text("x")
            os._exit(1)
        return chunk(batch, context)

    monkeypatch.setattr(ray_build, "_chunk_task", dies_once)
    rng = random.Random(20)
    fake = HashingEmbedder(64)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, rng, n_files=20, n_records=0)
    on_ray = build_index(corpus, tmp_path / "ray", embedder=fake, chunk_tokens=16, executor=executor())
    local = build_index(corpus, tmp_path / "local", embedder=fake, chunk_tokens=16)
    assert marker.exists() and on_ray.passages == local.passages
    assert_same_index(tmp_path / "ray", tmp_path / "local", fake, rng)


def test_the_cli_builds_and_updates_on_ray(tmp_path, ray_cluster, capsys):
    corpus = tmp_path / "corpus"
    make_corpus(corpus, random.Random(21), n_files=12, n_records=0)
    common = ["--index", str(tmp_path / "index"), "--ray", "local", "--actors", "1", "--cpus-per-actor", "0.5", "-q"]
    assert cli.main(["build", str(corpus), "--model", "fake:64", *common]) == 0
    assert "Indexed 33 of 36 documents" in capsys.readouterr().out
    (corpus / "en" / "extra.txt").write_text("a new article about the border treaty", encoding="utf-8")
    assert cli.main(["update", str(corpus), *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["documents_indexed"] == 34 and out["embedded"] == 1


def test_split_segments_cuts_between_documents():
    from index.store import DocumentRow, PassageRow

    docs = [DocumentRow(f"d{i}", "", "txt", "en", "", "") for i in range(4)]
    sizes = [3, 1, 5, 2]
    passages = [PassageRow(0, f"d{i}", j, 0, 0, "en", 1, "") for i, n in enumerate(sizes) for j in range(n)]
    assert [([d.doc_id for d in g], n) for g, n in split_segments(docs, passages, 4)] == \
           [(["d0", "d1"], 4), (["d2"], 5), (["d3"], 2)]


def test_without_ray_a_build_imports_no_ray(tmp_path):
    code = ("import sys; from index import build_index; from polyseek.embedder import HashingEmbedder; "
            f"build_index({str(DATA)!r}, {str(tmp_path / 'index')!r}, embedder=HashingEmbedder(64)); "
            "from index import cli; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.model
def test_a_ray_build_with_the_bundled_model_equals_the_local_build(tmp_path, executor, real_embedder):
    ex = executor(actors=1, cpus_per_actor=1)
    build_index(DATA, tmp_path / "ray", embedder=real_embedder, executor=ex)
    build_index(DATA, tmp_path / "local", embedder=real_embedder)
    (rows_r, vec_r), (rows_l, vec_l) = snapshot(tmp_path / "ray", real_embedder), snapshot(tmp_path / "local", real_embedder)
    assert rows_r == rows_l
    np.testing.assert_allclose(vec_r, vec_l, atol=1e-5)
    from search import Searcher

    with Searcher.open(tmp_path / "ray") as r, Searcher.open(tmp_path / "local") as loc:
        for query in ("missile defense guarantees", "garanţii de securitate", "معاهدة ستارت"):
            assert [(h.doc_id, h.start) for h in r.search(query, 10)] == [(h.doc_id, h.start) for h in loc.search(query, 10)]
        assert [s.to_dict() for s in r.stories()] == [s.to_dict() for s in loc.stories()]
