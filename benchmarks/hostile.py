"""What hostile input costs (issue 14), with the hashing embedder (fake:64) so that only the
reading, budgets and query paths are measured:

1. every case of tests/hostile_corpus.py built alone with the default limits (the time-only PDF
   bomb with a 5 s reading limit): outcome and seconds;
2. the whole hostile corpus built in a child process with the default limits: seconds and peak
   memory of the build and of the reader process;
3. a 1 MB query (Latin, and alternating scripts) in dense and hybrid mode, cut to
   MAX_QUERY_CHARS as the product does, against the same query read whole (the limit lifted).

    .venv/bin/python benchmarks/hostile.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import timed  # noqa: E402
from index import build_index  # noqa: E402
from index.limits import Limits  # noqa: E402
from polyseek.embedder import HashingEmbedder  # noqa: E402
from search import Searcher  # noqa: E402
import search.searcher as searcher_module  # noqa: E402
from tests.hostile_corpus import CASES  # noqa: E402
from tests.test_hostile import build_in_child  # noqa: E402


BASE = "The ministers met in Brussels on Monday and agreed to resume the treaty talks."


def per_case(work: Path, fake) -> None:
    """Each case beside one plain article (so that every build has something to index), after
    one warm-up build; seconds of the whole build."""
    (work / "warm").mkdir()
    (work / "warm" / "base.txt").write_text(BASE, encoding="utf-8")
    build_index(work / "warm", work / "warm-index", embedder=fake)
    print("| case | outcome (besides the plain article) | build seconds |\n| --- | --- | --- |")
    for case in CASES:
        limits = Limits() if case.defaults else Limits(read_seconds=5.0)
        root, outside = work / case.name / "corpus", work / case.name / "outside"
        root.mkdir(parents=True)
        outside.mkdir()
        case.make(root, outside, limits)
        (root / "zz-base.txt").write_text(BASE, encoding="utf-8")
        summary, seconds = timed(lambda: build_index(root, work / case.name / "index", embedder=fake, limits=limits,
                                                     chunk_tokens=64))
        note = "" if case.defaults else " (read limit 5 s)"
        print(f"| {case.name}{note} | {summary.documents_indexed - 1} indexed, {len(summary.skipped)} skipped | "
              f"{seconds:.2f} |")


def whole_corpus(work: Path) -> None:
    from tests.hostile_corpus import make_corpus

    make_corpus(work / "all" / "corpus", work / "all" / "outside", Limits(), defaults_only=True)
    result = build_in_child(work / "all" / "corpus", work / "all" / "index", None, 600)
    print(f"\nwhole hostile corpus, default limits: {result['read']} documents in, {result['indexed']} indexed, "
          f"{len(result['skipped'])} skipped, {result['seconds']:.1f} s; peak memory: build "
          f"{result['rss_mb']:.0f} MiB, reader process {result['children_rss_mb']:.0f} MiB")


def queries(work: Path, fake) -> None:
    corpus = work / "q"
    corpus.mkdir()
    for i in range(200):
        (corpus / f"{i}.txt").write_text(f"Report {i}: missile shield talks in Geneva, treaty number {i * 7}. "
                                         "Rusia cere garanţii de securitate. روسيا تطالب بضمانات.", encoding="utf-8")
    build_index(corpus, work / "q-index", embedder=fake)
    cases = {"1 MB Latin": "missile shield " * 70_000, "1 MB alternating scripts": "missile شبكة 导弹 " * 70_000}
    print("\n| query | mode | cut to MAX_QUERY_CHARS (ms) | read whole (ms) | ratio |\n| --- | --- | --- | --- | --- |")
    with Searcher.open(work / "q-index", embedder=fake) as searcher:
        for name, query in cases.items():
            for mode in ("dense", "hybrid"):
                def median(limit):
                    searcher_module.MAX_QUERY_CHARS = limit
                    return statistics.median(timed(lambda: searcher.search(query, k=10, mode=mode))[1] * 1000
                                             for _ in range(3))
                cut, whole = median(4_000), median(10**7)
                searcher_module.MAX_QUERY_CHARS = 4_000
                print(f"| {name} | {mode} | {cut:.1f} | {whole:.1f} | {whole / cut:.0f}× |")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="polyseek-hostile-"))
    fake = HashingEmbedder(dim=64, max_tokens=128)
    per_case(work, fake)
    whole_corpus(work)
    queries(work, fake)
    print(json.dumps({"work": str(work)}))


if __name__ == "__main__":
    main()
