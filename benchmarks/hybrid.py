"""Does BM25 earn its place? Same-language XQuAD retrieval through the product: dense alone
against hybrid (reciprocal rank fusion) with several lexical weights, with and without
Snowball stemming. Cross-language pairs with a language filter are not re-measured here: the
product's hybrid mode lets BM25 propose only passages in the query's language, so they rank as
dense does (``python -m search.eval`` measures every pair). Then the mixed pool, no filter:
how often each other language's gold paragraph is in the top 10, dense against hybrid.

    .venv/bin/python benchmarks/hybrid.py ../shared/eval/xquad/xquad.{de,es,ru,zh}.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import build_index  # noqa: E402
from index.lexical import LexicalIndex  # noqa: E402
from polyseek.embedder import load_embedder  # noqa: E402
from search.eval import embed_texts, read_squad  # noqa: E402
from search.metrics import rank_of, summarize  # noqa: E402
from search.searcher import Searcher  # noqa: E402

VARIANTS = [("dense", None, None), ("hybrid, stems, w=1", True, 1.0), ("hybrid, stems, w=0.5", True, 0.5),
            ("hybrid, stems, w=0.25", True, 0.25), ("hybrid, words, w=1", False, 1.0),
            ("hybrid, words, w=0.5", False, 0.5)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("xquad", nargs="+", type=Path)
    ap.add_argument("--max-questions", type=int, default=None)
    args = ap.parse_args()
    sets = [read_squad(p) for p in args.xquad]
    embedder = load_embedder()
    work = Path(tempfile.mkdtemp(prefix="polyseek-hybrid-"))
    for s in sets:
        (work / "corpus" / s.lang).mkdir(parents=True)
        for i, text in enumerate(s.paragraphs):
            (work / "corpus" / s.lang / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    build_index(work / "corpus", work / "index", embedder=embedder)
    queries = {s.lang: s.questions[: args.max_questions] for s in sets}
    qvecs = {lang: embed_texts([q for _, q in qs], embedder, "query", f"queries {lang}", True) for lang, qs in queries.items()}
    langs = [s.lang for s in sets]
    print(f"model {embedder.name}; {len(sets[0].paragraphs)} paragraphs per language; "
          f"{len(queries[langs[0]])} questions per language; same-language pairs, language filter on\n")
    print("| variant | " + " | ".join(f"{lang} R@1" for lang in langs) + " | mean R@1 | mean MRR@10 | ms/query |")
    print("| --- |" + " --- |" * (len(langs) + 3))
    with Searcher.open(work / "index", embedder=embedder) as searcher:
        rows = searcher._segments.passages(range(searcher.manifest.passages))
        texts = [rows[i][0].text for i in range(searcher.manifest.passages)]
        plangs = [lang for _, lang in searcher.passage_languages()]
        lexical = {True: searcher._lexical, False: LexicalIndex.build(texts, plangs, stem=False)}
        for name, stem, weight in VARIANTS:
            if stem is not None:
                searcher._lexical = lexical[stem]
            r1, mrr, started, n = [], [], time.perf_counter(), 0
            for lang in langs:
                ranks = []
                for (gold, text), qvec in zip(queries[lang], qvecs[lang]):
                    hits = searcher.search_vector(qvec, 10, [lang], per_document=True, query=text,
                                                  mode="dense" if stem is None else "hybrid", lexical_weight=weight or 1.0)
                    ranks.append(rank_of([h.doc_id for h in hits], f"{lang}/{gold:04d}.txt"))
                n += len(ranks)
                summary = summarize(ranks)
                r1.append(summary["r1"])
                mrr.append(summary["mrr10"])
            ms = (time.perf_counter() - started) * 1000 / n
            print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in r1) + f" | {np.mean(r1):.4f} | {np.mean(mrr):.4f} | {ms:.1f} |")

        searcher._lexical = lexical[True]
        print("\nMixed pool, no language filter, 10 documents per query:\n")
        print("| mode | other-language gold in top 10 | own-language gold at rank 1 |")
        print("| --- | --- | --- |")
        for mode in ("dense", "hybrid"):
            other, own = [], []
            for lang in langs:
                for (gold, text), qvec in zip(queries[lang], qvecs[lang]):
                    docs = [h.doc_id for h in searcher.search_vector(qvec, 10, None, per_document=True, query=text, mode=mode)]
                    own.append(docs[:1] == [f"{lang}/{gold:04d}.txt"])
                    other += [f"{b}/{gold:04d}.txt" in docs for b in langs if b != lang]
            print(f"| {mode} | {np.mean(other):.3f} | {np.mean(own):.3f} |")


if __name__ == "__main__":
    main()
