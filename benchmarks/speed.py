"""Indexing throughput and query latency of the product against the bare encoder and txtai,
all in one run on the same passages with the same model (the bundled multilingual-e5-small).

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # txtai and psutil (make bench does this)
    .venv/bin/python benchmarks/speed.py                      # 4 languages x 120 XQuAD paragraphs
    .venv/bin/python benchmarks/speed.py --langs de ru --per-lang 60 --no-sweep   # quicker

1. Batch sizes: the bare encoders (torch through sentence-transformers, and ONNX Runtime) at
   batch 1 to 32 on a sample of the passages: what the backends' defaults are chosen from.
2. Indexing: XQuAD paragraphs written as .txt files, indexed by ``build_index`` (reading,
   language identification, chunking, embedding, SQLite, FAISS, BM25, manifest, checksums) with
   each backend; then exactly the index's passage texts encoded by the bare encoder at the same
   batch size; then txtai indexing the same passage texts with the same model folder.
3. Queries: each paragraph's questions (warm, k=10): ``Searcher.search`` against the bare path
   (encode the query, search an exact FAISS index) and against txtai's search of the same texts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import latencies_ms, timed  # noqa: E402


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def write_corpus(folder: Path, paras) -> None:
    folder.mkdir(parents=True)
    for i, (lang, text, _) in enumerate(paras):
        (folder / f"{lang}-{i:04d}.txt").write_text(text, encoding="utf-8")


def sweep(models: dict, texts: list[str]) -> None:
    print(f"\n## Encoder batch size ({len(texts)} passages, passages/s)\n")
    sizes = (1, 2, 4, 8, 16, 32)
    print("| backend | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for name, model in models.items():
        model.embed(texts[:4], "passage")
        row = [f"{rate(len(texts), timed(lambda: model.embed(texts, 'passage', batch_size=b))[1]):.1f}" for b in sizes]
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--langs", nargs="+", default=["de", "es", "ru", "zh"])
    ap.add_argument("--per-lang", type=int, default=120)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--no-txtai", action="store_true")
    args = ap.parse_args()

    import faiss
    import torch

    from index import build_index
    from index.store import PassageStore
    from index.versions import current_version
    from polyseek.bundled_model import bundled_model_dir
    from polyseek.embedder import load_embedder
    from search import Searcher
    from xquad_data import paragraphs

    paras = []
    for lang in args.langs:
        paras += paragraphs([lang])[: args.per_lang]
    questions = [q for _, _, qs in paras for q in qs]
    rng = np.random.default_rng(0)
    questions = [questions[i] for i in sorted(rng.choice(len(questions), min(args.queries, len(questions)), replace=False))]
    models = {"torch": load_embedder(backend="torch"), "onnx": load_embedder(backend="onnx")}
    for model in models.values():
        model.set_threads(torch.get_num_threads())
    print(f"# Speed: {len(paras)} XQuAD paragraphs ({', '.join(args.langs)}), model {models['onnx'].name}, "
          f"{torch.get_num_threads()} threads")

    if not args.no_sweep:
        sweep(models, [t for _, t, _ in paras[:: max(1, len(paras) // 96)]])

    work = Path(tempfile.mkdtemp(prefix="polyseek-speed-"))
    write_corpus(work / "corpus", paras)
    print("\n## Indexing\n")
    print("| system | batch | passages | seconds | passages/s | tokens/s | ratio to its bare encoder |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    built = {}
    for name, model in models.items():
        batch = model.preferred_batch_size
        summary, seconds = timed(lambda: build_index(work / "corpus", work / f"index-{name}", embedder=model))
        store = PassageStore(current_version(work / f"index-{name}") / "store.sqlite")
        texts = [t for _, _, t in store.passage_texts()]
        store.close()
        tokens = sum(len(spans) for spans in model.token_spans(texts))
        _, bare = timed(lambda: model.embed(texts, "passage", batch_size=batch))
        built[name] = (texts, tokens, seconds)
        print(f"| Polyseek build_index, {name} | {batch} | {len(texts)} | {seconds:.1f} | {rate(len(texts), seconds):.1f} | "
              f"{rate(tokens, seconds):.0f} | {bare / seconds:.3f} |")
        print(f"| bare {name} encoder | {batch} | {len(texts)} | {bare:.1f} | {rate(len(texts), bare):.1f} | "
              f"{rate(tokens, bare):.0f} | |", flush=True)
    texts, tokens, _ = built["onnx"]
    _, old = timed(lambda: models["torch"].embed(texts, "passage", batch_size=32))
    print(f"| bare torch encoder (the old default) | 32 | {len(texts)} | {old:.1f} | {rate(len(texts), old):.1f} | "
          f"{rate(tokens, old):.0f} | |", flush=True)

    txtai_index = None
    if not args.no_txtai:
        from txtai import Embeddings

        folder = str(bundled_model_dir())
        for encodebatch in (32, 4):
            emb = Embeddings(path=folder, method="sentence-transformers", content=False, encodebatch=encodebatch,
                             instructions={"query": "query: ", "data": "passage: "})
            _, seconds = timed(lambda: emb.index([(i, t, None) for i, t in enumerate(texts)]))
            print(f"| txtai 9 Embeddings.index (sentence-transformers, encodebatch {encodebatch}) | {encodebatch} | "
                  f"{len(texts)} | {seconds:.1f} | {rate(len(texts), seconds):.1f} | {rate(tokens, seconds):.0f} | |",
                  flush=True)
            if encodebatch == 32:
                txtai_index, txtai_seconds = emb, seconds
        print(f"\nPolyseek (onnx) / txtai (encodebatch 32): "
              f"{rate(len(texts), built['onnx'][2]) / rate(len(texts), txtai_seconds):.2f}x")

    print(f"\n## Queries ({len(questions)} XQuAD questions, warm, k=10, ms)\n")
    print("| path | p50 | p95 | p50 ratio to bare |")
    print("| --- | --- | --- | --- |")

    def latencies(fn):
        return latencies_ms(fn, questions, warm=5)

    for name, model in models.items():
        with Searcher.open(work / f"index-{name}", embedder=model) as searcher:
            stored = faiss.read_index(str(searcher.folder / "vectors.faiss"))
            flat = faiss.IndexFlatIP(model.dim)
            flat.add(stored.index.reconstruct_n(0, stored.ntotal))
            product = latencies(lambda q: searcher.search(q, 10))
            bare = latencies(lambda q: flat.search(model.embed([q], "query"), 10))
        p50b = statistics.median(bare)
        print(f"| Polyseek Searcher.search, {name} | {statistics.median(product):.1f} | {np.percentile(product, 95):.1f} | "
              f"{statistics.median(product) / p50b:.2f} |")
        print(f"| bare: {name} encode + exact FAISS | {p50b:.1f} | {np.percentile(bare, 95):.1f} | 1.00 |", flush=True)
    if txtai_index is not None:
        theirs = latencies(lambda q: txtai_index.search(q, 10))
        print(f"| txtai Embeddings.search | {statistics.median(theirs):.1f} | {np.percentile(theirs, 95):.1f} | |")


if __name__ == "__main__":
    main()
