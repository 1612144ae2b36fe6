"""What stories cost: the margin and story stage of a build at 100k passages against the whole
build, and the latency of listing stories, opening one and ``same_story`` on the seed index and
at 100k passages.

The 100k index stands in for a corpus of that size: it is written by ``index.write_index`` (the
product's writer: store, FAISS chosen and tuned by size — IVF at 100k —, margins and stories,
BM25, manifest) from *synthetic* vectors: copies of the bundled model's vectors of the XQuAD
pool in 9 languages (an index made by ``benchmarks/same_story.py``), each copy turned by its own
random rotation. Within a copy the cosines are the model's (translations stay translations, so
links and stories form as on real text); across copies they are near 0 (a copy is a separate
set of events). A document is one paragraph of one copy in one language (its passages), dated
on its event's day plus 0–3 days, the events spread over a year. The model is not run for them;
its cost is measured apart, as passages per second on XQuAD paragraphs, and the real build time
of 100k passages is extrapolated from it.

    .venv/bin/python benchmarks/stories_cost.py --base /tmp/polyseek-same-story/xquad/index
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import latencies_ms  # noqa: E402


def main() -> None:
    from index import update_index, write_index
    from index.manifest import EMBEDDINGS, STORE
    from index.store import DocumentRow, PassageRow, PassageStore
    from index.vectors import load_embeddings
    from index.versions import current_version
    from polyseek.embedder import load_embedder
    from search import Searcher

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="an index of real passages (benchmarks/same_story.py)")
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/polyseek-stories-cost"))
    args = ap.parse_args()
    embedder = load_embedder()
    print(f"model {embedder.name}; {time.strftime('%Y-%m-%d')}; 2 cores, shared and noisy\n")

    # The model's throughput on real paragraphs (what a full build spends nearly all its time on).
    base = current_version(args.base)
    store = PassageStore(base / STORE)
    rows = store.passage_texts()
    store.close()
    sample = [text for _, _, text in rows[:: max(1, len(rows) // 96)]][:96]
    embedder.embed(sample[:4], "passage")
    started = time.perf_counter()
    embedder.embed(sample, "passage")
    per_second = len(sample) / (time.perf_counter() - started)

    # 100k passages: rotated copies of the base's vectors.
    base_vectors = np.asarray(load_embeddings(base / EMBEDDINGS))
    store = PassageStore(base / STORE)
    base_docs = [doc for doc, _ in store.passage_languages()]
    store.close()
    rng = np.random.default_rng(1)
    copies = -(-args.passages // len(base_vectors))
    vectors = np.empty((copies * len(base_vectors), base_vectors.shape[1]), np.float32)
    for c in range(copies):
        rotation, _ = np.linalg.qr(rng.standard_normal((base_vectors.shape[1],) * 2))
        vectors[c * len(base_vectors) : (c + 1) * len(base_vectors)] = base_vectors @ rotation.astype(np.float32)
    vectors = vectors[: args.passages]
    event_day = {}
    docs, passages, seen = [], [], set()
    for pid in range(args.passages):
        c, row = divmod(pid, len(base_vectors))
        _, lang, text = rows[row]
        doc = f"copy{c}/{base_docs[row]}"
        event = (c, base_docs[row].split("/")[-1])  # the paragraph: the same event in every language
        day = event_day.setdefault(event, int(rng.integers(0, 365))) + int(rng.integers(0, 4))
        if doc not in seen:
            seen.add(doc)
            docs.append(DocumentRow(doc, f"Copy {c} of {base_docs[row]}", "txt", lang, f"h{doc}", text,
                                    published=str(np.datetime64("2024-01-01") + day)))
        passages.append(PassageRow(pid, doc, 0, 0, len(text), lang, 100, text))
    shutil.rmtree(args.work / "big", ignore_errors=True)
    started = time.perf_counter()
    folder = write_index(args.work / "big", embedder, docs, passages, vectors)
    write_seconds = time.perf_counter() - started
    with Searcher.open(args.work / "big", embedder=embedder) as s:
        info = s.manifest.stories
        kind = s.manifest.vector_index
    # An update: the documents of the last 1% of the passages deleted, as many new passages added
    # (the first 1% again, turned by another rotation: new events, new documents).
    first_new = next(i for i, p in enumerate(passages) if p.doc_id == passages[-(args.passages // 100)].doc_id)
    added = len(passages) - first_new
    rotation = np.linalg.qr(rng.standard_normal((vectors.shape[1],) * 2))[0].astype(np.float32)
    new_passages = passages[:first_new] + [
        PassageRow(first_new + i, "new/" + p.doc_id, p.ordinal, p.start, p.end, p.lang, p.n_tokens, p.text)
        for i, p in enumerate(passages[:added])]
    wanted = {p.doc_id for p in new_passages}
    new_docs = [d for d in docs if d.doc_id in wanted] + [
        DocumentRow("new/" + d.doc_id, d.title, d.format, d.lang, "n" + d.content_hash, d.text, published=d.published)
        for d in docs if "new/" + d.doc_id in wanted]
    started = time.perf_counter()
    write_index(args.work / "big", embedder, new_docs, new_passages,
                np.concatenate([vectors[:first_new], vectors[:added] @ rotation]), incremental=True)
    update_seconds = time.perf_counter() - started
    with Searcher.open(args.work / "big", embedder=embedder) as s:
        update_info = s.manifest.stories
    story_s = info["seconds"]
    real_build = args.passages / per_second + write_seconds
    print(f"## Build cost at {args.passages:,} passages ({kind}; synthetic vectors, see the docstring)\n")
    print("| | seconds |")
    print("| --- | --- |")
    print(f"| margins and stories (neighbours in each other language, links, grouping) | {story_s:.1f} |")
    print(f"| the whole write (store, FAISS, margins and stories, BM25, manifest) | {write_seconds:.1f} |")
    print(f"| embedding {args.passages:,} passages with the model at {per_second:.1f} passages/s (measured on XQuAD) | "
          f"{args.passages / per_second:.0f} |")
    print(f"| a full build, extrapolated (embedding + write) | {real_build:.0f} |")
    print(f"\nstories' share of a full build: **{story_s / real_build:.1%}**; of the write alone: {story_s / write_seconds:.0%}. "
          f"Links {info['links']:,}, stories {info['stories']:,}, of more than one document {info['multi_document_stories']:,}. "
          "\n")
    print(f"An update that deletes 1% of the passages and adds as many: margins and stories "
          f"{update_info['seconds']:.1f} s (the whole write {update_seconds:.1f} s); neighbour lists searched in full: "
          f"{update_info['neighbour_lists_searched']:,} of {update_info['neighbour_lists']:,}, the others merged with "
          f"a search among the new passages.\n")

    seed_dir = args.work / "seed"
    update_index(ROOT / "data", seed_dir, embedder=embedder)
    print("## Latency (ms, p50 / p95)\n")
    print("| index | stories(limit=50) | stories(langs=[…], sort=date) | story(id) | same_story(hit) |")
    print("| --- | --- | --- | --- | --- |")
    for name, path in (("seed (21 passages)", seed_dir), (f"{args.passages:,} passages", args.work / "big")):
        with Searcher.open(path, embedder=embedder) as s:
            ids = [st.story_id for st in s.stories(min_size=1, limit=200)]
            lang = next(iter(s.languages))
            hits = s._passage_hits([(int(p), 0.0, 0.0) for p in np.random.default_rng(2).choice(
                s.manifest.passages, min(200, s.manifest.passages), replace=False)])
            linked = sum(1 for h in hits if s.same_story(h))
            cells = [latencies_ms(lambda _: s.stories(limit=50), list(range(50))),
                     latencies_ms(lambda _: s.stories(langs=[lang], sort="date", limit=50), list(range(50))),
                     latencies_ms(s.story, ids[:100]),
                     latencies_ms(s.same_story, hits)]
            print(f"| {name} | " + " | ".join(f"{np.percentile(c, 50):.2f} / {np.percentile(c, 95):.2f}" for c in cells)
                  + f" |  ({linked} of {len(hits)} sampled hits have links)")
    del folder


if __name__ == "__main__":
    main()
