"""Scale: an index of 100k or 1M passages on one machine — build time, search latency,
recall@10 against exact search, and the resident memory of a loaded searcher per passage.

    .venv/bin/python benchmarks/scale.py --passages 100000 1000000
    .venv/bin/python benchmarks/scale.py --passages 100000 --exact-max 50000   # force IVF at 100k
    .venv/bin/python benchmarks/scale.py --passages 1000000 --segments 10       # ten segments of 100k


Vectors that look like real embeddings: the bundled model's embeddings of the 2,160 XQuAD
paragraphs in 9 languages (benchmarks/xquad_data.py), each copy moved by Gaussian noise with
the covariance of those embeddings (scaled by --noise) and normalized; every passage keeps its
paragraph's text (in SQLite and BM25) and language. Queries: the model's embeddings of the
paragraphs' first questions. The index is written by the product's own writer: ``--segments N``
consecutive segments (``index.segment.write_segment``: store, FAISS with the automatic choice
and tuning per segment, BM25, checksums) put in service as one version by ``index.commit``, as
``index.write_index`` does for one — minus the encoder, whose cost the throughput benchmark
measures, and minus the version's margins and stories (their exact cross-language neighbourhoods
are n² work, hours at 1M passages on 2 cores): the version gets files of their real shapes and
sizes with no links, so opening and memory count them as for a real version. Memory is measured in a fresh process:
resident set size (RSS) after loading the model, then after opening the index and running the
queries; the difference per passage is the searcher's cost. Opening is timed twice in that
process (after a build, the first open finds the segments recorded as checked by their writer
and checks the version's own files; with ``--reuse``, the records are removed first, so the
first open checks every checksum, as for an index copied from elsewhere; the second open is
what a server restart costs). Each query kind is also run with the query side's previous
algorithms (full BM25 scoring, one FAISS search per language: ``--compare``), on the same open
index, and the two answers compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import latencies_ms  # noqa: E402

QUERIES = 500


def synthetic(base: np.ndarray, n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors: base row ``i % len(base)`` plus noise shaped like the base's spread."""
    rng = np.random.default_rng(seed)
    centred = base - base.mean(axis=0)
    # Noise with the embeddings' own covariance: z @ (centred / sqrt(m)) has covariance Σ.
    shape = (centred / np.sqrt(len(base))).astype(np.float32)
    out = np.empty((n, base.shape[1]), np.float32)
    origin = np.arange(n) % len(base)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        z = rng.standard_normal((stop - start, len(base)), dtype=np.float32)
        block = base[origin[start:stop]] + noise * (z @ shape)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, origin


def write_segments(index_dir: Path, embedder, docs: list, passages: list, vectors: np.ndarray, segments: int,
                   exact_max: int | None, own_cells: bool = False) -> Path:
    """``index.write_index`` for ``segments`` consecutive segments of the passages (a version's
    margins and stories stubbed: see the module's docstring)."""
    from index import commit as commit_module
    from index.balance import language_means
    from index import vectors as vector_module
    from index.builder import _manifest
    from index.vectors import tuning_queries
    from index.catalog import write_catalog
    from index.commit import commit
    from index.manifest import SEGMENTS
    from index.segment import write_segment
    from index.versions import new_build_dir, remove_stale, writer_lock

    started = time.perf_counter()
    means = language_means(vectors, [p.lang for p in passages])
    bounds = np.linspace(0, len(passages), segments + 1).astype(int)
    real = commit_module.write_version_stories
    commit_module.write_version_stories = _stub_stories
    try:
        with writer_lock(index_dir):
            remove_stale(index_dir)
            build_dir = new_build_dir(index_dir)
            infos = []
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                seg_passages = passages[lo:hi]
                seg_docs = docs[lo:hi]  # one document per passage
                name = f"s-{build_dir.name.removeprefix('.build-')}-{i:02d}"
                infos.append(write_segment(build_dir / SEGMENTS / name, int(lo), seg_docs, seg_passages, vectors[lo:hi],
                                           means, exact_max=vector_module.EXACT_MAX if exact_max is None else exact_max,
                                           tuning_queries=lambda ps=seg_passages: tuning_queries(embedder, ps),
                                           index_size=None if own_cells else len(passages),
                                           cells_from=None if own_cells else
                                           [(build_dir / SEGMENTS / info["name"], info) for info in infos]))
            summary = {"documents_read": len(docs), "documents_indexed": len(docs), "skipped": []}
            return commit(index_dir, build_dir, _manifest(embedder, Path(""), 200, {}, None, started, len(passages)),
                          infos, {}, {}, lambda path: write_catalog(path, {}, {}, summary))
    finally:
        commit_module.write_version_stories = real


