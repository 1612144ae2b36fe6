"""What the language balance costs a search: one search per language instead of one in all.

    .venv/bin/python benchmarks/balance_cost.py [--passages 100000] [--languages 9]

Writes a synthetic index (unit vectors: a shared topic plus a language direction, so that, as
with a real multilingual model, languages cluster) of the given size with ``write_index`` (flat up
to 20k passages, IVF above) and times ``Searcher.search_vector`` for 200 query vectors: no
filter, no filter with one passage per document, and a one-language filter. Run it in two
checkouts to compare them (the figures are medians on a shared machine: compare within a run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Table:
    """An embedder whose text is a passage number: its vector, plus noise for a query (so the
    approximate index is tuned on queries like the ones timed)."""

    name, fingerprint, max_tokens, prompts, preferred_batch_size = "synthetic", "synthetic-1", 512, {}, 64

    def __init__(self, vectors: np.ndarray, rng):
        self.vectors, self.rng, self.dim = vectors, rng, vectors.shape[1]

    def embed(self, texts, kind, batch_size=None):
        out = self.vectors[[int(t.split()[0]) for t in texts]].copy()
        if kind == "query":
            out += 0.5 * self.rng.standard_normal(out.shape).astype(np.float32) / np.sqrt(self.dim)
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def set_threads(self, threads):
        pass

    def token_spans(self, texts):
        return [[(0, len(t))] for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--languages", type=int, default=9)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()

    from index import write_index
    from index.store import DocumentRow, PassageRow
    from search import Searcher

    rng = np.random.default_rng(0)
    langs = ["de", "es", "ru", "zh", "tr", "el", "hi", "vi", "th", "ar", "en", "ro"][: args.languages]
    lang_dirs = rng.standard_normal((len(langs), args.dim)) / np.sqrt(args.dim)
    topics = rng.standard_normal((2_000, args.dim)) / np.sqrt(args.dim)
    of_lang = rng.integers(0, len(langs), args.passages)
    vectors = (topics[rng.integers(0, 2_000, args.passages)] + 0.6 * lang_dirs[of_lang]
               + 0.4 * rng.standard_normal((args.passages, args.dim)) / np.sqrt(args.dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    docs = [DocumentRow(f"d{i}.txt", "", "txt", langs[of_lang[i]], f"h{i}", str(i)) for i in range(args.passages)]
    passages = [PassageRow(i, f"d{i}.txt", 0, 0, 1, langs[of_lang[i]], 1, str(i)) for i in range(args.passages)]
    fake = Table(vectors, rng)
    queries = fake.embed([str(i) for i in rng.integers(0, args.passages, 200)], "query")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_index(Path(tmp) / "index", fake, docs, passages, vectors)
        print(f"{args.passages} passages, {args.languages} languages, written in {time.perf_counter() - started:.1f} s")
        exact = None
        if args.passages > 20_000:  # the same passages exact, to measure the approximate index's recall
            write_index(Path(tmp) / "exact", fake, docs, passages, vectors, exact_max=args.passages)
            with Searcher.open(Path(tmp) / "exact", embedder=fake) as flat:
                exact = [[h.passage_id for h in flat.search_vector(q, 10)] for q in queries]
        with Searcher.open(Path(tmp) / "index", embedder=fake) as searcher:
            if exact is not None:
                found = [[h.passage_id for h in searcher.search_vector(q, 10)] for q in queries]
                recall = np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])
                print(f"recall@10 of the unfiltered search against the exact index: {recall:.3f}")
            print(f"vector index: {searcher.manifest.vector_index} {searcher.manifest.vector_params}")
            for label, options in (("no filter", {}), ("no filter, one passage per document", {"per_document": True}),
                                   ("filter: one language", {"langs": [langs[0]]})):
                for q in queries[:20]:
                    searcher.search_vector(q, 10, **options)
                times = []
                for q in queries:
                    t = time.perf_counter()
                    searcher.search_vector(q, 10, **options)
                    times.append(time.perf_counter() - t)
                print(f"{label}: median {np.median(times) * 1000:.2f} ms, p95 {np.percentile(times, 95) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
