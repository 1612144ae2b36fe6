"""What an update costs as the corpus grows: a full build, then an update with nothing changed
and an update adding 10 documents, on corpora of XQuAD paragraphs replicated with edits (each
copy gets an edition line, so no two documents are the same text), one .txt file each.

    python benchmarks/update_cost.py --sizes 1000,10000,100000 --model fake:384
    python benchmarks/update_cost.py --code /tmp/main-tree ...   # the same run on other code
    python benchmarks/update_cost.py --sizes 100000 --watch ...  # with a watch saved

``--code`` puts another checkout first on the import path (e.g. a ``git worktree`` of main), so
before/after figures come from one script on one machine. With ``--segments``, also the search
cost with 10 segments and with 1 (after ``optimize``). Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--model", default="fake:384")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose index/ and search/ are measured")
    parser.add_argument("--work", default="/tmp/polyseek-update-cost")
    parser.add_argument("--segments", action="store_true", help="also: search cost with 10 segments and with 1")
    parser.add_argument("--label", default="")
    parser.add_argument("--open-only", action="store_true",
                        help="only time opening the existing index of each size twice (full check, then recorded)")
    parser.add_argument("--repeat", type=int, default=3, help="updates with nothing changed (median) and of 10 documents")
    parser.add_argument("--watch", action="store_true",
                        help="save a watch before the updates (each update then evaluates it on its new passages)")
    parser.add_argument("--keep-index", action="store_true",
                        help="time the updates on the index of this size and label if there is one (no build)")
    args = parser.parse_args()
    sys.path.insert(0, args.code)
    sys.path.insert(1, str(ROOT))
    from benchmarks.xquad_data import paragraphs
    from index import build_index, update_index
    from polyseek.embedder import load_embedder

    embedder = load_embedder(args.model)
    paras = [(lang, text) for lang, text, _ in paragraphs(xquad=ROOT.parent / "shared" / "eval" / "xquad")]
    work = Path(args.work)
    for size in [int(s) for s in args.sizes.split(",")]:
        corpus, index_dir = work / f"corpus-{size}", work / f"index-{size}-{args.label or 'x'}"
        if args.open_only:
            open_cost(args, size, index_dir, embedder)
            continue
        n_docs = make_corpus(corpus, paras, size, embedder)
        if not (args.keep_index and (index_dir / "CURRENT").is_file()):
            shutil.rmtree(index_dir, ignore_errors=True)
            t = time.perf_counter()
            built = build_index(corpus, index_dir, embedder=embedder)
            report(args, size, "full build", time.perf_counter() - t, built)
        if args.watch:
            from index.watches import WatchStore

            watches = WatchStore(index_dir)
            if not watches.list():
                watches.add("missile defense guarantees")
        nothing = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            summary = update_index(corpus, index_dir, embedder=embedder)
            nothing.append(time.perf_counter() - t)
        report(args, size, f"update, nothing changed (median of {args.repeat})", statistics.median(nothing), summary)
        for round_ in range(args.repeat if args.keep_index else min(2, args.repeat)):
            added = []
            for i in range(10):
                lang, text = paras[(n_docs + 10 * round_ + i) % len(paras)]
                path = corpus / "new" / f"added-{round_}-{i}.txt"
                path.parent.mkdir(exist_ok=True)
                path.write_text(f"Update {round_}.{i}.\n{text}", encoding="utf-8")
                added.append(path)
            t = time.perf_counter()
            summary = update_index(corpus, index_dir, embedder=embedder)
            seconds = time.perf_counter() - t
            report(args, size, f"update, 10 documents added (round {round_})", seconds, summary)
        shutil.rmtree(corpus / "new")
        update_index(corpus, index_dir, embedder=embedder)
        if args.segments:
            search_costs(args, size, corpus, index_dir, embedder, paras, n_docs)


def make_corpus(corpus: Path, paras, size: int, embedder) -> int:
    """A corpus of about ``size`` passages (made once per size); the number of documents."""
    from index.chunking import chunk_text

    sample = paras[:: max(1, len(paras) // 200)]
    per_doc = sum(len(chunk_text(text, lang, embedder, 200)) for lang, text in sample) / len(sample)
    n_docs = max(10, round(size / per_doc))
    done = corpus / f".made-{n_docs}"
    if done.is_file():
        return n_docs
    shutil.rmtree(corpus, ignore_errors=True)
    for i in range(n_docs):
        lang, text = paras[i % len(paras)]
        path = corpus / f"{i // 1000:04d}" / f"doc-{i:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Edition {i // len(paras)}, {lang}.\n{text}", encoding="utf-8")
    done.write_text("", encoding="utf-8")
    return n_docs


def report(args, size: int, what: str, seconds: float, summary) -> None:
    out = {"label": args.label, "size": size, "what": what, "seconds": round(seconds, 3),
           "embed_seconds": round(summary.embed_seconds, 3),
           "beyond_embedding": round(seconds - summary.embed_seconds, 3), "passages": summary.passages,
           "documents": summary.documents_indexed, "embedded": summary.embedded,
           "segments": getattr(summary, "segments", None), "segments_merged": getattr(summary, "segments_merged", None)}
    print(json.dumps(out), flush=True)


def open_cost(args, size: int, index_dir: Path, embedder) -> None:
    """Seconds to open the index: the first open checks every file's checksum; later ones skip
    the segments recorded as checked (index.verify)."""
    from search import Searcher

    shutil.rmtree(index_dir / ".verified", ignore_errors=True)
    for attempt in ("first open (all checksums)", "second open (segments recorded as checked)"):
        t = time.perf_counter()
        with Searcher.open(index_dir, embedder=embedder) as s:
            passages = s.manifest.passages
        print(json.dumps({"label": args.label, "size": size, "what": attempt, "passages": passages,
                          "seconds": round(time.perf_counter() - t, 3)}), flush=True)


def search_costs(args, size: int, corpus: Path, index_dir: Path, embedder, paras, n_docs: int) -> None:
    """p50 of dense and hybrid searches with 10 segments (nine updates without merging), then
    with one (``optimize``)."""
    from index import update_index
    from index.merge import optimize_index
    from search import Searcher

    for round_ in range(9):
        for i in range(10):
            lang, text = paras[(n_docs + 100 + 10 * round_ + i) % len(paras)]
            path = corpus / "seg" / f"s-{round_}-{i}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"Segment {round_}.{i}.\n{text}", encoding="utf-8")
        update_index(corpus, index_dir, embedder=embedder, merge=False)
    queries = [text.split(".")[0][:80] for _, text in paras[:: max(1, len(paras) // 60)]][:60]
    for state in ("10 segments", "1 segment"):
        if state == "1 segment":
            optimize_index(index_dir)
        with Searcher.open(index_dir, embedder=embedder) as s:
            vectors = [s.encode_query(q) for q in queries]
            for mode in ("dense", "hybrid"):
                times = []
                for q, v in zip(queries, vectors):
                    t = time.perf_counter()
                    s.search_vector(v, 10, mode=mode, query=q)
                    times.append(time.perf_counter() - t)
                print(json.dumps({"label": args.label, "size": size, "what": f"search {mode}, {state}",
                                  "segments": s.segments, "p50_ms": round(1000 * statistics.median(times), 2),
                                  "p90_ms": round(1000 * sorted(times)[int(0.9 * len(times))], 2)}), flush=True)
    shutil.rmtree(corpus / "seg")
    update_index(corpus, index_dir, embedder=embedder)


if __name__ == "__main__":
    main()