def _stub_stories(build_dir: Path, pairs, deleted, previous, renumber=None) -> dict:
    """The version's margins, writer state and stories of their real shapes, with no links."""
    from index.manifest import LINKS, MARGIN_ROWS, MARGINS, NEIGHBOUR_COSINES, NEIGHBOURS, STORIES
    from index.margins import MARGIN_K
    from index.store import write_store
    from index.vectors import save_embeddings

    n = sum(info["passages"] for _, info in pairs)
    langs = sorted({lang for _, info in pairs for lang in info["languages"]})
    save_embeddings(build_dir / MARGINS, np.zeros((n, len(langs)), np.float32))
    np.save(build_dir / NEIGHBOURS, np.full((n, len(langs), MARGIN_K), -1, np.int32), allow_pickle=False)
    np.save(build_dir / NEIGHBOUR_COSINES, np.zeros((n, len(langs), MARGIN_K), np.float32), allow_pickle=False)
    np.save(build_dir / MARGIN_ROWS, np.zeros((n, 3), np.int64), allow_pickle=False)
    np.save(build_dir / LINKS, np.zeros((0, 4), np.float64), allow_pickle=False)
    write_store(build_dir / STORIES, [], [], {})
    return {"margin": "ratio", "k": MARGIN_K, "margin_languages": langs, "link_threshold": 1.0, "date_window_days": 3,
            "links": 0, "stories": 0, "multi_document_stories": 0, "neighbour_lists_searched": 0,
            "neighbour_lists": 0, "seconds": 0.0, "stub": "benchmarks/scale.py"}


def build(n: int, noise: float, work: Path, exact_max: int | None, segments: int = 1, own_cells: bool = False) -> dict:
    from index.manifest import read_manifest
    from index.store import DocumentRow, PassageRow
    from index.versions import current_version
    from polyseek.embedder import load_embedder
    from xquad_data import embeddings

    embedder = load_embedder()
    data = embeddings(embedder)
    vectors, origin = synthetic(data["passages"], n, noise)
    cos_to_base = float(np.mean(np.sum(vectors[:20_000] * data["passages"][origin[:20_000]], axis=1)))
    texts, langs = data["texts"], data["langs"].tolist()
    docs = [DocumentRow(f"p{i}", f"Passage {i}", "txt", langs[o], f"h{i}", texts[o]) for i, o in enumerate(origin.tolist())]
    passages = [PassageRow(i, f"p{i}", 0, 0, len(texts[o]), langs[o], 0, texts[o]) for i, o in enumerate(origin.tolist())]
    started = time.perf_counter()
    write_segments(work / "index", embedder, docs, passages, vectors, segments, exact_max, own_cells)
    seconds = time.perf_counter() - started
    del docs, passages
    folder = current_version(work / "index")
    manifest = read_manifest(folder)

    # The exact top 10 of the queries: what the searcher ranks by (each language's best 20 by
    # q·(p − mean_L), put on one scale by index.balance.merge), over exact scores.
    from index.commit import load_means

    means = load_means(folder, manifest)
    lang_arr = np.asarray(langs)[origin]
    rng = np.random.default_rng(1)
    picks = rng.choice(len(data["queries"]), QUERIES, replace=False)
    truth = exact_top(vectors, lang_arr, means, data["queries"][picks], 10)
    np.save(work / "truth.npy", truth)
    np.save(work / "picks.npy", picks)
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {"passages": n, "segments": segments, "build_s": round(seconds, 1), "noise": noise, "mean_cos_to_source": round(cos_to_base, 3),
            "vector_index": manifest.vector_index, "vector_params": manifest.vector_params,
            "segment_kinds": sorted({json.dumps(info["vector_params"], sort_keys=True) for info in manifest.segments}),
            "files_mb": {k: round(v / 1e6, 1) for k, v in manifest.files.items() if not k.startswith("bm25/")},
            "bm25_mb": round(sum(v for k, v in manifest.files.items() if k.startswith("bm25/")) / 1e6, 1),
            "disk_mb": round(disk / 1e6)}


def exact_top(vectors: np.ndarray, langs: np.ndarray, means: dict, queries: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best passage ids of each query by the searcher's ranking, computed exactly:
    each language's best :data:`index.balance.NEIGHBOURS` by ``q·(p − mean_L)`` (float64), put
    on one scale by ``index.balance.merge``."""
    from index.balance import NEIGHBOURS, merge

    queries = np.asarray(queries, np.float64)
    rows = np.arange(len(queries))[:, None]
    heads: list[dict] = [{} for _ in queries]
    for lang, mean in means.items():
        ids = np.flatnonzero(langs == lang)
        best_s = np.zeros((len(queries), 0))
        best_i = np.zeros((len(queries), 0), np.int64)
        for start in range(0, len(ids), 100_000):
            block = ids[start : start + 100_000]
            scores = np.hstack([best_s, queries @ (vectors[block].astype(np.float64) - mean).T])
            cand = np.hstack([best_i, np.broadcast_to(block, (len(queries), len(block)))])
            keep = min(NEIGHBOURS, scores.shape[1])
            top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            best_s, best_i = scores[rows, top], cand[rows, top]
        for q in range(len(queries)):
            order = np.argsort(-best_s[q], kind="stable")
            heads[q][lang] = [(float(best_s[q][i]), int(best_i[q][i])) for i in order]
    out = np.full((len(queries), k), -1, np.int64)
    for q, found in enumerate(heads):
        top = [pid for _, pid in merge(found, k)]
        out[q, : len(top)] = top
    return out


def measure(work: Path, compare: bool) -> dict:
    """Runs in a fresh process: memory and latency of a loaded searcher."""
    import psutil

    import faiss  # noqa: F401 - imported before the baseline, as a server would have it

    from polyseek.embedder import load_embedder
    from search import Searcher
    from xquad_data import embeddings, paragraphs

    proc = psutil.Process()
    embedder = load_embedder()
    data = embeddings(embedder)
    questions = [q[0] for _, _, q in paragraphs()]
    truth, picks = np.load(work / "truth.npy"), np.load(work / "picks.npy")
    qvecs = data["queries"][picks]
    for i in picks[:200]:  # the model's own working memory reaches its steady state first
        embedder.embed([questions[i]], "query")
    # Libraries a search loads on first use (language identifier, stemmers, BM25 code) are loaded
    # before the baseline, by searching the 21-passage seed index once in every way.
    from index import build_index

    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "data", Path(tmp) / "seed", embedder=embedder)
        with Searcher.open(Path(tmp) / "seed", embedder=embedder) as seed:
            seed.search(questions[0], 10)
            seed.search("missile defense guarantees", 10, ["en"], mode="hybrid")
            seed.search_vector(qvecs[0], 10, ["ro"])
    import gc

    gc.collect()
    rss0, shared0 = proc.memory_info().rss, proc.memory_info().shared
    started = time.perf_counter()
    searcher = Searcher.open(work / "index", embedder=embedder)
    open_s = time.perf_counter() - started
    rss_open = proc.memory_info().rss

    found = np.array([[h.passage_id for h in searcher.search_vector(q, 10)] for q in qvecs])
    from index.vectors import recall_at

    recall = recall_at(found, truth)
    langs = data["langs"]
    dense = latencies_ms(lambda q: searcher.search_vector(q, 10), list(qvecs))
    text = latencies_ms(lambda i: searcher.search(questions[i], 10), list(picks[:200]))
    filtered = latencies_ms(lambda i: searcher.search_vector(data["queries"][i], 10, ["th"]), list(picks[:200]))
    gc.collect()
    mem_dense = proc.memory_info()
    hybrid = latencies_ms(lambda i: searcher.search(questions[i], 10, [str(langs[i])], mode="hybrid"), list(picks[:200]))
    gc.collect()
    mem_hybrid = proc.memory_info()
    rss_after = mem_hybrid.rss
    n = searcher.manifest.passages
    out = {"segments_open": len(searcher._segments.readers), "open_s": round(open_s, 2), "recall_at_10": round(recall, 4),
           "search_vector_ms": pct(dense), "search_text_ms": pct(text), "hybrid_same_lang_ms": pct(hybrid),
           "one_language_filter_ms": pct(filtered),
           "rss_model_mb": round(rss0 / 1e6), "rss_open_mb": round(rss_open / 1e6), "rss_after_queries_mb": round(rss_after / 1e6),
           "bytes_per_passage_open": round((rss_open - rss0) / n),
           "bytes_per_passage_after_dense_queries": round((mem_dense.rss - rss0) / n),
           "bytes_per_passage_after_hybrid_queries": round((rss_after - rss0) / n),
           # mapped file pages (BM25 columns a query read) are page cache: shared, dropped under pressure
           "anonymous_bytes_per_passage_after_all": round(((mem_hybrid.rss - mem_hybrid.shared) - (rss0 - shared0)) / n)}
    if compare:
        out.update(previous_algorithms(searcher, qvecs, questions, picks, langs))
    searcher.close()
    started = time.perf_counter()
    Searcher.open(work / "index", embedder=embedder).close()
    out["open_again_s"] = round(time.perf_counter() - started, 2)
    return out


def pct(xs) -> dict:
    return {"p50": round(float(np.percentile(xs, 50)), 2), "p95": round(float(np.percentile(xs, 95)), 2)}


def previous_algorithms(searcher, qvecs, questions, picks, langs) -> dict:
    """Hybrid and dense searches with the previous algorithms (full BM25; one FAISS search per
    language in an IVF segment), timed on the same open index; how many answers differ."""
    from index import lexical
    from search import segments

    lexical_q = [(questions[i], str(langs[i])) for i in picks[:200]]
    own = {lang: searcher._ids_by_lang.get(lang) for _, lang in lexical_q}

    def bm25(item):
        query, lang = item
        return searcher._lexical.search(query, 100, own[lang], lang)

    def dense(q):
        return [h.passage_id for h in searcher.search_vector(q, 10)]

    out = {}
    now = {"bm25": [bm25(x) for x in lexical_q], "dense": [dense(q) for q in qvecs]}
    t_bm25_new = latencies_ms(bm25, lexical_q)
    t_dense_new = latencies_ms(dense, list(qvecs))
    lexical.PRUNE, segments.SINGLE_SCAN = False, False
    try:
        before = {"bm25": [bm25(x) for x in lexical_q], "dense": [dense(q) for q in qvecs]}
        t_bm25_old = latencies_ms(bm25, lexical_q)
        t_dense_old = latencies_ms(dense, list(qvecs))
        t_hybrid_old = latencies_ms(lambda i: searcher.search(questions[i], 10, [str(langs[i])], mode="hybrid"),
                                    list(picks[:200]))
    finally:
        lexical.PRUNE, segments.SINGLE_SCAN = True, True
    out["bm25_top100_ms"] = {"now": pct(t_bm25_new), "previous": pct(t_bm25_old)}
    out["dense_ms"] = {"now": pct(t_dense_new), "previous": pct(t_dense_old)}
    out["hybrid_previous_ms"] = pct(t_hybrid_old)
    out["answers_differing"] = {k: sum(a != b for a, b in zip(now[k], before[k])) for k in now}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--noise", type=float, default=0.5, help="scale of the noise added to each copy (default 0.5)")
    ap.add_argument("--exact-max", type=int, default=None, help="override the flat/IVF threshold")
    ap.add_argument("--work", type=Path, default=None, help="folder for the indexes (default: a temporary one)")
    ap.add_argument("--segments", type=int, default=1, help="write the passages as this many segments (default 1)")
    ap.add_argument("--own-cells", action="store_true",
                    help="each segment's own IVF cells, sized by its own passages, as before (default: sized by the index's, shared)")
    ap.add_argument("--compare", action="store_true",
                    help="also time the previous query algorithms (full BM25, a FAISS search per language)")
    ap.add_argument("--keep", action="store_true", help="keep the index (its folder is printed)")
    ap.add_argument("--reuse", type=Path, help="measure an index kept by --keep instead of building one")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.compare)))
        return
    for n in ([None] if args.reuse else args.passages):
        work = args.reuse or Path(tempfile.mkdtemp(prefix=f"polyseek-scale-{n}-", dir=args.work))
        try:
            if args.reuse:  # the first open checks every file again, as for a copied index
                shutil.rmtree(work / "index" / ".verified", ignore_errors=True)
            built = {"reused": str(work)} if args.reuse else build(n, args.noise, work, args.exact_max, args.segments, args.own_cells)
            out = subprocess.run([sys.executable, __file__, "--measure", str(work), *(["--compare"] if args.compare else [])],
                                 check=True, capture_output=True, text=True,
                                 env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            result = {**built, **json.loads(out.stdout.strip().splitlines()[-1])}
            print(json.dumps(result), flush=True)
        except subprocess.CalledProcessError as exc:
            print(exc.stderr[-3000:], file=sys.stderr)
            raise
        finally:
            if args.keep or args.reuse:
                print(f"index kept in {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
